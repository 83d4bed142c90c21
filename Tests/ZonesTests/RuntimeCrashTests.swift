import Glibc
import LumosCore
import Testing
@testable import Zones

/// The `lumos` executable built next to the test bundle.
let lumosBinary: String? = ZoneRuntime.findInitBinary().map { Files.parent($0) + "/lumos" }.flatMap { access($0, X_OK) == 0 ? $0 : nil }

/// kill -9 of `lumos zone run --detach` at points spread over its start; the next command
/// (`lumos zone stop`) must leave no cgroup, process or uid range behind.
@Suite("Zone crash safety") struct RuntimeCrashTests {
    @Test(.enabled(if: isRoot && lumosBinary != nil, "needs root and the lumos executable"))
    func killedStartLeavesNothingAfterTheNextCommand() throws {
        let zone = try BusyboxZone("kill9")
        defer { zone.close() }
        let lumos = try #require(lumosBinary)
        let root = zone.dir + "/state"
        var outcomes: [String] = []
        for step in 0..<12 {
            let uuid = "\(zone.uuid)-\(step)"
            let pid = try Exec.spawn(["env", "LUMOS_ROOT=\(root)", lumos, "zone", "run", "--detach", "--rootfs", zone.rootfs, "--uuid", uuid],
                                     stdout: .null, stderr: .null)
            usleep(UInt32(step) * 1_500)   // 0 to 16.5 ms: before, during and after the clone
            Glibc.kill(pid, SIGKILL)
            let status = Exec.wait(pid)
            outcomes.append(status == 128 + SIGKILL ? "killed" : "finished")
            let stop = try Exec.run(["env", "LUMOS_ROOT=\(root)", lumos, "zone", "stop", "-F", uuid], check: false)
            #expect(stop.status == 0, "\(stop.stderr)")
            let cg = zone.runtime.cgroup(uuid)
            #expect(!cg.exists, "cgroups of \(uuid) left after a kill at \(step * 1500) µs")
            #expect(!cg.populated)
            #expect(ZoneIDRange.lookup(uuid, root: StateRoot(root)) == nil)
        }
        // Every process of a zone is born in its cgroups, so no cgroup left means no process left.
        #expect(outcomes.contains("killed"), "\(outcomes)")
    }
}
