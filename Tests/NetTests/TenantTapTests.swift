import Foundation
import Glibc
import LumosCore
import Testing
@testable import Net

/// Records of tap tenants (docs/net.md, "Tenant taps"); no kernel needed.
struct TenantTapRecordTests {
    @Test func zoneRecordsHaveNoTapsFieldAndOldRecordsReadAsVeths() throws {
        let zone = TenantRecord(uuid: "0123abcd-0000-4000-8000-000000000000", hostname: nil, resolvers: [], addressesByDHCP: false, nics: [])
        let text = String(decoding: try JSONEncoder().encode(zone), as: UTF8.self)
        #expect(!text.contains("taps"))
        let old = #"{"uuid":"0123abcd-0000-4000-8000-000000000000","resolvers":[],"addresses_by_dhcp":false,"nics":[]}"#
        let read = try JSONDecoder().decode(TenantRecord.self, from: Data(old.utf8))
        #expect(!read.hasTaps)
        var vm = zone
        vm.taps = true
        let back = try JSONDecoder().decode(TenantRecord.self, from: try JSONEncoder().encode(vm))
        #expect(back.hasTaps && back == vm)
    }

    @Test func badTenantIsOneLineAndTouchesNothing() throws {
        let root = "/tmp/lumos-t-tap-\(getpid())-\(UInt32.random(in: 0...0xffffff))"
        defer { _ = try? Exec.run(["rm", "-rf", root], check: false) }
        let net = TenantNetwork(host: NetworkHost(root: StateRoot(root), namespace: .named("lumos-no-such-netns-\(getpid())")))
        let e = #expect(throws: LumosError.self) { try net.attachTaps(tenant: "not-a-uuid", nics: [NicSpec(nicTag: "stub0", ips: ["10.0.0.2/24"])]) }
        #expect(e?.message.contains("not a tenant uuid") == true && e?.message.contains("\n") == false)
        let twoPrimaries = [NicSpec(nicTag: "stub0", ips: ["10.0.0.2/24"], primary: true), NicSpec(nicTag: "stub0", ips: ["10.0.1.2/24"], primary: true)]
        #expect(throws: LumosError.self) { try net.attachTaps(tenant: UUID().uuidString.lowercased(), nics: twoPrimaries) }
        #expect(!Files.exists(root))
    }
}

/// Taps as tenant ports on a real switch, in namespaces the tests create: the guest's side is
/// the tap descriptor itself, through which the tests send and read raw frames as a VM would.
@Suite(.serialized, .enabled(if: isRoot, "needs root (network namespaces, taps, nftables, tc)"))
struct TenantTapTests {
    @Test func tapsAreTenantPortsWithAntispoofingCapsAndDHCP() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        try lab.host.createEtherstub("stub0")
        try lab.host.addHostAddress("stub0", "10.78.0.1/24")
        let net = TenantNetwork(host: lab.host)
        let uuid = lab.uuid()
        let taps = try net.attachTaps(tenant: uuid, nics: [
            NicSpec(nicTag: "stub0", ips: ["10.78.0.20/24"], gateways: ["10.78.0.1"], primary: true, rxMaxbwMbps: 10, txMaxbwMbps: 20),
            NicSpec(nicTag: "stub0", ips: ["10.78.1.30/24"]),
        ], hostname: "vm-tap", resolvers: ["192.0.2.53"])
        defer { taps.forEach { $0.close() } }
        let prefix = try TenantNetwork.linkPrefix(tenant: uuid)
        #expect(taps.map(\.interface) == ["net0", "net1"])
        #expect(taps.map(\.hostLink) == [prefix + "0", prefix + "1"])
        #expect(Set(taps.map(\.mac)).count == 2)
        let record = try #require(try lab.host.store.tenant(uuid))
        #expect(record.hasTaps && record.addressesByDHCP && record.nics.map(\.mac) == taps.map(\.mac))

        for t in taps {
            // A non-persistent tap in the switch's namespace, a port of the switch, not in ours.
            let detail = try lab.host.tools.ip(["-d", "link", "show", "dev", t.hostLink]).stdout
            #expect(detail.contains("tun type tap") && detail.contains("persist off") && detail.contains("master stub0"), "\(detail)")
            #expect(if_nametoindex(t.hostLink) == 0)
            #expect(fcntl(t.descriptor, F_GETFD) & FD_CLOEXEC != 0)
        }
        #expect(Set(try lab.protectedPorts()) == Set(taps.map(\.hostLink)))
        let v4 = try lab.host.tools.nftCommand(["list", "set", "bridge", "lumos", "v4_ok"]).stdout
        #expect(v4.contains("\"\(taps[0].hostLink)\" . \(taps[0].mac) . 10.78.0.20"), "\(v4)")
        // Caps: rx is a tbf on the tap (toward the guest), tx goes through the ifb.
        let qdiscs = try lab.host.tools.run(["tc", "qdisc", "show", "dev", taps[0].hostLink]).stdout
        #expect(qdiscs.contains("tbf") && qdiscs.contains("rate 10Mbit") && qdiscs.contains("ingress"), "\(qdiscs)")
        let ifb = try lab.host.tools.run(["tc", "qdisc", "show", "dev", taps[0].nic.ifbLink]).stdout
        #expect(ifb.contains("tbf") && ifb.contains("rate 20Mbit"), "\(ifb)")
        #expect(try lab.host.tools.run(["tc", "qdisc", "show", "dev", taps[1].hostLink]).stdout.contains("tbf") == false)

        // The switch's responder serves each NIC its manifest address, to its MAC only.
        let leases = try JSONDecoder().decode([DHCPLease].self, from: Data(try FD.readFile(DHCPService.leasePath(lab.host.store, "stub0"))))
        #expect(Set(leases.map { "\($0.mac) \($0.address)" }) == ["\(taps[0].mac) 10.78.0.20/24", "\(taps[1].mac) 10.78.1.30/24"])
        #expect(leases.first { $0.mac == taps[0].mac }?.resolvers == [IPAddress("192.0.2.53")!])
        #expect(DHCPService(host: lab.host).runningPid(switchName: "stub0") != nil)
        let guest = GuestSide(taps[0])
        let offer = try #require(guest.dhcp(.discover), "no DHCP offer through the tap")
        #expect(offer.messageType == .offer && offer.yiaddr == IPAddress("10.78.0.20")! && offer.address(.router) == IPAddress("10.78.0.1")!)

        // Ping from inside the "VM": answered from its own MAC and address, dropped otherwise.
        let bridgeLink = try #require(try lab.host.tools.link("stub0"))
        let bridgeMAC = try #require(MACAddress(bridgeLink.mac))
        for ip in ["10.78.0.20", "10.78.0.99"] {
            try lab.host.tools.ipBatch(["neigh replace \(ip) lladdr \(taps[0].mac) dev stub0 nud permanent"])
        }
        #expect(guest.ping(from: IPAddress("10.78.0.20")!, to: IPAddress("10.78.0.1")!, gateway: bridgeMAC))
        #expect(!guest.ping(from: IPAddress("10.78.0.99")!, to: IPAddress("10.78.0.1")!, gateway: bridgeMAC), "a spoofed IPv4 source passed")
        #expect(!guest.ping(from: IPAddress("10.78.0.20")!, to: IPAddress("10.78.0.1")!, gateway: bridgeMAC, sourceMAC: MACAddress("02:de:ad:be:ef:01")!),
                "a spoofed MAC passed")
        #expect(guest.ping(from: IPAddress("10.78.0.20")!, to: IPAddress("10.78.0.1")!, gateway: bridgeMAC))

        // A tap tenant's NICs cannot be changed in place: one line, nothing changes.
        let refused = #expect(throws: LumosError.self) {
            try net.update(tenant: uuid, netns: .current, add: [NicSpec(nicTag: "stub0", ips: ["10.78.2.2/24"])])
        }
        #expect(refused?.message.contains("taps") == true)
        #expect(try lab.host.store.tenant(uuid) == record)
        #expect(throws: LumosError.self) { try net.attachTaps(tenant: uuid, nics: [NicSpec(nicTag: "stub0", ips: ["10.78.2.2/24"])]) }

        try net.detach(tenant: uuid)
        #expect(try lab.tenantLinks().isEmpty)
        #expect(try lab.host.tools.nftCommand(["list", "table", "bridge", "lumos"], check: false).status != 0)
        #expect(try lab.host.store.tenants().isEmpty)
        #expect(!Files.exists(DHCPService.leasePath(lab.host.store, "stub0")))
        #expect(DHCPService(host: lab.host).runningPid(switchName: "stub0") == nil)
        #expect(throws: LumosError.self) { try net.detach(tenant: uuid) }
    }

    /// A VM that dies closes its descriptors: the taps go by themselves and `repair` removes
    /// the rest (record, ifb, elements, leases, responder).
    @Test func tapsGoWithTheirDescriptorsAndRepairRemovesTheRest() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        try lab.host.createEtherstub("stub0")
        let net = TenantNetwork(host: lab.host)
        let uuid = lab.uuid()
        let taps = try net.attachTaps(tenant: uuid, nics: [NicSpec(nicTag: "stub0", ips: ["10.78.0.20/24"], txMaxbwMbps: 5)])
        #expect(Set(try lab.tenantLinks()) == [taps[0].hostLink, taps[0].nic.ifbLink])
        taps[0].close()
        #expect(try lab.tenantLinks() == [taps[0].nic.ifbLink])
        try lab.host.repair()
        #expect(try lab.tenantLinks().isEmpty)
        #expect(try lab.host.store.tenants().isEmpty)
        #expect(try lab.protectedPorts().isEmpty)
        #expect(!Files.exists(DHCPService.leasePath(lab.host.store, "stub0")))
        #expect(DHCPService(host: lab.host).runningPid(switchName: "stub0") == nil)
    }

    /// Crash recovery of a live VM's NICs: cleanup deletes the taps even while their
    /// descriptors are open, and is idempotent; a failed attach leaves nothing.
    @Test func cleanupRemovesOpenTapsAndFailedAttachLeavesNothing() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        try lab.host.createEtherstub("stub0")
        let net = TenantNetwork(host: lab.host)
        let uuid = lab.uuid()
        let taps = try net.attachTaps(tenant: uuid, nics: [NicSpec(nicTag: "stub0", ips: ["10.78.0.20/24"], rxMaxbwMbps: 5, txMaxbwMbps: 5),
                                                           NicSpec(nicTag: "stub0", ips: ["10.78.1.20/24"])])
        defer { taps.forEach { $0.close() } }
        #expect(try lab.tenantLinks().count == 3)
        try net.cleanup(tenant: uuid)
        #expect(try lab.tenantLinks().isEmpty)
        #expect(try lab.host.store.tenants().isEmpty)
        #expect(try lab.protectedPorts().isEmpty)
        #expect(!Files.exists(DHCPService.leasePath(lab.host.store, "stub0")))
        try net.cleanup(tenant: uuid)

        // Unknown nic tag, a MAC another tenant holds: one line each, nothing created.
        let other = try net.attachTaps(tenant: lab.uuid(), nics: [NicSpec(nicTag: "stub0", ips: ["10.78.0.30/24"])])
        defer { other.forEach { $0.close() } }
        let before = try lab.host.tools.links().map(\.name).sorted()
        let tag = #expect(throws: LumosError.self) { try net.attachTaps(tenant: uuid, nics: [NicSpec(nicTag: "nosuch", ips: ["10.78.0.21/24"])]) }
        #expect(tag?.message.contains("nosuch") == true && tag?.message.contains("\n") == false)
        let mac = #expect(throws: LumosError.self) { try net.attachTaps(tenant: uuid, nics: [NicSpec(nicTag: "stub0", ips: ["10.78.0.21/24"], mac: other[0].mac)]) }
        #expect(mac?.message.contains("already used") == true)
        #expect(try lab.host.tools.links().map(\.name).sorted() == before)
        #expect(try lab.host.store.tenant(uuid) == nil)
        #expect(Set(try lab.protectedPorts()) == [other[0].hostLink])
    }

    /// A failure after the taps exist (here the ifb's name is taken) closes their descriptors
    /// and undoes the rest: no tap, ifb, record, element or lease is left.
    @Test func attachThatFailsMidwayLeavesNothing() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        try lab.host.createEtherstub("stub0")
        let net = TenantNetwork(host: lab.host)
        let uuid = lab.uuid()
        let ifb = TenantNetwork.ifbName(hostLink: try TenantNetwork.hostLinkName(tenant: uuid, interface: "net0"))
        try lab.host.tools.ipBatch(["link add \(ifb) type bridge"])
        #expect(throws: (any Error).self) {
            try net.attachTaps(tenant: uuid, nics: [NicSpec(nicTag: "stub0", ips: ["10.78.0.20/24"], txMaxbwMbps: 5)])
        }
        #expect(try lab.tenantLinks().isEmpty)
        #expect(try lab.host.store.tenants().isEmpty)
        #expect(try lab.protectedPorts().isEmpty)
        #expect(!Files.exists(DHCPService.leasePath(lab.host.store, "stub0")))
        #expect(DHCPService(host: lab.host).runningPid(switchName: "stub0") == nil)
    }
}

/// The guest's end of a tap: raw Ethernet frames behind the virtio-net header (IFF_VNET_HDR,
/// 10 bytes, all zero: no offloads), as QEMU reads and writes them.
struct GuestSide {
    let tap: TenantTap
    init(_ tap: TenantTap) { self.tap = tap }

    static let vnetHeader = [UInt8](repeating: 0, count: 10)

    func send(_ frame: [UInt8]) {
        let bytes = Self.vnetHeader + frame
        _ = bytes.withUnsafeBytes { write(tap.descriptor, $0.baseAddress, $0.count) }
    }

    /// Frames the switch sends to the guest, until `match` returns a value or `seconds` pass.
    func receive<T>(seconds: Double, _ match: ([UInt8]) -> T?) -> T? {
        let end = Monotonic.now + seconds
        var buf = [UInt8](repeating: 0, count: 65_600)
        while Monotonic.now < end {
            var pfd = pollfd(fd: tap.descriptor, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 100) <= 0 { continue }
            let n = buf.withUnsafeMutableBytes { read(tap.descriptor, $0.baseAddress, $0.count) }
            guard n > Self.vnetHeader.count + 14 else { continue }
            if let v = match(Array(buf[Self.vnetHeader.count..<n])) { return v }
        }
        return nil
    }

    static func ethernet(to dst: MACAddress, from src: MACAddress, ipv4 packet: [UInt8]) -> [UInt8] {
        dst.bytes + src.bytes + [0x08, 0x00] + packet
    }

    /// Sends a DHCP message as udhcpc does (from 0.0.0.0, broadcast) and returns the reply.
    func dhcp(_ type: DHCPPacket.MessageType) -> DHCPPacket? {
        var p = DHCPPacket(op: DHCPPacket.bootRequest, xid: UInt32.random(in: 1...UInt32.max), chaddr: tap.mac)
        p.flags = 0x8000
        p.set(.messageType, [type.rawValue])
        let ip = UDPDatagram.ipv4(source: IPAddress(ipv4: 0), destination: IPAddress(ipv4: 0xffff_ffff), sourcePort: 68, destinationPort: 67, payload: p.encode())
        send(Self.ethernet(to: MACAddress(bytes: [UInt8](repeating: 0xff, count: 6)), from: tap.mac, ipv4: ip))
        return receive(seconds: 5) { frame in
            guard frame[12] == 0x08, frame[13] == 0x00, let (_, payload) = UDPDatagram.parseIPv4(Array(frame[14...]), port: 68),
                  let reply = DHCPPacket.decode(payload), reply.xid == p.xid else { return nil }
            return reply
        }
    }

    /// One ICMP echo request; true when the reply comes back through the tap within 1.5 s.
    func ping(from source: IPAddress, to target: IPAddress, gateway: MACAddress, sourceMAC: MACAddress? = nil) -> Bool {
        let id = UInt16.random(in: 1...UInt16.max)
        var icmp: [UInt8] = [8, 0, 0, 0, UInt8(id >> 8), UInt8(id & 0xff), 0, 1] + Array("lumos-tap".utf8)
        let sum = UDPDatagram.checksum(icmp)
        icmp[2] = UInt8(sum >> 8); icmp[3] = UInt8(sum & 0xff)
        let total = 20 + icmp.count
        var ip: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), 0, 0, 0x40, 0, 64, 1, 0, 0] + source.bytes + target.bytes
        let ipSum = UDPDatagram.checksum(ip)
        ip[10] = UInt8(ipSum >> 8); ip[11] = UInt8(ipSum & 0xff)
        send(Self.ethernet(to: gateway, from: sourceMAC ?? tap.mac, ipv4: ip + icmp))
        return receive(seconds: 1.5) { f -> Bool? in
            guard f.count >= 14 + 28, f[12] == 0x08, f[13] == 0x00, f[14 + 9] == 1 else { return nil }
            let ihl = Int(f[14] & 0x0f) * 4
            let i = 14 + ihl
            guard f.count >= i + 8, f[i] == 0, UInt16(f[i + 4]) << 8 | UInt16(f[i + 5]) == id else { return nil }
            return true
        } ?? false
    }
}
