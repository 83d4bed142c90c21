import CLinux
import Glibc
import LumosCore

/// Volumes (the zvol equivalent): a dataset holding one sparse file, kept copy-on-write so
/// btrfs checksums protect it (a nocow file has no checksums; docs/architecture.md), and exposed as a
/// loop block device with direct I/O. Snapshot, clone and send work as for any dataset.
public enum Volume {
    public static let fileName = "volume.raw"
}

extension LoopDevice {
    static func refreshCapacity(_ device: String) throws {
        let fd = try sys("open", device) { open(device, O_RDWR | O_CLOEXEC) }
        defer { close(fd) }
        try sys("LOOP_SET_CAPACITY", device) { clinux_loop_set_capacity(fd) }
    }
}

extension Pool {
    func createVolumeFile(_ file: String, size: UInt64) throws {
        let fd = try sys("open", file) { Glibc.open(file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600) }
        defer { close(fd) }
        guard ftruncate(fd, off_t(size)) == 0 else { throw Errno(errno, "ftruncate", file) }
    }

    public func volumeFile(_ ds: DatasetName) throws -> String {
        let e = try entry(ds)
        let isVolume = e.type == .volume || (e.type == .snapshot && e.xattr(XAttr.type) == DatasetType.volume.rawValue)
        guard isVolume else { throw LumosError.invalid("'\(ds)' is not a volume; create one with: lumos dataset create -V SIZE \(ds)") }
        return e.path + "/" + Volume.fileName
    }

    /// A volume's size in bytes (volsize): the length of its file, for a volume or a volume's
    /// snapshot.
    public func volumeSize(_ ds: DatasetName) throws -> UInt64 {
        let file = try volumeFile(ds)
        var st = stat()
        guard stat(file, &st) == 0 else { throw Errno(errno, "stat", file) }
        return UInt64(st.st_size)
    }

    /// Attaches a volume as a loop block device with direct I/O; returns the device (idempotent).
    /// A snapshot attaches read-only.
    public func attachVolume(_ ds: DatasetName) throws -> String {
        let lock = try begin()
        defer { _ = lock }
        let file = try volumeFile(ds)
        let dev = try LoopDevice.attach(file, directIO: true, readOnly: ds.isSnapshot)
        if !ds.isSnapshot { try Btrfs.setxattr(try entry(ds).path, XAttr.attached, "1") }
        return dev
    }

    public func detachVolume(_ ds: DatasetName) throws {
        let lock = try begin()
        defer { _ = lock }
        let file = try volumeFile(ds)
        guard let dev = LoopDevice.find(backing: file) else { throw LumosError.notFound("volume '\(ds)' is not attached") }
        try LoopDevice.detach(dev)
        if !ds.isSnapshot { Btrfs.removexattr(try entry(ds).path, XAttr.attached) }
    }

    /// Loop devices backed by this pool's volumes: (device, dataset).
    public func attachedVolumes() throws -> [(String, DatasetName)] {
        let prefix = mountpoint + "/"
        return LoopDevice.all().compactMap { dev, backing in
            guard backing.hasPrefix(prefix), backing.hasSuffix("/" + Volume.fileName) else { return nil }
            let rel = String(backing.dropFirst(prefix.count).dropLast(Volume.fileName.count + 1))
            return name(forRelativePath: rel).map { (dev, $0) }
        }
    }

    /// After import: attach again the volumes that were attached before export or reboot.
    func reattachVolumes() throws {
        for e in try entries() where e.type == .volume && e.xattr(XAttr.attached) == "1" {
            _ = try LoopDevice.attach(e.path + "/" + Volume.fileName, directIO: true)
        }
    }

    /// Datasets owned by tenants (vmadm marks them with the user property `lumos:owner`).
    public func tenantDatasets() throws -> [DatasetName] {
        try entries().filter { !$0.name.isSnapshot && $0.xattr(XAttr.userPrefix + "lumos:owner") != nil }.map(\.name)
    }
}
