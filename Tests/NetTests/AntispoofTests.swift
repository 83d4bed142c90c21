import Testing
@testable import Net

@Suite struct AntispoofTests {
    let mac = MACAddress("02:00:00:00:00:01")!

    @Test func defaultPolicyAllowsOnlyOwnAddresses() {
        let spec = NicSpec(nicTag: "stub0", ips: ["10.0.0.5/24", "2001:db8::5/64"])
        let script = Antispoof.addScript([PortPolicy(port: "lzaabbccdd0", mac: mac, spec: spec)])
        #expect(script == """
        add element bridge lumos ports { "lzaabbccdd0" }
        add element bridge lumos port_ethertypes { "lzaabbccdd0" . ip : goto tenant_ipv4, "lzaabbccdd0" . ip6 : goto tenant_ipv6, "lzaabbccdd0" . arp : goto tenant_arp }
        add element bridge lumos mac_ok { "lzaabbccdd0" . 02:00:00:00:00:01 }
        add element bridge lumos v4_ok { "lzaabbccdd0" . 02:00:00:00:00:01 . 10.0.0.5 }
        add element bridge lumos v6_ok { "lzaabbccdd0" . 02:00:00:00:00:01 . 2001:db8::5, "lzaabbccdd0" . 02:00:00:00:00:01 . fe80::ff:fe00:1 }
        add element bridge lumos nd_ok { "lzaabbccdd0" . 02:00:00:00:00:01 . 0x20010db8000000000000000000000005, "lzaabbccdd0" . 02:00:00:00:00:01 . 0xfe80000000000000000000fffe000001 }

        """)
    }

    @Test func eachAllowLoosensOnlyItsOwnRule() {
        var spec = NicSpec(nicTag: "stub0", ips: ["10.0.0.5/24"], allowedIPs: ["10.0.1.0/24", "10.0.1.7"], blockedOutgoingPorts: [25, 25, 6667])
        spec.allowMACSpoofing = true
        spec.allowDHCPSpoofing = true
        spec.allowRestrictedTraffic = true
        let sets = Dictionary(uniqueKeysWithValues: Antispoof.elements([PortPolicy(port: "p", mac: mac, spec: spec)]).map { ($0.set, $0.elements) })
        // MAC spoofing: any source MAC, but the addresses are still checked.
        #expect(sets["mac_ok"] == nil)
        #expect(sets["mac_range_ok"] == ["\"p\" . 00:00:00:00:00:00-ff:ff:ff:ff:ff:ff"])
        #expect(sets["v4_ok"] == nil)
        #expect(sets["v4_range_ok"] == ["\"p\" . 00:00:00:00:00:00-ff:ff:ff:ff:ff:ff . 10.0.1.0/24",
                                        "\"p\" . 00:00:00:00:00:00-ff:ff:ff:ff:ff:ff . 10.0.0.5"])
        #expect(sets["dhcp_server_ok"] == ["\"p\""])
        #expect(sets["restricted_ok"] == ["\"p\""])
        #expect(sets["blocked_ports"] == ["\"p\" . 25", "\"p\" . 6667"])
        // Only a port with blocked ports has its destination ports looked up.
        #expect(sets["blocking"] == ["\"p\""])

        var ipOnly = NicSpec(nicTag: "stub0", ips: ["10.0.0.5/24"])
        ipOnly.allowIPSpoofing = true
        let s2 = Dictionary(uniqueKeysWithValues: Antispoof.elements([PortPolicy(port: "p", mac: mac, spec: ipOnly)]).map { ($0.set, $0.elements) })
        #expect(s2["mac_ok"] == ["\"p\" . 02:00:00:00:00:01"])
        #expect(s2["v4_ok"] == nil && s2["v6_ok"] == nil)
        #expect(s2["v4_range_ok"] == ["\"p\" . 02:00:00:00:00:01 . 0.0.0.0/0"])
        #expect(s2["v6_range_ok"] == ["\"p\" . 02:00:00:00:00:01 . ::/0"])
        #expect(s2["nd_ok"] == ["\"p\" . 02:00:00:00:00:01 . 0x00000000000000000000000000000000-0xffffffffffffffffffffffffffffffff"])
        #expect(s2["dhcp_server_ok"] == nil && s2["restricted_ok"] == nil && s2["blocking"] == nil)
    }

    @Test func rebuildReplacesTheTableInOneTransaction() {
        let p = PortPolicy(port: "lz0000000a0", mac: mac, spec: NicSpec(nicTag: "s", ips: ["10.0.0.5/24"]))
        let script = Antispoof.rebuildScript([p])
        #expect(script.hasPrefix("table bridge lumos {}\ndelete table bridge lumos\ntable bridge lumos {\n"))
        #expect(script.contains("type filter hook prerouting priority -200; policy accept;"))
        #expect(script.contains("iifname . arp saddr ether . arp saddr ip @v4_ok accept"))
        #expect(script.contains("iifname . ether saddr . ip saddr @v4_ok goto tenant_l4"))
        #expect(script.contains("udp sport { 67, 547 } iifname != @dhcp_server_ok drop"))
        #expect(script.contains("udp dport { 68, 546 } iifname != @dhcp_server_ok drop"))
        #expect(script.contains("icmpv6 type { nd-router-advert, nd-redirect, router-renumbering } drop"))
        #expect(script.contains("icmp type redirect drop"))
        #expect(script.contains("iifname @ports jump tenant\n\t\tiifname \"lz*\" drop\n"))
        #expect(script.contains("add element bridge lumos ports { \"lz0000000a0\" }"))
    }

    /// With no tenant port left the table goes: nothing of Lumos stays in the firewall.
    @Test func rebuildWithoutPortsRemovesTheTable() {
        #expect(Antispoof.rebuildScript([]) == "table bridge lumos {}\ndelete table bridge lumos\n")
    }

    @Test func deleteMirrorsAdd() {
        let p = PortPolicy(port: "x", mac: mac, spec: NicSpec(nicTag: "s", ips: ["10.0.0.5/24"]))
        #expect(Antispoof.deleteScript([p]) == Antispoof.addScript([p]).replacingOccurrences(of: "add element", with: "delete element"))
    }
}
