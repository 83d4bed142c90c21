import Glibc
import LumosCore
@testable import Images
@testable import Storage

/// A scratch state root with a directory-backed pool, removed when the test ends.
final class ScratchImages {
    let dir: String
    let root: StateRoot
    let datasets: DirectoryDatasets
    let store: ImageStore

    init() throws {
        dir = "/tmp/lumos-imgtest-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        root = StateRoot(dir + "/state")
        datasets = try DirectoryDatasets(base: dir + "/pool")
        store = ImageStore(root: root, datasets: datasets)
    }

    /// A small root file system packed as an image, with its manifest.
    func packedImage(compression: String = "gzip", name: String = "tiny") throws -> (manifest: ImageManifest, manifestPath: String, filePath: String) {
        let rootfs = dir + "/src-\(name)"
        try Files.makeDirectories(rootfs + "/etc")
        try Files.writeAtomically(rootfs + "/etc/motd", "hello from \(name)\n")
        try Files.makeDirectories(dir + "/out")
        return try ImageStore.pack(rootfs: rootfs, name: name, version: "1.0", description: "test image",
                                   compression: compression, prefix: dir + "/out/\(name)")
    }

    deinit { _ = try? Exec.run(["rm", "-rf", dir], check: false) }
}

/// A real Lumos pool (btrfs on a sparse file under /tmp, loop-mounted) in its own state root,
/// for tests that need what the directory fake lacks (O(1) clones, volumes as the pool makes
/// them). `cleanup()` (with defer) destroys it and detaches its loop devices even after a
/// failure.
final class ScratchPool {
    let dir: String
    let root: StateRoot
    let pool: Pool
    let datasets: PoolDatasets
    let store: ImageStore

    init(size: UInt64 = 768 << 20) throws {
        dir = "/tmp/lumos-imgpool-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try Files.makeDirectories(dir)
        root = StateRoot(dir + "/state")
        var o = Pool.CreateOptions()
        o.size = size
        do { pool = try Pool.create("zones", options: o, root: root).0 } catch {
            Self.sweep(dir: dir, root: root)
            throw error
        }
        datasets = PoolDatasets(pool)
        store = ImageStore(root: root, datasets: datasets)
    }

    /// Dataset names in the pool other than its root.
    func datasetNames() throws -> [String] {
        try pool.list(nil, recursive: true, types: [.filesystem, .volume, .snapshot]).map(\.name).filter { $0 != pool.name }
    }

    func cleanup() { Self.sweep(dir: dir, root: root) }

    static func sweep(dir: String, root: StateRoot) {
        for cfg in Pool.list(root: root) {
            let p = Pool(root: root, config: cfg)
            for (dev, _) in (try? p.attachedVolumes()) ?? [] { try? LoopDevice.detach(dev) }
            try? p.destroy(force: true)
            if p.isMountedHere { umount2(p.mountpoint, Int32(MNT_DETACH)) }
        }
        for (dev, backing) in LoopDevice.all() where backing.hasPrefix(dir) { try? LoopDevice.detach(dev) }
        _ = try? Exec.run(["rm", "-rf", "--one-file-system", dir], check: false)
    }
}

let isRoot = getuid() == 0

/// Random bytes (incompressible, so they land on disk as written).
func randomBytes(_ n: Int) -> [UInt8] {
    var g = SystemRandomNumberGenerator()
    var out = [UInt8](repeating: 0, count: n)
    out.withUnsafeMutableBytes { b in
        var i = 0
        while i + 8 <= n { b.storeBytes(of: g.next() as UInt64, toByteOffset: i, as: UInt64.self); i += 8 }
        while i < n { b[i] = UInt8.random(in: 0...255); i += 1 }
    }
    return out
}

/// Writes `bytes` at `offset` of a file (created sparse if missing).
func writeAt(_ path: String, _ offset: Int, _ bytes: [UInt8]) throws {
    let fd = try sys("open", path) { open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644) }
    defer { close(fd) }
    let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
    guard n == bytes.count else { throw Errno(errno, "pwrite", path) }
}

func fileSize(_ path: String) -> Int64 {
    var st = stat()
    return stat(path, &st) == 0 ? Int64(st.st_size) : -1
}

func allocatedBytes(_ path: String) -> Int64 {
    var st = stat()
    return stat(path, &st) == 0 ? Int64(st.st_blocks) * 512 : -1
}

/// Free bytes of the file system holding `path` (after a sync, for space comparisons).
func freeBytes(_ path: String) -> Int64 {
    sync()
    var st = statvfs()
    return statvfs(path, &st) == 0 ? Int64(st.f_bavail) * Int64(st.f_frsize) : -1
}
