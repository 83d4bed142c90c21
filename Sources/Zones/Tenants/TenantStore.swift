import Foundation
import Glibc
import LumosCore

/// Where tenants' manifests live: `$LUMOS_ROOT/zones/<uuid>/manifest.json` (a contract:
/// the tracer reads "alias" from it), written atomically, with a per-tenant lock and intent
/// journal in `$LUMOS_ROOT/zones/.journal`.
public struct TenantStore: Sendable {
    public let root: StateRoot
    public let journal: Journal

    public init(root: StateRoot) {
        self.root = root
        journal = Journal(directory: root.sub("zones", ".journal"))
    }

    public var directory: String { root.sub("zones") }
    public func tenantDirectory(_ uuid: String) -> String { root.sub("zones", uuid) }
    public func manifestPath(_ uuid: String) -> String { root.sub("zones", uuid, "manifest.json") }
    public func consoleLog(_ uuid: String) -> String { root.sub("zones", uuid, "console.log") }

    public func exists(_ uuid: String) -> Bool { Files.exists(manifestPath(uuid)) }

    public func read(_ uuid: String) throws -> Manifest {
        let path = manifestPath(uuid)
        guard Files.exists(path) else { throw LumosError.notFound("VM \(uuid) does not exist; see vmadm list") }
        var m = try Manifest.decode(try FD.readFile(path), what: path)
        // What the zone put with mdata-put is customer_metadata (ZoneMetadata).
        if let live = ZoneMetadata(root: root, uuid: uuid).customerMetadata() { m["customer_metadata"] = .object(live.mapValues { .string($0) }) }
        return m
    }

    /// Writes the stored part of a manifest atomically, stamping last_modified.
    public func write(_ manifest: Manifest) throws {
        var m = manifest.stored
        m["last_modified"] = .string(Self.timestamp())
        try Files.makeDirectories(tenantDirectory(manifest.uuid), mode: 0o700)
        try Files.writeAtomically(manifestPath(manifest.uuid), m.json.serialized() + "\n", mode: 0o644)
        try ZoneMetadata(root: root, uuid: manifest.uuid).writeCustomerMetadata(manifest.customerMetadata)
    }

    public func remove(_ uuid: String) {
        let dir = tenantDirectory(uuid)
        unlink(manifestPath(uuid))
        unlink(consoleLog(uuid))
        unlink(consoleLog(uuid) + ".0")
        unlink(dir + "/console.sock")  // an lx zone's console relay's socket, left when it was killed
        ZoneMetadata(root: root, uuid: uuid).remove()
        // A kvm VM's files beside them (qemu.log, accelerator, the relay's exit record).
        for name in Files.list(dir) { unlink("\(dir)/\(name)") }
        rmdir(dir)
    }

    /// All tenants with a manifest, by uuid.
    public func uuids() -> [String] {
        Files.list(directory).filter { ValueChecks.isUUID($0) && Files.exists(manifestPath($0)) }
    }

    public func all() -> [Manifest] { uuids().compactMap { try? read($0) } }

    /// Finds a tenant by full uuid, or a unique prefix as a convenience.
    public func resolve(_ text: String) throws -> String {
        let id = text.lowercased()
        if exists(id) { return id }
        let matches = uuids().filter { $0.hasPrefix(id) }
        if matches.count == 1, id.count >= 4 { return matches[0] }
        if matches.count > 1 { throw LumosError.invalid("\(text) matches \(matches.count) VMs; give more of the uuid") }
        throw LumosError.notFound("VM \(text) does not exist; see vmadm list")
    }

    public static func timestamp() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date())
    }
}
