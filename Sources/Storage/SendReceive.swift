import CLinux
import Foundation
import Glibc
import LumosCore

/// The Lumos send stream: a header naming what is sent, the btrfs send stream cut into
/// length-prefixed chunks, an empty chunk, and a CRC-32C over header and payload.
/// The framing lets `receive` tell a truncated or corrupt stream from a complete one
/// before it commits anything.
public struct SendHeader: Codable, Sendable, Equatable {
    public static let magic = Array("LUMOSSN1".utf8)
    public var version = 1
    public var type: DatasetType
    public var source: String
    public var snapshot: String
    /// For an incremental stream: the base snapshot's name and btrfs uuid.
    public var base: String?
    public var baseGUID: String?
    public var guid: String
    public var volsize: UInt64?
}

struct StreamReader {
    let fd: Int32
    var crc: UInt32 = 0
    var bytes: UInt64 = 0

    /// Reads exactly n bytes; returns fewer only at end of file.
    mutating func read(_ n: Int, into buf: inout [UInt8]) -> Int {
        var got = 0
        buf.withUnsafeMutableBytes { b in
            while got < n {
                let r = Glibc.read(fd, b.baseAddress! + got, n - got)
                if r < 0 { if errno == EINTR { continue }; break }
                if r == 0 { break }
                got += r
            }
        }
        bytes += UInt64(got)
        return got
    }

    mutating func exact(_ n: Int, _ what: String) throws -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: n)
        let got = read(n, into: &buf)
        guard got == n else {
            throw LumosError(.corrupt, "stream truncated after \(bytes) bytes (while reading \(what)); nothing was received")
        }
        crc = buf.withUnsafeBytes { clinux_crc32c(crc, $0.baseAddress, n) }
        return buf
    }

    mutating func u32(_ what: String) throws -> UInt32 {
        let b = try exact(4, what)
        return UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
    }
}

func le32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24)] }

extension Pool {
    // MARK: send

    /// Writes a full (or, with `from`, incremental) stream of a snapshot to `fd`.
    public func send(_ snap: DatasetName, from base: DatasetName? = nil, to fd: Int32) throws {
        guard isatty(fd) == 0 else {
            throw LumosError.invalid("refusing to write a send stream to a terminal; redirect to a file or pipe (lumos dataset send \(snap) > FILE)")
        }
        guard snap.isSnapshot else { throw LumosError.invalid("'\(snap)' is not a snapshot; send needs DATASET@SNAPSHOT") }
        let e = try entry(snap)
        var header = SendHeader(type: e.xattr(XAttr.type) == "volume" ? .volume : .filesystem, source: snap.description,
                                snapshot: snap.snapshot!, guid: e.info.uuid)
        header.volsize = e.xattr(XAttr.volsize).flatMap { UInt64($0) }
        var argv = ["btrfs", "send", "-q"]
        if let base {
            let b = try entry(base.isSnapshot ? base : snap.dataset.at(base.description))
            guard b.name.isSnapshot else { throw LumosError.invalid("incremental base '\(base)' is not a snapshot") }
            let origin = try entry(snap.dataset).xattr(XAttr.origin)
            guard b.name.dataset == snap.dataset || b.name.description == origin else {
                throw LumosError.invalid("incremental base '\(b.name)' is not an earlier snapshot of '\(snap.dataset)' or its origin")
            }
            guard b.info.id < e.info.id else { throw LumosError.invalid("incremental base '\(b.name)' is newer than '\(snap)'; swap them") }
            header.base = b.name.snapshot
            // The receiver matches the base by the uuid it received it under, if it was received.
            header.baseGUID = b.info.receivedUUID.isEmpty ? b.info.uuid : b.info.receivedUUID
            argv += ["-p", b.path]
        }
        if !e.info.receivedUUID.isEmpty { header.guid = e.info.receivedUUID }
        argv.append(e.path)

        var crc: UInt32 = 0
        func emit(_ bytes: [UInt8]) throws {
            crc = bytes.withUnsafeBytes { clinux_crc32c(crc, $0.baseAddress, bytes.count) }
            guard FD.writeAll(fd, bytes) else { throw Errno(errno, "write", "send stream") }
        }
        let json = Array(try JSONEncoder().encode(header))
        try emit(SendHeader.magic + le32(UInt32(json.count)) + json)

        var p: [Int32] = [0, 0]
        try sys("pipe2") { clinux_pipe2(&p, O_CLOEXEC) }
        var errFile = "/tmp/lumos-send-\(getpid()).err"
        let errFD = Glibc.open(errFile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        if errFD < 0 { errFile = "" }
        let pid: pid_t
        do {
            pid = try Exec.spawn(argv, stdout: .fd(p[1]), stderr: errFD >= 0 ? .fd(errFD) : .null)
        } catch {
            close(p[0]); close(p[1]); if errFD >= 0 { close(errFD) }
            throw error
        }
        close(p[1])
        if errFD >= 0 { close(errFD) }
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        var failure: Error?
        while failure == nil {
            let n = buf.withUnsafeMutableBytes { Glibc.read(p[0], $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; failure = Errno(errno, "read", "btrfs send"); break }
            if n == 0 { break }
            do { try emit(le32(UInt32(n)) + buf[0..<n]) } catch { failure = error }
        }
        close(p[0])
        if failure != nil { kill(pid, SIGTERM) }
        let status = Exec.wait(pid)
        let why = errFile.isEmpty ? "" : ((try? FD.readText(errFile)) ?? "").split(separator: "\n").last.map(String.init) ?? ""
        if !errFile.isEmpty { unlink(errFile) }
        if let failure { throw failure }
        guard status == 0 else { throw LumosError.failed("btrfs send of \(snap) failed: \(why.isEmpty ? "exit \(status)" : why)") }
        try emit(le32(0))
        let seal = le32(crc)
        guard FD.writeAll(fd, seal) else { throw Errno(errno, "write", "send stream") }
    }

    // MARK: receive

    /// Receives a stream into `ds`: a full stream creates it; an incremental stream needs `ds`
    /// to hold the base snapshot and moves its head forward. A truncated or corrupt stream
    /// leaves nothing behind and says why.
    @discardableResult
    public func receive(_ ds: DatasetName, from fd: Int32, force: Bool = false) throws -> DatasetName {
        guard isatty(fd) == 0 else { throw LumosError.invalid("refusing to read a stream from a terminal; redirect from a file or pipe") }
        guard !ds.isSnapshot, ds.pool == name, !ds.isPoolRoot else { throw LumosError.invalid("receive needs a dataset name in pool '\(name)' like \(name)/NAME") }
        var reader = StreamReader(fd: fd)
        let magic = try reader.exact(SendHeader.magic.count, "magic")
        guard magic == SendHeader.magic else {
            throw LumosError(.corrupt, "not a Lumos send stream (bad magic); make one with: lumos dataset send POOL/DS@SNAP")
        }
        let hlen = try reader.u32("header length")
        guard hlen < 1 << 20 else { throw LumosError(.corrupt, "corrupt stream header (length \(hlen)); nothing was received") }
        let header: SendHeader
        do { header = try JSONDecoder().decode(SendHeader.self, from: Data(try reader.exact(Int(hlen), "header"))) } catch let e as LumosError { throw e } catch {
            throw LumosError(.corrupt, "corrupt stream header; nothing was received")
        }
        guard DatasetName.isValidComponent(header.snapshot) else { throw LumosError(.corrupt, "corrupt stream: bad snapshot name '\(header.snapshot)'") }

        // Validate the target before reading the payload.
        var baseEntry: Entry?
        do {
            let lock = try begin()
            defer { _ = lock }
            if let baseGUID = header.baseGUID {
                guard exists(ds) else {
                    throw LumosError.notFound("incremental stream from '\(header.base ?? "?")' needs '\(ds)' to exist with that snapshot; receive the full stream first")
                }
                let snaps = try entries().filter { $0.name.isSnapshot && $0.name.dataset == ds }
                guard let b = snaps.first(where: { $0.info.uuid == baseGUID || $0.info.receivedUUID == baseGUID }) else {
                    throw LumosError.invalid("stream is for a different parent: '\(ds)' has no snapshot matching base '\(header.base ?? "?")' (guid \(baseGUID)); send an incremental from a snapshot '\(ds)' has")
                }
                if let newer = snaps.last, newer.info.id > b.info.id {
                    throw LumosError.busy("'\(ds)' has snapshots newer than the stream's base '\(b.name)' (\(newer.name)); destroy them first")
                }
                // As zfs receive: the head must not have changed since the base, unless -F
                // (its changes are then discarded).
                let rootFD = try openRoot()
                defer { close(rootFD) }
                if !force, try headModified(ds, since: b, fd: rootFD) {
                    throw LumosError.busy("destination '\(ds)' has been modified since snapshot '\(b.name)'; roll it back (lumos dataset rollback \(b.name)) or receive with -F to discard the changes")
                }
                baseEntry = b
            } else {
                if exists(ds) { throw LumosError.exists("dataset '\(ds)' already exists; receive a full stream into a new name, or send incrementally") }
                guard let parent = ds.parent, exists(parent) else {
                    throw LumosError.notFound("cannot receive '\(ds)': parent '\(ds.parent?.description ?? "")' does not exist; create it first")
                }
            }
            if exists(ds.at(header.snapshot)) { throw LumosError.exists("snapshot '\(ds.at(header.snapshot))' already exists") }
        }

        // Stream into a staging directory held by its own lock, so a killed receive is
        // recognised (lock free) and removed by the next command.
        let id = UUID().uuidString
        let staging = receiveDir + "/" + id
        let stagingLock = try FileLock(staging + ".lock")
        defer { _ = stagingLock; unlink(staging + ".lock") }
        try Files.makeDirectories(staging, mode: 0o700)
        do {
            try streamIntoBtrfs(&reader, staging: staging)
            try Self.crashPoint("receive.after-stream")
            let received = Files.list(staging)
            guard received.count == 1, Btrfs.isSubvolume(staging + "/" + received[0]) else {
                throw LumosError(.corrupt, "stream produced no snapshot; nothing was received")
            }
            if received[0] != Self.snapshotLeaf {
                try sys("rename", "received snapshot") { rename(staging + "/" + received[0], staging + "/" + Self.snapshotLeaf) }
            }
            let lock = try begin()
            defer { _ = lock }
            return try commitReceive(header, staging: staging, into: ds, base: force ? nil : baseEntry?.name)
        } catch {
            deleteTree(staging)
            throw error
        }
    }

    func streamIntoBtrfs(_ reader: inout StreamReader, staging: String) throws {
        var p: [Int32] = [0, 0]
        try sys("pipe2") { clinux_pipe2(&p, O_CLOEXEC) }
        let errFile = staging + ".err"
        let errFD = Glibc.open(errFile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        defer { unlink(errFile) }
        let pid: pid_t
        do {
            // -C confines btrfs receive to the staging directory (chroot): a crafted stream's
            // paths cannot reach outside it.
            pid = try Exec.spawn(["btrfs", "receive", "-q", "-e", "-C", staging], stdin: .fd(p[0]), stdout: .null, stderr: errFD >= 0 ? .fd(errFD) : .null)
        } catch {
            close(p[0]); close(p[1]); if errFD >= 0 { close(errFD) }
            throw error
        }
        close(p[0])
        if errFD >= 0 { close(errFD) }
        // A reader that stops early must not kill us with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        var failure: Error?
        var writeFailed = false
        while true {
            let n: UInt32
            do { n = try reader.u32("chunk length") } catch { failure = error; break }
            if n == 0 { break }
            guard n <= 64 << 20 else { failure = LumosError(.corrupt, "corrupt stream (chunk of \(n) bytes) after \(reader.bytes) bytes; nothing was received"); break }
            let chunk: [UInt8]
            do { chunk = try reader.exact(Int(n), "data") } catch { failure = error; break }
            if !writeFailed && !FD.writeAll(p[1], chunk) { writeFailed = true }
        }
        if failure == nil {
            let expected = reader.crc
            var seal = [UInt8](repeating: 0, count: 4)
            if reader.read(4, into: &seal) != 4 {
                failure = LumosError(.corrupt, "stream truncated after \(reader.bytes) bytes (no checksum); nothing was received")
            } else if UInt32(seal[0]) | UInt32(seal[1]) << 8 | UInt32(seal[2]) << 16 | UInt32(seal[3]) << 24 != expected {
                failure = LumosError(.corrupt, "stream checksum mismatch: the stream is corrupt; nothing was received")
            }
        }
        close(p[1])
        if failure != nil { kill(pid, SIGTERM) }
        let status = Exec.wait(pid)
        if let failure { throw failure }
        if status != 0 || writeFailed {
            let why = ((try? FD.readText(errFile)) ?? "").split(separator: "\n").last.map(String.init) ?? "exit \(status)"
            throw LumosError(.corrupt, "btrfs receive rejected the stream: \(why); nothing was received")
        }
    }

    /// Moves the received snapshot into place and makes (or moves forward) the dataset's head.
    /// `base`: the incremental's base snapshot, when the head must still be unmodified (no -F).
    func commitReceive(_ h: SendHeader, staging: String, into ds: DatasetName, base: DatasetName?) throws -> DatasetName {
        let fd = try openRoot()
        defer { close(fd) }
        let received = staging + "/" + Self.snapshotLeaf
        let snapName = ds.at(h.snapshot)
        let snapPath = path(snapName)
        let holder = snapshotHolder(snapName)
        let info = try Btrfs.info(received)
        if h.baseGUID == nil {
            // Full stream: a new dataset with its own quota group; the snapshot joins it.
            let qg = try allocateQGroup(fd)
            let groups = [Btrfs.qgroupID(level: 1, qg)] + ancestorQGroups(ds)
            let tmp = tmpDir + "/" + UUID().uuidString
            // Both renames below or neither: a crash between them is undone by recovery.
            let journal = Journal(pool: self, op: "receive")
            do {
                try journal.record(undo: path(ds))
                try journal.record(undo: snapPath)
                try Btrfs.snapshot(received, tmp, readOnly: false, qgroups: groups)
                try resetProperties(tmp, keep: [XAttr.type, XAttr.volsize, XAttr.compression])
                try Btrfs.setxattr(tmp, XAttr.qgroup, String(qg))
                for g in groups { try Btrfs.assign(fd, Btrfs.qgroupID(level: 0, info.id), to: g) }
                try Files.makeDirectories(Files.parent(holder), mode: 0o700)
                try sys("rename", "\(snapName)") { rename(staging, holder) }
                try Self.crashPoint("receive.before-rename")
                try sys("rename", "\(ds)") { rename(tmp, path(ds)) }
                journal.commit()
                recordCleanHead(ds, equals: snapName, fd: fd)
            } catch {
                journal.commit()
                try? Btrfs.delete(tmp)
                if Btrfs.isSubvolume(snapPath) { try? Btrfs.delete(snapPath); rmdir(holder) }
                Btrfs.destroyQGroup(fd, Btrfs.qgroupID(level: 1, qg))
                throw error
            }
        } else {
            // Again under this lock: the head may have been written while the stream was read
            // (the first check's lock was released meanwhile); without -F that is refused.
            if let base, try headModified(ds, since: try entry(base), fd: fd) {
                throw LumosError.busy("destination '\(ds)' was modified while the stream was received; nothing was received (roll it back to \(base) or receive with -F)")
            }
            for g in levelOneGroups(ds) { try Btrfs.assign(fd, Btrfs.qgroupID(level: 0, info.id), to: g) }
            try Files.makeDirectories(Files.parent(holder), mode: 0o700)
            try sys("rename", "\(snapName)") { rename(staging, holder) }
            // Move the head forward to the received snapshot, as zfs receive does.
            let all = try entries()
            try replaceHead(try entry(ds), with: try entry(snapName), all: all, fd: fd)
        }
        return snapName
    }
}
