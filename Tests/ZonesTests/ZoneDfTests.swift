import Glibc
import LumosCore
import Testing
@testable import Zones

/// df in a zone (docs/architecture.md, "df in a zone"): statfs of the zone's own file system
/// reports its quota, through the zone's statfs supervisor (Sources/lumos-init/statfs.c).
@Suite(.serialized, .enabled(if: isRoot, "needs root: zones and pools"))
struct ZoneDfTests {
    /// `df -k -P PATH`'s figures: 1024-blocks, used, available.
    static func parseDf(_ text: String) -> [UInt64]? {
        guard let line = text.split(separator: "\n").dropFirst().first else { return nil }
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 4 else { return nil }
        let numbers = fields[1...3].compactMap { UInt64($0) }
        return numbers.count == 3 ? numbers : nil
    }

    /// A fake qgroup directory (the files the supervisor reads in /sys/fs/btrfs/FSID/qgroups/1_N)
    /// gives exact figures: seen by the init's own processes and by zlogin sessions, followed
    /// live, and only for the zone's root file system. The attacks: a symlink to a host path,
    /// `..` above the root, another file system.
    @Test func rootFileSystemReportsTheQuotaGroupToInitAndSessions() throws {
        let zone = try BusyboxZone("df")
        defer { zone.close() }
        let group = zone.dir + "/qgroup"
        try Files.makeDirectories(group)
        // Rewritten in place, as sysfs changes a value under the same file (the supervisor
        // keeps the files open and reads them again).
        func set(flags: UInt64, limit: UInt64, used: UInt64) throws {
            for (name, value) in [("limit_flags", flags), ("max_exclusive", limit), ("exclusive", used)] {
                let fd = open(group + "/" + name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
                guard fd >= 0 else { throw Errno(errno, "open", group + "/" + name) }
                defer { close(fd) }
                guard FD.writeAll(fd, Array("\(value)\n".utf8)) else { throw Errno(errno, "write", group + "/" + name) }
            }
        }
        try set(flags: 2, limit: 100 << 20, used: 30 << 20)
        // The init's child writes what it saw, then idles: a process of the init's own filter.
        let initOut = zone.rootfs + "/root/init-df"
        var spec = zone.spec(.lumos(command: ["/bin/sh", "-c", "df -k -P / > /root/init-df.new && mv /root/init-df.new /root/init-df; exec sleep 1000"]))
        spec.quotaGroup = group
        try zone.runtime.start(spec)
        let deadline = Monotonic.now + 10
        while !Files.exists(initOut), Monotonic.now < deadline { usleep(20_000) }
        #expect(Self.parseDf((try? FD.readText(initOut)) ?? "") == [102_400, 30_720, 71_680])

        func df(_ path: String = "/") throws -> [UInt64]? {
            let r = try zone.sh("df -k -P \(path)")
            #expect(r.status == 0, "\(r.output)")
            return Self.parseDf(r.output)
        }
        #expect(try df() == [102_400, 30_720, 71_680])
        // Live: the figures are read at each call.
        try set(flags: 2, limit: 100 << 20, used: 50 << 20)
        #expect(try df() == [51_200 + 51_200, 51_200, 51_200])
        // Over the quota: nothing left, never a negative or wrapped figure.
        try set(flags: 2, limit: 100 << 20, used: 120 << 20)
        #expect(try df() == [102_400, 102_400, 0])
        try set(flags: 2, limit: 100 << 20, used: 30 << 20)
        // statfs(2) of a path as given (busybox stat -f): total size in bytes.
        func size(_ path: String) throws -> UInt64? {
            let r = try zone.sh("stat -f -c '%b %S' \(path)")
            let f = r.output.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { UInt64($0) }
            return r.status == 0 && f.count == 2 ? f[0] * f[1] : nil
        }
        #expect(try size("/") == 100 << 20)
        // `..` cannot climb above the zone's root: still the zone's file system.
        #expect(try size("/../../../..") == 100 << 20)
        // Other file systems are the kernel's answer: /proc has no blocks.
        #expect(try size("/proc") == 0)
        // A symlink to the host's path of the qgroup directory (on the same host file system as
        // the zone's root) resolves inside the zone, where it does not exist: statfs fails
        // rather than the supervisor statting a host file.
        let escape = try zone.sh("ln -s \(group) /root/escape && stat -f -c %b /root/escape")
        #expect(escape.status != 0, "\(escape.output)")
        // Without a limit the zone sees the real file system.
        try set(flags: 0, limit: 0, used: 30 << 20)
        var host = statvfs()
        #expect(statvfs(zone.rootfs, &host) == 0)
        #expect(try df()?.first == UInt64(host.f_blocks) * UInt64(host.f_frsize) / 1024)
    }

    /// The real thing: a vmadm zone with quota 1 (GiB) on the pool's btrfs qgroup. df shows the
    /// quota, written data counts against it, and a live `vmadm update quota` is seen.
    @Test func vmadmZoneShowsItsQuotaAndItsUse() throws {
        let h = try RealHost("df")
        defer { h.close() }
        let uuid = try h.vmadm.create(h.payload(["quota": 1])).uuid
        defer { try? h.vmadm.delete(uuid) }
        func df() throws -> [UInt64] {
            let r = try h.lumos(["login", uuid, "/bin/df", "-k", "-P", "/"])
            #expect(r.status == 0, "\(r.stderr)")
            return Self.parseDf(r.stdout) ?? []
        }
        let before = try df()
        #expect(before.first == 1 << 20)
        // Random data (compression cannot shrink it), committed by sync: the qgroup counts it.
        let fill = try h.lumos(["login", uuid, "/bin/sh", "-c", "dd if=/dev/urandom of=/fill bs=1M count=64 2>/dev/null && sync"])
        #expect(fill.status == 0, "\(fill.stderr)")
        let after = try df()
        #expect(after.count == 3 && before.count == 3)
        if after.count == 3, before.count == 3 {
            #expect(after[1] >= before[1] + 60_000, "used \(before[1]) → \(after[1]) KiB")
            #expect(after[2] + 60_000 <= before[2], "available \(before[2]) → \(after[2]) KiB")
        }
        try h.vmadm.update(uuid, ["quota": 2])
        #expect(try df().first == 2 << 20)
    }
}
