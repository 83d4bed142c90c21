import Glibc
import Images
import LumosCore
import Net
import Testing
@testable import Zones

/// The differences from vmadm(8) listed in issue 9, one test (or more) per line. Facts are
/// from src/vm/man/vmadm.8.md, src/vm/node_modules/proptable.js and src/vm/sbin/vmadm.js.
private let image = "0b8a7c2e-1f2d-4c5e-9a6b-7c8d9e0f1a2b"

private func create(_ extra: [String: JSONValue] = [:]) throws -> Manifest {
    var o: [String: JSONValue] = ["brand": "lx", "image_uuid": .string(image)]
    for (k, v) in extra { o[k] = v }
    return try ManifestValidator.validateCreate(.object(o))
}

private func problems(_ extra: [String: JSONValue]) -> ValidationProblems {
    var o: [String: JSONValue] = ["brand": "lx", "image_uuid": .string(image)]
    for (k, v) in extra { o[k] = v }
    return ManifestValidator.checkCreate(.object(o)).1
}

private func updateError(_ m: Manifest, _ payload: JSONValue) -> String? {
    do { _ = try ManifestValidator.validateUpdate(m, payload); return nil } catch { return "\(error)" }
}

@Suite struct VmadmUpdateConformanceTests {
    let vm = try! create(["nics": [["nic_tag": "external", "mac": "b2:1e:ba:a5:6e:70", "ips": ["10.2.121.70/16"]]],
                          "filesystems": [["type": "lofs", "source": "/srv/a", "target": "/data/a"]], "cpu_cap": 100, "alias": "web"])

    @Test func nullClearsAProperty() throws {
        let plan = try ManifestValidator.validateUpdate(vm, ["cpu_cap": .null, "alias": .null])
        #expect(plan.manifest["cpu_cap"] == nil)
        #expect(plan.manifest["alias"] == nil)
        #expect(plan.changed == ["alias", "cpu_cap"])
        #expect(ZoneLimits(plan.manifest).cpuCap == nil)
        // A property the VM cannot be without cannot be cleared.
        #expect(updateError(vm, ["image_uuid": .null])?.contains("image_uuid") == true)
    }

    @Test func ramOnAZoneSetsMaxPhysicalMemory() throws {
        let m = try create(["ram": 512])
        #expect(m["max_physical_memory"] == 512)
        #expect(m["ram"] == nil)
        #expect(m["max_swap"] == 512)
        let plan = try ManifestValidator.validateUpdate(m, ["ram": 1024])
        #expect(plan.manifest["max_physical_memory"] == 1024)
        #expect(plan.changed.contains("max_physical_memory"))
        #expect(problems(["ram": 512, "max_physical_memory": 256]).badValues == ["ram"])
    }

    @Test func filesystemsEditsByTarget() throws {
        var plan = try ManifestValidator.validateUpdate(vm, ["add_filesystems": [["type": "lofs", "source": "/srv/b", "target": "/data/b", "options": ["ro"]]]])
        #expect(plan.manifest.filesystems.map(\.target) == ["/data/a", "/data/b"])
        #expect(plan.nextBoot == ["filesystems"])
        plan = try ManifestValidator.validateUpdate(plan.manifest, ["update_filesystems": [["target": "/data/a", "options": ["ro"]]]])
        #expect(plan.manifest.filesystems.first?.readOnly == true)
        plan = try ManifestValidator.validateUpdate(plan.manifest, ["remove_filesystems": ["/data/b"]])
        #expect(plan.manifest.filesystems.map(\.target) == ["/data/a"])
        #expect(updateError(vm, ["remove_filesystems": ["/nope"]])?.contains("no mount with target /nope") == true)
        #expect(updateError(vm, ["add_filesystems": [["source": "/srv/c", "target": "/data/a"]]])?.contains("already has a mount") == true)
        #expect(updateError(vm, ["filesystems": []])?.contains("use add_filesystems, remove_filesystems, update_filesystems") == true)
    }

    @Test func routesAndTheirEdits() throws {
        let m = try create(["nics": [["nic_tag": "a", "ips": ["10.2.1.5/24"], "mac": "aa:bb:cc:12:34:56"]],
                            "routes": ["10.2.2.0/24": "10.2.1.1", "10.3.0.1": "nics[0]", "10.4.0.1": "macs[aa:bb:cc:12:34:56]"]])
        #expect(m.routes.count == 3)
        let routes = NetAttachment.staticRoutes(m, [])
        #expect(routes.contains(StaticRoute(destination: "10.2.2.0/24", gateway: "10.2.1.1")))
        #expect(routes.contains(StaticRoute(destination: "10.3.0.1", interface: "net0")))
        #expect(routes.contains(StaticRoute(destination: "10.4.0.1", interface: "net0")))
        var plan = try ManifestValidator.validateUpdate(m, ["set_routes": ["10.5.0.0/16": "10.2.1.1"], "remove_routes": ["10.3.0.1"]])
        #expect(plan.manifest.routes.map(\.destination) == ["10.2.2.0/24", "10.4.0.1", "10.5.0.0/16"])
        #expect(plan.live == ["routes"])
        plan = try ManifestValidator.validateUpdate(plan.manifest, ["routes": [:]])
        #expect(plan.manifest.routes.isEmpty)
        #expect(problems(["routes": ["10.3.0.1": "nics[1]"]]).first.message.contains("names a NIC this VM does not have"))
        #expect(problems(["routes": ["default": "10.0.0.1"]]).first.message.contains("routes.default"))
        #expect(problems(["routes": ["10.0.0.0/8": "eth0"]]).badValues == ["routes"])
        #expect(StaticRoute(destination: "10.3.0.1", interface: "net1").ipArguments == "route replace 10.3.0.1 dev net1 scope link proto 77")
    }

    @Test func storedPropertiesAndFlagsShownOnlyWhenTrue() throws {
        let m = try create(["package_name": "g4-highcpu-1G", "package_version": "1.0.0", "do_not_inventory": true])
        #expect(m["package_name"] == "g4-highcpu-1G")
        #expect(m["package_version"] == "1.0.0")
        #expect(m["do_not_inventory"] == true)
        let plan = try ManifestValidator.validateUpdate(m, ["do_not_inventory": false, "package_version": "1.0.1"])
        #expect(plan.manifest["do_not_inventory"] == nil)
        #expect(plan.manifest["package_version"] == "1.0.1")
    }

    @Test func restartInitRunsInitNameUnderLumosInit() throws {
        let h = try ScratchHost()
        let m = try h.vmadm.create(h.payload(["restart_init": true]))
        #expect(h.zones.launches.last?.restartInit == true)
        try h.vmadm.update(m.uuid, ["restart_init": false])
        try h.vmadm.reboot(m.uuid)
        #expect(h.zones.launches.last?.restartInit == false)
    }

    @Test func ipcCapsBecomeNamespaceSysctls() throws {
        let m = try create(["max_physical_memory": 1024, "max_shm_memory": 512, "max_shm_ids": 100, "max_sem_ids": 64, "max_msg_ids": 32])
        let limits = ZoneLimits(m)
        #expect(limits.maxShmMemory == 512 && limits.maxShmIds == 100 && limits.maxSemIds == 64 && limits.maxMsgIds == 32)
        let settings = ZoneIPC.settings(limits, pageSize: 4096)
        #expect(settings.map(\.0) == ["shmmax", "shmall", "shmmni", "sem", "msgmni"])
        #expect(settings.first { $0.0 == "shmall" }?.1 == String((512 << 20) / 4096))
        #expect(settings.first { $0.0 == "sem" }?.1 == "32000 1024000000 500 64")
        #expect(PropertyTable.limitProperties.isSuperset(of: ["max_shm_memory", "max_shm_ids", "max_sem_ids", "max_msg_ids"]))
        #expect(problems(["max_shm_memory": 512]).first.message.contains("above max_physical_memory"))
        #expect(!ZoneLimits(try create()).hasIPCLimits)
    }

    @Test func aNICCopiedFromGetIsAccepted() throws {
        // get shows ip/netmask/gateway beside ips/gateways; payloads made from it validate.
        let m = try create(["nics": [["nic_tag": "a", "ips": ["10.0.0.5/24"], "ip": "10.0.0.5", "netmask": "255.255.255.0",
                                      "gateways": ["10.0.0.1"], "gateway": "10.0.0.1"]]])
        #expect(try NetAttachment.nicSpecs(m).first?.ips == ["10.0.0.5/24"])
    }

    @Test func unsupportedPropertiesSayWhy() {
        for (name, value, why): (String, JSONValue, String) in [
            ("archive_on_delete", true, "vmadm send"),
            ("zfs_snapshot_limit", 10, "btrfs"),
            ("mdata_exec_timeout", 300, "user-script once"),
            ("vcpus", 2, "kvm"),
            ("bootrom", "uefi", "bhyve"),
        ] {
            let p = problems([name: value])
            #expect(p.badProperties == [name], "\(name)")
            #expect(p.first.message.contains(why), "\(name): \(p.first.message)")
        }
    }

    @Test func zonenameMustBeTheUUID() throws {
        let uuid = "7b4ad1a2-3c1e-4a8e-9f00-2f1b8c0d6e11"
        #expect(try create(["zonename": .string(uuid)]).uuid == uuid)
        #expect(try create(["zonename": .string(uuid), "uuid": .string(uuid)]).uuid == uuid)
        #expect(problems(["zonename": .string(uuid), "uuid": "11111111-2222-3333-4444-555555555555"]).badValues == ["zonename"])
        #expect(updateError(vm, ["zonename": .string(uuid)])?.contains("cannot be changed") == true)
    }

    @Test func validateUpdateForABrandChecksFormNotAVM() {
        // vmadm validate update lx: edits are checked for their form only.
        let ok: JSONValue = ["update_nics": [["mac": "b2:1e:ba:a5:6e:71", "ips": ["10.2.121.72/16"]]], "remove_nics": ["b2:1e:ba:a5:6e:71"],
                             "add_filesystems": [["type": "lofs", "source": "/bulk/logs", "target": "/var/log", "options": ["nodevice"]]]]
        #expect(ManifestValidator.checkUpdatePayload(ok, brand: .lx).isEmpty)
        let bad = ManifestValidator.checkUpdatePayload(["remove_nics": ["not-a-mac"], "update_nics": [["ips": ["10.0.0.1/24"]]], "brand": "lx"], brand: .lx)
        #expect(bad.badProperties == ["brand"])
        #expect(Set(bad.badValues) == ["remove_nics", "update_nics"])
    }
}

@Suite struct VmadmValidateReportTests {
    @Test func everyProblemIsReported() {
        let p = ManifestValidator.checkCreate(["max_physical_memory": "lots", "limit_priv": "default", "nosuch": 1, "alias": "a\nb"]).1
        #expect(p.missingProperties == ["brand", "image_uuid"])
        #expect(Set(p.badValues) == ["max_physical_memory", "alias"])
        #expect(Set(p.badProperties) == ["limit_priv", "nosuch"])
        #expect(p.errors.count == 6)
        let json = p.json
        #expect(json.lookup("missing_properties") == ["brand", "image_uuid"])
        #expect(json.lookup("bad_values")?.arrayValue?.count == 2)
        #expect(json.lookup("errors")?.arrayValue?.count == 6)
        // Thrown, it reads as one line: the first problem.
        #expect(!"\(p)".contains("\n") && !"\(p)".isEmpty)
    }

    @Test func aValidPayloadHasNoProblems() {
        let (m, p) = ManifestValidator.checkCreate(["brand": "lx", "image_uuid": .string(image)])
        #expect(p.isEmpty && m != nil)
        #expect(p.json == ["errors": []])
    }
}

@Suite struct VmadmListConformanceTests {
    let vms: [JSONValue] = [
        ["uuid": "aaaa", "type": "LX", "ram": 128, "cpu_shares": 50, "zfs_io_priority": 30, "max_physical_memory": 128,
         "max_locked_memory": 128, "max_lwps": 2000, "dns_domain": "local"],
        ["uuid": "bbbb", "type": "LX", "ram": 256, "cpu_shares": 100],
    ]

    @Test func manPageExampleOneSortsDescending() throws {
        var q = ListQuery()
        q.columns = try ListQuery.fields("uuid,type,ram,quota,cpu_shares,zfs_io_priority", option: "-o")
        q.sort = try ListQuery.fields("-ram,cpu_shares", option: "-s")
        #expect(q.select(vms).map { $0.lookup("uuid")!.plainText } == ["bbbb", "aaaa"])
        q.filters = try ListQuery.filters(["type=KVM", "ram=128"])
        #expect(q.select(vms).isEmpty)
    }

    @Test func vmadmHeaders() throws {
        var q = ListQuery()
        q.columns = ["cpu_shares", "zfs_io_priority", "max_physical_memory", "max_locked_memory", "max_lwps", "dns_domain"]
        let header = q.render(vms, header: true, parsable: false).split(separator: "\n")[0]
        #expect(header.split(separator: " ") == ["CPU_SHARE", "IO_PRIORITY", "MAX_PHYS", "MAX_LOCKED", "MAX_LWP", "DOMAIN"])
    }

    @Test func parsableLeavesMissingFieldsEmpty() {
        var q = ListQuery()
        q.columns = ["uuid", "zfs_io_priority", "alias"]
        #expect(q.render([vms[1]], header: false, parsable: true) == "bbbb::\n")
        #expect(q.render([vms[1]], header: false, parsable: false).hasSuffix("-\n"))
    }

    @Test func unknownFilterKeysAreErrors() {
        #expect(throws: LumosError.self) { try ListQuery.filters(["nosuch=1"]) }
        do { _ = try ListQuery.filters(["nosuch=1"], what: "lookup"); Issue.record("accepted") } catch {
            #expect("\(error)".hasPrefix("Invalid lookup key: \"nosuch\""))
        }
        #expect((try? ListQuery.filters(["nics.*.ip=10.2.121.70", "nics.0.mac=aa:bb:cc:00:00:01", "tags.role=db", "ram=128", "alias=~^[ab]"]))?.count == 5)
        #expect(throws: LumosError.self) { try ListQuery.filters(["nics.*.nosuch=1"]) }
    }

    @Test func listOnlyFieldsAreColumns() throws {
        #expect(try ListQuery.fields("hvm,exit_status,exit_timestamp,free_space,zonedid", option: "-o").count == 5)
        // Fields vmadm shows only in get are not columns; neither is nics.*.ip (which NIC?).
        #expect(throws: LumosError.self) { try ListQuery.fields("customer_metadata", option: "-o") }
        #expect(throws: LumosError.self) { try ListQuery.fields("nics.*.ip", option: "-o") }
        #expect(try ListQuery.fields("nics.0.ip", option: "-o") == ["nics.0.ip"])
    }
}

@Suite struct VmadmHostConformanceTests {
    @Test func getShowsComputedFields() throws {
        let h = try ScratchHost()
        let m = try h.vmadm.create(h.payload(["autoboot": false]))
        let vm = try h.vmadm.get(m.uuid)
        #expect(vm.lookup("hvm") == false)
        #expect(vm.lookup("datasets") == [])
        #expect(vm.lookup("zpool") == "zones")
        #expect(vm.lookup("zonename")?.stringValue == m.uuid)
        #expect(vm.lookup("zfs_filesystem")?.stringValue == "zones/\(m.uuid)")
        if let server = HostIdentity.uuid { #expect(vm.lookup("server_uuid")?.stringValue == server) }
        // Nothing computed is stored.
        let stored = try h.vmadm.store.read(m.uuid)
        #expect(Set(stored.properties.keys).isDisjoint(with: PropertyTable.computedProperties))
    }

    @Test func startAndStopRecordAutoboot() throws {
        let h = try ScratchHost()
        let m = try h.vmadm.create(h.payload(["autoboot": false]))
        try h.vmadm.start(m.uuid)
        #expect(try h.vmadm.store.read(m.uuid).autoboot == true)
        try h.vmadm.stop(m.uuid, force: false, timeout: 1)
        #expect(try h.vmadm.store.read(m.uuid).autoboot == false)
        // reboot leaves it as it is.
        try h.vmadm.start(m.uuid)
        try h.vmadm.reboot(m.uuid)
        #expect(try h.vmadm.store.read(m.uuid).autoboot == true)
    }

    @Test func zpoolMustBeThePoolInUse() throws {
        let h = try ScratchHost()
        #expect(try h.vmadm.create(h.payload(["zpool": "zones", "autoboot": false]))["zpool"] == "zones")
        #expect(throws: LumosError.self) { try h.vmadm.create(h.payload(["zpool": "tank"])) }
        #expect(h.vmadm.store.uuids().count == 1)
    }

    @Test func indestructibleZonerootBlocksDelete() throws {
        let h = try ScratchHost()
        let m = try h.vmadm.create(h.payload(["indestructible_zoneroot": true, "autoboot": false]))
        #expect(try h.datasets.snapshots(of: "zones/\(m.uuid)").contains("indestructible"))
        #expect(try h.datasets.holds("zones/\(m.uuid)@indestructible") == ["vmadm_indestructible_zoneroot"])
        #expect(throws: LumosError.self) { try h.datasets.destroy("zones/\(m.uuid)", recursive: true) }
        #expect(throws: LumosError.self) { try h.vmadm.delete(m.uuid) }
        #expect(h.vmadm.store.exists(m.uuid))
        // get does not list the marker as a vmadm snapshot.
        #expect(try h.vmadm.get(m.uuid).lookup("snapshots") == [])
        try h.vmadm.update(m.uuid, ["indestructible_zoneroot": false])
        #expect(try !h.datasets.snapshots(of: "zones/\(m.uuid)").contains("indestructible"))
        #expect(try h.vmadm.store.read(m.uuid)["indestructible_zoneroot"] == nil)
        try h.vmadm.delete(m.uuid)
        #expect(!h.vmadm.store.exists(m.uuid))
    }

    @Test func maintainResolversRewritesARunningZonesResolvConf() throws {
        let h = try ScratchHost()
        let m = try h.vmadm.create(h.payload(["resolvers": ["192.0.2.53"], "maintain_resolvers": true]))
        let conf = try h.vmadm.rootfs(m.uuid) + "/etc/resolv.conf"
        try h.vmadm.update(m.uuid, ["resolvers": ["192.0.2.54"]])
        #expect(try FD.readText(conf) == "nameserver 192.0.2.54\n")
        try h.vmadm.update(m.uuid, ["maintain_resolvers": false])
        try h.vmadm.update(m.uuid, ["resolvers": ["192.0.2.55"]])
        #expect(try FD.readText(conf) == "nameserver 192.0.2.54\n")
    }

    @Test func ipcCapsAreLiveLimits() throws {
        let h = try ScratchHost()
        let m = try h.vmadm.create(h.payload(["max_shm_ids": 100]))
        #expect(h.zones.limits[m.uuid]?.maxShmIds == 100)
        try h.vmadm.update(m.uuid, ["max_shm_ids": 200])
        #expect(h.zones.limits[m.uuid]?.maxShmIds == 200)
    }
}
