import Foundation
import Glibc
import LumosCore

/// An image installed on this host: its manifest and the pool holding it.
public struct InstalledImage: Sendable {
    public var manifest: ImageManifest
    public var zpool: String
    public var json: JSONValue { ["manifest": manifest.json, "zpool": .string(zpool)] }
}

/// Installed images (imgadm): each is a dataset `zones/<uuid>` whose `root/` holds the
/// image's root file system (a zvol image: a volume holding its disk, VolumeImages.swift),
/// with a read-only snapshot `@final` that tenants clone, and its manifest at
/// `$LUMOS_ROOT/images/<uuid>.json` (written last: it marks the import done).
public final class ImageStore {
    public static let finalSnapshot = "final"

    public let root: StateRoot
    public let datasets: DatasetStore
    let journal: Journal

    public init(root: StateRoot, datasets: DatasetStore) {
        self.root = root
        self.datasets = datasets
        journal = Journal(directory: root.sub("images", ".journal"))
    }

    var directory: String { root.sub("images") }
    func manifestPath(_ uuid: String) -> String { "\(directory)/\(uuid).json" }

    /// The read-only root file system tenants are cloned from.
    public func finalSnapshot(_ uuid: String) -> String { "\(datasets.dataset(uuid))@\(Self.finalSnapshot)" }

    /// Finishes or undoes imports and deletes that a killed imgadm left behind.
    public func recover() throws {
        try journal.recoverAbandoned { intent in
            let uuid = intent.subject
            let ds = datasets.dataset(uuid)
            switch intent.operation {
            case "import":
                // The manifest is written last: without it the import never finished.
                if !Files.exists(manifestPath(uuid)), datasets.exists(ds) { try datasets.destroy(ds, recursive: true) }
            case "delete":
                Files.remove(manifestPath(uuid))
                if datasets.exists(ds) { try datasets.destroy(ds, recursive: true) }
            default: break
            }
        }
    }

    public func list() -> [InstalledImage] {
        Files.list(directory).filter { $0.hasSuffix(".json") }.compactMap { name in
            guard let bytes = try? FD.readFile("\(directory)/\(name)"),
                  let m = try? ImageManifest.parse(bytes, what: name) else { return nil }
            return InstalledImage(manifest: m, zpool: datasets.poolName)
        }
    }

    public func get(_ uuid: String) throws -> InstalledImage {
        let path = manifestPath(uuid.lowercased())
        guard Files.exists(path) else {
            throw LumosError.notFound("image \(uuid) is not installed; see imgadm list, or imgadm import it")
        }
        return InstalledImage(manifest: try ImageManifest.parse(try FD.readFile(path), what: path), zpool: datasets.poolName)
    }

    public func isInstalled(_ uuid: String) -> Bool { Files.exists(manifestPath(uuid.lowercased())) }

    /// Checks a file against the manifest's size and SHA-1, with a progress bar on a terminal.
    public static func verify(file: String, against info: ImageFileInfo, progress: Bool) throws {
        var st = stat()
        guard stat(file, &st) == 0 else { throw LumosError.notFound("image file \(file) does not exist") }
        guard UInt64(st.st_size) == info.size else {
            throw LumosError(.corrupt, "image file \(file) is \(st.st_size) bytes but the manifest says \(info.size); the file is truncated or belongs to another image")
        }
        let fd = try sys("open", file) { open(file, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        let bar = ProgressBar("verifying", total: info.size, enabled: progress)
        var sha = SHA1()
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw Errno(errno, "read", file) }
            if n == 0 { break }
            buf.withUnsafeBytes { sha.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            bar.advance(UInt64(n))
        }
        bar.finish()
        let digest = sha.finish()
        guard digest == info.sha1 else {
            throw LumosError(.corrupt, "image file \(file) has sha1 \(digest) but the manifest says \(info.sha1); the file is damaged or belongs to another image")
        }
    }

    /// `imgadm import -m MANIFEST -f FILE`: verifies, then installs the image as a dataset
    /// with a read-only `@final` snapshot. A crash at any step is undone by `recover()`.
    @discardableResult
    public func importImage(manifest manifestFile: String, file: String, progress: Bool = false) throws -> ImageManifest {
        let manifest = try ImageManifest.parse(try readInput(manifestFile), what: manifestFile)
        try Self.verify(file: file, against: manifest.file, progress: progress)
        if manifest.type == "zvol" { return try installVolume(manifest, file: file, progress: progress) }
        return try install(manifest, file: file, progress: progress)
    }

    func readInput(_ path: String) throws -> [UInt8] {
        guard Files.exists(path) else { throw LumosError.notFound("\(path) does not exist") }
        return try FD.readFile(path)
    }

    func install(_ manifest: ImageManifest, file: String, progress: Bool = false) throws -> ImageManifest {
        try installing(manifest) { ds in
            try datasets.createFilesystem(ds)
            let rootfs = try datasets.mountpoint(ds) + "/root"
            try Files.makeDirectories(rootfs)
            try Self.extract(file, compression: manifest.file, into: rootfs, progress: progress)
        }
    }

    /// Unpacks an image file with tar (which runs the decompressor). On a terminal the file is
    /// fed through a pipe so a progress bar can follow it.
    static func extract(_ file: String, compression: ImageFileInfo, into rootfs: String, progress: Bool) throws {
        var argv = ["tar", "-x", "--numeric-owner", "-C", rootfs, "-f", progress ? "-" : file]
        if let flag = compression.tarFlag { argv.insert(flag, at: 2) }
        guard progress else {
            let r = try Exec.run(argv, check: false)
            guard r.status == 0 else {
                // tar's own reason, not its closing "Exiting with failure status" line.
                let why = r.stderr.split(separator: "\n").map(String.init)
                    .first { !$0.contains("Exiting with failure status") && !$0.contains("Error is not recoverable") } ?? "exit \(r.status)"
                throw LumosError.failed("tar could not unpack \(file): \(why); is it a \(compression.compression) tar of a root file system?")
            }
            return
        }
        let src = try sys("open", file) { open(file, O_RDONLY | O_CLOEXEC) }
        defer { close(src) }
        var p: [Int32] = [0, 0]
        try sys("pipe") { pipe(&p) }
        _ = fcntl(p[1], F_SETFD, FD_CLOEXEC)
        let pid: pid_t
        do { pid = try Exec.spawn(argv, stdin: .fd(p[0]), stdout: .null, stderr: .inherit) } catch {
            close(p[0]); close(p[1]); throw error
        }
        close(p[0])
        // tar may stop early on a bad file: that must be an error from write, not SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        let bar = ProgressBar("extracting", total: compression.size)
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        var ok = true
        while ok {
            let n = buf.withUnsafeMutableBytes { read(src, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            ok = buf.withUnsafeBytes { FD.writeAll(p[1], UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            bar.advance(UInt64(n))
        }
        close(p[1])
        bar.finish()
        let status = Exec.wait(pid)
        if status != 0 || !ok { throw LumosError.failed("tar could not unpack \(file) (exit \(status)); is it a \(compression.compression) tar of a root file system?") }
    }

    /// `imgadm delete`: refused while tenants (`users`) are cloned from the image.
    public func delete(_ uuid: String, users: [String]) throws {
        let id = uuid.lowercased()
        try recover()
        let lock = try journal.lock(id)
        defer { withExtendedLifetime(lock) {} }
        let image = try get(id)
        if !users.isEmpty {
            throw LumosError.busy("image \(id) (\(image.manifest.name)@\(image.manifest.version)) is used by VM \(users.sorted().joined(separator: ", ")); delete those VMs first")
        }
        let intent = try journal.begin("delete", id)
        Files.remove(manifestPath(id))
        try intent.mark("unregistered")
        let ds = datasets.dataset(id)
        if datasets.exists(ds) { try datasets.destroy(ds, recursive: true) }
        intent.finish()
    }

    /// Packs a root file system into an image file plus manifest (`imgadm create`, builders):
    /// `<prefix>.json` and `<prefix>.tar<ext>`.
    public static func pack(rootfs: String, name: String, version: String, description: String, compression: String,
                            prefix: String, extra: [String: JSONValue] = [:]) throws -> (manifest: ImageManifest, manifestPath: String, filePath: String) {
        guard ImageManifest.compressions.contains(compression) else {
            throw LumosError.invalid("compression \"\(compression)\" is unknown; use \(ImageManifest.compressions.joined(separator: ", "))")
        }
        let filePath = prefix + ".tar" + ImageFileInfo.fileExtension(compression)
        var argv = ["tar", "-c", "--numeric-owner", "-C", rootfs, "-f", filePath, "."]
        let info = ImageFileInfo(json: ["compression": .string(compression)])
        if let flag = info.tarFlag { argv.insert(flag, at: 2) }
        try Exec.run(argv)
        let bytesSize: UInt64
        var st = stat()
        if stat(filePath, &st) == 0 { bytesSize = UInt64(st.st_size) } else { throw Errno(errno, "stat", filePath) }
        let digest = try sha1(of: filePath)
        let manifest = ImageManifest.make(name: name, version: version, description: description, sha1: digest,
                                          size: bytesSize, compression: compression, extra: extra)
        let manifestPath = prefix + ".json"
        try Files.writeAtomically(manifestPath, manifest.json.serialized() + "\n")
        return (manifest, manifestPath, filePath)
    }

    public static func sha1(of path: String) throws -> String {
        let fd = try sys("open", path) { open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        var sha = SHA1()
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw Errno(errno, "read", path) }
            if n == 0 { break }
            buf.withUnsafeBytes { sha.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        return sha.finish()
    }

    /// Builds a root file system in a scratch directory, packs it and installs it.
    public func installBuilt(name: String, version: String, description: String, compression: String = "zstd",
                             keepFilesIn output: String? = nil, build: (String) throws -> Void) throws -> ImageManifest {
        let scratch = root.sub("images", ".build-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try Files.makeDirectories(scratch + "/rootfs")
        defer { _ = try? Exec.run(["rm", "-rf", scratch], check: false) }
        try build(scratch + "/rootfs")
        let prefix = (output ?? scratch) + "/\(name)-\(version)"
        if let output { try Files.makeDirectories(output) }
        let packed = try Self.pack(rootfs: scratch + "/rootfs", name: name, version: version, description: description,
                                   compression: compression, prefix: prefix)
        return try install(packed.manifest, file: packed.filePath)
    }

    /// Columns `imgadm list` prints by default.
    public static let defaultColumns = ["uuid", "name", "version", "os", "type", "pub"]

    /// The value of a list column for an image (`pub` is the publish date, as imgadm prints it).
    public static func column(_ image: InstalledImage, _ name: String) -> String {
        switch name {
        case "pub": return image.manifest.publishedAt.map { String($0.prefix(10)) } ?? "-"
        case "zpool": return image.zpool
        default: return image.manifest.fields[name]?.plainText ?? image.json.lookup(name)?.plainText ?? "-"
        }
    }
}
