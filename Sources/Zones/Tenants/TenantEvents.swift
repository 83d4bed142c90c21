import Foundation
import Glibc
import LumosCore

/// One line of `vmadm events` (docs/vmadm.md "Events"): a tenant was created, changed state,
/// was modified or deleted. `changes` holds what changed (the state, or the properties an
/// update set), each with its old and new value.
public struct TenantEvent: Sendable, Equatable {
    public struct Change: Sendable, Equatable {
        public var path: String
        public var oldValue: JSONValue?
        public var newValue: JSONValue?

        public init(_ path: String, _ oldValue: JSONValue?, _ newValue: JSONValue?) {
            self.path = path
            self.oldValue = oldValue
            self.newValue = newValue
        }
    }

    public var timestamp: String
    public var uuid: String
    public var alias: String?
    public var zonename: String
    public var brand: String
    /// create, modify or delete (as SmartOS's vminfod events); `ready` only in a stream.
    public var type: String
    /// The tenant's state after the event (running, stopped); none after a delete.
    public var state: String?
    public var changes: [Change]
    /// `vmadm` when a vmadm command (CLI or daemon) made the change, `observed` when a watcher
    /// saw it happen by itself (an init that exited, a guest that powered off, vmadm kill).
    public var source: String

    public init(type: String, _ m: Manifest, state: String?, changes: [Change] = [], source: String = "vmadm") {
        timestamp = TenantStore.timestamp()
        uuid = m.uuid
        alias = m.alias
        zonename = m["zonename"]?.stringValue ?? m.uuid
        brand = m.brand
        self.type = type
        self.state = state
        self.changes = changes
        self.source = source
    }

    /// The first line of a stream opened with ready (`vmadm events -r`): nothing after it is missed.
    public static func ready() -> TenantEvent {
        var e = TenantEvent(type: "ready", Manifest([:]), state: nil, source: "stream")
        e.zonename = ""
        return e
    }

    /// The state change `old` → `new`.
    public static func stateChange(_ m: Manifest, from old: String, to new: String, source: String = "vmadm") -> TenantEvent {
        TenantEvent(type: "modify", m, state: new, changes: [Change("state", .string(old), .string(new))], source: source)
    }

    public var json: JSONValue {
        if type == "ready" { return ["type": "ready", "timestamp": .string(timestamp)] }
        var o: [String: JSONValue] = ["timestamp": .string(timestamp), "uuid": .string(uuid), "zonename": .string(zonename),
                                      "brand": .string(brand), "type": .string(type), "source": .string(source)]
        if let alias { o["alias"] = .string(alias) }
        if let state { o["state"] = .string(state) }
        o["changes"] = .array(changes.map { c in
            var d: [String: JSONValue] = ["path": .string(c.path)]
            if let v = c.oldValue { d["oldValue"] = v }
            if let v = c.newValue { d["newValue"] = v }
            return .object(d)
        })
        return .object(o)
    }

    public init?(json: JSONValue) {
        guard let o = json.objectValue, let uuid = o["uuid"]?.stringValue, let type = o["type"]?.stringValue,
              let timestamp = o["timestamp"]?.stringValue else { return nil }
        self.timestamp = timestamp
        self.uuid = uuid
        self.type = type
        alias = o["alias"]?.stringValue
        zonename = o["zonename"]?.stringValue ?? uuid
        brand = o["brand"]?.stringValue ?? ""
        state = o["state"]?.stringValue
        source = o["source"]?.stringValue ?? "vmadm"
        changes = (o["changes"]?.arrayValue ?? []).compactMap { c in
            guard let d = c.objectValue, let path = d["path"]?.stringValue else { return nil }
            return Change(path, d["oldValue"], d["newValue"])
        }
    }

    /// The human form: `[TIME] UUID8 (alias) modify: state running -> stopped`.
    public var line: String {
        if type == "ready" { return "[\(timestamp)] ready" }
        var s = "[\(timestamp)] \(uuid.prefix(8))"
        if let alias { s += " (\(alias))" }
        s += " \(type)"
        let parts = changes.map { c -> String in
            switch (c.oldValue, c.newValue) {
            case (let o?, let n?): return "\(c.path) \(o.plainText) -> \(n.plainText)"
            case (nil, let n?): return "\(c.path) \(n.plainText)"
            case (let o?, nil): return "\(c.path) \(o.plainText) -> (removed)"
            default: return c.path
            }
        }
        if !parts.isEmpty { s += ": " + parts.joined(separator: ", ") } else if type == "create", let state { s += ": state \(state)" }
        if source != "vmadm" { s += " (\(source))" }
        return s
    }
}

/// The host's append-only journal of tenant events, `ROOT/zones/.events/events.ndjson`
/// (docs/vmadm.md "Events"): every vmadm mutation, from the CLI or from vmadmd (the same calls
/// in Vmadm), appends one JSON line while it holds the tenant's lock; `vmadm events` and the
/// daemon's `GET /events` tail it. No process keeps events only in memory, so the CLI without
/// the daemon sees exactly what the daemon's clients see. At 4 MiB the file is renamed to
/// `events.ndjson.0` (one generation kept) and a new one begun.
public struct TenantEventLog: Sendable {
    public let directory: String
    public var path: String { directory + "/events.ndjson" }
    var previousPath: String { path + ".0" }
    var lockPath: String { directory + "/events.lock" }
    /// Past this size the file is rotated (4 MiB; tests give less).
    public let maxBytes: Int

    public init(root: StateRoot, maxBytes: Int = 4 << 20) {
        directory = root.sub("zones", ".events")
        self.maxBytes = maxBytes
    }

    /// Appends `event` as one line (one write(2) on an O_APPEND descriptor, under the log's
    /// lock so a rotation never splits it).
    public func append(_ event: TenantEvent) throws {
        try Files.makeDirectories(directory)
        let lock = try FileLock(lockPath)
        defer { withExtendedLifetime(lock) {} }
        var st = stat()
        if stat(path, &st) == 0, st.st_size >= maxBytes { try sys("rename", path) { rename(path, previousPath) } }
        let fd = try sys("open", path) { open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644) }
        defer { close(fd) }
        guard FD.writeAll(fd, Array((event.json.serialized(pretty: false) + "\n").utf8)) else { throw Errno(errno, "write", path) }
    }

    /// Every event still kept, oldest first.
    public func history() -> [TenantEvent] {
        [previousPath, path].flatMap { p -> [TenantEvent] in
            guard let bytes = try? FD.readFile(p) else { return [] }
            return Self.parse(bytes[...]).events
        }
    }

    /// Each tenant's state as the last event that names one says.
    public func lastStates() -> [String: String] {
        var states: [String: String] = [:]
        for e in history() {
            if e.type == "delete" { states[e.uuid] = nil } else if let s = e.state { states[e.uuid] = s }
        }
        return states
    }

    /// Complete lines of `bytes` as events (lines that are not events are skipped), and how
    /// many bytes they took (a partial last line is left for the next read).
    static func parse(_ bytes: ArraySlice<UInt8>) -> (events: [TenantEvent], used: Int) {
        var events: [TenantEvent] = []
        var start = bytes.startIndex
        while let nl = bytes[start...].firstIndex(of: 0x0a) {
            if let v = try? JSONValue.parse(Array(bytes[start..<nl]), what: "events"), let e = TenantEvent(json: v) { events.append(e) }
            start = nl + 1
        }
        return (events, start - bytes.startIndex)
    }

    /// A reader of the events appended from now on (or, with `fromStart`, of every event kept).
    public func tail(fromStart: Bool = false) -> TenantEventTail { TenantEventTail(log: self, fromStart: fromStart) }
}

/// Follows the event journal as `tail -F` does: reads what was appended, and goes on in the
/// new file after a rotation (the old one read to its end first).
public final class TenantEventTail: @unchecked Sendable {
    let log: TenantEventLog
    private var fd: Int32 = -1
    private var inode: ino_t = 0
    private var pending: [UInt8] = []
    private var history: [TenantEvent] = []
    private var notify: Int32 = -1

    init(log: TenantEventLog, fromStart: Bool) {
        self.log = log
        try? Files.makeDirectories(log.directory)
        notify = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        if notify >= 0 { inotify_add_watch(notify, log.directory, UInt32(IN_MODIFY | IN_CREATE | IN_MOVED_TO)) }
        if fromStart {
            if let bytes = try? FD.readFile(log.previousPath) { history = TenantEventLog.parse(bytes[...]).events }
            reopen(atEnd: false)
        } else {
            reopen(atEnd: true)
        }
    }

    deinit {
        if fd >= 0 { close(fd) }
        if notify >= 0 { close(notify) }
    }

    private func reopen(atEnd: Bool) {
        if fd >= 0 { close(fd); fd = -1 }
        pending = []
        fd = open(log.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        var st = stat()
        fstat(fd, &st)
        inode = st.st_ino
        if atEnd { lseek(fd, 0, SEEK_END) }
    }

    private func drain() -> [TenantEvent] {
        guard fd >= 0 else { return [] }
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            pending += buf[0..<n]
        }
        let (events, used) = TenantEventLog.parse(pending[...])
        pending.removeFirst(used)
        return events
    }

    /// The events appended since the last call (never blocks).
    public func next() -> [TenantEvent] {
        var out = history
        history = []
        out += drain()
        // Rotated (or created since): finish the old file, then read the new one from its start.
        var st = stat()
        if stat(log.path, &st) == 0, fd < 0 || st.st_ino != inode {
            reopen(atEnd: false)
            out += drain()
        }
        return out
    }

    /// Waits until the journal may have grown or (with `cgroups`) a zone's processes came or
    /// went, at most `milliseconds` (inotify on the journal's directory). True when `cgroups`
    /// fired.
    @discardableResult
    public func wait(milliseconds: Int32, cgroups: CgroupEventWatch? = nil) -> Bool {
        guard notify >= 0 else { return cgroups?.wait(milliseconds: milliseconds) ?? { usleep(useconds_t(milliseconds) * 1000); return false }() }
        var p = [pollfd(fd: notify, events: Int16(POLLIN), revents: 0), pollfd(fd: cgroups?.fd ?? -1, events: Int16(POLLIN), revents: 0)]
        _ = poll(&p, 2, milliseconds)
        var buf = [UInt8](repeating: 0, count: 4096)
        while read(notify, &buf, buf.count) > 0 {}
        return cgroups?.consume() ?? false
    }
}

extension Vmadm {
    public var events: TenantEventLog { TenantEventLog(root: store.root) }

    /// Appends an event; a journal that cannot be written (a full disk) costs the event, not
    /// the operation, which has already happened.
    func record(_ event: TenantEvent) {
        do { try events.append(event) } catch { _ = FD.writeAll(2, Array("vmadm: event not recorded: \(oneLine(error))\n".utf8)) }
    }

    /// The state events name: running, stopped, or failed (a VM whose guest panicked or whose
    /// QEMU died, as vmadm get shows it: the console relay's verdict from QMP).
    func stateName(_ uuid: String) -> String {
        if zones.isRunning(uuid) { return "running" }
        return kvmHealth(uuid, running: false).failed ? "failed" : "stopped"
    }

    /// Records the state changes no vmadm command made: an init that exited by itself, a VM
    /// whose guest powered off (QEMU exits, its cgroup empties), `vmadm kill`. `known` is the
    /// caller's last view (seed it with `events.lastStates()`). A tenant whose lock is held is
    /// left alone: the command holding it records its own change. Several watchers (vmadmd,
    /// each `vmadm events`) may run at once: each re-reads the journal under the tenant's
    /// lock, so a change is recorded once.
    public func recordObservedStates(known: inout [String: String]) {
        let uuids = Set(store.uuids())
        for gone in known.keys where !uuids.contains(gone) { known[gone] = nil }
        for uuid in uuids.sorted() {
            let actual = stateName(uuid)
            if known[uuid] == actual { continue }
            guard let lock = try? FileLock(store.journal.lockPath(uuid), wait: false) else { continue }
            defer { withExtendedLifetime(lock) {} }
            guard let m = try? store.read(uuid) else { continue }
            let now = stateName(uuid)
            let previous = events.lastStates()[uuid] ?? known[uuid]
            known[uuid] = now
            guard let previous, previous != now else { continue }
            var event = TenantEvent.stateChange(m, from: previous, to: now, source: "observed")
            // A VM's QEMU is gone: why, as its console relay read QEMU's SHUTDOWN event (QMP).
            if m.isKVM, now != "running", let reason = kvmHealth(uuid, running: false).reason {
                event.changes.append(.init("lumos_state_reason", nil, .string(reason)))
            }
            record(event)
        }
    }
}

/// A stream of tenant events as `vmadm events` prints them and `GET /events` sends them: the
/// journal's tail (with `history`, what it keeps first), filtered to `only` (all tenants when
/// empty). With `watch`, the stream also records the state changes nobody made through vmadm
/// (Vmadm.recordObservedStates: when a zone's cgroup.events changes, and once a second), so it
/// works without vmadmd; vmadmd runs the same watch itself.
public struct EventStream: Sendable {
    public let root: StateRoot
    public let only: Set<String>
    public let history: Bool
    public var watch = true

    public init(root: StateRoot, only: Set<String> = [], history: Bool = false) {
        self.root = root
        self.only = only
        self.history = history
    }

    /// Runs until `emit` returns false (the reader went away) or `keepGoing` does (checked at
    /// least twice a second).
    public func run(ready: Bool, keepGoing: () -> Bool = { true }, emit: (TenantEvent) -> Bool) throws {
        let log = TenantEventLog(root: root)
        let tail = log.tail(fromStart: history)
        if ready, !emit(.ready()) { return }
        var known = log.lastStates()
        var vmadm: Vmadm?
        var lastWatch = 0.0
        // A zone whose processes come or go is looked at at once; the sweep once a second
        // covers the rest (a VM's health, a watch that could not be set).
        let cgroups = watch ? CgroupEventWatch() : nil
        var changed = false
        while keepGoing() {
            for e in tail.next() {
                if e.type == "delete" { known[e.uuid] = nil } else if let s = e.state { known[e.uuid] = s }
                if only.isEmpty || only.contains(e.uuid) { if !emit(e) { return } }
            }
            if watch, changed || Monotonic.now - lastWatch >= 1 {
                lastWatch = Monotonic.now
                // The pool may be away (pool export): the journal is still followed meanwhile.
                if vmadm == nil { vmadm = try? Vmadm.openHost(root: root) }
                vmadm?.recordObservedStates(known: &known)
            }
            changed = tail.wait(milliseconds: 500, cgroups: cgroups)
        }
    }
}
