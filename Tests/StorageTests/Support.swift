import CLinux
import Foundation
import Glibc
import LumosCore
@testable import Storage

let isRoot = getuid() == 0

/// A state root and pool(s) of sparse files under /tmp, unique per test, removed by `cleanup`
/// (call it with defer so a failing test cleans up too).
final class Scratch: @unchecked Sendable {
    let root: StateRoot
    let dir: String

    init() throws {
        dir = "/tmp/lumos-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try Files.makeDirectories(dir)
        root = StateRoot(dir + "/state")
    }

    func pool(_ name: String = "tank", layout: PoolLayout = .single, devices: Int = 0, size: UInt64 = 512 << 20,
              checksum: ChecksumAlgorithm = .crc32c) throws -> Pool {
        var o = Pool.CreateOptions()
        o.layout = layout
        o.checksum = checksum
        o.size = size
        o.devices = (0..<devices).map { "\(dir)/\(name)-dev\($0).img" }
        return try Pool.create(name, options: o, root: root).0
    }

    /// Destroys every pool in this root, detaches leftover loops and removes the directory.
    func cleanup() {
        for cfg in Pool.list(root: root) {
            let p = Pool(root: root, config: cfg)
            for (dev, _) in (try? p.attachedVolumes()) ?? [] { try? LoopDevice.detach(dev) }
            if p.isMountedHere { umount2(p.mountpoint, Int32(MNT_DETACH)) }
        }
        for (dev, backing) in LoopDevice.all() where backing.hasPrefix(dir) { try? LoopDevice.detach(dev) }
        _ = try? Exec.run(["rm", "-rf", "--one-file-system", dir], check: false)
    }

    /// Runs the real `lumos` binary with this state root.
    @discardableResult
    func lumos(_ args: [String], input: [UInt8]? = nil, env: [String: String] = [:], check: Bool = true) throws -> Exec.Result {
        var argv = ["env", "LUMOS_ROOT=\(root.path)"]
        for (k, v) in env { argv.append("\(k)=\(v)") }
        return try Exec.run(argv + [lumosBinary] + args, input: input, check: check)
    }
}

/// The built `lumos` executable (swift build puts it beside the test bundle).
let lumosBinary: String = {
    let pkg = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    for c in [".build/debug/lumos", ".build/release/lumos"] where access(pkg + "/" + c, X_OK) == 0 { return pkg + "/" + c }
    return "lumos"
}()

/// Random bytes (not compressible, so they land on disk as written).
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

func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    let fd = try sys("open", path) { open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) }
    defer { close(fd) }
    guard FD.writeAll(fd, bytes), fsync(fd) == 0 else { throw Errno(errno, "write", path) }
}

/// Reads a file, returning the bytes or the errno of the first failing read.
func readFile(_ path: String) -> Result<[UInt8], Errno> {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { return .failure(Errno(errno, "open", path)) }
    defer { close(fd) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 { return .failure(Errno(errno, "read", path)) }
        if n == 0 { return .success(out) }
        out.append(contentsOf: buf[0..<n])
    }
}

/// Drops the page cache so reads come from the devices.
func dropCaches() {
    sync()
    if let fd = Optional(open("/proc/sys/vm/drop_caches", O_WRONLY)), fd >= 0 { _ = write(fd, "3\n", 2); close(fd) }
}

/// Overwrites, in a device image, every 4 KiB block whose contents equal one of `blocks`.
/// Returns how many blocks were corrupted.
func corrupt(image: String, blocks: [[UInt8]]) throws -> Int {
    let keys = Set(blocks.map { Array($0.prefix(32)) })
    let fd = try sys("open", image) { open(image, O_RDWR | O_CLOEXEC) }
    defer { close(fd) }
    var st = stat()
    fstat(fd, &st)
    var hits = 0
    var buf = [UInt8](repeating: 0, count: 1 << 20)
    var off: off_t = 0
    while off < st.st_size {
        let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off) }
        if n <= 0 { break }
        var i = 0
        while i + 4096 <= n {
            if buf[i] != 0 || buf[i + 1] != 0, keys.contains(Array(buf[i..<(i + 32)])) {
                let junk = [UInt8](repeating: 0xA5, count: 4096)
                _ = junk.withUnsafeBytes { pwrite(fd, $0.baseAddress, 4096, off + off_t(i)) }
                hits += 1
            }
            i += 4096
        }
        off += off_t(n)
    }
    fsync(fd)
    return hits
}

/// Every regular file, directory and symlink under a directory with a checksum of its content
/// and its mode, for comparing trees after send/receive.
func treeDigest(_ dir: String) -> [String: String] {
    var out: [String: String] = [:]
    var stack = [""]
    while let rel = stack.popLast() {
        for name in Files.list(dir + rel) {
            let r = rel + "/" + name
            var st = stat()
            guard lstat(dir + r, &st) == 0 else { continue }
            let mode = String(st.st_mode, radix: 8)
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                out[r] = "dir \(mode)"
                stack.append(r)
            case S_IFLNK:
                var buf = [CChar](repeating: 0, count: 4096)
                let n = readlink(dir + r, &buf, buf.count)
                out[r] = "link " + String(decoding: buf[0..<max(0, n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            default:
                let bytes = (try? readFile(dir + r).get()) ?? []
                let crc = bytes.withUnsafeBytes { clinux_crc32c(0, $0.baseAddress, bytes.count) }
                out[r] = "file \(mode) \(bytes.count) \(crc)"
            }
        }
    }
    return out
}
