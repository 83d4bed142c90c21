import Glibc
import Images
import LumosCore
import Testing
@testable import Zones

/// The zone's own limits in its /proc and /sys through the host's lxcfs (Zones/Runtime/
/// ZoneLxcfs.swift), read from inside a real busybox zone.
@Suite(.serialized, .enabled(if: isRoot && Lxcfs.binary != nil, "needs root and lxcfs (scripts/install-deps.sh)"))
struct LimitViewsTests {
    @Test func procShowsTheZonesMemoryUptimeAndCPUTime() throws {
        let h = try RealHost("views")
        defer { h.close() }
        let uuid = try h.vmadm.create(h.payload(["max_physical_memory": 192, "cpu_cap": 100])).uuid
        func zone(_ command: String) throws -> String {
            let r = try h.lumos(["login", uuid, "/bin/sh", "-c", command])
            #expect(r.status == 0, "\(command): \(r.stderr)")
            return r.stdout
        }
        #expect(Lxcfs.isMounted)
        defer { try? h.vmadm.delete(uuid) }
        // max_physical_memory, in kB, as MemTotal.
        #expect(try zone("grep ^MemTotal: /proc/meminfo").split(separator: " ", omittingEmptySubsequences: true).dropFirst().first == "196608")
        // cpu_cap 100 is one CPU: cpuinfo and sysfs show one (lxcfs reads the quota at the
        // zone's cpuset path, docs/architecture.md), and an update to no cap shows the host's.
        let hostCPUs = (try FD.readText("/proc/cpuinfo")).split(separator: "\n").filter { $0.hasPrefix("processor") }.count
        #expect(try zone("grep -c ^processor /proc/cpuinfo") == "1\n")
        #expect(try zone("read v < /sys/devices/system/cpu/online; echo $v") == "0\n")
        if hostCPUs > 1 {
            try h.vmadm.update(uuid, ["cpu_cap": 0])
            #expect(try zone("grep -c ^processor /proc/cpuinfo") == "\(hostCPUs)\n")
            // read(2), as glibc's get_nprocs does: busybox cat's sendfile stops at the size
            // the fuse inode had when the file was shorter ("0\n"), docs/architecture.md.
            #expect(try zone("read v < /sys/devices/system/cpu/online; echo $v") == "0-\(hostCPUs - 1)\n")
        }
        // /proc/stat counts the zone's CPU time, not the host's (lxcfs's cpuview).
        let zoneUser = Int(try zone("head -n 1 /proc/stat").split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? -1
        let hostUser = Int((try FD.readText("/proc/stat")).split(separator: "\n").first?.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? -1
        #expect(zoneUser >= 0 && zoneUser < hostUser)
        // The zone's uptime, not the host's.
        let zoneUp = Double(try zone("cat /proc/uptime").split(separator: " ").first ?? "") ?? -1
        let hostUp = Double((try FD.readText("/proc/uptime")).split(separator: " ").first ?? "") ?? -1
        #expect(zoneUp >= 0 && zoneUp < hostUp)
        // The views are read-only. (A system zone's root may unmount them, which shows it only
        // the host's figures: docs/security.md, "System zones".)
        #expect(try zone("echo 1 > /proc/meminfo 2>/dev/null || echo refused") == "refused\n")
        // A live update is seen at once.
        try h.vmadm.update(uuid, ["max_physical_memory": 256])
        #expect(try zone("grep ^MemTotal: /proc/meminfo").split(separator: " ", omittingEmptySubsequences: true).dropFirst().first == "262144")
    }
}
