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

    /// Bit n set: capability n stays.
    public var mask: UInt64 {
        switch self {
        case .standard: return ZoneSecurity.capabilityMask
        case .none: return 0
        }
    }

    /// The set a running zone was started with, from its init's bounding set (zlogin sessions
    /// get the same; the kernel is the record). Unreadable: `.none` (fail closed).
    static func of(pid: pid_t) -> ZoneCapabilities {
        guard let status = try? FD.readText("/proc/\(pid)/status") else { return .none }
        for line in status.split(separator: "\n") where line.hasPrefix("CapBnd:") {
            guard let bounding = UInt64(String(line.dropFirst("CapBnd:".count)).trimmingSpaces(), radix: 16) else { return .none }
            return bounding == 0 ? .none : .standard
        }
        return .none
    }
}

/// The default seccomp program (built by libseccomp in the parent, before clone).
final class SeccompProgram {
    /// A `struct sock_filter *` (opaque to Swift; only C reads it).
    let filter: OpaquePointer
    let count: UInt16

    /// `capabilities` .none also refuses ptrace and its relatives (clinux_zone_seccomp_default).
    init(allowIOUring: Bool = false, capabilities: ZoneCapabilities = .standard) throws {
        var prog: OpaquePointer?
        var len: UInt16 = 0
        let denyPtrace: Int32 = capabilities == .none ? 1 : 0
        try sys("seccomp_export_bpf", "default zone filter") { clinux_zone_seccomp_default(allowIOUring ? 1 : 0, denyPtrace, &prog, &len) }
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
