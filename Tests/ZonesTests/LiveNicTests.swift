import Glibc
import LumosCore
import Testing

/// `vmadm update` add_nics / remove_nics / update_nics on running zones, end to end through
/// the CLI on an etherstub whose host side lives in a network namespace the test creates
/// (the same site as ProvisionToPingTests).
@Suite(.serialized, .enabled(if: getuid() == 0, "needs root: pools, zones and network namespaces"))
struct LiveNicTests {
    typealias Site = ProvisionToPingTests.Site

    @Test func addedNicAnswersAndRemovedNicIsGoneOnBothSides() throws {
        let site = try Site()
        defer { site.close() }
        let a = try site.create(alias: "a", ip: "\(site.subnet).10")
        let created = try site.nics(a)
        // The MAC vmadm generated is the one the zone's net0 has.
        let mac0 = try #require(created.first?["mac"]?.stringValue)
        #expect(created.first?["interface"] == "net0")
        #expect(try site.lumos(["login", a, "ip", "link", "show", "net0"]).stdout.contains(mac0))

        // A second network: on one subnet, a multi-homed zone would answer from the wrong NIC.
        let net1 = try site.secondSwitch()
        defer { site.deleteSecondSwitch() }
        let add = #"{"add_nics":[{"nic_tag":"stub1","ips":["\#(net1).20/24"]}]}"#
        try site.lumos(["vm", "update", a], input: add)
        let nics = try site.nics(a)
        #expect(nics.count == 2)
        #expect(nics.last?["interface"] == "net1")
        let mac1 = try #require(nics.last?["mac"]?.stringValue)
        let inside = try site.lumos(["login", a, "ip", "addr", "show", "net1"]).stdout
        #expect(inside.contains("\(net1).20/24") && inside.contains(mac1))
        #expect(site.hostLinkExists(a, 1))
        #expect(site.hostPingSoon("\(net1).20"), "the host side reaches the added NIC")

        try site.lumos(["vm", "update", a], input: #"{"remove_nics":["\#(mac1)"]}"#)
        #expect(try site.nics(a).count == 1)
        #expect(try site.lumos(["login", a, "ip", "link", "show", "net1"], check: false).status != 0, "net1 is gone inside")
        #expect(!site.hostLinkExists(a, 1), "its host side is gone")
        #expect(!site.hostPing("\(net1).20"), "the removed address no longer answers")
        #expect(site.hostPingSoon("\(site.subnet).10"), "net0 is untouched")
    }

    @Test func updateNicsMovesTheAddressAndTheOldOneIsDroppedByAntispoofing() throws {
        let site = try Site()
        defer { site.close() }
        let a = try site.create(alias: "a", ip: "\(site.subnet).10")
        let mac = try #require(try site.nics(a).first?["mac"]?.stringValue)
        try site.lumos(["vm", "update", a], input: #"{"update_nics":[{"mac":"\#(mac)","ips":["\#(site.subnet).30/24"]}]}"#)
        #expect(try site.nics(a).first?["ips"] == .array([.string("\(site.subnet).30/24")]))
        #expect(site.hostPingSoon("\(site.subnet).30"), "the new address answers")
        #expect(!site.hostPing("\(site.subnet).10"), "the old address is gone from the zone")
        // Put the old address back inside, as a tenant with the privilege to would: traffic
        // from it is dropped on the host side, while the new one works.
        let pid = try #require(try site.get(a)["pid"]?.intValue)
        try Exec.run(["nsenter", "--net=/proc/\(pid)/ns/net", "ip", "addr", "add", "\(site.subnet).10/24", "dev", "net0"])
        #expect(!site.zonePing(a, "\(site.subnet).1", from: "\(site.subnet).10"), "the old source address is dropped")
        #expect(site.zonePing(a, "\(site.subnet).1", from: "\(site.subnet).30"), "the new one passes")
    }

    @Test func aBadAddNicsPayloadIsOneLineAndChangesNothing() throws {
        let site = try Site()
        defer { site.close() }
        let a = try site.create(alias: "a", ip: "\(site.subnet).10")
        let before = try site.get(a)["nics"]
        let links = try site.hostLinks()
        let bad: [(String, String)] = [
            (#"{"add_nics":[{"nic_tag":"nosuch","ips":["\#(site.subnet).21/24"]}]}"#, "nosuch"),
            (#"{"add_nics":[{"nic_tag":"stub0","ips":["\#(site.subnet).21"]}]}"#, "prefix"),
            (#"{"add_nics":[{"nic_tag":"stub0","ips":["dhcp"]}]}"#, "dhcp"),
            (#"{"add_nics":{"nic_tag":"stub0"}}"#, "add_nics"),
            (#"{"remove_nics":["02:00:00:00:00:99"]}"#, "02:00:00:00:00:99"),
        ]
        for (payload, expected) in bad {
            let r = try site.lumos(["vm", "update", a], input: payload, check: false)
            let message = r.stderr.trimmingSpaces()
            #expect(r.status != 0, "\(payload) accepted")
            #expect(message.contains(expected) && !message.contains("\n"), "\(payload): \(message)")
        }
        #expect(try site.get(a)["nics"] == before)
        #expect(try site.hostLinks() == links)
        #expect(site.hostPingSoon("\(site.subnet).10"))
    }

    @Test func aKilledNicUpdateIsFinishedByTheNextCommand() throws {
        let site = try Site()
        defer { site.close() }
        let a = try site.create(alias: "a", ip: "\(site.subnet).10")
        let net1 = try site.secondSwitch()
        defer { site.deleteSecondSwitch() }
        // Killed after the intent is written, before the network is touched.
        let add = #"{"add_nics":[{"nic_tag":"stub1","ips":["\#(net1).40/24"]}]}"#
        let r1 = try site.lumos(["vm", "update", a], input: add, check: false, crashAt: "update.nics-begun")
        #expect(r1.status == 137)
        #expect(try site.nics(a).count == 2, "the next command rolled the update forward")
        #expect(site.hostPingSoon("\(net1).40"))
        #expect(site.hostLinkExists(a, 1))

        // Killed inside Net, with net1 removed and the new NIC not yet plumbed.
        let mac1 = try #require(try site.nics(a).last?["mac"]?.stringValue)
        let swap = #"{"remove_nics":["\#(mac1)"],"add_nics":[{"nic_tag":"stub1","ips":["\#(net1).50/24"]}]}"#
        let r2 = try site.lumos(["vm", "update", a], input: swap, check: false, crashAt: "net.update.unplumbed")
        #expect(r2.status == 137)
        let after = try site.nics(a)
        #expect(after.count == 2 && after.last?["mac"]?.stringValue != mac1)
        #expect(site.hostPingSoon("\(net1).50"), "the added NIC answers")
        #expect(!site.hostPing("\(net1).40"), "the removed one is gone")
        #expect(site.hostPingSoon("\(site.subnet).10"), "net0 works after being wired afresh")
    }

    @Test func aZoneRunningUdhcpcGetsItsManifestAddressFromTheResponder() throws {
        let site = try Site()
        defer { site.close() }
        let image = try site.lumos(["img", "list", "-H", "-o", "uuid"]).stdout.trimmingSpaces()
        let json = """
        {"brand":"lx","alias":"dhcp","image_uuid":"\(image)","max_physical_memory":64,"autoboot":false,"hostname":"web1",
         "nics":[{"nic_tag":"stub0","ips":["dhcp","\(site.subnet).60/24"],"gateways":["\(site.subnet).1"],"primary":true}]}
        """
        let r = try site.lumos(["vm", "create"], input: json)
        let a = String(r.stderr.split(separator: " ").last ?? "").trimmingSpaces()
        site.vms.append(a)
        // The zone's init (busybox init → rcS → rc.local) asks for a lease and records it.
        let root = try #require(try site.get(a)["zonepath"]?.stringValue) + "/root"
        try Files.writeAtomically(root + "/etc/udhcpc.script",
                                  "#!/bin/sh\n[ \"$1\" = bound ] && echo \"$ip $subnet $router $hostname\" > /var/run/lease\nexit 0\n", mode: 0o755)
        try Files.writeAtomically(root + "/etc/rc.local",
                                  "#!/bin/sh\nudhcpc -i net0 -n -q -f -t 10 -T 1 -s /etc/udhcpc.script >/var/run/udhcpc.log 2>&1 &\n", mode: 0o755)
        try site.lumos(["vm", "start", a])
        var lease: String?
        for _ in 0..<100 where lease == nil {
            lease = (try? FD.readText(root + "/var/run/lease"))?.trimmingSpaces()
            if lease == nil { usleep(100_000) }
        }
        #expect(lease == "\(site.subnet).60 255.255.255.0 \(site.subnet).1 web1", "\((try? FD.readText(root + "/var/run/udhcpc.log")) ?? "")")
        // Lumos set the same address itself (a zone cannot), so it answers.
        #expect(site.hostPingSoon("\(site.subnet).60"))
    }
}

extension ProvisionToPingTests.Site {
    /// `lumos` with LUMOS_TEST_CRASH_AT set, so the command dies at that step as kill -9 would.
    @discardableResult
    func lumos(_ args: [String], input: String? = nil, check: Bool = true, crashAt: String) throws -> Exec.Result {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        let exe = Files.parent(String(decoding: buf[0..<max(0, n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)) + "/lumos"
        return try Exec.run(["env", "LUMOS_ROOT=\(dir)", "LUMOS_NET_NETNS=\(netns)", "LUMOS_TEST_CRASH_AT=\(crashAt)", exe] + args,
                            input: input.map { Array($0.utf8) }, check: check)
    }

    func get(_ uuid: String) throws -> [String: JSONValue] {
        try JSONValue.parse(try lumos(["vm", "get", uuid]).stdout, what: "vm get").objectValue ?? [:]
    }

    func nics(_ uuid: String) throws -> [[String: JSONValue]] {
        (try get(uuid)["nics"]?.arrayValue ?? []).compactMap(\.objectValue)
    }

    /// A second etherstub, stub1, with the host at .1 of the next /24; returns its subnet.
    func secondSwitch() throws -> String {
        let parts = subnet.split(separator: ".")
        let next = "\(parts[0]).\(parts[1]).\((Int(parts[2]) ?? 0) + 1)"
        try lumos(["net", "create-etherstub", "stub1"])
        try lumos(["net", "create-addr", "-a", "\(next).1/24", "stub1"])
        return next
    }

    /// Runs before close (defers run last-in first-out), once the zones are gone.
    func deleteSecondSwitch() {
        for v in vms { _ = try? lumos(["vm", "delete", v], check: false) }
        vms.removeAll()
        _ = try? lumos(["net", "delete-etherstub", "stub1"], check: false)
    }

    /// Links in the switch's namespace (the host side of every NIC).
    func hostLinks() throws -> [String] {
        try Exec.run(["ip", "-n", netns, "-o", "link", "show"]).stdout.split(separator: "\n")
            .compactMap { $0.split(separator: ":").dropFirst().first.map { String($0.split(separator: "@")[0]).trimmingSpaces() } }.sorted()
    }

    /// Whether the host side of the zone's netN exists (`lz` + 8 uuid digits + N).
    func hostLinkExists(_ uuid: String, _ n: Int) -> Bool {
        let name = "lz" + uuid.filter(\.isHexDigit).prefix(8) + "\(n)"
        return (try? Exec.run(["ip", "-n", netns, "link", "show", name], check: false).status) == 0
    }

    /// A ping that may need a few tries (ARP, a port that just came up).
    func hostPingSoon(_ ip: String) -> Bool {
        for _ in 0..<3 where hostPing(ip) { return true }
        return false
    }
}
