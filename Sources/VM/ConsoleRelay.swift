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
///     try relay.prepare()
///     let relayPid = try runtime.startService(uuid, relay.arguments(initBinary: runtime.initBinary), what: "console relay")
///     try relay.waitUntilListening(pid: relayPid)
///
/// Born in the zone's cgroups like the zone's other host services (`HostService`), so its
/// memory is the VM's and cgroup.kill ends it; by itself it exits when QEMU does. The caller
/// reaps it (waitpid) or leaves it to whoever reaps the zone's processes.
///
/// The same relay serves an lx zone's /dev/console (`forTerminal`, started by
/// `ZoneRuntime.start` for a spec with a `consoleSocket`), so `vmadm console` is one client
/// for both brands.
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
    /// An lx zone's console instead of QEMU's (`forTerminal`): the zone's init, whose exit ends
    /// the relay; the pseudo-terminal's master is the relay's stdin and `qemuSocket` is "-".
    public var initPid: pid_t?

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

    /// An lx zone's /dev/console (docs/vmadm.md, "Console"): the master of the pseudo-terminal
    /// the zone's first process made (`ZoneSpec.consoleSocket`) comes as the relay's stdin; the
    /// relay keeps the slave open itself and ends when `initPid` exits.
    public static func forTerminal(initPid: pid_t, listenSocket: String, logPath: String, maxBytes: UInt64 = ConsoleRelay.defaultMaxBytes) -> ConsoleRelay {
        var relay = ConsoleRelay(qemuSocket: "-", listenSocket: listenSocket, logPath: logPath, maxBytes: maxBytes)
        relay.initPid = initPid
        return relay
    }

    /// lumos-init's argv for this relay.
    public func arguments(initBinary: String) -> [String] {
        if let initPid { return [initBinary, "--console-relay", "-", listenSocket, logPath, String(maxBytes), String(initPid)] }
        return [initBinary, "--console-relay", qemuSocket, listenSocket, logPath, String(maxBytes)]
            + (eventsSocket.flatMap { s in exitFile.map { [s, $0] } } ?? [])
    }

    /// What the relay reads: QEMU's socket, or the zone's console.
    var source: String { initPid.map { "the console of the zone whose init is pid \($0)" } ?? qemuSocket }

    /// One-line errors for what the relay would refuse.
    public func validate() throws {
        // The relay binds `listenSocket` + ".new" and renames it into place.
        let paths = (initPid == nil ? [("QEMU console socket", qemuSocket, QEMUCommand.maxSocketPath)] : [])
            + [("console socket", listenSocket, QEMUCommand.maxSocketPath - 4)]
        for (what, path, limit) in paths where path.utf8.count > limit {
            throw LumosError.invalid("\(what) \(path) is too long for a unix socket path (\(path.utf8.count) > \(limit) bytes); use a shorter directory")
        }
        if maxBytes < 1 { throw LumosError.invalid("console log cap \(maxBytes): give at least 1 byte") }
        if logPath.isEmpty || listenSocket.isEmpty || qemuSocket.isEmpty { throw LumosError.invalid("console relay: empty path") }
    }

    /// Checks the relay's paths and makes its directories; a stale socket at `listenSocket` is
    /// removed. `spawn` does it first; a caller that starts the relay itself
    /// (`ZoneRuntime.startService`) calls it.
    public func prepare() throws {
        try validate()
        try Files.makeDirectories(Files.parent(listenSocket), mode: 0o700)
        try Files.makeDirectories(Files.parent(logPath), mode: 0o700)
        Files.remove(listenSocket)
    }

    /// Starts the relay (`HostService.spawn`: into the cgroup v2 directory `cgroupFD`, or with
    /// -1 wherever the caller runs), its stdin `stdin` (the console's master for `forTerminal`,
    /// otherwise /dev/null). Returns its pid without waiting; see `waitUntilListening`.
    public func spawn(initBinary: String, cgroupFD: Int32 = -1, stdin: Int32 = -1) throws -> pid_t {
        try prepare()
        return try HostService.spawn(arguments(initBinary: initBinary), stdin: stdin, cgroupFD: cgroupFD, what: "console relay")
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
                throw LumosError.failed("console relay for \(source) exited (status \(code)) before listening on \(listenSocket)\(initPid == nil ? "; is QEMU running with its console there?" : "")")
            }
            if Monotonic.now >= deadline {
                throw LumosError.failed("console relay (pid \(pid)) is not listening on \(listenSocket) after \(timeout) s\(initPid == nil ? "; QEMU's console \(qemuSocket) may not exist" : "")")
            }
            usleep(10_000)
        }
    }
}
