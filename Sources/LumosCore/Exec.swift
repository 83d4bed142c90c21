import CLinux
import Glibc

/// Runs external tools (mkfs.btrfs, btrfs send/receive, nft, ip) with posix_spawn.
/// Lumos never forks from Swift (docs/architecture.md); posix_spawn is safe because the child only execs.
public enum Exec {
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// Standard input/output wiring for `spawn`.
    public enum Stream: Sendable {
        case inherit
        case null
        case fd(Int32)
    }

    /// Finds a program in the usual system paths (root's PATH may lack /usr/sbin).
    public static func which(_ name: String) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        let env = getenv("PATH").map { String(cString: $0) } ?? ""
        let dirs = env.split(separator: ":").map(String.init) + ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        for d in dirs where access("\(d)/\(name)", X_OK) == 0 { return "\(d)/\(name)" }
        return nil
    }

    /// Starts `argv` with the given streams; returns the pid. `passing[i]` becomes the child's
    /// fd 3+i (QEMU's disks and taps, docs/vm.md); every other descriptor is closed.
    public static func spawn(_ argv: [String], stdin: Stream = .null, stdout: Stream = .inherit, stderr: Stream = .inherit, passing: [Int32] = []) throws -> pid_t {
        guard let path = which(argv[0]) else {
            throw LumosError.notFound("\(argv[0]): program not found; run scripts/install-deps.sh")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (target, stream) in [(Int32(0), stdin), (1, stdout), (2, stderr)] {
            switch stream {
            case .inherit: break
            case .null: posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
            case .fd(let fd): posix_spawn_file_actions_adddup2(&actions, fd, target)
            }
        }
        // Passed descriptors go first to numbers above all of them and above their targets, then
        // down to 3, 4, ...: a source that is itself a target is never overwritten before use.
        // dup2 clears FD_CLOEXEC on the copy.
        let parking = max(passing.max() ?? 0, Int32(2 + passing.count)) + 1
        for (i, fd) in passing.enumerated() { posix_spawn_file_actions_adddup2(&actions, fd, parking + Int32(i)) }
        for i in passing.indices { posix_spawn_file_actions_adddup2(&actions, parking + Int32(i), 3 + Int32(i)) }
        // Only 0, 1 and 2 (and what the caller passes) reach the child: a descriptor some other
        // thread opened without O_CLOEXEC (a pipe end, a pool's loop device, a lock) must not
        // keep it open there.
        clinux_spawn_closefrom(&actions, 3 + Int32(passing.count))
        // The child starts with no blocked signals and default dispositions: posix_spawn would
        // otherwise hand it the calling thread's mask (worker threads block most signals), and a
        // tool that relies on SIGALRM, like `ping -w`, would wait forever.
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attr, &cargs, environ)
        if rc != 0 { throw Errno(rc, "posix_spawn", path) }
        return pid
    }

    /// Waits for a child and returns its exit status (128+signal when killed).
    public static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return -1 }
        }
        if status & 0x7f == 0 { return (status >> 8) & 0xff }
        return 128 + (status & 0x7f)
    }

    /// Runs a program to completion, capturing its output.
    @discardableResult
    public static func run(_ argv: [String], input: [UInt8]? = nil, check: Bool = true) throws -> Result {
        var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0], inPipe: [Int32] = [0, 0]
        try sys("pipe2") { clinux_pipe2(&outPipe, O_CLOEXEC) }
        try sys("pipe2") { clinux_pipe2(&errPipe, O_CLOEXEC) }
        if input != nil { try sys("pipe2") { clinux_pipe2(&inPipe, O_CLOEXEC) } }
        let pid: pid_t
        do {
            pid = try spawn(argv, stdin: input != nil ? .fd(inPipe[0]) : .null, stdout: .fd(outPipe[1]), stderr: .fd(errPipe[1]))
        } catch {
            for fd in [outPipe[0], outPipe[1], errPipe[0], errPipe[1]] { close(fd) }
            if input != nil { close(inPipe[0]); close(inPipe[1]) }
            throw error
        }
        close(outPipe[1]); close(errPipe[1])
        if let input {
            close(inPipe[0])
            // A child that exits without reading all its input must not kill us with SIGPIPE:
            // block it in this thread for the write and drop one that became pending.
            var pipeOnly = sigset_t(), old = sigset_t()
            sigemptyset(&pipeOnly)
            sigaddset(&pipeOnly, SIGPIPE)
            pthread_sigmask(SIG_BLOCK, &pipeOnly, &old)
            let complete = input.withUnsafeBytes { FD.writeAll(inPipe[1], $0) }
            if !complete && errno == EPIPE {
                var zero = timespec()
                _ = sigtimedwait(&pipeOnly, nil, &zero)
            }
            pthread_sigmask(SIG_SETMASK, &old, nil)
            close(inPipe[1])
        }
        let (out, err) = FD.drainBoth(outPipe[0], errPipe[0])
        close(outPipe[0]); close(errPipe[0])
        let status = wait(pid)
        let result = Result(status: status, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
        if check && status != 0 {
            let why = result.stderr.split(separator: "\n").last(where: { !$0.isEmpty }).map(String.init) ?? "exit status \(status)"
            throw LumosError.failed("\(argv.prefix(3).joined(separator: " ")): \(why)")
        }
        return result
    }
}

/// Small helpers over raw file descriptors.
public enum FD {
    /// Writes every byte, retrying short writes and EINTR. Returns false on error.
    @discardableResult
    public static func writeAll(_ fd: Int32, _ buf: UnsafeRawBufferPointer) -> Bool {
        var off = 0
        while off < buf.count {
            let n = write(fd, buf.baseAddress! + off, buf.count - off)
            if n < 0 { if errno == EINTR { continue }; return false }
            off += n
        }
        return true
    }

    @discardableResult
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { writeAll(fd, $0) }
    }

    /// Reads until end of file.
    public static func readAll(_ fd: Int32) -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; break }
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return out
    }

    /// Reads two descriptors to end of file without deadlocking on a full pipe.
    public static func drainBoth(_ a: Int32, _ b: Int32) -> ([UInt8], [UInt8]) {
        var outs: [[UInt8]] = [[], []]
        var fds = [pollfd(fd: a, events: Int16(POLLIN), revents: 0), pollfd(fd: b, events: Int16(POLLIN), revents: 0)]
        var open = 2
        var buf = [UInt8](repeating: 0, count: 65536)
        while open > 0 {
            if poll(&fds, 2, -1) < 0 { if errno == EINTR { continue }; break }
            for i in 0..<2 where fds[i].fd >= 0 && fds[i].revents != 0 {
                let n = buf.withUnsafeMutableBytes { read(fds[i].fd, $0.baseAddress, $0.count) }
                if n > 0 { outs[i].append(contentsOf: buf[0..<n]) } else if n == 0 || errno != EINTR { fds[i].fd = -1; open -= 1 }
            }
        }
        return (outs[0], outs[1])
    }

    /// Reads a whole small file (procfs, sysfs, config).
    public static func readFile(_ path: String) throws -> [UInt8] {
        let fd = try sys("open", path) { open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        return readAll(fd)
    }

    public static func readText(_ path: String) throws -> String {
        String(decoding: try readFile(path), as: UTF8.self)
    }
}
