import Testing
@testable import Net

@Suite struct DHCPPacketTests {
    let mac = MACAddress("02:11:22:33:44:55")!

    func discover(_ type: DHCPPacket.MessageType = .discover) -> DHCPPacket {
        var p = DHCPPacket(op: DHCPPacket.bootRequest, xid: 0xdeadbeef, chaddr: mac)
        p.flags = 0x8000
        p.set(.messageType, [type.rawValue])
        return p
    }

    var lease: DHCPLease {
        DHCPLease(mac: mac, address: IPNetwork("10.0.0.5/24")!, gateway: IPAddress("10.0.0.1"), resolvers: [IPAddress("9.9.9.9")!],
                  hostname: "web1", serverID: IPAddress("10.0.0.1")!, leaseSeconds: 3600)
    }

    @Test func encodeDecodeRoundTrip() throws {
        let bytes = discover().encode()
        #expect(bytes.count == 300)
        #expect(Array(bytes[236..<240]) == [99, 130, 83, 99])
        let back = try #require(DHCPPacket.decode(bytes))
        #expect(back == discover())
        #expect(back.messageType == .discover && back.broadcastFlag)
    }

    @Test func offerEchoesXidAndChaddrWithManifestAddress() throws {
        let offer = try #require(lease.reply(to: discover()))
        #expect(offer.op == DHCPPacket.bootReply && offer.xid == 0xdeadbeef && offer.chaddr == mac)
        #expect(offer.yiaddr.description == "10.0.0.5")
        #expect(offer.messageType == .offer)
        #expect(offer.address(.serverID)?.description == "10.0.0.1")
        #expect(offer.option(.leaseTime) == [0, 0, 0x0e, 0x10])
        #expect(offer.address(.subnetMask)?.description == "255.255.255.0")
        #expect(offer.address(.router)?.description == "10.0.0.1")
        #expect(offer.option(.dnsServers) == [9, 9, 9, 9])
        #expect(offer.option(.hostname) == Array("web1".utf8))
        let wire = offer.encode()
        // Options start after the cookie with 53 (message type) and end with 255.
        #expect(Array(wire[240..<243]) == [53, 1, 2])
        #expect(wire.contains(255))
        #expect(DHCPPacket.decode(wire) == offer)
    }

    @Test func requestForOwnAddressIsAckedOthersNakedOrIgnored() throws {
        var req = discover(.request)
        req.set(.requestedAddress, IPAddress("10.0.0.5")!)
        req.set(.serverID, IPAddress("10.0.0.1")!)
        #expect(lease.reply(to: req)?.messageType == .ack)
        var wrong = discover(.request)
        wrong.set(.requestedAddress, IPAddress("10.0.0.99")!)
        #expect(lease.reply(to: wrong)?.messageType == .nak)
        var other = discover(.request)
        other.set(.serverID, IPAddress("10.0.0.254")!)
        #expect(lease.reply(to: other) == nil)
        var stranger = discover()
        stranger.chaddr = MACAddress("02:99:99:99:99:99")!
        #expect(lease.reply(to: stranger) == nil)
        #expect(lease.reply(to: discover(.release)) == nil)
    }

    @Test func udpFramingHasValidChecksums() throws {
        let payload = discover().encode()
        let ip = UDPDatagram.ipv4(source: IPAddress("10.0.0.1")!, destination: IPAddress("255.255.255.255")!, sourcePort: 67, destinationPort: 68, payload: payload)
        #expect(ip.count == 28 + payload.count)
        #expect(UDPDatagram.checksum(Array(ip[0..<20])) == 0)
        let udpLen = 8 + payload.count
        let pseudo = Array(ip[12..<20]) + [0, 17, UInt8(udpLen >> 8), UInt8(udpLen & 0xff)]
        #expect(UDPDatagram.checksum(pseudo + Array(ip[20...])) == 0)
        #expect(UDPDatagram.parseIPv4(ip, port: 68)?.payload == payload)
        #expect(UDPDatagram.parseIPv4(ip, port: 67) == nil)
    }

    @Test func serverIDPrefersHostAddressThenGateway() {
        let a = IPNetwork("10.0.0.5/24")!
        #expect(DHCPLease.serverID(for: a, gateway: IPAddress("10.0.0.254"), hostAddresses: [IPNetwork("10.0.0.2/24")!]).description == "10.0.0.2")
        #expect(DHCPLease.serverID(for: a, gateway: IPAddress("10.0.0.254"), hostAddresses: []).description == "10.0.0.254")
        #expect(DHCPLease.serverID(for: a, gateway: nil, hostAddresses: []).description == "10.0.0.1")
        #expect(DHCPLease.serverID(for: IPNetwork("10.0.0.1/24")!, gateway: nil, hostAddresses: []).description == "10.0.0.254")
    }
}
