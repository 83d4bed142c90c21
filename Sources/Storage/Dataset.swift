import CLinux
import Glibc
import LumosCore

public enum DatasetType: String, Codable, Sendable, CaseIterable {
    case filesystem, volume, snapshot

    /// Parses `zfs list -t` words: filesystem, volume, snapshot (also snap, vol, fs, all).
    public static func parseList(_ text: String) throws -> Set<DatasetType> {
        var out: Set<DatasetType> = []
        for w in text.split(separator: ",") {
            switch w {
            case "all": out.formUnion(DatasetType.allCases)
            case "filesystem", "fs": out.insert(.filesystem)
            case "volume", "vol": out.insert(.volume)
            case "snapshot", "snap": out.insert(.snapshot)
            default: throw LumosError.invalid("invalid type '\(w)'; use filesystem, volume, snapshot or all")
            }
        }
        return out
    }
}

/// One row of `dataset list`: what ZFS users expect to read, all values in bytes.
public struct DatasetInfo: Codable, Sendable, Equatable {
    public var name: String
    public var type: DatasetType
    public var used: UInt64
    public var available: UInt64
    public var referenced: UInt64
    public var mountpoint: String?
    public var origin: String?
    public var quota: UInt64?
    public var refquota: UInt64?
    public var compression: String
    public var volsize: UInt64?
    public var creation: Int
    public var guid: String
    public var readonly: Bool
    public var userProperties: [String: String]
}

/// A subvolume found in the pool, with what it says about itself.
struct Entry {
    var name: DatasetName
    var path: String
    var info: Btrfs.SubvolumeInfo
    var type: DatasetType

    func xattr(_ key: String) -> String? { Btrfs.getxattr(path, key) }
}

extension Pool {
    /// Every dataset and snapshot in the pool, sorted by name.
    func entries() throws -> [Entry] {
        try requireMounted()
        var out: [Entry] = []
        let rootInfo = try Btrfs.info(mountpoint)
        out.append(Entry(name: DatasetName(pool: name, path: []), path: mountpoint, info: rootInfo, type: .filesystem))
        for (rel, _) in try Btrfs.subvolumes(mountpoint) {
            guard let n = name(forRelativePath: rel) else { continue }
            let p = mountpoint + "/" + rel
            guard let info = try? Btrfs.info(p) else { continue }
            let type: DatasetType = n.isSnapshot ? .snapshot : (Btrfs.getxattr(p, XAttr.type) == "volume" ? .volume : .filesystem)
            out.append(Entry(name: n, path: p, info: info, type: type))
        }
        return out.sorted { a, b in
            if a.name.dataset != b.name.dataset { return a.name.dataset < b.name.dataset }
            // Snapshots of one dataset in creation order (subvolume ids only grow).
            if a.name.isSnapshot != b.name.isSnapshot { return !a.name.isSnapshot }
            return a.info.id < b.info.id
        }
    }

    func entry(_ ds: DatasetName) throws -> Entry {
        try requireMounted()
        guard ds.pool == name else { throw LumosError.invalid("\(ds) is not in pool '\(name)'") }
        let p = path(ds)
        guard Btrfs.isSubvolume(p), let info = try? Btrfs.info(p) else {
            throw LumosError.notFound("dataset '\(ds)' does not exist; see: lumos dataset list -r \(ds.pool)")
        }
        let type: DatasetType = ds.isSnapshot ? .snapshot : (Btrfs.getxattr(p, XAttr.type) == "volume" ? .volume : .filesystem)
        return Entry(name: ds, path: p, info: info, type: type)
    }

    public func exists(_ ds: DatasetName) -> Bool {
        isMountedHere && Btrfs.isSubvolume(path(ds))
    }

    /// The directory holding a filesystem's files (a snapshot's is read-only).
    public func mountpoint(_ ds: DatasetName) throws -> String {
        let e = try entry(ds)
        guard e.type != .volume else { throw LumosError.invalid("\(ds) is a volume; use: lumos volume attach \(ds)") }
        return e.path
    }

    func qgroupNumber(_ path: String) -> UInt64? {
        Btrfs.getxattr(path, XAttr.qgroup).flatMap { UInt64($0) }
    }

    /// Where the kernel shows the live figures of the level-1 qgroup holding `ds`'s quota
    /// (`quota` is its exclusive limit): /sys/fs/btrfs/FSID/qgroups/1_N. A zone's statfs
    /// supervisor reads it (docs/architecture.md, "df in a zone"). nil: no such qgroup shown.
    public func quotaGroupDirectory(_ ds: DatasetName) -> String? {
        guard !config.uuid.isEmpty, let q = qgroupNumber(path(ds)) else { return nil }
        let dir = "/sys/fs/btrfs/\(config.uuid)/qgroups/1_\(q)"
        return Files.exists(dir) ? dir : nil
    }

    /// The level-1 qgroups a new subvolume at `ds` belongs to: its own plus every ancestor's,
    /// so a parent's quota counts its children.
    func ancestorQGroups(_ ds: DatasetName) -> [UInt64] {
        var out: [UInt64] = []
        var cur = ds.parent
        while let c = cur {
            if let q = qgroupNumber(path(c)) { out.append(Btrfs.qgroupID(level: 1, q)) }
            cur = c.parent
        }
        return out
    }

    /// Datasets and snapshots under `top` (or the whole pool), with their numbers.
    public func list(_ top: DatasetName? = nil, recursive: Bool = true, types: Set<DatasetType> = [.filesystem, .volume]) throws -> [DatasetInfo] {
        let all = try entries()
        let fd = try openRoot()
        defer { close(fd) }
        let groups = (try? Btrfs.qgroups(fd)) ?? [:]
        let pool = try spaceAvailable(fd)
        var rows: [DatasetInfo] = []
        if let top { _ = try entry(top) }
        for e in all {
            guard types.contains(e.type) else { continue }
            if let top {
                if top.isSnapshot { if e.name != top { continue } } else {
                    guard e.name.isWithin(top) else { continue }
                    let d = e.name.dataset
                    if !recursive && d != top { continue }
                    if !recursive && e.name.isSnapshot && !types.contains(.snapshot) { continue }
                }
            }
            rows.append(info(e, groups: groups, poolAvailable: pool, all: all))
        }
        return rows
    }

    func info(_ e: Entry, groups: [UInt64: Btrfs.QGroup], poolAvailable: UInt64, all: [Entry]) -> DatasetInfo {
        let own = groups[Btrfs.qgroupID(level: 0, e.info.id)]
        let qg = qgroupNumber(e.path).flatMap { groups[Btrfs.qgroupID(level: 1, $0)] }
        let used = e.name.isSnapshot ? (own?.exclusive ?? 0) : (qg?.exclusive ?? own?.exclusive ?? 0)
        // Available: the pool's free space, capped by this dataset's and every ancestor's quota.
        var avail = poolAvailable
        if !e.name.isSnapshot {
            var cur: DatasetName? = e.name
            while let c = cur {
                let p = path(c)
                if let q = qgroupNumber(p), let g = groups[Btrfs.qgroupID(level: 1, q)], let limit = g.maxExclusive {
                    avail = min(avail, limit > g.exclusive ? limit - g.exclusive : 0)
                }
                cur = c.parent
            }
            if let g = own, let limit = g.maxReferenced { avail = min(avail, limit > g.referenced ? limit - g.referenced : 0) }
        }
        var user: [String: String] = [:]
        for k in Btrfs.listxattr(e.path) where k.hasPrefix(XAttr.userPrefix) {
            user[String(k.dropFirst(XAttr.userPrefix.count))] = Btrfs.getxattr(e.path, k)
        }
        let compression = Btrfs.getxattr(e.path, XAttr.compression).map { $0.isEmpty ? "zstd" : $0 } ?? "zstd"
        return DatasetInfo(
            name: e.name.description, type: e.type, used: used, available: e.name.isSnapshot ? 0 : avail,
            referenced: referenced(e, own: own),
            mountpoint: e.type == .filesystem ? e.path : nil,
            origin: e.name.isSnapshot ? nil : e.xattr(XAttr.origin),
            quota: e.name.isSnapshot ? nil : e.xattr(XAttr.quota).flatMap { UInt64($0) },
            refquota: e.name.isSnapshot ? nil : e.xattr(XAttr.refquota).flatMap { UInt64($0) },
            compression: compression == "none" || compression == "no" ? "off" : compression,
            volsize: e.type == .volume || (e.name.isSnapshot && e.xattr(XAttr.type) == "volume") ? e.xattr(XAttr.volsize).flatMap { UInt64($0) } : nil,
            creation: e.info.created, guid: e.info.uuid, readonly: e.info.readOnly, userProperties: user)
    }

    /// Referenced bytes. Simple quotas charge blocks to the subvolume that wrote them: a
    /// subvolume made from nothing wrote all it references, but one made by snapshot, clone
    /// or incremental receive shares blocks charged to its origin, so count its files instead.
    func referenced(_ e: Entry, own: Btrfs.QGroup?) -> UInt64 {
        if e.info.parentUUID.isEmpty, let own { return own.referenced }
        return DiskUsage.allocatedBytes(under: e.path)
    }

    func spaceAvailable(_ fd: Int32) throws -> UInt64 {
        var s = statfs()
        guard fstatfs(fd, &s) == 0 else { throw Errno(errno, "statfs", mountpoint) }
        return UInt64(s.f_bavail) * UInt64(s.f_bsize)
    }
}

/// Allocated bytes of the files below a directory (st_blocks), not crossing into nested subvolumes.
enum DiskUsage {
    static func allocatedBytes(under dir: String) -> UInt64 {
        var total: UInt64 = 0
        var st = stat()
        guard lstat(dir, &st) == 0 else { return 0 }
        let dev = st.st_dev
        var stack = [dir]
        while let d = stack.popLast() {
            for name in Files.list(d) {
                let p = d + "/" + name
                guard lstat(p, &st) == 0 else { continue }
                if st.st_dev != dev { continue }
                total += UInt64(st.st_blocks) * 512
                if (st.st_mode & S_IFMT) == S_IFDIR { stack.append(p) }
            }
        }
        return total
    }
}
