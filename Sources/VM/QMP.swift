import Glibc
import LumosCore

/// A QMP client over QEMU's unix socket (docs/vm.md, "QMP"): one JSON object per line each
/// way. On connect QEMU sends a greeting and accepts only `qmp_capabilities`; then every
/// command gets one `return` or `error` reply, and asynchronous `event` lines (STOP, SHUTDOWN,
/// POWERDOWN, ...) may come before it; they are kept in `events`.
public final class QMPClient {
    public let socketPath: String
    public let timeout: Double
    public private(set) var greeting: JSONValue
    public private(set) var events: [JSONValue] = []
    private var fd: Int32
    private var buffer: [UInt8] = []

    /// Connects (retrying until `timeout` while QEMU creates the socket) and negotiates.
    public init(socketPath: String, timeout: Double = 10) throws {
        self.socketPath = socketPath
        self.timeout = timeout
        self.greeting = .null
        let deadline = Monotonic.now + timeout
        var lastError: any Error = LumosError.failed("QMP \(socketPath): not connected")
        var connected: Int32 = -1
        repeat {
            do { connected = try Self.connect(socketPath); break } catch { lastError = error }
            usleep(20_000)
        } while Monotonic.now < deadline
        if connected < 0 { throw LumosError.failed("QMP \(socketPath): cannot connect (\(lastError)); is QEMU running?") }
        fd = connected
        greeting = try readMessage(until: deadline)
        // From `fd = connected` on, a throw runs deinit, which closes fd (once).
        guard greeting.objectValue?["QMP"] != nil else {
            throw LumosError.failed("QMP \(socketPath): unexpected greeting \(greeting)")
        }
        _ = try execute("qmp_capabilities")
    }

    deinit { close(fd) }

    /// Runs a command and returns its `return` value; a QMP `error` reply throws with QEMU's
    /// class and description.
    @discardableResult
    public func execute(_ command: String, arguments: [String: JSONValue]? = nil) throws -> JSONValue {
        var request: [String: JSONValue] = ["execute": .string(command)]
        if let arguments { request["arguments"] = .object(arguments) }
        let line = JSONValue.object(request).serialized(pretty: false) + "\n"
        if !FD.writeAll(fd, Array(line.utf8)) { throw Errno(errno, "write", socketPath) }
        let deadline = Monotonic.now + timeout
        while true {
            let m = try readMessage(until: deadline)
            guard let o = m.objectValue else { continue }
            if o["event"] != nil { events.append(m); continue }
            if let r = o["return"] { return r }
            if let e = o["error"]?.objectValue {
                let cls = e["class"]?.stringValue ?? "Error"
                let desc = e["desc"]?.stringValue ?? "\(m)"
                throw LumosError.failed("QMP \(command): \(cls): \(desc)")
            }
        }
    }

    /// `query-status`: the run state QEMU reports.
    public func status() throws -> RunState {
        let r = try execute("query-status")
        guard let s = r.lookup("status")?.stringValue else { throw LumosError.failed("QMP query-status: no status in \(r)") }
        return RunState(status: s, running: r.lookup("running")?.boolValue ?? false)
    }

    /// Presses the ACPI power button; the guest decides whether to power off.
    public func powerdown() throws { try execute("system_powerdown") }

    /// Ends QEMU at once. QEMU may close the socket before it answers; that counts as done.
    public func quit() throws {
        do {
            try execute("quit")
        } catch let e as LumosError where e.message.contains("closed") {
        } catch let e as Errno where e.code == ECONNRESET {
        }
    }

    /// Waits for an event by name (already seen, or read within `seconds`).
    public func waitForEvent(_ name: String, seconds: Double) throws -> JSONValue? {
        if let e = events.first(where: { $0.lookup("event")?.stringValue == name }) { return e }
        let deadline = Monotonic.now + seconds
        while Monotonic.now < deadline {
            guard let m = try? readMessage(until: deadline) else { return nil }
            if m.objectValue?["event"] != nil {
                events.append(m)
                if m.lookup("event")?.stringValue == name { return m }
            }
        }
        return nil
    }

    private func readMessage(until deadline: Double) throws -> JSONValue {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if let nl = buffer.firstIndex(of: 0x0A) {
                let line = Array(buffer[..<nl])
                buffer.removeSubrange(...nl)
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x0D }) { continue }
                return try JSONValue.parse(line, what: "QMP reply from \(socketPath)")
            }
            let left = deadline - Monotonic.now
            if left <= 0 { throw LumosError.failed("QMP \(socketPath): no reply within \(timeout) s; QEMU may be hung") }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = poll(&p, 1, Int32(max(1, left * 1000)))
            if r < 0 { if errno == EINTR { continue }; throw Errno(errno, "poll", socketPath) }
            if r == 0 { continue }
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw Errno(errno, "read", socketPath) }
            if n == 0 { throw LumosError.failed("QMP \(socketPath): connection closed by QEMU") }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }

    static func connect(_ path: String) throws -> Int32 { try UnixSocket.connect(path) }
}

/// QEMU's run state (qapi RunState) and what it means for the VM's owner.
public struct RunState: Sendable, Equatable {
    public var status: String
    public var running: Bool

    public init(status: String, running: Bool) { self.status = status; self.running = running }

    /// Why the VM has failed, or nil when it is healthy or stopped on purpose. A guest QEMU
    /// stopped on "KVM internal error" sits in `internal-error` forever instead of exiting
    /// (docs/vm.md): its owner must see that as a failure and kill it.
    public var failure: String? {
        switch status {
        case "internal-error": return "QEMU stopped the guest on a KVM internal error (emulation failure); kill it and run it under TCG (LUMOS_VM_ACCEL=tcg)"
        case "guest-panicked": return "the guest kernel panicked"
        case "io-error": return "the guest stopped on a disk I/O error"
        default: return nil
        }
    }

    /// Paused by something other than a failure (a `stop` command, migration, a debugger).
    public var isPaused: Bool { ["paused", "suspended", "debug"].contains(status) }
}
