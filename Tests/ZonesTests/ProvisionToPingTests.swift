import Glibc
import LumosCore
import Testing

/// End to end through the CLI, as an operator would: an image built locally, zones with NICs
/// on an etherstub whose host side lives in a network namespace the test creates, pings
/// between zones and to the host side, and anti-spoofing between real zones.
@Suite(.serialized, .enabled(if: getuid() == 0, "needs root: pools, zones and network namespaces"))
struct ProvisionToPingTests {
    final class Site {
        let dir: String
        let netns: String
        let subnet: String
        var vms: [String] = []

        init(poolSize: String = "2G") throws {
            let tag = "\(getpid() % 100000)-\(UInt32.random(in: 0...99999))"
            dir = "/tmp/lumos-e2e-\(tag)"
            netns = "lumos-t-e2e-\(tag)"
            subnet = "10.\(UInt8.random(in: 100...200)).\(UInt8.random(in: 1...250))"
            try Files.makeDirectories(dir)
            do {
                try Exec.run(["ip", "netns", "add", netns])
                try lumos(["pool", "create", "--size", poolSize, "zones"])
                try lumos(["img", "build", "busybox"])
                try lumos(["net", "create-etherstub", "stub0"])
                try lumos(["net", "create-addr", "-a", "\(subnet).1/24", "stub0"])
            } catch {
                // Nothing of a half-built site stays behind (close skips what was never made).
                close()
                throw error
            }
        }

        /// The lumos executable: it sits beside the test bundle.
        var executable: String {
            var buf = [UInt8](repeating: 0, count: 4096)
            let n = buf.withUnsafeMutableBufferPointer { b in
                b.baseAddress!.withMemoryRebound(to: CChar.self, capacity: b.count) { readlink("/proc/self/exe", $0, b.count - 1) }
            }
            return Files.parent(String(decoding: buf[0..<max(0, n)], as: UTF8.self)) + "/lumos"
        }

        @discardableResult
        func lumos(_ args: [String], input: String? = nil, check: Bool = true, netnsVariable: Bool = true) throws -> Exec.Result {
            let exe = executable
            let netnsEnv = netnsVariable ? ["LUMOS_NET_NETNS=\(netns)"] : ["-u", "LUMOS_NET_NETNS"]
            return try Exec.run(["env"] + netnsEnv + ["LUMOS_ROOT=\(dir)", exe] + args,
                                input: input.map { Array($0.utf8) }, check: check)
        }

        func create(alias: String, ip: String, extra: String = "") throws -> String {
            // The busybox image (a site may hold zvol images for VMs too).
            let images = try lumos(["img", "list", "-H", "-o", "uuid,name"]).stdout.split(separator: "\n")
            let image = String(images.first { $0.hasSuffix("busybox") }?.split(separator: " ").first ?? "")
            let json = """
            {"brand":"lx","alias":"\(alias)","image_uuid":"\(image)","max_physical_memory":64,
             "nics":[{"nic_tag":"stub0","ips":["\(ip)/24"],"gateways":["\(subnet).1"],"primary":true\(extra)}]}
            """
            let r = try lumos(["vm", "create"], input: json)
            let uuid = String(r.stderr.split(separator: " ").last ?? "").trimmingSpaces()
            #expect(uuid.count == 36, "created: \(r.stderr)")
            vms.append(uuid)
            return uuid
        }

        func hostPing(_ ip: String) -> Bool {
            (try? Exec.run(["ip", "netns", "exec", netns, "ping", "-c", "1", "-W", "1", ip], check: false).status) == 0
        }

        func zonePing(_ uuid: String, _ ip: String, from source: String? = nil) -> Bool {
            let src = source.map { ["-I", $0] } ?? []
            return (try? lumos(["login", uuid, "ping", "-c", "1", "-W", "1"] + src + [ip], check: false).status) == 0
        }

        func close() {
            for v in vms { _ = try? lumos(["vm", "delete", v], check: false) }
            _ = try? lumos(["net", "delete-etherstub", "stub0"], check: false)
            _ = try? lumos(["pool", "destroy", "-f", "zones"], check: false)
            _ = try? Exec.run(["ip", "netns", "del", netns], check: false)
            _ = try? Exec.run(["rm", "-rf", "--one-file-system", dir], check: false)
        }
    }

    /// A later command from a shell without $LUMOS_NET_NETNS (the operator's `vmadm delete`
    /// after the demo) works where the switches were created, not in the host's namespace:
    /// the tenant's port leaves the switch's table.
    @Test func laterCommandsFindTheSwitchNamespaceWithoutTheVariable() throws {
        let site = try Site()
        defer { site.close() }
        let ip = "\(site.subnet).21"
        let uuid = try site.create(alias: "nsless", ip: ip)
        #expect(site.hostPing(ip))
        let port = "lz" + uuid.prefix(8)
        // The table itself goes with the last tenant port: no table, no port in it.
        func portsInSwitchTable() throws -> String {
            try Exec.run(["ip", "netns", "exec", site.netns, "nft", "list", "set", "bridge", "lumos", "ports"], check: false).stdout
        }
        #expect(try portsInSwitchTable().contains(port))
        let etherstubs = try site.lumos(["net", "show-etherstub", "-p", "-o", "link"], netnsVariable: false).stdout
        #expect(etherstubs.split(separator: "\n").contains("stub0"))
        let vnics = try site.lumos(["net", "show-vnic", "-p", "-o", "link"], netnsVariable: false).stdout
        #expect(vnics.contains(port), "show-vnic without the variable: \(vnics)")
        try site.lumos(["vm", "delete", uuid], netnsVariable: false)
        site.vms.removeAll { $0 == uuid }
        #expect(!(try portsInSwitchTable().contains(port)))
        #expect(!site.hostPing(ip))
    }

    /// On a systemd host / is a shared mount, and a clone of a shared mount joins its peer
    /// group: pivot_root refused such a zone root with EINVAL (seen on a Debian guest, the
    /// pure cgroup v2 test of DebianGuestTests). Here the commands run in a mount namespace
    /// whose mounts are all shared; start, zlogin and stop happen there (an lxcfs it mounts
    /// lives in that namespace and goes with the stop).
    @Test func aZoneStartsAndStopsWhereEveryMountIsShared() throws {
        let site = try Site()
        defer { site.close() }
        let uuid = try site.create(alias: "shared", ip: "\(site.subnet).22")
        try site.lumos(["vm", "stop", uuid])
        let lumos = "env LUMOS_NET_NETNS=\(site.netns) LUMOS_ROOT=\(site.dir) \(site.executable)"
        let r = try Exec.run(["unshare", "--mount", "--propagation", "shared", "sh", "-c",
                              "grep -c shared: /proc/self/mountinfo && \(lumos) vm start \(uuid) && \(lumos) login \(uuid) echo STARTED-IN-ZONE; \(lumos) vm stop \(uuid)"],
                             check: false)
        #expect(r.status == 0 && r.stdout.contains("STARTED-IN-ZONE"), "\(r.stdout) \(r.stderr)")
        #expect((Int(r.stdout.split(separator: "\n").first ?? "") ?? 0) > 0, "the namespace's mounts are shared: \(r.stdout)")
        #expect(try site.lumos(["vm", "list", "-H", "-o", "state", "uuid=\(uuid)"]).stdout.trimmingSpaces() == "stopped")
    }

    @Test func twoZonesPingEachOtherAndTheHostAndCannotSpoof() throws {
        let site = try Site()
        defer { site.close() }
        let a = try site.create(alias: "a", ip: "\(site.subnet).10")
        let b = try site.create(alias: "b", ip: "\(site.subnet).11")
        #expect(site.hostPing("\(site.subnet).10"), "host side reaches zone a")
        #expect(site.hostPing("\(site.subnet).11"), "host side reaches zone b")
        #expect(site.zonePing(a, "\(site.subnet).11"), "zone a reaches zone b")
        #expect(site.zonePing(b, "\(site.subnet).1"), "zone b reaches the host side")

        // Zone a takes another address inside: its traffic from it is dropped on the host side,
        // while zone b keeps working.
        let list = try site.lumos(["vm", "list", "-H", "-o", "uuid,state"]).stdout
        #expect(list.contains("\(a)\trunning") || list.contains(a))
        // A zone has no CAP_NET_ADMIN, so the address is added from the host, as a tenant with
        // that privilege (a VM) could do itself.
        let pid = try #require(try site.get(a)["pid"]?.intValue)
        try Exec.run(["nsenter", "--net=/proc/\(pid)/ns/net", "ip", "addr", "add", "\(site.subnet).50/24", "dev", "net0"])
        #expect(!site.zonePing(a, "\(site.subnet).11", from: "\(site.subnet).50"), "a spoofed source address is dropped")
        #expect(site.zonePing(b, "\(site.subnet).1"), "the neighbour is unaffected")
        #expect(site.zonePing(a, "\(site.subnet).11", from: "\(site.subnet).10"), "its own address still works")

        // The pool refuses to go while tenants live on it.
        let destroy = try site.lumos(["pool", "destroy", "zones"], check: false)
        #expect(destroy.status != 0 && destroy.stderr.contains("holds tenants"), "\(destroy.stderr)")

        // Deleting a zone removes its link.
        try site.lumos(["vm", "delete", a])
        site.vms.removeAll { $0 == a }
        let vnics = try site.lumos(["net", "show-vnic", "--json"]).stdout
        #expect(!vnics.contains(a))
        #expect(!site.hostPing("\(site.subnet).10"))
    }
}
