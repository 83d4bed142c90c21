import Glibc
import LumosCore
import Testing
@testable import Storage

/// kill -9 at each step of create, clone, recursive snapshot, rollback and receive
/// (LUMOS_TEST_CRASH_AT makes the real binary SIGKILL itself there): the next command
/// finishes or undoes the work, and nothing half-made remains.
@Suite(.serialized, .enabled(if: isRoot, "needs root: creates loop devices and btrfs pools"))
struct CrashTests {
    func crash(_ s: Scratch, at step: String, _ args: [String], input: [UInt8]? = nil) throws {
        let r = try s.lumos(args, input: input, env: ["LUMOS_TEST_CRASH_AT": step], check: false)
        #expect(r.status == 128 + SIGKILL, "\(step): the command was killed (status \(r.status): \(r.stderr))")
    }

    func names(_ pool: Pool) throws -> [String] {
        try pool.list(nil, types: Set(DatasetType.allCases)).map(\.name)
    }

    func leftovers(_ pool: Pool) -> [String] {
        [pool.tmpDir, pool.trashDir, pool.journalDir, pool.receiveDir].flatMap { d in Files.list(d).map { d + "/" + $0 } }
    }

    @Test(arguments: ["pool.create.after-files", "pool.create.before-commit"])
    func killedPoolCreateIsUndone(step: String) throws {
        let s = try Scratch()
        defer { s.cleanup() }
        try crash(s, at: step, ["pool", "create", "--size", "256M", "tank"])
        let r = try s.lumos(["pool", "list", "-H", "-o", "name"])
        #expect(r.stdout.isEmpty, "no half pool is listed")
        #expect(LoopDevice.all().filter { $0.backing.hasPrefix(s.dir) }.isEmpty, "no loop device left")
        #expect(!Files.exists(s.root.sub("pools", "tank.img")))
        _ = try s.pool("tank")
        #expect(Pool.list(root: s.root).map(\.name) == ["tank"])
    }

    @Test func killedPoolDestroyIsFinished() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        _ = try s.pool("tank", size: 256 << 20)
        try crash(s, at: "pool.destroy.committed", ["pool", "destroy", "tank"])
        let r = try s.lumos(["pool", "list", "-H", "-o", "name"])
        #expect(r.stdout.isEmpty, "the destroyed pool is not listed")
        #expect(LoopDevice.all().filter { $0.backing.hasPrefix(s.dir) }.isEmpty, "no loop device left")
        #expect(!Files.exists(s.root.sub("pools", "tank.img")))
        _ = try s.pool("tank", size: 256 << 20)   // the name is free again
    }

    @Test func createCloneAndSnapshotAreAllOrNothing() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let pool = try s.pool()
        try crash(s, at: "create.before-rename", ["dataset", "create", "-o", "quota=1G", "tank/half"])
        try s.lumos(["dataset", "list"])  // a read does not need to repair
        try s.lumos(["dataset", "create", "tank/a"])  // the next change repairs
        #expect(try names(pool) == ["tank", "tank/a"])
        #expect(leftovers(pool).isEmpty)

        try s.lumos(["dataset", "create", "tank/a/b"])
        try crash(s, at: "snapshot.after-one", ["dataset", "snapshot", "-r", "tank/a@s"])
        try s.lumos(["dataset", "snapshot", "-r", "tank/a@t"])
        #expect(try names(pool) == ["tank", "tank/a", "tank/a@t", "tank/a/b", "tank/a/b@t"], "a partial -r snapshot is undone")

        try crash(s, at: "clone.before-rename", ["dataset", "clone", "tank/a@t", "tank/c"])
        try s.lumos(["dataset", "create", "tank/d"])
        #expect(!pool.exists(try DatasetName("tank/c")))
        #expect(leftovers(pool).isEmpty)
    }

    @Test(arguments: ["rollback.after-snapshot", "rollback.after-child", "rollback.after-swap-out"])
    func rollbackFinishesOrUndoes(step: String) throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let pool = try s.pool()
        let ds = try DatasetName("tank/r")
        try pool.createFilesystem(ds, properties: ["quota": "50M"])
        try writeFile(try pool.mountpoint(ds) + "/v", Array("old".utf8))
        try pool.snapshot(ds.at("s"))
        try pool.createFilesystem(ds.child("kid"))
        try writeFile(try pool.mountpoint(ds.child("kid")) + "/k", Array("kid".utf8))
        try writeFile(try pool.mountpoint(ds) + "/v", Array("new".utf8))

        try crash(s, at: step, ["dataset", "rollback", "tank/r@s"])
        try s.lumos(["dataset", "create", "tank/other"])
        let v = try readFile(try pool.mountpoint(ds) + "/v").get()
        #expect(v == Array("old".utf8) || v == Array("new".utf8), "either rolled back or untouched")
        if step == "rollback.after-swap-out" { #expect(v == Array("old".utf8), "past the swap, recovery completes the rollback") }
        #expect(try readFile(try pool.mountpoint(ds.child("kid")) + "/k").get() == Array("kid".utf8), "the child dataset survives")
        #expect(try pool.get(ds, "quota") == "50M")
        #expect(leftovers(pool).isEmpty)
        #expect(try names(pool) == ["tank", "tank/other", "tank/r", "tank/r@s", "tank/r/kid"])
    }

    @Test func receiveCommitIsAllOrNothing() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let pool = try s.pool()
        let ds = try DatasetName("tank/src")
        try pool.createFilesystem(ds)
        try writeFile(try pool.mountpoint(ds) + "/f", randomBytes(1 << 20))
        try pool.snapshot(ds.at("s"))
        let stream = try sendToBytes(pool, ds.at("s"), dir: s.dir)
        for step in ["receive.after-stream", "receive.before-rename"] {
            try crash(s, at: step, ["dataset", "receive", "tank/copy"], input: stream)
            try s.lumos(["dataset", "create", "-p", "tank/x/\(step.replacingOccurrences(of: ".", with: "-"))"])
            #expect(!pool.exists(try DatasetName("tank/copy")), "\(step): no dataset")
            #expect(!pool.exists(try DatasetName("tank/copy@s")), "\(step): no snapshot")
            #expect(leftovers(pool).isEmpty, "\(step): \(leftovers(pool))")
        }
        try s.lumos(["dataset", "receive", "tank/copy"], input: stream)
        #expect(pool.exists(try DatasetName("tank/copy@s")))
    }
}
