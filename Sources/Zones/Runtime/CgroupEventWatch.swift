import Glibc
import LumosCore

/// Wakes whoever follows tenants' states when a zone's processes come or go, rather than at
/// the next poll: inotify on each zone's v2 cgroup.events (the kernel signals IN_MODIFY when
/// its "populated" changes) and on the v2 `lumos` directory (a zone's cgroup made or
/// removed). docs/vmadm.md, "Events". Without a cgroup2 mount it never fires (callers keep
/// their periodic sweep).
public final class CgroupEventWatch: @unchecked Sendable {
    /// The inotify descriptor (-1: none), to poll beside others.
    public let fd: Int32
    private let parent: String?
    private var parentWatched = false
    private var watched: [String: Int32] = [:]

    public init(layout: CgroupLayout? = try? CgroupLayout.current()) {
        parent = layout?.v2.map { "\($0)/lumos" }
        fd = parent == nil ? -1 : inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        refresh()
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Watches the cgroup.events of every zone's directory not watched yet (and `lumos` once
    /// the first zone made it); forgets gone ones.
    public func refresh() {
        guard fd >= 0, let parent else { return }
        if !parentWatched { parentWatched = inotify_add_watch(fd, parent, UInt32(IN_CREATE | IN_DELETE | IN_ONLYDIR)) >= 0 }
        let now = Set(Files.list(parent).filter { Files.isDirectory("\(parent)/\($0)") })
        for (name, wd) in watched where !now.contains(name) {
            inotify_rm_watch(fd, wd)
            watched[name] = nil
        }
        for name in now where watched[name] == nil {
            let wd = inotify_add_watch(fd, "\(parent)/\(name)/cgroup.events", UInt32(IN_MODIFY))
            if wd >= 0 { watched[name] = wd }
        }
    }

    /// Reads what the kernel queued; true if anything was, after which the watches are
    /// refreshed (a new zone's cgroup.events is watched from then on).
    @discardableResult
    public func consume() -> Bool {
        guard fd >= 0 else { return false }
        var any = false
        var buf = [UInt8](repeating: 0, count: 4096)
        while read(fd, &buf, buf.count) > 0 { any = true }
        if any { refresh() }
        return any
    }

    /// Waits at most `milliseconds` for a change; true if one came.
    public func wait(milliseconds: Int32) -> Bool {
        guard fd >= 0 else { usleep(useconds_t(milliseconds) * 1000); return false }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        _ = poll(&p, 1, milliseconds)
        if consume() { return true }
        refresh()
        return false
    }
}
