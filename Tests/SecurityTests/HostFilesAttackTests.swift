import Glibc
import LumosCore
import Testing

/// Hole 1 of the security issue (docs/security.md, "Storage"): what a zone's root leaves in its
/// files must give nothing on the host. The attack: inside the zone, a set-uid-root copy of the
/// shell, a file with file capabilities, a device node; outside, an unprivileged host user (and
/// root) trying to use them through the pool's mount.
@Suite(.serialized, .enabled(if: isRoot, "needs root: pools, zones"))
struct HostFilesAttackTests {
    /// statvfs's ST_NOSUID, ST_NODEV, ST_NOEXEC.
    static let closedFlags: UInt = 0x2 | 0x4 | 0x8

    @Test func setuidAndCapabilityFilesFromAZoneGiveNothingOnTheHost() throws {
        let site = try AttackSite(network: false)
        defer { site.close() }
        let zone = try site.create(alias: "attacker")
        try site.arm(zone)
        // The tenant's root makes its weapons (it may: the files are its own).
        let made = try site.zlogin(zone, ["/bin/sh", "-c", "cp /bin/busybox /root/busybox && chmod 4755 /root/busybox && mkdir /root/c && cp /bin/busybox /root/c/busybox && /bin/attack setcap /root/c/busybox && ls -l /root/busybox"])
        #expect(made.status == 0 && made.stdout.contains("rws"), "inside the zone: \(made.stdout) \(made.stderr)")
        let x = site.zoneRoot(zone) + "/root/busybox", c = site.zoneRoot(zone) + "/root/c/busybox"
        var st = stat()
        #expect(lstat(x, &st) == 0 && st.st_mode & S_ISUID != 0, "the set-uid bit is on disk")

        // An unprivileged host user cannot even reach them: the pool's root is 0700.
        for file in [x, c] {
            let r = try Exec.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", file, "id", "-u"], check: false)
            #expect(r.status != 0 && !r.stdout.contains("0"), "as nobody: \(r.stdout) \(r.stderr)")
            #expect(r.stderr.contains("Permission denied"), "refused for lack of access: \(r.stderr)")
        }
        var root = stat()
        #expect(stat(site.dir + "/mnt/zones", &root) == 0 && root.st_mode & 0o777 == 0o700 && root.st_uid == 0)
        // Even host root runs nothing from a pool, and set-uid bits and file capabilities are
        // ignored there: the mount is nosuid, nodev, noexec.
        var vfs = statvfs()
        #expect(statvfs(site.zoneRoot(zone), &vfs) == 0 && vfs.f_flag & Self.closedFlags == Self.closedFlags, "flags \(vfs.f_flag)")
        let asRoot = try? Exec.run([x, "id", "-u"], check: false)
        #expect(asRoot == nil || asRoot!.status != 0, "executed from the pool on the host")
        // The zone itself still runs its programs (its own mount clears noexec) but gains no
        // privilege from set-uid bits (nosuid, no_new_privs).
        let inside = try site.zlogin(zone, ["/bin/sh", "-c", "/root/busybox echo runs"])
        #expect(inside.stdout.contains("runs"), "\(inside.stdout) \(inside.stderr)")
    }

    @Test func deviceNodesGiveNothingInsideOrOutside() throws {
        let site = try AttackSite(network: false)
        defer { site.close() }
        let zone = try site.create(alias: "nodes")
        try site.arm(zone)
        // The zone cannot make device nodes at all (a user namespace has no CAP_MKNOD over devices).
        let made = try site.attack(zone, ["mknod", "/root/null"])
        #expect(made.stdout.trimmingSpaces() == "\(EPERM)", "mknod inside the zone: \(made.stdout) \(made.stderr)")
        // One an image brought along (planted here from the host): it opens neither through the
        // pool's mount on the host (nodev) nor inside the zone.
        let node = site.zoneRoot(zone) + "/root/null"
        #expect(mknod(node, S_IFCHR | 0o666, dev_t((1 << 8) | 3)) == 0)
        chmod(node, 0o666)
        let fd = open(node, O_WRONLY | O_CLOEXEC)
        #expect(fd < 0 && errno == EACCES, "opened on the host through the pool")
        if fd >= 0 { close(fd) }
        let inside = try site.zlogin(zone, ["/bin/sh", "-c", "echo x > /root/null && echo opened"])
        #expect(!inside.stdout.contains("opened"), "\(inside.stdout)")
    }

    /// Images and received datasets live in the same pool: the same closed root covers them.
    @Test func imagesAndReceivedDatasetsAreClosedToo() throws {
        let site = try AttackSite(network: false)
        defer { site.close() }
        let image = try site.imageUUID
        let zone = try site.create(alias: "sent")
        try site.lumos(["vm", "stop", "-F", zone])
        let stream = site.dir + "/vm.stream"
        let fd = open(stream, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        let send = try Exec.spawn(["env"] + site.environment + [AttackSite.lumosExecutable, "vm", "send", zone], stdout: .fd(fd))
        close(fd)
        #expect(Exec.wait(send) == 0)
        try site.delete(zone)
        try site.lumos(["vm", "receive"], inputBytes: try FD.readFile(stream))
        site.adopt(zone)
        for path in ["\(site.dir)/mnt/zones/\(image)/root/bin/busybox", "\(site.dir)/mnt/zones/\(zone)/root/bin/busybox"] {
            #expect(Files.exists(path), "\(path) exists")
            let r = try Exec.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat", path], check: false)
            #expect(r.status != 0 && r.stderr.contains("Permission denied"), "\(path) as nobody: \(r.stderr)")
        }
    }
}
