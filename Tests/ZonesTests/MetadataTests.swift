import Glibc
import Images
import LumosCore
import Testing
@testable import Zones

/// The metadata service from inside a real busybox zone (docs/architecture.md, "Metadata"):
/// mdata-get/put/delete/list over the socket vmadm binds in, the sdc: keys, customer_metadata
/// shared between the zone and vmadm get/update, and the user-script run once.
@Suite(.serialized, .enabled(if: isRoot, "needs root: pools, namespaces and cgroups"))
struct MetadataTests {
    @Test func zoneReadsAndWritesItsMetadata() throws {
        let h = try RealHost("mdata")
        defer { h.close() }
        let script = "#!/bin/sh\necho ran >> /root/user-script-runs\nhead -n 1 /proc/self/uid_map > /root/user-script-uid-map\n"
        let m = try h.vmadm.create(h.payload(["customer_metadata": ["greeting": "hello world", "user-script": .string(script)]]))
        let uuid = m.uuid
        // Through a shell: the tools are on the zone's PATH.
        func zone(_ command: String, input: String? = nil) throws -> Exec.Result {
            try h.lumos(["login", uuid, "/bin/sh", "-c", command], stdin: input)
        }

        var r = try zone("mdata-get greeting")
        #expect(r.status == 0 && r.stdout == "hello world\n", "\(r.stderr)")
        r = try zone("mdata-get missing")
        #expect(r.status == 1 && r.stderr == "No metadata for 'missing'\n")
        #expect(try zone("mdata-get sdc:uuid").stdout == "\(uuid)\n")
        #expect(try zone("mdata-get sdc:alias").stdout == "itest\n")
        #expect(try zone("mdata-get sdc:nics").stdout == "[]\n")
        #expect(try zone("mdata-get").status == 3)

        // mdata-put, the value as an argument and from stdin; vmadm get shows both.
        #expect(try zone("mdata-put color blue").status == 0)
        r = try zone("mdata-put shade", input: "green")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try zone("mdata-get shade").stdout == "green\n")
        #expect(Set(try zone("mdata-list").stdout.split(separator: "\n")) == ["greeting", "user-script", "color", "shade"])
        var shown = try h.vmadm.get(uuid).lookup("customer_metadata")?.objectValue ?? [:]
        #expect(shown["color"] == "blue" && shown["shade"] == "green" && shown["greeting"] == "hello world")

        // mdata-delete; the sdc: keys are not the zone's to change.
        #expect(try zone("mdata-delete greeting").status == 0)
        #expect(try zone("mdata-get greeting").status == 1)
        #expect(try h.vmadm.get(uuid).lookup("customer_metadata.greeting") == nil)
        #expect(try zone("mdata-put sdc:uuid forged").status == 2)
        #expect(try zone("mdata-delete sdc:uuid").status == 2)
        #expect(try zone("mdata-get sdc:uuid").stdout == "\(uuid)\n")

        // vmadm update works on what the zone put, and the zone sees the host's change.
        try h.vmadm.update(uuid, ["set_customer_metadata": ["fromhost": "yes"]])
        #expect(try zone("mdata-get fromhost").stdout == "yes\n")
        shown = try h.vmadm.get(uuid).lookup("customer_metadata")?.objectValue ?? [:]
        #expect(shown["color"] == "blue" && shown["fromhost"] == "yes" && shown["greeting"] == nil)

        // The user-script ran at the first boot, inside the zone (its file is the zone's root's).
        let rootfs = try h.vmadm.rootfs(uuid)
        let runs = rootfs + "/root/user-script-runs"
        let deadline = Monotonic.now + 30
        while Monotonic.now < deadline, ((try? FD.readText(runs)) ?? "") != "ran\n" { usleep(20_000) }
        #expect(((try? FD.readText(runs)) ?? "") == "ran\n")
        // In the zone's user namespace: its root is a host uid of the zone's range, not host root.
        let map = ((try? FD.readText(rootfs + "/root/user-script-uid-map")) ?? "").split(separator: " ", omittingEmptySubsequences: true)
        #expect(map.count == 3 && map[0] == "0" && map[1] != "0", "the user-script must run as the zone's root: \(map)")

        // Not at the next boot: the fetch of the script (before start returns) does not happen.
        try h.vmadm.stop(uuid, force: false, timeout: 10)
        #expect(!h.vmadm.zones.isRunning(uuid))
        unlink(rootfs + "/var/svc/mdata-user-script")
        try h.vmadm.start(uuid)
        #expect(!Files.exists(rootfs + "/var/svc/mdata-user-script"))
        #expect(((try? FD.readText(runs)) ?? "") == "ran\n")
        // What the zone put survived the reboot.
        #expect(try zone("mdata-get color").stdout == "blue\n")

        // delete removes the keys and the socket directory.
        try h.vmadm.delete(uuid)
        #expect(!Files.exists(ZoneMetadata(root: h.root, uuid: uuid).directory))
        #expect(!Files.exists(ZoneMetadata.socketDirectory(uuid)))
    }

    @Test func keyFileNamesRoundTrip() {
        for key in ["a", "user-script", "sdc:uuid", "ключ", String(repeating: "x", count: ZoneMetadata.maxKeyBytes)] {
            let name = ZoneMetadata.fileName("c", key)
            #expect(!name.contains("/") && name.utf8.count <= 255)
            #expect(ZoneMetadata.key(fromFile: name) == key)
        }
        #expect(ZoneMetadata.key(fromFile: "s-61") == nil)
        #expect(ZoneMetadata.key(fromFile: "c-6") == nil)
        #expect(ZoneMetadata.key(fromFile: "c-zz") == nil)
        #expect(ZoneMetadata.key(fromFile: "c-0a") == nil)
        #expect(ZoneMetadata.key(fromFile: "c-") == nil)
    }
}
