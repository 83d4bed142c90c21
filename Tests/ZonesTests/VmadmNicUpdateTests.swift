import Glibc
import LumosCore
import Net
import Testing
@testable import Zones

/// vmadm's side of NIC changes on a running zone, over fakes: what reaches the network, what
/// is stored, and what a failure or a killed update leaves.
@Suite struct VmadmNicUpdateTests {
    static let nic: JSONValue = ["nic_tag": "stub0", "ips": ["10.9.0.5/24"]]

    func macs(_ m: Manifest) -> [String] { m.nics.compactMap { $0.objectValue?["mac"]?.stringValue } }

    @Test func generatedMACsAreLocallyAdministeredAndInterfacesNumbered() throws {
        let m = try ManifestValidator.validateCreate(["brand": "lx", "image_uuid": "00000000-0000-0000-0000-000000000001",
                                                      "nics": [Self.nic, ["nic_tag": "stub0", "ips": ["10.9.1.5/24"]]]])
        let all = macs(m).compactMap(MACAddress.init)
        #expect(all.count == 2 && Set(all).count == 2)
        #expect(all.allSatisfy { $0.isLocallyAdministered && !$0.isMulticast })
        #expect(m.nics.compactMap { $0.objectValue?["interface"]?.stringValue } == ["net0", "net1"])
    }

    @Test func addNicsOnARunningZoneReachesTheNetworkAndIsStored() throws {
        let h = try ScratchHost()
        let m = try h.vmadm.create(h.payload(["nics": [Self.nic]]))
        let plan = try h.vmadm.update(m.uuid, ["add_nics": [["nic_tag": "stub0", "ips": ["10.9.1.5/24"]]]])
        #expect(plan.live == ["nics"])
        let applied = try #require(h.network.applied.last)
        #expect(applied.nics.count == 2)
        let stored = try h.vmadm.store.read(m.uuid)
        #expect(stored.nics.count == 2)
        #expect(stored.nics.last?.objectValue?["interface"] == "net1")
        #expect(h.vmadm.store.journal.pendingSubjects().isEmpty)
    }

    @Test func nicChangesOnAStoppedZoneWaitForBoot() throws {
        let h = try ScratchHost()
        let m = try h.vmadm.create(h.payload(["nics": [Self.nic], "autoboot": false]))
        try h.vmadm.update(m.uuid, ["remove_nics": .array(macs(m).map { .string($0) })])
        #expect(h.network.applied.isEmpty)
        #expect(try h.vmadm.store.read(m.uuid).nics.isEmpty)
    }

    @Test func aFailedApplyPutsTheNICsBackAndStoresNothing() throws {
        let h = try ScratchHost()
        let m = try h.vmadm.create(h.payload(["nics": [Self.nic]]))
        let before = try h.vmadm.store.read(m.uuid)
        h.network.failApply = true
        #expect(throws: LumosError.self) {
            try h.vmadm.update(m.uuid, ["update_nics": [["mac": .string(macs(m)[0]), "ips": ["10.9.0.6/24"]]]])
        }
        #expect(try h.vmadm.store.read(m.uuid) == before)
        // The restore brought the network back to the old manifest.
        #expect(h.network.applied.last?.nics == before.nics)
        #expect(h.vmadm.store.journal.pendingSubjects().isEmpty)
    }

    @Test func aKilledLiveNicUpdateIsWiredAfreshByTheNextCommand() throws {
        let h = try ScratchHost()
        let m = try h.vmadm.create(h.payload(["nics": [Self.nic]]))
        let plan = try ManifestValidator.validateUpdate(m, ["add_nics": [["nic_tag": "stub0", "ips": ["10.9.1.5/24"]]]])
        _ = try h.vmadm.store.journal.begin("update", m.uuid, data: ["manifest": plan.manifest.json.serialized(pretty: false),
                                                                     "previous": m.json.serialized(pretty: false), "nics": "live"])
        _ = try h.vmadm.list()
        #expect(h.network.resets.last?.nics.count == 2)
        #expect(try h.vmadm.store.read(m.uuid).nics.count == 2)
        #expect(h.vmadm.store.journal.pendingSubjects().isEmpty)
    }

    @Test func aKilledNicUpdateThatCannotBeWiredIsUndone() throws {
        let h = try ScratchHost()
        let m = try h.vmadm.create(h.payload(["nics": [Self.nic]]))
        let plan = try ManifestValidator.validateUpdate(m, ["add_nics": [["nic_tag": "stub0", "ips": ["10.9.1.5/24"]]]])
        _ = try h.vmadm.store.journal.begin("update", m.uuid, data: ["manifest": plan.manifest.json.serialized(pretty: false),
                                                                     "previous": m.json.serialized(pretty: false), "nics": "live"])
        h.network.failResetAbove = 1
        _ = try h.vmadm.list()
        #expect(h.network.resets.last?.nics.count == 1, "the zone is back on its old NICs")
        #expect(try h.vmadm.store.read(m.uuid).nics == m.nics)
        #expect(h.vmadm.store.journal.pendingSubjects().isEmpty)
    }

    @Test func whatTheNetworkChoseIsWrittenBack() throws {
        // A manifest written without MACs or interfaces (by hand, or by an older host).
        let m = Manifest(["uuid": "44444444-2222-3333-4444-555555555555",
                          "nics": [["nic_tag": "a", "mac": "02:00:00:00:00:01"], ["nic_tag": "b"], ["nic_tag": "c"]]])
        let out = m.withNicResults([NicResult(mac: "02:00:00:00:00:01", interface: "net0"),
                                    NicResult(mac: "02:00:00:00:00:02", interface: "net1"),
                                    NicResult(mac: "02:00:00:00:00:03", interface: "net2")])
        #expect(macs(out) == ["02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"])
        #expect(out.nics.compactMap { $0.objectValue?["interface"]?.stringValue } == ["net0", "net1", "net2"])
        #expect(out.withNicResults([NicResult(mac: "02:00:00:00:00:01", interface: "net0")]) == out)
    }
}
