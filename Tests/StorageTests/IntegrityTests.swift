import Glibc
import LumosCore
import Testing
@testable import Storage

/// Checksums on real btrfs: a mirror heals from the good side, a single device refuses bad data.
@Suite(.serialized, .enabled(if: isRoot, "needs root: creates loop devices and btrfs pools"))
struct IntegrityTests {
    @Test func mirrorReturnsGoodDataAndScrubRepairs() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let pool = try s.pool("mir", layout: .mirror, devices: 2, size: 384 << 20)
        let ds = try DatasetName("mir/data")
        try pool.createFilesystem(ds, properties: ["compression": "off"])
        let dir = try pool.mountpoint(ds)
        let readBack = randomBytes(1 << 20), scrubbed = randomBytes(1 << 20)
        try writeFile(dir + "/read.bin", readBack)
        try writeFile(dir + "/scrub.bin", scrubbed)
        try pool.export()
        let blocks = stride(from: 0, to: 1 << 20, by: 4096).flatMap { [Array(readBack[$0..<($0 + 4096)]), Array(scrubbed[$0..<($0 + 4096)])] }
        let hits = try corrupt(image: pool.config.devices[0], blocks: blocks)
        #expect(hits == 512, "both files' blocks found on the first mirror side")

        let back = try Pool.importPools(["mir"], root: s.root)[0]
        dropCaches()
        let got = readFile(dir + "/read.bin")
        #expect(try got.get() == readBack, "a mirror read returns the good copy")

        let summary = try back.scrub()
        #expect(summary.csumErrors > 0)
        #expect(summary.corrected > 0, "scrub reports corrected errors")
        #expect(summary.uncorrectable == 0)
        dropCaches()
        #expect(try readFile(dir + "/scrub.bin").get() == scrubbed)
        let st = try back.status()
        #expect(st.devices.contains { $0.corruptionErrors > 0 }, "device error counters show the corruption")
        #expect(st.health.contains("errors"))
        #expect(back.config.lastScrub?.corrected == summary.corrected)
    }

    @Test func singleDeviceRefusesCorruptBlock() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let pool = try s.pool("one", size: 384 << 20)
        let ds = try DatasetName("one/data")
        try pool.createFilesystem(ds, properties: ["compression": "off"])
        let dir = try pool.mountpoint(ds)
        let data = randomBytes(256 << 10)
        try writeFile(dir + "/f.bin", data)
        try pool.export()
        #expect(try corrupt(image: pool.config.devices[0], blocks: [Array(data[8192..<12288])]) == 1)
        _ = try Pool.importPools(["one"], root: s.root)
        dropCaches()
        switch readFile(dir + "/f.bin") {
        case .success(let bytes): Issue.record("read returned \(bytes.count) bytes of a corrupt file (equal: \(bytes == data))")
        case .failure(let e): #expect(e.code == EIO, "a checksum failure is EIO, never wrong bytes")
        }
        // Blocks before the damage still read fine.
        let fd = open(dir + "/f.bin", O_RDONLY)
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 4096)
        #expect(pread(fd, &buf, 4096, 0) == 4096)
        #expect(buf == Array(data[0..<4096]))
    }
}
