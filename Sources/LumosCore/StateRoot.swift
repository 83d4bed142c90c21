import CLinux
import Glibc

/// Where Lumos keeps its state: `/var/lib/lumos` unless `LUMOS_ROOT` or `--root` says otherwise.
public struct StateRoot: Sendable, Equatable {
    public static let defaultPath = "/var/lib/lumos"
    public var path: String

    public init(_ path: String) {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        self.path = p
    }

    /// `--root` wins, then `LUMOS_ROOT`, then the default.
    public static func resolve(flag: String?) -> StateRoot {
        if let flag, !flag.isEmpty { return StateRoot(flag) }
        if let env = getenv("LUMOS_ROOT"), env.pointee != 0 { return StateRoot(String(cString: env)) }
        return StateRoot(defaultPath)
    }

    public func sub(_ parts: String...) -> String { ([path] + parts).joined(separator: "/") }
}

/// File system helpers used by every module.
public enum Files {
    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// mkdir -p.
    /// `mkdir -p -m MODE`: missing parents get 0755 and only `path` itself gets `mode`, so a
    /// private leaf (0700) made first cannot close a shared parent such as the state root,
    /// which zones' unprivileged roots must be able to pass through.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws {
        if isDirectory(path) { return }
        var acc = path.hasPrefix("/") ? "" : "."
        let parts = path.split(separator: "/")
        for (i, part) in parts.enumerated() {
            acc += "/" + part
            let m: mode_t = i == parts.count - 1 ? mode : 0o755
            if mkdir(acc, m) == 0 {
                chmod(acc, m)   // exactly: a umask such as 027 must not close the path to zones
            } else if errno != EEXIST {
                throw Errno(errno, "mkdir", acc)
            }
        }
    }

    /// Writes a file atomically: temp file, fsync, rename, fsync of the directory
    /// (docs/architecture.md "State and safety").
    public static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws {
        let dir = parent(path)
        let tmp = "\(dir)/.\(basename(path)).tmp.\(getpid())"
        let fd = try sys("open", tmp) { open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode) }
        let ok = FD.writeAll(fd, bytes) && fsync(fd) == 0
        let e = errno
        close(fd)
        if !ok { unlink(tmp); throw Errno(e, "write", tmp) }
        try sys("rename", path) { rename(tmp, path) }
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }

    public static func writeAtomically(_ path: String, _ text: String, mode: mode_t = 0o644) throws {
        try writeAtomically(path, Array(text.utf8), mode: mode)
    }

    public static func parent(_ path: String) -> String {
        guard let i = path.lastIndex(of: "/") else { return "." }
        return i == path.startIndex ? "/" : String(path[..<i])
    }

    public static func basename(_ path: String) -> String {
        guard let i = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: i)...])
    }

    /// Names in a directory, without "." and "..", sorted.
    public static func list(_ path: String) -> [String] {
        guard let d = opendir(path) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafePointer(to: e.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    public static func remove(_ path: String) { unlink(path) }
}

/// An exclusive advisory lock (flock) held for the life of the value: one per pool or tenant,
/// so that two commands never interleave a multi-step operation.
public final class FileLock: @unchecked Sendable {
    private var fd: Int32
    public let path: String

    public init(_ path: String, wait: Bool = true) throws {
        self.path = path
        try Files.makeDirectories(Files.parent(path))
        fd = try sys("open", path) { open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600) }
        let op = LOCK_EX | (wait ? 0 : LOCK_NB)
        // A throw from here on runs deinit (every stored property is set), which closes fd:
        // closing it here too would close a descriptor number another thread may have
        // reopened meanwhile (seen: a daemon's create lost its userns fd and console master
        // while the events loop found the tenant's lock busy).
        while flock(fd, op) != 0 {
            if errno == EINTR { continue }
            let e = errno
            if e == EWOULDBLOCK { throw LumosError.busy("\(path) is locked by another lumos command; wait for it to finish") }
            throw Errno(e, "flock", path)
        }
    }

    /// True when nobody holds the lock at `path` (used to tell abandoned work from work in progress).
    public static func isFree(_ path: String) -> Bool {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        if fd < 0 { return true }
        defer { close(fd) }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { flock(fd, LOCK_UN); return true }
        return false
    }

    deinit { close(fd) }
}

extension Files {
    /// Writes `relativePath` below `root` (a directory a tenant controls) without following any
    /// symlink or leaving `root`: the parent is resolved with openat2(RESOLVE_BENEATH |
    /// RESOLVE_NO_SYMLINKS), the temp file is created O_EXCL|O_NOFOLLOW, and renameat replaces
    /// the target itself (a planted symlink is replaced, never followed). Host root writing into
    /// a zone must never be steered onto host files.
    /// `durable: false` skips the fsync (see `replaceAtomically`): still atomic for readers.
    public static func writeBeneath(root: String, _ relativePath: String, _ text: String, mode: mode_t = 0o644, durable: Bool = true) throws {
        let rootFD = try sys("open", root) { open(root, CLINUX_O_PATH | O_DIRECTORY | O_CLOEXEC) }
        defer { close(rootFD) }
        let dirRel = parent(relativePath) == "." ? "." : parent(relativePath)
        let dirFD = try sys("openat2", "\(root)/\(dirRel)") {
            clinux_openat2(rootFD, dirRel, CLINUX_O_PATH | O_DIRECTORY | O_CLOEXEC, 0, clinux_resolve_strict())
        }
        defer { close(dirFD) }
        let name = basename(relativePath)
        let tmp = ".\(name).lumos-tmp"
        unlinkat(dirFD, tmp, 0)
        let fd = try sys("openat", "\(root)/\(relativePath)") { openat(dirFD, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode) }
        let ok = FD.writeAll(fd, Array(text.utf8)) && (!durable || fsync(fd) == 0)
        let e = errno
        close(fd)
        if !ok { unlinkat(dirFD, tmp, 0); throw Errno(e, "write", "\(root)/\(relativePath)") }
        try sys("renameat", "\(root)/\(relativePath)") { renameat(dirFD, tmp, dirFD, name) }
    }
}
