import Glibc
import LumosCore
import Testing
@testable import Zones

/// Boots real busybox zones and checks their isolation from inside and outside.
@Suite("Zone isolation") struct RuntimeIsolationTests {
    @Test(.enabled(if: isRoot, "needs root")) func bootsAndRunsCommands() throws {
        let zone = try BusyboxZone("boot")
        defer { zone.close() }
        let pid = try zone.start()
        #expect(pid > 0)
        #expect(zone.runtime.state(zone.uuid) == .running)
        #expect(zone.runtime.initPid(zone.uuid) == pid)
        // Init was born in every one of the zone's cgroups (v1 hierarchies and the v2 handle);
        // the thread that cloned it went back to its own.
        let initCgroups = try FD.readText("/proc/\(pid)/cgroup").split(separator: "\n")
        let inZone = initCgroups.filter { $0.hasSuffix("/lumos/\(zone.uuid)") }
        #expect(inZone.count == zone.runtime.cgroup(zone.uuid).allDirectories.count, "\(initCgroups)")
        #expect(!(try FD.readText("/proc/thread-self/cgroup")).contains("lumos/"))
        let r = try zone.sh("echo hello; hostname; exit 7")
        #expect(r.status == 7)
        #expect(r.output == "hello\nzone-\(getpid())\n")
    }

    @Test(.enabled(if: isRoot, "needs root")) func noHostProcessesVisible() throws {
        let zone = try BusyboxZone("ps")
        defer { zone.close() }
        try zone.start()
        let r = try zone.sh("ls /proc | grep -E '^[0-9]+$'; echo init=$(cat /proc/1/comm)")
        #expect(r.status == 0)
        let lines = r.output.split(separator: "\n")
        let pids = lines.compactMap { Int($0) }
        // The zone's init, the shell, ls and grep at most: nothing of the host.
        #expect(!pids.isEmpty && pids.count <= 4, "zone sees pids \(pids)")
        #expect(!pids.contains(Int(getpid())))
        #expect(lines.last == "init=lumos-init")
        let ps = try zone.sh("ps -o pid,comm")
        #expect(!ps.output.contains("swift"), "ps shows host processes: \(ps.output)")
    }

    @Test(.enabled(if: isRoot, "needs root")) func rootInsideIsUnprivilegedOutside() throws {
        let zone = try BusyboxZone("uid")
        defer { zone.close() }
        let pid = try zone.start()
        let inside = try zone.sh("id -u; grep CapBnd /proc/self/status")
        #expect(inside.output.hasPrefix("0\n"))
        // Outside, the same process is the zone's base uid, not root.
        let status = try FD.readText("/proc/\(pid)/status")
        let uidLine = status.split(separator: "\n").first { $0.hasPrefix("Uid:") } ?? ""
        let uids = uidLine.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().compactMap { UInt32($0) }
        #expect(uids == Array(repeating: zone.range.base, count: 4), "host sees \(uidLine)")
        let bnd = inside.output.split(separator: "\n").last.flatMap { UInt64($0.split(separator: "\t").last ?? "", radix: 16) } ?? ~0
        #expect(bnd == ZoneSecurity.capabilityMask)
        for cap in [21, 25, 16, 17, 22, 12, 27] {   // SYS_ADMIN, SYS_TIME, SYS_MODULE, SYS_RAWIO, SYS_BOOT, NET_ADMIN, MKNOD
            #expect(bnd & (1 << UInt64(cap)) == 0, "capability \(cap) kept")
        }
        // Files the zone's root creates are owned by 0 on disk (the idmapped rootfs).
        #expect(try zone.sh("touch /root/made-inside").status == 0)
        var st = stat()
        #expect(lstat(zone.rootfs + "/root/made-inside", &st) == 0 && st.st_uid == 0)
    }

    @Test(.enabled(if: isRoot, "needs root")) func mountTimeAndModulesAreRefused() throws {
        let zone = try BusyboxZone("refuse")
        defer { zone.close() }
        try zone.start()
        let mount = try zone.sh("mount -t tmpfs none /mnt")
        #expect(mount.status != 0)
        #expect(mount.output.lowercased().contains("not permitted") || mount.output.lowercased().contains("permission denied"), "\(mount.output)")
        // Before touching the clock at all, prove the three guards are in place: no
        // CAP_SYS_TIME in the bounding set, seccomp on, and no_new_privs.
        let guards = try zone.sh("grep -E '^(CapBnd|Seccomp|NoNewPrivs):' /proc/self/status")
        let fields = Dictionary(uniqueKeysWithValues: guards.output.split(separator: "\n").map {
            let p = $0.split(separator: ":", maxSplits: 1)
            return (String(p[0]), String(p[1]).trimmingSpaces())
        })
        #expect(fields["Seccomp"] == "2")
        #expect(fields["NoNewPrivs"] == "1")
        let bnd = UInt64(fields["CapBnd"] ?? "", radix: 16) ?? ~0
        try #require(bnd & (1 << 25) == 0, "CAP_SYS_TIME must be gone before trying date -s")
        // Setting the clock to the current second: refused (it would be a no-op if it were not).
        // busybox date reports the failure but exits 0, so the message is what counts.
        let date = try zone.sh("date -s @$(date +%s)")
        #expect(date.output.contains("can't set date: Operation not permitted"), "\(date.output)")
        // The kernel log stays the host's (syslog is filtered, CAP_SYSLOG absent).
        #expect(try zone.sh("dmesg").status != 0)
        let module = try zone.sh("echo garbage > /tmp/x.ko; insmod /tmp/x.ko")
        #expect(module.status != 0)
        #expect(module.output.contains("Operation not permitted"), "\(module.output)")
    }

    @Test(.enabled(if: isRoot, "needs root")) func hostIsUnreachable() throws {
        let zone = try BusyboxZone("reach")
        defer { zone.close() }
        try zone.start()
        // No host pid can be named (ptrace, kill and /proc all go through the pid namespace).
        let kill = try zone.sh("kill -0 \(getpid())")
        #expect(kill.status != 0)
        #expect(kill.output.contains("No such process") || kill.output.contains("no process"), "\(kill.output)")
        #expect(try zone.sh("test -e /proc/\(getpid())").status != 0)
        // Joining another namespace is refused (setns is filtered; no CAP_SYS_ADMIN anyway).
        #expect(try zone.sh("nsenter -t 1 -m -- true").status != 0)
        // /proc/1/root is the zone's own root: the host's /work or /usr/lib do not show.
        let root = try zone.sh("readlink /proc/1/root; ls /proc/1/root/")
        let lines = root.output.split(separator: "\n").map(String.init)
        #expect(lines.first == "/")
        #expect(!lines.contains("work") && !lines.contains("usr"), "\(root.output)")
        #expect(try zone.sh("test -e /proc/1/root/../../work || test -e /../work").status != 0)
        // Host kernel interfaces are masked or read-only.
        let masked = try zone.sh("for f in kcore keys timer_list sched_debug kallsyms sysrq-trigger; do test -e /proc/$f && echo $f $(cat /proc/$f | wc -c); done")
        #expect(masked.output.contains("keys 0") && masked.output.contains("timer_list 0"), "\(masked.output)")
        #expect(!masked.output.split(separator: "\n").contains { !$0.hasSuffix(" 0") }, "\(masked.output)")
        #expect(try zone.sh("echo 1 > /proc/sys/vm/drop_caches").status != 0)
        #expect(try zone.sh("echo x > /sys/kernel/uevent_helper").status != 0)
    }

    @Test(.enabled(if: isRoot, "needs root")) func hostnameIsIsolated() throws {
        var before = [CChar](repeating: 0, count: 256)
        gethostname(&before, 255)
        let zone = try BusyboxZone("uts")
        defer { zone.close() }
        try zone.start()
        #expect(try zone.sh("hostname").output == "zone-\(getpid())\n")
        // Changing it needs CAP_SYS_ADMIN, which zones do not have; the host's stays as it was.
        #expect(try zone.sh("hostname other-name").status != 0)
        var after = [CChar](repeating: 0, count: 256)
        gethostname(&after, 255)
        #expect(before == after)
    }

    @Test(.enabled(if: isRoot, "needs root")) func zloginWithTerminal() throws {
        let zone = try BusyboxZone("tty")
        defer { zone.close() }
        try zone.start()
        let path = zone.dir + "/tty.out"
        let out = try sys("open", path) { open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600) }
        let null = try sys("open", "/dev/null") { open("/dev/null", O_RDONLY | O_CLOEXEC) }
        defer { Glibc.close(out); Glibc.close(null) }
        let status = try zone.runtime.exec(zone.uuid, ["sh", "-c", "tty; exit 3"], tty: true, stdin: null, stdout: out)
        #expect(status == 3)
        #expect(try FD.readText(path).hasPrefix("/dev/pts/0"))
    }
}

/// Datasets live on btrfs: the idmapped rootfs must work there too (btrfs has FS_ALLOW_IDMAP).
@Suite("Zone rootfs on btrfs") struct RuntimeBtrfsTests {
    @Test(.enabled(if: isRoot && Exec.which("mkfs.btrfs") != nil, "needs root and mkfs.btrfs"))
    func idmappedRootfsOnBtrfs() throws {
        let zone = try BusyboxZone("btrfs")
        defer { zone.close() }
        let image = zone.dir + "/fs.img", mnt = zone.dir + "/btrfs"
        try Files.makeDirectories(mnt)
        try Exec.run(["truncate", "-s", "160M", image])
        try Exec.run(["mkfs.btrfs", "-q", image])
        try Exec.run(["mount", "-o", "loop", image, mnt])
        defer { _ = try? Exec.run(["umount", mnt], check: false) }
        chmod(mnt, 0o755)
        let rootfs = mnt + "/root"
        try BusyboxZone.makeRootfs(rootfs)
        var spec = zone.spec()
        spec.rootfs = rootfs
        try zone.runtime.start(spec)
        defer { try? zone.runtime.cleanup(zone.uuid) }
        let r = try zone.sh("id -u; touch /root/on-btrfs && ls -ln /root/on-btrfs")
        #expect(r.output.hasPrefix("0\n"), "\(r.output)")
        var st = stat()
        #expect(lstat(rootfs + "/root/on-btrfs", &st) == 0 && st.st_uid == 0)
    }
}
