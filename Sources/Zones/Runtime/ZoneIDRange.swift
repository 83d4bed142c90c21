import Glibc
import LumosCore

/// The host uids/gids a zone's ids map to: zone id n is host id `base + n` for n < `count`.
/// Root inside the zone is therefore an ordinary, unprivileged uid outside.
///
/// Ranges are 65536 ids (a whole 16-bit id space, so images with nobody=65534 work) in slots
/// starting at 2^28, far above login uids and the usual /etc/subuid ranges (100000+). A slot is
/// held by a file `<registry>/<slot>` naming the zone, created with link(2) (fails if taken), so
/// an allocation survives reboots and two zones can never share a slot. The registry is one per
/// host (`/var/lib/lumos/idranges`, or `$LUMOS_IDRANGES`), not per state root: zones of two state
/// roots on one host must not share host uids either.
public struct ZoneIDRange: Sendable, Equatable, Codable {
    public var base: UInt32
    public var count: UInt32

    public static let size: UInt32 = 65536
    public static let firstBase: UInt32 = 1 << 28
    static let slots = Int((UInt32.max - firstBase) / size) - 1

    public init(base: UInt32, count: UInt32 = ZoneIDRange.size) {
        self.base = base
        self.count = count
    }

    /// The host's registry of slots.
    public static var hostRegistry: String {
        if let v = getenv("LUMOS_IDRANGES"), v.pointee != 0 { return String(cString: v) }
        return StateRoot.defaultPath + "/idranges"
    }

    /// The range already held by `uuid`, if any.
    public static func lookup(_ uuid: String, root: StateRoot, registry: String = hostRegistry) -> ZoneIDRange? {
        let dir = registry
        for name in Files.list(dir) {
            guard let slot = Int(name), let owner = try? FD.readText("\(dir)/\(name)") else { continue }
            if owner.trimmingSpaces() == uuid { return ZoneIDRange(base: firstBase + UInt32(slot) * size) }
        }
        return nil
    }

    /// Every zone holding a slot, by uuid (one pass over the registry, for listing many zones).
    public static func slots(registry: String = hostRegistry) -> [String: Int] {
        var out: [String: Int] = [:]
        for name in Files.list(registry) {
            guard let slot = Int(name), let owner = try? FD.readText("\(registry)/\(name)") else { continue }
            out[owner.trimmingSpaces()] = slot
        }
        return out
    }

    /// The range of `uuid`, allocating the lowest free slot the first time. `durable: false`
    /// skips the fsync, for zones that do not outlive the host (`lumos zone run`): a host crash
    /// ends them, and their slot is merely free again afterwards.
    public static func allocate(for uuid: String, root: StateRoot, durable: Bool = true, registry: String = hostRegistry) throws -> ZoneIDRange {
        let dir = registry
        try Files.makeDirectories(dir, mode: 0o700)
        let lock = try FileLock(dir + "/.lock")
        defer { withExtendedLifetime(lock) {} }
        if let existing = lookup(uuid, root: root, registry: dir) { return existing }
        let used = Set(Files.list(dir).compactMap(Int.init))
        guard let slot = (0..<slots).first(where: { !used.contains($0) }) else {
            throw LumosError(.noSpace, "zone \(uuid): all \(slots) uid ranges are in use; delete unused zones")
        }
        // Written to a temporary name, then linked: the slot file never exists half-written.
        let tmp = "\(dir)/.\(slot).\(getpid())"
        if durable {
            try Files.writeAtomically(tmp, uuid + "\n", mode: 0o600)
        } else {
            let fd = try sys("open", tmp) { open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
            let ok = FD.writeAll(fd, Array((uuid + "\n").utf8))
            close(fd)
            if !ok { unlink(tmp); throw Errno(errno, "write", tmp) }
        }
        defer { unlink(tmp) }
        try sys("link", "\(dir)/\(slot)") { link(tmp, "\(dir)/\(slot)") }
        return ZoneIDRange(base: firstBase + UInt32(slot) * size)
    }

    /// Gives the range back (zone deleted). Idempotent.
    public static func release(_ uuid: String, root: StateRoot, registry: String = hostRegistry) {
        let dir = registry
        for name in Files.list(dir) where Int(name) != nil {
            if let owner = try? FD.readText("\(dir)/\(name)"), owner.trimmingSpaces() == uuid { unlink("\(dir)/\(name)") }
        }
    }

    /// Shifts the ownership of every file below `path` into this range (uid u → base + u), for
    /// file systems without idmapped mounts. Symlinks are changed, never followed; ids already
    /// in the range are left alone, so it is safe to run again after an interruption.
    public func chown(_ path: String) throws {
        var st = stat()
        try sys("lstat", path) { lstat(path, &st) }
        try shift(path, st)
        guard (st.st_mode & S_IFMT) == S_IFDIR else { return }
        for name in Files.list(path) { try chown("\(path)/\(name)") }
    }

    private func shift(_ path: String, _ st: stat) throws {
        func mapped(_ id: UInt32) -> UInt32 { (id >= base && id < base + count) ? id : base + min(id, count - 1) }
        let uid = mapped(st.st_uid), gid = mapped(st.st_gid)
        if uid == st.st_uid && gid == st.st_gid { return }
        try sys("lchown", path) { lchown(path, uid, gid) }
        // chown clears set-id bits; restore them (not on symlinks, which have no mode).
        if (st.st_mode & S_IFMT) != S_IFLNK && (st.st_mode & (S_ISUID | S_ISGID)) != 0 {
            try sys("chmod", path) { chmod(path, st.st_mode & 0o7777) }
        }
    }
}
