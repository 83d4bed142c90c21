import Glibc
import LumosCore

/// zvol images (IMGAPI type `zvol`, the disks of kvm VMs; docs/vm.md, "Images and disks"): the
/// image is a volume dataset `<pool>/<uuid>` (one sparse copy-on-write `volume.raw`) of
/// `image_size` MiB with a read-only `@final` snapshot that VM disks are cloned from, and the
/// manifest written last, as for lx images. The image file is a raw disk compressed as
/// `files[0].compression` says, or a qcow2 file (converted with `qemu-img convert -O raw`).
extension ImageStore {
    /// A qcow2 file starts with "QFI\xfb" (QEMU's docs/interop/qcow2.txt).
    static let qcow2Magic: [UInt8] = [0x51, 0x46, 0x49, 0xfb]
    /// Runs of zeros this long (aligned) are not written, so the volume stays sparse.
    static let holeBlock = 4096

    /// Whether an installed image is a zvol (its `@final` snapshot is a volume's).
    public func isVolumeImage(_ uuid: String) -> Bool {
        (try? get(uuid))?.manifest.type == "zvol"
    }

    /// Installs a verified zvol image: decompresses straight into a new volume.
    func installVolume(_ manifest: ImageManifest, file: String, progress: Bool) throws -> ImageManifest {
        guard let mib = manifest.imageSizeMiB else {
            throw LumosError.invalid("image \(manifest.uuid) is a zvol image without image_size (its disk's size in MiB); fix its manifest")
        }
        let bytes = mib << 20
        return try installing(manifest) { ds in
            try datasets.createVolume(ds, bytes: bytes)
            let target = try datasets.volumeFile(ds)
            try Self.writeVolume(from: file, compression: manifest.file.compression, into: target, bytes: bytes,
                                 scratch: Files.parent(target), progress: progress)
        }
    }

    /// The steps every install shares: lock, journal, dataset made by `fill`, `@final`, then the
    /// manifest (written last: it marks the import done). A failure or a crash at any step
    /// leaves nothing (`recover()` destroys a dataset that has no manifest).
    func installing(_ manifest: ImageManifest, fill: (String) throws -> Void) throws -> ImageManifest {
        let uuid = manifest.uuid.lowercased()
        try recover()
        let lock = try journal.lock(uuid)
        defer { withExtendedLifetime(lock) {} }
        if isInstalled(uuid) { throw LumosError.exists("image \(uuid) (\(manifest.name)@\(manifest.version)) is already installed") }
        let ds = datasets.dataset(uuid)
        if datasets.exists(ds) { throw LumosError.exists("dataset \(ds) already exists but is not an installed image; remove it or use another uuid") }
        let intent = try journal.begin("import", uuid)
        do {
            try fill(ds)
            try intent.mark("filled")
            try datasets.snapshot(finalSnapshot(uuid))
            try intent.mark("snapshotted")
            try Files.makeDirectories(directory)
            try Files.writeAtomically(manifestPath(uuid), manifest.json.serialized() + "\n")
            intent.finish()
        } catch {
            if datasets.exists(ds) { try? datasets.destroy(ds, recursive: true) }
            intent.finish()
            throw LumosError.failed("import of image \(uuid) failed, nothing was kept: \(oneLine(error))")
        }
        return manifest
    }

    /// The decompressor for an image file's compression (nil: the file is read as it is).
    static func decompressor(_ compression: String, file: String) throws -> [String]? {
        switch compression {
        case "gzip": return ["gzip", "-dc", file]
        case "bzip2": return ["bzip2", "-dc", file]
        case "xz": return ["xz", "-dc", file]
        case "zstd": return ["zstd", "-dcq", file]
        case "none": return nil
        default:
            throw LumosError.invalid("compression \"\(compression)\" is unknown; use \(ImageManifest.compressions.joined(separator: ", "))")
        }
    }

    /// Writes the disk an image file holds into `target` (an existing sparse file of `bytes`):
    /// the decompressed stream is written as it comes, all-zero blocks skipped; a stream that
    /// starts with qcow2's magic is converted with qemu-img instead. More than `bytes` of disk,
    /// a decompressor error, or a qcow2 with a backing or external data file is an error.
    public static func writeVolume(from file: String, compression: String, into target: String, bytes: UInt64,
                                   scratch: String, progress: Bool = false) throws {
        let argv = try decompressor(compression, file: file)
        let out = try sys("open", target) { open(target, O_WRONLY | O_CLOEXEC) }
        defer { close(out) }
        let source: Int32
        var pid: pid_t = 0
        var errFile: Int32 = -1
        if let argv {
            guard Exec.which(argv[0]) != nil else { throw LumosError.notFound("\(argv[0]) is missing; run scripts/install-deps.sh") }
            var p: [Int32] = [0, 0]
            try sys("pipe") { pipe(&p) }
            _ = fcntl(p[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(p[1], F_SETFD, FD_CLOEXEC)
            // The decompressor's complaints go to an unlinked file, read if it fails.
            let errPath = "\(scratch)/.import-stderr-\(getpid())"
            errFile = open(errPath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            unlink(errPath)
            do { pid = try Exec.spawn(argv, stdin: .null, stdout: .fd(p[1]), stderr: errFile >= 0 ? .fd(errFile) : .null) } catch {
                close(p[0]); close(p[1]); if errFile >= 0 { close(errFile) }
                throw error
            }
            close(p[1])
            source = p[0]
        } else {
            source = try sys("open", file) { open(file, O_RDONLY | O_CLOEXEC) }
        }
        var reaped = false
        defer {
            close(source)
            if pid > 0 && !reaped { kill(pid, SIGKILL); _ = Exec.wait(pid) }
            if errFile >= 0 { close(errFile) }
        }
        func decompressorFailure() -> LumosError? {
            guard pid > 0 else { return nil }
            let status = Exec.wait(pid)
            reaped = true
            guard status != 0 else { return nil }
            var why = "exit \(status)"
            if errFile >= 0 {
                _ = lseek(errFile, 0, SEEK_SET)
                let text = String(decoding: FD.readAll(errFile), as: UTF8.self)
                if let line = text.split(separator: "\n").first { why = String(line) }
            }
            return LumosError(.corrupt, "\(argv![0]) could not decompress \(file): \(why); is it a \(compression)-compressed disk image?")
        }

        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        let n = try fill(&buffer, from: source, file)
        if n >= 4 && buffer[0..<4].elementsEqual(qcow2Magic) {
            let qcow2: String
            if argv == nil {
                qcow2 = file
            } else {
                qcow2 = "\(scratch)/.import-\(getpid()).qcow2"
                let tmp = try sys("open", qcow2) { open(qcow2, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600) }
                defer { close(tmp) }
                _ = try copyStream(first: &buffer, count: n, from: source, to: tmp, limit: nil, what: file, progress: nil)
            }
            defer { if qcow2 != file { unlink(qcow2) } }
            if let failure = decompressorFailure() { throw failure }
            try convertQcow2(qcow2, named: file, into: target, bytes: bytes)
            return
        }
        let bar = ProgressBar("writing", total: bytes, enabled: progress)
        defer { bar.finish() }
        // Past image_size the decompressor is killed (by the defer above): its status says nothing then.
        let written = try copyStream(first: &buffer, count: n, from: source, to: out, limit: bytes, what: file, progress: bar)
        if let failure = decompressorFailure() { throw failure }
        if written == 0 { throw LumosError(.corrupt, "image file \(file) holds no data; it is empty or not a disk image") }
        guard fsync(out) == 0 else { throw Errno(errno, "fsync", target) }
    }

    /// Reads until the buffer is full or the stream ends; returns the count.
    static func fill(_ buffer: inout [UInt8], from fd: Int32, _ what: String) throws -> Int {
        var n = 0
        while n < buffer.count {
            let r = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + n, $0.count - n) }
            if r < 0 { if errno == EINTR { continue }; throw Errno(errno, "read", what) }
            if r == 0 { break }
            n += r
        }
        return n
    }

    /// Copies a stream to `out` from offset 0, skipping all-zero blocks (they stay holes in a
    /// fresh sparse file); stops with an error past `limit` bytes. Returns the bytes copied.
    static func copyStream(first buffer: inout [UInt8], count first: Int, from source: Int32, to out: Int32, limit: UInt64?,
                           what: String, progress: ProgressBar?) throws -> UInt64 {
        var offset: UInt64 = 0
        var n = first
        while n > 0 {
            if let limit, offset + UInt64(n) > limit {
                throw LumosError(.corrupt, "image file \(what) holds a disk larger than its manifest's image_size (\(limit >> 20) MiB); the file or the manifest is wrong")
            }
            try buffer.withUnsafeBytes { b in
                var i = 0
                while i < n {
                    let end = min(n, i + holeBlock)
                    if isZero(b, i, end) { i = end; continue }
                    // A run of blocks with data, written at once.
                    var j = end
                    while j < n {
                        let next = min(n, j + holeBlock)
                        if isZero(b, j, next) { break }
                        j = next
                    }
                    var done = i
                    while done < j {
                        let w = pwrite(out, b.baseAddress! + done, j - done, off_t(offset) + off_t(done))
                        if w < 0 { if errno == EINTR { continue }; throw Errno(errno, "write", what) }
                        done += w
                    }
                    i = j
                }
            }
            offset += UInt64(n)
            progress?.advance(UInt64(n))
            n = try fill(&buffer, from: source, what)
        }
        return offset
    }

    static func isZero(_ b: UnsafeRawBufferPointer, _ from: Int, _ to: Int) -> Bool {
        var i = from
        while i + 8 <= to {
            if b.loadUnaligned(fromByteOffset: i, as: UInt64.self) != 0 { return false }
            i += 8
        }
        while i < to { if b[i] != 0 { return false }; i += 1 }
        return true
    }

    /// What a qcow2 header says (QEMU's docs/interop/qcow2.txt): big-endian fields, version at
    /// 4, backing_file_offset at 8, size at 24, incompatible_features at 72 (v3; bit 2 is an
    /// external data file). A backing or data file would make qemu-img read another host file,
    /// so both are refused.
    struct Qcow2Header {
        var version: UInt32
        var backingFileOffset: UInt64
        var size: UInt64
        var incompatibleFeatures: UInt64

        init(_ h: [UInt8], what: String) throws {
            func be(_ at: Int, _ width: Int) -> UInt64 { (at..<(at + width)).reduce(0) { $0 << 8 | UInt64(h[$1]) } }
            guard h.count >= 72, h.prefix(4).elementsEqual(ImageStore.qcow2Magic) else {
                throw LumosError(.corrupt, "image file \(what) has a truncated qcow2 header")
            }
            version = UInt32(be(4, 4))
            backingFileOffset = be(8, 8)
            size = be(24, 8)
            incompatibleFeatures = version >= 3 && h.count >= 80 ? be(72, 8) : 0
        }
    }

    static func convertQcow2(_ qcow2: String, named what: String, into target: String, bytes: UInt64) throws {
        let fd = try sys("open", qcow2) { open(qcow2, O_RDONLY | O_CLOEXEC) }
        var header = [UInt8](repeating: 0, count: 104)
        let got = read(fd, &header, header.count)
        close(fd)
        let h = try Qcow2Header(Array(header.prefix(max(0, got))), what: what)
        guard h.version == 2 || h.version == 3 else {
            throw LumosError.unsupported("image file \(what) is qcow2 version \(h.version); Lumos converts versions 2 and 3")
        }
        guard h.backingFileOffset == 0 else {
            throw LumosError.unsupported("image file \(what) is a qcow2 with a backing file; flatten it first (qemu-img convert -O qcow2 without -B) so the image holds the whole disk")
        }
        guard h.incompatibleFeatures & 0b100 == 0 else {
            throw LumosError.unsupported("image file \(what) is a qcow2 with an external data file; convert it to a self-contained qcow2 or raw first")
        }
        guard h.size <= bytes else {
            throw LumosError(.corrupt, "image file \(what) is a qcow2 disk of \(Size.format(h.size)), larger than its manifest's image_size (\(bytes >> 20) MiB); the file or the manifest is wrong")
        }
        guard Exec.which("qemu-img") != nil else { throw LumosError.notFound("qemu-img is missing; apt-get install qemu-utils (scripts/install-deps.sh)") }
        // -n: into the volume's existing file; --target-is-zero: it is a fresh sparse file,
        // so zero clusters are skipped rather than written (the volume stays sparse).
        let r = try Exec.run(["qemu-img", "convert", "-q", "-f", "qcow2", "-O", "raw", "-n", "--target-is-zero", qcow2, target], check: false)
        guard r.status == 0 else {
            let why = r.stderr.split(separator: "\n").first.map(String.init) ?? "exit \(r.status)"
            throw LumosError(.corrupt, "qemu-img could not convert \(what): \(why)")
        }
    }

    /// Builds a raw disk in a scratch directory (`build` writes it at the path it is given),
    /// packs it as a zvol image file (`<name>-<version>.raw<ext>` and `.json`, kept in
    /// `output` if given) and imports it, so a built image goes through the same checks as
    /// one from elsewhere.
    public func installBuiltVolume(name: String, version: String, description: String, imageSizeMiB: UInt64,
                                   compression: String = "zstd", keepFilesIn output: String? = nil, extra: [String: JSONValue] = [:],
                                   progress: Bool = false, build: (String) throws -> Void) throws -> ImageManifest {
        guard ImageManifest.compressions.contains(compression) else {
            throw LumosError.invalid("compression \"\(compression)\" is unknown; use \(ImageManifest.compressions.joined(separator: ", "))")
        }
        let scratch = root.sub("images", ".build-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try Files.makeDirectories(scratch)
        defer { _ = try? Exec.run(["rm", "-rf", scratch], check: false) }
        let disk = scratch + "/disk.raw"
        try build(disk)
        var st = stat()
        guard stat(disk, &st) == 0 else { throw LumosError.failed("building \(name): no disk was written") }
        guard UInt64(st.st_size) <= imageSizeMiB << 20 else {
            throw LumosError.failed("building \(name): the disk is \(Size.format(UInt64(st.st_size))), more than image_size \(imageSizeMiB) MiB")
        }
        if let output { try Files.makeDirectories(output) }
        let prefix = (output ?? scratch) + "/\(name)-\(version)"
        let file = prefix + ".raw" + ImageFileInfo.fileExtension(compression)
        try Self.compress(disk, to: file, compression: compression)
        var fields = extra
        fields["image_size"] = .number(Double(imageSizeMiB))
        let manifest = ImageManifest.make(name: name, version: version, type: "zvol", description: description,
                                          sha1: try Self.fastSHA1(file), size: UInt64(try Self.size(of: file)), compression: compression, extra: fields)
        try Files.writeAtomically(prefix + ".json", manifest.json.serialized() + "\n")
        return try importImage(manifest: prefix + ".json", file: file, progress: progress)
    }

    static func size(of path: String) throws -> Int64 {
        var st = stat()
        guard stat(path, &st) == 0 else { throw Errno(errno, "stat", path) }
        return Int64(st.st_size)
    }

    // MARK: images from VM disks

    /// `imgadm create` of a kvm VM (vmadm passes a snapshot of its stopped boot disk's
    /// dataset): an O(1) copy of the snapshot becomes a new zvol image (`@final`, manifest)
    /// with no tie to the VM, which may be deleted afterwards. With `output`, the raw disk is
    /// also written compressed to `<prefix>.raw<ext>` with `<prefix>.json`, to import elsewhere;
    /// without it, `files[0]` describes the uncompressed raw disk (its sha1 is read from the
    /// snapshot with sha1sum, so the image can be exported later and checked).
    @discardableResult
    public func createFromVolume(snapshot: String, name: String, version: String, description: String = "",
                                 os: String = "linux", output: (prefix: String, compression: String)? = nil,
                                 extra: [String: JSONValue] = [:]) throws -> ImageManifest {
        guard snapshot.contains("@") else { throw LumosError.invalid("create: \(snapshot) is not a snapshot (DATASET@SNAPSHOT)") }
        if let output, !ImageManifest.compressions.contains(output.compression) {
            throw LumosError.invalid("compression \"\(output.compression)\" is unknown; use \(ImageManifest.compressions.joined(separator: ", "))")
        }
        let bytes = try datasets.volumeSize(snapshot)
        let source = try datasets.volumeFile(snapshot)
        let mib = (bytes + (1 << 20) - 1) >> 20
        var file: (sha1: String, size: UInt64, compression: String)
        var outputPaths: (String, String)?
        if let output {
            let path = output.prefix + ".raw" + ImageFileInfo.fileExtension(output.compression)
            try Self.compress(source, to: path, compression: output.compression)
            var st = stat()
            guard stat(path, &st) == 0 else { throw Errno(errno, "stat", path) }
            file = (try Self.fastSHA1(path), UInt64(st.st_size), output.compression)
            outputPaths = (output.prefix + ".json", path)
        } else {
            file = (try Self.fastSHA1(source), bytes, "none")
        }
        var fields = extra
        fields["image_size"] = .number(Double(mib))
        let manifest = ImageManifest.make(name: name, version: version, type: "zvol", os: os, description: description,
                                          sha1: file.sha1, size: file.size, compression: file.compression, extra: fields)
        if let (json, _) = outputPaths { try Files.writeAtomically(json, manifest.json.serialized() + "\n") }
        return try installing(manifest) { ds in
            try datasets.copy(snapshot, to: ds)
            if bytes < mib << 20 { try datasets.growVolume(ds, bytes: mib << 20) }
        }
    }

    /// SHA-1 of a file with coreutils' sha1sum when present (disks are large), else in Swift.
    static func fastSHA1(_ path: String) throws -> String {
        guard Exec.which("sha1sum") != nil else { return try sha1(of: path) }
        return String(try Exec.run(["sha1sum", path]).stdout.prefix(40))
    }

    static func compress(_ source: String, to path: String, compression: String) throws {
        let tool: [String]
        switch compression {
        case "gzip": tool = ["gzip", "-c"]
        case "bzip2": tool = ["bzip2", "-c"]
        case "xz": tool = ["xz", "-c", "-T0"]
        case "zstd": tool = ["zstd", "-c", "-q", "-T0"]
        default: tool = ["cat"]
        }
        let tmp = "\(path).tmp-\(getpid())"
        let out = try sys("open", tmp) { open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) }
        let input = try sys("open", source) { open(source, O_RDONLY | O_CLOEXEC) }
        let pid: pid_t
        do { pid = try Exec.spawn(tool, stdin: .fd(input), stdout: .fd(out)) } catch {
            close(input); close(out); unlink(tmp); throw error
        }
        close(input)
        let status = Exec.wait(pid)
        let synced = fsync(out) == 0
        close(out)
        guard status == 0, synced, rename(tmp, path) == 0 else {
            unlink(tmp)
            throw LumosError.failed("writing \(path) with \(tool[0]) failed (exit \(status))")
        }
    }
}
