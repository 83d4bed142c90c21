import Glibc
import Images
import LumosCore
import Testing
@testable import Zones

/// vmadm on the real pool and zone runtime (root): a busybox tenant through its life.
@Suite(.serialized, .enabled(if: isRoot, "needs root: pools, namespaces and cgroups"))
struct VmadmIntegrationTests {
    @Test func createRunsUpdateSnapshotSendReceiveDelete() throws {
        let h = try RealHost("life")
        defer { h.close() }
        let m = try h.vmadm.create(h.payload())
        let uuid = m.uuid
        #expect(h.vmadm.zones.isRunning(uuid))
        #expect(try h.vmadm.get(uuid).lookup("state") == "running")
        let runtime = (h.vmadm.zones as! RuntimeZones).runtime

        // A live update reaches the kernel.
        try h.vmadm.update(uuid, ["max_physical_memory": 192])
        #expect(runtime.cgroup(uuid).value(controller: "memory", file: "memory.limit_in_bytes")?.trimmingSpaces() == String(192 << 20)
                || runtime.cgroup(uuid).value(controller: "memory", file: "memory.max")?.trimmingSpaces() == String(192 << 20))

        // snapshot → change → rollback restores the files.
        let motd = try h.vmadm.rootfs(uuid) + "/etc/motd"
        try h.vmadm.createSnapshot(uuid, "clean")
        try Files.writeAtomically(motd, "changed\n")
        try h.vmadm.rollbackSnapshot(uuid, "clean")
        #expect(!Files.exists(try h.vmadm.rootfs(uuid) + "/etc/motd"))
        #expect(h.vmadm.zones.isRunning(uuid))

        // send → delete → receive brings it back identical.
        try h.vmadm.stop(uuid, force: true, timeout: 1)
        try Files.writeAtomically(try h.vmadm.rootfs(uuid) + "/etc/motd", "kept\n")
        let stream = h.dir + "/vm.stream"
        let out = open(stream, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        try h.vmadm.send(uuid, to: out)
        Glibc.close(out)
        let before = try h.vmadm.store.read(uuid)
        try h.vmadm.delete(uuid)
        #expect(h.leftovers(uuid).isEmpty)
        let input = open(stream, O_RDONLY | O_CLOEXEC)
        defer { Glibc.close(input) }
        try h.vmadm.receive(from: input)
        let after = try h.vmadm.store.read(uuid)
        #expect(after.properties.filter { $0.key != "last_modified" } == before.properties.filter { $0.key != "last_modified" })
        #expect(try FD.readText(try h.vmadm.rootfs(uuid) + "/etc/motd") == "kept\n")
        try h.vmadm.start(uuid)
        #expect(h.vmadm.zones.isRunning(uuid))

        // The image cannot go while the VM uses it; delete leaves nothing.
        #expect(throws: LumosError.self) { try h.vmadm.images.delete(h.imageUUID, users: h.vmadm.users(ofImage: h.imageUUID)) }
        try h.vmadm.delete(uuid)
        #expect(h.leftovers(uuid).isEmpty)
        try h.vmadm.images.delete(h.imageUUID, users: h.vmadm.users(ofImage: h.imageUUID))
        #expect(!h.vmadm.datasets.exists("zones/\(h.imageUUID)"))
    }

    @Test func badManifestCreatesNothing() throws {
        let h = try RealHost("bad")
        defer { h.close() }
        let r = try h.lumos(["vm", "create"], stdin: #"{"brand":"lx","image_uuid":"\#(h.imageUUID)","max_physical_memory":"lots"}"#)
        #expect(r.status == 1)  // vmadm(8): 1 for an error, 2 only for invalid usage
        #expect(r.stderr == "lumos: max_physical_memory: expected a whole number of MiB, got a string \"lots\"\n")
        #expect(h.vmadm.store.uuids().isEmpty)
        #expect(try h.vmadm.datasets.snapshots(of: "zones/\(h.imageUUID)") == ["final"])
    }

    @Test func cliImgadmListGetCreateDelete() throws {
        let h = try RealHost("img")
        defer { h.close() }
        let list = try h.lumos(["img", "list", "-H", "-o", "uuid,name,type"])
        #expect(list.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) } == [[h.imageUUID, "busybox", "lx-dataset"]])
        let get = try JSONValue.parse(try h.lumos(["img", "get", h.imageUUID]).stdout, what: "get")
        #expect(get.lookup("manifest.uuid")?.stringValue == h.imageUUID)
        #expect(get.lookup("zpool") == "zones")
        let vm = try h.vmadm.create(h.payload(["autoboot": false])).uuid
        try Files.writeAtomically(try h.vmadm.rootfs(vm) + "/etc/motd", "made into an image\n")
        let made = try h.lumos(["img", "create", "-c", "zstd", "-o", h.dir + "/web", "-i", vm, "name=web", "version=1.0"])
        #expect(made.status == 0, "\(made.stderr)")
        #expect(Files.exists(h.dir + "/web.json") && Files.exists(h.dir + "/web.tar.zst"))
        let images = try JSONValue.parse(try h.lumos(["img", "list", "-j"]).stdout, what: "list").arrayValue ?? []
        #expect(images.count == 2)
        let inUse = try h.lumos(["img", "delete", h.imageUUID])
        #expect(inUse.status != 0 && inUse.stderr.contains("is used by VM \(vm)"))
        guard let web = images.compactMap({ $0.lookup("manifest.uuid")?.stringValue }).first(where: { $0 != h.imageUUID }) else {
            Issue.record("new image not listed"); return
        }
        let child = try h.vmadm.create(h.payload(["image_uuid": .string(web), "autoboot": false])).uuid
        #expect(try FD.readText(try h.vmadm.rootfs(child) + "/etc/motd") == "made into an image\n")
        try h.vmadm.delete(child)
        #expect(try h.lumos(["img", "delete", web]).stdout == "Deleted image \(web)\n")
    }

    @Test func cliCreateListGetDelete() throws {
        let h = try RealHost("cli")
        defer { h.close() }
        let uuid = "bbbbbbbb-0000-4000-8000-\(String(format: "%012d", getpid()))"
        let r = try h.lumos(["vm", "create"], stdin: h.payload(["uuid": .string(uuid)]).serialized())
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr == "Successfully created VM \(uuid)\n")
        let list = try h.lumos(["vm", "list", "-H", "-o", "uuid,state,alias"])
        #expect(list.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) } == [[uuid, "running", "itest"]])
        #expect(try h.lumos(["vm", "lookup", "-1", "alias=itest"]).stdout == uuid + "\n")
        let get = try JSONValue.parse(try h.lumos(["vm", "get", uuid]).stdout, what: "get")
        #expect(get.lookup("max_physical_memory") == 128)
        #expect(get.lookup("boot_timestamp")?.stringValue?.hasPrefix("20") == true)
        // kill sends a signal to init (busybox init re-reads inittab on HUP and keeps running);
        // reboot gives the zone a new init.
        let pid = get.lookup("pid")
        #expect(try h.lumos(["vm", "kill", "-s", "HUP", uuid]).status == 0)
        #expect(h.vmadm.zones.isRunning(uuid))
        let reboot = try h.lumos(["vm", "reboot", uuid])
        #expect(reboot.stderr == "Successfully completed reboot for VM \(uuid)\n")
        #expect(h.vmadm.zones.isRunning(uuid))
        #expect(try JSONValue.parse(try h.lumos(["vm", "get", uuid]).stdout, what: "get").lookup("pid") != pid)
        let bad = try h.lumos(["vm", "kill", "-s", "NOPE", uuid])
        #expect(bad.status == 2 && bad.stderr.contains("unknown signal"))
        #expect(try h.lumos(["vm", "delete", uuid]).status == 0)
        #expect(h.leftovers(uuid).isEmpty)
    }
}

/// kill -9 of `lumos vm ...` at each step, then the next command: no half tenant.
@Suite(.serialized, .enabled(if: isRoot, "needs root: pools, namespaces and cgroups"))
struct VmadmCrashTests {
    @Test func killedCreateLeavesNothingAfterNextCommand() throws {
        let h = try RealHost("crash")
        defer { h.close() }
        for (i, step) in ["create.begun", "create.cloned", "create.quota", "create.manifest", "create.started"].enumerated() {
            let uuid = "cccccccc-0000-4000-8000-\(String(format: "%012d", i))"
            let r = try h.lumos(["vm", "create"], stdin: h.payload(["uuid": .string(uuid)]).serialized(), env: ["LUMOS_TEST_CRASH_AT": step])
            #expect(r.status == 137, "\(step): \(r.stderr)")
            #expect(!h.leftovers(uuid).isEmpty, "\(step): the crash left no trace to repair")
            #expect(try h.lumos(["vm", "list"]).status == 0)
            #expect(h.leftovers(uuid) == [], "\(step)")
        }
    }

    @Test func killedDeleteAndUpdateAreFinished() throws {
        let h = try RealHost("crash2")
        defer { h.close() }
        let a = try h.vmadm.create(h.payload()).uuid
        var r = try h.lumos(["vm", "update", a, "max_physical_memory=160"], env: ["LUMOS_TEST_CRASH_AT": "update.manifest"])
        #expect(r.status == 137)
        #expect(try h.lumos(["vm", "list"]).status == 0)
        let runtime = (h.vmadm.zones as! RuntimeZones).runtime
        let limit = runtime.cgroup(a).value(controller: "memory", file: "memory.limit_in_bytes") ?? runtime.cgroup(a).value(controller: "memory", file: "memory.max")
        #expect(limit?.trimmingSpaces() == String(160 << 20))
        for step in ["delete.stopped", "delete.destroyed"] {
            let b = try h.vmadm.create(h.payload()).uuid
            r = try h.lumos(["vm", "delete", b], env: ["LUMOS_TEST_CRASH_AT": step])
            #expect(r.status == 137, "\(step): \(r.stderr)")
            #expect(try h.lumos(["vm", "list"]).status == 0)
            #expect(h.leftovers(b) == [], "\(step)")
        }
    }

    @Test func killedRollbackAndReceiveAreRepaired() throws {
        let h = try RealHost("crash3")
        defer { h.close() }
        let a = try h.vmadm.create(h.payload()).uuid
        let motd = try h.vmadm.rootfs(a) + "/etc/motd"
        try h.vmadm.createSnapshot(a, "clean")
        try Files.writeAtomically(motd, "changed\n")
        let r = try h.lumos(["vm", "rollback-snapshot", a, "clean"], env: ["LUMOS_TEST_CRASH_AT": "rollback.stopped"])
        #expect(r.status == 137, "\(r.stderr)")
        #expect(!h.vmadm.zones.isRunning(a))
        #expect(try h.lumos(["vm", "list"]).status == 0)
        // Rolled forward: the snapshot's files, and running again as before the rollback.
        #expect(!Files.exists(try h.vmadm.rootfs(a) + "/etc/motd"))
        #expect(h.vmadm.zones.isRunning(a))
        #expect(h.vmadm.store.journal.pendingSubjects().isEmpty)

        try h.vmadm.stop(a, force: true, timeout: 1)
        let stream = h.dir + "/a.stream"
        let out = open(stream, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        try h.vmadm.send(a, to: out)
        Glibc.close(out)
        try h.vmadm.delete(a)
        let text = try FD.readFile(stream)
        // The receiver dies mid-stream: our write must fail with EPIPE, not kill the test run.
        signal(SIGPIPE, SIG_IGN)
        let recv = try h.lumos(["vm", "receive"], stdinBytes: text, env: ["LUMOS_TEST_CRASH_AT": "receive.received"])
        #expect(recv.status == 137, "\(recv.stderr)")
        #expect(try h.lumos(["vm", "list"]).status == 0)
        #expect(h.leftovers(a) == [])
    }
}
