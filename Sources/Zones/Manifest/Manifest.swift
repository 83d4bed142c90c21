import LumosCore

/// A VM's manifest: vmadm's JSON object, validated against `PropertyTable` and defaulted.
/// Stored as written (`$LUMOS_ROOT/zones/<uuid>/manifest.json`) so tools can read it.
public struct Manifest: Sendable, Equatable {
    public var properties: [String: JSONValue]

    public init(_ properties: [String: JSONValue]) { self.properties = properties }

    public subscript(_ name: String) -> JSONValue? {
        get { properties[name] }
        set { properties[name] = newValue }
    }

    /// A property's value, or its table default when the manifest lacks it (a manifest
    /// written by hand or by an older Lumos). Defaults live only in `PropertyTable`.
    public func value(_ name: String) -> JSONValue? {
        if let v = properties[name] { return v }
        switch PropertyTable.spec(name)?.defaultRule {
        case .value(let v)?: return v
        case .derived(let f)?:
            var withDefaults = properties
            for spec in PropertyTable.all where withDefaults[spec.name] == nil {
                if case .value(let v) = spec.defaultRule { withDefaults[spec.name] = v }
            }
            return f(withDefaults)
        default: return nil
        }
    }

    public func integer(_ name: String) -> Int64? { value(name)?.intValue }

    public var uuid: String { properties["uuid"]?.stringValue ?? "" }
    public var alias: String? { properties["alias"]?.stringValue }
    public var brand: String { properties["brand"]?.stringValue ?? "" }
    public var imageUUID: String { properties["image_uuid"]?.stringValue ?? "" }
    public var hostname: String { value("hostname")?.stringValue ?? uuid }
    public var autoboot: Bool { value("autoboot")?.boolValue ?? false }
    public var resolvers: [String] { value("resolvers")?.arrayValue?.compactMap(\.stringValue) ?? [] }
    public var indestructibleZoneroot: Bool { value("indestructible_zoneroot")?.boolValue ?? false }
    /// routes: destination → gateway, as vmadm writes them.
    public var routes: [(destination: String, gateway: String)] {
        (value("routes")?.objectValue ?? [:]).sorted { $0.key < $1.key }.compactMap { k, v in v.stringValue.map { (k, $0) } }
    }
    public var allowIOUring: Bool { value("lumos_allow_io_uring")?.boolValue ?? false }

    public var filesystems: [FilesystemMount] {
        (properties["filesystems"]?.arrayValue ?? []).compactMap { FilesystemMount(json: $0) }
    }

    public var nics: [JSONValue] { properties["nics"]?.arrayValue ?? [] }

    public var isKVM: Bool { brand == "kvm" }

    /// A kvm VM's disks[], typed; disk_driver is the model of disks that name none.
    public var disks: [VMDisk] {
        let model = value("disk_driver")?.stringValue.flatMap(VMDisk.Model.init(rawValue:)) ?? .virtio
        return (properties["disks"]?.arrayValue ?? []).compactMap(\.objectValue).map { VMDisk(json: $0, defaultModel: model) }
    }

    /// Only the properties a user set or Lumos defaulted — what is stored; computed ones
    /// (state, pid, ...) are added when printing.
    public var stored: Manifest {
        Manifest(properties.filter { !PropertyTable.computedProperties.contains($0.key) })
    }

    public var json: JSONValue { .object(properties) }

    public static func decode(_ bytes: [UInt8], what: String) throws -> Manifest {
        guard case .object(let o) = try JSONValue.parse(bytes, what: what) else {
            throw LumosError.invalid("\(what): a manifest must be a JSON object ({...})")
        }
        return Manifest(o)
    }
}

/// One entry of filesystems[]: a host directory bind-mounted into the zone (vmadm type "lofs").
public struct FilesystemMount: Sendable, Equatable {
    public var type: String
    public var source: String
    public var target: String
    public var options: [String]

    public var readOnly: Bool { options.contains("ro") }

    init?(json: JSONValue) {
        guard let o = json.objectValue, let s = o["source"]?.stringValue, let t = o["target"]?.stringValue else { return nil }
        type = o["type"]?.stringValue ?? "lofs"
        source = s
        target = t
        options = o["options"]?.arrayValue?.compactMap(\.stringValue) ?? []
    }
}
