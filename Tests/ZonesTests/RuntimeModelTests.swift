import Glibc
import LumosCore
import Testing
@testable import Zones

/// The runtime's logic without the kernel: cgroup layout detection, spec validation, id ranges.
@Suite("Zone runtime model") struct RuntimeModelTests {
    static let hybrid = """
    31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
    32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
    33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
    35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
    36 31 0:33 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
    37 31 0:34 / /sys/fs/cgroup/net_cls,net_prio rw,relatime - cgroup cgroup rw,net_cls,net_prio
    38 31 0:35 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
    39 31 0:36 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
    """

    static let pureV2 = """
    25 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
    30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
    """

    @Test func parsesAHybridHost() {
        let layout = CgroupLayout.parse(mountinfo: Self.hybrid)
        #expect(layout.v1 == ["cpu": "/sys/fs/cgroup/cpu", "cpuacct": "/sys/fs/cgroup/cpuacct",
                              "memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids"])
        #expect(layout.v2 == "/sys/fs/cgroup/unified")
        #expect(!layout.isPureV2)
        #expect(layout.holder("memory") == .v1("/sys/fs/cgroup/memory"))
        #expect(layout.holder("freezer") == .none)
    }

    @Test func parsesAPureV2HostAndRoutesControllersThere() {
        var layout = CgroupLayout.parse(mountinfo: Self.pureV2)
        layout.v2Controllers = ["cpu", "memory", "pids", "io"]
        #expect(layout.isPureV2)
        #expect(layout.holder("memory") == .v2)
        #expect(layout.holder("blkio") == .v2)
        let cg = ZoneCgroup(uuid: "z1", layout: layout)
        #expect(cg.v1Directories.isEmpty)
        #expect(cg.v2Directory == "/sys/fs/cgroup/lumos/z1")
        #expect(cg.directory(for: "pids") == "/sys/fs/cgroup/lumos/z1")
    }

    @Test func coMountedControllersShareOneDirectory() {
        let text = "40 31 0:37 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        let cg = ZoneCgroup(uuid: "z", layout: CgroupLayout.parse(mountinfo: text))
        #expect(cg.v1Directories == ["/sys/fs/cgroup/cpu,cpuacct/lumos/z"])
    }

    @Test func unescapesMountinfoPaths() {
        #expect(CgroupLayout.unescape("/a\\040b") == "/a b")
        #expect(CgroupLayout.unescape("/plain") == "/plain")
    }

    @Test func keptCapabilitiesNeverReachTheHost() {
        let mask = ZoneSecurity.capabilityMask
        // CAP_SYS_MODULE 16, SYS_RAWIO 17, SYS_ADMIN 21, SYS_BOOT 22, SYS_TIME 25, NET_ADMIN 12,
        // MKNOD 27, SYS_PTRACE 19, DAC_READ_SEARCH 2, BPF 39.
        for cap in [16, 17, 21, 22, 25, 12, 27, 19, 2, 39] {
            #expect(mask & (UInt64(1) << UInt64(cap)) == 0, "capability \(cap)")
        }
        #expect(mask & 1 != 0)   // CAP_CHOWN stays
    }

    func tempDir() throws -> String {
        var template = Array("/tmp/lumos-model-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw Errno(errno, "mkdtemp") }
        chmod(made, 0o755)
        return String(cString: made)
    }

    @Test func idRangesArePersistentAndDistinct() throws {
        let dir = try tempDir()
        defer { _ = try? Exec.run(["rm", "-rf", dir]) }
        let root = StateRoot(dir)
        let reg = dir + "/registry"
        let a = try ZoneIDRange.allocate(for: "a", root: root, registry: reg)
        let b = try ZoneIDRange.allocate(for: "b", root: root, registry: reg)
        #expect(a.base == ZoneIDRange.firstBase)
        #expect(b.base == ZoneIDRange.firstBase + ZoneIDRange.size)
        #expect(try ZoneIDRange.allocate(for: "a", root: root, registry: reg) == a)
        #expect(ZoneIDRange.lookup("b", root: root, registry: reg) == b)
        ZoneIDRange.release("a", root: root, registry: reg)
        #expect(ZoneIDRange.lookup("a", root: root, registry: reg) == nil)
        // The freed slot is reused; b keeps its own.
        #expect(try ZoneIDRange.allocate(for: "c", root: root, registry: reg) == a)
        #expect(ZoneIDRange.lookup("b", root: root, registry: reg) == b)
        // Another state root on the same host gets a range of its own (one registry per host).
        let other = try ZoneIDRange.allocate(for: "d", root: StateRoot(dir + "/other-root"), registry: reg)
        #expect(other != a && other != b)
    }

    @Test(.enabled(if: isRoot, "needs root")) func chownShiftsOwnershipIntoTheRange() throws {
        let dir = try tempDir()
        defer { _ = try? Exec.run(["rm", "-rf", dir]) }
        try Files.writeAtomically(dir + "/file", "x")
        symlink("/etc/passwd", dir + "/link")
        let range = ZoneIDRange(base: ZoneIDRange.firstBase + 7 * ZoneIDRange.size)
        try range.chown(dir)
        try range.chown(dir)   // a second run changes nothing
        var st = stat()
        #expect(lstat(dir + "/file", &st) == 0 && st.st_uid == range.base && st.st_gid == range.base)
        #expect(lstat(dir + "/link", &st) == 0 && st.st_uid == range.base)
        #expect(stat("/etc/passwd", &st) == 0 && st.st_uid == 0)   // the link's target is untouched
    }

    @Test func validationNamesTheMistake() throws {
        let dir = try tempDir()
        defer { _ = try? Exec.run(["rm", "-rf", dir]) }
        let range = ZoneIDRange(base: ZoneIDRange.firstBase)
        func message(_ spec: ZoneSpec) -> String {
            do { try spec.validate(); return "" } catch { return "\(error)" }
        }
        let good = ZoneSpec(uuid: "z1", hostname: "h", rootfs: dir, idRange: range)
        #expect(message(good) == "")
        var spec = good
        spec.uuid = "bad/uuid"
        #expect(message(spec).contains("uuid"))
        spec = good
        spec.rootfs = dir + "/missing"
        #expect(message(spec).contains("not a directory"))
        spec = good
        // max_swap ≥ max_physical_memory is a property rule, checked once when a manifest is
        // validated (PropertyRules), not again by the runtime.
        spec.limits = ZoneLimits(maxPhysicalMemory: 256, maxSwap: 128)
        #expect(message(spec) == "")
        #expect(throws: LumosError.self) {
            try ManifestValidator.validateCreate(["brand": "lx", "image_uuid": "0b8a7c2e-1f2d-4c5e-9a6b-7c8d9e0f1a2b", "max_physical_memory": 1024, "max_swap": 512])
        }
        spec = good
        spec.filesystems = [BindMount(source: dir, target: "/data/../../etc")]
        #expect(message(spec).contains("'..'"))
        spec = good
        spec.initProcess = .image([])
        #expect(message(spec).contains("init command"))
        spec = good
        spec.limits = ZoneLimits(maxPhysicalMemory: 128)
        spec.tmpfsSize = 128
        #expect(message(spec).contains("tmpfs (128 MiB) leaves too little"))
        // The rootfs may sit below a directory closed to other users (pools are 0700): the
        // runtime reaches it as host root, not as the zone's unprivileged root.
        spec = good
        chmod(dir, 0o700)
        try Files.makeDirectories(dir + "/root")
        spec.rootfs = dir + "/root"
        #expect(message(spec) == "")
    }

    /// /dev, /dev/shm and the largest /tmp together always leave the reserve for processes.
    @Test func memoryFileSystemsLeaveRoomForProcesses() {
        for mem: UInt64 in [4, 5, 8, 16, 64, 100, 128, 256, 1000, 1024, 4096, 1 << 20] {
            let b = TmpfsBudget(maxPhysicalMemory: mem)
            let dev = (TmpfsBudget.devKiB + 1023) / 1024
            #expect(dev + b.shm + b.maxTmp + b.reserve <= mem, "max_physical_memory \(mem)")
            #expect(b.reserve >= 1 && (mem < 8 || b.reserve >= max(2, mem / 4)), "max_physical_memory \(mem)")
            #expect(b.shm >= 1 && b.maxTmp >= 1, "max_physical_memory \(mem)")
        }
        #expect(TmpfsBudget(maxPhysicalMemory: nil).shm == TmpfsBudget.defaultShmMiB)
    }
}

/// The cgroup v2 mapping of every limit, written into a directory tree that stands in for a
/// pure-v2 host's /sys/fs/cgroup (this host binds the controllers to v1).
@Suite("Zone cgroup v2 mapping") struct RuntimeCgroupV2Tests {
    @Test func limitsMapToCgroupV2Files() throws {
        var template = Array("/tmp/lumos-cg2-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw Errno(errno, "mkdtemp") }
        let root = String(cString: made)
        defer { _ = try? Exec.run(["rm", "-rf", root]) }
        let layout = CgroupLayout(v1: [:], v2: root, v2Controllers: ["cpu", "memory", "pids", "io"])
        let cg = ZoneCgroup(uuid: "z", layout: layout)
        let files = ["memory.max", "memory.swap.max", "cpu.weight", "cpu.max", "pids.max", "io.weight", "cgroup.procs"]
        try Files.makeDirectories(root + "/lumos/z")
        for f in ["cgroup.subtree_control", "lumos/cgroup.subtree_control"] + files.map({ "lumos/z/" + $0 }) {
            try Files.writeAtomically("\(root)/\(f)", "")
        }
        try cg.create()
        try cg.apply(ZoneLimits(maxPhysicalMemory: 512, maxSwap: 768, maxLwps: 300, cpuShares: 250, cpuCap: 150, ioWeight: 400))
        func read(_ f: String) throws -> String { try FD.readText("\(root)/\(f)") }
        #expect(try read("cgroup.subtree_control") == "+memory +cpu +pids +io")
        #expect(try read("lumos/cgroup.subtree_control") == "+memory +cpu +pids +io")
        #expect(try read("lumos/z/memory.max") == "\(512 << 20)")
        #expect(try read("lumos/z/memory.swap.max") == "\(256 << 20)")   // swap beyond RAM
        #expect(try read("lumos/z/cpu.weight") == "250")
        #expect(try read("lumos/z/cpu.max") == "150000 100000")
        #expect(try read("lumos/z/pids.max") == "300")
        #expect(try read("lumos/z/io.weight") == "default 400")
        try cg.join(4242)
        #expect(try read("lumos/z/cgroup.procs") == "4242")
    }

    @Test func hybridHostKeepsV1LimitsAndAddsTheV2Handle() {
        let layout = CgroupLayout(v1: ["memory": "/m", "cpu": "/c", "pids": "/p"], v2: "/u", v2Controllers: ["hugetlb"])
        let cg = ZoneCgroup(uuid: "z", layout: layout)
        #expect(cg.directory(for: "memory") == "/m/lumos/z")
        #expect(cg.v2Directory == "/u/lumos/z")
        #expect(cg.allDirectories.sorted() == ["/c/lumos/z", "/m/lumos/z", "/p/lumos/z", "/u/lumos/z"])
    }
}
