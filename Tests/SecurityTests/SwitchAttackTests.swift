import Glibc
import LumosCore
import Testing

/// Holes 2, 3 and 5 of the security issue and the port checks (docs/security.md, "Switches"):
/// a tenant on a switch attacks its neighbours from inside a real zone with raw frames; a
/// neighbour zone listens and counts what reaches it, with a harmless control frame sent in
/// the same window to prove the listener hears the attacker at all.
@Suite(.serialized, .enabled(if: isRoot, "needs root: pools, zones and network namespaces"))
struct SwitchAttackTests {
    /// `bridge fdb` lines for a MAC: "MAC dev PORT ...".
    func ports(learning mac: String, _ site: AttackSite) throws -> [String] {
        try site.inSwitch(["bridge", "fdb", "show", "br", site.stub]).stdout.split(separator: "\n")
            .filter { $0.lowercased().hasPrefix(mac.lowercased() + " ") }
            .compactMap { line in
                let f = line.split(separator: " ")
                return f.firstIndex(of: "dev").map { String(f[$0 + 1]) }
            }
    }

    @Test func linkLocalFramesWithANeighboursMACMoveNothingInTheBridge() throws {
        let site = try AttackSite()
        defer { site.close() }
        let victim = try site.create(alias: "victim", host: 10)
        let attacker = try site.create(alias: "attacker", host: 11)
        try site.arm(attacker)
        let victimMAC = try site.mac(victim)
        let victimPort = "lz" + victim.prefix(8) + "0", attackerPort = "lz" + attacker.prefix(8) + "0"
        #expect(site.hostPingSoon(10))
        #expect(try ports(learning: victimMAC, site) == [victimPort], "learned on the victim's port first")

        let sent = try site.attack(attacker, ["ll-frame", "net0", victimMAC, "20"])
        #expect(sent.status == 0, "the attack ran: \(sent.stderr)")
        let after = try ports(learning: victimMAC, site)
        #expect(!after.contains(attackerPort), "the bridge learned the victim's MAC on the attacker's port: \(after)")
        #expect(site.hostPingSoon(10), "the victim still receives its traffic")
        // The same frames with the attacker's own MAC do teach the bridge nothing either
        // (link-local learning is off), and its ordinary traffic still works.
        #expect(site.hostPingSoon(11))
    }

    @Test func rogueRouterAdvertisementsAndRedirectsReachNoNeighbourAndNoSwitch() throws {
        let site = try AttackSite()
        defer { site.close() }
        let victim = try site.create(alias: "victim", host: 10)
        let attacker = try site.create(alias: "attacker", host: 11)
        try site.arm(victim)
        try site.arm(attacker)
        let heard = try site.listen(in: victim) { () throws -> Void in
            #expect(try site.attack(attacker, ["ra", "net0", "5"]).status == 0)
            #expect(try site.attack(attacker, ["redirect", "net0", "5"]).status == 0)
            #expect(try site.attack(attacker, ["icmp-echo", "net0", "3"]).status == 0)
        }
        #expect(heard["icmp6-ra"] == 0, "router advertisements reached the neighbour: \(heard)")
        #expect(heard["icmp4-redirect"] == 0, "ICMP redirects reached the neighbour: \(heard)")
        #expect((heard["icmp4-echo"] ?? 0) > 0 && (heard["icmp6-echo"] ?? 0) > 0, "the control pings arrive: \(heard)")
        // Nor did the switch's own interface take the prefix or the default route.
        let addrs = try site.inSwitch(["ip", "-6", "addr", "show", "dev", site.stub]).stdout
        let routes = try site.inSwitch(["ip", "-6", "route", "show"]).stdout
        #expect(!addrs.contains("2001:db8:bad") && !routes.contains("2001:db8:bad") && !routes.contains("default"), "\(addrs)\n\(routes)")
        // And it would not have: Lumos switches refuse RAs and redirects themselves.
        for key in ["net.ipv6.conf.\(site.stub).accept_ra", "net.ipv6.conf.\(site.stub).accept_redirects", "net.ipv4.conf.\(site.stub).accept_redirects"] {
            #expect(try site.inSwitch(["sysctl", "-n", key]).stdout.trimmingSpaces() == "0", "\(key)")
        }
        try site.delete(attacker)
        #expect(!(try site.inSwitch(["ip", "-6", "route", "show"]).stdout.contains("default")))
    }

    @Test func dhcpRepliesFromAnySourcePortReachNoNeighbourUnlessAllowed() throws {
        let site = try AttackSite()
        defer { site.close() }
        let victim = try site.create(alias: "victim", host: 10)
        let attacker = try site.create(alias: "attacker", host: 11)
        let server = try site.create(alias: "server", host: 12, nicExtra: ",\"allow_dhcp_spoofing\":true")
        for z in [victim, attacker, server] { try site.arm(z) }
        let fromAttacker = try site.listen(in: victim) { () throws -> Void in
            #expect(try site.attack(attacker, ["dhcp-reply", "net0", "6767", "5"]).status == 0)
            #expect(try site.attack(attacker, ["dhcp-reply", "net0", "67", "5"]).status == 0)
            #expect(try site.attack(attacker, ["udp", "net0", "6868", "3"]).status == 0)
        }
        #expect(fromAttacker["udp68"] == 0, "a DHCP reply reached the neighbour: \(fromAttacker)")
        #expect((fromAttacker["udp6868"] ?? 0) > 0, "the control datagram arrives: \(fromAttacker)")
        // allow_dhcp_spoofing loosens exactly this: that zone may serve DHCP.
        let fromServer = try site.listen(in: victim) { () throws -> Void in
            #expect(try site.attack(server, ["dhcp-reply", "net0", "67", "5"]).status == 0)
        }
        #expect((fromServer["udp68"] ?? 0) > 0, "an allowed DHCP server is heard: \(fromServer)")
    }

    @Test func aPortWithoutEntriesPassesNothingAndTheLastTenantTakesTheTable() throws {
        let site = try AttackSite()
        defer { site.close() }
        let zone = try site.create(alias: "orphan", host: 10)
        #expect(site.hostPingSoon(10))
        // The port's elements are lost (as a crash between two nft transactions could do):
        // its frames now match no element at all.
        try site.inSwitch(["nft", "flush", "set", "bridge", "lumos", "ports"])
        try site.inSwitch(["nft", "flush", "map", "bridge", "lumos", "port_ethertypes"])
        try site.inSwitch(["ip", "neigh", "flush", "dev", site.stub])
        #expect(!site.hostPing(10), "a port without anti-spoofing entries passed traffic")
        try site.lumos(["net", "repair"])
        #expect(site.hostPingSoon(10), "repair puts the entries back")
        #expect(try site.inSwitch(["nft", "list", "tables"]).stdout.contains("bridge lumos"))
        try site.delete(zone)
        let tables = try site.inSwitch(["nft", "list", "tables"]).stdout
        #expect(!tables.contains("bridge lumos"), "the empty table stayed: \(tables)")
    }
}
