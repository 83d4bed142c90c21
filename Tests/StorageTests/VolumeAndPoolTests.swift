import Glibc
import LumosCore
import Testing
@testable import Storage

@Suite(.serialized, .enabled(if: isRoot, "needs root: creates loop devices and btrfs pools"))
struct VolumeAndPoolTests {
    /// As zfs create -V: a volume larger than the pool can hold is refused (and nothing is
    /// made) unless it is asked for as sparse (-s).
    @Test func aVolumeLargerThanThePoolNeedsSparse() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let pool = try s.pool()
        let big = try DatasetName("tank/big")
        do {
            try pool.createVolume(big, size: 1 << 40)
            Issue.record("a 1 TiB volume in a 512 MiB pool was created")
        } catch let e as LumosError {
            #expect(e.kind == .noSpace && e.message.contains("use -s for a sparse volume"), "\(e.message)")
        }
        #expect(!pool.exists(big))
        try pool.createVolume(big, size: 1 << 40, sparse: true)
        #expect(pool.exists(big))
        let cli = try s.lumos(["dataset", "create", "-V", "2T", "tank/big2"], check: false)
        #expect(cli.status != 0 && cli.stderr.contains("exceeds the pool's available space"), "\(cli.stderr)")
        #expect(try s.lumos(["dataset", "create", "-s", "-V", "2T", "tank/big2"], check: false).status == 0)
        // Growing follows the same rule: a thick volume only by what the pool has.
        let thick = try DatasetName("tank/thick")
        try pool.createVolume(thick, size: 16 << 20)
        #expect(throws: LumosError.self) { try pool.set(thick, "volsize", "1T") }
        func fileSize(_ v: DatasetName) throws -> Int {
            var st = stat()
            return stat(try pool.volumeFile(v), &st) == 0 ? Int(st.st_size) : -1
        }
        #expect(try fileSize(thick) == 16 << 20)
        try pool.set(thick, "volsize", "32M")
        #expect(try fileSize(thick) == 32 << 20)
        try pool.set(big, "volsize", "2T")
        #expect(try fileSize(big) == 2 << 40)
    }

    @Test func volumesAreCopyOnWriteBlockDevicesWithSnapshotsAndClones() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let pool = try s.pool()
        let vol = try DatasetName("tank/disk0")
        try pool.createVolume(vol, size: 64 << 20)
        let file = try pool.volumeFile(vol)
        var flags: Int32 = 0
        let fd = open(file, O_RDONLY)
        #expect(ioctl(fd, 0x8008_6601, &flags) == 0)  // FS_IOC_GETFLAGS
        close(fd)
        #expect(flags & 0x0080_0000 == 0, "volume file is CoW (no FS_NOCOW_FL), so checksums cover it")

        let dev = try pool.attachVolume(vol)
        #expect(dev.hasPrefix("/dev/loop"))
        #expect(LoopDevice.directIO(dev), "attached with direct I/O")
        let data = randomBytes(1 << 20)
        let bfd = open(dev, O_RDWR)
        #expect(data.withUnsafeBytes { pwrite(bfd, $0.baseAddress, $0.count, 4096) } == data.count)
        fsync(bfd)
        close(bfd)
        #expect(throws: LumosError.self, "attached volumes cannot be destroyed") { try pool.destroy(vol) }
        #expect(throws: LumosError.self, "nor their pool") { try pool.destroy() }
        try pool.snapshot(vol.at("s"))
        let copy = try DatasetName("tank/disk1")
        try pool.clone(vol.at("s"), to: copy)
        let cfd = open(try pool.volumeFile(copy), O_RDONLY)
        var back = [UInt8](repeating: 0, count: data.count)
        #expect(back.withUnsafeMutableBytes { pread(cfd, $0.baseAddress, $0.count, 4096) } == data.count)
        close(cfd)
        #expect(back == data)
        #expect(try pool.list(copy, recursive: false, types: [.volume])[0].volsize == 64 << 20)

        try pool.set(vol, "volsize", "128M")
        #expect(throws: LumosError.self, "volumes only grow") { try pool.set(vol, "volsize", "32M") }
        try pool.detachVolume(vol)
        #expect(try pool.attachedVolumes().isEmpty)
    }

    @Test func exportImportBringsEverythingBack() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let pool = try s.pool()
        try pool.createFilesystem(try DatasetName("tank/keep"))
        try writeFile(try pool.mountpoint(try DatasetName("tank/keep")) + "/f", Array("kept".utf8))
        try pool.createVolume(try DatasetName("tank/v"), size: 16 << 20)
        _ = try pool.attachVolume(try DatasetName("tank/v"))
        try pool.export(force: true)
        #expect(!pool.isMountedHere)
        #expect(LoopDevice.all().filter { $0.backing.hasPrefix(s.dir) }.isEmpty, "export detaches every loop device")
        #expect(throws: LumosError.self) { _ = try Pool.open("tank", root: s.root) }
        let back = try Pool.importPools([], root: s.root)
        #expect(back.map(\.name) == ["tank"])
        #expect(try readFile(back[0].mountpoint + "/keep/f").get() == Array("kept".utf8))
        #expect(try back[0].attachedVolumes().map(\.1.description) == ["tank/v"], "attached volumes come back")

        // Forget the configuration entirely: scanning the device finds the pool by its label.
        try back[0].export(force: true)
        let dev = back[0].config.devices[0]
        unlink(PoolConfig.path(root: s.root, name: "tank"))
        let scanned = try Pool.importPools([], scan: [dev], root: s.root)
        #expect(scanned.first?.name == "tank")
        #expect(try readFile(scanned[0].mountpoint + "/keep/f").get() == Array("kept".utf8))
        #expect(throws: LumosError.self, "a non-btrfs device is refused") { try Pool.importPools([], scan: ["/etc/hostname"], root: s.root) }
    }

    @Test func poolCreateRejectsBadInput() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        var o = Pool.CreateOptions()
        o.layout = .mirror
        o.devices = [s.dir + "/only-one.img"]
        o.size = 256 << 20
        #expect(throws: LumosError.self) { _ = try Pool.create("m", options: o, root: s.root) }
        o = Pool.CreateOptions()
        o.devices = [s.dir + "/missing.img"]
        #expect(throws: LumosError.self, "missing device without --size") { _ = try Pool.create("m", options: o, root: s.root) }
        #expect(throws: LumosError.self) { _ = try Pool.create("9bad", options: Pool.CreateOptions(), root: s.root) }
        _ = try s.pool("dup")
        #expect(throws: LumosError.self) { _ = try s.pool("dup") }
        #expect(Pool.list(root: s.root).map(\.name) == ["dup"])
        #expect(LoopDevice.all().filter { $0.backing.hasPrefix(s.dir) }.count == 1, "failed creates leave no loop device")
    }

    @Test func raidzShowsTheKernelWarningAndWorks() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        var o = Pool.CreateOptions()
        o.layout = .raidz1
        o.size = 256 << 20
        o.checksum = .xxhash
        o.devices = (0..<3).map { "\(s.dir)/rz\($0).img" }
        let (pool, warnings) = try Pool.create("rz", options: o, root: s.root)
        #expect(warnings.contains { $0.contains("RAID5/6") || $0.contains("WARNING") })
        let st = try pool.status()
        #expect(st.devices.count == 3)
        #expect(st.checksum == .xxhash)
        #expect(st.health == "ONLINE")
    }
}
