import Glibc
import LumosCore
import Testing
import VM
import Zones

/// QEMU's jail as an attacker who took over QEMU would find it (docs/vm.md, "The jail"): a root
/// made by `QEMUJail.populate` plus the attack tool at /bin/attack (Resources/attack.c, static),
/// run as the zone's own first process (`.image`) the way vmadm runs QEMU: capabilities .none,
/// Lumos's seccomp filter, a private /dev. `close()` removes every zone and file it made.
final class JailSite {
    let dir: String
    let root: String
    let runtime: ZoneRuntime
    private var zones: [String] = []

    init() throws {
        dir = "/tmp/lumos-jail-\(getpid() % 100000)-\(UInt32.random(in: 0...99999))"
        root = dir + "/root"
        runtime = try ZoneRuntime()
        try Files.makeDirectories(root)
        do {
            try QEMUJail.populate(root: root, qemu: try #require(QEMUJail.findQEMU()))
            // The jail has no /bin: the tool is the test's addition, as QEMU's own code would be.
            try Files.makeDirectories(root + "/bin")
            try Exec.run(["cc", "-static", "-O1", "-o", root + "/bin/attack", Files.parent(#filePath) + "/Resources/attack.c"])
        } catch {
            close()
            throw error
        }
    }

    /// Runs `/bin/attack ARGS` as the first process of a jail zone and returns what it printed
    /// once it exited (the zone is cleaned up by then).
    func run(_ args: [String], capabilities: ZoneCapabilities = .none, devices: [String] = [], descriptors: [Int32] = []) throws -> String {
        let uuid = "test-jail-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        zones.append(uuid)
        let out = "\(dir)/out-\(uuid)"
        let fd = try sys("open", out) { open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
        defer { Glibc.close(fd) }
        var spec = ZoneSpec(uuid: uuid, hostname: "jail", rootfs: root, initProcess: .image(["/bin/attack"] + args),
                            environment: [], tmpfsSize: 4,
                            idRange: ZoneIDRange(base: ZoneIDRange.firstBase + UInt32.random(in: 1..<60000) * ZoneIDRange.size),
                            stdout: fd, stderr: fd)
        spec.capabilities = capabilities
        spec.devices = devices
        spec.descriptors = descriptors
        try runtime.start(spec)
        let deadline = Monotonic.now + 30
        while runtime.state(uuid) == .running && Monotonic.now < deadline { usleep(10_000) }
        #expect(runtime.state(uuid) == .stopped, "the attack did not finish in 30 s")
        try runtime.cleanup(uuid)
        #expect(!runtime.cgroup(uuid).exists)
        return try FD.readText(out)
    }

    /// Starts a jail zone whose init sleeps (`attack sleep`); the caller stops it with cleanup.
    func startSleeping(capabilities: ZoneCapabilities) throws -> String {
        let uuid = "test-jail-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        zones.append(uuid)
        var spec = ZoneSpec(uuid: uuid, hostname: "jail", rootfs: root, initProcess: .image(["/bin/attack", "sleep", "60"]),
                            environment: [],
                            idRange: ZoneIDRange(base: ZoneIDRange.firstBase + UInt32.random(in: 1..<60000) * ZoneIDRange.size))
        spec.capabilities = capabilities
        try runtime.start(spec)
        return uuid
    }

    /// Runs `/bin/attack ARGS` in a running zone with zlogin's path (`ZoneRuntime.exec`).
    func login(_ uuid: String, _ args: [String]) throws -> String {
        let out = "\(dir)/login-\(UInt32.random(in: 0...UInt32.max))"
        let fd = try sys("open", out) { open(out, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
        defer { Glibc.close(fd) }
        let status = try runtime.exec(uuid, ["/bin/attack"] + args, environment: [], stdin: -1, stdout: fd, stderr: fd)
        #expect(status == 0)
        return try FD.readText(out)
    }

    /// `attack jail` output as KEY → VALUE (the first word is the key; `open PATH` keys keep the path).
    static func parse(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            var words = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            guard words.count >= 2 else { continue }
            if words[0] == "open", words.count == 3 { words = ["open " + words[1], words[2]] }
            out[words[0]] = words.dropFirst().joined(separator: " ")
        }
        return out
    }

    func close() {
        for z in zones { try? runtime.cleanup(z) }
        _ = try? Exec.run(["rm", "-rf", "--one-file-system", dir], check: false)
    }
}

/// A loop device of our own (as a pool's would be), detached by close().
struct TestLoop {
    let file: String
    let device: String

    init(in dir: String) throws {
        file = "\(dir)/loop.img"
        try Exec.run(["truncate", "-s", "8M", file])
        device = try Exec.run(["losetup", "-f", "--show", file]).stdout.trimmingSpaces()
    }

    func close() { _ = try? Exec.run(["losetup", "-d", device], check: false) }
}

let hasJail = isRoot && QEMUJail.findQEMU() != nil

@Suite(.serialized, .enabled(if: hasJail, "needs root and qemu-system-x86_64"))
struct JailAttackTests {
    /// Host block devices (not loop or ram) as /dev paths.
    func hostBlockDevices() -> [String] {
        Files.list("/sys/block").filter { !$0.hasPrefix("loop") && !$0.hasPrefix("ram") }.map { "/dev/\($0)" }.filter(Files.exists)
    }

    @Test func aJailSeesNothingOfTheHostAndCannotGainAnything() throws {
        let site = try JailSite()
        defer { site.close() }
        let loop = try TestLoop(in: site.dir)
        defer { loop.close() }
        let devices = [loop.device, "/dev/loop-control", "/dev/btrfs-control", "/dev/kvm", "/dev/mapper/control", "/dev/mem"] + hostBlockDevices()
        for d in devices.prefix(3) { #expect(Files.exists(d), "\(d) should exist on the host for this test") }
        let text = try site.run(["jail"] + devices)
        let r = JailSite.parse(text)
        // pid namespace: PID 1 alone (the host's processes would be listed otherwise).
        #expect(r["pids"] == "1", "\(text)")
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] { #expect(r[set] == "0000000000000000", "\(set): \(text)") }
        #expect(r["NoNewPrivs"] == "1")
        // Each refused: EPERM from seccomp or the missing capability.
        for key in ["mount", "unshare-user", "unshare-mount", "ptrace", "setuid", "setgid", "mknod"] {
            #expect(r[key] != nil && r[key] != "0", "\(key) worked in the jail: \(text)")
        }
        #expect(r["ptrace"] == "\(EPERM)")
        for d in devices { #expect(r["open \(d)"] == "\(ENOENT)", "\(d): \(text)") }
        #expect(r["kvm-api"] == nil)
    }

    /// The control: the same zone with the standard capabilities may setuid and ptrace its own
    /// child, so the refusals above are the work of `.none` (and its seccomp rules).
    @Test func theStandardSetIsWhatNoneTakesAway() throws {
        let site = try JailSite()
        defer { site.close() }
        let r = JailSite.parse(try site.run(["jail"], capabilities: .standard))
        #expect(r["CapEff"] != "0000000000000000" && r["CapBnd"] != "0000000000000000")
        #expect(r["setuid"] == "0" && r["setgid"] == "0" && r["ptrace"] == "0", "\(r)")
        #expect(r["pids"] == "1")
        #expect(r["mount"] != "0" && r["unshare-user"] != "0")
    }

    /// devices ["/dev/kvm"]: the zone's root opens its private node and talks to KVM; the
    /// host's node is untouched (mode, owner, ctime: no ACL written), and the next zone without it has none.
    @Test(.enabled(if: Files.exists("/dev/kvm"), "needs /dev/kvm"))
    func kvmOnlyWhenAsked() throws {
        let site = try JailSite()
        defer { site.close() }
        // ctime changes with any chmod, chown or ACL (xattr) write on the node.
        func hostNode() -> (mode: mode_t, uid: uid_t, gid: gid_t, ctime: Int, ctimeNanos: Int) {
            var st = stat()
            _ = stat("/dev/kvm", &st)
            return (st.st_mode, st.st_uid, st.st_gid, st.st_ctim.tv_sec, st.st_ctim.tv_nsec)
        }
        let before = hostNode()
        let with = JailSite.parse(try site.run(["jail", "/dev/kvm"], devices: ["/dev/kvm"]))
        #expect(with["open /dev/kvm"] == "0", "\(with)")
        #expect(with["kvm-api"] == "12")
        #expect(with["CapEff"] == "0000000000000000")
        let after = hostNode()
        #expect(before.mode == after.mode && before.uid == after.uid && before.gid == after.gid && before.ctime == after.ctime && before.ctimeNanos == after.ctimeNanos)
        let without = JailSite.parse(try site.run(["jail", "/dev/kvm"]))
        #expect(without["open /dev/kvm"] == "\(ENOENT)")
        // Only /dev/kvm may be given, with a one-line error for anything else.
        let bad = ZoneSpec(uuid: "test-jail-bad", hostname: "jail", rootfs: site.root, idRange: ZoneIDRange(base: ZoneIDRange.firstBase))
        for device in ["/dev/loop-control", "/dev/sda", "/dev/../dev/kvm", "kvm"] {
            var spec = bad
            spec.devices = [device]
            let error = #expect(throws: LumosError.self) { try spec.validate() }
            #expect(error?.message.contains("only /dev/kvm") == true && error?.message.contains("\n") == false)
        }
    }

    /// zlogin into a jail gets what its init has (read from its bounding set): no capability; a zone
    /// with the standard set gives its sessions the standard set.
    @Test func sessionsInAJailHaveNoCapabilities() throws {
        let site = try JailSite()
        defer { site.close() }
        let jail = try site.startSleeping(capabilities: .none)
        let r = JailSite.parse(try site.login(jail, ["status"]))
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] { #expect(r[set] == "0000000000000000", "\(set): \(r)") }
        #expect(r["NoNewPrivs"] == "1" && r["Seccomp_filters"] == "1")
        try site.runtime.cleanup(jail)
        let standard = try site.startSleeping(capabilities: .standard)
        let s = JailSite.parse(try site.login(standard, ["status"]))
        #expect(s["CapBnd"] == String(repeating: "0", count: 16 - String(ZoneSecurity.capabilityMask, radix: 16).count) + String(ZoneSecurity.capabilityMask, radix: 16), "\(s)")
        try site.runtime.cleanup(standard)
    }

    /// descriptors: fds 3, 4, ... in the order given, whatever numbers the sources had (some
    /// sit on other sources' target slots), and nothing else of the host's table.
    @Test func passedDescriptorsArriveInOrderAndAlone() throws {
        let site = try JailSite()
        defer { site.close() }
        var fds: [Int32] = []
        defer { for fd in fds { Glibc.close(fd) } }
        for i in 0..<8 {
            let path = "\(site.dir)/f\(i)"
            fds.append(try sys("open", path) { open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600) })
        }
        // A descriptor without close-on-exec must stay out as well.
        let leak = try sys("open", "/etc/hostname") { open("/etc/hostname", O_RDONLY) }
        defer { Glibc.close(leak) }
        let passed = Array(fds.reversed())
        let slots = 3..<(3 + Int32(passed.count))
        #expect(passed.enumerated().contains { slots.contains($0.element) && $0.element != 3 + Int32($0.offset) },
                "no source collides with a target slot: \(passed)")
        let text = try site.run(["fds"], descriptors: passed)
        var seen: [Int32: String] = [:]
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ", maxSplits: 1)
            if f.count == 2, let n = Int32(f[0]) { seen[n] = String(f[1]) }
        }
        #expect(Set(seen.keys) == Set([0, 1, 2] + Array(slots)), "open in the zone: \(text)")
        for (i, fd) in passed.enumerated() {
            let index = fds.firstIndex(of: fd)!
            #expect(seen[3 + Int32(i)]?.hasSuffix("/f\(index)") == true, "fd \(3 + i): \(seen[3 + Int32(i)] ?? "-"), want f\(index)")
        }
    }
}

/// An lx zone made with vmadm has no /dev/kvm, although the host has one.
@Suite(.serialized, .enabled(if: isRoot && Files.exists("/dev/kvm"), "needs root and /dev/kvm"))
struct LxZoneDeviceTests {
    @Test func anLxZoneHasNoKVM() throws {
        let site = try AttackSite(network: false)
        defer { site.close() }
        let uuid = try site.create(alias: "nokvm")
        let r = try site.zlogin(uuid, ["/bin/sh", "-c", "ls /dev; test -e /dev/kvm && echo HAS-KVM; exit 0"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("null") && !r.stdout.contains("kvm"), "/dev in an lx zone: \(r.stdout)")
    }
}

/// A spec's descriptors must be open and at most CLINUX_ZONE_MAX_PASS, refused in one line
/// before anything starts.
@Suite struct JailSpecValidationTests {
    @Test func badDescriptorsAreRefused() throws {
        let root = "/tmp/lumos-jailspec-\(getpid())-\(UInt32.random(in: 0...99999))"
        try Files.makeDirectories(root)
        defer { rmdir(root) }
        var spec = ZoneSpec(uuid: "test-jail-fds", hostname: "jail", rootfs: root, initProcess: .image(["/bin/true"]),
                            idRange: ZoneIDRange(base: ZoneIDRange.firstBase))
        let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
        try #require(fd >= 0)
        spec.descriptors = [fd]
        try spec.validate()
        Glibc.close(fd)
        // (not the closed fd itself: a test running in parallel may get its number next)
        for bad in [[999_999], [-1], Array(repeating: Int32(0), count: 65)] {
            spec.descriptors = bad
            let error = #expect(throws: LumosError.self) { try spec.validate() }
            #expect(error?.message.contains("descriptor") == true && error?.message.contains("\n") == false, "\(error?.message ?? "")")
        }
    }
}
