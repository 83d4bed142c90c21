import Glibc
import LumosCore
import Testing
@testable import Storage

/// zfs(8) "hold": a held snapshot cannot be destroyed (alone, with its dataset, or by a
/// rollback that would remove it) until every hold is released.
@Suite(.serialized, .enabled(if: isRoot, "needs root: creates loop devices and btrfs pools"))
struct HoldTests {
    @Test func aHeldSnapshotSurvivesEveryDestroyUntilReleased() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let pool = try s.pool()
        let ds = try DatasetName("tank/web")
        try pool.createFilesystem(ds)
        try pool.snapshot(ds.at("old"))
        try pool.snapshot(ds.at("keep"))
        try pool.hold("mine", ds.at("keep"))
        try pool.hold("yours", ds.at("keep"))
        #expect(try pool.holds(ds.at("keep")) == ["mine", "yours"])
        #expect(throws: LumosError.self) { try pool.hold("mine", ds.at("keep")) }
        #expect(throws: LumosError.self) { try pool.hold("a,b", ds.at("keep")) }

        for attempt: () throws -> Void in [{ try pool.destroy(ds.at("keep")) }, { try pool.destroy(ds, recursive: true) },
                                           { try pool.rollback(ds.at("old"), destroyNewer: true) }] {
            do { try attempt(); Issue.record("a held snapshot was destroyed") } catch let e as LumosError {
                #expect(e.kind == .busy && e.message.contains("has holds (mine, yours)"), "\(e)")
            }
        }
        #expect(pool.exists(ds.at("keep")) && pool.exists(ds))

        try pool.release("mine", ds.at("keep"))
        #expect(throws: LumosError.self) { try pool.release("mine", ds.at("keep")) }
        #expect(throws: LumosError.self) { try pool.destroy(ds, recursive: true) }
        try pool.release("yours", ds.at("keep"))
        #expect(try pool.holds(ds.at("keep")).isEmpty)
        try pool.destroy(ds, recursive: true)
        #expect(!pool.exists(ds))
    }

    @Test func theCommandLineSpeaksZfs() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let pool = try s.pool()
        try pool.createFilesystem(try DatasetName("tank/db"))
        try s.lumos(["dataset", "snapshot", "tank/db@gold"])
        try s.lumos(["dataset", "hold", "keep", "tank/db@gold"])
        #expect(try s.lumos(["dataset", "holds", "-H", "tank/db@gold"]).stdout.split(whereSeparator: \.isWhitespace) == ["tank/db@gold", "keep"])
        let refused = try s.lumos(["dataset", "destroy", "tank/db@gold"], check: false)
        #expect(refused.status != 0 && refused.stderr.contains("release them first"))
        try s.lumos(["dataset", "release", "keep", "tank/db@gold"])
        try s.lumos(["dataset", "destroy", "tank/db@gold"])
        #expect(!pool.exists(try DatasetName("tank/db@gold")))
    }
}
