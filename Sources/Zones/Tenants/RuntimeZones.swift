import Glibc
import LumosCore
import VM

private let RLIMIT_MEMLOCK_VALUE = __rlimit_resource_t(__RLIMIT_MEMLOCK.rawValue)

/// `ZoneControl` over the zone runtime (namespaces, cgroups, lumos-init).
public final class RuntimeZones: ZoneControl {
    public let runtime: ZoneRuntime
    public let root: StateRoot
    /// uuid → uid range slot, read from the registry when first needed.
    private var knownSlots: [String: Int]?

    public init(root: StateRoot, runtime: ZoneRuntime? = nil) throws {
        self.root = root
        self.runtime = try runtime ?? ZoneRuntime()
    }

    public func start(_ launch: ZoneLaunch, beforeRelease: (pid_t) throws -> Void) throws -> pid_t {
        // vmadm's default init_name is /sbin/init; an image without one (a bare rootfs) still
        // boots: Lumos's init idles as PID 1 so the zone can be entered with zlogin.
        // init_name is the zone's PID 1, as in vmadm (busybox and systemd refuse to be
        // anything else). vmadm's default /sbin/init may be missing from a bare rootfs: then
        // Lumos's own init is PID 1 and idles, so the zone still boots for zlogin.
        var initProcess = ZoneInit.image(launch.hypervisor?.argv ?? launch.initCommand)
        var st = stat()
        if launch.hypervisor == nil, let path = launch.initCommand.first, lstat(launch.rootfs + path, &st) != 0 {
            guard launch.initCommand == ["/sbin/init"] else {
                throw LumosError.notFound("VM \(launch.uuid): init_name \(path) does not exist in the zone's root; fix it with vmadm update \(launch.uuid) init_name=PATH")
            }
            initProcess = .lumos(command: nil)
        }
        // restart_init: PID 1 cannot be restarted in place, so Lumos's init runs init_name as its
        // child and starts it again (Sources/lumos-init, --restart).
        if launch.restartInit, case .image(let argv) = initProcess { initProcess = .restarting(argv) }
        var limits = launch.limits
        limits.maxLockedMemory = Self.allowLockedMemory(limits.maxLockedMemory)
        let range = try ZoneIDRange.allocate(for: launch.uuid, root: root)
        knownSlots = nil
        var spec = ZoneSpec(uuid: launch.uuid, hostname: launch.hostname, rootfs: launch.rootfs, initProcess: initProcess,
                            limits: limits,
                            filesystems: launch.mounts.map { BindMount(source: $0.source, target: $0.target, readOnly: $0.readOnly, noExec: $0.options.contains("noexec")) },
                            tmpfsSize: Self.tmpfsSize(launch), idRange: range, idmapRootfs: true)
        spec.consoleLog = launch.consoleLog
        // An lx zone's /dev/console is a pseudo-terminal whose relay serves vmadm console; a
        // QEMU jail's stdout stays a pipe to the logger (the guest's console is QEMU's own).
        if launch.hypervisor == nil { spec.consoleSocket = launch.consoleSocket }
        spec.allowIOUring = launch.allowIOUring
        spec.quotaGroup = launch.quotaGroup
        // An lx zone is a system container: its root configures its own network and hostname
        // and its init mounts what it needs, all inside its own user namespace
        // (docs/security.md, "System zones").
        if launch.hypervisor == nil {
            spec.capabilities = .system
            // What a system container's init looks for (systemd's detect-virt, its machine id).
            spec.environment += ["container=lumos", "container_uuid=\(launch.uuid)"]
        }
        if let hv = launch.hypervisor {
            // QEMU's jail (docs/vm.md "The jail"): no capabilities at all, its disks and taps as
            // descriptors, /dev/kvm only when KVM runs it.
            spec.descriptors = hv.descriptors
            spec.devices = hv.devices
            spec.capabilities = .none
        }
        // The zone's limits in its /proc and /sys (Lxcfs), held until the binds are made.
        var lxcfs: Int32? = nil
        defer { if let lxcfs { close(lxcfs) } }
        if launch.metadata && launch.hypervisor == nil, let hold = try Lxcfs.hold() {
            lxcfs = hold
            spec.filesystems += Lxcfs.mounts()
        }
        if launch.metadata && launch.hypervisor == nil {
            spec.filesystems += try runtime.metadataMounts(socketDirectory: ZoneMetadata.socketDirectory(launch.uuid), zoneSocketDirectory: ZoneMetadata.zoneSocketDirectory,
                                                           toolDirectory: ZoneMetadata.zoneToolDirectory, tools: ZoneMetadata.tools)
        }
        return try runtime.start(spec, beforeRelease: beforeRelease)
    }

    /// /tmp's size. A manifest stored by a Lumos before the memory budget of docs/security.md
    /// may ask for more than the budget leaves (validation refuses that now); such a zone boots
    /// with the largest /tmp that fits rather than not at all.
    static func tmpfsSize(_ launch: ZoneLaunch) -> UInt64 {
        min(launch.tmpfsMiB, TmpfsBudget(maxPhysicalMemory: launch.limits.maxPhysicalMemory).maxTmp)
    }

    /// The zone's init sets RLIMIT_MEMLOCK inside its user namespace, where it cannot raise the
    /// hard limit it inherited (8 MiB on Debian). Raise ours first so max_locked_memory fits;
    /// a host that denies that (no CAP_SYS_RESOURCE) bounds every process, the zone included,
    /// so the zone gets the host's hard limit. Returns the MiB the zone can be given.
    static func allowLockedMemory(_ mib: UInt64?) -> UInt64? {
        guard let mib else { return nil }
        let bytes = rlim_t(mib << 20)
        var rl = rlimit()
        getrlimit(RLIMIT_MEMLOCK_VALUE, &rl)
        if rl.rlim_max == rlim_t.max || rl.rlim_max >= bytes { return mib }
        var raised = rl
        raised.rlim_max = bytes
        raised.rlim_cur = max(rl.rlim_cur, bytes)
        if setrlimit(RLIMIT_MEMLOCK_VALUE, &raised) == 0 { return mib }
        return UInt64(rl.rlim_max) >> 20
    }

    public func isRunning(_ uuid: String) -> Bool { runtime.state(uuid) == .running }
    public func initPid(_ uuid: String) -> pid_t? { runtime.initPid(uuid) }
    public func initReady(_ uuid: String) -> Bool { runtime.initPid(uuid).map(ZoneRuntime.initReady) ?? true }
    public func stop(_ uuid: String, force: Bool, timeout: Double) throws {
        // The init is asked first (SIGRTMIN+3 for systemd, SIGTERM otherwise); say so when it
        // did not finish in time and everything had to be killed.
        if try runtime.stop(uuid, force: force, timeout: timeout) == .killed, !force {
            _ = FD.writeAll(2, Array("vmadm: VM \(uuid): its init did not exit within \(timeout) s of the shutdown signal; killed every process\n".utf8))
        }
        Lxcfs.stopIfUnused { runtime.anyZoneRunning() }
    }
    public func kill(_ uuid: String, signal: Int32) throws { try runtime.kill(uuid, signal: signal) }
    public func updateLimits(_ uuid: String, _ limits: ZoneLimits) throws {
        var l = limits
        l.maxLockedMemory = Self.allowLockedMemory(l.maxLockedMemory)
        try runtime.updateLimits(uuid, l)
    }
    /// The zone's uid range slot, held from create until delete. The registry is read once per
    /// process: `vmadm list` asks for every zone's.
    public func zonedid(_ uuid: String) -> Int64? {
        if knownSlots == nil { knownSlots = ZoneIDRange.slots() }
        return knownSlots?[uuid].map { Int64($0) + 1 }
    }
    public func cleanup(_ uuid: String) throws {
        try runtime.cleanup(uuid)
        Lxcfs.stopIfUnused { runtime.anyZoneRunning() }
    }
    public func release(_ uuid: String) {
        ZoneIDRange.release(uuid, root: root)
        knownSlots = nil
    }
    public func reserve(_ uuid: String) throws {
        _ = try ZoneIDRange.allocate(for: uuid, root: root)
        knownSlots = nil
    }
    public func startConsoleRelay(_ uuid: String, _ relay: ConsoleRelay) throws {
        try relay.prepare()
        try relay.waitUntilListening(pid: runtime.startService(uuid, relay.arguments(initBinary: runtime.initBinary), what: "console relay"))
    }
    public func startMetadataServer(_ uuid: String, keysDirectory: String, initPid: pid_t) throws {
        let range = try ZoneIDRange.allocate(for: uuid, root: root)
        try runtime.startMetadataServer(uuid, keysDirectory: keysDirectory, socketDirectory: ZoneMetadata.socketDirectory(uuid),
                                        zoneRoot: uid_t(range.base), initPid: initPid)
    }
    public func runUserScript(_ uuid: String, allowIOUring: Bool) throws {
        try runtime.runUserScript(uuid, ZoneMetadata.zoneToolDirectory, allowIOUring: allowIOUring)
    }
    public func login(_ uuid: String, _ argv: [String], tty: Bool, allowIOUring: Bool) throws -> Int32 {
        try runtime.exec(uuid, argv, tty: tty, allowIOUring: allowIOUring)
    }
}
