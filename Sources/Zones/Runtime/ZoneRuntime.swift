// The zone runtime: runs a zone's PID 1 in its own namespaces and cgroups, and answers
// questions about it from the kernel alone (no daemon, no state files).
//
// API (used by vmadm; the network is wired in `beforeRelease`):
//
//   let runtime = try ZoneRuntime()                       // detects cgroup v1/v2, finds lumos-init
//   let range = try ZoneIDRange.allocate(for: uuid, root: stateRoot)   // persistent uid range
//   let spec = ZoneSpec(uuid:, hostname:, rootfs:, initProcess: .lumos(command: nil) | .image(argv),
//                       environment:, limits: ZoneLimits(...), filesystems: [BindMount],
//                       tmpfsSize:, idRange: range, idmapRootfs: true, stdin:, stdout:, stderr:)
//   spec.descriptors = [disk, tap]                // fds 3, 4, ... of the first process (QEMU's jail)
//   spec.devices = ["/dev/kvm"]                   // a private node only the zone's root opens
//   spec.capabilities = .none                     // or .standard (the default), .system (lx zones)
//   let pid = try runtime.start(spec) { pid in /* move veth ends into /proc/<pid>/ns/net */ }
//   runtime.state(uuid) -> ZoneState            // .running while the zone's cgroup is populated
//   runtime.initPid(uuid) -> pid_t?              // host pid of the zone's PID 1
//   try runtime.stop(uuid, force: false, timeout: 30) -> StopOutcome   // SIGTERM (SIGRTMIN+3 to systemd), then SIGKILL all
//   try runtime.kill(uuid, signal: SIGHUP)       // a signal to the zone's init
//   try runtime.reboot(spec, timeout: 30) { pid in ... } -> pid_t       // stop + start
//   try runtime.exec(uuid, ["/bin/sh"], tty: true) -> Int32             // zlogin
//   try runtime.updateLimits(uuid, limits)       // live
//   try runtime.cleanup(uuid)                    // idempotent; after crashes and on delete
//   runtime.cgroup(uuid).cgroupID                // the tracer's key for the zone
//   runtime.zonesByCgroupID() -> [UInt64: String]                      // for the tracer
//   runtime.knownZones() -> [String]             // uuids with cgroups (running or debris)
//   try runtime.freeze(uuid) / thaw(uuid)        // cgroup.freeze (v1 freezer as fallback)
//
// beforeRelease(pid) runs in the parent after the uid/gid maps are written, the cgroups are
// joined and the limits applied, and before any of the zone's own code runs. The zone's
// network namespace is /proc/<pid>/ns/net (owned by the zone's user namespace); the child
// brings lo up itself. Throwing from it undoes the start.
//
// Isolation (always on): a user namespace mapping zone ids 0..<65536 to `ZoneIDRange`; new
// mount, pid, uts, ipc, net and cgroup namespaces; the rootfs through an idmapped mount (or
// chowned into the range, idmapRootfs: false) and pivot_root; a tmpfs /dev with only null,
// zero, full, random, urandom, tty, a private devpts and /dev/shm; /proc with kcore, keys,
// timer_list, sched_debug, kallsyms, sysrq-trigger masked and sys, irq, bus, fs read-only;
// /sys read-only; Docker's default capabilities minus CAP_MKNOD (`ZoneSecurity`), or none
// (`ZoneCapabilities.none`, which also refuses ptrace in seccomp);
// no_new_privs; the seccomp filter in zone.c; stdio of the caller's choosing, no other host
// descriptor but `descriptors` (docs/vm.md, "The jail"); no device but `devices`
// (docs/security.md, "VM jails and devices"). The rootfs is reached by host root only (pools
// are closed to other users): the parent clones it as a detached mount and the child moves it
// onto an empty landing directory.
//
// Callers serialize operations on one zone (vmadm holds the tenant's lock); different zones
// may start concurrently. Hosts with cgroup2 need Linux 5.7+ (clone3 CLONE_INTO_CGROUP; start
// fails with the kernel's error before); cgroup.kill (5.14) has a freezer-based fallback.
//
// PID 1 is lumos-init (Sources/lumos-init) unless `.image(argv)` asks for the image's own
// init. lumos-init is exec'd from a descriptor opened on the host before pivot_root
// (execveat AT_EMPTY_PATH), so images need not contain it and cannot replace it.
//
// start() order (docs/architecture.md): clone(NEWUSER|NEWNS|NEWPID|NEWUTS|NEWIPC|NEWNET) → the child waits
// (born in the zone's cgroups: ZoneCgroup.withThreadInZone + CLONE_INTO_CGROUP) → the parent
// writes uid_map/gid_map, builds the idmapped rootfs tree and releases the child with it → the
// child sets up its mounts, pivot_root and hostname while the parent applies the limits and
// calls beforeRelease → second release → the
// child unshares its cgroup namespace, drops capabilities, sets no_new_privs, loads seccomp
// and execs. Nothing of the zone's own code runs before the second release. Any failure kills
// the child and removes what was created.
import CLinux
import Glibc
import LumosCore
import VM

public struct ZoneRuntime: Sendable {
    public let layout: CgroupLayout
    /// The static Lumos init, exec'd into zones from a descriptor (Sources/lumos-init).
    public let initBinary: String

    public init(layout: CgroupLayout? = nil, initBinary: String? = nil) throws {
        self.layout = try layout ?? CgroupLayout.current()
        guard let path = initBinary ?? ZoneRuntime.findInitBinary() else {
            throw LumosError.notFound("lumos-init not found next to the lumos executable or in /usr/lib/lumos; build it with `swift build` or set LUMOS_INIT")
        }
        self.initBinary = path
    }

    /// `$LUMOS_INIT`, then next to the running executable, then the install locations.
    public static func findInitBinary() -> String? {
        var candidates: [String] = []
        if let env = getenv("LUMOS_INIT") { candidates.append(String(cString: env)) }
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        if n > 0 {
            let exe = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            candidates.append(Files.parent(exe) + "/lumos-init")
        }
        candidates += ["/usr/lib/lumos/lumos-init", "/usr/local/lib/lumos/lumos-init"]
        return candidates.first { access($0, X_OK) == 0 }
    }

    static func isValidName(_ uuid: String) -> Bool {
        !uuid.isEmpty && uuid.utf8.count <= 64 && uuid.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x61 && $0 <= 0x7a) || $0 == 0x2d || $0 == 0x5f
        }
    }

    public func cgroup(_ uuid: String) -> ZoneCgroup { ZoneCgroup(uuid: uuid, layout: layout) }

    // MARK: start

    @discardableResult
    public func start(_ spec: ZoneSpec, beforeRelease: (pid_t) throws -> Void = { _ in }) throws -> pid_t {
        try spec.validate()
        let cg = cgroup(spec.uuid)
        if cg.populated { throw LumosError.busy("zone \(spec.uuid) is already running; stop it first") }
        // Directories left by a start that was killed halfway: nothing runs in them.
        try cg.remove()

        if let locked = spec.limits.maxLockedMemory { try MemlockLimit.allow(locked, zone: spec.uuid) }
        var launched = spec
        var console: [Int32] = [-1, -1]
        defer { for fd in console where fd >= 0 { close(fd) } }
        // A console socket: /dev/console is a pseudo-terminal and its relay logs it; otherwise
        // the init's stdout and stderr are a pipe to the console logger.
        let terminal = spec.consoleSocket != nil
        if spec.consoleLog != nil && !terminal {
            try sys("pipe2", "zone \(spec.uuid) console") { clinux_pipe2(&console, O_CLOEXEC) }
            launched.stdout = console[1]
            launched.stderr = console[1]
        }
        let child = try ZoneChild(spec: launched, initBinary: initBinary)
        try cg.create()
        if spec.capabilities == .system {
            do { try cg.delegate(to: spec.idRange.base, gid: spec.idRange.base) } catch { try? cg.remove(); throw error }
        }
        // Test hooks (LUMOS_TEST_CRASH_AT): the process dies here as a kill -9 would.
        CrashPoint.hit("zone.start.cgroup-created")
        let pid: pid_t
        do {
            if let log = spec.consoleLog, !terminal {
                try startConsoleLogger(spec.uuid, log, reading: console[0])
                close(console[0])
                console[0] = -1
            }
            // Born in the zone's cgroups: no cgroup.procs write, no global lock on the way.
            pid = try cg.withThreadInZone { try child.spawn(cgroupFD: $0) }
        } catch {
            cg.killAll()
            _ = cg.waitEmpty(timeout: 5)
            try? cg.remove()
            throw error
        }
        // Only the zone may hold the console's write end: the logger sees end-of-file (and
        // exits) once the zone's last process has gone.
        if console[1] >= 0 { close(console[1]) }
        console[1] = -1
        CrashPoint.hit("zone.start.spawned")
        do {
            try writeIDMaps(pid, spec.idRange)
            CrashPoint.hit("zone.start.id-mapped")
            let tree = try rootfsTree(pid, spec)
            defer { close(tree) }
            // The child builds its mounts now, in parallel with the work below.
            try child.release(passing: tree)
            CrashPoint.hit("zone.start.released")
            // Limits after the clone: the cloning thread itself briefly counted in pids.max.
            try cg.apply(spec.limits)
            try ZoneIPC.apply(spec.limits, pid: pid, zone: spec.uuid)
            CrashPoint.hit("zone.start.limited")
            if terminal { try startConsoleRelay(spec, initPid: pid, child.receiveConsole()) }
            try beforeRelease(pid)
            // If the child already failed, its message says why: read it rather than the EPIPE.
            if (try? child.release(passing: -1)) == nil {
                try child.waitForExec()
                throw LumosError.failed("zone \(spec.uuid): the zone's first process exited during setup")
            }
            try child.waitForExec { try startStatfsServer(spec, listener: $0) }
        } catch {
            Glibc.kill(pid, SIGKILL)
            _ = Exec.wait(pid)
            cg.killAll()
            _ = cg.waitEmpty(timeout: 5)
            try? cg.remove()
            child.closeParentEnd()
            throw error
        }
        CrashPoint.hit("zone.start.exec")
        Reaper.shared.add(pid)
        switch spec.initProcess {
        case .lumos, .restarting: waitForSignalHandlers(pid)
        case .image: break
        }
        return pid
    }

    /// PID 1 of a pid namespace drops signals it has no handler for, so a stop issued right
    /// after start would be lost while lumos-init is still starting. Return only once its
    /// SIGTERM handler is in place (a few hundred microseconds after exec).
    private func waitForSignalHandlers(_ pid: pid_t) {
        let deadline = Monotonic.now + 1
        let sigterm = UInt64(1) << UInt64(SIGTERM - 1)
        while Monotonic.now < deadline {
            guard let status = try? FD.readText("/proc/\(pid)/status") else { return }
            for line in status.split(separator: "\n") where line.hasPrefix("SigCgt:") {
                if let mask = UInt64(String(line.dropFirst("SigCgt:".count)).trimmingSpaces(), radix: 16), mask & sigterm != 0 { return }
            }
            usleep(100)
        }
    }

    /// Starts one of lumos-init's host roles (console logger, console relay, metadata server;
    /// argv[0] is the program) as a `HostService` born in the zone's cgroups, so its memory is
    /// the zone's and cgroup.kill ends it. The Reaper collects it once it exits.
    public func startService(_ uuid: String, _ argv: [String], stdin: Int32 = -1, what: String) throws -> pid_t {
        let pid = try cgroup(uuid).withThreadInZone { try HostService.spawn(argv, stdin: stdin, cgroupFD: $0, what: "zone \(uuid) \(what)") }
        Reaper.shared.add(pid)
        return pid
    }

    /// The zone's console logger (lumos-init --console-log), reading the init's stdout pipe.
    private func startConsoleLogger(_ uuid: String, _ log: ConsoleLog, reading fd: Int32) throws {
        try Files.makeDirectories(Files.parent(log.path), mode: 0o700)
        _ = try startService(uuid, [initBinary, "--console-log", log.path, String(log.maxBytes)], stdin: fd, what: "console logger")
    }

    /// The relay of the zone's /dev/console (lumos-init --console-relay -), given the master
    /// the child sent; returns once it listens, before any of the zone's code runs.
    private func startConsoleRelay(_ spec: ZoneSpec, initPid: pid_t, _ master: Int32) throws {
        defer { close(master) }
        guard let socket = spec.consoleSocket, let log = spec.consoleLog else { return }
        let relay = ConsoleRelay.forTerminal(initPid: initPid, listenSocket: socket, logPath: log.path, maxBytes: log.maxBytes)
        try relay.prepare()
        let pid = try startService(spec.uuid, relay.arguments(initBinary: initBinary), stdin: master, what: "console relay")
        try relay.waitUntilListening(pid: pid)
    }

    private func writeIDMaps(_ pid: pid_t, _ range: ZoneIDRange) throws {
        let line = "0 \(range.base) \(range.count)\n"
        for file in ["uid_map", "gid_map"] {
            let path = "/proc/\(pid)/\(file)"
            let fd = try sys("open", path) { open(path, O_WRONLY | O_CLOEXEC) }
            defer { close(fd) }
            if !FD.writeAll(fd, Array(line.utf8)) { throw Errno(errno, "write", path) }
        }
    }

    /// The zone's root as a detached mount the child moves onto `landingDirectory()`: cloned
    /// here, by host root, because the zone's root directory sits in a pool other host users
    /// (the child among them) cannot enter. Idmapped unless the rootfs was chowned.
    private func rootfsTree(_ pid: pid_t, _ spec: ZoneSpec) throws -> Int32 {
        var userns: Int32 = -1
        if spec.idmapRootfs {
            let nsPath = "/proc/\(pid)/ns/user"
            userns = try sys("open", nsPath) { open(nsPath, O_RDONLY | O_CLOEXEC) }
        }
        defer { if userns >= 0 { close(userns) } }
        let tree = clinux_rootfs_tree(spec.rootfs, userns)
        if tree < 0 {
            let e = errno
            if spec.idmapRootfs {
                throw LumosError(.unsupported, "zone \(spec.uuid): cannot idmap \(spec.rootfs) (\(String(cString: strerror(e)))); the file system lacks idmapped mounts: chown the rootfs into the zone's range and set idmapRootfs to false", errno: e)
            }
            throw Errno(e, "open_tree", spec.rootfs)
        }
        return tree
    }

    /// An empty directory any uid can reach, where a starting zone mounts its root in its own
    /// mount namespace (nothing is mounted on it in the host's).
    static func landingDirectory() throws -> String {
        let path = "/run/lumos/zone-root"
        if !Files.isDirectory(path) { try Files.makeDirectories(path, mode: 0o755) }
        return path
    }

    // MARK: state

    /// The kernel's view: running while any process is in the zone's cgroup.
    public func state(_ uuid: String) -> ZoneState {
        Reaper.shared.reap()
        return cgroup(uuid).populated ? .running : .stopped
    }

    /// Host pid of the zone's PID 1: the process in the zone's cgroup whose innermost pid is 1.
    public func initPid(_ uuid: String) -> pid_t? {
        for pid in cgroup(uuid).processes() {
            guard let status = try? FD.readText("/proc/\(pid)/status") else { continue }
            for line in status.split(separator: "\n") where line.hasPrefix("NSpid:") {
                let ids = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst()
                if ids.count > 1, ids.last == "1" { return pid }
            }
        }
        return nil
    }

    /// Zones with a cgroup on this host (running, or left behind by a crash), by uuid.
    public func knownZones() -> [String] {
        let parents = (layout.v2.map { ["\($0)/lumos"] } ?? []) + Set(layout.v1.values).sorted().map { "\($0)/lumos" }
        var names = Set<String>()
        for parent in parents {
            for name in Files.list(parent) where Files.isDirectory("\(parent)/\(name)") { names.insert(name) }
        }
        return names.sorted()
    }

    /// cgroup id (the v2 directory's inode, what bpf_get_current_cgroup_id() returns) → zone
    /// uuid, for the tracer to name zones.
    public func zonesByCgroupID() -> [UInt64: String] {
        var map: [UInt64: String] = [:]
        for uuid in knownZones() {
            if let id = cgroup(uuid).cgroupID { map[id] = uuid }
        }
        return map
    }

    /// Pauses every process of a running zone (vmadm has no verb for it; the tracer and
    /// `lumos doctor` use it to inspect a zone without it changing underneath).
    public func freeze(_ uuid: String) throws {
        guard cgroup(uuid).populated else { throw LumosError.invalid("zone \(uuid) is not running") }
        try cgroup(uuid).setFrozen(true)
    }

    public func thaw(_ uuid: String) throws {
        try cgroup(uuid).setFrozen(false)
    }

    // MARK: stop, kill, cleanup

    public enum StopOutcome: String, Sendable {
        case alreadyStopped
        /// Init exited after SIGTERM within the timeout.
        case exited
        /// SIGKILL was needed (force, or the timeout passed).
        case killed
    }

    /// vmadm stop: SIGTERM to init, then after `timeout` seconds (at once with force) SIGKILL to
    /// every process in the zone. Removes the zone's cgroups once it is empty.
    @discardableResult
    public func stop(_ uuid: String, force: Bool = false, timeout: Double = 30) throws -> StopOutcome {
        let cg = cgroup(uuid)
        guard cg.populated else {
            try cleanup(uuid)
            return .alreadyStopped
        }
        if !force, let pid = initPid(uuid) {
            // PID 1 drops a signal it has no handler for yet (an init that has just started):
            // wait, within the timeout, until it catches the one it is sent.
            let signal = Self.shutdownSignal(pid)
            let deadline = Monotonic.now + timeout
            while !Self.catches(pid, signal), Monotonic.now < deadline, cg.populated { usleep(10_000) }
            Glibc.kill(pid, signal)
            if cg.waitEmpty(timeout: max(0, deadline - Monotonic.now)) {
                try cleanup(uuid)
                return .exited
            }
        }
        try cleanup(uuid)
        return .killed
    }

    /// The signal that asks the zone's init to shut down: SIGRTMIN+3 for systemd (its
    /// "poweroff"; SIGTERM only makes it re-execute itself), SIGTERM for every other init
    /// (lumos-init, busybox init's reboot, sysvinit). The init is known by its command name or
    /// program (`isSystemd`); a zone that names another program "systemd" only chooses the
    /// signal it gets.
    static func shutdownSignal(_ pid: pid_t) -> Int32 {
        isSystemd(pid) ? __libc_current_sigrtmin() + 3 : SIGTERM
    }

    /// Whether `pid` takes `signal`: a handler for it (SigCgt), the signal blocked (SigBlk:
    /// systemd reads its signals from a signalfd, and a blocked signal is queued, not dropped),
    /// or the signal in the set it waits for in rt_sigtimedwait (busybox init's main loop: while
    /// it waits, the kernel shows the waited-for signals as unblocked, so SigBlk is 0).
    static func catches(_ pid: pid_t, _ signal: Int32) -> Bool {
        guard let status = try? FD.readText("/proc/\(pid)/status") else { return true }
        let bit = UInt64(1) << UInt64(signal - 1)
        for line in status.split(separator: "\n") where line.hasPrefix("SigCgt:") || line.hasPrefix("SigBlk:") {
            guard let mask = UInt64(String(line.dropFirst("SigCgt:".count)).trimmingSpaces(), radix: 16) else { return true }
            if mask & bit != 0 { return true }
        }
        if let waited = sigtimedwaitSet(pid) { return waited & bit != 0 }
        return false
    }

    #if arch(x86_64)
    static let rtSigtimedwait = 128
    #else
    static let rtSigtimedwait = 137  // aarch64's generic table
    #endif

    /// The signal set `pid` sleeps on in rt_sigtimedwait, read from its memory (we are root in
    /// the zone's ancestor user namespace), or nil when it is in another system call.
    static func sigtimedwaitSet(_ pid: pid_t) -> UInt64? {
        guard let line = try? FD.readText("/proc/\(pid)/syscall") else { return nil }
        let fields = line.split(separator: " ")
        guard fields.count > 1, Int(fields[0]) == rtSigtimedwait,
              let address = UInt64(fields[1].dropFirst(2), radix: 16) else { return nil }
        let fd = open("/proc/\(pid)/mem", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var set: UInt64 = 0
        let n = withUnsafeMutableBytes(of: &set) { pread(fd, $0.baseAddress, 8, off_t(Int64(bitPattern: address))) }
        return n == 8 ? set : nil
    }

    /// The init is systemd: its command name (which systemd sets early in its start), or the
    /// program it runs (exec'd as /sbin/init its name is "init" until then).
    static func isSystemd(_ pid: pid_t) -> Bool {
        if ((try? FD.readText("/proc/\(pid)/comm")) ?? "").trimmingSpaces() == "systemd" { return true }
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = buf.withUnsafeMutableBufferPointer { b in
            b.baseAddress!.withMemoryRebound(to: CChar.self, capacity: b.count) { readlink("/proc/\(pid)/exe", $0, b.count - 1) }
        }
        return n > 0 && String(decoding: buf[0..<n], as: UTF8.self).split(separator: "/").last == "systemd"
    }

    /// Whether the zone's init has come up. systemd: once its manager listens on
    /// /run/systemd/private, found in the zone's own list of unix sockets (/proc/PID/net/unix,
    /// no path inside the zone is followed). It is made early in systemd's start, after the
    /// mounts and cgroup setup where a system container's systemd used to freeze, and never by
    /// a systemd that froze before. Other inits: as soon as they run.
    static func initReady(_ pid: pid_t) -> Bool {
        guard isSystemd(pid) else { return true }
        let sockets = (try? FD.readText("/proc/\(pid)/net/unix")) ?? ""
        return sockets.split(separator: "\n").contains { $0.hasSuffix(" /run/systemd/private") }
    }

    /// vmadm reboot: a stop (SIGTERM, SIGKILL after `timeout`), then a start of `spec`.
    @discardableResult
    public func reboot(_ spec: ZoneSpec, timeout: Double = 30, beforeRelease: (pid_t) throws -> Void = { _ in }) throws -> pid_t {
        try stop(spec.uuid, timeout: timeout)
        return try start(spec, beforeRelease: beforeRelease)
    }

    /// Sends `signal` to the zone's init (vmadm kill).
    public func kill(_ uuid: String, signal: Int32 = SIGTERM) throws {
        guard let pid = initPid(uuid) else { throw LumosError.invalid("zone \(uuid) is not running") }
        try sys("kill", "zone \(uuid) init \(pid)") { Glibc.kill(pid, signal) }
    }

    /// Ends every process of the zone and removes its cgroups. Idempotent: the repair step after
    /// a crash at any point of a start (the zone's mounts live in its own mount namespace and
    /// vanish with its last process; nothing is mounted on the host).
    public func cleanup(_ uuid: String) throws {
        let cg = cgroup(uuid)
        if cg.populated {
            cg.killAll()
            guard cg.waitEmpty(timeout: 10) else {
                throw LumosError.busy("zone \(uuid): processes survived SIGKILL for 10 s (stuck in the kernel?); try again")
            }
        }
        Reaper.shared.reap()
        try cg.remove()
        Self.removeStatfsSocket(uuid)
    }

    // MARK: live limits

    /// Changes resource controls of a running zone (vmadm update of live properties).
    public func updateLimits(_ uuid: String, _ limits: ZoneLimits) throws {
        let cg = cgroup(uuid)
        guard cg.populated else { throw LumosError.invalid("zone \(uuid) is not running; the new limits apply at the next start") }
        if let locked = limits.maxLockedMemory, let pid = initPid(uuid), MemlockLimit.current(pid) != locked << 20 {
            // Checked before anything changes: without CAP_SYS_RESOURCE the kernel refuses to
            // set another user's limits, and the zone's processes are another user.
            try MemlockLimit.allow(locked, zone: uuid)
            guard clinux_set_memlock(pid, locked << 20) == 0 else {
                throw LumosError.unsupported("zone \(uuid): max_locked_memory cannot change while the zone runs on this host (\(String(cString: strerror(errno))); lumos lacks CAP_SYS_RESOURCE); it applies at the next start")
            }
            for other in cg.processes() where other != pid { _ = clinux_set_memlock(other, locked << 20) }
        }
        try cg.apply(limits)
        if let pid = initPid(uuid) { try ZoneIPC.apply(limits, pid: pid, zone: uuid) }
    }
}

/// RLIMIT_MEMLOCK for zones. The zone's first process sets its own limit before exec; inside
/// its user namespace it can only lower what it inherited, so a larger max_locked_memory needs
/// our hard limit raised first, which takes CAP_SYS_RESOURCE (some sandboxes drop it).
enum MemlockLimit {
    static func allow(_ mib: UInt64, zone: String) throws {
        let bytes = rlim_t(mib << 20)
        var rl = rlimit()
        getrlimit(RLIMIT_MEMLOCK_RESOURCE, &rl)
        if rl.rlim_max == rlim_t.max || rl.rlim_max >= bytes { return }
        var raised = rl
        raised.rlim_max = bytes
        if setrlimit(RLIMIT_MEMLOCK_RESOURCE, &raised) != 0 {
            throw LumosError.unsupported("zone \(zone): max_locked_memory \(mib) MiB is above this host's hard RLIMIT_MEMLOCK (\(UInt64(rl.rlim_max) >> 20) MiB) and lumos lacks CAP_SYS_RESOURCE to raise it; use at most \(UInt64(rl.rlim_max) >> 20)")
        }
    }

    /// A process's current hard RLIMIT_MEMLOCK in bytes, from /proc/<pid>/limits.
    static func current(_ pid: pid_t) -> UInt64? {
        guard let text = try? FD.readText("/proc/\(pid)/limits") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("Max locked memory") {
            let fields = line.split(separator: " ")
            return fields.count >= 5 ? UInt64(fields[4]) : nil
        }
        return nil
    }
}

private let RLIMIT_MEMLOCK_RESOURCE = __rlimit_resource_t(__RLIMIT_MEMLOCK.rawValue)

/// Reaps zone inits started by this process once they exit (a long-lived caller such as a test
/// run or a future daemon would otherwise collect zombies; the CLI exits and init adopts them).
final class Reaper: @unchecked Sendable {
    static let shared = Reaper()
    private var lock = pthread_mutex_t()
    private var pids: Set<pid_t> = []

    init() { pthread_mutex_init(&lock, nil) }

    func add(_ pid: pid_t) {
        pthread_mutex_lock(&lock)
        pids.insert(pid)
        pthread_mutex_unlock(&lock)
    }

    func reap() {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        for pid in pids {
            var status: Int32 = 0
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid || (r < 0 && errno == ECHILD) { pids.remove(pid) }
        }
    }
}
