import Glibc
import LumosCore
import Storage

/// `DatasetStore` over a real Lumos storage pool (btrfs subvolumes, snapshots, quotas).
public final class PoolDatasets: DatasetStore {
    public let pool: Pool
    public var poolName: String { pool.name }

    public init(_ pool: Pool) { self.pool = pool }

    /// Opens the pool vmadm uses (`zones`, as on SmartOS), with a hint when it is missing.
    public static func open(_ name: String = "zones", root: StateRoot) throws -> PoolDatasets {
        do {
            return PoolDatasets(try Pool.open(name, root: root))
        } catch let e as LumosError where e.kind == .notFound {
            throw LumosError.notFound("pool '\(name)' does not exist; create it first: lumos pool create \(name)")
        }
    }

    func name(_ text: String) throws -> DatasetName { try DatasetName(text) }

    public func exists(_ name: String) -> Bool { (try? self.name(name)).map(pool.exists) ?? false }
    public func mountpoint(_ name: String) throws -> String { try pool.mountpoint(self.name(name)) }
    public func createFilesystem(_ name: String) throws { try pool.createFilesystem(self.name(name)) }
    public func snapshot(_ name: String) throws { try pool.snapshot(self.name(name)) }
    /// Clones are tenants' datasets: the `lumos:owner` user property marks them, so that
    /// `pool destroy` refuses while tenants live on the pool (it travels with send/receive too).
    public func clone(_ snapshot: String, to: String) throws {
        let target = try name(to)
        try pool.clone(name(snapshot), to: target, properties: ["lumos:owner": target.path.last ?? to])
    }
    public func destroy(_ name: String, recursive: Bool) throws { try pool.destroy(self.name(name), recursive: recursive) }
    public func rollback(_ snapshot: String) throws { try pool.rollback(name(snapshot), destroyNewer: true) }
    public func hold(_ snapshot: String, tag: String) throws { try pool.hold(tag, name(snapshot)) }
    public func release(_ snapshot: String, tag: String) throws { try pool.release(tag, name(snapshot)) }
    public func holds(_ snapshot: String) throws -> [String] { try pool.holds(name(snapshot)) }

    public func setQuota(_ name: String, bytes: UInt64?) throws {
        try pool.set(self.name(name), "quota", bytes.map(String.init) ?? "none")
    }

    public func quotaGroupDirectory(_ name: String) -> String? { (try? self.name(name)).flatMap(pool.quotaGroupDirectory) }

    public func snapshots(of name: String) throws -> [String] {
        let ds = try self.name(name)
        return try pool.list(ds, recursive: false, types: [.snapshot])
            .sorted { $0.creation < $1.creation }
            .compactMap { $0.name.split(separator: "@", maxSplits: 1).dropFirst().first.map(String.init) }
    }

    /// Sparse: btrfs has no reservations, so a thick volume's only difference would be a space
    /// check at creation that guarantees nothing later (docs/vm.md, "Images and disks").
    public func availableBytes() -> UInt64? { try? pool.status().available }
    public func createVolume(_ name: String, bytes: UInt64) throws { try pool.createVolume(self.name(name), size: bytes, sparse: true) }
    public func volumeFile(_ name: String) throws -> String { try pool.volumeFile(self.name(name)) }
    public func volumeSize(_ name: String) throws -> UInt64 { try pool.volumeSize(self.name(name)) }
    public func growVolume(_ name: String, bytes: UInt64) throws { try pool.set(self.name(name), "volsize", String(bytes)) }
    public func copy(_ snapshot: String, to: String) throws { try pool.clone(name(snapshot), to: name(to), recordOrigin: false) }

    public func send(_ snapshot: String, to fd: Int32) throws { try pool.send(name(snapshot), to: fd) }
    public func receive(_ name: String, from fd: Int32) throws { try pool.receive(self.name(name), from: fd) }
}
