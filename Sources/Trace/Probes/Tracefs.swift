import CLinux
import Glibc
import LumosCore

/// The kernel's tracefs: the list of tracepoints, their ids (what perf_event_open's
/// PERF_TYPE_TRACEPOINT config takes) and their record formats.
///
/// Public API:
///   Tracefs.locate(mountIfNeeded:) throws -> Tracefs   -- from /proc/mounts; mounts
///       tracefs at /sys/kernel/tracing when absent (it is not mounted by default)
///   Tracefs(root:)                                      -- a known directory (tests)
///   .categories() -> [String]
///   .events(in:) -> [String]
///   .allEvents() -> [TracepointName]                    -- every "category:name"
///   .exists(_:) -> Bool
///   .id(of:) throws -> UInt32
///   .format(of:) throws -> TracepointFormat
public struct TracepointName: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var category: String
    public var name: String

    public init(category: String, name: String) {
        self.category = category
        self.name = name
    }

    /// "sched:sched_switch" or "sched/sched_switch".
    public init?(_ text: String) {
        let parts = text.split(whereSeparator: { $0 == ":" || $0 == "/" }).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
        self.init(category: parts[0], name: parts[1])
    }

    public var description: String { "\(category):\(name)" }

    public static func < (a: TracepointName, b: TracepointName) -> Bool {
        (a.category, a.name) < (b.category, b.name)
    }
}

public struct Tracefs: Sendable {
    public static let defaultMountPoint = "/sys/kernel/tracing"
    public let root: String

    public init(root: String) { self.root = root }

    /// Finds tracefs in /proc/mounts (or debugfs's tracing directory); mounts it at
    /// /sys/kernel/tracing when nothing is mounted and `mountIfNeeded` is set.
    public static func locate(mountIfNeeded: Bool = true, mounts given: MountTable? = nil) throws -> Tracefs {
        // The usual place first: one statfs(2) instead of reading and parsing /proc/mounts.
        if given == nil, isTracefs(defaultMountPoint) { return Tracefs(root: defaultMountPoint) }
        let mounts = given ?? .read()
        if let p = mounts.mountPoint(ofType: "tracefs") { return Tracefs(root: p) }
        if let d = mounts.mountPoint(ofType: "debugfs"), Files.exists(d + "/tracing/events") {
            return Tracefs(root: d + "/tracing")
        }
        guard mountIfNeeded else {
            throw LumosError.notFound("tracefs is not mounted; mount it with: mount -t tracefs nodev \(defaultMountPoint)")
        }
        if mount("nodev", defaultMountPoint, "tracefs", 0, nil) != 0 && errno != EBUSY {
            let e = errno
            throw LumosError(.permission, "cannot mount tracefs at \(defaultMountPoint): \(String(cString: strerror(e))); run as root or mount it with: mount -t tracefs nodev \(defaultMountPoint)", errno: e)
        }
        return Tracefs(root: defaultMountPoint)
    }

    /// TRACEFS_MAGIC from linux/magic.h.
    static func isTracefs(_ path: String) -> Bool {
        var st = statfs()
        return statfs(path, &st) == 0 && UInt64(bitPattern: Int64(st.f_type)) == 0x7472_6163
    }

    var eventsDirectory: String { root + "/events" }

    public func categories() -> [String] {
        Files.list(eventsDirectory).filter { Files.isDirectory(eventsDirectory + "/" + $0) }
    }

    public func events(in category: String) -> [String] {
        let dir = eventsDirectory + "/" + category
        return Files.list(dir).filter { Files.isDirectory(dir + "/" + $0) }
    }

    /// Every tracepoint, read from available_events (one file instead of a directory walk).
    public func allEvents() -> [TracepointName] {
        if let text = TextFile.read(root + "/available_events") {
            return text.split(separator: "\n").compactMap { TracepointName(String($0)) }.sorted()
        }
        return categories().flatMap { c in events(in: c).map { TracepointName(category: c, name: $0) } }
    }

    public func exists(_ tp: TracepointName) -> Bool {
        Files.exists("\(eventsDirectory)/\(tp.category)/\(tp.name)/id")
    }

    public func id(of tp: TracepointName) throws -> UInt32 {
        let path = "\(eventsDirectory)/\(tp.category)/\(tp.name)/id"
        guard let text = TextFile.trimmed(path), let id = UInt32(text) else {
            throw LumosError.notFound("tracepoint \(tp) does not exist (no \(path)); list tracepoints with dtrace -l")
        }
        return id
    }

    public func format(of tp: TracepointName) throws -> TracepointFormat {
        let path = "\(eventsDirectory)/\(tp.category)/\(tp.name)/format"
        guard let text = TextFile.read(path) else {
            throw LumosError.notFound("tracepoint \(tp) does not exist (no \(path)); list tracepoints with dtrace -l")
        }
        return try TracepointFormat.parse(text)
    }
}
