import CLinux
import Glibc
import LumosCore

/// A VM's serial console relay: `lumos-init --console-relay` (Sources/lumos-init/main.c) run on
/// the host, QEMU's only console client (docs/vm.md, "Console").
///
/// QEMU stalls the guest's serial output while a client of its console socket does not read,
/// and its `logfile=` has no cap. The relay always reads QEMU's socket, keeps the log capped
/// like a zone's (`path` up to `maxBytes`, then `path.0`), and serves `vmadm console`
/// (`ConsoleClient`) on `listenSocket` without ever waiting for it. Give QEMU no log of its
/// own (`VMDescription.consoleLog = false`) when the relay keeps it.
///
/// vmadm, for a QEMU that is PID 1 of its zone (its sockets in the zone's /run/vm):
///
///     let relay = ConsoleRelay.forZone(qemuPid: pid, stateDirectory: vmStateDir)
///     let relayPid = try runtime.cgroup(uuid).withThreadInZone { try relay.spawn(initBinary: runtime.initBinary, cgroupFD: $0) }
///     try relay.waitUntilListening(pid: relayPid)
///
/// Born in the zone's cgroups like the zone console logger (ZoneRuntime.startConsoleLogger),
/// so its memory is the VM's and cgroup.kill ends it; by itself it exits when QEMU does. The
/// caller reaps it (waitpid) or leaves it to whoever reaps the zone's processes.
public struct ConsoleRelay: Sendable, Equatable {
    /// QEMU's console socket as the host reaches it.
    public var qemuSocket: String
    /// Where `vmadm console` attaches: a unix socket the relay creates 0600.
    public var listenSocket: String
    /// The guest's console output; rotated to `logPath.0` at `maxBytes`.
    public var logPath: String
    public var maxBytes: UInt64
    /// QEMU's event monitor, and where the relay writes how QEMU ended (nil: not watched).
    public var eventsSocket: String?
    public var exitFile: String?

    /// As a zone's console (ZoneSpec's ConsoleLog): 5 MiB, so at most 10 MiB on disk.
    public static let defaultMaxBytes: UInt64 = 5 << 20
    /// The line a second client gets before the relay closes it (one client at a time).
    public static let inUseMessage = "lumos: console in use by another client"

    public init(qemuSocket: String, listenSocket: String, logPath: String, maxBytes: UInt64 = ConsoleRelay.defaultMaxBytes) {
        self.qemuSocket = qemuSocket; self.listenSocket = listenSocket; self.logPath = logPath; self.maxBytes = maxBytes
    }

    /// QEMU as PID 1 of its zone keeps its console socket at /run/vm/console.sock inside the
    /// zone; the host reaches it through /proc/PID/root. The relay's socket and the log go in
    /// the VM's state directory on the host (`console.sock`, `console.log`).
    public static func forZone(qemuPid: pid_t, stateDirectory: String, maxBytes: UInt64 = ConsoleRelay.defaultMaxBytes) -> ConsoleRelay {
        var relay = ConsoleRelay(qemuSocket: QEMUJail.hostSocket(qemuPid: qemuPid, "console.sock"), listenSocket: "\(stateDirectory)/console.sock",
                                 logPath: "\(stateDirectory)/console.log", maxBytes: maxBytes)
        relay.eventsSocket = QEMUJail.hostSocket(qemuPid: qemuPid, "events.sock")
        relay.exitFile = exitFile(stateDirectory: stateDirectory)
        return relay
    }

    /// Where a zone's relay says how its QEMU ended: one word, QEMU's SHUTDOWN reason
    /// (guest-shutdown, guest-panic, ...) or `crashed` (docs/vm.md, "How a VM ends").
    public static func exitFile(stateDirectory: String) -> String { "\(stateDirectory)/exit" }

    /// For a QEMU started directly (`QEMUProcess`, no zone): QEMU's socket in the run
    /// directory, the relay's beside it as `console-relay.sock`, the log at `consoleLogPath`.
    public static func forVM(_ vm: VMDescription, maxBytes: UInt64 = ConsoleRelay.defaultMaxBytes) -> ConsoleRelay {
        ConsoleRelay(qemuSocket: vm.consoleSocket, listenSocket: "\(vm.runDirectory)/console-relay.sock",
                     logPath: vm.consoleLogPath, maxBytes: maxBytes)
    }

    /// lumos-init's argv for this relay.
    public func arguments(initBinary: String) -> [String] {
        [initBinary, "--console-relay", qemuSocket, listenSocket, logPath, String(maxBytes)]
            + (eventsSocket.flatMap { s in exitFile.map { [s, $0] } } ?? [])
    }

    /// One-line errors for what the relay would refuse.
    public func validate() throws {
        // The relay binds `listenSocket` + ".new" and renames it into place.
        for (what, path, limit) in [("QEMU console socket", qemuSocket, QEMUCommand.maxSocketPath), ("console socket", listenSocket, QEMUCommand.maxSocketPath - 4)]
        where path.utf8.count > limit {
            throw LumosError.invalid("\(what) \(path) is too long for a unix socket path (\(path.utf8.count) > \(limit) bytes); use a shorter directory")
        }
        if maxBytes < 1 { throw LumosError.invalid("console log cap \(maxBytes): give at least 1 byte") }
        if logPath.isEmpty || listenSocket.isEmpty || qemuSocket.isEmpty { throw LumosError.invalid("console relay: empty path") }
    }

    /// Starts the relay: cloned into the cgroup v2 directory `cgroupFD` (from
    /// `ZoneCgroup.withThreadInZone`, which also puts the calling thread, and so the child, in
    /// the zone's v1 cgroups) or, with -1, wherever the caller runs. stdin and stdout/stderr are
    /// /dev/null and no other descriptor reaches it. Returns its pid without waiting; see
    /// `waitUntilListening`. A stale socket at `listenSocket` is removed first.
    public func spawn(initBinary: String, cgroupFD: Int32 = -1) throws -> pid_t {
        try validate()
        try Files.makeDirectories(Files.parent(listenSocket), mode: 0o700)
        try Files.makeDirectories(Files.parent(logPath), mode: 0o700)
        Files.remove(listenSocket)
        let null = try sys("open", "/dev/null") { open("/dev/null", O_RDONLY | O_CLOEXEC) }
        defer { close(null) }
        let argv = arguments(initBinary: initBinary).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = [nil]
        defer { for p in argv { free(p) } }
        var e: Int32 = 0
        let pid: pid_t = argv.withUnsafeBufferPointer { a in
            envp.withUnsafeBufferPointer { en in
                var cfg = clinux_exec_config(path: UnsafePointer(a[0]), argv: a.baseAddress, envp: en.baseAddress, stdin_fd: null)
                let pid = clinux_spawn_in_cgroup(&cfg, cgroupFD)
                e = errno
                return pid
            }
        }
        if pid < 0 { throw Errno(e, "clone", "console relay") }
        return pid
    }

    /// Waits until the relay listens (it connects to QEMU first, retrying for 10 s). Throws if
    /// it exited first (reaping it) or is still not listening after `timeout` seconds.
    public func waitUntilListening(pid: pid_t, timeout: Double = 15) throws {
        let deadline = Monotonic.now + timeout
        while true {
            if Files.exists(listenSocket) { return }
            var status: Int32 = 0
            var r = waitpid(pid, &status, WNOHANG)
            while r < 0 && errno == EINTR { r = waitpid(pid, &status, WNOHANG) }
            if r == pid || (r < 0 && errno == ECHILD && kill(pid, 0) != 0) {
                let code = r == pid ? (status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)) : -1
                throw LumosError.failed("console relay for \(qemuSocket) exited (status \(code)) before listening on \(listenSocket); is QEMU running with its console there?")
            }
            if Monotonic.now >= deadline {
                throw LumosError.failed("console relay (pid \(pid)) is not listening on \(listenSocket) after \(timeout) s; QEMU's console \(qemuSocket) may not exist")
            }
            usleep(10_000)
        }
    }
}
