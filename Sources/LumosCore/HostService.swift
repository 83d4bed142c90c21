import CLinux
import Glibc

/// A host program Lumos starts beside a zone (lumos-init as the zone's console logger, its
/// console relay, its metadata server; Sources/lumos-init): cloned straight into the cgroup
/// v2 directory `cgroupFD` (from `ZoneCgroup.withThreadInZone`, which also puts the calling
/// thread, and so the child, in the zone's v1 cgroups), so its memory is the zone's and
/// cgroup.kill ends it; -1 starts it wherever the caller runs. stdin is `stdin` (-1:
/// /dev/null), stdout and stderr /dev/null, no other descriptor reaches it, default signals
/// (clinux_spawn_in_cgroup). Returns the pid without waiting; the caller reaps it.
public enum HostService {
    public static func spawn(_ argv: [String], stdin: Int32 = -1, cgroupFD: Int32 = -1, what: String) throws -> pid_t {
        precondition(!argv.isEmpty, "HostService.spawn: no program")
        var input = stdin
        var null: Int32 = -1
        if input < 0 {
            null = try sys("open", "/dev/null") { open("/dev/null", O_RDONLY | O_CLOEXEC) }
            input = null
        }
        defer { if null >= 0 { close(null) } }
        let args = argv.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = [nil]
        defer { for p in args { free(p) } }
        var e: Int32 = 0
        let pid: pid_t = args.withUnsafeBufferPointer { a in
            envp.withUnsafeBufferPointer { en in
                var cfg = clinux_exec_config(path: UnsafePointer(a[0]), argv: a.baseAddress, envp: en.baseAddress, stdin_fd: input)
                let pid = clinux_spawn_in_cgroup(&cfg, cgroupFD)
                e = errno
                return pid
            }
        }
        if pid < 0 { throw Errno(e, "clone", what) }
        return pid
    }
}
