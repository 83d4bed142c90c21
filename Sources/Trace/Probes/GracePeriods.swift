import Glibc
import LumosCore

/// Expedited RCU grace periods while this process registers uprobes (docs/trace.md, "USDT
/// start-up"). Opening a uprobe's perf event registers it, and the registration waits for a
/// normal RCU grace period (5-11 ms here, two thirds of a USDT start-up). With
/// /sys/kernel/rcu_expedited set the kernel expedites that wait (synchronize_rcu becomes
/// synchronize_rcu_expedited), and a start-up takes 6 ms instead of 15.
///
/// The knob is the host's, so this sets it only for the window in which uprobes are being
/// registered, and only when it is ours to set:
/// - not when rcu_expedited is already non-zero or rcu_normal is non-zero (an operator who
///   set either keeps it: rcu_normal is how a real-time host refuses expedited grace periods);
/// - not when LUMOS_TRACE_RCU_EXPEDITE=0;
/// - not when another run holds the window (`rcu-expedited.lock`, flock, never waited for:
///   that run's window is expedited already).
/// Before it writes 1 it writes the value to restore to `rcu-expedited.restore` beside the
/// lock. A run killed in its window leaves that file; the next run (any `dtrace`, through
/// `recoverIfLeft`) restores the value, so a crash leaves the host expedited only until then.
/// Holds nest: the knob is set by the first and restored by the last.
///
/// Public API:
///   ExpeditedGracePeriods.shared             -- the host's knobs, /run/lumos/trace
///   ExpeditedGracePeriods(knob:normal:directory:enabled:)
///   .hold() -> Hold                          -- expedited until the Hold is released/freed
///   .during { ... }                          -- expedited for the body
///   .recoverIfLeft()                         -- restores what a killed run left
public final class ExpeditedGracePeriods: @unchecked Sendable {
    public static let shared = ExpeditedGracePeriods(
        knob: "/sys/kernel/rcu_expedited", normal: "/sys/kernel/rcu_normal", directory: "/run/lumos/trace",
        enabled: getenv("LUMOS_TRACE_RCU_EXPEDITE").map { String(cString: $0) != "0" } ?? true)

    let knob: String
    let normal: String
    let directory: String
    let enabled: Bool
    var lockPath: String { directory + "/rcu-expedited.lock" }
    var restorePath: String { directory + "/rcu-expedited.restore" }

    private let mutex = PthreadMutex()
    private var holders = 0
    /// The lock's fd while this process has set the knob; -1 otherwise.
    private var lockFD: Int32 = -1
    /// The knob's value before this process set it.
    private var previous = 0

    public init(knob: String, normal: String, directory: String, enabled: Bool = true) {
        self.knob = knob
        self.normal = normal
        self.directory = directory
        self.enabled = enabled
    }

    /// Expedited until `release()` or the end of the value.
    public final class Hold: @unchecked Sendable {
        private var owner: ExpeditedGracePeriods?
        init(_ owner: ExpeditedGracePeriods) { self.owner = owner; owner.enter() }
        public func release() { owner?.leave(); owner = nil }
        deinit { release() }
    }

    public func hold() -> Hold { Hold(self) }

    public func during<T>(_ body: () throws -> T) rethrows -> T {
        let h = hold()
        defer { h.release() }
        return try body()
    }

    /// Whether this process has the knob set now (for tests).
    var isSetByThisProcess: Bool { mutex.locked { lockFD >= 0 } }

    func enter() {
        mutex.locked {
            holders += 1
            if holders == 1 { begin() }
        }
    }

    func leave() {
        mutex.locked {
            holders -= 1
            if holders == 0 { end() }
        }
    }

    /// Restores the knob from a restore file a killed run left. Cheap when there is none.
    public func recoverIfLeft() {
        guard access(restorePath, F_OK) == 0 else { return }
        mutex.locked {
            guard lockFD < 0, let fd = lockNow() else { return }
            recover()
            close(fd)
        }
    }

    private func begin() {
        guard enabled, let fd = lockNow() else { return }
        recover()
        guard Self.value(normal) ?? 0 == 0, let previous = Self.value(knob), previous == 0,
              write(restorePath, "\(previous)\n"), write(knob, "1") else {
            unlink(restorePath)
            close(fd)
            return
        }
        self.previous = previous
        lockFD = fd
    }

    private func end() {
        guard lockFD >= 0 else { return }
        // Restored before the record of what to restore is removed: a kill between the two
        // leaves a restore file whose value is already in place.
        _ = write(knob, "\(previous)")
        unlink(restorePath)
        close(lockFD)
        lockFD = -1
    }

    /// The lock, if nobody holds it (EWOULDBLOCK: another run's window is open).
    private func lockNow() -> Int32? {
        guard (try? Files.makeDirectories(directory, mode: 0o700)) != nil else { return nil }
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { return nil }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if errno == EINTR { continue }
            close(fd)
            return nil
        }
        return fd
    }

    /// With the lock held: a restore file is a killed run's (a live one holds the lock).
    private func recover() {
        guard let v = Self.value(restorePath) else {
            unlink(restorePath)   // unreadable or malformed: nothing to restore from it
            return
        }
        if write(knob, "\(v)") { unlink(restorePath) }
    }

    /// A small non-negative integer from a sysfs-style file, nil when missing or malformed.
    static func value(_ path: String) -> Int? {
        guard let t = TextFile.trimmed(path), !t.isEmpty, t.utf8.count <= 9,
              t.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(t)
    }

    /// Writes a knob (which exists) or the restore file (which is made).
    private func write(_ path: String, _ text: String) -> Bool {
        let flags = path == restorePath ? O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW : O_WRONLY | O_CLOEXEC
        let fd = open(path, flags, 0o600)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return FD.writeAll(fd, Array(text.utf8))
    }
}
