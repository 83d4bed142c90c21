import Glibc
import LumosCore

/// The host's side of a zone's metadata service (docs/architecture.md, "Metadata"): the key
/// directory `ROOT/zones/UUID/metadata/` the server (lumos-init --metadata-server, Sources/
/// lumos-init/metadata.c) serves, one file per key: `c-HEX` for customer_metadata (the zone
/// may change these with mdata-put and mdata-delete), `s-HEX` for the sdc: keys vmadm serves
/// (written at every boot), HEX the key's UTF-8 bytes in hex.
///
/// Once the directory exists it is the truth for customer_metadata: `TenantStore.read`
/// takes customer_metadata from it (so `vmadm get` shows what the zone put) and
/// `TenantStore.write` writes the manifest's customer_metadata into it. What the zone wrote
/// is read back with the server's caps and skipped when it breaks them (a name that is not a
/// key, a value that is not UTF-8 or too large).
public struct ZoneMetadata: Sendable {
    /// The caps the server enforces (metadata.c): key bytes, value bytes, keys, total bytes.
    public static let maxKeyBytes = 120
    public static let maxValueBytes = 65536
    public static let maxKeys = 128
    public static let maxTotalBytes = 1 << 20

    public let directory: String
    public let uuid: String

    public init(root: StateRoot, uuid: String) {
        self.uuid = uuid
        directory = root.sub("zones", uuid, "metadata")
    }

    /// The host directory bound into the zone at /native/.zonecontrol: it holds only the
    /// server's socket, metadata.sock.
    public static func socketDirectory(_ uuid: String) -> String { "/run/lumos/mdata/\(uuid)" }
    public static let zoneSocketDirectory = "/native/.zonecontrol"
    /// Where the tools are bound (read-only) inside the zone; on the zone's PATH.
    public static let zoneToolDirectory = "/native/usr/sbin"
    public static let tools = ["mdata-get", "mdata-put", "mdata-delete", "mdata-list"]

    static func fileName(_ prefix: Character, _ key: String) -> String {
        let hex = Array("0123456789abcdef")
        var name = "\(prefix)-"
        for b in key.utf8 { name.append(hex[Int(b >> 4)]); name.append(hex[Int(b & 15)]) }
        return name
    }

    static func key(fromFile name: String) -> String? {
        guard name.hasPrefix("c-") else { return nil }
        let hex = Array(name.utf8.dropFirst(2))
        guard !hex.isEmpty, hex.count % 2 == 0, hex.count / 2 <= maxKeyBytes else { return nil }
        var bytes: [UInt8] = []
        for i in stride(from: 0, to: hex.count, by: 2) {
            guard let hi = hexDigit(hex[i]), let lo = hexDigit(hex[i + 1]) else { return nil }
            bytes.append(hi << 4 | lo)
        }
        guard !bytes.contains(0), !bytes.contains(0x0a) else { return nil }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexDigit(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }

    public var exists: Bool { Files.isDirectory(directory) }

    /// customer_metadata as the zone and the host left it; nil before the directory exists.
    public func customerMetadata() -> [String: String]? {
        guard exists else { return nil }
        var out: [String: String] = [:]
        var total = 0
        for name in Files.list(directory) {
            guard out.count < Self.maxKeys, let key = Self.key(fromFile: name) else { continue }
            guard let bytes = readCapped("\(directory)/\(name)"), let value = String(validating: bytes, as: UTF8.self) else { continue }
            total += key.utf8.count + bytes.count
            if total > Self.maxTotalBytes { break }
            out[key] = value
        }
        return out
    }

    /// A regular file of at most maxValueBytes, read without following a link.
    private func readCapped(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size <= Self.maxValueBytes else { return nil }
        var buf = [UInt8](repeating: 0, count: Int(st.st_size))
        var got = 0
        while got < buf.count {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, $0.count - got) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return nil }
            got += n
        }
        return buf
    }

    /// Makes the directory's customer keys exactly `values` (each written atomically).
    public func writeCustomerMetadata(_ values: [String: String]) throws {
        try Files.makeDirectories(directory, mode: 0o700)
        let wanted = Dictionary(uniqueKeysWithValues: values.map { (Self.fileName("c", $0.key), $0.value) })
        for name in Files.list(directory) where name.hasPrefix("c-") && wanted[name] == nil { unlink("\(directory)/\(name)") }
        for (name, value) in wanted {
            if readCapped("\(directory)/\(name)") == Array(value.utf8) { continue }
            try Files.writeAtomically("\(directory)/\(name)", value, mode: 0o600)
        }
    }

    /// The sdc: keys of `m` (vmadm's metadata agent serves them from the VM's properties).
    public static func sdcKeys(_ m: Manifest, serverUUID: String?) -> [String: String] {
        var keys: [String: String] = [
            "sdc:uuid": m.uuid,
            "sdc:zonename": m.uuid,
            "sdc:hostname": m.hostname,
            "sdc:nics": JSONValue.array(m.nicsAsShown).serialized(pretty: false),
            "sdc:resolvers": JSONValue.array(m.resolvers.map { .string($0) }).serialized(pretty: false),
            "sdc:routes": JSONValue.array(m.routes.map { .object(["dst": .string($0.destination), "gateway": .string($0.gateway), "linklocal": .bool(false)]) }).serialized(pretty: false),
            "sdc:tags": (m.value("tags") ?? .object([:])).serialized(pretty: false),
            "sdc:brand": m.brand,
        ]
        if let alias = m.alias { keys["sdc:alias"] = alias }
        if !m.imageUUID.isEmpty { keys["sdc:image_uuid"] = m.imageUUID }
        if let serverUUID { keys["sdc:server_uuid"] = serverUUID }
        for name in ["owner_uuid", "billing_id", "dns_domain", "datacenter_name"] {
            if let v = m.value(name)?.stringValue { keys["sdc:\(name)"] = v }
        }
        if let mem = m.value("max_physical_memory")?.intValue { keys["sdc:max_physical_memory"] = String(mem) }
        if let quota = m.value("quota")?.intValue { keys["sdc:quota"] = String(quota) }
        return keys
    }

    /// Replaces the sdc: keys with those of `m` (at every boot). They are made again from the
    /// manifest at each boot, so a key is rewritten only when it changed, and without fsync
    /// (Files.replaceAtomically): two fsyncs for each of a dozen keys were a third of a
    /// `vmadm start` (BENCHMARKS.md, "df in a zone").
    public func writeSDCKeys(_ m: Manifest, serverUUID: String?) throws {
        try Files.makeDirectories(directory, mode: 0o700)
        let wanted = Dictionary(uniqueKeysWithValues: Self.sdcKeys(m, serverUUID: serverUUID).map { (Self.fileName("s", $0.key), $0.value) })
        for name in Files.list(directory) where name.hasPrefix("s-") && wanted[name] == nil { unlink("\(directory)/\(name)") }
        for (name, value) in wanted where readCapped("\(directory)/\(name)") != Array(value.utf8) {
            try Files.replaceAtomically("\(directory)/\(name)", Array(value.utf8), mode: 0o600)
        }
    }

    /// Marks the user-script as run; true only the first time (docs/vmadm.md, "Metadata").
    public func claimFirstBoot() -> Bool {
        (try? Files.makeDirectories(directory, mode: 0o700)) != nil
            && { let fd = open("\(directory)/user-script-ran", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600); if fd >= 0 { close(fd) }; return fd >= 0 }()
    }

    public func remove() {
        for name in Files.list(directory) { unlink("\(directory)/\(name)") }
        rmdir(directory)
        let sockets = Self.socketDirectory(uuid)
        unlink("\(sockets)/metadata.sock")
        rmdir(sockets)
    }
}

extension Manifest {
    /// customer_metadata as strings (what the table allows).
    var customerMetadata: [String: String] {
        (value("customer_metadata")?.objectValue ?? [:]).compactMapValues(\.stringValue)
    }
}
