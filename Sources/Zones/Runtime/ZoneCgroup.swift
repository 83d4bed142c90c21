import Glibc
import LumosCore

/// The cgroups of one zone: `lumos/<uuid>` in every v1 hierarchy a zone uses, and
/// `<cgroup2>/lumos/<uuid>` always. The v2 directory is the zone's handle: cgroup.kill ends
/// everything in it, cgroup.events says whether anything still runs, cgroup.freeze pauses it,
/// and its inode number is the cgroup id the tracer sees (bpf_get_current_cgroup_id).
public struct ZoneCgroup: Sendable {
    public let uuid: String
    public let layout: CgroupLayout

    public init(uuid: String, layout: CgroupLayout) {
        self.uuid = uuid
        self.layout = layout
    }

    /// Distinct v1 directories (co-mounted controllers share one).
    public var v1Directories: [String] {
        Array(Set(layout.v1.values)).sorted().map { "\($0)/lumos/\(uuid)" }
    }

    /// The zone's cgroup v2 directory.
    public var v2Directory: String? { layout.v2.map { "\($0)/lumos/\(uuid)" } }

    public var allDirectories: [String] { v1Directories + (v2Directory.map { [$0] } ?? []) }

    func directory(for controller: String) -> String? {
        switch layout.holder(controller) {
        case .v1(let path): return "\(path)/lumos/\(uuid)"
        case .v2: return v2Directory
        case .none: return nil
        }
    }

    /// The cgroup id of the v2 directory (its inode number), the tracing key.
    public var cgroupID: UInt64? {
        guard let dir = v2Directory else { return nil }
        var st = stat()
        return stat(dir, &st) == 0 ? UInt64(st.st_ino) : nil
    }

    public var exists: Bool { allDirectories.contains { Files.isDirectory($0) } }

    /// Creates every directory; on v2 enables the controllers Lumos uses for the zone's subtree.
    public func create() throws {
        for dir in v1Directories { try makeDirectory(dir) }
        if case .v1(let root) = layout.holder("cpuset") {
            // A v1 cpuset with empty cpus or mems refuses tasks: inherit the parent's, for
            // `lumos` and then the zone (all CPUs and nodes the host has; no pinning).
            for (dir, parent) in [("\(root)/lumos", root), ("\(root)/lumos/\(uuid)", "\(root)/lumos")] {
                for file in ["cpuset.cpus", "cpuset.mems"] {
                    let current = ((try? FD.readText("\(dir)/\(file)")) ?? "").trimmingSpaces()
                    guard current.isEmpty else { continue }
                    try write("\(dir)/\(file)", try FD.readText("\(parent)/\(file)").trimmingSpaces())
                }
            }
        }
        guard let v2 = layout.v2, let dir = v2Directory else { return }
        let wanted = ["memory", "cpu", "pids", "io"].filter { layout.v2Controllers.contains($0) && layout.v1[$0 == "io" ? "blkio" : $0] == nil }
        try makeDirectory("\(v2)/lumos")
        if !wanted.isEmpty {
            let enable = wanted.map { "+\($0)" }.joined(separator: " ")
            try write("\(v2)/cgroup.subtree_control", enable)
            try write("\(v2)/lumos/cgroup.subtree_control", enable)
        }
        try makeDirectory(dir)
    }

    /// mkdir of `<hierarchy>/lumos/<uuid>`, creating `lumos` the first time (one system call
    /// in the common case: this is on every start's path).
    private func makeDirectory(_ dir: String) throws {
        if mkdir(dir, 0o755) == 0 || errno == EEXIST { return }
        guard errno == ENOENT else { throw Errno(errno, "mkdir", dir) }
        try Files.makeDirectories(dir)
    }

    /// Moves a process (and its future children) into all of the zone's cgroups. Slow: every
    /// pid written to cgroup.procs takes the kernel's global threadgroup lock (an RCU grace
    /// period, 5-30 ms on a busy host). Start and zlogin use `ThreadPlacement` instead.
    public func join(_ pid: pid_t) throws {
        for dir in allDirectories { try write("\(dir)/cgroup.procs", "\(pid)") }
    }

    /// Places the calling thread in the zone's v1 cgroups for the duration of `body`, so that a
    /// child it clones is born there. Writing "0" to a v1 `tasks` file moves only the calling
    /// thread and skips the global lock a pid write takes; the cgroup v2 directory is handled
    /// by clone3(CLONE_INTO_CGROUP) with the descriptor passed to `body` (-1 when the host has
    /// no cgroup2). The thread returns to its own cgroups afterwards, also on errors.
    public func withThreadInZone<R>(_ body: (Int32) throws -> R) throws -> R {
        var home: [String] = []
        defer { for tasks in home.reversed() { try? write(tasks, "0") } }
        let mine = try threadCgroups()
        for mount in Set(layout.v1.values).sorted() {
            guard let path = mine[mount] else { continue }
            try write("\(mount)/lumos/\(uuid)/tasks", "0")
            home.append("\(mount)\(path == "/" ? "" : path)/tasks")
        }
        var v2fd: Int32 = -1
        if let dir = v2Directory {
            v2fd = try sys("open", dir) { open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        }
        defer { if v2fd >= 0 { close(v2fd) } }
        return try body(v2fd)
    }

    /// The calling thread's v1 cgroup per hierarchy mount point (/proc/thread-self/cgroup).
    func threadCgroups() throws -> [String: String] {
        var result: [String: String] = [:]
        for line in try FD.readText("/proc/thread-self/cgroup").split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, !parts[1].isEmpty else { continue }
            for controller in parts[1].split(separator: ",") {
                if let mount = layout.v1[String(controller)] { result[mount] = String(parts[2]) }
            }
        }
        return result
    }

    /// Writes the limits to whichever hierarchy holds each controller.
    public func apply(_ limits: ZoneLimits) throws {
        try applyMemory(limits)
        try applyCPU(limits)
        if let dir = directory(for: "pids") {
            try write("\(dir)/pids.max", limits.maxLwps.map { "\($0)" } ?? "max")
        }
        if let dir = directory(for: "blkio") {
            let weight = limits.ioWeight ?? 100
            if case .v2 = layout.holder("blkio") {
                try write("\(dir)/io.weight", "default \(min(max(weight, 1), 10000))")
            } else if Files.exists("\(dir)/blkio.bfq.weight") {
                // BFQ's weight uses the same 1...1000 scale as vmadm's zfs_io_priority.
                try write("\(dir)/blkio.bfq.weight", "\(min(max(weight, 1), 1000))")
            } else if Files.exists("\(dir)/blkio.weight") {
                try write("\(dir)/blkio.weight", "\(min(max(weight, 10), 1000))")
            }
        }
    }

    private func applyMemory(_ limits: ZoneLimits) throws {
        guard let dir = directory(for: "memory") else { return }
        let mem = limits.maxPhysicalMemory.map { $0 << 20 }
        let total = limits.maxSwap.map { $0 << 20 }
        if case .v2 = layout.holder("memory") {
            try write("\(dir)/memory.max", mem.map { "\($0)" } ?? "max")
            if Files.exists("\(dir)/memory.swap.max") {
                let swap = total.map { t in mem.map { t > $0 ? t - $0 : 0 } ?? t }
                try write("\(dir)/memory.swap.max", swap.map { "\($0)" } ?? "max")
            }
            return
        }
        // v1: memory.memsw.limit_in_bytes (RAM + swap) may never be below memory.limit_in_bytes,
        // so lift it first, set RAM, then set the real RAM + swap limit.
        let memsw = "\(dir)/memory.memsw.limit_in_bytes"
        let hasMemsw = Files.exists(memsw)
        if hasMemsw { try write(memsw, "-1") }
        try write("\(dir)/memory.limit_in_bytes", mem.map { "\($0)" } ?? "-1")
        if hasMemsw, let total { try write(memsw, "\(max(total, mem ?? 0))") }
    }

    private func applyCPU(_ limits: ZoneLimits) throws {
        guard let dir = directory(for: "cpu") else { return }
        let cap = limits.cpuCap ?? 0
        let period: UInt64 = 100_000
        if case .v2 = layout.holder("cpu") {
            try write("\(dir)/cpu.weight", "\(min(max(limits.cpuShares ?? 100, 1), 10000))")
            try write("\(dir)/cpu.max", cap == 0 ? "max \(period)" : "\(cap * period / 100) \(period)")
            return
        }
        try write("\(dir)/cpu.shares", "\(max((limits.cpuShares ?? 100) * 1024 / 100, 2))")
        try write("\(dir)/cpu.cfs_period_us", "\(period)")
        try write("\(dir)/cpu.cfs_quota_us", cap == 0 ? "-1" : "\(cap * period / 100)")
    }

    /// Host pids of every process in the zone, those in cgroups a system zone's init made
    /// below its own (`delegate`) included.
    public func processes() -> [pid_t] {
        let dirs = (v2Directory.map { [$0] } ?? []) + v1Directories
        for dir in dirs where Files.isDirectory(dir) {
            guard Files.exists("\(dir)/cgroup.procs") else { continue }
            return Self.subtree(dir).flatMap { sub in
                ((try? FD.readText("\(sub)/cgroup.procs")) ?? "").split(separator: "\n").compactMap { pid_t($0) }
            }
        }
        return []
    }

    /// `dir` and every cgroup below it, parents before children.
    static func subtree(_ dir: String) -> [String] {
        var out = [dir]
        var i = 0
        while i < out.count {
            let d = out[i]
            for name in Files.list(d) where Files.isDirectory("\(d)/\(name)") { out.append("\(d)/\(name)") }
            i += 1
        }
        return out
    }

    /// Delegates the zone's cgroup v2 directory to its root (host uid `uid`), as systemd's
    /// Delegate= does: the directory and its cgroup.procs, cgroup.threads and
    /// cgroup.subtree_control, so the zone's init (systemd) makes and fills cgroups below it.
    /// Its limits, cgroup.kill and cgroup.freeze stay the host's; the zone sees this
    /// directory as its cgroup namespace's root and nothing above it (docs/security.md).
    public func delegate(to uid: uid_t, gid: gid_t) throws {
        guard let dir = v2Directory else { return }
        for path in [dir, "\(dir)/cgroup.procs", "\(dir)/cgroup.threads", "\(dir)/cgroup.subtree_control"] where Files.exists(path) {
            if chown(path, uid, gid) != 0 { throw Errno(errno, "chown", path) }
        }
    }

    /// True while any process of the zone is alive (cgroup.events "populated 1" on v2).
    public var populated: Bool {
        if let dir = v2Directory, let events = try? FD.readText("\(dir)/cgroup.events") {
            return events.split(separator: "\n").contains("populated 1")
        }
        return !processes().isEmpty
    }

    /// SIGKILL to every process of the zone: cgroup.kill where the kernel has it (5.14+),
    /// else freeze, kill each process, thaw, until nothing is left.
    public func killAll() {
        if let dir = v2Directory, Files.exists("\(dir)/cgroup.kill") {
            try? write("\(dir)/cgroup.kill", "1")
            return
        }
        let freezer = directory(for: "freezer").map { "\($0)/freezer.state" }
        for _ in 0..<100 {
            let pids = processes()
            if pids.isEmpty { return }
            if let freezer { try? write(freezer, "FROZEN") }
            for pid in pids { Glibc.kill(pid, SIGKILL) }
            if let freezer { try? write(freezer, "THAWED") }
            usleep(10_000)
        }
    }

    /// Stops (true) or resumes (false) every process of the zone: cgroup.freeze on v2, the v1
    /// freezer otherwise. Waits until the kernel reports the new state.
    public func setFrozen(_ frozen: Bool) throws {
        if let dir = v2Directory, Files.exists("\(dir)/cgroup.freeze") {
            try write("\(dir)/cgroup.freeze", frozen ? "1" : "0")
            let deadline = Monotonic.now + 5
            while isFrozen != frozen {
                if Monotonic.now > deadline { throw LumosError.busy("zone \(uuid): the kernel did not \(frozen ? "freeze" : "thaw") it within 5 s") }
                usleep(1_000)
            }
            return
        }
        guard let dir = directory(for: "freezer") else {
            throw LumosError.unsupported("zone \(uuid): this host has no freezer (neither cgroup.freeze nor the v1 freezer)")
        }
        try write("\(dir)/freezer.state", frozen ? "FROZEN" : "THAWED")
    }

    /// True while the zone is frozen.
    public var isFrozen: Bool {
        if let dir = v2Directory, let events = try? FD.readText("\(dir)/cgroup.events") {
            return events.split(separator: "\n").contains("frozen 1")
        }
        return value(controller: "freezer", file: "freezer.state") == "FROZEN"
    }

    /// Waits up to `timeout` seconds for the zone to have no process left.
    public func waitEmpty(timeout: Double) -> Bool {
        let deadline = Monotonic.now + timeout
        while populated {
            if Monotonic.now > deadline { return false }
            usleep(5_000)
        }
        return true
    }

    /// Removes every directory (after the zone is empty). Idempotent; retries while the kernel
    /// still reports the cgroup busy right after its last process exited.
    public func remove() throws {
        // Cgroups a system zone's init made below its own go first (children before parents).
        let nested = v2Directory.map { Files.isDirectory($0) ? Array(Self.subtree($0).dropFirst().reversed()) : [] } ?? []
        for dir in nested + allDirectories where Files.isDirectory(dir) {
            var attempts = 0
            while rmdir(dir) != 0 {
                if errno == ENOENT { break }
                attempts += 1
                if errno != EBUSY || attempts > 200 { throw Errno(errno, "rmdir", dir) }
                usleep(5_000)
            }
        }
    }

    /// CPU time used by the zone, in nanoseconds (cpuacct.usage or cpu.stat usage_usec).
    public func cpuUsageNanos() -> UInt64? {
        if case .v1(let path) = layout.holder("cpuacct"),
           let text = try? FD.readText("\(path)/lumos/\(uuid)/cpuacct.usage") {
            return UInt64(text.trimmingSpaces())
        }
        if let dir = v2Directory, let text = try? FD.readText("\(dir)/cpu.stat") {
            for line in text.split(separator: "\n") where line.hasPrefix("usage_usec ") {
                return UInt64(line.dropFirst("usage_usec ".count)).map { $0 * 1000 }
            }
        }
        return nil
    }

    /// A counter from a stat file in the directory holding `controller` (e.g. cpu.stat nr_throttled).
    public func statValue(controller: String, file: String, key: String) -> UInt64? {
        guard let dir = directory(for: controller), let text = try? FD.readText("\(dir)/\(file)") else { return nil }
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, parts[0] == key { return UInt64(parts[1]) }
        }
        return nil
    }

    /// How many processes the kernel's OOM killer has ended in the zone (memory.events on
    /// cgroup v2, memory.oom_control on v1); nil where the kernel does not count them.
    public var oomKills: UInt64? {
        if case .v2 = layout.holder("memory") { return statValue(controller: "memory", file: "memory.events", key: "oom_kill") }
        return statValue(controller: "memory", file: "memory.oom_control", key: "oom_kill")
    }

    /// A single-value file in the directory holding `controller` (e.g. memory.limit_in_bytes).
    public func value(controller: String, file: String) -> String? {
        guard let dir = directory(for: controller) else { return nil }
        return (try? FD.readText("\(dir)/\(file)"))?.trimmingSpaces()
    }

    private func write(_ path: String, _ value: String) throws {
        let fd = try sys("open", path) { open(path, O_WRONLY | O_CLOEXEC) }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        if n < 0 { throw Errno(errno, "write \(value) to", path) }
    }
}
