import Glibc
import LumosCore
import Testing

/// Issue 11 item 6 with a real zone: an etherstub with `nat=UPLINK` lets the zone reach a
/// server on an outside network that has no route to the zone's subnet (the server sees the
/// uplink's address), and the outside cannot open a connection to the zone. Entirely in test
/// namespaces: the site's switch namespace plays the host, another namespace the outside,
/// joined by a veth made here whose near end is the uplink (gone with the namespaces).
@Suite(.serialized, .enabled(if: isRoot, "needs root (zones, network namespaces, nftables)"))
struct EtherstubNATZoneTests {
    @Test func zoneReachesOutsideThroughNATAndIsNotReachableFromIt() throws {
        let site = try AttackSite()
        defer { site.close() }
        let outside = "\(site.netns)-out"
        let uplink = "up\(UInt32.random(in: 0...0xffffff))"
        var server: pid_t = 0
        defer {
            if server > 0 { kill(server, SIGKILL); _ = Exec.wait(server) }
            _ = try? Exec.run(["ip", "netns", "del", outside], check: false)
        }
        try Exec.run(["ip", "netns", "add", outside])
        try site.inSwitch(["ip", "link", "add", uplink, "type", "veth", "peer", "name", "eth0", "netns", outside])
        try site.inSwitch(["ip", "addr", "add", "192.0.2.1/24", "dev", uplink])
        try site.inSwitch(["ip", "link", "set", uplink, "up"])
        for argv in [["ip", "addr", "add", "192.0.2.2/24", "dev", "eth0"], ["ip", "link", "set", "eth0", "up"], ["ip", "link", "set", "lo", "up"]] {
            try Exec.run(["ip", "netns", "exec", outside] + argv)
        }
        // The server answers each HTTP request with the address it sees the client at.
        let script = """
        import socket
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("192.0.2.2", 8080)); s.listen(16)
        while True:
            c, a = s.accept(); c.recv(4096); b = a[0] + "\\n"
            c.sendall(("HTTP/1.0 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n%s" % (len(b), b)).encode()); c.close()
        """
        server = try Exec.spawn(["ip", "netns", "exec", outside, "python3", "-c", script], stdin: .null, stdout: .null, stderr: .null)
        var listening = false
        for _ in 0..<250 where !listening {
            listening = (try Exec.run(["ip", "netns", "exec", outside, "ss", "-ltnH"]).stdout).contains("192.0.2.2:8080")
            if !listening { usleep(20_000) }
        }
        try #require(listening, "the outside server did not start")

        // The site's etherstub: its host address becomes the gateway.
        try site.lumos(["net", "delete-addr", "-a", "\(site.subnet).1/24", site.stub])
        try site.lumos(["net", "set-etherstub", "-p", "gateway=\(site.subnet).1/24", site.stub])
        let zone = try site.create(alias: "natted", host: 10)
        #expect(site.hostPingSoon(10), "the zone is up on the etherstub")
        func fetch() throws -> String {
            // (No `wget -T`: this busybox crashes with it; a crash fails the test, not passes it.)
            let r = try site.zlogin(zone, ["/bin/busybox", "timeout", "5", "/bin/busybox", "wget", "-q", "-O", "-", "http://192.0.2.2:8080/"])
            try #require(r.status == 0 || r.status == 1 || r.status == 124 || r.status == 143, "wget in the zone: status \(r.status) \(r.stderr)")
            return r.stdout.trimmingSpaces()
        }
        #expect(try fetch() == "", "without NAT the outside is not reachable")

        try site.lumos(["net", "set-etherstub", "-p", "nat=\(uplink)", site.stub])
        #expect(try fetch() == "192.0.2.1", "the server sees the masqueraded source")

        // A server in the zone: the host side of the stub reaches it, the outside does not,
        // even with a route to the zone's subnet through the host.
        try site.zlogin(zone, ["/bin/sh", "-c", "mkdir -p /tmp/www && echo zone > /tmp/www/index.html && /bin/busybox httpd -p 8081 -h /tmp/www"], check: true)
        func get(_ ns: String) throws -> String {
            let r = try Exec.run(["ip", "netns", "exec", ns, "timeout", "5", "busybox", "wget", "-q", "-O", "-", "http://\(site.subnet).10:8081/"], check: false)
            try #require(r.status == 0 || r.status == 1 || r.status == 124, "wget in \(ns): status \(r.status) \(r.stderr)")
            return r.stdout.trimmingSpaces()
        }
        #expect(try get(site.netns) == "zone")
        try Exec.run(["ip", "netns", "exec", outside, "ip", "route", "add", "\(site.subnet).0/24", "via", "192.0.2.1"])
        #expect(try get(outside) == "", "the outside opened a connection to the zone")

        // NAT off again: the zone is cut off from the outside, the table is gone.
        try site.lumos(["net", "set-etherstub", "-p", "nat=none", site.stub])
        #expect(try fetch() == "")
        #expect(try site.inSwitch(["nft", "list", "table", "ip", "lumos"], check: false).status != 0)
    }
}
