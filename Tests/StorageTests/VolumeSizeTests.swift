import Glibc
import LumosCore
import Testing
@testable import Storage

/// What zvol images and VM disks need from volumes (docs/vm.md, "Images and disks"): the size
/// of a volume and of its snapshots, and a clone that is not tied to its origin.
@Suite(.serialized, .enabled(if: isRoot, "needs root (loop devices, btrfs)"))
struct VolumeSizeTests {
    @Test func sizeOfVolumesAndTheirSnapshots() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let pool = try s.pool()
        let v = try DatasetName("tank/v")
        try pool.createVolume(v, size: 16 << 20, sparse: true)
        #expect(try pool.volumeSize(v) == 16 << 20)
        try pool.snapshot(v.at("a"))
        try pool.set(v, "volsize", "32M")
        #expect(try pool.volumeSize(v) == 32 << 20)
        #expect(try pool.volumeSize(v.at("a")) == 16 << 20)
        try pool.createFilesystem(try DatasetName("tank/fs"))
        let e = #expect(throws: LumosError.self) { try pool.volumeSize(try DatasetName("tank/fs")) }
        #expect(e?.message.contains("is not a volume") == true)
    }

    @Test func cloneWithoutOriginLetsTheSnapshotGo() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let pool = try s.pool()
        let v = try DatasetName("tank/v")
        try pool.createVolume(v, size: 8 << 20)
        let fd = open(try pool.volumeFile(v), O_WRONLY | O_CLOEXEC)
        #expect(fd >= 0 && pwrite(fd, "disk", 4, 0) == 4)
        close(fd)
        try pool.snapshot(v.at("s"))
        let tied = try DatasetName("tank/tied"), free = try DatasetName("tank/free")
        try pool.clone(v.at("s"), to: tied)
        try pool.clone(v.at("s"), to: free, recordOrigin: false)
        #expect(try pool.list(tied, recursive: false)[0].origin == "tank/v@s")
        #expect(try pool.list(free, recursive: false)[0].origin == nil)
        #expect(try pool.list(free, recursive: false)[0].type == .volume)
        try pool.destroy(tied)
        try pool.destroy(v, recursive: true)
        #expect(try FD.readFile(try pool.volumeFile(free)).prefix(4).elementsEqual(Array("disk".utf8)))
        #expect(try pool.volumeSize(free) == 8 << 20)
    }
}
