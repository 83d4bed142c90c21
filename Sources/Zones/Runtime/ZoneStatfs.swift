import CLinux
import Glibc
import LumosCore

/// df in a zone (docs/architecture.md, "df in a zone"): a zone with a quota (ZoneSpec.quotaGroup)
/// sends its statfs and fstatfs to a supervisor on the host (lumos-init --statfs-server,
/// Sources/lumos-init/statfs.c), which reports the quota for the zone's own file system. The
/// supervisor runs in the zone's cgroups (`startService`) and listens on a root-only socket
/// here; each connection hands it one seccomp listener: the zone init's, then each zlogin
/// session's.
extension ZoneRuntime {
    static let statfsDirectory = "/run/lumos/statfs"

    static func statfsSocket(_ uuid: String) -> String { "\(statfsDirectory)/\(uuid).sock" }

    /// Starts the zone's supervisor and gives it the init's seccomp listener (consumed).
    func startStatfsServer(_ spec: ZoneSpec, listener: Int32) throws {
        defer { close(listener) }
        guard let group = spec.quotaGroup else { return }
        var st = stat()
        guard stat(spec.rootfs, &st) == 0 else { throw Errno(errno, "stat", spec.rootfs) }
        try Files.makeDirectories(Self.statfsDirectory, mode: 0o700)
        let path = Self.statfsSocket(spec.uuid)
        let server = try UnixSocket.listen(path)
        defer { close(server) }
        do {
            _ = try startService(spec.uuid, [initBinary, "--statfs-server", group, String(st.st_dev)], stdin: server, what: "statfs supervisor")
            let conn = try UnixSocket.connect(path)
            defer { close(conn) }
            try Self.hand(listener, to: conn, uuid: spec.uuid)
        } catch {
            unlink(path)
            throw error
        }
    }

    /// A connection to the zone's supervisor for a zlogin session, or nil when the zone has
    /// none (no quota, or it was started before Lumos had one): the session then gets the
    /// filter without notifications.
    static func connectStatfs(_ uuid: String) -> Int32? {
        let path = statfsSocket(uuid)
        guard Files.exists(path) else { return nil }
        return try? UnixSocket.connect(path)
    }

    static func hand(_ listener: Int32, to conn: Int32, uuid: String) throws {
        try sys("sendmsg", "zone \(uuid) statfs listener") { clinux_send_fd(conn, listener) }
    }

    /// Removes a stopped zone's socket (the supervisor itself ends with the zone's cgroup).
    static func removeStatfsSocket(_ uuid: String) {
        unlink(statfsSocket(uuid))
    }
}
