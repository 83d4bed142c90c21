import CLinux
import Glibc
import LumosCore
import VM

/// Resource controls of a running zone, in vmadm's units (vmadm(8) property in brackets).
/// `nil` means "no limit". Applied through cgroups (v1 controllers and/or cgroup v2, see
/// `CgroupLayout`), rlimits and ipc sysctls, and can be changed live with
/// `ZoneRuntime.updateLimits`. vmadm fills it from the property table (`ZoneLimits(manifest)`),
/// which also holds the rules between fields (max_swap ≥ max_physical_memory).
public struct ZoneLimits: Sendable, Equatable, Codable {
    /// MiB of RAM [max_physical_memory]: memory.limit_in_bytes / memory.max.
    public var maxPhysicalMemory: UInt64?
    /// MiB of RAM plus swap [max_swap], at least maxPhysicalMemory: memory.memsw.limit_in_bytes,
    /// or memory.swap.max = maxSwap - maxPhysicalMemory on cgroup v2.
    public var maxSwap: UInt64?
    /// MiB of locked memory [max_locked_memory]: RLIMIT_MEMLOCK of the zone's processes.
    public var maxLockedMemory: UInt64?
    /// Processes and threads [max_lwps]: pids.max.
    public var maxLwps: UInt64?
    /// Relative CPU weight [cpu_shares], vmadm's default 100: cpu.shares = shares*1024/100 on v1
    /// (100 weighs like one host process), cpu.weight = shares on v2 (the same scale).
    public var cpuShares: UInt64?
    /// Percent of one CPU [cpu_cap], 0 or nil = none: cpu.cfs_quota_us / cpu.max, period 100 ms.
    public var cpuCap: UInt64?
    /// I/O weight [zfs_io_priority], 1...1000 (default 100): blkio.bfq.weight / io.weight.
    public var ioWeight: UInt64?
    /// MiB of System V shared memory [max_shm_memory]: kernel.shmall (pages) and kernel.shmmax
    /// in the zone's ipc namespace.
    public var maxShmMemory: UInt64?
    /// Shared memory segments [max_shm_ids]: kernel.shmmni in the zone's ipc namespace.
    public var maxShmIds: UInt64?
    /// Semaphore sets [max_sem_ids]: SEMMNI, the fourth field of kernel.sem.
    public var maxSemIds: UInt64?
    /// Message queues [max_msg_ids]: kernel.msgmni.
    public var maxMsgIds: UInt64?

    public init(maxPhysicalMemory: UInt64? = nil, maxSwap: UInt64? = nil, maxLockedMemory: UInt64? = nil,
                maxLwps: UInt64? = nil, cpuShares: UInt64? = nil, cpuCap: UInt64? = nil, ioWeight: UInt64? = nil,
                maxShmMemory: UInt64? = nil, maxShmIds: UInt64? = nil, maxSemIds: UInt64? = nil, maxMsgIds: UInt64? = nil) {
        self.maxPhysicalMemory = maxPhysicalMemory
        self.maxSwap = maxSwap
        self.maxLockedMemory = maxLockedMemory
        self.maxLwps = maxLwps
        self.cpuShares = cpuShares
        self.cpuCap = cpuCap
        self.ioWeight = ioWeight
        self.maxShmMemory = maxShmMemory
        self.maxShmIds = maxShmIds
        self.maxSemIds = maxSemIds
        self.maxMsgIds = maxMsgIds
    }

    /// Whether any System V IPC cap is set (they are written into the zone's ipc namespace).
    public var hasIPCLimits: Bool { maxShmMemory != nil || maxShmIds != nil || maxSemIds != nil || maxMsgIds != nil }
}

/// A host path bind-mounted into the zone [filesystems, type lofs].
public struct BindMount: Sendable, Equatable, Codable {
    /// Absolute path on the host.
    public var source: String
    /// Absolute path inside the zone; resolved inside the zone's root (symlinks cannot lead out).
    public var target: String
    public var readOnly: Bool
    /// Nothing in it may be executed (vmadm's `noexec`). Device nodes and set-id bits never
    /// work in a bind mount (`nodevice` and `nosuid` are always on).
    public var noExec: Bool = false

    public init(source: String, target: String, readOnly: Bool = false, noExec: Bool = false) {
        self.source = source
        self.target = target
        self.readOnly = readOnly
        self.noExec = noExec
    }
}

/// How PID 1 of the zone is chosen.
public enum ZoneInit: Sendable, Equatable, Codable {
    /// Lumos's own init is PID 1 and runs this command as its child (nil: `/sbin/init` when the
    /// image has one, else nothing: the init idles so the zone stays up for zlogin).
    case lumos(command: [String]?)
    /// The image's own program is exec'd directly as PID 1 (vmadm's init_name).
    case image([String])
    /// Lumos's init is PID 1 and runs the image's program as its child, starting it again
    /// whenever it exits until the zone is stopped (vmadm's restart_init).
    case restarting([String])
}

/// Everything the kernel needs to run one zone. The caller (vmadm) owns where the values come
/// from; the runtime keeps no state of its own beyond the kernel's (cgroups, namespaces).
public struct ZoneSpec: Sendable, Equatable {
    public var uuid: String
    public var hostname: String
    /// The zone's root directory on the host (a dataset's mountpoint).
    public var rootfs: String
    public var initProcess: ZoneInit
    public var environment: [String]
    public var limits: ZoneLimits
    public var filesystems: [BindMount]
    /// Size of a tmpfs on /tmp in MiB [tmpfs]; 0 = no tmpfs (the image's /tmp).
    public var tmpfsSize: UInt64
    /// Host ids that zone ids 0..<uidCount map to (`ZoneIDRange`).
    public var idRange: ZoneIDRange
    /// Mount the root file system through an idmapped mount so files owned by 0 on disk are
    /// root inside the zone without a chown. When false, the rootfs must already be owned by
    /// the zone's host ids (`ZoneIDRange.chown`).
    public var idmapRootfs: Bool
    /// Leave io_uring to the zone's processes (the default seccomp profile refuses it).
    public var allowIOUring = false
    /// Where the zone's console (its init's stdout and stderr) is kept, through a logger that
    /// caps it; when set, `stdout` and `stderr` are not used.
    public var consoleLog: ConsoleLog?
    /// With `consoleLog`: the zone's /dev/console is a pseudo-terminal of its own devpts (its
    /// init's stdin, stdout and stderr too), whose master a console relay on the host keeps
    /// (lumos-init --console-relay -): it logs to `consoleLog` with its cap and serves
    /// `vmadm console` on this unix socket (docs/vmadm.md, "Console"). nil: a pipe to the
    /// console logger, and no /dev/console.
    public var consoleSocket: String?
    /// Host descriptors for the zone's stdin/stdout/stderr (the console); nil = /dev/null.
    public var stdin: Int32?
    public var stdout: Int32?
    public var stderr: Int32?
    /// Host descriptors that become fds 3, 4, 5, ... of the zone's first process, in this order
    /// (close-on-exec cleared; QEMU's disks and taps, docs/vm.md). Every other host descriptor
    /// stays out of the zone. The caller keeps its own copies and closes them after start.
    public var descriptors: [Int32] = []
    /// Host device nodes made available in the zone's /dev under the same name; only
    /// `ZoneSpec.allowedDevices` (/dev/kvm). The zone gets a private node with the same device
    /// numbers, mode 0600, owned by the zone's root (docs/security.md, "Devices"); the host's
    /// node is not changed. Without it a zone has no such node at all.
    public var devices: [String] = []
    /// The capabilities the zone keeps: `.standard`, `.system` (vmadm's lx zones: namespaced
    /// CAP_NET_ADMIN and CAP_SYS_ADMIN), or `.none` for QEMU's jail.
    public var capabilities: ZoneCapabilities = .standard
    /// The sysfs directory of the btrfs qgroup holding the quota of the zone's root
    /// (/sys/fs/btrfs/FSID/qgroups/1_N): statfs and fstatfs of the zone's root file system
    /// then report that quota, so df in the zone shows it (docs/architecture.md, "df in a
    /// zone"). nil: they report the file system's space.
    public var quotaGroup: String?

    /// The device nodes a zone may be given.
    public static let allowedDevices = ["/dev/kvm"]

    public init(uuid: String, hostname: String, rootfs: String, initProcess: ZoneInit = .lumos(command: nil),
                environment: [String] = ZoneSpec.defaultEnvironment, limits: ZoneLimits = ZoneLimits(),
                filesystems: [BindMount] = [], tmpfsSize: UInt64 = 0, idRange: ZoneIDRange, idmapRootfs: Bool = true,
                stdin: Int32? = nil, stdout: Int32? = nil, stderr: Int32? = nil) {
        self.uuid = uuid
        self.hostname = hostname
        self.rootfs = rootfs
        self.initProcess = initProcess
        self.environment = environment
        self.limits = limits
        self.filesystems = filesystems
        self.tmpfsSize = tmpfsSize
        self.idRange = idRange
        self.idmapRootfs = idmapRootfs
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
    }

    public static let defaultEnvironment = [
        // /native/usr/sbin: the mdata-* tools of the metadata service (docs/architecture.md).
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/native/usr/sbin",
        "TERM=xterm",
        "HOME=/root",
    ]

    /// Rejects values the kernel would refuse halfway through a start.
    public func validate() throws {
        guard ZoneRuntime.isValidName(uuid) else {
            throw LumosError.invalid("zone \(uuid): the uuid must be 1-64 letters, digits, '-' or '_'")
        }
        guard !hostname.isEmpty, hostname.utf8.count <= 64 else {
            throw LumosError.invalid("zone \(uuid): hostname '\(hostname)' must be 1-64 bytes")
        }
        guard rootfs.hasPrefix("/"), Files.isDirectory(rootfs) else {
            throw LumosError.invalid("zone \(uuid): root file system \(rootfs) is not a directory; create the zone's dataset first")
        }
        if case .image(let argv) = initProcess, argv.isEmpty {
            throw LumosError.invalid("zone \(uuid): the init command is empty; give a program such as /sbin/init")
        }
        if case .restarting(let argv) = initProcess, argv.isEmpty {
            throw LumosError.invalid("zone \(uuid): the init command is empty; give a program such as /sbin/init")
        }
        for fs in filesystems {
            guard fs.source.hasPrefix("/"), Files.exists(fs.source) else {
                throw LumosError.invalid("zone \(uuid): filesystem source \(fs.source) does not exist on the host")
            }
            guard fs.target.hasPrefix("/"), fs.target != "/", !fs.target.split(separator: "/").contains("..") else {
                throw LumosError.invalid("zone \(uuid): filesystem target \(fs.target) must be an absolute path below / without '..'")
            }
        }
        if consoleSocket != nil && consoleLog == nil {
            throw LumosError.invalid("zone \(uuid): a console socket needs a console log to keep its output")
        }
        if let socket = consoleSocket, let log = consoleLog {
            try ConsoleRelay.forTerminal(initPid: 1, listenSocket: socket, logPath: log.path, maxBytes: log.maxBytes).validate()
        }
        if let mem = limits.maxPhysicalMemory, tmpfsSize > TmpfsBudget(maxPhysicalMemory: mem).maxTmp {
            throw LumosError.invalid("zone \(uuid): tmpfs (\(tmpfsSize) MiB) leaves too little of max_physical_memory (\(mem) MiB) for the zone's processes; use at most \(TmpfsBudget(maxPhysicalMemory: mem).maxTmp)")
        }
        if let lwps = limits.maxLwps, lwps < 1 {
            throw LumosError.invalid("zone \(uuid): max_lwps must be at least 1")
        }
        guard descriptors.count <= Int(CLINUX_ZONE_MAX_PASS) else {
            throw LumosError.invalid("zone \(uuid): \(descriptors.count) descriptors to pass; at most \(CLINUX_ZONE_MAX_PASS)")
        }
        for fd in descriptors where fd < 0 || fcntl(fd, F_GETFD) < 0 {
            throw LumosError.invalid("zone \(uuid): descriptor \(fd) to pass is not open")
        }
        for (i, device) in devices.enumerated() {
            guard Self.allowedDevices.contains(device) else {
                throw LumosError.invalid("zone \(uuid): device \(device) cannot be given to a zone; only \(Self.allowedDevices.joined(separator: ", ")) is allowed")
            }
            guard !devices[..<i].contains(device) else {
                throw LumosError.invalid("zone \(uuid): device \(device) is listed twice")
            }
            var st = stat()
            guard stat(device, &st) == 0, (st.st_mode & S_IFMT) == S_IFCHR else {
                throw LumosError.invalid("zone \(uuid): device \(device) does not exist on this host (is the kvm module loaded?)")
            }
        }
    }
}

/// A zone's console log: `path`, rotated to `path.0` when it reaches `maxBytes` [zlog_max_size],
/// so it never takes more than twice that on the host (Sources/lumos-init, --console-log).
public struct ConsoleLog: Sendable, Equatable {
    public var path: String
    public var maxBytes: UInt64
    /// Lumos's default cap (vmadm leaves it to zoneadmd): 5 MiB.
    public static let defaultMaxBytes: UInt64 = 5 << 20

    public init(path: String, maxBytes: UInt64 = ConsoleLog.defaultMaxBytes) {
        self.path = path
        self.maxBytes = maxBytes
    }
}

/// The state the kernel reports for a zone.
public enum ZoneState: String, Sendable, Codable {
    case running
    case stopped
}

/// How a zone's memory cap is shared by its memory file systems (docs/security.md, "Memory").
/// tmpfs pages are charged to the zone's memory cgroup and cannot be swapped out here, so /dev,
/// /dev/shm and /tmp together must leave room for the zone's processes: filled to the brim,
/// they would leave nothing for a shell, and every zlogin would be OOM-killed.
public struct TmpfsBudget: Sendable, Equatable {
    /// /dev holds only device-node mount points, symlinks, pts and shm: 1 MiB, 4096 inodes.
    public static let devKiB: UInt64 = 1024
    public static let devInodes: UInt64 = 4096
    /// /dev/shm without a memory cap: Docker's 64 MiB.
    public static let defaultShmMiB: UInt64 = 64

    /// MiB that stay free for processes whatever the file systems hold.
    public let reserve: UInt64
    /// Size of /dev/shm in MiB.
    public let shm: UInt64
    /// The largest /tmp (the tmpfs property) that fits.
    public let maxTmp: UInt64

    /// `maxPhysicalMemory` nil: no cap, /dev/shm gets the default and /tmp is not bounded here.
    public init(maxPhysicalMemory mem: UInt64?) {
        guard let mem else {
            reserve = 0
            shm = Self.defaultShmMiB
            maxTmp = .max
            return
        }
        // A quarter of the cap (at least 2 MiB) stays for processes; /dev/shm takes up to a
        // quarter of the rest and /tmp may take what remains. 1 MiB is the floor of each
        // (tmpfs reads size=0 as "unlimited"), which in the smallest zones (4-7 MiB) comes out
        // of the reserve.
        let dev: UInt64 = (Self.devKiB + 1023) / 1024
        reserve = max(1, min(max(2, mem / 4), mem > dev + 2 ? mem - dev - 2 : 0))
        let rest = mem > reserve + dev ? mem - reserve - dev : 0
        shm = max(1, min(Self.defaultShmMiB, rest / 4))
        maxTmp = max(1, rest > shm ? rest - shm : 0)
    }
}
