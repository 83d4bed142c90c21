import CLinux
import Glibc
import LumosCore

/// The subset of btrfs that datasets need, through libbtrfsutil and ioctls (no CLI parsing).
enum Btrfs {
    struct SubvolumeInfo: Sendable {
        var id: UInt64
        var parentID: UInt64
        var uuid: String
        var parentUUID: String
        var receivedUUID: String
        var generation: UInt64
        var ctransid: UInt64
        var otransid: UInt64
        var created: Int
        var readOnly: Bool
    }

    static func check(_ err: btrfs_util_error, _ what: String, _ path: String) throws {
        guard err != BTRFS_UTIL_OK else { return }
        let e = errno
        let text = String(cString: btrfs_util_strerror(err))
        if e == ENOSPC { throw LumosError(.noSpace, "\(what) \(path): the pool is out of space; free space or add a device", errno: e) }
        if e == EDQUOT { throw LumosError(.quota, "\(what) \(path): quota exceeded; raise the quota", errno: e) }
        if err == BTRFS_UTIL_ERROR_NOT_BTRFS { throw LumosError(.invalidArgument, "\(path) is not on a btrfs file system", errno: e) }
        let sys = e != 0 ? ": \(String(cString: strerror(e)))" : ""
        throw LumosError(.failed, "\(what) \(path): \(text)\(sys)", errno: e)
    }

    static func isSubvolume(_ path: String) -> Bool {
        btrfs_util_is_subvolume(path) == BTRFS_UTIL_OK
    }

    /// Creates a subvolume, placing it in the given level-1 qgroups atomically with creation.
    static func createSubvolume(_ path: String, qgroups: [UInt64]) throws {
        let inherit = try makeInherit(qgroups)
        defer { if let inherit { btrfs_util_destroy_qgroup_inherit(inherit) } }
        errno = 0
        try check(btrfs_util_create_subvolume(path, 0, nil, inherit), "cannot create", path)
    }

    static func snapshot(_ source: String, _ dest: String, readOnly: Bool, qgroups: [UInt64]) throws {
        let inherit = try makeInherit(qgroups)
        defer { if let inherit { btrfs_util_destroy_qgroup_inherit(inherit) } }
        errno = 0
        let flags: Int32 = readOnly ? Int32(BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY) : 0
        try check(btrfs_util_create_snapshot(source, dest, flags, nil, inherit), "cannot snapshot \(source) to", dest)
    }

    private static func makeInherit(_ qgroups: [UInt64]) throws -> OpaquePointer? {
        guard !qgroups.isEmpty else { return nil }
        var inherit: OpaquePointer?
        try check(btrfs_util_create_qgroup_inherit(0, &inherit), "qgroup inherit", "")
        for q in qgroups { try check(btrfs_util_qgroup_inherit_add_group(&inherit, q), "qgroup inherit", "\(q)") }
        return inherit
    }

    static func delete(_ path: String) throws {
        errno = 0
        try check(btrfs_util_delete_subvolume(path, 0), "cannot destroy", path)
    }

    static func setReadOnly(_ path: String, _ ro: Bool) throws {
        errno = 0
        try check(btrfs_util_set_subvolume_read_only(path, ro), "cannot set read-only on", path)
    }

    static func info(_ path: String) throws -> SubvolumeInfo {
        var raw = btrfs_util_subvolume_info()
        errno = 0
        try check(btrfs_util_subvolume_info(path, 0, &raw), "cannot read subvolume", path)
        var ro = false
        btrfs_util_get_subvolume_read_only(path, &ro)
        return SubvolumeInfo(
            id: raw.id, parentID: raw.parent_id,
            uuid: uuidString(raw.uuid), parentUUID: uuidString(raw.parent_uuid), receivedUUID: uuidString(raw.received_uuid),
            generation: raw.generation, ctransid: raw.ctransid, otransid: raw.otransid, created: Int(raw.otime.tv_sec), readOnly: ro)
    }

    /// Every subvolume below `top` (a mounted top-level), as paths relative to it.
    static func subvolumes(_ top: String) throws -> [(path: String, id: UInt64)] {
        var iter: OpaquePointer?
        errno = 0
        try check(btrfs_util_create_subvolume_iterator(top, 5, 0, &iter), "cannot list subvolumes of", top)
        defer { btrfs_util_destroy_subvolume_iterator(iter) }
        var out: [(String, UInt64)] = []
        while true {
            var p: UnsafeMutablePointer<CChar>?
            var id: UInt64 = 0
            let r = btrfs_util_subvolume_iterator_next(iter, &p, &id)
            if r == BTRFS_UTIL_ERROR_STOP_ITERATION { break }
            try check(r, "cannot list subvolumes of", top)
            if let p { out.append((String(cString: p), id)); free(p) }
        }
        return out
    }

    static func uuidString(_ t: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)) -> String {
        let b = withUnsafeBytes(of: t) { Array($0) }
        if b.allSatisfy({ $0 == 0 }) { return "" }
        let hex = b.map { String($0, radix: 16).leftPad(2) }
        return hex[0..<4].joined() + "-" + hex[4..<6].joined() + "-" + hex[6..<8].joined() + "-" + hex[8..<10].joined() + "-" + hex[10..<16].joined()
    }

    // MARK: quota groups

    struct QGroup: Sendable {
        var id: UInt64
        var referenced: UInt64, exclusive: UInt64
        var maxReferenced: UInt64?, maxExclusive: UInt64?
        var level: UInt64 { id >> 48 }
    }

    static func qgroupID(level: UInt64, _ id: UInt64) -> UInt64 { (level << 48) | id }

    static func enableQuota(_ fsfd: Int32) throws {
        try sys("BTRFS_IOC_QUOTA_CTL", "enable") { clinux_btrfs_quota_enable(fsfd) }
    }

    static func createQGroup(_ fsfd: Int32, _ id: UInt64) throws {
        if clinux_btrfs_qgroup_create(fsfd, id, 1) != 0 && errno != EEXIST {
            throw Errno(errno, "BTRFS_IOC_QGROUP_CREATE", "\(id >> 48)/\(id & 0xffff_ffff_ffff)")
        }
    }

    static func destroyQGroup(_ fsfd: Int32, _ id: UInt64) {
        _ = clinux_btrfs_qgroup_create(fsfd, id, 0)
    }

    static func assign(_ fsfd: Int32, _ child: UInt64, to parent: UInt64, _ on: Bool = true) throws {
        if clinux_btrfs_qgroup_assign(fsfd, child, parent, on ? 1 : 0) < 0 && errno != EEXIST && !(errno == ENOENT && !on) {
            throw Errno(errno, "BTRFS_IOC_QGROUP_ASSIGN", "\(child) → \(parent)")
        }
    }

    enum Limit { case bytes(UInt64), none }

    static func limitExclusive(_ fsfd: Int32, _ id: UInt64, _ l: Limit) throws {
        let v: UInt64 = if case .bytes(let b) = l { b } else { .max }
        try sys("BTRFS_IOC_QGROUP_LIMIT") { clinux_btrfs_qgroup_limit(fsfd, id, 0, 0, 1, v) }
    }

    static func limitReferenced(_ fsfd: Int32, _ id: UInt64, _ l: Limit) throws {
        let v: UInt64 = if case .bytes(let b) = l { b } else { .max }
        try sys("BTRFS_IOC_QGROUP_LIMIT") { clinux_btrfs_qgroup_limit(fsfd, id, 1, v, 0, 0) }
    }

    static func qgroups(_ fsfd: Int32) throws -> [UInt64: QGroup] {
        var buf = [clinux_qgroup](repeating: clinux_qgroup(), count: 65536)
        let n = clinux_btrfs_qgroups(fsfd, &buf, Int32(buf.count))
        if n < 0 { throw Errno(errno, "BTRFS_IOC_TREE_SEARCH", "quota tree") }
        var out: [UInt64: QGroup] = [:]
        for q in buf.prefix(Int(n)) {
            // BTRFS_QGROUP_LIMIT_MAX_RFER = 1, MAX_EXCL = 2; 0 means no limit.
            out[q.qgroupid] = QGroup(
                id: q.qgroupid, referenced: q.rfer, exclusive: q.excl,
                maxReferenced: q.flags & 1 != 0 && q.max_rfer != .max ? q.max_rfer : nil,
                maxExclusive: q.flags & 2 != 0 && q.max_excl != .max ? q.max_excl : nil)
        }
        return out
    }

    static func rescanQuota(_ fsfd: Int32) {
        if clinux_btrfs_quota_rescan(fsfd) == 0 || errno == EINPROGRESS { _ = clinux_btrfs_quota_rescan_wait(fsfd) }
    }

    // MARK: extended attributes (dataset properties live in trusted.* so tenants cannot change them)

    static func getxattr(_ path: String, _ name: String) -> String? {
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = CLinux.getxattr(path, name, &buf, buf.count)
        return n < 0 ? nil : String(decoding: buf[0..<n], as: UTF8.self)
    }

    static func setxattr(_ path: String, _ name: String, _ value: String) throws {
        try sys("setxattr", "\(name) on \(path)") { CLinux.setxattr(path, name, value, value.utf8.count, 0) }
    }

    static func removexattr(_ path: String, _ name: String) {
        _ = CLinux.removexattr(path, name)
    }

    static func listxattr(_ path: String) -> [String] {
        // Ask for the size first: a dataset has a handful of names, and zeroing a 64 KiB
        // buffer for each one listed was a measurable part of `dataset list`.
        let size = CLinux.listxattr(path, nil, 0)
        guard size > 0 else { return [] }
        var buf = [CChar](repeating: 0, count: size + 256)
        let n = CLinux.listxattr(path, &buf, buf.count)
        guard n > 0 else { return [] }
        return buf[0..<n].split(separator: 0).map { String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
    }
}

extension String {
    func leftPad(_ n: Int, _ c: Character = "0") -> String {
        count >= n ? self : String(repeating: c, count: n - count) + self
    }
}
