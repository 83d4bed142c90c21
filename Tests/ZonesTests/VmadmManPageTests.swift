import Foundation
import Glibc
import LumosCore
import Net
import Testing
@testable import Zones

/// vmadm(8) (smartos-live src/vm/man/vmadm.8.md) as data: its EXAMPLES (the JSON payloads
/// and command lines, written down as facts) and the names of its PROPERTIES, checked against
/// Lumos. Valid examples validate (and, for lx, create and run); those Linux cannot do fail
/// with the property named.
enum ManPage {
    /// The VM the examples update.
    static let vm = "54f1cc77-68f1-42ab-acac-5c4f64f5d6e0"

    /// Example 1: "Listing KVM VMs with 128M of RAM, sorting by RAM descending and with
    /// customized field order."
    static let example1 = ["list", "-o", "uuid,type,ram,quota,cpu_shares,zfs_io_priority", "-s", "-ram,cpu_shares", "type=KVM", "ram=128"]

    /// Example 2: "Creating an OS VM." (brand joyent).
    static let example2: JSONValue = [
        "brand": "joyent", "zfs_io_priority": 30, "quota": 20, "image_uuid": "47e6af92-daf0-11e0-ac11-473ca1173ab0",
        "max_physical_memory": 256, "alias": "zone70",
        "nics": [["nic_tag": "external", "ips": ["10.2.121.70/16"], "gateways": ["10.2.121.1"], "primary": true]],
    ]

    /// Example 3: "Creating a KVM VM."
    static let example3: JSONValue = [
        "brand": "kvm", "vcpus": 1, "ram": 256,
        "disks": [["boot": true, "model": "virtio", "image_uuid": "e173ecd7-4809-4429-af12-5d11bcc29fd8",
                   "image_name": "ubuntu-10.04.2.7", "image_size": 5120]],
        "nics": [["nic_tag": "external", "model": "virtio", "ips": ["10.88.88.51/24"], "gateways": ["10.88.88.2"], "primary": true]],
    ]

    /// Examples 5 and 6: lookup filters.
    static let example5 = ["nics.*.ip=10.2.121.70"]
    static let example6 = ["ram=128", "alias=~^[ab]"]

    /// Examples 7 to 12: updates of the VM, in order (7 and 8 as property=value and JSON).
    static let example7 = ["quota=40"]
    static let example8: JSONValue = ["cpu_shares": 100]
    static let example9: JSONValue = ["add_nics": [["interface": "net1", "nic_tag": "external", "mac": "b2:1e:ba:a5:6e:71",
                                                    "ips": ["10.2.121.71/16"], "gateways": ["10.2.121.1"]]]]
    static let example10: JSONValue = ["update_nics": [["mac": "b2:1e:ba:a5:6e:71", "ips": ["10.2.121.72/16"]]]]
    static let example11: JSONValue = ["remove_nics": ["b2:1e:ba:a5:6e:71"]]
    static let example12: JSONValue = ["add_filesystems": [["source": "/bulk/logs/54f1cc77-68f1-42ab-acac-5c4f64f5d6e0", "target": "/var/log",
                                                            "type": "lofs", "options": ["nodevice"]]]]

    /// Every property vmadm(8) documents under PROPERTIES (top level; nics.* below).
    static let properties = """
        alias archive_on_delete autoboot billing_id bhyve_extra_opts boot boot_timestamp bootrom brand cpu_cap cpu_shares
        cpu_type create_timestamp server_uuid customer_metadata datasets delegate_dataset disks disk_driver do_not_inventory
        dns_domain filesystems firewall_enabled flexible_disk_size free_space fs_allowed hostname hvm image_uuid
        internal_metadata internal_metadata_namespaces indestructible_delegated indestructible_zoneroot kernel_version
        limit_priv maintain_resolvers max_locked_memory max_lwps max_physical_memory max_swap mdata_exec_timeout nics
        nic_driver nowait owner_uuid package_name package_version pid qemu_opts qemu_extra_opts quota ram resolvers routes
        snapshots spice_opts spice_password spice_port state tmpfs transition_expire transition_to type uuid vcpus vga
        virtio09 virtio1 virtio_txburst virtio_txtimer vnc_password vnc_port zfs_data_compression zfs_data_recsize
        zfs_filesystem_limit zfs_io_priority zfs_root_compression zfs_root_recsize zfs_snapshot_limit zlog_max_size zlog_mode
        zone_state zonepath zonename zonedid zoneid zpool
        """.split(whereSeparator: \.isWhitespace).map(String.init)

    /// Payload properties of proptable.js that the man page does not describe.
    static let proptableOnly = ["max_msg_ids", "max_sem_ids", "max_shm_ids", "max_shm_memory", "restart_init", "zfs_filesystem",
                                "last_modified", "exit_status", "exit_timestamp", "create_only", "dataset_uuid", "transition", "v",
                                "zfs_storage_pool_name", "zone_dataset_uuid", "com1", "com2"]

    /// vmadm(8)'s nics.* properties.
    static let nicProperties = """
        allow_dhcp_spoofing allow_ip_spoofing allow_mac_spoofing allow_restricted_traffic allow_unfiltered_promisc
        blocked_outgoing_ports allowed_ips allowed_dhcp_cids dhcp_server gateway gateways interface ip ips mac model mtu
        netmask network_uuid nic_tag primary vlan_id vrrp_primary_ip vrrp_vrid
        """.split(whereSeparator: \.isWhitespace).map(String.init)
}

@Suite struct VmadmManPageTests {
    func lx(_ payload: JSONValue, image: String = "47e6af92-daf0-11e0-ac11-473ca1173ab0") -> JSONValue {
        var o = payload.objectValue ?? [:]
        o["brand"] = "lx"
        o["image_uuid"] = .string(image)
        return .object(o)
    }

    @Test func example1ParsesAsAListQuery() throws {
        let args = ManPage.example1
        #expect(try ListQuery.fields(args[2], option: "-o").count == 6)
        #expect(try ListQuery.fields(args[4], option: "-s") == ["-ram", "cpu_shares"])
        #expect(try ListQuery.filters(Array(args[5...])).map(\.key) == ["type", "ram"])
    }

    @Test func example2JoyentIsRefusedByBrandAndValidAsLx() throws {
        let p = ManifestValidator.checkCreate(ManPage.example2).1
        #expect(p.badValues == ["brand"])
        #expect(p.first.message.contains("illumos binaries"))
        let m = try ManifestValidator.validateCreate(lx(ManPage.example2))
        #expect(m["zfs_io_priority"] == 30 && m["quota"] == 20 && m.alias == "zone70")
        #expect(ZoneLimits(m).ioWeight == 30)
        #expect(m.nics.first?.objectValue?["primary"] == true)
    }

    @Test func example3IsAValidKvmVMAndItsHardwarePropertiesAreRefusedForLx() throws {
        let m = try ManifestValidator.validateCreate(ManPage.example3)
        #expect(m.isKVM && m.integer("ram") == 256 && m.integer("vcpus") == 1)
        #expect(m.imageUUID == "e173ecd7-4809-4429-af12-5d11bcc29fd8", "image_uuid is the boot disk's")
        #expect(m.disks.first?.size == 5120 && m.disks.first?.model == .virtio)
        #expect(m.integer("max_physical_memory") == 256 + PropertyTable.kvmOverheadMiB)
        // As an lx payload, each hardware VM property is named.
        let asLx = ManifestValidator.checkCreate(lx(ManPage.example3)).1
        #expect(Set(asLx.badProperties) == ["vcpus", "disks"])
    }

    @Test func examples7To12UpdateTheVMInOrder() throws {
        var m = try ManifestValidator.validateCreate(lx(ManPage.example2).merging(["uuid": .string(ManPage.vm)]))
        for payload in [try ManifestValidator.payload(fromAssignments: ManPage.example7), ManPage.example8, ManPage.example9,
                        ManPage.example10, ManPage.example11, ManPage.example12] {
            #expect(ManifestValidator.checkUpdatePayload(payload, brand: .lx).isEmpty, "\(payload)")
            m = try ManifestValidator.validateUpdate(m, payload).manifest
            switch payload {
            case ManPage.example9: #expect(m.nics.count == 2 && m.nics[1].objectValue?["interface"] == "net1")
            case ManPage.example10: #expect(m.nics[1].objectValue?["ips"] == ["10.2.121.72/16"])
            case ManPage.example11: #expect(m.nics.count == 1)
            default: break
            }
        }
        #expect(m["quota"] == 40 && m["cpu_shares"] == 100)
        #expect(m.filesystems.map(\.target) == ["/var/log"])
    }

    @Test func examples4To6And13To16OnAHost() throws {
        let h = try ScratchHost()
        // Example 5's nics.*.ip: a NIC written in vmadm's older single-address form.
        let a = try h.vmadm.create(h.payload(["uuid": .string(ManPage.vm), "alias": "a1", "max_physical_memory": 128,
                                              "nics": [["nic_tag": "external", "ip": "10.2.121.70", "netmask": "255.255.0.0"]]]))
        // ... and one made with ips, as example 2 makes it: get shows ip/netmask beside ips.
        let e2 = try h.vmadm.create(h.payload(["alias": "e2", "max_physical_memory": 512,
                                               "nics": [["nic_tag": "external", "ips": ["10.2.121.80/16"], "gateways": ["10.2.121.1"]]]]))
        let shown = try h.vmadm.get(e2.uuid).lookup("nics.0")
        #expect(shown?.lookup("ip") == "10.2.121.80" && shown?.lookup("netmask") == "255.255.0.0" && shown?.lookup("gateway") == "10.2.121.1")
        #expect(try h.vmadm.store.read(e2.uuid).nics.first?.objectValue?["ip"] == nil, "shown, not stored")
        _ = try h.vmadm.create(h.payload(["alias": "b1", "max_physical_memory": 128]))
        _ = try h.vmadm.create(h.payload(["alias": "c1", "max_physical_memory": 128]))
        _ = try h.vmadm.create(h.payload(["alias": "a2", "max_physical_memory": 256]))
        // Example 4.
        #expect(try h.vmadm.get(ManPage.vm).lookup("uuid")?.stringValue == ManPage.vm)
        func lookup(_ filters: [String]) throws -> [String] {
            var q = ListQuery()
            q.filters = try ListQuery.filters(filters, what: "lookup")
            q.sort = ["uuid"]
            return q.select(try h.vmadm.list()).compactMap { $0.lookup("alias")?.stringValue }.sorted()
        }
        #expect(try lookup(ManPage.example5) == ["a1"])
        #expect(try lookup(["nics.*.ip=10.2.121.80"]) == ["e2"])
        #expect(try lookup(ManPage.example6) == ["a1", "b1"])
        // Examples 13 to 16: stop, start, reboot, delete.
        try h.vmadm.stop(a.uuid, force: false, timeout: 1)
        #expect(!h.zones.isRunning(a.uuid))
        try h.vmadm.start(a.uuid)
        try h.vmadm.reboot(a.uuid)
        #expect(h.zones.isRunning(a.uuid))
        try h.vmadm.delete(a.uuid)
        #expect(!h.vmadm.store.exists(a.uuid))
    }

    @Test func everyManPagePropertyIsSupportedOrRefusedWithAReason() {
        for name in ManPage.properties + ManPage.proptableOnly {
            guard let spec = PropertyTable.spec(name) else { Issue.record("\(name): not in PropertyTable"); continue }
            let supported = spec.unsupportedReason == nil && spec.brands.contains(.lx)
            if supported { continue }
            // Refused: the error says why, not "unknown property".
            let p = ManifestValidator.checkCreate(["brand": "lx", "image_uuid": "47e6af92-daf0-11e0-ac11-473ca1173ab0", name: 1]).1
            #expect(p.badProperties == [name], "\(name)")
            #expect(p.errors.first.map { $0.kind == .unsupported && !$0.message.contains("unknown property") } == true, "\(name): \(p)")
        }
        for name in ManPage.nicProperties {
            if NicSpec.fieldNames.contains(name) { continue }
            #expect(NicChecks.unsupportedFields[name] != nil, "nics.*.\(name) has no reason")
        }
    }
}

private extension JSONValue {
    func merging(_ extra: [String: JSONValue]) -> JSONValue {
        var o = objectValue ?? [:]
        for (k, v) in extra { o[k] = v }
        return .object(o)
    }
}
