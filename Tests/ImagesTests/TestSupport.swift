import Glibc
import LumosCore
@testable import Images

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
