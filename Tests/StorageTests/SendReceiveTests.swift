import Glibc
import LumosCore
import Testing
@testable import Storage

/// Sends a snapshot into a file and returns its bytes.
func sendToBytes(_ pool: Pool, _ snap: DatasetName, from base: DatasetName? = nil, dir: String) throws -> [UInt8] {
    let file = dir + "/stream-\(UInt32.random(in: 0...UInt32.max))"
    let fd = try sys("open", file) { open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
    defer { close(fd); unlink(file) }
    try pool.send(snap, from: base, to: fd)
    return try FD.readFile(file)
}

func receiveBytes(_ pool: Pool, _ ds: DatasetName, _ bytes: [UInt8], dir: String) throws -> DatasetName {
    let file = dir + "/in-\(UInt32.random(in: 0...UInt32.max))"
    try writeFile(file, bytes)
    let fd = try sys("open", file) { open(file, O_RDONLY | O_CLOEXEC) }
    defer { close(fd); unlink(file) }
    return try pool.receive(ds, from: fd)
}

func populate(_ dir: String) throws {
    try Files.makeDirectories(dir + "/etc/nested/deeper")
    try writeFile(dir + "/etc/hosts", Array("127.0.0.1 localhost\n".utf8))
    try writeFile(dir + "/etc/nested/deeper/blob", randomBytes(3 << 20))
    try writeFile(dir + "/small", randomBytes(100))
    try writeFile(dir + "/sparse-ish", [UInt8](repeating: 0, count: 1 << 20) + randomBytes(4096))
    symlink("etc/hosts", dir + "/link")
    chmod(dir + "/small", 0o600)
}

/// A pool with tank/src (one file, snapshot @1) fully received as tank/copy; returns the pool,
/// both names and the source's mountpoint.
func receivedCopy(_ s: Scratch, firstFile bytes: Int) throws -> (Pool, DatasetName, DatasetName, String) {
    let pool = try s.pool()
    let ds = try DatasetName("tank/src"), copy = try DatasetName("tank/copy")
    try pool.createFilesystem(ds)
    let dir = try pool.mountpoint(ds)
    try writeFile(dir + "/a", randomBytes(bytes))
    try pool.snapshot(ds.at("1"))
    _ = try receiveBytes(pool, copy, try sendToBytes(pool, ds.at("1"), dir: s.dir), dir: s.dir)
    return (pool, ds, copy, dir)
}

@Suite(.serialized, .enabled(if: isRoot, "needs root: creates loop devices and btrfs pools"))
struct SendReceiveTests {
    @Test func fullThenIncrementalRoundTripMatchesEveryFile() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let src = try s.pool("src"), dst = try s.pool("dst")
        let ds = try DatasetName("src/data")
        try src.createFilesystem(ds, properties: ["lumos:owner": "test"])
        let dir = try src.mountpoint(ds)
        try populate(dir)
        try src.snapshot(ds.at("s1"))

        let target = try DatasetName("dst/copy")
        let full = try sendToBytes(src, ds.at("s1"), dir: s.dir)
        #expect(try receiveBytes(dst, target, full, dir: s.dir) == target.at("s1"))
        #expect(treeDigest(try dst.mountpoint(target)) == treeDigest(try src.mountpoint(ds.at("s1"))))
        #expect(try dst.get(target, "lumos:owner") == "test", "user properties travel with the stream")

        // The received head is unmodified, so an incremental may move it forward; once changed, only -F may.
        try writeFile(try dst.mountpoint(target) + "/local-change", [1])
        try writeFile(dir + "/tmp1", [2])
        try src.snapshot(ds.at("probe"))
        let probe = try sendToBytes(src, ds.at("probe"), from: ds.at("s1"), dir: s.dir)
        do { _ = try receiveBytes(dst, target, probe, dir: s.dir); Issue.record("modified destination accepted") } catch let e as LumosError {
            #expect(e.message.contains("has been modified"))
        }
        try dst.rollback(target.at("s1"))
        try src.destroy(ds.at("probe"))
        unlink(dir + "/tmp1")

        // Change, add, delete; then an incremental.
        try writeFile(dir + "/etc/hosts", Array("10.0.0.1 changed\n".utf8))
        try writeFile(dir + "/added", randomBytes(10 << 20))
        unlink(dir + "/small")
        try src.snapshot(ds.at("s2"))
        let inc = try sendToBytes(src, ds.at("s2"), from: ds.at("s1"), dir: s.dir)
        #expect(inc.count < full.count + (10 << 20) && inc.count > 10 << 20, "the incremental carries the change, not everything")
        #expect(try receiveBytes(dst, target, inc, dir: s.dir) == target.at("s2"))
        let want = treeDigest(try src.mountpoint(ds.at("s2")))
        #expect(treeDigest(try dst.mountpoint(target)) == want)
        #expect(treeDigest(try dst.mountpoint(target.at("s2"))) == want)
        #expect(want["/small"] == nil && want["/added"] != nil)

        // The same incremental again: the base is no longer the newest snapshot.
        #expect(throws: LumosError.self) { _ = try receiveBytes(dst, target, inc, dir: s.dir) }
    }

    /// The backup cycle: full today, incrementals later into the untouched copy. Lumos's own
    /// setup of a received head (properties, quota group) must not count as a change once its
    /// transaction commits, and a change made a moment before the receive must.
    @Test func incrementalsIntoAnUntouchedReceivedHeadAcrossCommits() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let (pool, ds, copy, dir) = try receivedCopy(s, firstFile: 4096)
        sync()   // commit, as the periodic commit would some seconds later
        try writeFile(dir + "/b", randomBytes(4096))
        try pool.snapshot(ds.at("2"))   // commits the pool's transaction too
        #expect(try receiveBytes(pool, copy, try sendToBytes(pool, ds.at("2"), from: ds.at("1"), dir: s.dir), dir: s.dir) == copy.at("2"))
        // Properties are not data: setting one keeps the head clean (as zfs set).
        try pool.set(copy, "compression", "off")
        try pool.set(copy, "backup:note", "nightly")
        sync()
        try writeFile(dir + "/c", randomBytes(4096))
        try pool.snapshot(ds.at("3"))
        #expect(try receiveBytes(pool, copy, try sendToBytes(pool, ds.at("3"), from: ds.at("2"), dir: s.dir), dir: s.dir) == copy.at("3"))
        #expect(treeDigest(try pool.mountpoint(copy)) == treeDigest(try pool.mountpoint(ds.at("3"))))

        // A change not yet committed is still a change.
        try writeFile(try pool.mountpoint(copy) + "/local", [1])
        try writeFile(dir + "/d", randomBytes(4096))
        try pool.snapshot(ds.at("4"))
        let next = try sendToBytes(pool, ds.at("4"), from: ds.at("3"), dir: s.dir)
        try writeFile(try pool.mountpoint(copy) + "/late", [2])
        do { _ = try receiveBytes(pool, copy, next, dir: s.dir); Issue.record("modified destination accepted") } catch let e as LumosError {
            #expect(e.message.contains("has been modified"))
        }
        // After a rollback the head is clean again, also once committed.
        try pool.rollback(copy.at("3"))
        sync()
        #expect(try receiveBytes(pool, copy, next, dir: s.dir) == copy.at("4"))
        #expect(treeDigest(try pool.mountpoint(copy)) == treeDigest(try pool.mountpoint(ds.at("4"))))
    }

    /// The head is checked when the stream starts and again when it is committed: a write made
    /// while the stream was being read is not silently discarded (only -F discards changes).
    @Test func aHeadWrittenDuringTheReceiveIsNotDiscarded() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let (pool, ds, copy, dir) = try receivedCopy(s, firstFile: 1 << 20)
        try writeFile(dir + "/b", randomBytes(4 << 20))
        try pool.snapshot(ds.at("2"))
        let inc = try sendToBytes(pool, ds.at("2"), from: ds.at("1"), dir: s.dir)

        // Feed the stream through a pipe to `lumos dataset receive`: once all but its last
        // bytes are written, the receiver has read far past the header (the pipe holds 64 KiB)
        // and made its first check. Then the head changes, then the stream ends.
        signal(SIGPIPE, SIG_IGN)
        let p = try cloexecPipe()
        let errPath = s.dir + "/receive.err"
        let errFD = open(errPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        let pid = try Exec.spawn(["env", "LUMOS_ROOT=\(s.root.path)", lumosBinary, "dataset", "receive", copy.description],
                                 stdin: .fd(p[0]), stdout: .null, stderr: .fd(errFD))
        close(p[0]); close(errFD)
        let head = try pool.mountpoint(copy)
        let fedAllButTheEnd = FD.writeAll(p[1], Array(inc[..<(inc.count - 4)]))
        try writeFile(head + "/late", [7])
        let fedTheEnd = FD.writeAll(p[1], Array(inc[(inc.count - 4)...]))
        close(p[1])
        let status = Exec.wait(pid)
        let err = (try? FD.readText(errPath)) ?? ""
        #expect(fedAllButTheEnd && fedTheEnd, "the receiver stopped reading early: \(err)")
        #expect(status != 0, "a head written during the receive was overwritten")
        #expect(err.contains("was modified while the stream was received"), "\(err)")
        #expect(!pool.exists(copy.at("2")))
        #expect(try FD.readFile(head + "/late") == [7])
        #expect(Files.list(pool.receiveDir).filter { !$0.hasSuffix(".lock") }.isEmpty)
    }

    @Test func streamForTheWrongParentIsRefused() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let pool = try s.pool()
        let a = try DatasetName("tank/a"), b = try DatasetName("tank/b")
        try pool.createFilesystem(a)
        try pool.createFilesystem(b)
        try pool.snapshot(a.at("1"))
        try pool.snapshot(b.at("1"))
        try writeFile(try pool.mountpoint(a) + "/x", randomBytes(1000))
        try pool.snapshot(a.at("2"))
        let inc = try sendToBytes(pool, a.at("2"), from: a.at("1"), dir: s.dir)
        do { _ = try receiveBytes(pool, b, inc, dir: s.dir); Issue.record("accepted") } catch let e as LumosError {
            #expect(e.message.contains("different parent"))
        }
        #expect(!pool.exists(b.at("2")))
        #expect(Files.list(pool.receiveDir).isEmpty)
    }

    @Test func truncatedOrCorruptStreamLeavesNothing() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let pool = try s.pool()
        let ds = try DatasetName("tank/d")
        try pool.createFilesystem(ds)
        try populate(try pool.mountpoint(ds))
        try pool.snapshot(ds.at("s"))
        let full = try sendToBytes(pool, ds.at("s"), dir: s.dir)
        let target = try DatasetName("tank/r")
        for (what, bytes) in [("truncated", Array(full.prefix(full.count / 2))), ("cut before seal", Array(full.dropLast(2))),
                              ("flipped", full.enumerated().map { $0.offset == full.count / 3 ? $0.element ^ 0xff : $0.element }),
                              ("not a stream", Array("hello".utf8))] {
            do { _ = try receiveBytes(pool, target, bytes, dir: s.dir); Issue.record("\(what): accepted") } catch let e as LumosError {
                #expect(e.kind == .corrupt, "\(what): \(e.message)")
                #expect(!e.message.contains("\n"))
            }
            #expect(!pool.exists(target), "\(what): no dataset left")
            #expect(Files.list(pool.receiveDir).isEmpty, "\(what): no staging left")
        }
    }

    @Test func killedReceiveLeavesNoDataset() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        let pool = try s.pool()
        let ds = try DatasetName("tank/big")
        try pool.createFilesystem(ds)
        try writeFile(try pool.mountpoint(ds) + "/blob", randomBytes(24 << 20))
        try pool.snapshot(ds.at("s"))
        let stream = try sendToBytes(pool, ds.at("s"), dir: s.dir)

        let p = try cloexecPipe()
        let pid = try Exec.spawn(["env", "LUMOS_ROOT=\(s.root.path)", lumosBinary, "dataset", "receive", "tank/half"], stdin: .fd(p[0]), stdout: .null, stderr: .null)
        close(p[0])
        #expect(writeAll(p[1], stream.prefix(stream.count / 2), seconds: 60, killing: pid))
        usleep(300_000)
        kill(pid, SIGKILL)
        _ = Exec.wait(pid)
        close(p[1])
        #expect(!pool.exists(try DatasetName("tank/half")))
        // The next command removes the abandoned staging.
        try s.lumos(["dataset", "create", "tank/next"])
        #expect(Files.list(pool.receiveDir).isEmpty)
        let names = try pool.list(nil, types: Set(DatasetType.allCases)).map(\.name)
        #expect(names == ["tank", "tank/big", "tank/big@s", "tank/next"])
    }

    @Test func sendRefusesATerminal() throws {
        let s = try Scratch()
        defer { s.cleanup() }
        _ = try s.pool()
        let r = try s.lumos(["dataset", "send", "tank@nope"], check: false)
        #expect(r.status != 0)
        #expect(r.stderr.split(separator: "\n").count == 1)
    }
}
