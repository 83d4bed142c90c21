import Foundation
import Glibc
import LumosCore
import Testing
@testable import Net

/// A namespace playing the outside network, behind a veth whose near end (in the lab's host
/// namespace) is the uplink. Nothing here touches the real host's network: both ends live in
/// namespaces the lab made, and the lab's teardown deletes them (and with them the veth).
struct OutsideNetwork {
    let ns: String
    let uplink: String
    /// The uplink's address (what the outside sees as the masqueraded source) and the server's.
    let uplinkAddress = "192.0.2.1"
    let serverAddress = "192.0.2.2"

    init(_ lab: NetLab) throws {
        ns = try lab.tenantNamespace("out")
        uplink = "up\(UInt32.random(in: 0...0xffffff))"
        try lab.host.tools.ipBatch([
            "link add \(uplink) type veth peer name eth0 netns \(ns)",
            "addr add \(uplinkAddress)/24 dev \(uplink)",
            "link set \(uplink) up",
        ])
        try lab.run(ns, ["ip", "addr", "add", "\(serverAddress)/24", "dev", "eth0"], check: true)
        try lab.run(ns, ["ip", "link", "set", "eth0", "up"], check: true)
        try lab.run(ns, ["ip", "link", "set", "lo", "up"], check: true)
    }

    /// An HTTP server in `ns` on `port` that answers each request with the peer's address.
    static func peerEchoServer(_ lab: NetLab, _ ns: String, address: String, port: Int) throws {
        let script = """
        import socket
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("\(address)", \(port))); s.listen(16)
        while True:
            c, a = s.accept(); c.recv(4096); b = a[0] + "\\n"
            c.sendall(("HTTP/1.0 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n%s" % (len(b), b)).encode()); c.close()
        """
        _ = try lab.spawn(ns, ["python3", "-c", script])
        try #require(try lab.waitListening(ns, ports: [port]), "the server in \(ns) did not start")
    }

    /// The body `busybox wget` from `ns` gets from http://ADDRESS:PORT/ ("" when it cannot
    /// connect within 5 s, or is refused). A wget that crashed or did not run fails the test.
    /// (No `wget -T`: this busybox crashes with it.)
    static func fetch(_ lab: NetLab, _ ns: String, _ address: String, _ port: Int) throws -> String {
        let r = try lab.run(ns, ["timeout", "5", "busybox", "wget", "-q", "-O", "-", "http://\(address):\(port)/"])
        try #require(r.status == 0 || r.status == 1 || r.status == 124, "wget in \(ns): status \(r.status) \(r.stderr)")
        return r.stdout.trimmingSpaces()
    }
}

/// Issue 11 item 6: NAT for an etherstub to an uplink, in test namespaces only (the lab's host
/// namespace holds the switch and plays the host; another namespace plays the outside).
@Suite(.serialized, .enabled(if: isRoot, "needs root (network namespaces, nftables)"))
struct EtherstubNATTests {
    func natTable(_ lab: NetLab) throws -> String? {
        let r = try lab.host.tools.nftCommand(["list", "table", "ip", "lumos"], check: false)
        return r.status == 0 ? r.stdout : nil
    }

    func forwarding(_ lab: NetLab, _ link: String) throws -> String? { try lab.host.readSysctl(EtherstubNAT.forwardingKey(link)) }

    @Test func tenantReachesOutsideThroughNATAndOutsideCannotReachTenant() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        let out = try OutsideNetwork(lab)
        let subnet = "10.\(UInt8.random(in: 100...200)).\(UInt8.random(in: 1...250))"
        try lab.host.createEtherstub("stub0", gateway: "\(subnet).1/24")
        let ns = try lab.tenantNamespace("a")
        let tenant = lab.uuid()
        _ = try TenantNetwork(host: lab.host).attach(
            tenant: tenant, nics: [NicSpec(nicTag: "stub0", ips: ["\(subnet).10/24"], gateways: ["\(subnet).1"], primary: true)],
            netns: .named(ns))
        try OutsideNetwork.peerEchoServer(lab, out.ns, address: out.serverAddress, port: 8080)
        #expect(try lab.ping(ns, "\(subnet).1"), "the tenant reaches its gateway")

        // Without NAT the outside is not reachable (the host does not forward for the stub).
        #expect(try forwarding(lab, out.uplink) == "0")
        #expect(try OutsideNetwork.fetch(lab, ns, out.serverAddress, 8080) == "")

        try lab.host.setEtherstub("stub0", gateway: nil, nat: out.uplink)
        #expect(try OutsideNetwork.fetch(lab, ns, out.serverAddress, 8080) == out.uplinkAddress, "the server sees the uplink's address")
        #expect(try forwarding(lab, out.uplink) == "1" && forwarding(lab, "stub0") == "1")
        #expect(try lab.host.readSysctl("net.ipv4.ip_forward") == "0", "the namespace-wide switch is left alone")

        // The outside, even with a route to the stub's subnet via the host, cannot open a
        // connection to the tenant; the host itself (on the stub) can, so the listener is there.
        try OutsideNetwork.peerEchoServer(lab, ns, address: "\(subnet).10", port: 8081)
        try lab.run(out.ns, ["ip", "route", "add", "\(subnet).0/24", "via", out.uplinkAddress], check: true)
        #expect(try OutsideNetwork.fetch(lab, lab.hostNS, "\(subnet).10", 8081) == "\(subnet).1")
        #expect(try OutsideNetwork.fetch(lab, out.ns, "\(subnet).10", 8081) == "")
        #expect(try !lab.ping(out.ns, "\(subnet).10"))
        let table = try #require(try natTable(lab))
        #expect(table.contains("masquerade") && table.contains("\(subnet).0/24"), "\(table)")

        // Re-apply after a reboot: the bridge, the table and forwarding are gone; the next attach
        // plumbs the switch and its NAT from the record.
        try TenantNetwork(host: lab.host).detach(tenant: tenant)
        try lab.host.tools.ipBatch(["link del stub0"])
        try lab.host.tools.nft("delete table ip lumos\n")
        try lab.host.tools.writeSysctls([(EtherstubNAT.forwardingKey(out.uplink), "0")])
        _ = try TenantNetwork(host: lab.host).attach(
            tenant: tenant, nics: [NicSpec(nicTag: "stub0", ips: ["\(subnet).10/24"], gateways: ["\(subnet).1"], primary: true)],
            netns: .named(ns))
        #expect(try OutsideNetwork.fetch(lab, ns, out.serverAddress, 8080) == out.uplinkAddress, "NAT is back after re-plumbing")

        // Removed cleanly with the etherstub: no table, forwarding off again on the uplink.
        try TenantNetwork(host: lab.host).detach(tenant: tenant)
        try lab.host.deleteSwitch("stub0")
        #expect(try natTable(lab) == nil)
        #expect(try forwarding(lab, out.uplink) == "0")
        #expect(lab.host.store.names("nat-uplinks").isEmpty)
    }

    @Test func turningNATOffLeavesAnUplinkThatForwardedAlready() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        let out = try OutsideNetwork(lab)
        try lab.host.tools.writeSysctls([(EtherstubNAT.forwardingKey(out.uplink), "1")])
        try lab.host.createEtherstub("stub0", gateway: "10.66.0.1/24", nat: out.uplink)
        try lab.host.createEtherstub("stub1", gateway: "10.67.0.1/24", nat: out.uplink)
        let table = try #require(try natTable(lab))
        #expect(table.contains("10.66.0.0/24") && table.contains("10.67.0.0/24"))
        let guarded = try lab.host.tools.nftCommand(["list", "set", "ip", "lumos", "guarded_uplinks"]).stdout
        #expect(!guarded.contains("elements"), "Lumos did not turn this uplink on, so it does not fence it: \(guarded)")
        try lab.host.setEtherstub("stub0", gateway: nil, nat: "none")
        #expect(try forwarding(lab, "stub0") == "0")
        #expect(try natTable(lab).map { !$0.contains("10.66.0.0/24") && $0.contains("10.67.0.0/24") } == true)
        try lab.host.deleteSwitch("stub1")
        #expect(try natTable(lab) == nil)
        #expect(try forwarding(lab, out.uplink) == "1", "an uplink that forwarded before keeps forwarding")
    }

    @Test func badInputChangesNothing() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        let out = try OutsideNetwork(lab)
        let dladm = "\(lab.root)/dladm"
        #expect(symlink(NetLab.lumosExecutable, dladm) == 0)
        func cli(_ args: [String]) throws -> Exec.Result {
            try Exec.run(["env", "LUMOS_ROOT=\(lab.root)", "LUMOS_NET_NETNS=\(lab.hostNS)", dladm] + args, check: false)
        }
        #expect(try cli(["create-etherstub", "stub0"]).status == 0)
        let before = try FD.readText("\(lab.root)/net/switches/stub0.json")
        let cases: [([String], String)] = [
            (["set-etherstub", "-p", "nat=nosuch0", "stub0"], "needs a gateway"),
            (["set-etherstub", "-p", "gateway=10.0.0.1/24", "-p", "nat=nosuch0", "stub0"], "nat=nosuch0: no such link"),
            (["set-etherstub", "-p", "gateway=10.0.0.300/24", "stub0"], "not an IPv4 address with prefix"),
            (["set-etherstub", "-p", "gateway=10.0.0.1", "stub0"], "not an IPv4 address with prefix"),
            (["set-etherstub", "-p", "gateway=10.0.0.0/24", "stub0"], "network or broadcast"),
            (["set-etherstub", "-p", "gateway=10.0.0.1/24", "-p", "nat=stub0", "stub0"], "cannot be its own uplink"),
            (["set-etherstub", "-p", "mtu=9000", "stub0"], "unknown property"),
            (["set-etherstub", "-p", "gateway=10.0.0.1/24", "nosuch"], "does not exist"),
            (["create-etherstub", "--gateway", "10.1.0.1/24", "--nat", "nosuch0", "stub1"], "no such link"),
        ]
        for (args, message) in cases {
            let r = try cli(args)
            let lines = r.stderr.split(separator: "\n")
            #expect(r.status != 0 && lines.count == 1 && r.stderr.contains(message), "\(args): \(r.stderr)")
        }
        #expect(try FD.readText("\(lab.root)/net/switches/stub0.json") == before)
        #expect(try lab.host.store.switchConfig("stub1") == nil && lab.host.tools.link("stub1") == nil)
        #expect(try natTable(lab) == nil)
        #expect(try lab.host.tools.addresses()["stub0"]?.isEmpty ?? true)
        #expect(try forwarding(lab, out.uplink) == "0")

        // And the good form, shown: GATEWAY and NAT columns.
        #expect(try cli(["set-etherstub", "-p", "gateway=10.0.0.1/24", "-p", "nat=\(out.uplink)", "stub0"]).status == 0)
        #expect(try cli(["show-etherstub", "-p", "-o", "link,gateway,nat"]).stdout == "stub0:10.0.0.1/24:\(out.uplink)\n")
        let second = try cli(["create-etherstub", "--gateway", "10.0.0.129/25", "stub2"])
        #expect(second.status != 0 && second.stderr.contains("overlaps"), "\(second.stderr)")
        #expect(try cli(["delete-etherstub", "stub0"]).status == 0)
        #expect(try natTable(lab) == nil)
    }
}
