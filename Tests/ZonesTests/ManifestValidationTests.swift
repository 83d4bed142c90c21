import Foundation
import LumosCore
import Testing
@testable import Zones

/// One create payload that is valid; each test breaks one thing.
private func base(_ extra: [String: JSONValue] = [:]) -> JSONValue {
    var o: [String: JSONValue] = ["brand": "lx", "image_uuid": "0b8a7c2e-1f2d-4c5e-9a6b-7c8d9e0f1a2b", "alias": "web"]
    for (k, v) in extra { o[k] = v }
    return .object(o)
}

private func createError(_ payload: JSONValue) -> String? {
    do { _ = try ManifestValidator.validateCreate(payload); return nil } catch { return "\(error)" }
}

@Suite struct ManifestDefaultsTests {
    @Test func fillsVmadmDefaults() throws {
        let m = try ManifestValidator.validateCreate(base(), newUUID: { "11111111-2222-3333-4444-555555555555" })
        #expect(m.uuid == "11111111-2222-3333-4444-555555555555")
        #expect(m["max_physical_memory"] == 256)
        #expect(m["max_locked_memory"] == 256)
        #expect(m["max_swap"] == 256)
        #expect(m["max_lwps"] == 2000)
        #expect(m["cpu_shares"] == 100)
        #expect(m["zfs_io_priority"] == 100)
        #expect(m["quota"] == 10)
        // 256 MiB: 64 stay for processes, 1 is /dev, /dev/shm 47, /tmp the 144 left.
        #expect(m["tmpfs"] == 144)
        #expect(m["autoboot"] == true)
        #expect(m["cpu_cap"] == nil)
        #expect(m.hostname == m.uuid)
        #expect(m["init_name"] == "/sbin/init")
    }

    @Test func derivedDefaultsFollowMemory() throws {
        let m = try ManifestValidator.validateCreate(base(["max_physical_memory": 1024]))
        #expect(m["max_swap"] == 1024)
        #expect(m["max_locked_memory"] == 1024)
        #expect(m["tmpfs"] == 703)    // 1024 - 256 for processes - 1 (/dev) - 64 (/dev/shm)
        let small = try ManifestValidator.validateCreate(base(["max_physical_memory": 64]))
        #expect(small["max_swap"] == 256)
    }

    @Test func givenUUIDIsKeptLowercase() throws {
        let m = try ManifestValidator.validateCreate(base(["uuid": "AAAAAAAA-2222-3333-4444-555555555555"]))
        #expect(m.uuid == "aaaaaaaa-2222-3333-4444-555555555555")
    }

    @Test func nicsGetMacInterfaceAndPrimary() throws {
        let m = try ManifestValidator.validateCreate(base(["nics": [["nic_tag": "admin", "ips": ["10.0.0.5/24"]], ["nic_tag": "internal", "ips": ["dhcp"]]]]))
        let nics = m.nics.compactMap(\.objectValue)
        #expect(nics.count == 2)
        #expect(nics[0]["primary"] == true)
        #expect(nics[1]["primary"] == nil)
        #expect(nics[0]["interface"] == "net0")
        #expect(nics[1]["interface"] == "net1")
        #expect(nics.allSatisfy { ValueChecks.isUnicastMAC($0["mac"]?.stringValue ?? "") })
    }
}

@Suite struct ManifestValidationTests {
    /// Each kind of mistake, and a piece of text its one-line error must contain.
    static let mistakes: [(String, JSONValue, String)] = [
        ("not an object", .array([]), "must be a JSON object"),
        ("brand missing", .object(["image_uuid": "0b8a7c2e-1f2d-4c5e-9a6b-7c8d9e0f1a2b"]), "brand: is required"),
        ("image missing", .object(["brand": "lx"]), "image_uuid: is required"),
        ("unknown brand", base(["brand": "solaris"]), "unknown brand"),
        ("joyent brand", base(["brand": "joyent"]), "illumos binaries"),
        ("kvm without disks", base(["brand": "kvm"]), "a kvm VM needs at least one disk"),
        ("typo", base(["max_physmem": 512]), "did you mean \"max_physical_memory\""),
        ("wrong type", base(["max_physical_memory": "lots"]), "max_physical_memory: expected a whole number of MiB"),
        ("fraction", base(["max_physical_memory": 1.5]), "expected a whole number"),
        ("too small", base(["max_physical_memory": 1]), "out of range"),
        ("negative", base(["cpu_cap": -5]), "cpu_cap: -5 is out of range"),
        ("bad uuid", base(["image_uuid": "ubuntu"]), "is not a UUID"),
        ("bad hostname", base(["hostname": "web_01"]), "not a valid host name"),
        ("boolean", base(["autoboot": "yes"]), "expected true or false"),
        ("resolver", base(["resolvers": ["8.8.8"]]), "resolvers[0]"),
        ("metadata value", base(["customer_metadata": ["k": 1]]), "customer_metadata.k: values must be strings"),
        ("read-only", base(["state": "running"]), "state: is set by Lumos"),
        ("unsupported", base(["limit_priv": "default"]), "not supported on Linux"),
        ("kernel_version", base(["kernel_version": "3.10"]), "host's Linux kernel"),
        ("update-only key", base(["set_tags": ["a": "b"]]), "only valid in an update"),
        ("swap below ram", base(["max_physical_memory": 1024, "max_swap": 512]), "max_swap: 512 MiB is below"),
        ("locked above ram", base(["max_physical_memory": 512, "max_locked_memory": 1024]), "max_locked_memory"),
        ("tmpfs above ram", base(["tmpfs": 4096]), "tmpfs: 4096 MiB leaves too little of max_physical_memory (256 MiB)"),
        ("tmpfs equal to ram", base(["tmpfs": 256]), "use at most 144"),
        ("init relative", base(["init_name": "sbin/init"]), "not an absolute path"),
        ("alias newline", base(["alias": "a\nb"]), "control characters"),
        ("fs type", base(["filesystems": [["type": "ufs", "source": "/a", "target": "/b"]]]), "only \"lofs\""),
        ("fs relative", base(["filesystems": [["source": "data", "target": "/b"]]]), "absolute host path"),
        ("fs root target", base(["filesystems": [["source": "/data", "target": "/"]]]), "other than \"/\""),
        ("fs dotdot", base(["filesystems": [["source": "/data/../etc", "target": "/b"]]]), "\"..\""),
        ("fs option", base(["filesystems": [["source": "/a", "target": "/b", "options": ["exec"]]]]), "unknown option"),
        ("nic not object", base(["nics": ["eth0"]]), "nics[0]: expected an object"),
        ("nic tag", base(["nics": [["ips": ["dhcp"]]]]), "nic_tag is required"),
        ("nic key typo", base(["nics": [["nic_tag": "admin", "gatway": "10.0.0.1"]]]), "did you mean \"gateway\""),
        ("nic mac", base(["nics": [["nic_tag": "admin", "mac": "01:00:5e:00:00:01"]]]), "not a unicast MAC"),
        ("nic ip no prefix", base(["nics": [["nic_tag": "admin", "ips": ["10.0.0.5"]]]]), "add the prefix length"),
        ("nic mtu", base(["nics": [["nic_tag": "admin", "mtu": 100000]]]), "mtu"),
        ("nic vlan", base(["nics": [["nic_tag": "admin", "vlan_id": 5000]]]), "vlan_id"),
        ("nic spoof flag", base(["nics": [["nic_tag": "admin", "allow_ip_spoofing": "no"]]]), "allow_ip_spoofing: expected true or false"),
        ("nic ports", base(["nics": [["nic_tag": "admin", "blocked_outgoing_ports": [0]]]]), "blocked_outgoing_ports"),
        ("nic bandwidth", base(["nics": [["nic_tag": "admin", "lumos_tx_maxbw_mbps": "fast"]]]), "not a bandwidth"),
        ("nic zero bandwidth", base(["nics": [["nic_tag": "admin", "lumos_rx_maxbw_mbps": 0]]]), "is not a rate in Mbit/s"),
        ("nic tag form", base(["nics": [["nic_tag": "External"]]]), "nics[0].nic_tag: External is not a valid tag"),
        ("nic mtu above vmadm", base(["nics": [["nic_tag": "admin", "mtu": 9001]]]), "(576-9000)"),
        ("nic ignored field", base(["nics": [["nic_tag": "admin", "network_uuid": "0b8a7c2e-1f2d-4c5e-9a6b-7c8d9e0f1a2b"]]]), "no network registry"),
        ("nic unknown field", base(["nics": [["nic_tag": "admin", "colour": "blue"]]]), "unknown NIC property"),
        ("two primaries", base(["nics": [["nic_tag": "a", "primary": true], ["nic_tag": "b", "primary": true]]]), "only one NIC may be primary"),
        ("same mac", base(["nics": [["nic_tag": "a", "mac": "90:b8:d0:00:00:01"], ["nic_tag": "b", "mac": "90:B8:D0:00:00:01"]]]), "is already used by nics[0]"),
        ("same ip", base(["nics": [["nic_tag": "a", "ips": ["10.0.0.5/24"]], ["nic_tag": "b", "ips": ["10.0.0.5/16"]]]]), "is already on nics[0]"),
        ("nic ip not in ips", base(["nics": [["nic_tag": "a", "ip": "10.0.0.6", "ips": ["10.0.0.5/24"]]]]), "ip 10.0.0.6 is not one of ips"),
        ("nic model", base(["nics": [["nic_tag": "a", "model": "virtio"]]]), "kvm VMs"),
    ]

    @Test(arguments: mistakes.indices)
    func eachMistakeHasAClearOneLineError(_ i: Int) {
        let (name, payload, expected) = Self.mistakes[i]
        let error = createError(payload)
        #expect(error != nil, "\(name): accepted")
        #expect(error?.contains(expected) == true, "\(name): \(error ?? "")")
        #expect(error?.contains("\n") == false, "\(name): more than one line")
    }

    @Test func validNICsAreAccepted() throws {
        let nic: JSONValue = ["nic_tag": "admin", "ips": ["10.0.0.5/24", "fd00::5/64"], "gateways": ["10.0.0.1"], "mtu": 1500,
                              "vlan_id": 0, "allow_ip_spoofing": false, "allowed_ips": ["10.0.1.0/24"], "blocked_outgoing_ports": [25],
                              "lumos_tx_maxbw_mbps": 100, "lumos_rx_maxbw_mbps": 2.5, "mac": "90:b8:d0:aa:bb:cc"]
        let m = try ManifestValidator.validateCreate(base(["nics": [nic]]))
        // What vmadm accepts, the Net module decodes (NetAttachment.nicSpecs).
        let specs = try NetAttachment.nicSpecs(m)
        #expect(specs.first?.txMaxbwMbps == 100)
        #expect(specs.first?.rxMaxbwMbps == 2.5)
        #expect(specs.first?.ips == ["10.0.0.5/24", "fd00::5/64"])
    }

    @Test func validFilesystemsAreAccepted() throws {
        let m = try ManifestValidator.validateCreate(base(["filesystems": [["type": "lofs", "source": "/srv/data", "target": "/data", "options": ["ro", "nodevice"]]]]))
        #expect(m.filesystems.first?.readOnly == true)
    }
}

@Suite struct ManifestUpdateTests {
    let current = try! ManifestValidator.validateCreate(base(["max_physical_memory": 512, "tags": ["role": "web"],
                                                              "nics": [["nic_tag": "admin", "mac": "90:b8:d0:00:00:01", "ips": ["dhcp"]]]]))

    @Test func liveAndNextBootChangesAreSorted() throws {
        let plan = try ManifestValidator.validateUpdate(current, ["cpu_cap": 50, "hostname": "web1", "alias": "web"])
        #expect(plan.changed == ["cpu_cap", "hostname"])  // alias unchanged
        #expect(plan.live == ["cpu_cap"])
        #expect(plan.nextBoot == ["hostname"])
    }

    @Test func raisingMemoryRaisesDerivedCaps() throws {
        let plan = try ManifestValidator.validateUpdate(current, ["max_physical_memory": 2048])
        #expect(plan.manifest["max_swap"] == 2048)
        #expect(plan.manifest["max_locked_memory"] == 2048)
        #expect(plan.live.contains("max_swap"))
    }

    @Test func loweringMemoryBelowSwapIsFine() throws {
        let plan = try ManifestValidator.validateUpdate(current, ["max_physical_memory": 128])
        #expect(plan.manifest["max_locked_memory"] == 128)
        #expect(plan.manifest["tmpfs"] == 72)     // the most a 128 MiB zone's /tmp may take
    }

    @Test func mapEdits() throws {
        let plan = try ManifestValidator.validateUpdate(current, ["set_tags": ["tier": "gold"], "remove_tags": ["role"]])
        #expect(plan.manifest["tags"] == ["tier": "gold"])
    }

    @Test func nicEdits() throws {
        var plan = try ManifestValidator.validateUpdate(current, ["add_nics": [["nic_tag": "internal", "ips": ["10.1.0.2/24"]]]])
        #expect(plan.manifest.nics.count == 2)
        #expect(plan.manifest.nics[1].objectValue?["interface"] == "net1")
        plan = try ManifestValidator.validateUpdate(plan.manifest, ["update_nics": [["mac": "90:b8:d0:00:00:01", "mtu": 9000]]])
        #expect(plan.manifest.nics[0].objectValue?["mtu"] == 9000)
        plan = try ManifestValidator.validateUpdate(plan.manifest, ["remove_nics": ["90:b8:d0:00:00:01"]])
        #expect(plan.manifest.nics.count == 1)
    }

    static let badUpdates: [(JSONValue, String)] = [
        (["brand": "lx"], "cannot be changed after create"),
        (["image_uuid": "0b8a7c2e-1f2d-4c5e-9a6b-7c8d9e0f1a2b"], "cannot be changed"),
        (["state": "stopped"], "set by Lumos"),
        (["max_swap": 100], "max_swap"),
        (["remove_nics": ["90:b8:d0:99:99:99"]], "no NIC with MAC"),
        (["nics": []], "use add_nics"),
        (["cpu_shares": 0], "out of range"),
    ]

    @Test(arguments: badUpdates.indices)
    func badUpdatesAreRejected(_ i: Int) {
        let (payload, expected) = Self.badUpdates[i]
        do {
            _ = try ManifestValidator.validateUpdate(current, payload)
            Issue.record("accepted \(payload)")
        } catch {
            #expect("\(error)".contains(expected), "\(error)")
        }
    }

    @Test func assignmentsAreTypedByTheTable() throws {
        let p = try ManifestValidator.payload(fromAssignments: ["max_physical_memory=512", "autoboot=false", "alias=db", "resolvers=8.8.8.8,1.1.1.1"])
        #expect(p == ["max_physical_memory": 512, "autoboot": false, "alias": "db", "resolvers": ["8.8.8.8", "1.1.1.1"]])
        #expect(throws: LumosError.self) { try ManifestValidator.payload(fromAssignments: ["max_physical_memory=lots"]) }
        #expect(throws: LumosError.self) { try ManifestValidator.payload(fromAssignments: ["nosuchprop=1"]) }
    }
}

@Suite struct ManifestListTests {
    let vms: [JSONValue] = [
        ["uuid": "bbbb", "type": "LX", "ram": 512, "state": "running", "alias": "web", "tags": ["role": "web"], "nics": [["ip": "10.0.0.2"]]],
        ["uuid": "aaaa", "type": "LX", "ram": 512, "state": "stopped", "alias": "db", "tags": ["role": "db"]],
        ["uuid": "cccc", "type": "LX", "ram": 128, "state": "running"],
    ]

    @Test func defaultSortIsRamThenUUID() {
        let q = ListQuery()
        #expect(q.select(vms).map { $0.lookup("uuid")!.plainText } == ["cccc", "aaaa", "bbbb"])
    }

    @Test func descendingSort() throws {
        var q = ListQuery()
        q.sort = try ListQuery.fields("-alias", option: "-s")
        #expect(q.select(vms).map { $0.lookup("uuid")!.plainText } == ["bbbb", "aaaa", "cccc"])
    }

    @Test func filters() throws {
        var q = ListQuery()
        q.filters = try ListQuery.filters(["state=running", "alias=~^w"])
        #expect(q.select(vms).count == 1)
        q.filters = try ListQuery.filters(["tags.role=db"])
        #expect(q.select(vms).map { $0.lookup("uuid")!.plainText } == ["aaaa"])
        q.filters = try ListQuery.filters(["nics.*.ip=10.0.0.2"])
        #expect(q.select(vms).count == 1)
        #expect(throws: LumosError.self) { try ListQuery.filters(["alias=~("]) }
        #expect(throws: LumosError.self) { try ListQuery.filters(["alias"]) }
    }

    @Test func renderLikeVmadm() throws {
        let q = ListQuery()
        let text = q.render(q.select(vms), header: true, parsable: false)
        let lines = text.split(separator: "\n")
        // vmadm.js LIST_FIELDS widths: uuid 36, type 4, ram 7, state 16, alias 10; rtrimmed.
        func pad(_ s: String, _ n: Int) -> String { s.padding(toLength: max(n, s.count), withPad: " ", startingAt: 0) }
        #expect(lines[0] == pad("UUID", 36) + "  " + pad("TYPE", 4) + "  " + pad("RAM", 7) + "  " + pad("STATE", 16) + "  ALIAS")
        #expect(lines[1] == pad("cccc", 36) + "  " + pad("LX", 4) + "  " + pad("128", 7) + "  " + pad("running", 16) + "  -")
        #expect(q.render(vms, header: false, parsable: true).split(separator: "\n")[0] == "bbbb:LX:512:running:web")
    }

    @Test func unknownColumnIsRejected() {
        #expect(throws: LumosError.self) { try ListQuery.fields("uuid,aliass", option: "-o") }
    }
}
