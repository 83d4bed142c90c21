import Glibc

/// Unix stream sockets by path: the host's side of the sockets Lumos keeps per zone (metadata,
/// statfs supervisor) and of QEMU's monitors.
public enum UnixSocket {
    /// Connects to `path`; the connected descriptor (close-on-exec).
    public static func connect(_ path: String) throws -> Int32 {
        var addr = try address(path)
        let fd = try open()
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if rc != 0 { let e = errno; close(fd); throw Errno(e, "connect", path) }
        return fd
    }

    /// Listens at `path` (mode 0600, owned by `owner`; nil: the caller), bound under a
    /// temporary name and renamed in, so a client never finds a socket nobody listens on.
    public static func listen(_ path: String, owner: uid_t? = nil) throws -> Int32 {
        let temp = "\(path).new"
        var addr = try address(temp)
        let fd = try open()
        unlink(temp)
        let old = umask(0o077)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(old)
        if rc != 0 { let e = errno; close(fd); throw Errno(e, "bind", temp) }
        let owned = owner.map { chown(temp, $0, $0) == 0 } ?? true
        guard owned, chmod(temp, 0o600) == 0, Glibc.listen(fd, 16) == 0, rename(temp, path) == 0 else {
            let e = errno
            unlink(temp)
            close(fd)
            throw Errno(e, "listen", path)
        }
        return fd
    }

    private static func open() throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw Errno(errno, "socket") }
        return fd
    }

    private static func address(_ path: String) throws -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw LumosError.invalid("socket path \(path) is too long") }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return addr
    }
}
