import Glibc
import LumosCore

/// A running QEMU: started from a `VMDescription`, watched through QMP and its log, stopped by
/// the ACPI power button and killed (by its pid) when the guest does not go in time.
public final class QEMUProcess {
    public let description: VMDescription
    public let command: QEMUCommand
    public let pid: pid_t
    /// QEMU's own stdout and stderr ("KVM internal error" lands here too).
    public let logPath: String
    public private(set) var exitStatus: Int32?

    /// Spawns QEMU with the description's descriptors as fd 3, 4, ... The run directory is
    /// created 0700: its sockets are the VM's console and control.
    public init(_ vm: VMDescription) throws {
        command = try QEMUCommand.build(vm)
        description = vm
        // QEMU dups an fdset's descriptor only for the access mode it asks for: O_RDONLY for
        // a read-only disk, O_RDWR otherwise.
        for (i, disk) in vm.disks.enumerated() {
            let flags = fcntl(disk.descriptor, F_GETFL)
            if flags < 0 { throw LumosError.invalid("disks[\(i)]: descriptor \(disk.descriptor) is not open") }
            let mode = flags & O_ACCMODE
            if disk.readOnly && mode != O_RDONLY { throw LumosError.invalid("disks[\(i)] is read-only: open it O_RDONLY") }
            if !disk.readOnly && mode != O_RDWR { throw LumosError.invalid("disks[\(i)] is writable: open it O_RDWR") }
        }
        try Files.makeDirectories(vm.runDirectory, mode: 0o700)
        for stale in [vm.qmpSocket, vm.eventsSocket, vm.consoleSocket] { Files.remove(stale) }
        let logPath = "\(vm.runDirectory)/qemu.log"
        self.logPath = logPath
        let log = try sys("open", logPath) { open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
        defer { close(log) }
        pid = try Exec.spawn(command.argv, stdin: .null, stdout: .fd(log), stderr: .fd(log), passing: command.descriptors)
    }

    /// Reaps QEMU if it has exited; true while it runs.
    public var isRunning: Bool {
        if exitStatus != nil { return false }
        var status: Int32 = 0
        var r = waitpid(pid, &status, WNOHANG)
        while r < 0 && errno == EINTR { r = waitpid(pid, &status, WNOHANG) }
        if r == pid {
            exitStatus = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            return false
        }
        return r == 0
    }

    /// Waits up to `seconds` for QEMU to exit; returns whether it did.
    @discardableResult
    public func waitForExit(seconds: Double) -> Bool {
        let deadline = Monotonic.now + seconds
        while isRunning {
            if Monotonic.now >= deadline { return false }
            usleep(20_000)
        }
        return true
    }

    /// The QMP connection, made on first use and kept: QEMU serves one QMP client per socket
    /// at a time, so everything that talks to this VM shares it.
    public func qmp(timeout: Double = 10) throws -> QMPClient {
        if let client { return client }
        let c: QMPClient
        do {
            c = try QMPClient(socketPath: description.qmpSocket, timeout: timeout)
        } catch {
            // A QEMU that refused its command line has exited: its own message says why.
            if waitForExit(seconds: 1), let line = ((try? FD.readText(logPath)) ?? "").split(whereSeparator: \.isNewline).last {
                throw LumosError.failed("QEMU exited with status \(exitStatus ?? -1): \(line)")
            }
            throw error
        }
        client = c
        return c
    }

    private var client: QMPClient?

    /// vmadm stop: the ACPI power button, then SIGKILL after `timeout` seconds (at once when
    /// `force`). Returns how it ended.
    @discardableResult
    public func stop(timeout: Double, force: Bool = false) -> StopOutcome {
        if !isRunning { return .alreadyExited }
        if !force, let q = try? qmp(timeout: min(timeout, 5)), (try? q.powerdown()) != nil, waitForExit(seconds: timeout) {
            return .poweredOff
        }
        kill()
        return .killed
    }

    /// SIGKILL by pid and reap.
    public func kill() {
        if !isRunning { return }
        _ = Glibc.kill(pid, SIGKILL)
        waitForExit(seconds: 10)
    }

    /// Why the VM is not healthy, from QEMU's log, its exit or QMP's run state; nil when it is.
    public func failure() -> String? {
        let log = (try? FD.readText(logPath)) ?? ""
        if !isRunning { return Self.failure(log: log, exitStatus: exitStatus, state: nil) }
        guard let q = try? qmp(timeout: 5), let state = try? q.status() else {
            client = nil
            return Self.failure(log: log, exitStatus: nil, state: nil) ?? "QMP does not answer"
        }
        return Self.failure(log: log, exitStatus: nil, state: state)
    }

    /// The verdict from what was observed: a "KVM internal error" line in QEMU's log wins (QEMU
    /// prints it, then sits paused in `internal-error`), then an exit, then the run state.
    public static func failure(log: String, exitStatus: Int32?, state: RunState?) -> String? {
        if let line = log.split(whereSeparator: \.isNewline).first(where: { $0.contains("KVM internal error") }) {
            return "QEMU: \(line)"
        }
        if let exitStatus { return "QEMU exited with status \(exitStatus)" }
        return state?.failure
    }

    public enum StopOutcome: Sendable, Equatable { case poweredOff, killed, alreadyExited }

    deinit { kill() }
}
