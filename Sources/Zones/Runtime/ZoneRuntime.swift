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
//   let pid = try runtime.start(spec) { pid in /* move veth ends into /proc/<pid>/ns/net */ }
//   runtime.state(uuid) -> ZoneState            // .running while the zone's cgroup is populated
//   runtime.initPid(uuid) -> pid_t?              // host pid of the zone's PID 1
//   try runtime.stop(uuid, force: false, timeout: 30) -> StopOutcome   // SIGTERM, then SIGKILL all
//   try runtime.kill(uuid, signal: SIGHUP)       // a signal to the zone's init
//   try runtime.exec(uuid, ["/bin/sh"], tty: true) -> Int32             // zlogin
//   try runtime.updateLimits(uuid, limits)       // live
//   try runtime.cleanup(uuid)                    // idempotent; after crashes and on delete
//   runtime.cgroup(uuid).cgroupID                // the tracer's key for the zone
//
// start() order (FACTS.md): clone(NEWUSER|NEWNS|NEWPID|NEWUTS|NEWIPC|NEWNET) → the child waits
// → the parent writes uid_map/gid_map, creates the cgroups, applies limits, joins the child,
// builds the idmapped rootfs tree, calls beforeRelease → releases the child (passing the tree)
// → the child sets up mounts, pivot_root, hostname, drops capabilities, sets no_new_privs,
// loads seccomp and execs. Any failure kills the child and removes what was created.
import CLinux
import Glibc
import LumosCore

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

        let child = try ZoneChild(spec: spec, initBinary: initBinary)
        let pid = try child.spawn()
        var released = false
        do {
            try writeIDMaps(pid, spec.idRange)
            try cg.create()
            try cg.apply(spec.limits)
            try cg.join(pid)
            var tree: Int32 = -1
            defer { if tree >= 0 { close(tree) } }
            if spec.idmapRootfs { tree = try idmappedRootfs(pid, spec) }
            try beforeRelease(pid)
            try child.release(passing: tree)
            released = true
            try child.waitForExec()
        } catch {
            Glibc.kill(pid, SIGKILL)
            _ = Exec.wait(pid)
            cg.killAll()
            _ = cg.waitEmpty(timeout: 5)
            try? cg.remove()
            if !released { child.closeParentEnd() }
            throw error
        }
        Reaper.shared.add(pid)
        if case .lumos = spec.initProcess { waitForSignalHandlers(pid) }
        return pid
    }

    /// PID 1 of a pid namespace drops signals it has no handler for, so a stop issued right
    /// after start would be lost while lumos-init is still starting. Return only once its
    /// SIGTERM handler is in place (a few hundred microseconds after exec).
    private func waitForSignalHandlers(_ pid: pid_t) {
        let deadline = Clock.now + 1
        let sigterm = UInt64(1) << UInt64(SIGTERM - 1)
        while Clock.now < deadline {
            guard let status = try? FD.readText("/proc/\(pid)/status") else { return }
            for line in status.split(separator: "\n") where line.hasPrefix("SigCgt:") {
                if let mask = UInt64(String(line.dropFirst("SigCgt:".count)).trimmingSpaces(), radix: 16), mask & sigterm != 0 { return }
            }
            usleep(100)
        }
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

    private func idmappedRootfs(_ pid: pid_t, _ spec: ZoneSpec) throws -> Int32 {
        let nsPath = "/proc/\(pid)/ns/user"
        let userns = try sys("open", nsPath) { open(nsPath, O_RDONLY | O_CLOEXEC) }
        defer { close(userns) }
        let tree = clinux_idmapped_tree(spec.rootfs, userns)
        if tree < 0 {
            let e = errno
            throw LumosError(.unsupported, "zone \(spec.uuid): cannot idmap \(spec.rootfs) (\(String(cString: strerror(e)))); the file system lacks idmapped mounts: chown the rootfs into the zone's range and set idmapRootfs to false", errno: e)
        }
        return tree
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
            Glibc.kill(pid, SIGTERM)
            if cg.waitEmpty(timeout: timeout) {
                try cleanup(uuid)
                return .exited
            }
        }
        try cleanup(uuid)
        return .killed
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
    }

    // MARK: live limits

    /// Changes resource controls of a running zone (vmadm update of live properties).
    public func updateLimits(_ uuid: String, _ limits: ZoneLimits) throws {
        let cg = cgroup(uuid)
        guard cg.populated else { throw LumosError.invalid("zone \(uuid) is not running; the new limits apply at the next start") }
        if let mem = limits.maxPhysicalMemory, let swap = limits.maxSwap, swap < mem {
            throw LumosError.invalid("zone \(uuid): max_swap (\(swap) MiB) must be at least max_physical_memory (\(mem) MiB)")
        }
        try cg.apply(limits)
        if let locked = limits.maxLockedMemory {
            for pid in cg.processes() { _ = clinux_set_memlock(pid, locked << 20) }
        }
    }
}

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
