import Glibc
import LumosCore
import Testing
@testable import Storage

@Suite(.serialized, .enabled(if: isRoot, "needs root: creates loop devices and btrfs pools"))
struct SnapshotTests {
    @Test func recursiveSnapshotCoversNestedDatasets() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let pool = try s.pool()
        let top = try DatasetName("tank/web")
        try pool.createFilesystem(top.child("db").child("logs"), parents: true)
        try pool.createFilesystem(top.child("static"))
        for d in [top, top.child("db"), top.child("db").child("logs"), top.child("static")] {
            try writeFile(try pool.mountpoint(d) + "/id", Array(d.description.utf8))
        }
        try pool.snapshot(top.at("nightly"), recursive: true)
        let snaps = try pool.list(top, recursive: true, types: [.snapshot]).map(\.name)
        #expect(snaps.sorted() == ["tank/web/db/logs@nightly", "tank/web/db@nightly", "tank/web/static@nightly", "tank/web@nightly"].sorted())
        for d in [top, top.child("db").child("logs")] {
            #expect(try readFile(try pool.mountpoint(d.at("nightly")) + "/id").get() == Array(d.description.utf8))
        }
        #expect(throws: LumosError.self) { try pool.snapshot(top.at("nightly"), recursive: true) }
    }

    @Test func rollbackRestoresFilesAndKeepsChildren() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let pool = try s.pool()
        let ds = try DatasetName("tank/app")
        try pool.createFilesystem(ds)
        let dir = try pool.mountpoint(ds)
        try writeFile(dir + "/a", Array("one".utf8))
        try pool.snapshot(ds.at("s1"))
        try pool.createFilesystem(ds.child("child"))
        try writeFile(dir + "/child/c", Array("child".utf8))
        try writeFile(dir + "/a", Array("two".utf8))
        try writeFile(dir + "/b", Array("new".utf8))
        try pool.snapshot(ds.at("s2"))
        #expect(throws: LumosError.self, "newer snapshots exist") { try pool.rollback(ds.at("s1")) }
        try pool.rollback(ds.at("s1"), destroyNewer: true)
        #expect(try readFile(dir + "/a").get() == Array("one".utf8))
        #expect(!Files.exists(dir + "/b"))
        #expect(try readFile(dir + "/child/c").get() == Array("child".utf8), "child datasets survive a rollback")
        #expect(!pool.exists(ds.at("s2")))
        #expect(pool.exists(ds.at("s1")))
    }

    @Test func clonesRecordOriginAndProtectTheirSnapshot() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let pool = try s.pool()
        let gold = try DatasetName("tank/gold")
        try pool.createFilesystem(gold)
        try writeFile(try pool.mountpoint(gold) + "/os", randomBytes(4 << 20))
        try pool.snapshot(gold.at("final"))
        let t1 = try DatasetName("tank/t1")
        try pool.clone(gold.at("final"), to: t1)
        #expect(try pool.get(t1, "origin") == "tank/gold@final")
        let row = try pool.list(t1, recursive: false, types: [.filesystem])[0]
        #expect(row.used < 1 << 20, "a clone is charged only for what it writes (ZFS semantics)")
        #expect(row.referenced >= 4 << 20)
        do { try pool.destroy(gold.at("final")); Issue.record("destroyed a snapshot with clones") } catch let e as LumosError {
            #expect(e.message.contains("has clones"))
        }
        try pool.promote(t1)
        #expect(try pool.get(t1, "origin") == "-")
        #expect(try pool.get(gold, "origin") == "tank/t1@final")
        #expect(pool.exists(t1.at("final")))
        try pool.destroy(gold)
        try pool.destroy(t1, recursive: true)
        #expect(try pool.list(nil, types: [.filesystem, .volume, .snapshot]).map(\.name) == ["tank"])
    }

    @Test func badInputChangesNothing() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let pool = try s.pool()
        func fails(_ what: String, _ body: () throws -> Void) {
            do { try body(); Issue.record("\(what): no error") } catch let e as LumosError {
                #expect(!e.message.isEmpty && !e.message.contains("\n"), "\(what): one line")
            } catch { Issue.record("\(what): \(error)") }
        }
        let before = try pool.list(nil, types: Set(DatasetType.allCases)).map(\.name)
        fails("missing parent") { try pool.createFilesystem(try DatasetName("tank/no/such")) }
        fails("snapshot of missing") { try pool.snapshot(try DatasetName("tank/none@x")) }
        fails("clone of a dataset") { try pool.clone(try DatasetName("tank"), to: try DatasetName("tank/c")) }
        fails("bad property") { try pool.createFilesystem(try DatasetName("tank/p"), properties: ["quota": "lots"]) }
        fails("destroy root") { try pool.destroy(try DatasetName("tank")) }
        fails("rollback to missing") { try pool.rollback(try DatasetName("tank@none")) }
        try pool.createFilesystem(try DatasetName("tank/a"))
        try pool.createFilesystem(try DatasetName("tank/a/b"))
        fails("destroy with children") { try pool.destroy(try DatasetName("tank/a")) }
        fails("exists") { try pool.createFilesystem(try DatasetName("tank/a")) }
        try pool.destroy(try DatasetName("tank/a"), recursive: true)
        #expect(try pool.list(nil, types: Set(DatasetType.allCases)).map(\.name) == before)
    }
}
