import CLinux
import Glibc
import LumosCore

/// What a zone may do beyond its namespaces: the capabilities it keeps and its seccomp filter.
/// Both apply to the zone's init and to every zlogin session.
public enum ZoneSecurity {
    /// Docker's default set without CAP_MKNOD (useless in a user namespace). They act only on
    /// objects the zone's user namespace owns. Notably absent: CAP_SYS_ADMIN, CAP_SYS_TIME,
    /// CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_BOOT, CAP_SYS_PTRACE, CAP_NET_ADMIN, CAP_MKNOD,
    /// CAP_SYSLOG, CAP_SYS_RESOURCE, CAP_DAC_READ_SEARCH, CAP_AUDIT_CONTROL, CAP_MAC_*, CAP_BPF.
    public static let keptCapabilities: [(name: String, number: Int)] = [
        ("CAP_CHOWN", 0), ("CAP_DAC_OVERRIDE", 1), ("CAP_FOWNER", 3), ("CAP_FSETID", 4),
        ("CAP_KILL", 5), ("CAP_SETGID", 6), ("CAP_SETUID", 7), ("CAP_SETPCAP", 8),
        ("CAP_NET_BIND_SERVICE", 10), ("CAP_NET_RAW", 13), ("CAP_SYS_CHROOT", 18),
        ("CAP_AUDIT_WRITE", 29), ("CAP_SETFCAP", 31),
    ]

    public static var capabilityMask: UInt64 {
        keptCapabilities.reduce(0) { $0 | (UInt64(1) << UInt64($1.number)) }
    }

    /// What a system zone (`ZoneCapabilities.system`, every lx zone vmadm makes) keeps on top
    /// of the standard set, as an Incus/LXC unprivileged container does. Both act only inside
    /// the zone's own user namespace: CAP_NET_ADMIN over its own network namespace (addresses,
    /// routes, links, /proc/sys/net; the switch's anti-spoofing still decides what leaves the
    /// NIC), CAP_SYS_ADMIN over its own uts, mount, ipc and cgroup namespaces (sethostname, the
    /// mounts an init makes, within the seccomp limits of zone.c). docs/security.md, "System
    /// zones".
    public static let systemCapabilities: [(name: String, number: Int)] = [("CAP_NET_ADMIN", 12), ("CAP_SYS_ADMIN", 21)]

    public static var systemCapabilityMask: UInt64 {
        systemCapabilities.reduce(capabilityMask) { $0 | (UInt64(1) << UInt64($1.number)) }
    }

    /// The highest capability number the running kernel knows.
    static func lastCapability() -> Int32 {
        (try? FD.readText("/proc/sys/kernel/cap_last_cap")).flatMap { Int32($0.trimmingSpaces()) } ?? 40
    }
}

/// The capabilities a zone's processes keep [ZoneSpec.capabilities].
public enum ZoneCapabilities: Sendable, Equatable, Codable {
    /// `ZoneSecurity.keptCapabilities` (Docker's default set without CAP_MKNOD), the default.
    case standard
    /// None at all: empty bounding, permitted, effective, inheritable and ambient sets, so not
    /// even an exec of a set-uid or file-capability program (or uid 0's exec) gains one; the
    /// seccomp filter also refuses ptrace, process_vm_readv/writev and kcmp. QEMU's jail
    /// (docs/vm.md, "The jail").
    case none
    /// `.standard` plus CAP_NET_ADMIN and CAP_SYS_ADMIN in the zone's own user namespace, and
    /// a seccomp filter that lets it mount, unmount and unshare within limits: a zone that
    /// configures its own network and runs a real init (systemd). vmadm's lx zones.
    case system

    /// Bit n set: capability n stays.
    public var mask: UInt64 {
        switch self {
        case .standard: return ZoneSecurity.capabilityMask
        case .system: return ZoneSecurity.systemCapabilityMask
        case .none: return 0
        }
    }

    /// The set a running zone was started with, from its init's bounding set (zlogin sessions
    /// get the same; the kernel is the record). Unreadable: `.none` (fail closed).
    static func of(pid: pid_t) -> ZoneCapabilities {
        guard let status = try? FD.readText("/proc/\(pid)/status") else { return .none }
        for line in status.split(separator: "\n") where line.hasPrefix("CapBnd:") {
            guard let bounding = UInt64(String(line.dropFirst("CapBnd:".count)).trimmingSpaces(), radix: 16) else { return .none }
            if bounding == 0 { return .none }
            // CAP_SYS_ADMIN in the bounding set (of the zone's namespace) is only ever a system zone's.
            return bounding & (UInt64(1) << 21) != 0 ? .system : .standard
        }
        return .none
    }
}

/// The default seccomp program (built by libseccomp in the parent, before clone).
final class SeccompProgram {
    /// A `struct sock_filter *` (opaque to Swift; only C reads it).
    let filter: OpaquePointer
    let count: UInt16

    /// `capabilities` .none also refuses ptrace and its relatives; .system allows mounts within
    /// limits; `notifyStatfs` sends statfs and fstatfs to the zone's statfs supervisor
    /// (clinux_zone_seccomp_default; docs/architecture.md, "df in a zone").
    init(allowIOUring: Bool = false, capabilities: ZoneCapabilities = .standard, notifyStatfs: Bool = false) throws {
        var prog: OpaquePointer?
        var len: UInt16 = 0
        let denyPtrace: Int32 = capabilities == .none ? 1 : 0
        let system: Int32 = capabilities == .system ? 1 : 0
        try sys("seccomp_export_bpf", "default zone filter") { clinux_zone_seccomp_default(allowIOUring ? 1 : 0, denyPtrace, system, notifyStatfs ? 1 : 0, &prog, &len) }
        filter = prog!
        count = len
    }

    deinit { free(UnsafeMutableRawPointer(filter)) }
}

/// NULL-terminated C string arrays (argv, envp) owned for the life of the value.
final class CStringArray {
    private(set) var pointers: [UnsafeMutablePointer<CChar>?]

    init(_ strings: [String]) {
        pointers = strings.map { strdup($0) } + [nil]
    }

    func withPointer<R>(_ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) throws -> R) rethrows -> R {
        try pointers.withUnsafeBufferPointer { try body($0.baseAddress!) }
    }

    deinit { for p in pointers { free(p) } }
}
