import Foundation
import Glibc
import LumosCore
import Testing
@testable import Net

/// Integration tests against the real kernel, inside namespaces the tests create.
/// Serialized: they measure throughput and share two cores.
@Suite(.serialized, .enabled(if: isRoot, "needs root (network namespaces, nftables, tc)"))
struct TenantNetworkTests {
    @Test func twoTenantsPingEachOtherAndTheHost() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        try lab.host.createEtherstub("stub0")
        try lab.host.addHostAddress("stub0", "10.77.0.1/24")
        let a = try lab.tenantNamespace("a"), b = try lab.tenantNamespace("b")
        let net = TenantNetwork(host: lab.host)
        let ta = lab.uuid(), tb = lab.uuid()
        let nicsA = try net.attach(tenant: ta, nics: [NicSpec(nicTag: "stub0", ips: ["10.77.0.10/24"], gateways: ["10.77.0.1"], primary: true)], netns: .named(a))
        try net.attach(tenant: tb, nics: [NicSpec(nicTag: "stub0", ips: ["10.77.0.11/24"])], netns: .named(b))

        #expect(try lab.ping(a, "10.77.0.11"))
        #expect(try lab.ping(b, "10.77.0.10"))
        #expect(try lab.ping(a, "10.77.0.1"))
        #expect(try lab.ping(lab.hostNS, "10.77.0.11"))
        // The tenant sees its NIC as net0 with the manifest's MAC, address and default route.
        let inside = try lab.run(a, ["ip", "-j", "link", "show", "net0"]).stdout
        #expect(inside.contains(nicsA[0].mac.description))
        #expect(try lab.run(a, ["ip", "route", "show", "default"]).stdout.contains("via 10.77.0.1 dev net0"))
        let vnics = try lab.host.vnicViews()
        let va = try #require(vnics.first { $0.zone == ta })
        #expect(va.over == "stub0" && va.macAddressType == "random" && va.ipackets > 0 && va.opackets > 0 && va.rbytes > 0)

        try net.detach(tenant: ta)
        try net.detach(tenant: tb)
        #expect(try lab.tenantLinks().isEmpty)
        #expect(try lab.protectedPorts().isEmpty)
        #expect(try lab.host.store.tenants().isEmpty)
    }

    @Test func tenantThatChangesItsIPOrMACLosesTrafficNeighbourKeepsWorking() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        try lab.host.createEtherstub("stub0")
        try lab.host.addHostAddress("stub0", "10.77.0.1/24")
        let a = try lab.tenantNamespace("a"), b = try lab.tenantNamespace("b")
        let net = TenantNetwork(host: lab.host)
        try net.attach(tenant: lab.uuid(), nics: [NicSpec(nicTag: "stub0", ips: ["10.77.0.10/24"])], netns: .named(a))
        try net.attach(tenant: lab.uuid(), nics: [NicSpec(nicTag: "stub0", ips: ["10.77.0.11/24"])], netns: .named(b))
        #expect(try lab.ping(a, "10.77.0.1"))

        // A takes another address: its traffic is dropped, B is untouched.
        try lab.run(a, ["ip", "addr", "flush", "dev", "net0"], check: true)
        try lab.run(a, ["ip", "addr", "add", "10.77.0.50/24", "dev", "net0"], check: true)
        #expect(try !lab.ping(a, "10.77.0.1"))
        #expect(try lab.ping(b, "10.77.0.1"))

        // Back to its own address, then a forged MAC: dropped again, B still fine.
        try lab.run(a, ["ip", "addr", "flush", "dev", "net0"], check: true)
        try lab.run(a, ["ip", "addr", "add", "10.77.0.10/24", "dev", "net0"], check: true)
        #expect(try lab.ping(a, "10.77.0.1"))
        try lab.run(a, ["ip", "link", "set", "net0", "address", "02:de:ad:be:ef:01"], check: true)
        try lab.run(lab.hostNS, ["ip", "neigh", "flush", "dev", "stub0"])
        #expect(try !lab.ping(a, "10.77.0.1"))
        #expect(try lab.ping(b, "10.77.0.1"))
    }

    @Test func ipv6AndNeighbourDiscoveryOnlyFromOwnAddresses() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        try lab.host.createEtherstub("stub0")
        let a = try lab.tenantNamespace("a"), b = try lab.tenantNamespace("b")
        let net = TenantNetwork(host: lab.host)
        try net.attach(tenant: lab.uuid(), nics: [NicSpec(nicTag: "stub0", ips: ["2001:db8::10/64"])], netns: .named(a))
        try net.attach(tenant: lab.uuid(), nics: [NicSpec(nicTag: "stub0", ips: ["2001:db8::11/64"])], netns: .named(b))
        // Neighbour solicitation and advertisement pass for the tenants' own addresses.
        #expect(try lab.ping(a, "2001:db8::11"))
        #expect(try lab.ping(b, "2001:db8::10"))
        // A moves to another address: its packets (and its neighbour discovery) are dropped.
        try lab.run(a, ["ip", "-6", "addr", "flush", "dev", "net0", "scope", "global"], check: true)
        try lab.run(a, ["ip", "addr", "add", "2001:db8::99/64", "dev", "net0", "nodad"], check: true)
        try lab.run(b, ["ip", "-6", "neigh", "flush", "dev", "net0"])
        #expect(try !lab.ping(a, "2001:db8::11"))
        #expect(try !lab.ping(b, "2001:db8::99"))
    }

    @Test func blockedOutgoingPortsAndAllowedIPs() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        try lab.host.createEtherstub("stub0")
        let a = try lab.tenantNamespace("a"), b = try lab.tenantNamespace("b")
        let net = TenantNetwork(host: lab.host)
        try net.attach(tenant: lab.uuid(), nics: [NicSpec(nicTag: "stub0", ips: ["10.77.0.10/24"], allowedIPs: ["10.77.5.0/24"],
                                                          blockedOutgoingPorts: [2525])], netns: .named(a))
        try net.attach(tenant: lab.uuid(), nics: [NicSpec(nicTag: "stub0", ips: ["10.77.0.11/24"])], netns: .named(b))
        _ = try lab.spawn(b, ["busybox", "nc", "-ll", "-p", "2525", "-e", "/bin/true"])
        _ = try lab.spawn(b, ["busybox", "nc", "-ll", "-p", "2526", "-e", "/bin/true"])
        // Both listen, so a refused connection can only be the block.
        try #require(try lab.waitListening(b, ports: [2525, 2526]))
        func connects(_ port: Int) throws -> Bool {
            try lab.run(a, ["busybox", "nc", "-w", "1", "10.77.0.11", "\(port)"]).status == 0
        }
        #expect(try connects(2526))
        // 2525 accepts connections that do not cross A's port.
        #expect(try lab.run(b, ["busybox", "nc", "-w", "1", "127.0.0.1", "2525"]).status == 0)
        #expect(try !connects(2525))
        // An address inside allowed_ips may be used; one outside may not.
        try lab.run(b, ["ip", "route", "add", "10.77.0.0/16", "dev", "net0"])
        try lab.run(a, ["ip", "addr", "add", "10.77.5.9/24", "dev", "net0"], check: true)
        try lab.run(a, ["ip", "addr", "add", "10.77.6.9/24", "dev", "net0"], check: true)
        #expect(try lab.run(a, ["busybox", "ping", "-c", "2", "-W", "1", "-I", "10.77.5.9", "10.77.0.11"]).status == 0)
        #expect(try lab.run(a, ["busybox", "ping", "-c", "2", "-W", "1", "-I", "10.77.6.9", "10.77.0.11"]).status != 0)
    }

    /// The host's neighbour entry for B, after A answers ARP for B's address.
    func hostNeighbourAfterForgedReply(_ lab: NetLab, from a: String) throws -> String {
        try lab.run(a, ["busybox", "arping", "-A", "-c", "2", "-w", "2", "-I", "net0", "-s", "10.77.0.11", "10.77.0.11"])
        let out = try lab.run(lab.hostNS, ["ip", "-j", "neigh", "show", "10.77.0.11", "dev", "stub0"]).stdout
        let entries = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]] ?? []
        return entries.first?["lladdr"] as? String ?? ""
    }

    @Test func forgedARPReplyIsDroppedUnlessIPSpoofingIsAllowed() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        try lab.host.createEtherstub("stub0")
        try lab.host.addHostAddress("stub0", "10.77.0.1/24")
        let a = try lab.tenantNamespace("a"), b = try lab.tenantNamespace("b")
        let net = TenantNetwork(host: lab.host)
        let ta = lab.uuid()
        let nicA = try net.attach(tenant: ta, nics: [NicSpec(nicTag: "stub0", ips: ["10.77.0.10/24"])], netns: .named(a))[0]
        let nicB = try net.attach(tenant: lab.uuid(), nics: [NicSpec(nicTag: "stub0", ips: ["10.77.0.11/24"])], netns: .named(b))[0]
        // busybox arping binds to the forged source address.
        try lab.run(a, ["sysctl", "-qw", "net.ipv4.ip_nonlocal_bind=1"], check: true)
        #expect(try lab.ping(lab.hostNS, "10.77.0.11"))
        usleep(1_200_000)  // past the neighbour lock time, so a reply that got through would win
        #expect(try hostNeighbourAfterForgedReply(lab, from: a) == nicB.mac.description)

        var loose = nicA.spec
        loose.allowIPSpoofing = true
        try net.update(tenant: ta, netns: .named(a), update: [loose])
        try lab.run(a, ["sysctl", "-qw", "net.ipv4.ip_nonlocal_bind=1"], check: true)
        #expect(try lab.ping(lab.hostNS, "10.77.0.11"))
        usleep(1_200_000)
        #expect(try hostNeighbourAfterForgedReply(lab, from: a) == nicA.mac.description)
    }

    @Test func rogueDHCPServerInATenantIsDropped() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        try lab.host.createEtherstub("stub0")
        let a = try lab.tenantNamespace("a"), b = try lab.tenantNamespace("b")
        let net = TenantNetwork(host: lab.host)
        let ta = lab.uuid()
        var loose = NicSpec(nicTag: "stub0", ips: ["10.77.0.10/24"])
        loose.allowDHCPSpoofing = true
        let nicA = try net.attach(tenant: ta, nics: [loose], netns: .named(a))[0]
        try net.attach(tenant: lab.uuid(), nics: [NicSpec(nicTag: "stub0", ips: ["10.77.0.11/24"])], netns: .named(b))
        let conf = "\(lab.root)/udhcpd.conf"
        try Files.writeAtomically(conf, """
        interface net0
        start 10.77.0.100
        end 10.77.0.110
        lease_file \(lab.root)/udhcpd.leases
        pidfile \(lab.root)/udhcpd.pid
        option subnet 255.255.255.0

        """)
        try Files.writeAtomically("\(lab.root)/udhcpd.leases", "")
        _ = try lab.spawn(a, ["busybox", "udhcpd", "-f", conf])
        try #require(try lab.waitListening(a, ports: [67], udp: true))
        // With allow_dhcp_spoofing the server reaches B, so it does serve...
        let client = ["busybox", "udhcpc", "-i", "net0", "-n", "-q", "-f", "-t", "3", "-T", "1", "-A", "1", "-s", "/bin/true"]
        let served = try lab.run(b, client)
        #expect(served.status == 0)
        #expect((served.stdout + served.stderr).contains("lease of 10.77.0.1"))

        // ...and without it, the same running server's offers are dropped.
        var strict = nicA.spec
        strict.allowDHCPSpoofing = false
        try net.update(tenant: ta, netns: .named(a), update: [strict])
        try #require(try lab.waitListening(a, ports: [67], udp: true))
        let denied = try lab.run(b, client)
        #expect(denied.status != 0)
        #expect(!(denied.stdout + denied.stderr).contains("10.77.0.10"))
    }

    @Test func builtInResponderGivesUdhcpcItsManifestAddressAndNobodyElse() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        try lab.host.createEtherstub("stub0")
        let a = try lab.tenantNamespace("a"), c = try lab.tenantNamespace("c")
        let net = TenantNetwork(host: lab.host)
        let ta = lab.uuid()
        try net.attach(tenant: ta, nics: [NicSpec(nicTag: "stub0", ips: ["10.77.0.20/24"], gateways: ["10.77.0.1"], primary: true)],
                       netns: .named(a), hostname: "web1", resolvers: ["10.77.0.53"], addressesByDHCP: true)
        try net.attach(tenant: lab.uuid(), nics: [NicSpec(nicTag: "stub0", ips: ["10.77.0.30/24"])], netns: .named(c))
        let dhcp = DHCPService(host: lab.host)
        #expect(dhcp.runningPid(switchName: "stub0") != nil)
        // Nothing is configured inside: the address comes from the responder.
        #expect(try !lab.run(a, ["ip", "addr", "show", "net0"]).stdout.contains("10.77.0.20"))

        let out = "\(lab.root)/bound"
        let script = "\(lab.root)/udhcpc.sh"
        try Files.writeAtomically(script, "#!/bin/sh\n[ \"$1\" = bound ] && echo \"$ip $subnet $router $dns $hostname\" > \(out)\nexit 0\n", mode: 0o755)
        let r = try lab.run(a, ["busybox", "udhcpc", "-i", "net0", "-n", "-q", "-f", "-t", "5", "-T", "1", "-s", script])
        #expect(r.status == 0)
        #expect(try FD.readText(out).trimmingSpaces() == "10.77.0.20 255.255.255.0 10.77.0.1 10.77.0.53 web1")

        // A NIC that is not served gets nothing, although the responder runs on its switch.
        let other = try lab.run(c, ["busybox", "udhcpc", "-i", "net0", "-n", "-q", "-f", "-t", "2", "-T", "1", "-A", "1", "-s", "/bin/true"])
        #expect(other.status != 0)

        // The responder stops with the last tenant that needs it.
        let pid = try #require(dhcp.runningPid(switchName: "stub0"))
        try net.detach(tenant: ta)
        #expect(dhcp.runningPid(switchName: "stub0") == nil)
        #expect(!DHCPService.isRunning(pid))
    }

    @Test func responderThatIsNotReadyInTimeIsKilled() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        // A responder that never binds: it ignores SIGTERM and never writes its pid file.
        let fake = "\(lab.root)/slow-lumos"
        try Files.writeAtomically(fake, "#!/bin/sh\ntrap '' TERM\ntouch \(lab.root)/started\nwhile :; do sleep 0.05; done\n", mode: 0o755)
        let host = NetworkHost(root: StateRoot(lab.root), namespace: .named(lab.hostNS), executable: fake)
        let dhcp = DHCPService(host: host)
        #expect(throws: LumosError.self) { try dhcp.start(switchName: "stub0", deadline: 0.5) }
        #expect(Files.exists("\(lab.root)/started"))
        #expect(DHCPService.processes(endingWith: dhcp.responderArguments("stub0")).isEmpty)
        #expect(dhcp.runningPid(switchName: "stub0") == nil)
    }

    /// Mbit/s the receiver of an iperf3 run measured (`-O 1` leaves TCP slow start out).
    func iperf(_ lab: NetLab, from ns: String, to server: String, port: Int, reverse: Bool) throws -> Double {
        var argv = ["iperf3", "-c", server, "-p", "\(port)", "-t", "4", "-O", "1", "-J"]
        if reverse { argv.append("-R") }
        let r = try lab.run(ns, argv)
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        if let error = json?["error"] as? String { throw LumosError.failed("iperf3 \(reverse ? "-R " : "")failed: \(error)") }
        let end = json?["end"] as? [String: Any]
        let received = end?["sum_received"] as? [String: Any]
        return ((received?["bits_per_second"] as? NSNumber)?.doubleValue ?? 0) / 1e6
    }

    @Test func tenMbitCapHoldsInEachDirection() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        try lab.host.createEtherstub("stub0")
        let a = try lab.tenantNamespace("a"), b = try lab.tenantNamespace("b")
        let net = TenantNetwork(host: lab.host)
        try net.attach(tenant: lab.uuid(), nics: [NicSpec(nicTag: "stub0", ips: ["10.77.0.10/24"], rxMaxbwMbps: 10, txMaxbwMbps: 10)], netns: .named(a))
        try net.attach(tenant: lab.uuid(), nics: [NicSpec(nicTag: "stub0", ips: ["10.77.0.11/24"])], netns: .named(b))
        // One server per direction: an iperf3 server serves one test at a time and may still be
        // finishing the first when the second connects ("server is busy").
        _ = try lab.spawn(b, ["iperf3", "-s", "-B", "10.77.0.11", "-p", "5201"])
        _ = try lab.spawn(b, ["iperf3", "-s", "-B", "10.77.0.11", "-p", "5202"])
        try #require(try lab.waitListening(b, ports: [5201, 5202]))
        let sent = try iperf(lab, from: a, to: "10.77.0.11", port: 5201, reverse: false)
        let received = try iperf(lab, from: a, to: "10.77.0.11", port: 5202, reverse: true)
        #expect(abs(sent - 10) <= 1, "tenant's sending rate \(sent) Mbit/s under a 10 Mbit/s cap")
        #expect(abs(received - 10) <= 1, "tenant's receiving rate \(received) Mbit/s under a 10 Mbit/s cap")
    }

    @Test func addAndRemoveNICsOnARunningTenant() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        try lab.host.createEtherstub("stub0")
        try lab.host.createEtherstub("stub1")
        try lab.host.addHostAddress("stub0", "10.77.0.1/24")
        try lab.host.addHostAddress("stub1", "10.78.0.1/24")
        let a = try lab.tenantNamespace("a")
        // A running tenant reached by its init pid, as zones are.
        let pid = try lab.spawn(a, ["sleep", "600"])
        for _ in 0..<100 where (try? FD.readText("/proc/\(pid)/comm"))?.hasPrefix("sleep") != true { usleep(10_000) }
        let net = TenantNetwork(host: lab.host)
        let t = lab.uuid()
        let first = try net.attach(tenant: t, nics: [NicSpec(nicTag: "stub0", ips: ["10.77.0.10/24"])], netnsPid: pid)
        #expect(try lab.ping(a, "10.77.0.1"))

        let after = try net.update(tenant: t, netns: .pid(pid), add: [NicSpec(nicTag: "stub1", ips: ["10.78.0.10/24"])])
        #expect(after.map(\.interface) == ["net0", "net1"])
        #expect(try lab.ping(a, "10.78.0.1"))
        #expect(try lab.ping(a, "10.77.0.1"))

        try net.update(tenant: t, netns: .pid(pid), remove: [first[0].mac])
        #expect(try !lab.run(a, ["ip", "link", "show", "net0"]).stdout.contains("net0"))
        #expect(try lab.ping(a, "10.78.0.1"))
        #expect(try lab.tenantLinks() == [after[1].hostLink])
        #expect(try lab.protectedPorts() == [after[1].hostLink])
    }

    @Test func applyBringsNICsToTheManifest() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        try lab.host.createEtherstub("stub0")
        try lab.host.addHostAddress("stub0", "10.77.0.1/24")
        let a = try lab.tenantNamespace("a")
        let net = TenantNetwork(host: lab.host)
        let t = lab.uuid()
        let m0 = MACAddress("02:00:00:00:0a:01")!, m1 = MACAddress("02:00:00:00:0a:02")!
        try net.apply(tenant: t, nics: [NicSpec(nicTag: "stub0", ips: ["10.77.0.10/24"], mac: m0)], netns: .named(a))
        #expect(try lab.ping(a, "10.77.0.1"))
        // Readdress net0 in place and add net1: the manifest after update_nics + add_nics.
        let nics = try net.apply(tenant: t, nics: [NicSpec(nicTag: "stub0", ips: ["10.77.0.20/24"], mac: m0),
                                                   NicSpec(nicTag: "stub0", ips: ["10.77.0.21/24"], mac: m1)], netns: .named(a))
        #expect(nics.map(\.interface) == ["net0", "net1"])
        let addrs = try lab.run(a, ["ip", "-br", "addr"]).stdout
        #expect(addrs.contains("10.77.0.20/24") && addrs.contains("10.77.0.21/24") && !addrs.contains("10.77.0.10/24"))
        #expect(try lab.ping(a, "10.77.0.1"))
        #expect(try net.apply(tenant: t, nics: [NicSpec(nicTag: "stub0", ips: ["10.77.0.21/24"], mac: m1)], netns: .named(a)).map(\.mac) == [m1])
        #expect(try lab.tenantLinks().count == 1)
        #expect(try net.apply(tenant: t, nics: [], netns: .named(a)).isEmpty)
        #expect(try lab.tenantLinks().isEmpty && lab.protectedPorts().isEmpty)
    }

    @Test func cleanupRemovesEverythingAndIsIdempotent() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        try lab.host.createEtherstub("stub0")
        let a = try lab.tenantNamespace("a")
        let net = TenantNetwork(host: lab.host)
        let t = lab.uuid()
        let nic = try net.attach(tenant: t, nics: [NicSpec(nicTag: "stub0", ips: ["10.77.0.10/24"], rxMaxbwMbps: 5, txMaxbwMbps: 5)], netns: .named(a))[0]
        #expect(try Set(lab.tenantLinks()) == [nic.hostLink, nic.ifbLink])
        // A crash left a link nobody recorded with the tenant's prefix.
        let leaked = String(nic.hostLink.dropLast()) + "7"
        try lab.host.tools.ip(["link", "add", leaked, "type", "veth", "peer", "name", "lzleakpeer"])
        try net.cleanup(tenant: t)
        try net.cleanup(tenant: t)
        #expect(try lab.tenantLinks().isEmpty)
        #expect(try lab.protectedPorts().isEmpty)
        #expect(try lab.host.store.tenant(t) == nil)
        #expect(try !lab.host.tools.ip(["link"]).stdout.contains("lzleakpeer"))

        // repair() removes tenant links no record owns.
        try lab.host.tools.ip(["link", "add", "lzdeadbeef3", "type", "ifb"])
        try lab.host.repair()
        #expect(try lab.tenantLinks().isEmpty)
    }

    @Test func cleanupLeavesLinksOfATenantSharingItsPrefix() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        try lab.host.createEtherstub("stub0")
        try lab.host.addHostAddress("stub0", "10.77.0.1/24")
        let b = try lab.tenantNamespace("b")
        let net = TenantNetwork(host: lab.host)
        // Both uuids give lzabcdef01; only the attached one owns lzabcdef010.
        let owner = "abcdef01-2222-4333-8444-555555555555", crashed = "abcdef01-9999-4888-8777-666666666666"
        let nic = try net.attach(tenant: owner, nics: [NicSpec(nicTag: "stub0", ips: ["10.77.0.11/24"], txMaxbwMbps: 50)], netns: .named(b))[0]
        // A leftover of the crashed tenant: a link nobody records, with the shared prefix.
        try lab.host.tools.ip(["link", "add", "lzabcdef017", "type", "ifb"])
        try net.cleanup(tenant: crashed)
        #expect(try Set(lab.tenantLinks()) == [nic.hostLink, nic.ifbLink])
        #expect(try lab.protectedPorts() == [nic.hostLink])
        #expect(try lab.ping(b, "10.77.0.1"))
        try net.detach(tenant: owner)
        #expect(try lab.tenantLinks().isEmpty)
    }

    /// The switch bridge's vlan_filtering setting, as the kernel reports it.
    func bridgeVLANFiltering(_ lab: NetLab, _ bridge: String) throws -> Int? {
        let out = try lab.host.tools.ip(["-d", "-j", "link", "show", bridge]).stdout
        let links = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]]
        let info = (links?.first?["linkinfo"] as? [String: Any])?["info_data"] as? [String: Any]
        return (info?["vlan_filtering"] as? NSNumber)?.intValue
    }

    @Test func failedAttachLeavesNothingAndVlanFailsClearly() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        try lab.host.createEtherstub("stub0")
        let a = try lab.tenantNamespace("a")
        let net = TenantNetwork(host: lab.host)
        let t = lab.uuid()
        let good = NicSpec(nicTag: "stub0", ips: ["10.77.0.10/24"])
        #expect(throws: LumosError.self) {
            try net.attach(tenant: t, nics: [good, NicSpec(nicTag: "nosuch", ips: ["10.77.1.10/24"])], netns: .named(a))
        }
        let supported = try TenantNetwork.bridgesFilterVLANs()
        do {
            try net.attach(tenant: t, nics: [good, NicSpec(nicTag: "stub0", ips: ["10.77.1.10/24"], vlanID: 12)], netns: .named(a))
            #expect(supported, "a VLAN NIC attached on a kernel without 802.1Q support")
            #expect(try bridgeVLANFiltering(lab, "stub0") == 1)
            try net.detach(tenant: t)
        } catch let e as LumosError {
            #expect(!supported, "\(e.message)")
            #expect(e.message.contains("nics[1].vlan_id 12: this kernel has no 802.1Q"))
            // Finding that out changed nothing on the switch.
            #expect(try bridgeVLANFiltering(lab, "stub0") == 0)
        }
        #expect(try lab.tenantLinks().isEmpty)
        #expect(try lab.protectedPorts().isEmpty)
        #expect(try lab.host.store.tenant(t) == nil)
        #expect(try !lab.run(a, ["ip", "link"]).stdout.contains("net0"))
    }
}
