import Glibc
import LumosCore
import Testing
@testable import Zones

/// Host processes running as one of the zone's uids (what must be gone after a stop).
func processesOwned(by range: ZoneIDRange) -> [pid_t] {
    Files.list("/proc").compactMap { name -> pid_t? in
        guard let pid = pid_t(name) else { return nil }
        var st = stat()
        guard stat("/proc/\(name)", &st) == 0 else { return nil }
        return st.st_uid >= range.base && st.st_uid < range.base + range.count ? pid : nil
    }
}

@Suite("Zone lifecycle") struct RuntimeLifecycleTests {
    @Test(.enabled(if: isRoot, "needs root")) func stopIsGracefulWithLumosInit() throws {
        let zone = try BusyboxZone("stop")
        defer { zone.close() }
        try zone.start(.lumos(command: ["/bin/sleep", "1000"]))
        #expect(try zone.runtime.stop(zone.uuid, timeout: 10) == .exited)
        #expect(zone.runtime.state(zone.uuid) == .stopped)
        #expect(!zone.runtime.cgroup(zone.uuid).exists)
        #expect(processesOwned(by: zone.range).isEmpty)
        #expect(try zone.runtime.stop(zone.uuid) == .alreadyStopped)
    }

    /// busybox init waits for its signals in rt_sigtimedwait, when the kernel shows them as
    /// neither caught nor blocked: the stop must still see that SIGTERM is taken, send it at
    /// once, and the init's own shutdown ends the zone well within the timeout.
    @Test(.enabled(if: isRoot, "needs root")) func stopIsGracefulWithBusyboxInit() throws {
        let zone = try BusyboxZone("bbinit")
        defer { zone.close() }
        try Files.writeAtomically(zone.rootfs + "/etc/inittab", "::sysinit:/bin/true\n::shutdown:/bin/sync\n")
        try zone.start(.image(["/bin/init"]))
        let pid = try #require(zone.runtime.initPid(zone.uuid))
        var waiting = false
        for _ in 0..<500 where !waiting {
            waiting = ZoneRuntime.sigtimedwaitSet(pid) != nil
            if !waiting { usleep(10_000) }
        }
        #expect(waiting, "busybox init never reached its rt_sigtimedwait loop")
        #expect(ZoneRuntime.catches(pid, SIGTERM))
        #expect(!ZoneRuntime.catches(pid, SIGWINCH))
        #expect(try zone.runtime.stop(zone.uuid, timeout: 20) == .exited)
        #expect(processesOwned(by: zone.range).isEmpty)
    }

    @Test(.enabled(if: isRoot, "needs root")) func stopEscalatesToSIGKILL() throws {
        let zone = try BusyboxZone("escalate")
        defer { zone.close() }
        // The image's own init ignores SIGTERM (and, as PID 1, gets no default action anyway).
        try zone.start(.image(["/bin/sh", "-c", "trap '' TERM; while :; do sleep 1; done"]))
        #expect(zone.runtime.state(zone.uuid) == .running)
        #expect(try zone.runtime.stop(zone.uuid, timeout: 0.5) == .killed)
        #expect(zone.runtime.state(zone.uuid) == .stopped)
        #expect(!zone.runtime.cgroup(zone.uuid).exists)
        #expect(processesOwned(by: zone.range).isEmpty)
    }

    @Test(.enabled(if: isRoot, "needs root")) func killSignalsInitAndLumosInitForwards() throws {
        let zone = try BusyboxZone("kill")
        defer { zone.close() }
        try zone.start(.lumos(command: ["/bin/sh", "-c", "trap 'exit 0' HUP; while :; do sleep 0.1; done"]))
        // PID 1 drops signals that arrive before it installed its handlers; a zlogin round
        // trip takes far longer than lumos-init needs to get there.
        #expect(try zone.runtime.exec(zone.uuid, ["true"], stdin: -1) == 0)
        try zone.runtime.kill(zone.uuid, signal: SIGHUP)
        #expect(zone.runtime.cgroup(zone.uuid).waitEmpty(timeout: 10))
        #expect(zone.runtime.state(zone.uuid) == .stopped)
    }

    @Test(.enabled(if: isRoot, "needs root")) func zloginReturnsTheExitStatus() throws {
        let zone = try BusyboxZone("status")
        defer { zone.close() }
        try zone.start()
        #expect(try zone.runtime.exec(zone.uuid, ["/bin/sh", "-c", "exit 42"], stdin: -1) == 42)
        #expect(try zone.runtime.exec(zone.uuid, ["true"], stdin: -1) == 0)
        #expect(try zone.runtime.exec(zone.uuid, ["sh", "-c", "kill -9 $$"], stdin: -1) == 128 + SIGKILL)
        #expect(throws: LumosError.self) { try zone.runtime.exec(zone.uuid, ["/no/such/program"], stdin: -1) }
        #expect(throws: LumosError.self) { try zone.runtime.exec("not-running-\(getpid())", ["true"]) }
    }

    @Test(.enabled(if: isRoot, "needs root")) func failedStartNamesTheStepAndLeavesNothing() throws {
        let zone = try BusyboxZone("badinit")
        defer { zone.close() }
        do {
            try zone.start(.image(["/no/such/init"]))
            Issue.record("start of a missing init succeeded")
        } catch let error as LumosError {
            #expect(error.message.contains("exec"), "\(error.message)")
            #expect(error.message.contains("No such file"), "\(error.message)")
        }
        #expect(!zone.runtime.cgroup(zone.uuid).exists)
        #expect(processesOwned(by: zone.range).isEmpty)
    }

    @Test(.enabled(if: isRoot, "needs root")) func failureBeforeReleaseLeavesNothing() throws {
        let zone = try BusyboxZone("netfail")
        defer { zone.close() }
        struct WiringFailed: Error {}
        #expect(throws: WiringFailed.self) {
            try zone.runtime.start(zone.spec()) { _ in throw WiringFailed() }
        }
        #expect(!zone.runtime.cgroup(zone.uuid).exists)
        #expect(processesOwned(by: zone.range).isEmpty)
        #expect(zone.runtime.state(zone.uuid) == .stopped)
    }

    @Test(.enabled(if: isRoot, "needs root")) func startRefusesARunningZone() throws {
        let zone = try BusyboxZone("twice")
        defer { zone.close() }
        try zone.start()
        #expect(throws: LumosError.self) { try zone.start() }
        #expect(zone.runtime.state(zone.uuid) == .running)
    }

    @Test(.enabled(if: isRoot, "needs root")) func cleanupAfterAKilledStartLeavesNothing() throws {
        let zone = try BusyboxZone("crash")
        defer { zone.close() }
        // A start killed after the cgroups were made and the child cloned, before release:
        // the child is still waiting, the cgroups exist. Simulate it with a beforeRelease
        // that leaves, as kill -9 of lumos would, without the runtime's own undo.
        let cg = zone.runtime.cgroup(zone.uuid)
        var orphan: pid_t = 0
        struct Crash: Error {}
        _ = try? zone.runtime.start(zone.spec()) { pid in
            orphan = pid
            throw Crash()
        }
        // The runtime undid that one; now leave real debris: a running zone and an empty
        // cgroup of another zone, then call cleanup as the next command would.
        let pid = try zone.start()
        #expect(orphan > 0 && pid != orphan)
        let stale = zone.runtime.cgroup(zone.uuid + "-stale")
        try stale.create()
        #expect(stale.exists)
        Glibc.kill(pid, SIGKILL)
        try zone.runtime.cleanup(zone.uuid)
        try zone.runtime.cleanup(zone.uuid + "-stale")
        try zone.runtime.cleanup(zone.uuid)   // idempotent
        #expect(!cg.exists && !stale.exists)
        #expect(processesOwned(by: zone.range).isEmpty)
        let mounts = try FD.readText("/proc/self/mountinfo")
        #expect(!mounts.contains(zone.rootfs))
    }

    @Test(.enabled(if: isRoot, "needs root")) func freezeAndThaw() throws {
        let zone = try BusyboxZone("freeze")
        defer { try? zone.runtime.thaw(zone.uuid); zone.close() }
        try zone.start(.lumos(command: ["/bin/sh", "-c", "while :; do :; done"]))
        let cg = zone.runtime.cgroup(zone.uuid)
        func cpuUsedOver(_ micros: UInt32) -> UInt64 {
            let before = cg.cpuUsageNanos() ?? 0
            usleep(micros)
            return (cg.cpuUsageNanos() ?? 0) - before
        }
        try zone.runtime.freeze(zone.uuid)
        #expect(cg.isFrozen)
        usleep(50_000)
        // A frozen busy loop uses no CPU at all.
        #expect(cpuUsedOver(300_000) == 0)
        #expect(throws: LumosError.self) { try zone.runtime.exec(zone.uuid, ["true"], stdin: -1) }
        try zone.runtime.thaw(zone.uuid)
        #expect(!cg.isFrozen)
        #expect(cpuUsedOver(300_000) > 0)
        #expect(try zone.sh("echo thawed").output == "thawed\n")
        #expect(try zone.runtime.stop(zone.uuid, timeout: 10) == .exited)
    }

    @Test(.enabled(if: isRoot, "needs root")) func rebootStartsAFreshInit() throws {
        let zone = try BusyboxZone("reboot")
        defer { zone.close() }
        let first = try zone.start()
        #expect(try zone.sh("touch /tmp/before-reboot; sleep 1000 >/dev/null 2>&1 &").status == 0)
        var wired: pid_t = 0
        let second = try zone.runtime.reboot(zone.spec(), timeout: 5) { wired = $0 }
        #expect(second != first && wired == second)
        #expect(zone.runtime.initPid(zone.uuid) == second)
        // /tmp is the image's directory here, so the file survives; the processes do not.
        let after = try zone.sh("test -e /tmp/before-reboot && ps -o comm")
        #expect(after.status == 0, "\(after.output)")
        #expect(!after.output.contains("sleep"), "\(after.output)")
    }
}
