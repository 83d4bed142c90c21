import Glibc
import LumosCore

/// The zone's own limits in /proc and /sys (docs/architecture.md, "Views of a zone's limits"):
/// one lxcfs for the host, mounted at /run/lumos/lxcfs while zones run, whose files are bound
/// over the zone's /proc/meminfo, cpuinfo, stat, uptime, loadavg and
/// /sys/devices/system/cpu/online at zone start. lxcfs answers each read from the cgroups of
/// the process that reads (memory.limit_in_bytes or memory.max, cpuset, the cfs quota with
/// --enable-cfs), so one instance serves every zone.
///
/// Lifetime: a starting zone holds /run/lumos/lxcfs.lock shared from the check that lxcfs is
/// mounted until its binds are made; starting lxcfs and stopping it take it exclusively, and a
/// stop happens only when no Lumos zone on the host is running (and skips when a start holds
/// the lock). A host without lxcfs (scripts/install-deps.sh installs it) runs zones with the
/// host's views.
public enum Lxcfs {
    public static let mountpoint = "/run/lumos/lxcfs"
    static let pidfile = "/run/lumos/lxcfs.pid"
    static let lockPath = "/run/lumos/lxcfs.lock"
    /// The files bound into zones (those lxcfs provides on this host).
    public static let views = ["/proc/meminfo", "/proc/cpuinfo", "/proc/stat", "/proc/uptime", "/proc/loadavg",
                               "/sys/devices/system/cpu/online"]
    // Not /proc/diskstats nor /proc/swaps: zone.c masks them (they name the host's block
    // devices, docs/security.md), and lxcfs's diskstats names them too.

    static var binary: String? { ["/usr/bin/lxcfs", "/usr/local/bin/lxcfs"].first { access($0, X_OK) == 0 } }

    /// Whether an lxcfs is mounted at `mountpoint` (a fuse.lxcfs entry in our mountinfo).
    public static var isMounted: Bool {
        guard let text = try? FD.readText("/proc/self/mountinfo") else { return false }
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 4, fields[4] == Substring(mountpoint), let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count else { continue }
            if fields[dash + 1] == "fuse.lxcfs" { return true }
        }
        return false
    }

    /// A shared hold on a running lxcfs for the caller's zone start (nil: no lxcfs on this
    /// host). Close the returned descriptor once the zone's mounts are made.
    public static func hold() throws -> Int32? {
        guard let binary else { return nil }
        try Files.makeDirectories(Files.parent(lockPath), mode: 0o755)
        let fd = try sys("open", lockPath) { open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600) }
        for _ in 0..<3 {
            while flock(fd, LOCK_SH) != 0 { if errno != EINTR { close(fd); throw Errno(errno, "flock", lockPath) } }
            if isMounted { return fd }
            while flock(fd, LOCK_EX) != 0 { if errno != EINTR { close(fd); throw Errno(errno, "flock", lockPath) } }
            if !isMounted {
                do { try start(binary) } catch { close(fd); throw error }
            }
        }
        if isMounted { return fd }
        close(fd)
        throw LumosError.failed("lxcfs did not stay mounted at \(mountpoint); see `\(binary) -f \(mountpoint)`")
    }

    private static func start(_ binary: String) throws {
        try Files.makeDirectories(mountpoint, mode: 0o755)
        // lxcfs 5 stays in the foreground: detached from our stdio, it outlives this command.
        let pid = try Exec.spawn([binary, "--enable-cfs", "--enable-loadavg", "--pidfile=\(pidfile)", mountpoint], stdout: .null, stderr: .null)
        let deadline = Monotonic.now + 10
        while Monotonic.now < deadline, !isMounted {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { break }
            usleep(2_000)
        }
        if !isMounted {
            kill(pid, SIGKILL)
            _ = Exec.wait(pid)
            throw LumosError.failed("lxcfs could not be started at \(mountpoint); run `\(binary) -f \(mountpoint)` to see why")
        }
    }

    /// The bind mounts of the views this lxcfs provides.
    public static func mounts() -> [BindMount] {
        views.filter { Files.exists(mountpoint + $0) }.map { BindMount(source: mountpoint + $0, target: $0, readOnly: true, noExec: true) }
    }

    /// Stops lxcfs when no Lumos zone runs on the host (`anyZoneRunning`) and no start holds it.
    public static func stopIfUnused(anyZoneRunning: () -> Bool) {
        guard isMounted else { return }
        let fd = open(lockPath, O_RDWR | O_CLOEXEC)
        if fd < 0 { return }
        defer { close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0, isMounted, !anyZoneRunning() else { return }
        let pid = (try? FD.readText(pidfile)).flatMap { pid_t($0.trimmingSpaces()) }
        umount2(mountpoint, Int32(MNT_DETACH))
        // Only our lxcfs: the pid file's process, if it still is lxcfs.
        if let pid, pid > 1, ((try? FD.readText("/proc/\(pid)/comm")) ?? "").trimmingSpaces() == "lxcfs" { kill(pid, SIGTERM) }
        unlink(pidfile)
    }
}

extension ZoneRuntime {
    /// Whether any Lumos zone (of any state root) has a running process on this host.
    public func anyZoneRunning() -> Bool { knownZones().contains { cgroup($0).populated } }
}
