import Foundation
import Glibc
import LumosCore
import Testing
@testable import Zones

/// vmadm(8) conformance through the real `lumos vm` command line on a real host (root): the
/// list, lookup and validate differences of issue 9, and the IPC caps inside a running zone.
@Suite(.serialized, .enabled(if: isRoot, "needs root: pools, namespaces and cgroups"))
struct VmadmCLIConformanceTests {
    @Test func listLookupAndValidateBehaveAsVmadm() throws {
        let h = try RealHost("conf")
        defer { h.close() }
        let uuid = try h.vmadm.create(h.payload()).uuid
        // A zonedid from create on (its uid range slot, kept across boots), booted or not.
        let never = try h.vmadm.create(h.payload(["autoboot": false, "alias": "other"])).uuid
        #expect(try h.vmadm.get(never).lookup("zonedid") != nil)
        try h.vmadm.delete(never)

        // Example 1 of vmadm(8): "-s -ram,..." is the sort option's value, not an option.
        let ex1 = try h.lumos(["vm", "list", "-o", "uuid,type,ram,quota,cpu_shares,zfs_io_priority", "-s", "-ram,cpu_shares", "type=KVM", "ram=128"])
        #expect(ex1.status == 0, "\(ex1.stderr)")
        #expect(ex1.stdout.split(whereSeparator: \.isWhitespace).map(String.init) == ["UUID", "TYPE", "RAM", "QUOTA", "CPU_SHARE", "IO_PRIORITY"])

        let parsable = try h.lumos(["vm", "list", "-p", "-o", "uuid,alias,cpu_cap"])
        #expect(parsable.stdout == "\(uuid):itest:\n")

        let badKey = try h.lumos(["vm", "list", "nosuch=1"])
        #expect(badKey.status == 1 && badKey.stderr.contains("Invalid filter key: \"nosuch\""))
        let badLookup = try h.lumos(["vm", "lookup", "nosuch=1"])
        #expect(badLookup.status == 1 && badLookup.stderr.contains("Invalid lookup key: \"nosuch\""))
        let lookupO = try h.lumos(["vm", "lookup", "-o", "uuid", "alias=itest"])
        #expect(lookupO.status == 1 && lookupO.stderr.contains("cannot specify -o without -j"))
        #expect(try h.lumos(["vm", "lookup", "-j", "-o", "uuid,hvm", "alias=itest"]).stdout.contains("\"hvm\": false"))

        // validate: every problem with --json, exit 1; a usage mistake is exit 2.
        let bad = try h.lumos(["vm", "validate", "create", "--json"], stdin: #"{"brand":"lx","max_physical_memory":"lots","limit_priv":"default"}"#)
        #expect(bad.status == 1)
        let report = try JSONValue.parse(bad.stdout, what: "validate")
        #expect(report.lookup("bad_values") == ["max_physical_memory"])
        #expect(report.lookup("bad_properties") == ["limit_priv"])
        #expect(report.lookup("missing_properties") == ["image_uuid"])
        #expect(bad.stderr.split(separator: "\n").count == 1)
        #expect(try h.lumos(["vm", "validate", "update"], stdin: "{}").status == 2)
        #expect(try h.lumos(["vm", "start"]).status == 2, "a missing argument is invalid usage")
        #expect(try h.lumos(["vm", "get", "7b4ad1a2-3c1e-4a8e-9f00-2f1b8c0d6e11"]).status == 1, "an unknown VM is an error")

        // validate update BRAND checks the form; validate update UUID checks against that VM.
        let ex10 = #"{"update_nics":[{"mac":"b2:1e:ba:a5:6e:71","ips":["10.2.121.72/16"]}]}"#
        let byBrand = try h.lumos(["vm", "validate", "update", "lx"], stdin: ex10)
        #expect(byBrand.status == 0 && byBrand.stderr == "VALID 'update' payload for lx brand VMs.\n")
        let byVM = try h.lumos(["vm", "validate", "update", uuid], stdin: ex10)
        #expect(byVM.status == 1 && byVM.stderr.contains("no NIC with MAC b2:1e:ba:a5:6e:71"))
        #expect(try h.lumos(["vm", "validate", "update", uuid], stdin: #"{"cpu_cap": null, "ram": 512}"#).status == 0)
        // Nothing was changed by any of it.
        #expect(try h.vmadm.store.read(uuid)["max_physical_memory"] == 128)

        // start of a running VM and stop of a stopped one are no-ops that exit 0, as in vmadm.js.
        let again = try h.lumos(["vm", "start", uuid])
        #expect(again.status == 0 && again.stderr.contains("already running"))
        #expect(try h.lumos(["vm", "stop", uuid]).status == 0)
        let stopped = try h.lumos(["vm", "stop", uuid])
        #expect(stopped.status == 0 && stopped.stderr.contains("not running"))
        #expect(try h.lumos(["vm", "start", uuid]).status == 0)

        let get = try JSONValue.parse(try h.lumos(["vm", "get", uuid]).stdout, what: "get")
        #expect(get.lookup("hvm") == false && get.lookup("datasets") == [] && get.lookup("zonedid") != nil)
    }

    /// Example 2 of vmadm(8) as an lx zone: created and running with its limits. (RealHost has
    /// no network, so its NIC is validated and stored but not wired; ProvisionToPingTests and
    /// VmadmRoutesTests wire NICs.)
    @Test func manPageExample2RunsAsAnLxZone() throws {
        let h = try RealHost("ex2")
        defer { h.close() }
        var o = ManPage.example2.objectValue ?? [:]
        o["brand"] = "lx"
        o["image_uuid"] = .string(h.imageUUID)
        let m = try h.vmadm.create(.object(o))
        #expect(h.vmadm.zones.isRunning(m.uuid))
        let vm = try h.vmadm.get(m.uuid)
        #expect(vm.lookup("alias") == "zone70" && vm.lookup("quota") == 20 && vm.lookup("zfs_io_priority") == 30)
        #expect(vm.lookup("nics.0.primary") == true && vm.lookup("nics.0.ips") == ["10.2.121.70/16"])
        #expect(try h.lumos(["login", m.uuid, "true"]).status == 0)
    }

    /// restart_init: an init_name that exits is started again while the zone runs; without it
    /// the zone stops when its init exits.
    @Test func restartInitStartsInitNameAgain() throws {
        let h = try RealHost("restart")
        defer { h.close() }
        let uuid = try h.vmadm.create(h.payload(["autoboot": false, "init_name": "/sbin/flaky", "restart_init": true])).uuid
        let root = try h.vmadm.rootfs(uuid)
        try Files.writeAtomically(root + "/sbin/flaky", "#!/bin/sh\necho run >> /etc/restarts\nsleep 1\nexit 3\n", mode: 0o755)
        func runs() -> Int { ((try? FD.readText(root + "/etc/restarts")) ?? "").split(separator: "\n").count }
        try h.vmadm.start(uuid)
        let deadline = Date().addingTimeInterval(8)
        while runs() < 3 && Date() < deadline { usleep(100_000) }
        #expect(runs() >= 3, "init_name was started \(runs()) times")
        #expect(h.vmadm.zones.isRunning(uuid))
        try h.vmadm.stop(uuid, force: false, timeout: 5)
        #expect(!h.vmadm.zones.isRunning(uuid))

        try h.vmadm.update(uuid, ["restart_init": false])
        try Files.writeAtomically(root + "/etc/restarts", "", mode: 0o644)
        try h.vmadm.start(uuid)
        let gone = Date().addingTimeInterval(8)
        while h.vmadm.zones.isRunning(uuid) && Date() < gone { usleep(100_000) }
        #expect(!h.vmadm.zones.isRunning(uuid), "the zone stops when its init exits")
        #expect(runs() == 1)
    }

    /// add_filesystems/remove_filesystems change the zone's bind mounts at its next boot.
    @Test func filesystemEditsApplyAtTheNextBoot() throws {
        let h = try RealHost("fs")
        defer { h.close() }
        let source = h.dir + "/logs"
        try Files.makeDirectories(source)
        try Files.writeAtomically(source + "/marker", "from the host\n", mode: 0o644)
        let uuid = try h.vmadm.create(h.payload()).uuid
        let missing = try h.lumos(["vm", "update", uuid], stdin: #"{"add_filesystems":[{"type":"lofs","source":"/nonexistent-lumos","target":"/var/log"}]}"#)
        #expect(missing.status == 1 && missing.stderr.contains("does not exist on this host"))
        let add = #"{"add_filesystems":[{"type":"lofs","source":"\#(source)","target":"/var/log","options":["nodevice","ro"]}]}"#
        let r = try h.lumos(["vm", "update", uuid], stdin: add)
        #expect(r.status == 0 && r.stderr.contains("take effect at the next boot"), "\(r.stderr)")
        try h.vmadm.reboot(uuid)
        #expect(try h.lumos(["login", uuid, "cat", "/var/log/marker"]).stdout == "from the host\n")
        #expect(try h.lumos(["login", uuid, "touch", "/var/log/x"]).status != 0, "mounted read-only")
        #expect(try h.lumos(["vm", "update", uuid], stdin: #"{"remove_filesystems":["/var/log"]}"#).status == 0)
        try h.vmadm.reboot(uuid)
        #expect(try h.lumos(["login", uuid, "cat", "/var/log/marker"]).status != 0)
    }

    /// indestructible_zoneroot is a held snapshot: neither vmadm delete nor a destroy of the
    /// dataset removes the zone until the property is set false.
    @Test func indestructibleZonerootHoldsOnAPool() throws {
        let h = try RealHost("indestr")
        defer { h.close() }
        let uuid = try h.vmadm.create(h.payload(["indestructible_zoneroot": true])).uuid
        #expect(try h.lumos(["dataset", "holds", "-H", "zones/\(uuid)@indestructible"]).stdout.contains("vmadm_indestructible_zoneroot"))
        let destroy = try h.lumos(["dataset", "destroy", "-r", "zones/\(uuid)"])
        #expect(destroy.status != 0 && destroy.stderr.contains("has holds"))
        let delete = try h.lumos(["vm", "delete", uuid])
        #expect(delete.status == 1 && delete.stderr.contains("indestructible_zoneroot=false"))
        #expect(h.vmadm.zones.isRunning(uuid), "a refused delete changes nothing")
        #expect(try h.lumos(["vm", "list", "-H", "-o", "indestructible_zoneroot"]).stdout == "true\n")
        #expect(try h.lumos(["vm", "update", uuid, "indestructible_zoneroot=false"]).status == 0)
        #expect(try h.lumos(["vm", "delete", uuid]).status == 0)
        #expect(!h.vmadm.datasets.exists("zones/\(uuid)"))
    }

    @Test func ipcCapsAreTheZonesNamespaceSysctls() throws {
        let h = try RealHost("ipc")
        defer { h.close() }
        let uuid = try h.vmadm.create(h.payload(["max_shm_ids": 123, "max_msg_ids": 77, "max_sem_ids": 55, "max_shm_memory": 64])).uuid
        func inside(_ name: String) throws -> String {
            try h.lumos(["login", uuid, "cat", "/proc/sys/kernel/\(name)"]).stdout.trimmingSpaces()
        }
        #expect(try inside("shmmni") == "123")
        #expect(try inside("msgmni") == "77")
        #expect(try inside("sem").split(whereSeparator: { $0 == " " || $0 == "\t" }).last == "55")
        #expect(try inside("shmmax") == String(64 << 20))
        // The host's own namespace is untouched.
        #expect(try FD.readText("/proc/sys/kernel/shmmni").trimmingSpaces() != "123")
        // Live update.
        #expect(try h.lumos(["vm", "update", uuid, "max_shm_ids=124"]).status == 0)
        #expect(try inside("shmmni") == "124")
    }
}

/// routes become static routes inside the zone, and follow set_routes/remove_routes live.
@Suite(.serialized, .enabled(if: getuid() == 0, "needs root: pools, zones and network namespaces"))
struct VmadmRoutesTests {
    typealias Site = ProvisionToPingTests.Site

    @Test func routesAreSetInTheZoneAndUpdatedLive() throws {
        let site = try Site()
        defer { site.close() }
        let image = try site.lumos(["img", "list", "-H", "-o", "uuid"]).stdout.trimmingSpaces()
        let json = """
        {"brand":"lx","alias":"r","image_uuid":"\(image)","max_physical_memory":64,
         "nics":[{"nic_tag":"stub0","ips":["\(site.subnet).40/24"],"gateways":["\(site.subnet).1"],"primary":true}],
         "routes":{"10.77.0.0/16":"\(site.subnet).1","192.0.2.9":"nics[0]"}}
        """
        let r = try site.lumos(["vm", "create"], input: json)
        let uuid = String(r.stderr.split(separator: " ").last ?? "").trimmingSpaces()
        site.vms.append(uuid)
        func routes() throws -> String { try site.lumos(["login", uuid, "ip", "route", "show"]).stdout }
        var table = try routes()
        #expect(table.contains("10.77.0.0/16 via \(site.subnet).1 dev net0"), "\(table)")
        #expect(table.contains("192.0.2.9 dev net0"), "\(table)")
        #expect(table.contains("default via \(site.subnet).1"), "the NIC's own default route stays")

        try site.lumos(["vm", "update", uuid], input: #"{"set_routes":{"10.88.0.0/16":"\#(site.subnet).1"},"remove_routes":["192.0.2.9"]}"#)
        table = try routes()
        #expect(table.contains("10.88.0.0/16 via \(site.subnet).1"), "\(table)")
        #expect(!table.contains("192.0.2.9"), "\(table)")
        #expect(table.contains("default via \(site.subnet).1"))
    }
}
