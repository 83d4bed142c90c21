import Foundation
import LumosCore
import Testing
@testable import Net

@Suite struct NicSpecTests {
    func decode(_ json: String) throws -> NicSpec {
        try JSONDecoder().decode(NicSpec.self, from: Data(json.utf8))
    }

    func error(_ nics: [NicSpec]) -> String? {
        do { try NicValidation.validate(nics); return nil } catch { return "\(error)" }
    }

    @Test func decodesVmadmProperties() throws {
        let n = try decode("""
        {"interface":"net0","nic_tag":"admin","mac":"12:07:b5:cb:22:7f","ips":["10.0.0.5/24","addrconf"],
         "gateways":["10.0.0.1"],"primary":true,"mtu":9000,"vlan_id":12,"allow_ip_spoofing":"1",
         "allow_mac_spoofing":false,"allowed_ips":["10.0.1.0/24"],"blocked_outgoing_ports":[25],
         "lumos_rx_maxbw_mbps":10,"lumos_tx_maxbw_mbps":2.5}
        """)
        #expect(n.nicTag == "admin" && n.mac == MACAddress("12:07:b5:cb:22:7f") && n.isPrimary && n.mtu == 9000 && n.vlanID == 12)
        #expect(n.allowIPSpoofing == true && n.allowMACSpoofing == false && n.usesAddrconf && !n.usesDHCP)
        #expect(n.addresses.map(\.description) == ["10.0.0.5/24"])
        #expect(n.rxMaxbwMbps == 10 && n.txMaxbwMbps == 2.5)
        let back = try decode(String(decoding: try JSONEncoder().encode(n), as: UTF8.self))
        #expect(back == n)
    }

    @Test func decodesTheOldSingleAddressForm() throws {
        let n = try decode(#"{"nic_tag":"stub0","ip":"10.0.0.201","netmask":"255.255.255.0","gateway":"10.0.0.1"}"#)
        #expect(n.ips == ["10.0.0.201/24"] && n.gateways == ["10.0.0.1"])
    }

    @Test func rejectsBadNicsWithOneLineErrors() {
        #expect(error([NicSpec(nicTag: "", ips: [])])?.hasPrefix("nics[0].nic_tag: missing") == true)
        #expect(error([NicSpec(nicTag: "stub0", ips: ["10.0.0.300/24"])])?.contains("nics[0].ips: 10.0.0.300/24 is not an address") == true)
        #expect(error([NicSpec(nicTag: "stub0", ips: ["10.0.0.5"])])?.contains("not an address with prefix") == true)
        #expect(error([NicSpec(nicTag: "stub0", ips: ["10.0.0.5/24"], gateways: ["10.9.9.1"])])?.contains("outside every subnet") == true)
        #expect(error([NicSpec(nicTag: "stub0", ips: ["dhcp"])])?.contains("dhcp without a static IPv4 address") == true)
        #expect(error([NicSpec(nicTag: "stub0", ips: ["10.0.0.5/24"], mtu: 100)])?.contains("nics[0].mtu: 100 is out of range") == true)
        #expect(error([NicSpec(nicTag: "stub0", ips: ["10.0.0.5/24"], vlanID: 5000)])?.contains("vlan_id: 5000") == true)
        #expect(error([NicSpec(nicTag: "stub0", ips: ["10.0.0.5/24"], blockedOutgoingPorts: [0])])?.contains("blocked_outgoing_ports: 0") == true)
        #expect(error([NicSpec(nicTag: "stub0", ips: ["10.0.0.5/24"], rxMaxbwMbps: 0)])?.contains("lumos_rx_maxbw_mbps") == true)
        #expect(error([NicSpec(nicTag: "stub0", ips: ["10.0.0.5/24"], mac: MACAddress("01:00:5e:00:00:01"))])?.contains("multicast") == true)
        #expect(error([NicSpec(nicTag: "stub0", ips: ["10.0.0.5/24"], primary: true), NicSpec(nicTag: "stub0", ips: ["10.0.1.5/24"], primary: true)])?
            .hasPrefix("nics[1].primary") == true)
        #expect(error([NicSpec(nicTag: "stub0", ips: ["10.0.0.5/24"], interface: "eth0")])?.contains("not netN") == true)
        #expect(error([NicSpec(nicTag: "stub0", ips: ["10.0.0.5/24", "dhcp", "addrconf"], gateways: ["10.0.0.1"], primary: true)]) == nil)
        #expect(error([NicSpec(nicTag: "stub0", ips: ["dhcp"], allowedIPs: ["192.168.0.0/16"])]) == nil)
    }

    @Test func generatedMACsAreLocalUnicastAndUnique() {
        var seen = Set<MACAddress>()
        for _ in 0..<200 {
            let m = MACAddress.generate(avoiding: seen)
            #expect(m.isLocallyAdministered && !m.isMulticast && !seen.contains(m))
            seen.insert(m)
        }
    }

    @Test func linkLocalFollowsModifiedEUI64() {
        #expect(MACAddress("56:42:dd:72:31:3c")!.linkLocalIPv6.description == "fe80::5442:ddff:fe72:313c")
    }

    @Test func addressArithmetic() {
        let n = IPNetwork("10.1.2.77/20")!
        #expect(n.network.description == "10.1.0.0" && n.last.description == "10.1.15.255" && n.netmask.description == "255.255.240.0")
        #expect(n.contains(IPAddress("10.1.9.9")!) && !n.contains(IPAddress("10.1.16.1")!))
        #expect(IPNetwork("2001:db8::1/64")!.last.description == "2001:db8::ffff:ffff:ffff:ffff")
        #expect(IPAddress("010.1.1.1") == nil && IPNetwork("10.0.0.1/33") == nil)
    }

    @Test func linkNamesFitIFNAMSIZ() throws {
        let t = "0f1e2d3c-aaaa-bbbb-cccc-1234567890ab"
        #expect(try TenantNetwork.hostLinkName(tenant: t, interface: "net12") == "lz0f1e2d3c12")
        #expect(TenantNetwork.ifbName(hostLink: "lz0f1e2d3c12") == "lz0f1e2d3ci12")
        #expect(TenantNetwork.isTenantLink("lz0f1e2d3c12") && TenantNetwork.isTenantLink("lz0f1e2d3ci0"))
        #expect(!TenantNetwork.isTenantLink("lzstub0") && !TenantNetwork.isTenantLink("eth0"))
        #expect(throws: LumosError.self) { try TenantNetwork.linkPrefix(tenant: "web; rm -rf /") }
    }

    @Test func bandwidthLines() {
        #expect(Bandwidth.rate(10) == "10mbit" && Bandwidth.rate(2.5) == "2500kbit")
        let lines = Bandwidth.lines(hostLink: "lzx0", ifb: "lzxi0", rxMbps: 10, txMbps: 20)
        #expect(lines == [
            "qdisc replace dev lzx0 root tbf rate 10mbit burst 25000 latency 50ms",
            "qdisc replace dev lzx0 handle ffff: ingress",
            "filter replace dev lzx0 parent ffff: protocol all prio 1 handle 800::800 u32 match u32 0 0 action mirred egress redirect dev lzxi0",
            "qdisc replace dev lzxi0 root tbf rate 20mbit burst 50000 latency 50ms",
        ])
    }
}

@Test func resolvConfListsResolvers() {
    #expect(TenantNetwork.resolvConf(resolvers: ["10.0.0.53", "9.9.9.9"], search: "lab") == "search lab\nnameserver 10.0.0.53\nnameserver 9.9.9.9\n")
    #expect(TenantNetwork.resolvConf(resolvers: ["10.0.0.53"]) == "nameserver 10.0.0.53\n")
}
