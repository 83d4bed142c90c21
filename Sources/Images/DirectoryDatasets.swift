import Glibc
import LumosCore

/// A stand-in `DatasetStore` over plain directories, for logic tests and hosts without a pool:
/// a dataset is a directory, a snapshot a reflinked copy, send/receive a tar stream. It has
/// none of the pool's guarantees (O(1) clones, quotas), and says so when asked for a quota.
public final class DirectoryDatasets: DatasetStore {
    public let poolName: String
    public let base: String

    public init(base: String, poolName: String = "zones") throws {
        self.base = base
        self.poolName = poolName
        try Files.makeDirectories(base)
    }

    func path(_ name: String) throws -> String {
        guard name.hasPrefix(poolName + "/") else { throw LumosError.invalid("\(name): not in pool \(poolName)") }
        let rel = String(name.dropFirst(poolName.count + 1))
        if let at = rel.firstIndex(of: "@") {
            return "\(base)/.snapshots/\(rel[..<at])/\(rel[rel.index(after: at)...])"
        }
        return "\(base)/\(rel)"
    }

    public func exists(_ name: String) -> Bool { (try? path(name)).map(Files.isDirectory) ?? false }

    public func mountpoint(_ name: String) throws -> String {
        let p = try path(name)
        guard Files.isDirectory(p) else { throw LumosError.notFound("dataset \(name) does not exist") }
        return p
    }

    public func createFilesystem(_ name: String) throws {
        let p = try path(name)
        if Files.exists(p) { throw LumosError.exists("dataset \(name) already exists") }
        try Files.makeDirectories(p)
    }

    public func snapshot(_ name: String) throws {
        guard let at = name.firstIndex(of: "@") else { throw LumosError.invalid("\(name) is not a snapshot name") }
        let src = try mountpoint(String(name[..<at]))
        let dst = try path(name)
        if Files.exists(dst) { throw LumosError.exists("snapshot \(name) already exists") }
        try Files.makeDirectories(Files.parent(dst))
        try Exec.run(["cp", "-a", "--reflink=auto", src, dst])
    }

    public func clone(_ snapshot: String, to: String) throws {
        let src = try mountpoint(snapshot)
        let dst = try path(to)
        if Files.exists(dst) { throw LumosError.exists("dataset \(to) already exists") }
        try Files.makeDirectories(Files.parent(dst))
        try Exec.run(["cp", "-a", "--reflink=auto", src, dst])
    }

    /// Holds are files `<base>/.holds/<dataset>@<snapshot>` listing the tags, one a line.
    func holdsFile(_ snapshot: String) -> String { "\(base)/.holds/\(snapshot.dropFirst(poolName.count + 1).replacingOccurrences(of: "/", with: "%"))" }

    public func holds(_ snapshot: String) throws -> [String] {
        _ = try mountpoint(snapshot)
        return ((try? FD.readText(holdsFile(snapshot))) ?? "").split(separator: "\n").map(String.init)
    }

    public func hold(_ snapshot: String, tag: String) throws {
        var tags = try holds(snapshot)
        if tags.contains(tag) { throw LumosError.exists("snapshot \(snapshot) already has a hold named \(tag)") }
        tags.append(tag)
        try Files.makeDirectories(base + "/.holds")
        try Files.writeAtomically(holdsFile(snapshot), tags.joined(separator: "\n"), mode: 0o600)
    }

    public func release(_ snapshot: String, tag: String) throws {
        var tags = try holds(snapshot)
        guard let i = tags.firstIndex(of: tag) else { throw LumosError.notFound("snapshot \(snapshot) has no hold named \(tag)") }
        tags.remove(at: i)
        if tags.isEmpty { unlink(holdsFile(snapshot)) } else { try Files.writeAtomically(holdsFile(snapshot), tags.joined(separator: "\n"), mode: 0o600) }
    }

    public func destroy(_ name: String, recursive: Bool) throws {
        let p = try path(name)
        let held = name.contains("@") ? [name] : (try snapshots(of: name)).map { "\(name)@\($0)" }
        if let h = held.first(where: { !((try? holds($0)) ?? []).isEmpty }) {
            throw LumosError.busy("cannot destroy \(name): snapshot \(h) has holds; release them first")
        }
        if !name.contains("@") {
            let snaps = "\(base)/.snapshots/\(name.dropFirst(poolName.count + 1))"
            if Files.exists(snaps) {
                guard recursive else { throw LumosError.busy("dataset \(name) has snapshots; destroy them first or use -r") }
                try Exec.run(["rm", "-rf", snaps])
            }
        }
        guard Files.exists(p) else { throw LumosError.notFound("dataset \(name) does not exist") }
        try Exec.run(["rm", "-rf", p])
    }

    public func rollback(_ snapshot: String) throws {
        guard let at = snapshot.firstIndex(of: "@") else { throw LumosError.invalid("\(snapshot) is not a snapshot name") }
        let src = try mountpoint(snapshot)
        let dst = try mountpoint(String(snapshot[..<at]))
        try Exec.run(["rm", "-rf", dst])
        try Exec.run(["cp", "-a", "--reflink=auto", src, dst])
    }

    public func setQuota(_ name: String, bytes: UInt64?) throws {
        _ = try mountpoint(name)
    }

    public func quotaGroupDirectory(_ name: String) -> String? { nil }

    public func snapshots(of name: String) throws -> [String] {
        Files.list("\(base)/.snapshots/\(name.dropFirst(poolName.count + 1))")
    }

    // Volumes: a directory holding a sparse `volume.raw`, as in a pool (Sources/Storage/Volume.swift).

    public func availableBytes() -> UInt64? { nil }
    public func createVolume(_ name: String, bytes: UInt64) throws {
        guard bytes > 0 else { throw LumosError.invalid("volume size must be greater than 0") }
        try createFilesystem(name)
        let file = try path(name) + "/" + Self.volumeFileName
        let fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        let failure: Errno? = fd < 0 ? Errno(errno, "open", file) : (ftruncate(fd, off_t(bytes)) != 0 ? Errno(errno, "ftruncate", file) : nil)
        if fd >= 0 { close(fd) }
        if let failure {
            try? destroy(name, recursive: true)
            throw failure
        }
    }

    static let volumeFileName = "volume.raw"

    public func volumeFile(_ name: String) throws -> String {
        let file = try mountpoint(name) + "/" + Self.volumeFileName
        guard Files.exists(file) else { throw LumosError.invalid("'\(name)' is not a volume") }
        return file
    }

    public func volumeSize(_ name: String) throws -> UInt64 {
        let file = try volumeFile(name)
        var st = stat()
        guard stat(file, &st) == 0 else { throw Errno(errno, "stat", file) }
        return UInt64(st.st_size)
    }

    public func growVolume(_ name: String, bytes: UInt64) throws {
        let current = try volumeSize(name)
        guard bytes >= current else {
            throw LumosError.invalid("cannot shrink volume '\(name)' from \(Size.format(current)) to \(Size.format(bytes)); volumes can only grow")
        }
        let file = try volumeFile(name)
        guard truncate(file, off_t(bytes)) == 0 else { throw Errno(errno, "truncate", file) }
    }

    public func copy(_ snapshot: String, to: String) throws { try clone(snapshot, to: to) }

    public func send(_ snapshot: String, to fd: Int32) throws {
        let src = try mountpoint(snapshot)
        let pid = try Exec.spawn(["tar", "-C", src, "-cf", "-", "."], stdout: .fd(fd))
        if Exec.wait(pid) != 0 { throw LumosError.failed("tar of \(snapshot) failed") }
    }

    public func receive(_ name: String, from fd: Int32) throws {
        try createFilesystem(name)
        let pid = try Exec.spawn(["tar", "-C", try path(name), "-xf", "-"], stdin: .fd(fd))
        if Exec.wait(pid) != 0 { throw LumosError.failed("untar into \(name) failed") }
    }
}
