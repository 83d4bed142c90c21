import Foundation
import Glibc
import LumosCore
import Testing
import Storage
import Zones

/// vmadmd's restarts and autoboot on real zones (root): state is on disk, so a kill -9 of the
/// daemon mid-create is finished or undone by the next start, and autoboot tenants come back
/// after the pool is exported and imported (a host restart as far as Lumos can tell).
@Suite(.serialized, .enabled(if: isRoot, "needs root: pools, namespaces and cgroups"))
struct DaemonLifecycleTests {
    /// The daemon dies mid-create as by kill -9 (LUMOS_TEST_CRASH_AT makes it _exit(137) right
    /// after the clone, CrashPoint); the next start undoes the half-made tenant.
    @Test func killedMidCreateIsUndoneAtTheNextStart() throws {
        let h = try DaemonHost("crash")
        defer { h.close() }
        try h.startDaemon(["--no-autoboot"], env: ["LUMOS_TEST_CRASH_AT": "create.cloned"])
        let uuid = UUID().uuidString.lowercased()
        let journal = try h.vmadm().store.journal
        // The connection drops with the daemon: no answer.
        #expect((try? h.api("POST", "/tenants", h.payload(["uuid": .string(uuid), "alias": "crash"]))) == nil)
        #expect(h.stopDaemon(signal: SIGKILL) == 137)
        // Nobody recovered it yet: the intent and the cloned dataset are there.
        #expect(journal.pendingSubjects() == [uuid])
        #expect(try PoolDatasetsProbe.exists(h, "zones/\(uuid)"))

        try h.startDaemon(["--no-autoboot"])
        #expect(journal.pendingSubjects().isEmpty)
        #expect(try h.api("GET", "/tenants/\(uuid)").status == 404)
        #expect(try h.leftovers(uuid).isEmpty)
        // The same uuid can be created again: nothing half-made blocks it.
        let again = try h.api("POST", "/tenants", h.payload(["uuid": .string(uuid), "alias": "again"]))
        #expect(again.status == 201, "\(again.body)")
    }

    @Test func autobootBringsTenantsBackAfterPoolExportAndImport() throws {
        let h = try DaemonHost("autoboot")
        defer { h.close() }
        let v = try h.vmadm()
        let a = try v.create(h.payload(["alias": "boot-a"])).uuid
        let b = try v.create(h.payload(["alias": "boot-b"])).uuid
        let off = try v.create(h.payload(["alias": "stays-off", "autoboot": false])).uuid
        #expect(v.zones.isRunning(a) && v.zones.isRunning(b) && !v.zones.isRunning(off))

        // The host goes down: every zone ends without vmadm stop (autoboot stays true), the pool
        // is exported and imported again.
        for u in [a, b] { try v.zones.cleanup(u) }
        #expect(!v.zones.isRunning(a) && !v.zones.isRunning(b))
        let exported = try h.lumos(["pool", "export", "zones"])
        #expect(exported.status == 0, "\(exported.stdout) \(exported.stderr)")
        let imported = try h.lumos(["pool", "import", "zones"])
        #expect(imported.status == 0, "\(imported.stdout) \(imported.stderr)")

        try h.startDaemon()
        let back = try h.waitUntil(120) { let z = try h.vmadm().zones; return z.isRunning(a) && z.isRunning(b) }
        #expect(back, "autoboot tenants are not running: \(h.log)")
        #expect(try !h.vmadm().zones.isRunning(off), "autoboot=false stays stopped")
        #expect(try h.api("GET", "/tenants?state=running").json?.arrayValue?.count == 2)

        // With the daemon running: export and import again; it notices the pool coming back.
        for u in [a, b] { try h.vmadm().zones.cleanup(u) }
        #expect(try h.lumos(["pool", "export", "zones"]).status == 0)
        sleep(5)   // the daemon looks every 2 s: it must see the pool gone
        #expect(try h.lumos(["pool", "import", "zones"]).status == 0)
        let backAgain = try h.waitUntil(120) { let z = try h.vmadm().zones; return z.isRunning(a) && z.isRunning(b) }
        #expect(backAgain, "the running daemon did not autoboot after pool import: \(h.log)")

        // Export and import at once, quicker than the pool poll: `pool import` tells the
        // running daemon (its notice, PoolImportNotice), which boots them at once.
        let noticedBefore = h.log.components(separatedBy: "autoboot: pool import noticed").count
        for u in [a, b] { try h.vmadm().zones.cleanup(u) }
        let quick = try h.lumos(["pool", "export", "zones"]).status == 0 && h.lumos(["pool", "import", "zones"]).status == 0
        #expect(quick)
        let backQuick = try h.waitUntil(120) { let z = try h.vmadm().zones; return z.isRunning(a) && z.isRunning(b) }
        #expect(backQuick, "the running daemon did not autoboot after a quick export + import: \(h.log)")
        #expect(h.log.components(separatedBy: "autoboot: pool import noticed").count == noticedBefore + 1, "\(h.log)")
        #expect(try !h.vmadm().zones.isRunning(off), "autoboot=false stays stopped")
    }

    /// A clean stop (SIGTERM) of the daemon leaves tenants running, and a second daemon on the
    /// same state root is refused.
    @Test func tenantsOutliveTheDaemonAndOnlyOneRuns() throws {
        let h = try DaemonHost("outlive")
        defer { h.close() }
        try h.startDaemon(["--no-autoboot"])
        let created = try h.api("POST", "/tenants", h.payload())
        let uuid = try #require(created.json?.lookup("uuid")?.stringValue, "POST /tenants: \(created.status) \(created.body)\n\(h.log)")
        let second = try h.lumos(["daemon", "--socket", h.dir + "/other.sock", "--no-autoboot"])
        #expect(second.status != 0 && second.stderr.contains("another vmadmd"), "\(second.stderr)")
        #expect(h.stopDaemon(signal: SIGTERM) == 0)
        #expect(!Files.exists(h.socket))
        #expect(try h.vmadm().zones.isRunning(uuid))
        try h.startDaemon(["--no-autoboot"])
        #expect(try h.api("GET", "/tenants/\(uuid)").json?.lookup("state") == "running")
    }
}

/// Reads the pool without Vmadm.openHost (which would recover the intent under test).
enum PoolDatasetsProbe {
    static func exists(_ h: DaemonHost, _ name: String) throws -> Bool {
        try Storage.Pool.open("zones", root: h.root).exists(Storage.DatasetName(name))
    }
}
