import Glibc
import LumosCore
import Testing
@testable import Zones

/// Resource controls measured on real zones (cgroup v1 controllers on this host).
@Suite("Zone resource controls") struct RuntimeLimitsTests {
    @Test(.enabled(if: isRoot, "needs root")) func memoryHogIsKilledInsideTheZoneOnly() throws {
        let zone = try BusyboxZone("oom")
        defer { zone.close() }
        let pid = try zone.start(limits: ZoneLimits(maxPhysicalMemory: 32, maxSwap: 32))
        // dd allocates and fills a 64 MiB buffer: twice the zone's memory.
        let hog = try zone.sh("dd if=/dev/zero of=/dev/null bs=64M count=1")
        #expect(hog.status == 128 + SIGKILL, "hog: \(hog.status) \(hog.output)")
        #expect(zone.runtime.state(zone.uuid) == .running)
        #expect(zone.runtime.initPid(zone.uuid) == pid)
        let cg = zone.runtime.cgroup(zone.uuid)
        // The killed hog's pages are uncharged as the kernel tears it down; a command that
        // joins the zone while they are still counted would meet the same limit. Wait for the
        // charge to fall (bounded), then the zone must answer.
        let deadline = Monotonic.now + 5.0
        while Monotonic.now < deadline,
              let used = UInt64(cg.value(controller: "memory", file: "memory.usage_in_bytes")
                  ?? cg.value(controller: "memory", file: "memory.current") ?? ""),
              used > 16 << 20 {
            usleep(20_000)
        }
        let alive = try zone.sh("echo alive")
        #expect(alive.status == 0 && alive.output == "alive\n", "after the kill: \(alive.status) \(alive.output)")
        let kills = cg.statValue(controller: "memory", file: "memory.oom_control", key: "oom_kill")
            ?? cg.statValue(controller: "memory", file: "memory.events", key: "oom_kill")
        #expect((kills ?? 0) >= 1)
    }

    @Test(.enabled(if: isRoot, "needs root")) func liveMemoryUpdateTakesEffect() throws {
        let zone = try BusyboxZone("memupdate")
        defer { zone.close() }
        try zone.start(limits: ZoneLimits(maxPhysicalMemory: 32, maxSwap: 32))
        #expect(try zone.sh("dd if=/dev/zero of=/dev/null bs=48M count=1").status == 128 + SIGKILL)
        try zone.runtime.updateLimits(zone.uuid, ZoneLimits(maxPhysicalMemory: 160, maxSwap: 160))
        let cg = zone.runtime.cgroup(zone.uuid)
        let limit = cg.value(controller: "memory", file: "memory.limit_in_bytes") ?? cg.value(controller: "memory", file: "memory.max")
        #expect(limit == "\(160 << 20)")
        let grown = try zone.sh("dd if=/dev/zero of=/dev/null bs=48M count=1")
        #expect(grown.status == 0, "\(grown.output)")
    }

    @Test(.enabled(if: isRoot, "needs root")) func forkBombStopsAtMaxLwps() throws {
        let zone = try BusyboxZone("lwps")
        defer { zone.close() }
        try zone.start(limits: ZoneLimits(maxLwps: 16))
        let bomb = try zone.sh("i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done")
        #expect(bomb.output.contains("fork"), "\(bomb.output)")
        let cg = zone.runtime.cgroup(zone.uuid)
        #expect(cg.processes().count <= 16)
        #expect(cg.value(controller: "pids", file: "pids.max") == "16")
        #expect((cg.statValue(controller: "pids", file: "pids.events", key: "max") ?? 0) >= 1)
    }

    @Test(.enabled(if: isRoot, "needs root")) func cpuCapLimitsCPU() throws {
        let zone = try BusyboxZone("cpucap")
        defer { zone.close() }
        try zone.start(limits: ZoneLimits(cpuCap: 25))
        // Two busy loops could use two CPUs; the cap allows a quarter of one.
        #expect(try zone.sh("(while :; do :; done) >/dev/null 2>&1 & (while :; do :; done) >/dev/null 2>&1 &").status == 0)
        let cg = zone.runtime.cgroup(zone.uuid)
        usleep(300_000)
        let start = Monotonic.now, before = cg.cpuUsageNanos() ?? 0
        usleep(2_000_000)
        let used = Double((cg.cpuUsageNanos() ?? 0) - before) / 1e9, wall = Monotonic.now - start
        let share = used / wall
        #expect(share > 0.05 && share < 0.4, "zone used \(share) CPUs with cpu_cap=25")
        let throttled = cg.statValue(controller: "cpu", file: "cpu.stat", key: "nr_throttled") ?? 0
        #expect(throttled > 0)
    }

    @Test(.enabled(if: isRoot, "needs root")) func limitsAreWrittenToTheKernel() throws {
        let zone = try BusyboxZone("limits")
        defer { zone.close() }
        try zone.start(limits: ZoneLimits(maxPhysicalMemory: 64, maxSwap: 128, maxLockedMemory: 4, maxLwps: 100,
                                          cpuShares: 200, cpuCap: 150, ioWeight: 300))
        let cg = zone.runtime.cgroup(zone.uuid)
        if case .v1 = cg.layout.holder("memory") {
            #expect(cg.value(controller: "memory", file: "memory.limit_in_bytes") == "\(64 << 20)")
            #expect(cg.value(controller: "memory", file: "memory.memsw.limit_in_bytes") == "\(128 << 20)")
        }
        if case .v1 = cg.layout.holder("cpu") {
            #expect(cg.value(controller: "cpu", file: "cpu.shares") == "2048")
            #expect(cg.value(controller: "cpu", file: "cpu.cfs_quota_us") == "150000")
        }
        #expect(cg.value(controller: "pids", file: "pids.max") == "100")
        if case .v1 = cg.layout.holder("blkio"), let weight = cg.value(controller: "blkio", file: "blkio.bfq.weight") {
            #expect(weight.hasSuffix("300"))
        }
        #expect(try zone.sh("ulimit -l").output == "\(4 << 10)\n")
        // An update that keeps max_locked_memory works even where it could not change live.
        try zone.runtime.updateLimits(zone.uuid, ZoneLimits(maxPhysicalMemory: 96, maxSwap: 128, maxLockedMemory: 4))
        #expect(cg.value(controller: "memory", file: "memory.limit_in_bytes") ?? cg.value(controller: "memory", file: "memory.max") == "\(96 << 20)")
        // The v2 directory exists for every zone: the tracer's key and the kill handle.
        let id = try #require(cg.cgroupID)
        #expect(zone.runtime.zonesByCgroupID()[id] == zone.uuid)
    }
}
