import Glibc
import LumosCore

/// The storage operations images and tenants need, by ZFS-style name (`zones/<uuid>`,
/// `zones/<uuid>@final`). The real implementation is the Storage module's pool; a plain
/// directory stand-in serves logic tests. Narrow on purpose (docs/architecture.md "narrow protocol").
public protocol DatasetStore: AnyObject {
    var poolName: String { get }
    func exists(_ name: String) -> Bool
    /// Directory of a filesystem (a snapshot: its read-only directory).
    func mountpoint(_ name: String) throws -> String
    func createFilesystem(_ name: String) throws
    /// A read-only snapshot `ds@snap`.
    func snapshot(_ name: String) throws
    /// A writable clone of a snapshot.
    func clone(_ snapshot: String, to: String) throws
    func destroy(_ name: String, recursive: Bool) throws
    /// Makes a dataset's contents those of its snapshot again.
    func rollback(_ snapshot: String) throws
    /// Size cap in bytes; nil removes it.
    func setQuota(_ name: String, bytes: UInt64?) throws
    /// The sysfs directory (/sys/fs/btrfs/FSID/qgroups/1_N) of the qgroup that holds `name`'s
    /// quota, live; nil when there is none to read (docs/architecture.md, "df in a zone").
    func quotaGroupDirectory(_ name: String) -> String?
    /// zfs hold / release: a snapshot with a hold cannot be destroyed, alone or with its dataset.
    func hold(_ snapshot: String, tag: String) throws
    func release(_ snapshot: String, tag: String) throws
    func holds(_ snapshot: String) throws -> [String]
    /// Snapshot names (the part after @) of a dataset, oldest first.
    func snapshots(of name: String) throws -> [String]
    /// Writes a full stream of `snapshot` to `fd`.
    func send(_ snapshot: String, to fd: Int32) throws
    /// Creates dataset `name` from a stream made by `send`.
    func receive(_ name: String, from fd: Int32) throws

    // Volumes (zvols): a dataset holding one sparse copy-on-write file, `volume.raw`
    // (docs/vm.md, "Images and disks"). Snapshot, clone, rollback, send and receive above work
    // on them as on filesystems.

    /// A new volume of `bytes` (a sparse file: no space is taken until written).
    func createVolume(_ name: String, bytes: UInt64) throws
    /// Host path of the raw file of a volume or of a volume's snapshot (read-only).
    func volumeFile(_ name: String) throws -> String
    /// A volume's (or its snapshot's) size in bytes.
    func volumeSize(_ name: String) throws -> UInt64
    /// Grows a volume to `bytes`; shrinking is refused.
    func growVolume(_ name: String, bytes: UInt64) throws
    /// An O(1) writable copy of a snapshot (blocks shared, nothing copied) that is not tied to
    /// it: not a tenant's clone, and the snapshot may be destroyed while the copy lives.
    func copy(_ snapshot: String, to: String) throws
    /// Bytes the pool can still take (nil when unknown).
    func availableBytes() -> UInt64?
}

extension DatasetStore {
    public func dataset(_ uuid: String) -> String { "\(poolName)/\(uuid)" }
}
