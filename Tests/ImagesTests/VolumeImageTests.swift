import Glibc
import LumosCore
import Storage
import Testing
@testable import Images

/// A raw disk of `mib` MiB with data at a few places and holes between (the shape of a real
/// disk image), written sparse; returns its path.
func sampleDisk(_ dir: String, mib: Int = 8, name: String = "disk.raw") throws -> String {
    let path = "\(dir)/\(name)"
    try Files.makeDirectories(dir)
    try writeAt(path, 0, Array("LUMOS-MBR".utf8) + randomBytes(64 << 10))
    try writeAt(path, 3 << 20, randomBytes(300_000))
    try writeAt(path, (mib << 20) - 16, Array("end of the disk!".utf8))
    return path
}

/// A zvol image file and manifest made from a raw disk: compressed with the named tool (or a
/// qcow2 from qemu-img, optionally compressed too).
func zvolImage(_ disk: String, in dir: String, compression: String, mib: Int = 8, qcow2: Bool = false,
               imageSizeMiB: Int? = nil, name: String = "vol") throws -> (manifest: ImageManifest, manifestPath: String, filePath: String) {
    var source = disk
    if qcow2 {
        source = "\(dir)/\(name).qcow2"
        try Exec.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", disk, source])
    }
    let file = "\(dir)/\(name).img" + ImageFileInfo.fileExtension(compression)
    try ImageStore.compress(source, to: file, compression: compression)
    let m = ImageManifest.make(name: name, version: "1.0", type: "zvol", description: "test disk",
                               sha1: try ImageStore.fastSHA1(file), size: UInt64(fileSize(file)), compression: compression,
                               extra: ["image_size": .number(Double(imageSizeMiB ?? mib))])
    let manifestPath = "\(dir)/\(name).json"
    try Files.writeAtomically(manifestPath, m.json.serialized() + "\n")
    return (m, manifestPath, file)
}

/// The volume API of both DatasetStores (the pool's and the directory fake's).
@Suite(.serialized, .enabled(if: isRoot, "needs root: a real btrfs pool on a loop device"))
struct VolumeDatasetTests {
    func check(_ ds: DatasetStore, _ dir: String) throws {
        let v = ds.dataset("disk0")
        try ds.createVolume(v, bytes: 16 << 20)
        #expect(ds.exists(v))
        let file = try ds.volumeFile(v)
        #expect(file.hasSuffix("/volume.raw"))
        #expect(try ds.volumeSize(v) == 16 << 20)
        #expect(allocatedBytes(file) < 1 << 20, "a new volume is sparse")
        try writeAt(file, 1 << 20, Array("data".utf8))
        try ds.snapshot(v + "@one")
        #expect(try ds.volumeSize(v + "@one") == 16 << 20)
        #expect(try FD.readFile(try ds.volumeFile(v + "@one"))[(1 << 20)..<((1 << 20) + 4)].elementsEqual(Array("data".utf8)))
        try ds.growVolume(v, bytes: 32 << 20)
        #expect(try ds.volumeSize(v) == 32 << 20)
        #expect(try ds.volumeSize(v + "@one") == 16 << 20, "the snapshot keeps its size")
        let shrink = #expect(throws: LumosError.self) { try ds.growVolume(v, bytes: 8 << 20) }
        #expect(shrink?.message.contains("cannot shrink volume") == true && shrink?.message.contains("\n") == false, "\(String(describing: shrink))")
        #expect(try ds.volumeSize(v) == 32 << 20)
        #expect(throws: LumosError.self) { try ds.createVolume(ds.dataset("zero"), bytes: 0) }
        try ds.createFilesystem(ds.dataset("fs"))
        #expect(throws: LumosError.self, "a filesystem has no volume file") { try ds.volumeFile(ds.dataset("fs")) }
        try ds.destroy(v, recursive: true)
        #expect(!ds.exists(v))
    }

    @Test func onAPool() throws {
        let s = try ScratchPool()
        defer { s.cleanup() }
        try check(s.datasets, s.dir)
    }

    @Test func onTheDirectoryFake() throws {
        let s = try ScratchImages()
        try check(s.datasets, s.dir)
    }

    /// A clone of a volume's snapshot is a btrfs snapshot: made in O(1) (the pool's free space
    /// does not move by the volume's data, the clone's extents are shared), writable, and
    /// writes to it leave the snapshot alone. `copy` is the same without the origin link.
    @Test func cloneOfAVolumeSnapshotIsO1AndWritable() throws {
        let s = try ScratchPool()
        defer { s.cleanup() }
        let ds = s.datasets
        let v = ds.dataset("big")
        try ds.createVolume(v, bytes: 256 << 20)
        let data = randomBytes(48 << 20)
        try writeAt(try ds.volumeFile(v), 0, data)
        try ds.snapshot(v + "@s")
        let before = freeBytes(s.pool.mountpoint)
        try ds.clone(v + "@s", to: ds.dataset("clone"))
        try ds.copy(v + "@s", to: ds.dataset("copy"))
        let used = before - freeBytes(s.pool.mountpoint)
        #expect(used < 8 << 20, "clone and copy of a 48 MiB volume took \(used) bytes of the pool")
        let cloneFile = try ds.volumeFile(ds.dataset("clone"))
        let extents = try Exec.run(["filefrag", "-v", cloneFile]).stdout
        #expect(extents.contains("shared"), "the clone's extents are shared with the snapshot: \(extents.prefix(600))")
        #expect(try ds.volumeSize(ds.dataset("clone")) == 256 << 20)

        try writeAt(cloneFile, 0, Array("written in the clone".utf8))
        #expect(try FD.readFile(cloneFile).prefix(20).elementsEqual(Array("written in the clone".utf8)))
        #expect(try FD.readFile(try ds.volumeFile(v + "@s")).prefix(4096).elementsEqual(data.prefix(4096)), "the snapshot is unchanged")
        // The clone holds its origin (zfs semantics); the copy does not.
        #expect(throws: LumosError.self) { try ds.destroy(v + "@s", recursive: false) }
        try ds.destroy(ds.dataset("clone"), recursive: true)
        try ds.destroy(v, recursive: true)
        #expect(try FD.readFile(try ds.volumeFile(ds.dataset("copy"))).prefix(4096).elementsEqual(data.prefix(4096)))
    }
}

/// `imgadm import` of zvol images into a real pool: raw disks compressed every way IMGAPI
/// allows and qcow2 files, data byte-identical and the volume sparse; bad files change nothing.
@Suite(.serialized, .enabled(if: isRoot, "needs root: a real btrfs pool on a loop device"))
struct VolumeImageImportTests {
    @Test(arguments: ["gzip", "xz", "zstd", "bzip2", "none"])
    func rawDiskImports(_ compression: String) throws {
        let s = try ScratchPool()
        defer { s.cleanup() }
        let disk = try sampleDisk(s.dir + "/src")
        let image = try zvolImage(disk, in: s.dir + "/src", compression: compression)
        let m = try s.store.importImage(manifest: image.manifestPath, file: image.filePath)
        #expect(s.store.isVolumeImage(m.uuid))
        let file = try s.datasets.volumeFile(s.store.finalSnapshot(m.uuid))
        #expect(try ImageStore.fastSHA1(file) == ImageStore.fastSHA1(disk), "the volume holds the disk byte for byte")
        #expect(fileSize(file) == 8 << 20)
        #expect(allocatedBytes(file) < 2 << 20, "zeros were not written: \(allocatedBytes(file)) bytes allocated")
        #expect(try s.store.get(m.uuid).manifest.type == "zvol")
        #expect(ImageStore.column(try s.store.get(m.uuid), "type") == "zvol")
        #expect(try s.datasetNames() == ["zones/\(m.uuid)", "zones/\(m.uuid)@final"])
        try s.store.delete(m.uuid, users: [])
        #expect(try s.datasetNames().isEmpty)
    }

    /// A raw disk smaller than image_size: the volume is image_size, the rest reads as zeros.
    @Test func smallerDiskGetsTheImageSize() throws {
        let s = try ScratchPool()
        defer { s.cleanup() }
        let disk = try sampleDisk(s.dir + "/src", mib: 4)
        let image = try zvolImage(disk, in: s.dir + "/src", compression: "zstd", imageSizeMiB: 16)
        let m = try s.store.importImage(manifest: image.manifestPath, file: image.filePath)
        let file = try s.datasets.volumeFile(s.store.finalSnapshot(m.uuid))
        #expect(fileSize(file) == 16 << 20)
        #expect(try FD.readFile(file).prefix(4 << 20).elementsEqual(try FD.readFile(disk)))
    }

    @Test(arguments: ["none", "zstd"])
    func qcow2Imports(_ compression: String) throws {
        let s = try ScratchPool()
        defer { s.cleanup() }
        let disk = try sampleDisk(s.dir + "/src")
        let image = try zvolImage(disk, in: s.dir + "/src", compression: compression, qcow2: true)
        #expect(try FD.readFile(image.filePath).prefix(4).elementsEqual(ImageStore.qcow2Magic) == (compression == "none"))
        let m = try s.store.importImage(manifest: image.manifestPath, file: image.filePath)
        let file = try s.datasets.volumeFile(s.store.finalSnapshot(m.uuid))
        #expect(try ImageStore.fastSHA1(file) == ImageStore.fastSHA1(disk))
        #expect(allocatedBytes(file) < 2 << 20, "qemu-img kept the volume sparse: \(allocatedBytes(file))")
        #expect(try s.datasetNames() == ["zones/\(m.uuid)", "zones/\(m.uuid)@final"], "no temporary qcow2 is left in the dataset")
        #expect(Files.list(Files.parent(try s.datasets.volumeFile(s.datasets.dataset(m.uuid)))) == ["volume.raw"])
    }

    enum Bad: String, CaseIterable { case wrongSHA1, truncatedFile, truncatedStream, tooBig, qcow2Backing, qcow2TooBig, unknownCompression, noImageSize, notCompressed }

    @Test(arguments: Bad.allCases)
    func badFilesChangeNothing(_ bad: Bad) throws {
        let s = try ScratchPool()
        defer { s.cleanup() }
        let src = s.dir + "/src"
        let disk = try sampleDisk(src)
        var image = try zvolImage(disk, in: src, compression: "gzip")
        var fields = image.manifest.fields
        func rewrite() throws {
            var f = fields
            f["files"] = [["sha1": .string(try ImageStore.fastSHA1(image.filePath)), "size": .number(Double(fileSize(image.filePath))),
                           "compression": fields["files"]!.arrayValue![0].objectValue!["compression"]!]]
            fields = f
        }
        var expected = ""
        switch bad {
        case .wrongSHA1:
            try writeAt(image.filePath, 100, [0xde, 0xad])
            expected = "has sha1"
        case .truncatedFile:
            #expect(truncate(image.filePath, 1000) == 0)
            expected = "is truncated"
        case .truncatedStream:
            #expect(truncate(image.filePath, off_t(fileSize(image.filePath) / 2)) == 0)
            try rewrite()
            expected = "gzip could not decompress"
        case .tooBig:
            image = try zvolImage(disk, in: src, compression: "xz", imageSizeMiB: 4)
            fields = image.manifest.fields
            expected = "larger than its manifest's image_size"
        case .qcow2Backing:
            let overlay = "\(src)/overlay.qcow2"
            try Exec.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", disk, overlay])
            try Exec.run(["cp", overlay, image.filePath])
            fields["files"] = [["sha1": "0000000000000000000000000000000000000000", "size": 1, "compression": "none"]]
            try rewrite()
            expected = "with a backing file"
        case .qcow2TooBig:
            image = try zvolImage(disk, in: src, compression: "none", qcow2: true, imageSizeMiB: 4)
            fields = image.manifest.fields
            expected = "larger than its manifest's image_size"
        case .unknownCompression:
            fields["files"] = [["sha1": .string(image.manifest.file.sha1), "size": .number(Double(image.manifest.file.size)), "compression": "lz4"]]
            expected = "compression \"lz4\" is unknown"
        case .noImageSize:
            fields["image_size"] = nil
            expected = "needs \"image_size\""
        case .notCompressed:
            // A manifest that says xz for a gzip file.
            fields["files"] = [["sha1": .string(image.manifest.file.sha1), "size": .number(Double(image.manifest.file.size)), "compression": "xz"]]
            expected = "xz could not decompress"
        }
        try Files.writeAtomically(image.manifestPath, JSONValue.object(fields).serialized() + "\n")
        do {
            try s.store.importImage(manifest: image.manifestPath, file: image.filePath)
            Issue.record("\(bad) was imported")
        } catch let e as LumosError {
            #expect(e.message.contains(expected), "\(bad): \(e.message)")
            #expect(!e.message.contains("\n"), "one line: \(e.message)")
        }
        #expect(s.store.list().isEmpty)
        let left = try s.datasetNames()
        #expect(left.isEmpty, "\(bad) left \(left)")
        #expect(Journal(directory: s.root.sub("images", ".journal")).pendingSubjects().isEmpty)
    }

    /// What a kill -9 during the write leaves (an intent, a half-written volume, no manifest)
    /// is removed by the next command.
    @Test func abandonedVolumeImportIsUndone() throws {
        let s = try ScratchPool()
        defer { s.cleanup() }
        let uuid = "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
        let journal = Journal(directory: s.root.sub("images", ".journal"))
        let intent = try journal.begin("import", uuid)
        try s.datasets.createVolume(s.datasets.dataset(uuid), bytes: 8 << 20)
        _ = intent
        try s.store.recover()
        #expect(try s.datasetNames().isEmpty)
        #expect(journal.pendingSubjects().isEmpty)
    }
}

/// `imgadm create` from a VM's stopped disk: an O(1) copy of the disk's snapshot becomes a
/// zvol image, independent of the VM; with an output prefix, the compressed raw and manifest
/// import elsewhere to the same bytes.
@Suite(.serialized, .enabled(if: isRoot, "needs root: a real btrfs pool on a loop device"))
struct VolumeImageCreateTests {
    @Test func fromAVolumeSnapshot() throws {
        let s = try ScratchPool()
        defer { s.cleanup() }
        let ds = s.datasets
        let vmDisk = ds.dataset("vm0-disk0")
        try ds.createVolume(vmDisk, bytes: 64 << 20)
        let data = randomBytes(24 << 20)
        try writeAt(try ds.volumeFile(vmDisk), 1 << 20, data)
        try ds.snapshot(vmDisk + "@image")
        let before = freeBytes(s.pool.mountpoint)

        let out = s.dir + "/out"
        try Files.makeDirectories(out)
        let m = try s.store.createFromVolume(snapshot: vmDisk + "@image", name: "mine", version: "2", description: "from vm0",
                                             output: (prefix: out + "/mine-2", compression: "zstd"))
        let used = before - freeBytes(s.pool.mountpoint)
        #expect(used < 8 << 20, "the image took \(used) bytes: it must share the disk's blocks")
        #expect(m.type == "zvol" && m.imageSizeMiB == 64 && s.store.isVolumeImage(m.uuid))
        let imageFile = try ds.volumeFile(s.store.finalSnapshot(m.uuid))
        let sourceSHA = try ImageStore.fastSHA1(try ds.volumeFile(vmDisk + "@image"))
        #expect(try ImageStore.fastSHA1(imageFile) == sourceSHA)

        // The VM and its snapshot can go; the image stays.
        try ds.destroy(vmDisk, recursive: true)
        #expect(try ImageStore.fastSHA1(imageFile) == sourceSHA)
        #expect(try s.store.get(m.uuid).manifest.name == "mine")

        // The exported file imports on another host (here: the directory fake) to the same disk.
        let other = try ScratchImages()
        let back = try other.store.importImage(manifest: out + "/mine-2.json", file: out + "/mine-2.raw.zst")
        #expect(back.uuid == m.uuid)
        #expect(try ImageStore.fastSHA1(try other.datasets.volumeFile(other.store.finalSnapshot(m.uuid))) == sourceSHA)
    }

    @Test func withoutAnOutputFileTheManifestDescribesTheRawDisk() throws {
        let s = try ScratchPool()
        defer { s.cleanup() }
        let ds = s.datasets
        let vmDisk = ds.dataset("vm1-disk0")
        try ds.createVolume(vmDisk, bytes: 8 << 20)
        try writeAt(try ds.volumeFile(vmDisk), 0, Array("boot".utf8))
        try ds.snapshot(vmDisk + "@s")
        let m = try s.store.createFromVolume(snapshot: vmDisk + "@s", name: "raw", version: "1")
        #expect(m.file.compression == "none" && m.file.size == 8 << 20)
        let sha = try ImageStore.fastSHA1(try ds.volumeFile(vmDisk + "@s"))
        #expect(m.file.sha1 == sha)
        #expect(throws: LumosError.self, "not a snapshot") { try s.store.createFromVolume(snapshot: vmDisk, name: "x", version: "1") }
        try ds.createFilesystem(ds.dataset("fs"))
        try ds.snapshot(ds.dataset("fs") + "@s")
        #expect(throws: LumosError.self, "not a volume") { try s.store.createFromVolume(snapshot: ds.dataset("fs") + "@s", name: "x", version: "1") }
        #expect(s.store.list().map(\.manifest.uuid) == [m.uuid])
    }
}
