import Testing
@testable import Net

@Suite struct LinkInfoTests {
    @Test func parsesIpJsonWithCounters() throws {
        let json = """
        [{"ifindex":3,"ifname":"lz123456780","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"master":"stub0",
          "operstate":"UP","address":"56:42:dd:72:31:3c","linkinfo":{"info_kind":"veth"},
          "stats64":{"rx":{"bytes":90,"packets":1},"tx":{"bytes":1234,"packets":7}}},
         {"ifindex":2,"ifname":"stub0","flags":["UP"],"mtu":1500,"operstate":"UNKNOWN","address":"aa:bb:cc:dd:ee:ff","linkinfo":{"info_kind":"bridge"}}]
        """
        let links = try LinkInfo.parse(json)
        #expect(links.count == 2)
        #expect(links[0] == LinkInfo(name: "lz123456780", index: 3, kind: "veth", mtu: 1500, state: "up", mac: "56:42:dd:72:31:3c",
                                     master: "stub0", rxBytes: 90, rxPackets: 1, txBytes: 1234, txPackets: 7))
        #expect(links[1].state == "up" && links[1].kind == "bridge" && links[1].master == nil)
    }

    @Test func parsesGlobalAddresses() throws {
        let json = """
        [{"ifname":"stub0","addr_info":[{"family":"inet","local":"10.0.0.1","prefixlen":24,"scope":"global"},
                                        {"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link"}]}]
        """
        #expect(try LinkInfo.parseAddresses(json) == ["stub0": ["10.0.0.1/24"]])
    }
}
