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

    public var uuid: String { properties["uuid"]?.stringValue ?? "" }
    public var alias: String? { properties["alias"]?.stringValue }
    public var brand: String { properties["brand"]?.stringValue ?? "" }
    public var imageUUID: String { properties["image_uuid"]?.stringValue ?? "" }
    public var hostname: String { properties["hostname"]?.stringValue ?? uuid }
    public var autoboot: Bool { properties["autoboot"]?.boolValue ?? true }
    public var initName: String { properties["init_name"]?.stringValue ?? "/sbin/init" }
    public var resolvers: [String] { properties["resolvers"]?.arrayValue?.compactMap(\.stringValue) ?? [] }
    public var dnsDomain: String? { properties["dns_domain"]?.stringValue }

    public func mebibytes(_ name: String) -> Int64? { properties[name]?.intValue }
    public var maxPhysicalMemoryMiB: Int64 { mebibytes("max_physical_memory") ?? 256 }
    public var maxLockedMemoryMiB: Int64 { mebibytes("max_locked_memory") ?? maxPhysicalMemoryMiB }
    public var maxSwapMiB: Int64 { mebibytes("max_swap") ?? max(maxPhysicalMemoryMiB, 256) }
    public var maxLwps: Int64 { properties["max_lwps"]?.intValue ?? 2000 }
    public var cpuShares: Int64 { properties["cpu_shares"]?.intValue ?? 100 }
    /// nil when uncapped (absent or 0, as vmadm treats 0).
    public var cpuCapPercent: Int64? { properties["cpu_cap"]?.intValue.flatMap { $0 > 0 ? $0 : nil } }
    public var ioPriority: Int64 { properties["zfs_io_priority"]?.intValue ?? 100 }
    /// nil when unlimited (0).
    public var quotaGiB: Int64? { properties["quota"]?.intValue.flatMap { $0 > 0 ? $0 : nil } }
    public var tmpfsMiB: Int64 { mebibytes("tmpfs") ?? Int64(TmpfsBudget(maxPhysicalMemory: UInt64(maxPhysicalMemoryMiB)).maxTmp) }

    public var filesystems: [FilesystemMount] {
        (properties["filesystems"]?.arrayValue ?? []).compactMap { FilesystemMount(json: $0) }
    }

    public var nics: [JSONValue] { properties["nics"]?.arrayValue ?? [] }
    public var zlogMaxSize: UInt64 { properties["zlog_max_size"]?.intValue.map(UInt64.init) ?? ConsoleLog.defaultMaxBytes }
    public var allowIOUring: Bool { properties["lumos_allow_io_uring"]?.boolValue ?? false }

    /// Only the properties a user set or Lumos defaulted — what is stored; computed ones
    /// (state, pid, ...) are added when printing.
    public var stored: Manifest {
        Manifest(properties.filter { !PropertyTable.runtimeComputed.contains($0.key) })
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
