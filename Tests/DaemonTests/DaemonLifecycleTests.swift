import Foundation
import Glibc
import LumosCore
import Testing
import Zones

/// vmadmd's restarts and autoboot on real zones (root): state is on disk, so a kill -9 of the
/// daemon mid-create is finished or undone by the next start, and autoboot tenants come back
/// after the pool is exported and imported (a host restart as far as Lumos can tell).
@Suite(.serialized, .enabled(if: isRoot, "needs root: pools, namespaces and cgroups"))
struct DaemonLifecycleTests {
    @Test func killDashNineMidCreateIsUndoneAtTheNextStart() throws {
        let h = try DaemonHost("crash")
        defer { h.close() }
        try h.startDaemon(["--no-autoboot"])
        let uuid = UUID().uuidString.lowercased()
        let journal = try h.vmadm().store.journal
        // The request runs in curl in the background; the daemon is killed by pid as soon as
        // the create's intent is on disk (the create is then between its first and last step).
        let body = h.payload(["uuid": .string(uuid), "alias": "crash"]).serialized(pretty: false)
        let bodyFile = h.dir + "/create.json"
        try Files.writeAtomically(bodyFile, body)
        let curl = try Exec.spawn(["curl", "-sS", "-o", "/dev/null", "--unix-socket", h.socket, "-X", "POST",
                                   "-H", "Content-Type: application/json", "--data-binary", "@\(bodyFile)", "http://localhost/tenants"],
                                  stdout: .null, stderr: .null)
        let sawIntent = h.waitUntil(60) { journal.read(uuid) != nil }
        #expect(h.stopDaemon(signal: SIGKILL) != 0)
        _ = Exec.wait(curl)
        #expect(sawIntent, "the create's intent was never written")
        // Between the kill and the next start the intent is still there (nobody recovered it).
        let pendingAfterKill = journal.pendingSubjects()

        try h.startDaemon(["--no-autoboot"])
        // The next start recovered it: no intent, and the create either finished or left nothing.
        #expect(journal.pendingSubjects().isEmpty)
        let reply = try h.api("GET", "/tenants/\(uuid)")
        if reply.status == 200 {
            // The kill came after the commit point: a whole tenant.
            #expect(pendingAfterKill.isEmpty && reply.json?.lookup("state") != nil)
        } else {
            #expect(reply.status == 404)
            #expect(pendingAfterKill == [uuid])
            #expect(try h.leftovers(uuid).isEmpty)
        }
        // The same uuid can be created again: nothing half-made blocks it.
        let again = try h.api("POST", "/tenants", h.payload(["uuid": .string(uuid), "alias": "again"]))
        #expect(again.status == 201 || (reply.status == 200 && again.status == 409), "\(again.body)")
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
        #expect(try h.lumos(["pool", "import", "zones"]).status == 0)
        let backAgain = try h.waitUntil(120) { let z = try h.vmadm().zones; return z.isRunning(a) && z.isRunning(b) }
        #expect(backAgain, "the running daemon did not autoboot after pool import: \(h.log)")
    }

    /// A clean stop (SIGTERM) of the daemon leaves tenants running, and a second daemon on the
    /// same state root is refused.
    @Test func tenantsOutliveTheDaemonAndOnlyOneRuns() throws {
        let h = try DaemonHost("outlive")
        defer { h.close() }
        try h.startDaemon(["--no-autoboot"])
        let uuid = try #require(try h.api("POST", "/tenants", h.payload()).json?.lookup("uuid")?.stringValue)
        let second = try h.lumos(["daemon", "--socket", h.dir + "/other.sock", "--no-autoboot"])
        #expect(second.status != 0 && second.stderr.contains("another vmadmd"), "\(second.stderr)")
        #expect(h.stopDaemon(signal: SIGTERM) == 0)
        #expect(!Files.exists(h.socket))
        #expect(try h.vmadm().zones.isRunning(uuid))
        try h.startDaemon(["--no-autoboot"])
        #expect(try h.api("GET", "/tenants/\(uuid)").json?.lookup("state") == "running")
    }
}
