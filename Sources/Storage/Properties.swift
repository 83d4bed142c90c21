import Glibc
import LumosCore

/// One table for every dataset property (the vmadm idea, applied to zfs properties): which are
/// read-only, which can be given at create, which apply to which types, and how values parse.
public struct PropertySpec: Sendable {
    public var name: String
    public var readOnly: Bool
    public var types: Set<DatasetType>
    public var help: String
}

public enum PropertyTable {
    public static let all: [PropertySpec] = [
        .init(name: "type", readOnly: true, types: [.filesystem, .volume, .snapshot], help: "filesystem, volume or snapshot"),
        .init(name: "creation", readOnly: true, types: [.filesystem, .volume, .snapshot], help: "when it was created"),
        .init(name: "used", readOnly: true, types: [.filesystem, .volume, .snapshot], help: "space charged to it, its snapshots and children"),
        .init(name: "available", readOnly: true, types: [.filesystem, .volume], help: "space it can still use (pool free space capped by quotas)"),
        .init(name: "referenced", readOnly: true, types: [.filesystem, .volume, .snapshot], help: "space its files occupy"),
        .init(name: "origin", readOnly: true, types: [.filesystem, .volume], help: "the snapshot a clone was made from"),
        .init(name: "mountpoint", readOnly: true, types: [.filesystem, .snapshot], help: "where its files are (fixed by the pool's layout)"),
        .init(name: "guid", readOnly: true, types: [.filesystem, .volume, .snapshot], help: "the btrfs subvolume uuid"),
        .init(name: "checksum", readOnly: true, types: [.filesystem, .volume, .snapshot], help: "the pool's checksum algorithm"),
        .init(name: "quota", readOnly: false, types: [.filesystem, .volume], help: "limit on used (this dataset, its snapshots and children); size or none"),
        .init(name: "refquota", readOnly: false, types: [.filesystem, .volume], help: "limit on the space this dataset's own subvolume is charged; size or none"),
        .init(name: "compression", readOnly: false, types: [.filesystem, .volume], help: "on|off|zstd|lzo|zlib|gzip; applies to new writes"),
        .init(name: "readonly", readOnly: false, types: [.filesystem, .volume], help: "on|off"),
        .init(name: "volsize", readOnly: false, types: [.volume], help: "the volume's size; can only grow"),
    ]

    public static func spec(_ name: String) -> PropertySpec? {
        let n = alias(name)
        return all.first { $0.name == n }
    }

    static func alias(_ name: String) -> String {
        switch name {
        case "avail": return "available"
        case "refer": return "referenced"
        case "compress": return "compression"
        case "rdonly": return "readonly"
        default: return name
        }
    }

    /// A user property is `module:name` as in ZFS (e.g. `lumos:owner`, `com.example:tier`).
    public static func isUserProperty(_ name: String) -> Bool {
        guard let colon = name.firstIndex(of: ":"), colon != name.startIndex, name.index(after: colon) != name.endIndex else { return false }
        return name.utf8.count <= 255 && name.unicodeScalars.allSatisfy { $0.isASCIIAlnum || "_-.:".unicodeScalars.contains($0) }
    }

    /// Validates `name=value` for `set` (and create) and returns the normalized value.
    public static func validate(_ name: String, _ value: String, type: DatasetType) throws -> String {
        if isUserProperty(name) {
            guard value.utf8.count <= 1024 else { throw LumosError.invalid("value of user property '\(name)' is longer than 1024 bytes") }
            return value
        }
        guard let spec = spec(name) else {
            throw LumosError.invalid("invalid property '\(name)'; see 'lumos dataset get all DATASET' (user properties need the form module:name)")
        }
        guard !spec.readOnly else { throw LumosError.invalid("property '\(spec.name)' is read-only") }
        guard spec.types.contains(type) else { throw LumosError.invalid("property '\(spec.name)' does not apply to a \(type.rawValue)") }
        switch spec.name {
        case "quota", "refquota":
            if value == "none" || value == "0" { return "none" }
            guard let b = Size.parse(value), b > 0 else { throw LumosError.invalid("bad \(spec.name) '\(value)': use a size like 10G, or none") }
            return String(b)
        case "volsize":
            guard let b = Size.parse(value), b > 0 else { throw LumosError.invalid("bad volsize '\(value)': use a size like 10G") }
            return String(b)
        case "compression":
            switch value {
            case "on", "zstd": return "zstd"
            case "off", "none": return "off"
            case "lzo": return "lzo"
            case "zlib", "gzip": return "zlib"
            case "lz4", "lzjb", "zle": throw LumosError.unsupported("compression '\(value)' is not available on btrfs; use zstd, lzo, zlib or off")
            default: throw LumosError.invalid("bad compression '\(value)': use on, off, zstd, lzo, zlib or gzip")
            }
        case "readonly":
            guard value == "on" || value == "off" else { throw LumosError.invalid("bad readonly '\(value)': use on or off") }
            return value
        default:
            return value
        }
    }

    static func validateForCreate(_ props: [String: String], type: DatasetType) throws -> [String: String] {
        var out: [String: String] = [:]
        for (k, v) in props {
            let name = isUserProperty(k) ? k : (spec(k)?.name ?? k)
            if name == "volsize" { throw LumosError.invalid("give a volume's size with -V SIZE, not -o volsize") }
            out[name] = try validate(k, v, type: type)
        }
        return out
    }
}

extension Pool {
    /// Sets a property on a dataset; quota and compression take effect at once.
    public func set(_ ds: DatasetName, _ property: String, _ value: String) throws {
        let lock = try begin()
        defer { _ = lock }
        let e = try entry(ds)
        if e.type == .snapshot {
            guard PropertyTable.isUserProperty(property) else { throw LumosError.invalid("snapshots are read-only; only user properties (module:name) can be set on them") }
            throw LumosError.unsupported("btrfs snapshots are read-only, so user properties cannot be added to '\(ds)' after it was taken")
        }
        let name = PropertyTable.isUserProperty(property) ? property : (PropertyTable.spec(property)?.name ?? property)
        let v = try PropertyTable.validate(property, value, type: e.type)
        let fd = try openRoot()
        defer { close(fd) }
        let clean = try cleanHeadSnapshot(ds, fd: fd)
        try applyProperty(name, v, path: e.path, dataset: ds, fd: fd, creating: false)
        // A property is not a change to the data: a head that an incremental receive could move
        // forward stays so (zfs set does not count as a modification either).
        if let clean { recordCleanHead(ds, equals: clean, fd: fd) }
    }

    /// Removes a user property (zfs inherit).
    public func inherit(_ ds: DatasetName, _ property: String) throws {
        let lock = try begin()
        defer { _ = lock }
        let e = try entry(ds)
        guard PropertyTable.isUserProperty(property) else { throw LumosError.invalid("only user properties (module:name) can be inherited/cleared") }
        let fd = try openRoot()
        defer { close(fd) }
        let clean = e.type == .snapshot ? nil : try cleanHeadSnapshot(ds, fd: fd)
        Btrfs.removexattr(e.path, XAttr.userPrefix + property)
        if let clean { recordCleanHead(ds, equals: clean, fd: fd) }
    }

    func applyProperty(_ name: String, _ value: String, path p: String, dataset ds: DatasetName, fd: Int32, creating: Bool) throws {
        if PropertyTable.isUserProperty(name) {
            try Btrfs.setxattr(p, XAttr.userPrefix + name, value)
            return
        }
        switch name {
        case "quota":
            guard let qg = qgroupNumber(p) else { throw LumosError(.corrupt, "dataset '\(ds)' has no quota group; run lumos pool import \(ds.pool) to repair") }
            let id = Btrfs.qgroupID(level: 1, qg)
            let limit = value == "none" ? nil : UInt64(value)
            if let limit, !creating, let g = try Btrfs.qgroups(fd)[id], g.exclusive > limit {
                throw LumosError(.quota, "cannot set quota of '\(ds)' to \(Size.format(limit)): it already uses \(Size.format(g.exclusive)); choose at least that or free space first")
            }
            // By qgroup id on the pool root: a path inside an over-quota dataset gets EDQUOT.
            try Btrfs.limitExclusive(fd, id, limit.map { .bytes($0) } ?? .none)
            if let limit { try Btrfs.setxattr(p, XAttr.quota, String(limit)) } else { Btrfs.removexattr(p, XAttr.quota) }
        case "refquota":
            let info = try Btrfs.info(p)
            let id = Btrfs.qgroupID(level: 0, info.id)
            let limit = value == "none" ? nil : UInt64(value)
            if let limit, !creating, let g = try Btrfs.qgroups(fd)[id], g.referenced > limit {
                throw LumosError(.quota, "cannot set refquota of '\(ds)' to \(Size.format(limit)): it already references \(Size.format(g.referenced)); choose at least that")
            }
            try Btrfs.limitReferenced(fd, id, limit.map { .bytes($0) } ?? .none)
            if let limit { try Btrfs.setxattr(p, XAttr.refquota, String(limit)) } else { Btrfs.removexattr(p, XAttr.refquota) }
        case "compression":
            try Btrfs.setxattr(p, XAttr.compression, value == "off" ? "none" : value)
        case "readonly":
            try Btrfs.setReadOnly(p, value == "on")
        case "volsize":
            let size = UInt64(value)!
            let file = p + "/" + Volume.fileName
            var st = stat()
            guard stat(file, &st) == 0 else { throw Errno(errno, "stat", file) }
            guard size >= UInt64(st.st_size) else {
                throw LumosError.invalid("cannot shrink volume '\(ds)' from \(Size.format(UInt64(st.st_size))) to \(Size.format(size)); volumes can only grow")
            }
            let growth = size - UInt64(st.st_size)
            if Btrfs.getxattr(p, XAttr.sparse) == nil, growth > 0 {
                let available = try spaceAvailable(fd)
                guard growth <= available else {
                    throw LumosError(.noSpace, "cannot grow volume '\(ds)' by \(Size.format(growth)): the pool has \(Size.format(available)) available (volumes made with -s may grow past it)")
                }
            }
            guard truncate(file, off_t(size)) == 0 else { throw Errno(errno, "truncate", file) }
            try Btrfs.setxattr(p, XAttr.volsize, value)
            if let dev = LoopDevice.find(backing: file) { try LoopDevice.refreshCapacity(dev) }
        default:
            throw LumosError.invalid("property '\(name)' cannot be set")
        }
    }

    /// One property's value as `get` prints it, with its source (local, default, -).
    public func get(_ ds: DatasetName, _ property: String) throws -> String {
        try properties(ds).first { $0.name == (PropertyTable.isUserProperty(property) ? property : PropertyTable.alias(property)) }?.value
            ?? { throw LumosError.invalid("invalid property '\(property)'") }()
    }

    public struct PropertyValue: Codable, Sendable, Equatable {
        public var name: String
        public var value: String
        public var source: String
    }

    /// All properties of a dataset, in the table's order, then user properties.
    public func properties(_ ds: DatasetName, parsable: Bool = false) throws -> [PropertyValue] {
        let e = try entry(ds)
        let fd = try openRoot()
        defer { close(fd) }
        let groups = (try? Btrfs.qgroups(fd)) ?? [:]
        let i = info(e, groups: groups, poolAvailable: try spaceAvailable(fd), all: [])
        func size(_ v: UInt64?) -> String { v.map { parsable ? String($0) : Size.format($0) } ?? "none" }
        var out: [PropertyValue] = []
        for spec in PropertyTable.all where spec.types.contains(e.type) {
            let v: String, src: String
            switch spec.name {
            case "type": (v, src) = (e.type.rawValue, "-")
            case "creation": (v, src) = (parsable ? String(i.creation) : formatDate(i.creation), "-")
            case "used": (v, src) = (size(i.used), "-")
            case "available": (v, src) = (size(i.available), "-")
            case "referenced": (v, src) = (size(i.referenced), "-")
            case "origin": (v, src) = (i.origin ?? "-", "-")
            case "mountpoint": (v, src) = (e.type == .volume ? "-" : e.path, "-")
            case "guid": (v, src) = (i.guid.isEmpty ? "-" : i.guid, "-")
            case "checksum": (v, src) = (config.checksum.rawValue, "-")
            case "quota": (v, src) = (size(i.quota), i.quota == nil ? "default" : "local")
            case "refquota": (v, src) = (size(i.refquota), i.refquota == nil ? "default" : "local")
            case "compression":
                let local = e.xattr(XAttr.compression) != nil
                (v, src) = (i.compression, local ? "local" : "default")
            case "readonly": (v, src) = (i.readonly ? "on" : "off", i.readonly ? "local" : "default")
            case "volsize": (v, src) = (size(i.volsize), "local")
            default: continue
            }
            out.append(PropertyValue(name: spec.name, value: v, source: src))
        }
        for (k, v) in i.userProperties.sorted(by: { $0.key < $1.key }) { out.append(PropertyValue(name: k, value: v, source: "local")) }
        return out
    }

    func formatDate(_ t: Int) -> String {
        var tt = time_t(t)
        var tmv = tm()
        localtime_r(&tt, &tmv)
        var buf = [UInt8](repeating: 0, count: 64)
        let n = buf.withUnsafeMutableBufferPointer { b in
            b.baseAddress!.withMemoryRebound(to: CChar.self, capacity: b.count) { strftime($0, b.count, "%a %b %e %H:%M %Y", &tmv) }
        }
        return String(decoding: buf[0..<n], as: UTF8.self)
    }
}
