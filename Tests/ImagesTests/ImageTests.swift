import Glibc
import LumosCore
import Testing
@testable import Images

@Suite struct SHA1Tests {
    @Test(arguments: [
        ("", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
        ("abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "84983e441c3bd26ebaae4aa1f95129e5e54670f1"),
    ])
    func knownVectors(_ text: String, _ digest: String) {
        #expect(SHA1.hex(Array(text.utf8)) == digest)
    }

    @Test func millionAsInPiecesEqualsWhole() {
        var s = SHA1()
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 1000)
        for _ in 0..<1000 { s.update(chunk) }
        #expect(s.finish() == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    @Test func oddChunksMatchSystemSha1sum() throws {
        let path = "/tmp/lumos-sha1-\(getpid())"
        defer { unlink(path) }
        let bytes = (0..<100_003).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try Files.writeAtomically(path, bytes)
        let expected = String(try Exec.run(["sha1sum", path]).stdout.prefix(40))
        #expect(try ImageStore.sha1(of: path) == expected)
    }
}

@Suite struct ImageManifestTests {
    static let good: [String: JSONValue] = [
        "v": 2, "uuid": "0b8a7c2e-1f2d-4c5e-9a6b-7c8d9e0f1a2b", "name": "base", "version": "1.0", "type": "lx-dataset", "os": "linux",
        "files": [["sha1": "da39a3ee5e6b4b0d3255bfef95601890afd80709", "size": 10, "compression": "gzip"]],
    ]

    static let mistakes: [(String, JSONValue?, String)] = [
        ("uuid", "nope", "is not a UUID"),
        ("name", nil, "\"name\" is missing"),
        ("type", "docker", "type \"docker\""),
        ("v", 1, "v=1"),
        ("files", [], "\"files\" must be an array"),
        ("files", [["sha1": "xyz", "size": 10, "compression": "gzip"]], "40 hex digits"),
        ("files", [["sha1": "da39a3ee5e6b4b0d3255bfef95601890afd80709", "size": 0, "compression": "gzip"]], "size"),
        ("files", [["sha1": "da39a3ee5e6b4b0d3255bfef95601890afd80709", "size": 10, "compression": "lz4"]], "compression \"lz4\""),
    ]

    @Test(arguments: mistakes.indices)
    func mistakesAreNamed(_ i: Int) {
        var f = Self.good
        let (key, value, expected) = Self.mistakes[i]
        f[key] = value
        do {
            _ = try ImageManifest.parse(Array(JSONValue.object(f).serialized().utf8), what: "m.json")
            Issue.record("accepted \(key)")
        } catch {
            #expect("\(error)".contains(expected), "\(error)")
        }
    }

    @Test func goodManifestParses() throws {
        let m = try ImageManifest.parse(Array(JSONValue.object(Self.good).serialized().utf8), what: "m.json")
        #expect(m.file.compression == "gzip")
        #expect(m.file.size == 10)
    }
}

/// `imgadm build debian --packages` (and the Debian guest's list): names debootstrap can take.
@Suite struct DebianPackageNameTests {
    @Test func debianNamesPassAndOthersAreOneLineErrors() throws {
        try DebianImage.checkPackages(["nginx", "libc6", "g++", "linux-image-cloud-amd64", "python3.11"])
        for bad in ["Nginx", "ng inx", "nginx;rm -rf /", "-x", "a", "", "nginx,curl", "$(id)"] {
            let e = #expect(throws: LumosError.self) { try DebianImage.checkPackages([bad]) }
            #expect(e?.message.contains("package name") == true && e?.message.contains("\n") == false, "\(bad)")
        }
    }

    @Test func aBadNameCreatesNothing() throws {
        let root = "/tmp/lumos-pkgname-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { _ = try? Exec.run(["rm", "-rf", root], check: false) }
        let e = #expect(throws: LumosError.self) {
            try DebianImage.build(into: root + "/rootfs", suite: "bookworm", mirror: "http://deb.invalid/debian", include: ["bad name"], progress: false)
        }
        #expect(e?.message.contains("bad name") == true)
        #expect(!Files.exists(root), "nothing was made")
    }
}

@Suite struct AptSourcesTests {
    @Test func oneLineFormat() {
        let text = "# comment\ndeb [signed-by=/k.gpg arch=amd64] http://mirror.example/debian bookworm main\ndeb http://security.debian.org/ bookworm-security main\n"
        #expect(AptSources.fromOneLine(text) == "http://mirror.example/debian")
    }

    @Test func deb822Format() {
        let text = "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n\nTypes: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n"
        #expect(AptSources.fromDeb822(text) == "http://deb.debian.org/debian")
    }

    @Test func thirdPartyOnlyGivesNothing() {
        #expect(AptSources.fromOneLine("deb https://packages.cloud.google.com/apt cloud-sdk main\n") == nil)
    }
}

@Suite struct ImageStoreTests {
    @Test(arguments: ["gzip", "bzip2", "xz", "zstd", "none"])
    func importListGetDelete(_ compression: String) throws {
        let s = try ScratchImages()
        let packed = try s.packedImage(compression: compression)
        let m = try s.store.importImage(manifest: packed.manifestPath, file: packed.filePath)
        #expect(m.uuid == packed.manifest.uuid)
        #expect(s.store.list().map(\.manifest.uuid) == [m.uuid])
        let motd = try FD.readText(try s.datasets.mountpoint(s.store.finalSnapshot(m.uuid)) + "/root/etc/motd")
        #expect(motd == "hello from tiny\n")
        #expect(try s.store.get(m.uuid).manifest.name == "tiny")
        #expect(throws: LumosError.self) { try s.store.importImage(manifest: packed.manifestPath, file: packed.filePath) }
        try s.store.delete(m.uuid, users: [])
        #expect(s.store.list().isEmpty)
        #expect(!s.datasets.exists(s.datasets.dataset(m.uuid)))
    }

    @Test func corruptFileIsRejectedAndNothingKept() throws {
        let s = try ScratchImages()
        let packed = try s.packedImage()
        let fd = open(packed.filePath, O_WRONLY)
        _ = lseek(fd, 20, SEEK_SET)
        FD.writeAll(fd, [0xff, 0xfe])
        close(fd)
        do {
            try s.store.importImage(manifest: packed.manifestPath, file: packed.filePath)
            Issue.record("corrupt file imported")
        } catch {
            #expect("\(error)".contains("has sha1"), "\(error)")
        }
        #expect(s.store.list().isEmpty)
        #expect(!s.datasets.exists(s.datasets.dataset(packed.manifest.uuid)))
    }

    @Test func extractThroughAPipeAsOnATerminal() throws {
        let s = try ScratchImages()
        let packed = try s.packedImage(compression: "xz")
        let dest = s.dir + "/piped"
        try Files.makeDirectories(dest)
        try ImageStore.extract(packed.filePath, compression: packed.manifest.file, into: dest, progress: true)
        #expect(try FD.readText(dest + "/etc/motd") == "hello from tiny\n")
        try Files.writeAtomically(s.dir + "/junk", [UInt8](repeating: 7, count: 100_000))
        #expect(throws: LumosError.self) {
            try ImageStore.extract(s.dir + "/junk", compression: packed.manifest.file, into: dest, progress: true)
        }
    }

    /// A file whose checksum matches its manifest but that is not a tar of the named
    /// compression: the error gives tar's (or the decompressor's) own reason.
    @Test func aFileThatIsNotATarSaysWhy() throws {
        let s = try ScratchImages()
        let junk = s.dir + "/junk"
        try Files.writeAtomically(junk, [UInt8](repeating: 7, count: 10_000))
        let packed = try s.packedImage(compression: "none")
        do {
            try ImageStore.extract(junk, compression: packed.manifest.file, into: s.dir, progress: false)
            Issue.record("junk extracted")
        } catch let e as LumosError {
            #expect(e.message.contains("does not look like a tar archive"), "\(e.message)")
            #expect(!e.message.contains("Exiting with failure status"), "\(e.message)")
        }
    }

    @Test func truncatedFileIsRejected() throws {
        let s = try ScratchImages()
        let packed = try s.packedImage()
        #expect(truncate(packed.filePath, 10) == 0)
        #expect(throws: LumosError.self) { try s.store.importImage(manifest: packed.manifestPath, file: packed.filePath) }
    }

    @Test func deleteRefusedWhileUsed() throws {
        let s = try ScratchImages()
        let packed = try s.packedImage()
        let m = try s.store.importImage(manifest: packed.manifestPath, file: packed.filePath)
        do {
            try s.store.delete(m.uuid, users: ["11111111-2222-3333-4444-555555555555"])
            Issue.record("deleted an image in use")
        } catch {
            #expect("\(error)".contains("is used by VM 11111111"), "\(error)")
        }
        #expect(s.store.isInstalled(m.uuid))
    }

    @Test func abandonedImportIsUndone() throws {
        let s = try ScratchImages()
        let packed = try s.packedImage()
        // What a kill -9 after the dataset was made leaves: an intent and a dataset, no manifest.
        let journal = Journal(directory: s.root.sub("images", ".journal"))
        let intent = try journal.begin("import", packed.manifest.uuid)
        try s.datasets.createFilesystem(s.datasets.dataset(packed.manifest.uuid))
        _ = intent
        try s.store.recover()
        #expect(!s.datasets.exists(s.datasets.dataset(packed.manifest.uuid)))
        #expect(journal.pendingSubjects().isEmpty)
    }

    @Test func busyboxImageBuildsAndImports() throws {
        let s = try ScratchImages()
        let m = try s.store.installBuilt(name: "busybox", version: try BusyboxImage.version(), description: "BusyBox") {
            try BusyboxImage.build(into: $0)
        }
        let rootfs = try s.datasets.mountpoint(s.store.finalSnapshot(m.uuid)) + "/root"
        #expect(Files.exists(rootfs + "/bin/busybox"))
        var st = stat()
        #expect(lstat(rootfs + "/bin/sh", &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK)
        #expect(try FD.readText(rootfs + "/etc/passwd").hasPrefix("root:x:0:0:"))
        #expect(m.type == "lx-dataset" && m.os == "linux")
    }
}
