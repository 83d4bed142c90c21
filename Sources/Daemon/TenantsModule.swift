import Hummingbird
import LumosCore
import Zones

/// `/tenants`: vmadm's verbs over HTTP (docs/daemon.md), each one the same library call as the
/// CLI's command (Vmadm), run detached from the connection.
struct TenantsModule: DaemonModule {
    func addRoutes(to router: DaemonRouter, daemon: DaemonEnvironment) {
        let tenants = router.group("tenants")

        // vmadm list, with vmadm's filters as query parameters (?state=running&alias=~^web).
        tenants.get { request, _ in
            var q = ListQuery()
            q.filters = try ListQuery.filters(request.uri.queryParameters.map { "\($0.key)=\($0.value)" })
            q.sort = ["uuid"]
            return JSONResponse(.array(q.select(try await daemon.vmadm { try $0.list() })))
        }

        // vmadm create: the body is the create payload; 201 with the tenant as vmadm get shows it.
        tenants.post { request, _ in
            var request = request
            let payload = try await request.jsonBody()
            guard payload.objectValue != nil else { throw LumosError.invalid("create: the body must be a JSON object (a vmadm create payload)") }
            let created = try await daemon.vmadm { v in try v.get(v.create(payload).uuid) }
            return JSONResponse(created, status: .created)
        }

        tenants.get(":uuid") { _, context in
            let uuid = try Self.uuid(context)
            return JSONResponse(try await daemon.vmadm { try $0.get(uuid) })
        }

        // vmadm update: the body is an update payload (properties, add_nics, ...).
        tenants.patch(":uuid") { request, context in
            let uuid = try Self.uuid(context)
            var request = request
            let payload = try await request.jsonBody()
            guard payload.objectValue != nil else { throw LumosError.invalid("update: the body must be a JSON object (a vmadm update payload)") }
            return JSONResponse(try await daemon.vmadm { v in
                let plan = try v.update(uuid, payload)
                var out = try v.get(uuid).objectValue ?? [:]
                if !plan.nextBoot.isEmpty && v.zones.isRunning(uuid) {
                    out["_next_boot"] = .array(plan.nextBoot.map { .string($0) })
                }
                return .object(out)
            })
        }

        tenants.delete(":uuid") { _, context in
            let uuid = try Self.uuid(context)
            try await daemon.vmadm { try $0.delete(uuid) }
            return JSONResponse(["uuid": .string(uuid), "deleted": true])
        }

        // start and stop of a tenant already in that state answer 200 with the state, as
        // vmadm start / stop exit 0 then (vmadm.js EALREADYRUNNING / ENOTRUNNING).
        tenants.post(":uuid/start") { _, context in
            let uuid = try Self.uuid(context)
            return JSONResponse(try await daemon.vmadm { v in
                if !v.zones.isRunning(uuid) { _ = try v.store.read(uuid); try v.start(uuid) }
                return try v.get(uuid)
            })
        }

        tenants.post(":uuid/stop") { request, context in
            let uuid = try Self.uuid(context)
            var request = request
            let (force, timeout) = try Self.stopOptions(try await request.jsonBody(emptyIsObject: true))
            return JSONResponse(try await daemon.vmadm { v in
                _ = try v.store.read(uuid)
                if force || v.zones.isRunning(uuid) { try v.stop(uuid, force: force, timeout: timeout) }
                return try v.get(uuid)
            })
        }

        tenants.post(":uuid/reboot") { request, context in
            let uuid = try Self.uuid(context)
            var request = request
            let (force, timeout) = try Self.stopOptions(try await request.jsonBody(emptyIsObject: true))
            return JSONResponse(try await daemon.vmadm { v in
                try v.reboot(uuid, force: force, timeout: timeout)
                return try v.get(uuid)
            })
        }

        tenants.get(":uuid/snapshots") { _, context in
            let uuid = try Self.uuid(context)
            return JSONResponse(try await daemon.vmadm { v in Self.snapshotList(try v.get(uuid)) })
        }

        tenants.post(":uuid/snapshots") { request, context in
            let uuid = try Self.uuid(context)
            var request = request
            let body = try await request.jsonBody()
            guard let name = body.lookup("name")?.stringValue else {
                throw LumosError.invalid("create snapshot: the body must be {\"name\": \"NAME\"}")
            }
            return JSONResponse(try await daemon.vmadm { v in
                try v.createSnapshot(uuid, name)
                return Self.snapshotList(try v.get(uuid))
            }, status: .created)
        }

        tenants.post(":uuid/snapshots/:name/rollback") { _, context in
            let uuid = try Self.uuid(context)
            let name = try context.parameters.require("name")
            return JSONResponse(try await daemon.vmadm { v in
                try v.rollbackSnapshot(uuid, name)
                return try v.get(uuid)
            })
        }

        tenants.delete(":uuid/snapshots/:name") { _, context in
            let uuid = try Self.uuid(context)
            let name = try context.parameters.require("name")
            return JSONResponse(try await daemon.vmadm { v in
                try v.deleteSnapshot(uuid, name)
                return Self.snapshotList(try v.get(uuid))
            })
        }
    }

    /// The path's uuid: a full uuid only (no prefixes over the API), lower-cased.
    static func uuid(_ context: DaemonContext) throws -> String {
        let text = try context.parameters.require("uuid").lowercased()
        guard ValueChecks.isUUID(text) else { throw LumosError.notFound("VM \(text) does not exist (not a uuid); see GET /tenants") }
        return text
    }

    static func stopOptions(_ body: JSONValue) throws -> (Bool, Double) {
        guard let o = body.objectValue else { throw LumosError.invalid("stop: the body must be a JSON object such as {\"force\": true, \"timeout\": 30}") }
        for key in o.keys where key != "force" && key != "timeout" {
            throw LumosError.invalid("stop: unknown field \"\(key)\"; use force and timeout")
        }
        var force = false
        if let f = o["force"] {
            guard let b = f.boolValue else { throw LumosError.invalid("stop: force must be a boolean") }
            force = b
        }
        var timeout = 30.0
        if let t = o["timeout"] {
            guard let n = t.numberValue, n >= 0, n <= 3600 else { throw LumosError.invalid("stop: timeout must be a number of seconds from 0 to 3600") }
            timeout = n
        }
        return (force, timeout)
    }

    /// vmadm get's `snapshots` property, as the snapshot resources' list.
    static func snapshotList(_ vm: JSONValue) -> JSONValue {
        vm.lookup("snapshots") ?? .array([])
    }
}
