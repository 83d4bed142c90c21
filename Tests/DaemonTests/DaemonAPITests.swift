import Foundation
import Glibc
import LumosCore
import Testing
import Zones

/// vmadmd's REST API against real zones (root): every tenant action over the unix socket,
/// seen by the CLI too, and bad requests answered with a 4xx and a JSON error.
@Suite(.serialized, .enabled(if: isRoot, "needs root: pools, namespaces and cgroups"))
struct DaemonAPITests {
    @Test func everyTenantActionRoundTrips() throws {
        let h = try DaemonHost("api")
        defer { h.close() }
        try h.startDaemon(["--no-autoboot"])

        // The socket is root's only.
        var st = stat()
        #expect(stat(h.socket, &st) == 0 && st.st_mode & 0o777 == 0o600)

        // create → 201, running, and the CLI sees the same tenant.
        let created = try h.api("POST", "/tenants", h.payload(["alias": "api-web"]))
        #expect(created.status == 201, "\(created.body)")
        let uuid = try #require(created.json?.lookup("uuid")?.stringValue)
        #expect(created.json?.lookup("state") == "running")
        let cli = try h.lumos(["vm", "get", uuid])
        let cliState = try JSONValue.parse(cli.stdout, what: "get").lookup("state")
        #expect(cli.status == 0 && cliState == "running")

        // get and list (with vmadm's filters as query parameters).
        #expect(try h.api("GET", "/tenants/\(uuid)").json?.lookup("alias") == "api-web")
        #expect(try h.api("GET", "/tenants?alias=api-web").json?.arrayValue?.count == 1)
        #expect(try h.api("GET", "/tenants?alias=nosuch").json?.arrayValue?.count == 0)
        let badFilter = try h.api("GET", "/tenants?nosuch=1")
        #expect(badFilter.status == 400 && badFilter.json?.lookup("code") == "InvalidArgument")

        // update: a live limit, applied to the running zone as vmadm update does.
        let updated = try h.api("PATCH", "/tenants/\(uuid)", ["max_physical_memory": 256])
        #expect(updated.status == 200, "\(updated.body)")
        #expect(updated.json?.lookup("max_physical_memory") == 256)
        #expect(try h.vmadm().store.read(uuid)["max_physical_memory"] == 256)
        let badUpdate = try h.api("PATCH", "/tenants/\(uuid)", ["max_physical_memory": "lots"])
        #expect(badUpdate.status == 400 && badUpdate.json?.lookup("message")?.stringValue?.contains("max_physical_memory") == true)

        // stop, start, reboot (a new init).
        let stopped = try h.api("POST", "/tenants/\(uuid)/stop", ["timeout": 5])
        #expect(stopped.status == 200 && stopped.json?.lookup("state") == "stopped", "\(stopped.body)")
        #expect(try h.vmadm().zones.isRunning(uuid) == false)
        #expect(try h.api("POST", "/tenants/\(uuid)/stop").status == 200, "stopping a stopped tenant is a no-op")
        let started = try h.api("POST", "/tenants/\(uuid)/start")
        #expect(started.status == 200 && started.json?.lookup("state") == "running", "\(started.body)")
        let pidBefore = try h.vmadm().zones.initPid(uuid)
        let rebooted = try h.api("POST", "/tenants/\(uuid)/reboot", ["force": true])
        #expect(rebooted.status == 200 && rebooted.json?.lookup("state") == "running", "\(rebooted.body)")
        #expect(try h.vmadm().zones.initPid(uuid) != pidBefore)

        // snapshots: create, list, rollback (the file written after the snapshot goes), delete.
        let root = try h.vmadm().rootfs(uuid)
        let snap = try h.api("POST", "/tenants/\(uuid)/snapshots", ["name": "before"])
        #expect(snap.status == 201 && snap.json == [["name": "before"]], "\(snap.body)")
        #expect(try h.api("POST", "/tenants/\(uuid)/snapshots", ["name": "before"]).status == 409)
        #expect(try h.api("POST", "/tenants/\(uuid)/snapshots", ["name": "../x"]).status == 400)
        try Files.writeAtomically(root + "/after.txt", "after\n")
        #expect(try h.api("GET", "/tenants/\(uuid)/snapshots").json == [["name": "before"]])
        let rolled = try h.api("POST", "/tenants/\(uuid)/snapshots/before/rollback")
        #expect(rolled.status == 200, "\(rolled.body)")
        #expect(!Files.exists(try h.vmadm().rootfs(uuid) + "/after.txt"))
        #expect(try h.api("POST", "/tenants/\(uuid)/snapshots/nosuch/rollback").status == 404)
        let snapDeleted = try h.api("DELETE", "/tenants/\(uuid)/snapshots/before")
        #expect(snapDeleted.status == 200 && snapDeleted.json == [], "\(snapDeleted.body)")

        // A tenant the CLI made is the API's too.
        let cliCreate = try h.lumos(["vm", "create"], stdin: h.payload(["alias": "cli-made", "autoboot": false]).serialized())
        #expect(cliCreate.status == 0, "\(cliCreate.stderr)")
        #expect(try h.api("GET", "/tenants?alias=cli-made").json?.arrayValue?.first?.lookup("state") == "stopped")

        // delete → gone for the API and the CLI, nothing left behind.
        let deleted = try h.api("DELETE", "/tenants/\(uuid)")
        #expect(deleted.status == 200, "\(deleted.body)")
        let gone = try h.api("GET", "/tenants/\(uuid)")
        #expect(gone.status == 404 && gone.json?.lookup("code") == "ResourceNotFound")
        #expect(try h.lumos(["vm", "get", uuid]).status == 1)
        #expect(try h.leftovers(uuid).isEmpty)
    }

    @Test func badRequestsGetJSONErrorsAndChangeNothing() throws {
        let h = try DaemonHost("bad")
        defer { h.close() }
        try h.startDaemon(["--no-autoboot"])
        func expectError(_ r: DaemonHost.Reply, _ status: Int, _ code: String, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(r.status == status, "\(r.body)", sourceLocation: sourceLocation)
            #expect(r.json?.lookup("code")?.stringValue == code, "\(r.body)", sourceLocation: sourceLocation)
            #expect(r.json?.lookup("message")?.stringValue?.isEmpty == false, sourceLocation: sourceLocation)
        }
        expectError(try h.request("POST", "/tenants", body: "{not json"), 400, "InvalidArgument")
        expectError(try h.request("POST", "/tenants", body: "[1,2]"), 400, "InvalidArgument")
        expectError(try h.request("POST", "/tenants", body: ""), 400, "InvalidArgument")
        expectError(try h.api("POST", "/tenants", ["brand": "lx", "max_physical_memory": 128]), 400, "InvalidArgument")
        expectError(try h.api("POST", "/tenants", ["brand": "lx", "image_uuid": "7b4ad1a2-3c1e-4a8e-9f00-2f1b8c0d6e11"]), 404, "ResourceNotFound")
        expectError(try h.api("GET", "/tenants/not-a-uuid"), 404, "ResourceNotFound")
        expectError(try h.api("POST", "/tenants/7b4ad1a2-3c1e-4a8e-9f00-2f1b8c0d6e11/start"), 404, "ResourceNotFound")
        expectError(try h.api("GET", "/nosuch"), 404, "ResourceNotFound")
        expectError(try h.api("POST", "/tenants/7b4ad1a2-3c1e-4a8e-9f00-2f1b8c0d6e11/stop", ["force": "yes"]), 400, "InvalidArgument")
        expectError(try h.api("GET", "/images/7b4ad1a2-3c1e-4a8e-9f00-2f1b8c0d6e11"), 404, "ResourceNotFound")
        expectError(try h.api("GET", "/datasets/zones%2Fnosuch"), 404, "ResourceNotFound")
        #expect(try h.vmadm().store.uuids().isEmpty, "nothing was created")

        // The other resources answer as their CLI commands.
        let images = try h.api("GET", "/images")
        #expect(images.json?.arrayValue?.compactMap { $0.lookup("manifest.uuid")?.stringValue } == [h.imageUUID])
        #expect(try h.api("GET", "/images/\(h.imageUUID)").json?.lookup("manifest.name") == "busybox")
        let datasets = try h.api("GET", "/datasets").json?.arrayValue?.compactMap { $0.lookup("name")?.stringValue } ?? []
        #expect(datasets.contains("zones/\(h.imageUUID)") && datasets.contains("zones/\(h.imageUUID)@final"))
        #expect(try h.api("GET", "/datasets/zones%2F\(h.imageUUID)").json?.lookup("type") == "filesystem")
        let networks = try h.api("GET", "/networks")
        #expect(networks.status == 200 && networks.json?.lookup("etherstubs") != nil, "\(networks.body)")
        let doc = try h.request("GET", "/openapi.yaml")
        #expect(doc.status == 200 && doc.body.hasPrefix("openapi: 3"))
    }

    /// Only root reaches the unix socket: another uid cannot connect.
    @Test func socketRefusesOtherUsers() throws {
        let h = try DaemonHost("perm")
        defer { h.close() }
        try h.startDaemon(["--no-autoboot"])
        // The state root is 0755 so that nobody can reach the socket file itself.
        chmod(h.dir, 0o755)
        let asNobody = try Exec.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                     "curl", "-sS", "--unix-socket", h.socket, "http://localhost/ping"], check: false)
        #expect(asNobody.status == 7, "curl could not connect: \(asNobody.stdout) \(asNobody.stderr)")
        #expect(try h.request("GET", "/ping").status == 200)
    }
}
