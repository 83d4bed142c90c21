import Glibc
import LumosCore

/// Where a dataset, snapshot or piece of Lumos state lives inside a mounted pool.
///
/// `pool/a/b` is the subvolume `<mountpoint>/a/b` (nested subvolumes, so children are mounted
/// inside their parent as in ZFS). The pool's root dataset is the btrfs top level.
/// Snapshots live outside the dataset, at `.lumos/snapshots/a/b/@name`, so a tenant whose
/// root is its dataset cannot see or touch them; `@` cannot start a dataset component, so
/// snapshot directories never collide with child datasets. Each snapshot is a subvolume named
/// `data` inside its own `@name` directory: btrfs refuses to move a read-only subvolume to
/// another directory (EROFS), but renaming the directory that holds it works, which is how
/// receive and promote put snapshots in place.
extension Pool {
    var snapshotsDir: String { internalDir + "/snapshots" }
    var tmpDir: String { internalDir + "/tmp" }
    var trashDir: String { internalDir + "/trash" }
    var journalDir: String { internalDir + "/journal" }
    var receiveDir: String { internalDir + "/recv" }

    func path(_ ds: DatasetName) -> String {
        if ds.snapshot != nil {
            return snapshotHolder(ds) + "/" + Self.snapshotLeaf
        }
        return ds.path.isEmpty ? mountpoint : mountpoint + "/" + ds.relativePath
    }

    static let snapshotLeaf = "data"

    /// The `@name` directory holding a snapshot's subvolume.
    func snapshotHolder(_ snap: DatasetName) -> String {
        snapshotDirectory(snap.dataset) + "/@" + snap.snapshot!
    }

    func snapshotDirectory(_ ds: DatasetName) -> String {
        ds.path.isEmpty ? snapshotsDir : snapshotsDir + "/" + ds.relativePath
    }

    /// The dataset or snapshot name for a subvolume path relative to the pool's top level.
    func name(forRelativePath rel: String) -> DatasetName? {
        if rel.hasPrefix(".lumos/snapshots/") {
            let rest = rel.dropFirst(".lumos/snapshots/".count)
            var parts = rest.split(separator: "/").map(String.init)
            guard parts.popLast() == Self.snapshotLeaf, let last = parts.popLast(), last.hasPrefix("@") else { return nil }
            return DatasetName(pool: name, path: parts, snapshot: String(last.dropFirst()))
        }
        if rel.hasPrefix(".lumos") { return nil }
        let parts = rel.split(separator: "/").map(String.init)
        guard parts.allSatisfy(DatasetName.isValidComponent) else { return nil }
        return DatasetName(pool: name, path: parts)
    }

    func initializeLayout() throws {
        for d in [internalDir, snapshotsDir, tmpDir, trashDir, journalDir, receiveDir] {
            try Files.makeDirectories(d, mode: 0o700)
        }
        let root = DatasetName(pool: name, path: [])
        if Btrfs.getxattr(mountpoint, XAttr.qgroup) == nil {
            let fd = try openRoot()
            defer { close(fd) }
            let qg = try allocateQGroup(fd)
            try Btrfs.assign(fd, Btrfs.qgroupID(level: 0, 5), to: Btrfs.qgroupID(level: 1, qg))
            try Btrfs.setxattr(mountpoint, XAttr.qgroup, String(qg))
            try Btrfs.setxattr(mountpoint, XAttr.type, DatasetType.filesystem.rawValue)
        }
        _ = root
    }

    /// A fresh level-1 qgroup for a new dataset. Its id is stored with the dataset (xattr) and
    /// never changes, so rollback (which gives the subvolume a new id) keeps the same group.
    func allocateQGroup(_ fd: Int32) throws -> UInt64 {
        let existing = try Btrfs.qgroups(fd).keys.filter { $0 >> 48 == 1 }.map { $0 & 0xffff_ffff_ffff }
        let id = (existing.max() ?? 0) + 1
        try Btrfs.createQGroup(fd, Btrfs.qgroupID(level: 1, id))
        return id
    }
}

/// Dataset metadata kept in trusted.* extended attributes on the subvolume's root directory:
/// tenants (even root in a user namespace) cannot change trusted.*, and btrfs send carries them,
/// so properties travel with a stream.
enum XAttr {
    static let prefix = "trusted.lumos."
    static let type = prefix + "type"
    static let qgroup = prefix + "qgroup"
    static let quota = prefix + "quota"
    static let refquota = prefix + "refquota"
    static let origin = prefix + "origin"
    /// On a snapshot's holder directory: the generation of the dataset's head, committed, when
    /// Lumos last made that head equal to the snapshot (receive, rollback). Kept outside the
    /// head so that recording it does not change what it records.
    static let headGeneration = prefix + "head-generation"
    /// On a snapshot's holder directory: its holds (zfs hold), tags joined by ",".
    static let holds = prefix + "holds"
    /// On a volume made with -s: its size is not held to the pool's available space.
    static let sparse = prefix + "sparse"
    static let volsize = prefix + "volsize"
    static let attached = prefix + "attached"
    static let userPrefix = prefix + "u."
    /// btrfs's own per-inode compression property (what `btrfs property set ... compression` writes).
    static let compression = "btrfs.compression"
}
