import Glibc
import LumosCore
import Testing
@testable import Zones

/// The `lumos` executable built next to the test bundle.
let lumosBinary: String? = ZoneRuntime.findInitBinary().map { Files.parent($0) + "/lumos" }.flatMap { access($0, X_OK) == 0 ? $0 : nil }

/// `lumos zone run --detach` killed (LUMOS_TEST_CRASH_AT: _exit(137), as kill -9) right after
/// each step of its start; the next command (`lumos zone stop`) must leave no cgroup, process
/// or uid range behind.
@Suite("Zone crash safety") struct RuntimeCrashTests {
    static let steps = ["zone.run.range-allocated", "zone.start.cgroup-created", "zone.start.spawned", "zone.start.id-mapped",
                        "zone.start.released", "zone.start.limited", "zone.start.exec"]

    @Test(.enabled(if: isRoot && lumosBinary != nil, "needs root and the lumos executable"))
    func killedStartLeavesNothingAfterTheNextCommand() throws {
        let zone = try BusyboxZone("kill9")
        defer { zone.close() }
        let lumos = try #require(lumosBinary)
        let root = zone.dir + "/state"
        for (i, step) in Self.steps.enumerated() {
            let uuid = "\(zone.uuid)-\(i)"
            let pid = try Exec.spawn(["env", "LUMOS_ROOT=\(root)", "LUMOS_TEST_CRASH_AT=\(step)", lumos, "zone", "run", "--detach",
                                      "--rootfs", zone.rootfs, "--uuid", uuid], stdout: .null, stderr: .null)
            // 137 only from the crash point: the start really got that far.
            #expect(Exec.wait(pid) == 137, "lumos zone run did not reach \(step)")
            let stop = try Exec.run(["env", "LUMOS_ROOT=\(root)", lumos, "zone", "stop", "-F", uuid], check: false)
            #expect(stop.status == 0, "\(stop.stderr)")
            let cg = zone.runtime.cgroup(uuid)
            // Every process of a zone is born in its cgroups, so no cgroup left means no process left.
            #expect(!cg.exists, "cgroups of \(uuid) left after a crash at \(step)")
            #expect(!cg.populated)
            #expect(ZoneIDRange.lookup(uuid, root: StateRoot(root)) == nil, "uid range of \(uuid) left after a crash at \(step)")
        }
    }
}
