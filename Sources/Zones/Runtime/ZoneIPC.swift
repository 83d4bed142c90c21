import CLinux
import Glibc
import LumosCore

/// System V IPC caps of a zone [max_shm_memory, max_shm_ids, max_sem_ids, max_msg_ids]: the
/// sysctls of the zone's own ipc namespace (ipc(7) and proc(5): kernel.shmall, shmmax, shmmni,
/// sem, msgmni are per ipc namespace). vmadm's rctls cap the zone as a whole; a zone on Linux
/// has its namespace to itself, so the namespace's limits are the zone's.
enum ZoneIPC {
    /// kernel.sem of a new ipc namespace: SEMMSL SEMMNS SEMOPM (include/uapi/linux/sem.h,
    /// the values sem_init_ns starts every namespace with); SEMMNI is vmadm's max_sem_ids.
    static let semDefaults = ["32000", "1024000000", "500"]

    /// The sysctl settings for `limits`.
    static func settings(_ limits: ZoneLimits, pageSize: UInt64) -> [(String, String)] {
        var out: [(String, String)] = []
        if let mib = limits.maxShmMemory {
            out.append(("shmmax", String(mib << 20)))
            out.append(("shmall", String((mib << 20) / pageSize)))
        }
        if let n = limits.maxShmIds { out.append(("shmmni", String(n))) }
        if let n = limits.maxSemIds { out.append(("sem", (semDefaults + [String(n)]).joined(separator: " "))) }
        if let n = limits.maxMsgIds { out.append(("msgmni", String(n))) }
        return out
    }

    /// Writes the caps into the ipc namespace of the zone whose init is `pid`.
    static func apply(_ limits: ZoneLimits, pid: pid_t, zone: String) throws {
        guard limits.hasIPCLimits else { return }
        let nsPath = "/proc/\(pid)/ns/ipc"
        let fd = try sys("open", nsPath) { open(nsPath, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        // The namespace's root on the host: the first line of the init's uid_map ("0 BASE COUNT").
        let map = try FD.readText("/proc/\(pid)/uid_map")
        let fields = map.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count >= 3, fields[0] == "0", let owner = UInt32(fields[1]) else {
            throw LumosError.failed("zone \(zone): cannot read the uid map of its init (\(pid))")
        }
        for (name, value) in settings(limits, pageSize: UInt64(sysconf(Int32(_SC_PAGESIZE)))) {
            let r = clinux_ipc_sysctl_write(fd, owner, name, value)
            if r != 0 {
                throw LumosError(.failed, "zone \(zone): cannot set kernel.\(name)=\(value) in its ipc namespace (\(String(cString: strerror(-r))))", errno: -r)
            }
        }
    }
}
