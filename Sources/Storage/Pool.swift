import CLinux
import Foundation
import Glibc
import LumosCore

/// A storage pool: one btrfs file system over a sparse file (the embedded default), files or
/// block devices, mounted under the state root. Datasets live inside it (see Datasets.swift).
public final class Pool: @unchecked Sendable {
    public let root: StateRoot
    public internal(set) var config: PoolConfig

    public var name: String { config.name }
    public var mountpoint: String { config.mountpoint }
    /// Lumos's own area inside the pool: snapshots, staging for receive, transaction journal.
    var internalDir: String { mountpoint + "/.lumos" }

    static let btrfsMagic: Int = 0x9123_683E
    public static let defaultSize: UInt64 = 16 << 30

    init(root: StateRoot, config: PoolConfig) {
        self.root = root
        self.config = config
    }

    /// Known pools, from their saved configurations.
    public static func list(root: StateRoot) -> [PoolConfig] {
        undoIncompleteCreates(root: root)
        return PoolConfig.all(root: root).filter { $0.incomplete != true && $0.destroying != true }.sorted { $0.name < $1.name }
    }

    /// Undoes creates and finishes destroys that were killed: unmount, detach, clear the
    /// devices of a destroyed pool, remove the files they made and the configuration.
    static func undoIncompleteCreates(root: StateRoot) {
        for cfg in PoolConfig.all(root: root) where cfg.incomplete == true || cfg.destroying == true {
            guard let lock = try? FileLock(lockPath(root: root, name: cfg.name), wait: false) else { continue }
            if isMounted(cfg.mountpoint) { umount2(cfg.mountpoint, Int32(MNT_DETACH)) }
            rmdir(cfg.mountpoint)
            for d in cfg.devices where isRegularFile(d) {
                if let loop = LoopDevice.find(backing: d) { try? LoopDevice.detach(loop) }
            }
            if cfg.destroying == true { wipeSignatures(cfg) }
            for f in cfg.ownedFiles { unlink(f) }
            unlink(PoolConfig.path(root: root, name: cfg.name))
            _ = lock
        }
    }

    /// Clears the btrfs signature of devices the user gave, so they no longer import as this pool.
    static func wipeSignatures(_ cfg: PoolConfig) {
        for d in cfg.devices where !cfg.ownedFiles.contains(d) && Files.exists(d) {
            _ = try? Exec.run(["wipefs", "-a", "-q", d], check: false)
        }
    }

    static func lockPath(root: StateRoot, name: String) -> String { root.sub("locks", "pool-\(name).lock") }

    /// Holds the pool's lock: every change to a pool's datasets is serialised by it.
    func lock() throws -> FileLock { try FileLock(Self.lockPath(root: root, name: name)) }

    // MARK: create

    public struct CreateOptions: Sendable {
        public var devices: [String] = []
        public var layout: PoolLayout = .single
        public var checksum: ChecksumAlgorithm = .crc32c
        public var size: UInt64?
        public var mountpoint: String?
        public var force = false
        public init() {}
    }

    /// Creates and mounts a pool. Returns the pool and any warnings mkfs printed (raid5/6).
    public static func create(_ name: String, options: CreateOptions, root: StateRoot) throws -> (Pool, [String]) {
        guard DatasetName.isValidPoolName(name) else {
            throw LumosError.invalid("invalid pool name '\(name)': start with a letter; use letters, digits and _ - . :")
        }
        undoIncompleteCreates(root: root)
        let lock = try FileLock(lockPath(root: root, name: name))
        defer { _ = lock }
        if let old = try PoolConfig.load(root: root, name: name) {
            throw LumosError.exists("pool '\(name)' already exists (\(old.devices.joined(separator: ", "))); destroy it first or choose another name")
        }
        var devices = options.devices
        if devices.isEmpty {
            guard options.layout == .single else {
                throw LumosError.invalid("--\(options.layout.rawValue) needs devices: lumos pool create \(name) --\(options.layout.rawValue) FILE|DEV FILE|DEV ...")
            }
            try Files.makeDirectories(root.sub("pools"))
            devices = [root.sub("pools", "\(name).img")]
        }
        guard devices.count >= options.layout.minimumDevices else {
            throw LumosError.invalid("a \(options.layout.rawValue) pool needs at least \(options.layout.minimumDevices) devices; \(devices.count) given")
        }
        if Set(devices).count != devices.count { throw LumosError.invalid("a device is listed twice: \(devices.joined(separator: " "))") }
        let mountpoint = options.mountpoint ?? root.sub("mnt", name)
        if isMounted(mountpoint) { throw LumosError.busy("\(mountpoint) is already a mount point; choose another --mountpoint") }
        for other in list(root: root) where other.mountpoint == mountpoint {
            throw LumosError.busy("pool '\(other.name)' already uses \(mountpoint); choose another --mountpoint")
        }

        // Validate every device before changing anything.
        let size = options.size ?? (options.devices.isEmpty ? defaultSize : nil)
        var toCreate: [String] = []
        for d in devices {
            var st = stat()
            if stat(d, &st) != 0 {
                guard let size else {
                    throw LumosError.notFound("device \(d) does not exist; create it (truncate -s 4G \(d)) or pass --size to let lumos create it")
                }
                guard size >= 128 << 20 else { throw LumosError.invalid("--size \(Size.format(size)) is too small; a btrfs pool needs at least 128M per device") }
                toCreate.append(d)
                continue
            }
            let kind = st.st_mode & S_IFMT
            guard kind == S_IFREG || kind == S_IFBLK else {
                throw LumosError.invalid("\(d) is neither a file nor a block device")
            }
            if kind == S_IFREG && st.st_size < 128 << 20 {
                throw LumosError.invalid("\(d) is \(Size.format(UInt64(st.st_size))); a btrfs pool device needs at least 128M")
            }
            if let user = mountUser(of: d) { throw LumosError.busy("\(d) is in use (mounted at \(user)); unmount it first") }
            if !options.force, let label = BtrfsSuperblock.read(d)?.label {
                throw LumosError.exists("\(d) already holds btrfs pool '\(label)'; import it, or pass -f to overwrite")
            }
        }

        var attached: [String] = []
        var created: [String] = []
        var mounted = false
        let cfg = PoolConfig(name: name, uuid: "", layout: options.layout, checksum: options.checksum,
                             devices: devices, ownedFiles: toCreate, mountpoint: mountpoint,
                             created: Int(time(nil)), exported: false, lastScrub: nil, incomplete: true)
        try cfg.save(root: root)
        do {
            for d in toCreate {
                try Files.makeDirectories(Files.parent(d))
                let fd = try sys("open", d) { Glibc.open(d, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600) }
                created.append(d)
                let r = ftruncate(fd, off_t(size!))
                close(fd)
                if r != 0 { throw Errno(errno, "ftruncate", d) }
            }
            try crashPoint("pool.create.after-files")
            var blockDevices: [String] = []
            for d in devices {
                if isRegularFile(d) {
                    let loop = try LoopDevice.attach(d)
                    attached.append(loop)
                    blockDevices.append(loop)
                } else {
                    blockDevices.append(d)
                }
            }
            let p = options.layout.profiles(devices: devices.count)
            var argv = ["mkfs.btrfs", "-L", name, "-d", p.data, "-m", p.metadata, "--csum", options.checksum.rawValue]
            if options.force { argv.append("-f") }
            let mk = try Exec.run(argv + blockDevices, check: false)
            if mk.status != 0 {
                let why = mk.stderr.split(separator: "\n").last(where: { $0.contains("ERROR") }) ?? mk.stderr.split(separator: "\n").last ?? "exit \(mk.status)"
                throw LumosError.failed("mkfs.btrfs failed for pool '\(name)': \(why)")
            }
            let warnings = mk.stderr.split(separator: "\n").map(String.init).filter { $0.contains("WARNING") || $0.contains("RAID5/6") }
            try mount(blockDevices, at: mountpoint)
            mounted = true
            let pool = Pool(root: root, config: cfg)
            let fd = try pool.openRoot()
            defer { close(fd) }
            var fsid = [UInt8](repeating: 0, count: 16)
            var n: UInt64 = 0, csum: UInt16 = 0
            try sys("BTRFS_IOC_FS_INFO") { clinux_btrfs_fs_info(fd, &fsid, &n, &csum) }
            pool.config.uuid = Btrfs.uuidString(fsid.tuple16)
            if clinux_btrfs_quota_enable_best(fd) < 0 { throw Errno(errno, "BTRFS_IOC_QUOTA_CTL", "enable on \(mountpoint)") }
            try pool.initializeLayout()
            try crashPoint("pool.create.before-commit")
            pool.config.incomplete = nil
            try pool.config.save(root: root)
            return (pool, warnings)
        } catch {
            if mounted { umount2(mountpoint, 0); rmdir(mountpoint) }
            for l in attached { try? LoopDevice.detach(l) }
            for f in created { unlink(f) }
            unlink(PoolConfig.path(root: root, name: name))
            throw error
        }
    }

    // MARK: open, import, export

    /// Opens a known pool, importing (attaching and mounting) it when it is not mounted.
    public static func open(_ name: String, root: StateRoot) throws -> Pool {
        undoIncompleteCreates(root: root)
        guard let cfg = try PoolConfig.load(root: root, name: name), cfg.incomplete != true else {
            let known = list(root: root).map(\.name)
            let hint = known.isEmpty ? "create one with: lumos pool create \(name)" : "known pools: \(known.joined(separator: ", "))"
            throw LumosError.notFound("pool '\(name)' does not exist; \(hint)")
        }
        if cfg.exported { throw LumosError.notFound("pool '\(name)' is exported; run: lumos pool import \(name)") }
        let pool = Pool(root: root, config: cfg)
        if !pool.isMountedHere { try pool.attachAndMount() } else { try Pool.closeToOthers(pool.mountpoint) }
        pool.mountVerified = true
        return pool
    }

    /// Imports pools: the named ones (or every known pool), and pools found on `scan` devices.
    /// After a reboot this one command brings back loops, mounts and attached volumes.
    @discardableResult
    public static func importPools(_ names: [String], scan: [String] = [], root: StateRoot) throws -> [Pool] {
        var configs: [PoolConfig] = []
        for dev in scan {
            guard let sb = BtrfsSuperblock.read(dev) else {
                throw LumosError.invalid("\(dev) holds no btrfs pool (no btrfs superblock); check the path")
            }
            let label = sb.label.isEmpty ? "pool-\(sb.fsid.prefix(8))" : sb.label
            if !names.isEmpty && !names.contains(label) { continue }
            if var known = try PoolConfig.load(root: root, name: label) {
                if known.uuid != sb.fsid && !known.uuid.isEmpty {
                    throw LumosError.exists("a different pool named '\(label)' is already known; destroy or export it first")
                }
                if !known.devices.contains(dev) { known.devices.append(dev) }
                known.exported = false
                configs.append(known)
            } else {
                guard DatasetName.isValidPoolName(label) else { throw LumosError.invalid("\(dev): pool label '\(label)' is not a valid pool name") }
                configs.append(PoolConfig(name: label, uuid: sb.fsid, layout: .single, checksum: ChecksumAlgorithm(btrfsType: sb.csumType) ?? .crc32c,
                                          devices: [dev], ownedFiles: [], mountpoint: root.sub("mnt", label),
                                          created: Int(time(nil)), exported: false, lastScrub: nil))
            }
        }
        if scan.isEmpty {
            let all = list(root: root)
            if names.isEmpty { configs = all } else {
                for n in names {
                    guard let c = all.first(where: { $0.name == n }) else {
                        throw LumosError.notFound("pool '\(n)' is not known; import it from its devices: lumos pool import -d DEVICE \(n)")
                    }
                    configs.append(c)
                }
            }
        }
        // Merge configs of the same pool found on several scanned devices.
        var merged: [String: PoolConfig] = [:]
        for c in configs {
            if var m = merged[c.name] { m.devices += c.devices.filter { !m.devices.contains($0) }; merged[c.name] = m } else { merged[c.name] = c }
        }
        var pools: [Pool] = []
        for c in merged.values.sorted(by: { $0.name < $1.name }) {
            var cfg = c
            cfg.exported = false
            let pool = Pool(root: root, config: cfg)
            let lock = try pool.lock()
            if !pool.isMountedHere { try pool.attachAndMount() }
            try pool.config.save(root: root)
            try pool.reattachVolumes()
            _ = lock
            pools.append(pool)
        }
        if !pools.isEmpty { PoolImportNotice(root: root).post(pools.map(\.name)) }
        return pools
    }

    /// Unmounts the pool and detaches its loop devices; the configuration stays for `import`.
    public func export(force: Bool = false) throws {
        let lock = try self.lock()
        defer { _ = lock }
        try unmountAndDetach(force: force)
        config.exported = true
        try config.save(root: root)
    }

    /// Destroys the pool: refuses while tenants or attached volumes use it unless `force`.
    public func destroy(force: Bool = false) throws {
        let lock = try self.lock()
        defer { _ = lock }
        if isMountedHere && !force {
            let vols = try attachedVolumes()
            if !vols.isEmpty {
                throw LumosError.busy("pool '\(name)' has attached volumes (\(vols.map { "\($0.0) on \($0.1)" }.joined(separator: ", "))); detach them or use -f")
            }
            let tenants = try tenantDatasets()
            if !tenants.isEmpty {
                throw LumosError.busy("pool '\(name)' holds tenants (\(tenants.prefix(3).map(\.description).joined(separator: ", "))\(tenants.count > 3 ? ", ..." : "")); delete them or use -f")
            }
        }
        // Unmounting is the last step that may refuse (busy); once it is done the destroy is
        // committed, and a kill at any later step is finished by the next command.
        try unmountAndDetach(force: force)
        config.destroying = true
        try config.save(root: root)
        try Self.crashPoint("pool.destroy.committed")
        Self.wipeSignatures(config)
        for f in config.ownedFiles { unlink(f) }
        unlink(PoolConfig.path(root: root, name: name))
    }

    func unmountAndDetach(force: Bool) throws {
        mountVerified = false
        if isMountedHere {
            for (loop, _) in try attachedVolumes() {
                if !force { throw LumosError.busy("volume \(loop) of pool '\(name)' is attached; detach it first") }
                try? LoopDevice.detach(loop)
            }
            if umount2(mountpoint, 0) != 0 {
                let e = errno
                if e == EBUSY && !force { throw LumosError.busy("pool '\(name)' is busy (files open or mounts below \(mountpoint)); stop its users or use -f") }
                if umount2(mountpoint, Int32(MNT_DETACH)) != 0 { throw Errno(errno, "umount", mountpoint) }
            }
            rmdir(mountpoint)
        }
        for d in config.devices where isRegularFile(d) {
            if let loop = LoopDevice.find(backing: d) { try LoopDevice.detach(loop) }
        }
    }

    func attachAndMount() throws {
        var blockDevices: [String] = []
        var attached: [String] = []
        for d in config.devices {
            guard Files.exists(d) else {
                throw LumosError.notFound("device \(d) of pool '\(name)' is missing; restore it, or import with the devices that remain")
            }
            if isRegularFile(d) {
                let was = LoopDevice.find(backing: d)
                let loop = try LoopDevice.attach(d)
                if was == nil { attached.append(loop) }
                blockDevices.append(loop)
            } else {
                blockDevices.append(d)
            }
        }
        do {
            guard let sb = BtrfsSuperblock.read(blockDevices[0]) else {
                throw LumosError.invalid("\(config.devices[0]) is not a btrfs device; it cannot hold pool '\(name)'")
            }
            if !config.uuid.isEmpty && sb.fsid != config.uuid {
                throw LumosError.invalid("\(config.devices[0]) holds another pool (\(sb.label)); check the pool's devices")
            }
            try Pool.mount(blockDevices, at: mountpoint)
        } catch {
            for l in attached { try? LoopDevice.detach(l) }
            throw error
        }
    }

    /// How a pool is mounted on the host (docs/security.md, "Storage"): a tenant's root is a
    /// directory of the pool, and what a tenant writes there (a set-uid copy of a shell, a file
    /// with file capabilities, a device node an image brought along) must give nothing to a
    /// host user who reaches it. nosuid also ignores file capabilities; nodev makes device
    /// nodes unopenable; noexec because nothing runs from a pool on the host (zones see their
    /// root through their own mount, which clears noexec, docs/architecture.md).
    public static let mountFlags = UInt(MS_NOATIME | MS_NOSUID | MS_NODEV | MS_NOEXEC)

    static func mount(_ devices: [String], at mountpoint: String) throws {
        try Files.makeDirectories(mountpoint)
        // Naming every device in the options replaces `btrfs device scan` (no udev here).
        let opts = (["compress=zstd"] + devices.map { "device=\($0)" }).joined(separator: ",")
        if Glibc.mount(devices[0], mountpoint, "btrfs", mountFlags, opts) != 0 {
            let e = errno
            rmdir(mountpoint)
            if e == EINVAL || e == ENOENT {
                throw LumosError(.failed, "cannot mount \(devices[0]) at \(mountpoint): not a complete btrfs pool (missing device?)", errno: e)
            }
            throw Errno(e, "mount", "\(devices[0]) at \(mountpoint)")
        }
        try closeToOthers(mountpoint)
    }

    /// Closes a mounted pool to other host users: its root directory (every dataset, image,
    /// volume and received stream lives below it) becomes 0700 root, and a pool mounted by an
    /// older Lumos without nosuid/nodev/noexec is remounted with them. Idempotent and cheap
    /// (one statvfs and one stat when nothing is to change).
    static func closeToOthers(_ mountpoint: String) throws {
        var vfs = statvfs()
        if statvfs(mountpoint, &vfs) == 0 {
            // ST_NOSUID | ST_NODEV | ST_NOEXEC (<sys/statvfs.h>; the last two are GNU names the
            // importer hides).
            let want: UInt = 0x2 | 0x4 | 0x8
            if vfs.f_flag & want != want, Glibc.mount(nil, mountpoint, nil, UInt(MS_REMOUNT) | mountFlags, nil) != 0 {
                throw Errno(errno, "mount -o remount,nosuid,nodev,noexec", mountpoint)
            }
        }
        var st = stat()
        if stat(mountpoint, &st) == 0, st.st_mode & 0o7777 != 0o700 || st.st_uid != 0 || st.st_gid != 0 {
            if lchown(mountpoint, 0, 0) != 0 { throw Errno(errno, "chown", mountpoint) }
            if chmod(mountpoint, 0o700) != 0 { throw Errno(errno, "chmod 0700", mountpoint) }
        }
    }

    // MARK: state

    public var isMountedHere: Bool {
        var s = statfs()
        guard statfs(mountpoint, &s) == 0, Int(s.f_type) == Self.btrfsMagic, Self.isMounted(mountpoint) else { return false }
        guard !config.uuid.isEmpty else { return true }
        guard let fd = try? openRoot() else { return false }
        defer { close(fd) }
        var fsid = [UInt8](repeating: 0, count: 16)
        var n: UInt64 = 0, csum: UInt16 = 0
        guard clinux_btrfs_fs_info(fd, &fsid, &n, &csum) == 0 else { return false }
        return Btrfs.uuidString(fsid.tuple16) == config.uuid
    }

    /// Set once this process has seen the pool mounted (open, or a first dataset operation):
    /// one command then checks once, not at every dataset operation (each check reads
    /// /proc/self/mountinfo). Cleared when this process unmounts the pool.
    var mountVerified = false

    /// Requires the pool to be mounted; every dataset operation starts here.
    func requireMounted() throws {
        if mountVerified { return }
        guard isMountedHere else {
            throw LumosError.notFound("pool '\(name)' is not mounted at \(mountpoint); run: lumos pool import \(name)")
        }
        mountVerified = true
    }

    func openRoot() throws -> Int32 {
        try sys("open", mountpoint) { Glibc.open(mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
    }

    static func isMounted(_ path: String) -> Bool {
        guard let text = try? FD.readText("/proc/self/mountinfo") else { return false }
        return text.split(separator: "\n").contains { line in
            let f = line.split(separator: " ")
            return f.count > 4 && unescapeMount(String(f[4])) == path
        }
    }

    /// Where a device is mounted, if anywhere.
    static func mountUser(of device: String) -> String? {
        let real = LoopDevice.realPath(device)
        let candidates = Set([device, real] + (LoopDevice.find(backing: real).map { [$0] } ?? []))
        guard let text = try? FD.readText("/proc/self/mounts") else { return nil }
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count > 1 && candidates.contains(unescapeMount(String(f[0]))) { return unescapeMount(String(f[1])) }
        }
        return nil
    }

    static func unescapeMount(_ s: String) -> String {
        // Nearly every field has no escape: skip three Foundation replacements per field.
        guard s.utf8.contains(UInt8(ascii: "\\")) else { return s }
        return s.replacingOccurrences(of: "\\040", with: " ").replacingOccurrences(of: "\\011", with: "\t").replacingOccurrences(of: "\\134", with: "\\")
    }

    func isRegularFile(_ p: String) -> Bool { Self.isRegularFile(p) }
    static func isRegularFile(_ p: String) -> Bool {
        var st = stat()
        return stat(p, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }
}

extension Array where Element == UInt8 {
    var tuple16: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) {
        (self[0], self[1], self[2], self[3], self[4], self[5], self[6], self[7], self[8], self[9], self[10], self[11], self[12], self[13], self[14], self[15])
    }
}

/// The primary btrfs superblock at 64 KiB: enough to recognise a pool device without a scan.
struct BtrfsSuperblock {
    var fsid: String
    var label: String
    var csumType: UInt16

    static func read(_ device: String) -> BtrfsSuperblock? {
        let fd = Glibc.open(device, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 4096)
        guard pread(fd, &buf, buf.count, 65536) == buf.count else { return nil }
        // Offsets from struct btrfs_super_block: fsid at 0x20, magic at 0x40, csum_type at 0xc4, label at 0x12b.
        guard Array(buf[0x40..<0x48]) == Array("_BHRfS_M".utf8) else { return nil }
        let fsid = Btrfs.uuidString(Array(buf[0x20..<0x30]).tuple16)
        let labelBytes = buf[0x12b..<(0x12b + 256)].prefix { $0 != 0 }
        let csum = UInt16(buf[0xc4]) | UInt16(buf[0xc5]) << 8
        return BtrfsSuperblock(fsid: fsid, label: String(decoding: labelBytes, as: UTF8.self), csumType: csum)
    }
}

/// What `pool import` leaves for a running vmadmd (docs/daemon.md "Autoboot"): the file
/// `ROOT/run/pool-import`, replaced (a new inode) at every import and holding the pools' names.
/// The daemon looks at it four times a second and starts autoboot tenants when it changes, so
/// an export and import faster than its pool poll still brings them back.
public struct PoolImportNotice: Sendable {
    public let path: String

    public init(root: StateRoot) { path = root.sub("run", "pool-import") }

    func post(_ names: [String]) {
        try? Files.makeDirectories(Files.parent(path))
        try? Files.writeAtomically(path, names.joined(separator: "\n") + "\n")
    }

    /// Identifies the last notice (nil before any): changes at every import.
    public func current() -> String? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return "\(st.st_ino):\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
    }
}
