import Foundation
import Glibc
import LumosCore
import Testing
@testable import Zones

/// Hole 4 and the rest of the security issue (docs/security.md): a zone's console, io_uring,
/// what a zone sees of the host, its memory file systems, and uid ranges across state roots.
@Suite(.serialized, .enabled(if: isRoot, "needs root: pools, zones"))
struct ZoneAttackTests {
    func size(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : -1
    }

    @Test func consoleOutputPastTheCapIsRotatedNeverKeptOnTheHost() throws {
        let site = try AttackSite(network: false)
        defer { site.close() }
        let cap = 1 << 20
        let zone = try site.create(alias: "loud", extra: ",\"zlog_max_size\":\(cap)")
        try site.arm(zone)
        // The zone takes its init's stdout (pidfd_getfd on PID 1) and writes 8 MiB into it.
        let r = try site.attack(zone, ["flood-console", String(8 << 20)])
        #expect(r.stdout.contains("wrote \(8 << 20)"), "the flood ran unhindered: \(r.stdout) \(r.stderr)")
        let log = "\(site.dir)/zones/\(zone)/console.log"
        // The logger drains what is still in the pipe (at most 64 KiB) right after.
        var last = -2
        for _ in 0..<50 where size(log) != last { last = size(log); usleep(100_000) }
        #expect(size(log) >= 0 && size(log) <= cap, "console.log is \(size(log)) bytes")
        #expect(size(log + ".0") > 0 && size(log + ".0") <= cap, "console.log.0 is \(size(log + ".0")) bytes")
        let kept = Files.list("\(site.dir)/zones/\(zone)").map { size("\(site.dir)/zones/\(zone)/\($0)") }.reduce(0, +)
        #expect(kept <= 2 * cap + 65536, "the zone's directory on the host holds \(kept) bytes after an 8 MiB flood")
        // The logger is the zone's: it goes when the zone stops.
        try site.lumos(["vm", "stop", zone])
        #expect(try site.get(zone)["state"]?.stringValue == "stopped")
    }

    @Test func ioUringIsRefusedUnlessTheManifestAllowsIt() throws {
        let site = try AttackSite(network: false)
        defer { site.close() }
        let closed = try site.create(alias: "closed")
        let open = try site.create(alias: "open", extra: ",\"lumos_allow_io_uring\":true")
        for z in [closed, open] { try site.arm(z) }
        let refused = try site.attack(closed, ["io-uring"]), allowed = try site.attack(open, ["io-uring"])
        #expect(refused.stdout.trimmingSpaces() == "\(EPERM)", "errno \(refused.stdout) \(refused.stderr)")
        #expect(allowed.stdout.trimmingSpaces() == "0", "errno \(allowed.stdout) \(allowed.stderr)")
        // The zone's init has the same filter as zlogin sessions: run the probe as init.
        try site.lumos(["vm", "stop", "-F", closed])
        try Files.writeAtomically(site.zoneRoot(closed) + "/root/init.sh",
                                  "#!/bin/sh\n/bin/attack io-uring > /root/result\nexec sleep 600\n", mode: 0o755)
        try site.lumos(["vm", "update", closed, "init_name=/root/init.sh"])
        try site.lumos(["vm", "start", closed])
        let result = site.zoneRoot(closed) + "/root/result"
        let deadline = Monotonic.now + 10
        while Monotonic.now < deadline, ((try? FD.readText(result)) ?? "").isEmpty { usleep(20_000) }
        #expect((try? FD.readText(result))?.trimmingSpaces() == "\(EPERM)")
    }

    @Test func theHostsCommandLineAndDisksAreHidden() throws {
        let site = try AttackSite(network: false)
        defer { site.close() }
        let zone = try site.create(alias: "curious")
        let hostCmdline = try FD.readText("/proc/cmdline").trimmingSpaces()
        let hostBlocks = Files.list("/sys/class/block")
        #expect(!hostCmdline.isEmpty && !hostBlocks.isEmpty, "the host has something to hide")
        let seen = try site.zlogin(zone, ["/bin/sh", "-c",
            "echo cmdline=$(cat /proc/cmdline); echo blocks=$(ls /sys/class/block)$(ls /sys/block)$(ls /sys/dev/block); echo parts=$(cat /proc/partitions /proc/diskstats); echo config=$(cat /proc/config.gz | wc -c)"])
        #expect(seen.stdout.contains("cmdline=\n"), "\(seen.stdout)")
        #expect(seen.stdout.contains("blocks=\n"), "\(seen.stdout)")
        #expect(seen.stdout.contains("parts=\n"), "\(seen.stdout)")
        #expect(seen.stdout.contains("config=0\n"), "\(seen.stdout)")
        #expect(!seen.stdout.contains(hostCmdline))
    }

    /// The statfs supervisor (docs/architecture.md, "df in a zone") fed by the zone's root: bad
    /// buffers get the kernel's EFAULT (never a write into the program's read-only code), bad
    /// paths the kernel's answer, 20000 calls in a row all succeed, and it still answers after.
    @Test func theStatfsSupervisorTakesBadBuffersAndFloods() throws {
        let site = try AttackSite(network: false)
        defer { site.close() }
        let zone = try site.create(alias: "statfs", extra: ",\"quota\":1")
        try site.arm(zone)
        let r = try site.attack(zone, ["statfs"])
        #expect(r.status == 0, "\(r.stderr)")
        var seen: [String: String] = [:]
        for line in r.stdout.split(separator: "\n") {
            let f = line.split(separator: " ", maxSplits: 1)
            if f.count == 2 { seen[String(f[0])] = String(f[1]) }
        }
        for key in ["null", "text", "unmapped", "badpath"] { #expect(seen[key] == "\(EFAULT)", "\(key): \(r.stdout)") }
        #expect(seen["longpath"] == "\(ENAMETOOLONG)", "\(r.stdout)")
        #expect(seen["repeated-failures"] == "0")
        #expect(seen["statfs"] == "\(1 << 30)", "\(r.stdout)")
        #expect(seen["fstatfs"] == "\(1 << 30)", "\(r.stdout)")
        let df = try site.zlogin(zone, ["/bin/df", "-k", "-P", "/"])
        #expect(df.stdout.contains(" 1048576 "), "\(df.stdout)")
    }

    @Test func fullMemoryFileSystemsLeaveRoomForZlogin() throws {
        let site = try AttackSite(network: false)
        defer { site.close() }
        let zone = try site.create(alias: "filler")
        // Fill /tmp, /dev/shm and /dev to the brim (each stops at its size).
        let fill = try site.zlogin(zone, ["/bin/sh", "-c",
            "for d in /tmp /dev/shm /dev; do dd if=/dev/zero of=$d/fill bs=1M count=200 2>/dev/null; done; df -k /tmp /dev/shm /dev"])
        var total = 0
        for line in fill.stdout.split(separator: "\n").dropFirst() {
            let f = line.split(separator: " ")
            if f.count >= 3, let used = Int(f[2]) { total += used }
        }
        #expect(total > 0, "df inside: \(fill.stdout) \(fill.stderr)")
        let budget = TmpfsBudget(maxPhysicalMemory: 64)
        #expect(total <= Int(64 - budget.reserve) * 1024, "the memory file systems hold \(total) KiB of a 64 MiB zone")
        for _ in 0..<3 {
            let r = try site.zlogin(zone, ["/bin/sh", "-c", "echo alive"])
            #expect(r.status == 0 && r.stdout == "alive\n", "zlogin in a zone with full tmpfs: \(r.status) \(r.stderr)")
        }
        // A session that itself runs the zone out of memory is told why it died.
        let hog = try site.zlogin(zone, ["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"])
        #expect(hog.status == 137 && hog.stderr.contains("killed by the zone's OOM killer") && hog.stderr.contains("max_physical_memory 64 MiB"),
                "\(hog.status) \(hog.stderr)")
        #expect(try site.zlogin(zone, ["/bin/sh", "-c", "echo alive"]).stdout == "alive\n")
    }

    @Test func aZoneWhoseInitWasOOMKilledIsStopped() throws {
        let site = try AttackSite(network: false)
        defer { site.close() }
        let zone = try site.create(alias: "oom")
        #expect(try site.get(zone)["state"]?.stringValue == "running")
        // Init volunteers for the OOM killer, then five 20 MB holders pass the 64 MiB cap. (The
        // kernel scales oom_score_adj by the cap in whole thousandths: one hog of the cap's size
        // would outscore init; each of these does not.)
        try Files.writeAtomically(site.zoneRoot(zone) + "/root/hog.sh", "#!/bin/sh\nx=$(head -c 20000000 /dev/zero | tr '\\0' a)\nsleep 20\n", mode: 0o755)
        _ = try site.zlogin(zone, ["/bin/sh", "-c", "echo 1000 > /proc/1/oom_score_adj; for i in 1 2 3 4 5; do /root/hog.sh & done; wait"])
        var state = ""
        let deadline = Monotonic.now + 10
        while Monotonic.now < deadline {
            state = try site.get(zone)["state"]?.stringValue ?? ""
            if state == "stopped" { break }
            usleep(50_000)
        }
        #expect(state == "stopped", "state after init was OOM-killed: \(state)")
        try site.lumos(["vm", "start", zone])
        #expect(try site.get(zone)["state"]?.stringValue == "running")
    }
}

/// Zones of two state roots on one host never share host uids: the registry of uid ranges is
/// host-wide (docs/security.md, "User namespaces"), whatever LUMOS_ROOT or --root says.
@Suite(.enabled(if: isRoot, "needs root: the host's uid-range registry"))
struct IDRangeAttackTests {
    @Test func twoStateRootsGetDisjointRanges() throws {
        let a = StateRoot("/tmp/lumos-ids-a-\(getpid())"), b = StateRoot("/tmp/lumos-ids-b-\(getpid())")
        let ua = UUID().uuidString.lowercased(), ub = UUID().uuidString.lowercased()
        defer {
            ZoneIDRange.release(ua, root: a)
            ZoneIDRange.release(ub, root: b)
            _ = try? Exec.run(["rm", "-rf", a.path, b.path], check: false)
        }
        let ra = try ZoneIDRange.allocate(for: ua, root: a, durable: false)
        let rb = try ZoneIDRange.allocate(for: ub, root: b, durable: false)
        #expect(ra.base + ra.count <= rb.base || rb.base + rb.count <= ra.base, "\(ra) and \(rb) overlap")
        #expect(ZoneIDRange.lookup(ua, root: b) == ra, "one registry serves both roots")
        #expect(!Files.exists(a.sub("idranges")) && !Files.exists(b.sub("idranges")))
    }
}
