import Glibc
import LumosCore
import Testing
@testable import Zones

/// CgroupEventWatch (what `vmadm events` and vmadmd wake on, docs/vmadm.md "Events"): a real
/// zone whose init exits by itself wakes the watch through its cgroup.events, with no poll.
@Suite(.serialized, .enabled(if: isRoot, "needs root: zones"))
struct CgroupEventWatchTests {
    @Test func anInitThatExitsWakesTheWatch() throws {
        let zone = try BusyboxZone("cgwatch")
        defer { zone.close() }
        let watch = CgroupEventWatch(layout: zone.runtime.layout)
        #expect(watch.fd >= 0, "no cgroup2 mount to watch")
        try zone.start(.image(["/bin/sleep", "2"]))
        // The start's own events (the zone's directory made, populated 1).
        while watch.wait(milliseconds: 300) {}
        #expect(zone.runtime.cgroup(zone.uuid).populated)
        var fired = false
        for _ in 0..<4 where !fired { fired = watch.wait(milliseconds: 5000) }
        #expect(fired, "no event when the zone's init exited")
        #expect(!zone.runtime.cgroup(zone.uuid).populated)
    }
}
