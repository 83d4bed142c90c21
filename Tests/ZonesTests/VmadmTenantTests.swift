import Glibc
import Images
import LumosCore
import Testing
@testable import Zones

@Suite struct VmadmTenantTests {
    @Test func createClonesWritesManifestAndBoots() throws {
        let h = try ScratchHost()
        let m = try h.vmadm.create(h.payload(["resolvers": ["192.0.2.53"]]))
        #expect(h.datasets.exists("zones/\(m.uuid)"))
        let stored = try Manifest.decode(try FD.readFile(h.root.sub("zones", m.uuid, "manifest.json")), what: "m")
        #expect(stored.alias == "t1")
        #expect(stored["create_timestamp"] != nil)
        #expect(stored["state"] == nil)
        #expect(h.zones.isRunning(m.uuid))
        #expect(h.network.attached[m.uuid] != nil)
        let rootfs = try h.vmadm.rootfs(m.uuid)
        #expect(try FD.readText(rootfs + "/etc/motd") == "image\n")
        #expect(try FD.readText(rootfs + "/etc/resolv.conf") == "nameserver 192.0.2.53\n")
        #expect(h.zones.launches.first?.limits.maxPhysicalMemory == 256)
        #expect(h.zones.launches.first?.initCommand == ["/sbin/init"])
        let vm = try h.vmadm.get(m.uuid)
        #expect(vm.lookup("state") == "running")
        #expect(vm.lookup("type") == "LX")
        #expect(vm.lookup("ram") == 256)
    }

    @Test func processStartIsNowish() throws {
        let started = try #require(ProcessStart.date(getpid()))
        #expect(started.timeIntervalSinceNow < 1 && started.timeIntervalSinceNow > -86_400)
    }

    @Test func autobootFalseLeavesItStopped() throws {
        let h = try ScratchHost()
        let m = try h.vmadm.create(h.payload(["autoboot": false]))
        #expect(!h.zones.isRunning(m.uuid))
        #expect(try h.vmadm.get(m.uuid).lookup("state") == "stopped")
        try h.vmadm.start(m.uuid)
        #expect(h.zones.isRunning(m.uuid))
        #expect(throws: LumosError.self) { try h.vmadm.start(m.uuid) }
        try h.vmadm.stop(m.uuid, force: false, timeout: 1)
        #expect(!h.zones.isRunning(m.uuid))
        // start clears what a zone that ended by itself left, stop removes the NICs.
        #expect(h.network.detached == [m.uuid, m.uuid])
    }

    @Test func missingImageOrSourceCreatesNothing() throws {
        let h = try ScratchHost()
        #expect(throws: LumosError.self) { try h.vmadm.create(h.payload(["image_uuid": "0b8a7c2e-1f2d-4c5e-9a6b-7c8d9e0f1a2b"])) }
        #expect(throws: LumosError.self) {
            try h.vmadm.create(h.payload(["filesystems": [["source": .string("/nonexistent-\(getpid())"), "target": "/data"]]]))
        }
        #expect(h.vmadm.store.uuids().isEmpty)
        #expect(try h.datasets.snapshots(of: "zones/\(h.imageUUID)") == ["final"])
        #expect(Files.list(h.dir + "/pool").filter { $0 != h.imageUUID && $0 != ".snapshots" }.isEmpty)
    }

    @Test func failedBootUndoesEverything() throws {
        let h = try ScratchHost()
        h.zones.failStart = true
        let uuid = "11111111-2222-3333-4444-555555555555"
        #expect(throws: LumosError.self) { try h.vmadm.create(h.payload(["uuid": .string(uuid)])) }
        #expect(!h.datasets.exists("zones/\(uuid)"))
        #expect(!h.vmadm.store.exists(uuid))
        #expect(h.vmadm.store.journal.pendingSubjects().isEmpty)
        #expect(h.zones.released.contains(uuid))
    }

    @Test func uuidSharingAnotherVMsLinkPrefixIsRefused() throws {
        let h = try ScratchHost()
        let first = "abcdef01-2222-4333-8444-555555555555", second = "abcdef01-9999-4888-8777-666666666666"
        try h.vmadm.create(h.payload(["uuid": .string(first), "autoboot": false]))
        do {
            try h.vmadm.create(h.payload(["uuid": .string(second)]))
            Issue.record("a VM whose uuid shares lzabcdef01 with another VM was created")
        } catch let e as LumosError {
            #expect(e.message.contains(first) && e.message.contains(second) && !e.message.contains("\n"))
        }
        #expect(!h.vmadm.store.exists(second) && !h.datasets.exists("zones/\(second)"))
        try h.vmadm.create(h.payload(["uuid": "abcdef02-2222-4333-8444-555555555555"]))
    }

    @Test func duplicateUUIDIsRefused() throws {
        let h = try ScratchHost()
        let m = try h.vmadm.create(h.payload())
        #expect(throws: LumosError.self) { try h.vmadm.create(h.payload(["uuid": .string(m.uuid)])) }
    }

    @Test func deleteRemovesAllAndImageCanGo() throws {
        let h = try ScratchHost()
        let m = try h.vmadm.create(h.payload())
        #expect(h.vmadm.users(ofImage: h.imageUUID) == [m.uuid])
        #expect(throws: LumosError.self) { try h.vmadm.images.delete(h.imageUUID, users: h.vmadm.users(ofImage: h.imageUUID)) }
        try h.vmadm.delete(m.uuid)
        #expect(!h.datasets.exists("zones/\(m.uuid)"))
        #expect(!Files.exists(h.root.sub("zones", m.uuid)))
        #expect(h.zones.cleaned.contains(m.uuid))
        try h.vmadm.images.delete(h.imageUUID, users: h.vmadm.users(ofImage: h.imageUUID))
        #expect(throws: LumosError.self) { try h.vmadm.delete(m.uuid) }
    }

    @Test func liveUpdateReachesTheRunningZone() throws {
        let h = try ScratchHost()
        let m = try h.vmadm.create(h.payload())
        let plan = try h.vmadm.update(m.uuid, ["max_physical_memory": 512, "cpu_cap": 50, "hostname": "web2"])
        #expect(plan.nextBoot == ["hostname"])
        #expect(h.zones.limits[m.uuid]?.maxPhysicalMemory == 512)
        #expect(h.zones.limits[m.uuid]?.maxSwap == 512)
        #expect(h.zones.limits[m.uuid]?.cpuCap == 50)
        #expect(try h.vmadm.store.read(m.uuid).hostname == "web2")
        #expect(throws: LumosError.self) { try h.vmadm.update(m.uuid, ["image_uuid": .string(h.imageUUID)]) }
    }

    @Test func snapshotRollbackRestoresFilesAndRestarts() throws {
        let h = try ScratchHost()
        let m = try h.vmadm.create(h.payload())
        let motd = try h.vmadm.rootfs(m.uuid) + "/etc/motd"
        try h.vmadm.createSnapshot(m.uuid, "before")
        #expect(throws: LumosError.self) { try h.vmadm.createSnapshot(m.uuid, "before") }
        #expect(throws: LumosError.self) { try h.vmadm.createSnapshot(m.uuid, "bad/name") }
        try Files.writeAtomically(motd, "changed\n")
        try h.vmadm.rollbackSnapshot(m.uuid, "before")
        #expect(try FD.readText(motd) == "image\n")
        #expect(h.zones.isRunning(m.uuid))
        #expect(try h.vmadm.snapshots(m.uuid) == ["before"])
        try h.vmadm.deleteSnapshot(m.uuid, "before")
        #expect(try h.vmadm.snapshots(m.uuid).isEmpty)
        #expect(throws: LumosError.self) { try h.vmadm.rollbackSnapshot(m.uuid, "before") }
    }

    @Test func sendDeleteReceiveBringsItBack() throws {
        let h = try ScratchHost()
        let m = try h.vmadm.create(h.payload(["autoboot": false, "tags": ["k": "v"]]))
        try Files.writeAtomically(try h.vmadm.rootfs(m.uuid) + "/etc/motd", "mine\n")
        let streamPath = h.dir + "/vm.stream"
        let out = open(streamPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        try h.vmadm.send(m.uuid, to: out)
        close(out)
        let before = try h.vmadm.store.read(m.uuid)
        try h.vmadm.delete(m.uuid)
        let input = open(streamPath, O_RDONLY)
        defer { close(input) }
        let back = try h.vmadm.receive(from: input)
        #expect(back.uuid == m.uuid)
        let after = try h.vmadm.store.read(m.uuid)
        #expect(after.properties.filter { $0.key != "last_modified" } == before.properties.filter { $0.key != "last_modified" })
        #expect(try FD.readText(try h.vmadm.rootfs(m.uuid) + "/etc/motd") == "mine\n")
        #expect(try h.vmadm.snapshots(m.uuid).isEmpty)
    }

    @Test func receiveRejectsGarbage() throws {
        let h = try ScratchHost()
        let path = h.dir + "/garbage"
        try Files.writeAtomically(path, "hello world\n")
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        #expect(throws: LumosError.self) { try h.vmadm.receive(from: fd) }
    }

    @Test func sendRefusesRunningZone() throws {
        let h = try ScratchHost()
        let m = try h.vmadm.create(h.payload())
        #expect(throws: LumosError.self) { try h.vmadm.send(m.uuid, to: -1) }
    }

    @Test func imageFromStoppedZone() throws {
        let h = try ScratchHost()
        let m = try h.vmadm.create(h.payload(["autoboot": false]))
        try Files.writeAtomically(try h.vmadm.rootfs(m.uuid) + "/etc/motd", "custom\n")
        let out = try h.vmadm.createImage(from: m.uuid, name: "custom", version: "2", description: nil, compression: "gzip", prefix: h.dir + "/out/custom")
        let img = try h.vmadm.images.importImage(manifest: out.manifestPath, file: out.filePath)
        #expect(try FD.readText(try h.datasets.mountpoint(h.vmadm.images.finalSnapshot(img.uuid)) + "/root/etc/motd") == "custom\n")
        #expect(try h.vmadm.snapshots(m.uuid).isEmpty)
    }
}

@Suite struct VmadmRecoveryTests {
    /// What kill -9 leaves at each create step, then the next command's repair.
    @Test(arguments: ["begun", "cloned", "quota", "manifest", "started"])
    func abandonedCreateIsUndone(_ step: String) throws {
        let h = try ScratchHost()
        let uuid = "22222222-2222-3333-4444-555555555555"
        var m = try ManifestValidator.validateCreate(h.payload(["uuid": .string(uuid)]))
        m["create_timestamp"] = "2026-01-01T00:00:00Z"
        let steps = ["begun", "cloned", "quota", "manifest", "started"]
        let intent = try h.vmadm.store.journal.begin("create", uuid, data: ["manifest": m.json.serialized(pretty: false)])
        for s in steps.prefix(through: steps.firstIndex(of: step)!) {
            switch s {
            case "cloned": try h.datasets.clone(h.vmadm.images.finalSnapshot(h.imageUUID), to: "zones/\(uuid)")
            case "manifest": try h.vmadm.store.write(m)
            case "started": h.zones.running[uuid] = 99
            default: break
            }
        }
        _ = intent
        #expect(try h.vmadm.list().isEmpty)
        #expect(!h.datasets.exists("zones/\(uuid)"))
        #expect(!h.vmadm.store.exists(uuid))
        #expect(!h.zones.isRunning(uuid))
        #expect(h.vmadm.store.journal.pendingSubjects().isEmpty)
    }

    @Test func abandonedDeleteIsFinished() throws {
        let h = try ScratchHost()
        let m = try h.vmadm.create(h.payload())
        _ = try h.vmadm.store.journal.begin("delete", m.uuid, data: ["manifest": m.json.serialized(pretty: false)])
        #expect(try h.vmadm.list().isEmpty)
        #expect(!h.datasets.exists("zones/\(m.uuid)"))
        #expect(!h.zones.isRunning(m.uuid))
    }

    @Test func abandonedUpdateRollsForward() throws {
        let h = try ScratchHost()
        let m = try h.vmadm.create(h.payload())
        let plan = try ManifestValidator.validateUpdate(m, ["max_physical_memory": 1024])
        _ = try h.vmadm.store.journal.begin("update", m.uuid, data: ["manifest": plan.manifest.json.serialized(pretty: false)])
        _ = try h.vmadm.list()
        #expect(try h.vmadm.store.read(m.uuid).integer("max_physical_memory") == 1024)
        #expect(h.zones.limits[m.uuid]?.maxPhysicalMemory == 1024)
    }

    @Test func liveIntentIsLeftAlone() throws {
        let h = try ScratchHost()
        let uuid = "33333333-2222-3333-4444-555555555555"
        let lock = try h.vmadm.store.journal.lock(uuid)
        _ = try h.vmadm.store.journal.begin("create", uuid)
        try h.vmadm.recover()
        #expect(h.vmadm.store.journal.pendingSubjects() == [uuid])
        withExtendedLifetime(lock) {}
    }
}
