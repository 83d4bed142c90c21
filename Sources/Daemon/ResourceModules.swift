import Foundation
import Hummingbird
import Images
import LumosCore
import Net
import Storage
import Zones

/// Encodes a library value (Codable) as JSONValue, sorted as the CLI's --json prints it.
func jsonValue<T: Encodable>(_ value: T) throws -> JSONValue {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return try JSONValue.parse(Array(try encoder.encode(value)), what: "response")
}

/// `/images`: imgadm list, get and import (ImageStore, as the CLI).
struct ImagesModule: DaemonModule {
    func addRoutes(to router: DaemonRouter, daemon: DaemonEnvironment) {
        let images = router.group("images")
        images.get { _, _ in
            JSONResponse(.array(try await daemon.vmadm { v in v.images.list().map(\.json) }))
        }
        images.get(":uuid") { _, context in
            let uuid = try context.parameters.require("uuid").lowercased()
            guard ValueChecks.isUUID(uuid) else { throw LumosError.notFound("image \(uuid) is not installed (not a uuid); see GET /images") }
            return JSONResponse(try await daemon.vmadm { v in try v.images.get(uuid).json })
        }
        // imgadm import -m MANIFEST -f FILE: both are paths on the host (the API is root's).
        images.post("import") { request, _ in
            var request = request
            let body = try await request.jsonBody()
            guard let manifest = body.lookup("manifest")?.stringValue, let file = body.lookup("file")?.stringValue else {
                throw LumosError.invalid("import: the body must be {\"manifest\": \"/path/to/manifest.json\", \"file\": \"/path/to/file\"}")
            }
            for p in [manifest, file] where !p.hasPrefix("/") || !Files.exists(p) {
                throw LumosError.notFound("import: \(p) is not an existing absolute path on the host")
            }
            return JSONResponse(try await daemon.vmadm { v in
                let m = try v.images.importImage(manifest: manifest, file: file)
                return try v.images.get(m.uuid).json
            }, status: .created)
        }
    }
}

/// `/datasets`: zfs list over every imported pool (Storage, as `lumos dataset list --json`).
struct DatasetsModule: DaemonModule {
    func addRoutes(to router: DaemonRouter, daemon: DaemonEnvironment) {
        let root = daemon.root
        router.get("datasets") { _, _ in
            JSONResponse(try await Detached.run {
                var rows: [DatasetInfo] = []
                for cfg in Pool.list(root: root) where !cfg.exported {
                    guard let pool = try? Pool.open(cfg.name, root: root) else { continue }
                    rows += try pool.list(nil, recursive: true, types: [.filesystem, .volume, .snapshot])
                }
                return try jsonValue(rows)
            })
        }
        // The name is one path segment: its slashes (and the @ of a snapshot) percent-encoded.
        router.get("datasets/:name") { _, context in
            let raw = try context.parameters.require("name")
            let text = raw.removingPercentEncoding ?? raw
            return JSONResponse(try await Detached.run {
                let name: DatasetName
                do { name = try DatasetName(text) } catch { throw LumosError.notFound("dataset \(text) does not exist (\(oneLine(error)))") }
                guard let cfg = Pool.list(root: root).first(where: { $0.name == name.pool && !$0.exported }) else {
                    throw LumosError.notFound("dataset \(text) does not exist: pool \(name.pool) is not imported")
                }
                let pool = try Pool.open(cfg.name, root: root)
                guard pool.exists(name) else { throw LumosError.notFound("dataset \(text) does not exist; see GET /datasets") }
                guard let row = try pool.list(name, recursive: false, types: Set(DatasetType.allCases)).first(where: { $0.name == name.description }) else {
                    throw LumosError.notFound("dataset \(text) does not exist; see GET /datasets")
                }
                return try jsonValue(row)
            })
        }
    }
}

/// `/networks`: the switches (etherstubs, and nic tags: switches with an uplink), as
/// `dladm show-etherstub`.
struct NetworksModule: DaemonModule {
    func addRoutes(to router: DaemonRouter, daemon: DaemonEnvironment) {
        let root = daemon.root
        router.get("networks") { _, _ in
            JSONResponse(try await Detached.run {
                let views = try NetworkHost.fromEnvironment(root: root).switchViews()
                return [
                    "etherstubs": try jsonValue(views.filter { $0.uplink == nil }),
                    "nic_tags": try jsonValue(views.filter { $0.uplink != nil }),
                ]
            })
        }
    }
}

/// The OpenAPI document, by hand in the repository (docs/api/openapi.yaml), at /openapi.yaml.
struct OpenAPIModule: DaemonModule {
    let path: String

    func addRoutes(to router: DaemonRouter, daemon: DaemonEnvironment) {
        let path = self.path
        router.get("openapi.yaml") { _, _ in
            let bytes = try await Detached.run {
                guard Files.exists(path) else { throw LumosError.notFound("the OpenAPI document \(path) is not installed") }
                return try FD.readFile(path)
            }
            return Response(status: .ok, headers: [.contentType: "application/yaml"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
        }
    }
}
