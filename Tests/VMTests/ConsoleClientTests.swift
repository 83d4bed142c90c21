import CLinux
import Foundation
import Glibc
import LumosCore
import Testing
@testable import VM

/// A listening unix socket standing in for QEMU's console: the relay connects to it.
final class FakeConsole {
    let path: String
    let listener: Int32
    private(set) var peer: Int32 = -1

    init(_ path: String) throws {
        self.path = path
        listener = try sys("socket") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes); $0[bytes.count] = 0 }
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        if rc != 0 || listen(listener, 1) != 0 { let e = errno; Glibc.close(listener); throw Errno(e, "bind", path) }
    }

    /// Takes the relay's connection.
    func accept() throws {
        var p = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 10_000) == 1 else { throw LumosError.failed("the relay did not connect to \(path)") }
        peer = Glibc.accept(listener, nil, nil)
    }

    func send(_ text: String) { _ = FD.writeAll(peer, Array(text.utf8)) }

    /// Reads until `text` has arrived (or `seconds` passed).
    func read(until text: String, seconds: Double = 10) -> String {
        var got = ""
        let deadline = Monotonic.now + seconds
        var buf = [UInt8](repeating: 0, count: 4096)
        while !got.contains(text) && Monotonic.now < deadline {
            var p = pollfd(fd: peer, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 100) != 1 { continue }
            let n = buf.withUnsafeMutableBytes { Glibc.read(peer, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            got += String(decoding: buf[0..<n], as: UTF8.self)
        }
        return got
    }

    /// QEMU exits: its end of the console closes.
    func close() {
        if peer >= 0 { Glibc.close(peer); peer = -1 }
        Glibc.close(listener)
        unlink(path)
    }
}

/// `ConsoleClient` on a real terminal (a pty) in front of a relay whose "QEMU" is a plain
/// socket: raw mode while attached, the terminal restored on each way out (escape, a busy
/// console, a signal), and the relay in a cgroup of the caller's choosing.
@Suite(.serialized, .enabled(if: hasLumosInit, "needs lumos-init (swift build)"))
struct ConsoleClientTests {
    final class Setup {
        let scratch: Scratch
        let fake: FakeConsole
        let relay: ConsoleRelay
        let relayPid: pid_t

        init(_ tag: String, cgroupFD: Int32 = -1) throws {
            let scratch = try Scratch(tag)
            var ok = false
            defer { if !ok { scratch.remove() } }
            let fake = try FakeConsole("\(scratch.path)/qemu-console.sock")
            defer { if !ok { fake.close() } }
            let relay = ConsoleRelay(qemuSocket: fake.path, listenSocket: "\(scratch.path)/console.sock", logPath: "\(scratch.path)/console.log", maxBytes: 1 << 16)
            let pid = try relay.spawn(initBinary: lumosInit, cgroupFD: cgroupFD)
            defer { if !ok { _ = kill(pid, SIGKILL); _ = Exec.wait(pid) } }
            try fake.accept()
            try relay.waitUntilListening(pid: pid)
            (self.scratch, self.fake, self.relay, self.relayPid) = (scratch, fake, relay, pid)
            ok = true
        }

        /// QEMU "exits"; the relay must follow. Returns its exit status (nil: it had to be killed).
        private var stopped: Int32??

        /// Idempotent: the relay is reaped once, and never signalled after that.
        @discardableResult
        func stop() -> Int32? {
            if let stopped { return stopped }
            fake.close()
            let deadline = Monotonic.now + 10
            var status: Int32 = 0
            var code: Int32?
            while Monotonic.now < deadline {
                if waitpid(relayPid, &status, WNOHANG) == relayPid { code = (status >> 8) & 0xff; break }
                usleep(20_000)
            }
            if code == nil { _ = kill(relayPid, SIGKILL); _ = Exec.wait(relayPid) }
            scratch.remove()
            stopped = .some(code)
            return code
        }
    }

    /// A pty pair: the test types on the master, the client has the slave as its terminal.
    final class PTY {
        let master: Int32
        let slave: Int32

        init() throws {
            let m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
            if m < 0 { throw Errno(errno, "open", "/dev/ptmx") }
            var unlock: Int32 = 0
            // TIOCSPTLCK (_IOW('T', 0x31, int)) and TIOCGPTPEER (_IO('T', 0x41)): macros Swift does not import.
            let s = ioctl(m, 0x4004_5431, &unlock) == 0 ? ioctl(m, 0x5441, O_RDWR | O_NOCTTY | O_CLOEXEC) : -1
            if s < 0 { let e = errno; Glibc.close(m); throw Errno(e, "ioctl", "/dev/ptmx") }
            (master, slave) = (m, s)
        }

        var localFlags: tcflag_t { var t = termios(); _ = tcgetattr(slave, &t); return t.c_lflag }
        var isRaw: Bool { localFlags & tcflag_t(ICANON | ECHO | ISIG) == 0 }

        func waitRaw(_ raw: Bool, seconds: Double = 5) -> Bool {
            let deadline = Monotonic.now + seconds
            while isRaw != raw && Monotonic.now < deadline { usleep(5_000) }
            return isRaw == raw
        }

        func close() { Glibc.close(master); Glibc.close(slave) }
    }

    /// Runs attach on a thread; `ending` is set when it returns.
    final class Attached: @unchecked Sendable {
        private let lock = NSLock()
        private var value: Result<ConsoleClient.Ending, any Error>?
        private var threadID: pthread_t?

        init(socket: String, input: Int32, output: Int32, notices: Int32) {
            Thread { [self] in
                lock.lock(); threadID = pthread_self(); lock.unlock()
                let r = Result { try ConsoleClient.attach(socket: socket, input: input, output: output, notices: notices) }
                lock.lock(); value = r; lock.unlock()
            }.start()
        }

        var thread: pthread_t? { lock.lock(); defer { lock.unlock() }; return threadID }

        func wait(seconds: Double = 10) -> Result<ConsoleClient.Ending, any Error>? {
            let deadline = Monotonic.now + seconds
            while Monotonic.now < deadline {
                lock.lock(); let v = value; lock.unlock()
                if let v { return v }
                usleep(10_000)
            }
            return nil
        }
    }

    @Test func rawWhileAttachedAndRestoredOnEscape() throws {
        let s = try Setup("tty")
        defer { s.stop() }
        let pty = try PTY()
        defer { pty.close() }
        let before = pty.localFlags
        #expect(!pty.isRaw)
        let devNull = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { close(devNull) }
        let a = Attached(socket: s.relay.listenSocket, input: pty.slave, output: pty.slave, notices: devNull)
        #expect(pty.waitRaw(true))
        // Keys go to QEMU as typed (no line editing, Ctrl-C is a byte), and QEMU's output shows.
        _ = FD.writeAll(pty.master, Array("ls\u{03}".utf8))
        #expect(s.fake.read(until: "ls\u{03}").contains("ls\u{03}"))
        s.fake.send("guest says hi\r\n")
        var buf = [UInt8](repeating: 0, count: 256)
        var seen = ""
        let deadline = Monotonic.now + 5
        while !seen.contains("guest says hi") && Monotonic.now < deadline {
            var p = pollfd(fd: pty.master, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 100) == 1 {
                let n = buf.withUnsafeMutableBytes { read(pty.master, $0.baseAddress, $0.count) }
                if n > 0 { seen += String(decoding: buf[0..<n], as: UTF8.self) }
            }
        }
        #expect(seen.contains("guest says hi"))
        _ = FD.writeAll(pty.master, [0x1d])
        #expect(try a.wait()?.get() == .escape)
        #expect(pty.localFlags == before)
        // The relay still runs (the VM keeps its console) and the log has what QEMU sent.
        #expect(kill(s.relayPid, 0) == 0)
        #expect(((try? FD.readText(s.relay.logPath)) ?? "").contains("guest says hi"))
        #expect(s.stop() == 0)
    }

    @Test func terminalRestoredWhenTheConsoleIsBusyAndOnASignal() throws {
        let s = try Setup("busy")
        defer { s.stop() }
        let pty = try PTY()
        defer { pty.close() }
        let before = pty.localFlags
        let devNull = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { close(devNull) }
        var hold: [Int32] = [-1, -1]
        try sys("pipe2") { clinux_pipe2(&hold, O_CLOEXEC) }
        defer { close(hold[0]); if hold[1] >= 0 { close(hold[1]) } }
        let first = Attached(socket: s.relay.listenSocket, input: hold[0], output: devNull, notices: devNull)
        // The first client holds the console once the relay has it: its input reaches "QEMU".
        _ = FD.writeAll(hold[1], Array("x".utf8))
        #expect(s.fake.read(until: "x") == "x")
        let busy = #expect(throws: LumosError.self) { try ConsoleClient.attach(socket: s.relay.listenSocket, input: pty.slave, output: pty.slave, notices: devNull) }
        #expect(busy?.kind == .busy)
        #expect(pty.localFlags == before)
        close(hold[1]); hold[1] = -1
        #expect(try first.wait()?.get() == .inputClosed)

        // SIGTERM to the attached thread ends the session, terminal restored, process alive.
        let a = Attached(socket: s.relay.listenSocket, input: pty.slave, output: pty.slave, notices: devNull)
        #expect(pty.waitRaw(true))
        let thread = try #require(a.thread)
        #expect(pthread_kill(thread, SIGTERM) == 0)
        #expect(try a.wait()?.get() == .signal(SIGTERM))
        #expect(pty.localFlags == before)
    }

    /// vmadm starts the relay in the VM's cgroups (`ZoneCgroup.withThreadInZone` gives the v2
    /// descriptor): it is born there, and leaves the cgroup empty when QEMU's end closes.
    @Test(.enabled(if: isRoot, "needs root (a cgroup)"))
    func relayBornInACgroupExitsWithQEMU() throws {
        let mounts = try FD.readText("/proc/self/mountinfo").split(separator: "\n")
        let v2 = try #require(mounts.map { $0.split(separator: " ") }.first { l in l.firstIndex(of: "-").map { l.count > $0 + 1 && l[$0 + 1] == "cgroup2" } ?? false }).map(String.init)[4]
        let name = "lumos-vmt-relay-\(getpid())-\(String(UInt32.random(in: 0...0xffffff), radix: 16))"
        let dir = "\(v2)/\(name)"
        try sys("mkdir", dir) { mkdir(dir, 0o755) }
        defer { rmdir(dir) }
        let cg = try sys("open", dir) { open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { close(cg) }
        let s = try Setup("cg", cgroupFD: cg)
        let cgroups = (try? FD.readText("/proc/\(s.relayPid)/cgroup")) ?? ""
        #expect(cgroups.contains("0::/\(name)\n"), "relay cgroups:\n\(cgroups)")
        #expect(s.stop() == 0)
        #expect(((try? FD.readText("\(dir)/cgroup.procs")) ?? "x").isEmpty)
    }
}
