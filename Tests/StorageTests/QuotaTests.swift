import Glibc
import LumosCore
import Testing
@testable import Storage

/// Writes `total` bytes in 1 MiB chunks; returns the errno that stopped it (0 if none).
func fill(_ path: String, bytes total: Int) -> Int32 {
    let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
    guard fd >= 0 else { return errno }
    defer { close(fd) }
    let chunk = randomBytes(1 << 20)
    var written = 0
    while written < total {
        let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, min($0.count, total - written)) }
        if n < 0 { return errno }
        written += n
    }
    return fsync(fd) == 0 ? 0 : errno
}

@Suite(.serialized, .enabled(if: isRoot, "needs root: creates loop devices and btrfs pools"))
struct QuotaTests {
    @Test func writePastQuotaFailsAndRaisedQuotaLetsItThrough() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let pool = try s.pool()
        let ds = try DatasetName("tank/q")
        try pool.createFilesystem(ds, properties: ["quota": "8M"])
        let dir = try pool.mountpoint(ds)
        #expect(fill(dir + "/big", bytes: 16 << 20) == EDQUOT)
        #expect(throws: LumosError.self) { try pool.set(ds, "quota", "1M") }  // below usage: refused
        try pool.set(ds, "quota", "64M")
        #expect(fill(dir + "/more", bytes: 16 << 20) == 0)
        #expect(try pool.get(ds, "quota") == "64M")
        let row = try pool.list(ds, recursive: false, types: [.filesystem])[0]
        #expect(row.used >= 16 << 20)
        #expect(row.available <= 64 << 20 - row.used + (1 << 20))
    }

    @Test func parentQuotaCountsChildren() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let pool = try s.pool()
        let parent = try DatasetName("tank/tenants")
        try pool.createFilesystem(parent, properties: ["quota": "12M"])
        try pool.createFilesystem(parent.child("a"))
        try pool.createFilesystem(parent.child("a").child("deep"))
        #expect(fill(try pool.mountpoint(parent.child("a")) + "/f", bytes: 6 << 20) == 0)
        #expect(fill(try pool.mountpoint(parent.child("a").child("deep")) + "/g", bytes: 12 << 20) == EDQUOT,
                "a grandchild's writes count against the parent's quota")
        let p = try pool.list(parent, recursive: false, types: [.filesystem])[0]
        #expect(p.used >= 6 << 20)
    }

    @Test func rollbackKeepsQuota() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let pool = try s.pool()
        let ds = try DatasetName("tank/r")
        try pool.createFilesystem(ds)
        try writeFile(try pool.mountpoint(ds) + "/keep", Array("v1".utf8))
        try pool.snapshot(ds.at("before"))
        try pool.set(ds, "quota", "10M")
        try pool.set(ds, "com.example:tier", "gold")
        try writeFile(try pool.mountpoint(ds) + "/keep", Array("v2".utf8))
        let oldGUID = try pool.get(ds, "guid")
        try pool.rollback(ds.at("before"))
        #expect(try pool.get(ds, "guid") != oldGUID, "btrfs gave the dataset a new subvolume")
        #expect(try readFile(try pool.mountpoint(ds) + "/keep").get() == Array("v1".utf8))
        #expect(try pool.get(ds, "quota") == "10M")
        #expect(try pool.get(ds, "com.example:tier") == "gold")
        #expect(fill(try pool.mountpoint(ds) + "/big", bytes: 20 << 20) == EDQUOT, "the quota is enforced on the new subvolume")
    }

    @Test func fullPoolIsAClearError() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let pool = try s.pool(size: 256 << 20)
        let ds = try DatasetName("tank/full")
        try pool.createFilesystem(ds)
        #expect(fill(try pool.mountpoint(ds) + "/f", bytes: 400 << 20) == ENOSPC)
        // Creating more in a full pool either works (metadata reserve) or says the pool is full.
        do { try pool.createFilesystem(try DatasetName("tank/more")) } catch let e as LumosError {
            #expect(e.kind == .noSpace || e.message.contains("space"))
        }
    }
}
