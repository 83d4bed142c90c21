import Foundation
import Glibc
import Images
import LumosCore
import Testing
@testable import Zones

/// Brand kvm manifests: defaults, derived limits and the one-line refusals (docs/vmadm.md).
@Suite struct KVMManifestTests {
    static let image = "6a3e1f7c-8d2b-4c5e-9f10-2b3c4d5e6f70"

    func create(_ extra: [String: JSONValue]) throws -> Manifest {
        var o: [String: JSONValue] = ["brand": "kvm", "disks": [["boot": true, "image_uuid": .string(Self.image), "image_size": 64]]]
        for (k, v) in extra { o[k] = v }
        return try ManifestValidator.validateCreate(.object(o))
    }

    func refusal(_ extra: [String: JSONValue]) -> String {
        do { _ = try create(extra); return "" } catch { return "\(error)" }
    }

    @Test func defaultsFollowVmadm() throws {
        let m = try create([:])
        #expect(m.integer("ram") == 256)
        #expect(m.integer("max_physical_memory") == 256 + PropertyTable.kvmOverheadMiB, "the jail holds ram plus QEMU")
        #expect(m.integer("vcpus") == 1)
        #expect(m["cpu_type"] == "qemu64")
        #expect(m.imageUUID == Self.image, "image_uuid is the boot disk's")
        #expect(m.disks.first?.model == .virtio)
        let given = try create(["ram": 1024])
        #expect(given.integer("max_physical_memory") == 1024 + PropertyTable.kvmOverheadMiB)
        #expect(given.integer("ram") == 1024, "a hardware VM's ram is the guest's, not an alias of the cap")
    }

    @Test func updatingRamMovesTheJailsCap() throws {
        let m = try create(["ram": 512])
        let plan = try ManifestValidator.validateUpdate(m, ["ram": 768])
        #expect(plan.manifest.integer("ram") == 768)
        #expect(plan.manifest.integer("max_physical_memory") == 768 + PropertyTable.kvmOverheadMiB)
        #expect(plan.changed.contains("max_physical_memory"))
    }

    @Test func badManifestsAreOneLineErrors() {
        let twoBoots: JSONValue = [["boot": true, "image_uuid": .string(Self.image)], ["boot": true, "size": 10]]
        let cases: [([String: JSONValue], String)] = [
            (["disks": twoBoots], "boot=true"),
            (["disks": [["boot": true, "image_uuid": .string(Self.image), "model": "nvme"]]], "unknown disk model"),
            (["disks": []], "at least one disk"),
            (["disks": [["size": 10, "refreservation": 10]]], "refreservation"),
            (["disks": [["media": "cdrom", "path": "/x.iso", "model": "virtio"]]], "cannot be virtio"),
            (["disks": [["model": "virtio"]]], "give image_uuid"),
            (["nics": [["nic_tag": "stub0", "ips": ["dhcp"], "model": "ne2k"]]], "unknown NIC model"),
            (["vnc_password": "secret"], "vnc_password"),
            (["qemu_opts": "-m 1G"], "qemu_extra_opts"),
            (["spice_port": 5900], "SPICE"),
            (["vnc_port": 5901], "out of range"),
            (["ram": 512, "max_physical_memory": 520], "cannot hold the guest's ram"),
            (["image_uuid": "11111111-2222-4333-8444-555555555555"], "boot disk"),
        ]
        for (extra, needle) in cases {
            let e = refusal(extra)
            #expect(e.contains(needle), "\(extra): \(e)")
            #expect(!e.isEmpty && !e.contains("\n"), "one line: \(e)")
        }
    }

    @Test func zonesRefuseHardwareVMProperties() throws {
        let lx: [String: JSONValue] = ["brand": "lx", "image_uuid": .string(Self.image)]
        for (k, v) in [("disks", JSONValue.array([["size": 10]])), ("vcpus", 2), ("cpu_type", "host")] {
            var o = lx
            o[k] = v
            #expect(throws: LumosError.self, "\(k)") { try ManifestValidator.validateCreate(.object(o)) }
        }
        var o = lx
        o["nics"] = [["nic_tag": "stub0", "ips": ["dhcp"], "model": "e1000"]]
        #expect(throws: LumosError.self) { try ManifestValidator.validateCreate(.object(o)) }
        #expect(throws: LumosError.self, "lx still needs image_uuid") { try ManifestValidator.validateCreate(["brand": "lx"]) }
    }
}

/// Brand kvm end to end through the CLI, as root: QEMU in its jail, disks as volumes, taps on
/// an etherstub whose host side is a network namespace of the test's own. These tests need no
/// guest OS (the disk image is a blank zvol: SeaBIOS finds nothing to boot and waits, and
/// ignores the ACPI button); the guest's own behaviour is in KVMGuestTests.
@Suite(.serialized, .enabled(if: getuid() == 0 && Files.exists("/usr/bin/qemu-system-x86_64"), "needs root and QEMU"))
struct VmadmKVMTests {
    typealias Site = ProvisionToPingTests.Site

    @Test func createRunsQEMUInAnEmptyUnprivilegedJailAndDeleteLeavesNothing() throws {
        let site = try Site()
        defer { site.close() }
        let image = try site.blankZvolImage()
        let uuid = try site.createKVM(alias: "vm01", image: image, ip: "\(site.subnet).40", extraDisk: 32)
        let vm = try site.get(uuid)
        #expect(vm["type"] == "KVM")
        #expect(vm["state"] == "running")
        #expect(vm["ram"]?.intValue == 128)
        #expect(vm["max_physical_memory"]?.intValue == 128 + PropertyTable.kvmOverheadMiB)
        #expect(vm["lumos_accelerator"]?.stringValue?.isEmpty == false)
        let list = try site.lumos(["vm", "list", "-H", "-o", "uuid,type,ram"]).stdout
        #expect(list.contains("\(uuid)  KVM   128"), "\(list)")

        // Disks are volumes of the VM: the boot disk an O(1) clone of the image, the other empty.
        let disks = (vm["disks"]?.arrayValue ?? []).compactMap(\.objectValue)
        #expect(disks.count == 2)
        #expect(disks.first?["zfs_filesystem"]?.stringValue == "zones/\(uuid)-disk0")
        #expect(disks.last?["zfs_filesystem"]?.stringValue == "zones/\(uuid)-disk1")
        #expect(disks.last?["size"]?.intValue == 32)
        let bootFile = try #require(disks.first?["path"]?.stringValue)
        #expect(Array(try FD.readFile(bootFile).prefix(16)) == Array(ImageFixture.pattern.prefix(16)), "the boot disk holds the image's bytes")
        let origin = try site.lumos(["dataset", "get", "-H", "-o", "value", "origin", "zones/\(uuid)-disk0"]).stdout.trimmingSpaces()
        #expect(origin == "zones/\(image)@final", "cloned, not copied")

        // QEMU is the jail's PID 1: no capabilities, an unprivileged host uid, a root holding
        // only QEMU, its disks and tap as descriptors.
        let pid = try #require(vm["pid"]?.intValue)
        let status = try FD.readText("/proc/\(pid)/status")
        #expect(status.contains("CapEff:\t0000000000000000") && status.contains("CapBnd:\t0000000000000000"), "\(status)")
        let uid = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }?.split(separator: "\t").dropFirst().first.flatMap { Int($0) }
        #expect((uid ?? 0) != 0, "QEMU's host uid is the jail's range, not root")
        #expect(Files.exists("/proc/\(pid)/root/usr/bin/qemu-system-x86_64"))
        #expect(!Files.exists("/proc/\(pid)/root/bin/sh"), "no shell in the jail")
        #expect(!Files.exists("/proc/\(pid)/root/dev/kvm"), "no /dev/kvm under TCG")
        let fds = Files.list("/proc/\(pid)/fd").compactMap { site.readLink("/proc/\(pid)/fd/\($0)") }
        #expect(fds.contains { $0.hasSuffix("\(uuid)-disk0/volume.raw") } && fds.contains { $0 == "/dev/net/tun" }, "\(fds)")
        #expect(!fds.contains { $0.hasPrefix(site.dir) && !$0.hasSuffix("volume.raw") }, "no other host file: \(fds)")
        let cmdline = try FD.readText("/proc/\(pid)/cmdline")
        #expect(cmdline.contains("-sandbox\0on,") && cmdline.contains("guest=vm01"))

        // vmadm info answers from QMP.
        let info = try JSONValue.parse(try site.lumos(["vm", "info", uuid, "status,block"]).stdout, what: "info")
        #expect(info.lookup("status.status") == "running")
        #expect(try site.lumos(["vm", "info", uuid, "nonsense"], check: false).status != 0)

        let port = "lz" + uuid.prefix(8) + "0"
        #expect(site.linkExists(port), "the tap is on the switch")
        try site.lumos(["vm", "delete", uuid])
        site.vms.removeAll()
        #expect(!site.linkExists(port), "the tap is gone")
        #expect(!site.processExists(Int32(pid)))
        let datasets = try site.lumos(["dataset", "list", "-H", "-o", "name", "-t", "all"]).stdout
        #expect(!datasets.contains(uuid), "\(datasets)")
        #expect(try site.switchTable().contains(port) == false, "no anti-spoofing element left")
        #expect(site.cgroupsOf(uuid).isEmpty, "\(site.cgroupsOf(uuid))")
    }

    @Test func stopOfAGuestThatIgnoresACPIKillsItAfterTheTimeout() throws {
        let site = try Site()
        defer { site.close() }
        let uuid = try site.createKVM(alias: "deaf", image: try site.blankZvolImage(), ip: nil)
        let start = Monotonic.now
        try site.lumos(["vm", "stop", uuid, "-t", "2"])
        let took = Monotonic.now - start
        #expect(took >= 2 && took < 15, "\(took) s")
        #expect(try site.get(uuid)["state"] == "stopped")
        try site.lumos(["vm", "start", uuid])
        #expect(try site.get(uuid)["state"] == "running")
        let forced = Monotonic.now
        try site.lumos(["vm", "stop", "-F", uuid])
        #expect(Monotonic.now - forced < 5, "-F does not wait for the guest")
    }

    @Test func badManifestsCreateNothing() throws {
        let site = try Site()
        defer { site.close() }
        let image = try site.blankZvolImage()
        let before = try site.lumos(["dataset", "list", "-H", "-o", "name", "-t", "all"]).stdout
        let bad: [(String, String)] = [
            (#"{"brand":"kvm","disks":[{"boot":true,"image_uuid":"0b5e7a61-1f0e-4c2a-9d3b-7e6f5a4b3c2d"}]}"#, "not installed"),
            (#"{"brand":"kvm","disks":[{"boot":true,"image_uuid":"\#(image)"},{"size":10000000}]}"#, "free"),
            (#"{"brand":"kvm","disks":[{"boot":true,"image_uuid":"\#(image)","model":"floppy"}]}"#, "unknown disk model"),
            (#"{"brand":"kvm","disks":[{"boot":true,"image_uuid":"\#(image)"},{"boot":true,"size":8}]}"#, "boot"),
            (#"{"brand":"kvm","disks":[{"boot":true,"image_uuid":"\#(image)"}],"nics":[{"nic_tag":"nosuch","ips":["10.9.9.9/24"]}]}"#, "nosuch"),
        ]
        for (json, needle) in bad {
            let r = try site.lumos(["vm", "create"], input: json, check: false)
            #expect(r.status != 0, "\(json)")
            let line = r.stderr.trimmingSpaces()
            #expect(line.contains(needle) && !line.contains("\n"), "\(json): \(line)")
        }
        #expect(try site.lumos(["vm", "list", "-H"]).stdout.trimmingSpaces().isEmpty)
        let after = try site.lumos(["dataset", "list", "-H", "-o", "name", "-t", "all"]).stdout
        #expect(Set(after.split(separator: "\n")).subtracting(before.split(separator: "\n")).allSatisfy { $0.contains("lumos-qemu-") },
                "only the shared jail root may appear: \(after)")
    }

    @Test func aCreateKilledAtAnyStepLeavesNothingAfterTheNextCommand() throws {
        let site = try Site()
        defer { site.close() }
        let image = try site.blankZvolImage()
        let json = #"{"brand":"kvm","alias":"crash","ram":64,"disks":[{"boot":true,"image_uuid":"\#(image)"},{"size":8}],"nics":[{"nic_tag":"stub0","ips":["\#(site.subnet).44/24"]}]}"#
        for step in ["create.begun", "create.disk", "zone.start.spawned", "zone.start.exec"] {
            let r = try site.lumos(["vm", "create"], input: json, check: false, crashAt: step)
            #expect(r.status != 0, "\(step) did not crash")
            #expect(try site.lumos(["vm", "list", "-H"]).stdout.trimmingSpaces().isEmpty, "\(step)")
            let names = try site.lumos(["dataset", "list", "-H", "-o", "name"]).stdout
            #expect(!names.contains("-disk"), "\(step): \(names)")
            #expect(!site.linkExists("lz"), "\(step): a tap is left")
        }
    }

    @Test func snapshotsCoverEveryDiskAndSendReceiveBringsTheDisksBackByteIdentical() throws {
        let site = try Site()
        defer { site.close() }
        let uuid = try site.createKVM(alias: "snap", image: try site.blankZvolImage(), ip: nil, extraDisk: 16)
        let data = try #require((try site.get(uuid)["disks"]?.arrayValue?.last?.objectValue?["path"]?.stringValue))
        try site.lumos(["vm", "stop", "-F", uuid])
        try site.writeBytes(data, "before", at: 1 << 20)
        try site.lumos(["vm", "create-snapshot", uuid, "s1"])
        #expect(try site.lumos(["dataset", "list", "-H", "-o", "name", "-t", "snapshot"]).stdout.contains("zones/\(uuid)-disk1@s1"))
        try site.writeBytes(data, "after!", at: 1 << 20)
        try site.lumos(["vm", "rollback-snapshot", uuid, "s1"])
        #expect(try site.readBytes(data, 6, at: 1 << 20) == Array("before".utf8))
        // A running VM is snapshotted with its vCPUs paused, and keeps running.
        try site.lumos(["vm", "start", uuid])
        try site.lumos(["vm", "create-snapshot", uuid, "live"])
        #expect(try site.get(uuid)["state"] == "running")
        try site.lumos(["vm", "stop", "-F", uuid])

        let stream = site.dir + "/vm.stream"
        let sums = try site.diskSums(uuid)
        try Exec.run(["sh", "-c", "LUMOS_ROOT=\(site.dir) LUMOS_NET_NETNS=\(site.netns) \(site.exe) vm send \(uuid) > \(stream)"])
        try site.lumos(["vm", "delete", uuid])
        #expect(!(try site.lumos(["dataset", "list", "-H", "-o", "name"]).stdout.contains(uuid)))
        try Exec.run(["sh", "-c", "LUMOS_ROOT=\(site.dir) LUMOS_NET_NETNS=\(site.netns) \(site.exe) vm receive < \(stream)"])
        #expect(try site.diskSums(uuid) == sums, "the disks come back byte-identical")
        #expect(try site.get(uuid)["state"] == "stopped")
        try site.lumos(["vm", "start", uuid])
        #expect(try site.get(uuid)["state"] == "running", "a received VM boots")
    }

    @Test func imgadmCreateOfAStoppedVMMakesAZvolImageOfItsBootDisk() throws {
        let site = try Site()
        defer { site.close() }
        let vm = try site.createKVM(alias: "golden", image: try site.blankZvolImage(), ip: nil)
        let boot = try #require(try site.get(vm)["disks"]?.arrayValue?.first?.objectValue?["path"]?.stringValue)
        #expect(try site.lumos(["img", "create", "-o", "\(site.dir)/golden", vm, "name=golden", "version=1"], check: false).status != 0,
                "a running VM is refused")
        try site.lumos(["vm", "stop", "-F", vm])
        try site.writeBytes(boot, "GOLDEN-CHANGE", at: 4096)
        try site.lumos(["img", "create", "-c", "zstd", "-o", "\(site.dir)/golden", vm, "name=golden", "version=1"])
        #expect(Files.exists("\(site.dir)/golden.json") && Files.exists("\(site.dir)/golden.raw.zst"), "the file for other hosts")
        let list = try site.lumos(["img", "list", "-H", "-o", "uuid,name,type"]).stdout
        let image = try #require(list.split(separator: "\n").first { $0.contains("golden") }?.split(separator: " ").first.map(String.init))
        #expect(list.split(separator: "\n").contains { $0.contains("golden") && $0.hasSuffix("zvol") }, "\(list)")
        let copy = try site.createKVM(alias: "copy", image: image, ip: nil)
        let copied = try #require(try site.get(copy)["disks"]?.arrayValue?.first?.objectValue?["path"]?.stringValue)
        #expect(try site.readBytes(copied, 13, at: 4096) == Array("GOLDEN-CHANGE".utf8), "a VM from the new image boots the VM's disk")
    }

    @Test func addAndRemoveDisks() throws {
        let site = try Site()
        defer { site.close() }
        let uuid = try site.createKVM(alias: "disks", image: try site.blankZvolImage(), ip: nil)
        try site.lumos(["vm", "update", uuid], input: #"{"add_disks":[{"size":8,"model":"scsi"}]}"#)
        var disks = (try site.get(uuid)["disks"]?.arrayValue ?? []).compactMap(\.objectValue)
        #expect(disks.count == 2 && disks.last?["zfs_filesystem"]?.stringValue == "zones/\(uuid)-disk1")
        let path = try #require(disks.last?["path"]?.stringValue)
        // While it runs, the disk stays: removal waits for a stop.
        let busy = try site.lumos(["vm", "update", uuid], input: #"{"remove_disks":["\#(path)"]}"#, check: false)
        #expect(busy.status != 0 && busy.stderr.contains("running"))
        try site.lumos(["vm", "stop", "-F", uuid])
        try site.lumos(["vm", "update", uuid], input: #"{"update_disks":[{"path":"\#(path)","size":12}]}"#)
        #expect((try site.get(uuid)["disks"]?.arrayValue?.last?.objectValue?["size"]?.intValue) == 12)
        try site.lumos(["vm", "update", uuid], input: #"{"remove_disks":["\#(path)"]}"#)
        disks = (try site.get(uuid)["disks"]?.arrayValue ?? []).compactMap(\.objectValue)
        #expect(disks.count == 1)
        #expect(!(try site.lumos(["dataset", "list", "-H", "-o", "name"]).stdout.contains("\(uuid)-disk1")), "its volume is destroyed")
        try site.lumos(["vm", "start", uuid])
    }
}

/// A blank zvol image: a raw file starting with a known pattern, imported with imgadm.
enum ImageFixture {
    static let pattern = Array("LUMOS-TEST-DISK\n".utf8)
}

extension ProvisionToPingTests.Site {
    var exe: String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        return Files.parent(String(decoding: buf[0..<max(0, n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)) + "/lumos"
    }

    /// Imports a 16 MiB raw zvol image (no OS on it) and returns its uuid.
    func blankZvolImage() throws -> String {
        let uuid = UUID().uuidString.lowercased()
        let raw = "\(dir)/blank.raw"
        let fd = open(raw, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Errno(errno, "open", raw) }
        _ = FD.writeAll(fd, ImageFixture.pattern)
        ftruncate(fd, 16 << 20)
        Glibc.close(fd)
        let sha = try ImageStore.sha1(of: raw)
        let manifest = #"{"v":2,"uuid":"\#(uuid)","name":"blank","version":"1","type":"zvol","os":"other","image_size":16,"files":[{"sha1":"\#(sha)","size":\#(16 << 20),"compression":"none"}]}"#
        try Files.writeAtomically("\(dir)/blank.json", manifest)
        try lumos(["img", "import", "-m", "\(dir)/blank.json", "-f", raw])
        return uuid
    }

    func createKVM(alias: String, image: String, ip: String?, extraDisk: Int? = nil, ram: Int = 128) throws -> String {
        let extra = extraDisk.map { #",{"size":\#($0)}"# } ?? ""
        let nics = ip.map { #","nics":[{"nic_tag":"stub0","ips":["\#($0)/24"],"model":"virtio","primary":true}]"# } ?? ""
        let json = #"{"brand":"kvm","alias":"\#(alias)","ram":\#(ram),"disks":[{"boot":true,"image_uuid":"\#(image)"}\#(extra)]\#(nics)}"#
        let r = try lumos(["vm", "create"], input: json)
        let uuid = String(r.stderr.split(separator: " ").last ?? "").trimmingSpaces()
        #expect(uuid.count == 36, "created: \(r.stderr)")
        vms.append(uuid)
        return uuid
    }

    func linkExists(_ prefix: String) -> Bool {
        let out = (try? Exec.run(["ip", "netns", "exec", netns, "ip", "-br", "link"], check: false).stdout) ?? ""
        return out.split(separator: "\n").contains { $0.hasPrefix(prefix) }
    }

    func switchTable() throws -> String {
        try Exec.run(["ip", "netns", "exec", netns, "nft", "list", "ruleset"], check: false).stdout
    }

    func readLink(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink(path, &buf, buf.count - 1)
        return n < 0 ? nil : String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Alive, not a zombie waiting for its reaper.
    func processExists(_ pid: Int32) -> Bool {
        for _ in 0..<50 {
            guard let status = try? FD.readText("/proc/\(pid)/status") else { return false }
            if status.contains("State:\tZ") { return false }
            usleep(20_000)
        }
        return true
    }

    func cgroupsOf(_ uuid: String) -> [String] {
        let r = try? Exec.run(["find", "/sys/fs/cgroup", "-maxdepth", "4", "-name", "*\(uuid)*"], check: false)
        return (r?.stdout ?? "").split(separator: "\n").map(String.init)
    }

    func writeBytes(_ path: String, _ text: String, at offset: Int) throws {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Errno(errno, "open", path) }
        defer { Glibc.close(fd) }
        let bytes = Array(text.utf8)
        guard pwrite(fd, bytes, bytes.count, off_t(offset)) == bytes.count else { throw Errno(errno, "pwrite", path) }
    }

    func readBytes(_ path: String, _ count: Int, at offset: Int) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Errno(errno, "open", path) }
        defer { Glibc.close(fd) }
        var buf = [UInt8](repeating: 0, count: count)
        let n = pread(fd, &buf, count, off_t(offset))
        return Array(buf.prefix(max(0, n)))
    }

    /// sha1 of each disk's volume file, in disks[] order.
    func diskSums(_ uuid: String) throws -> [String] {
        try (get(uuid)["disks"]?.arrayValue ?? []).compactMap { $0.objectValue?["path"]?.stringValue }.map { try ImageStore.sha1(of: $0) }
    }
}

/// A real guest (imgadm build small-guest: Debian's kernel, busybox, udhcpc, acpid) under TCG,
/// provisioned with vmadm on an etherstub and driven through `vmadm console`. The attacks are
/// typed into the guest's root shell: a tenant owns its kernel, so only the host side can stop it.
@Suite(.serialized, .enabled(if: getuid() == 0 && Files.exists("/usr/bin/qemu-system-x86_64"), "needs root and QEMU"))
struct KVMGuestTests {
    typealias Site = ProvisionToPingTests.Site

    @Test func guestTakesItsAddressByDHCPAndAnswersTheSwitchAVMAndAZone() throws {
        let site = try Site()
        defer { site.close() }
        let image = try site.smallGuestImage()
        let a = try site.createKVM(alias: "guest-a", image: image, ip: "\(site.subnet).50")
        // The tracer's zonename of QEMU's threads is the VM's alias: its booting vCPU shows.
        let trace = try site.lumos(["trace", "-q", "-n", #"profile-99 /zonename == "guest-a"/ { @[execname] = count(); } tick-2s { exit(0); }"#]).stdout
        #expect(trace.contains("CPU 0/") || trace.contains("qemu-system"), "\(trace)")
        #expect(site.hostPingSoon("\(site.subnet).50", seconds: 60), "\(site.consoleLog(a).suffix(1500))")
        #expect(site.consoleLog(a).contains("eth0 bound \(site.subnet).50/24"), "the switch's DHCP responder gave the manifest address")
        let b = try site.createKVM(alias: "guest-b", image: image, ip: "\(site.subnet).51")
        #expect(site.hostPingSoon("\(site.subnet).51", seconds: 60))
        #expect(try site.guest(b, "ping -c 1 -W 2 \(site.subnet).50 >/dev/null && echo PING-OK", expect: "PING-OK"), "a second VM reaches the first")
        let zone = try site.create(alias: "zone", ip: "\(site.subnet).52")
        #expect(site.zonePing(zone, "\(site.subnet).50"), "a zone on the same switch reaches the VM")
        #expect(site.linkExists("lz" + a.prefix(8)) && site.linkExists("lz" + zone.prefix(8)))
        // Stop is the ACPI power button: the guest powers itself off well within the timeout.
        let start = Monotonic.now
        try site.lumos(["vm", "stop", a, "-t", "60"])
        #expect(Monotonic.now - start < 30)
        #expect(site.consoleLog(a).contains("Power down"), "the guest shut down cleanly")
    }

    @Test func aGuestThatChangesItsIPOrMACLosesTraffic() throws {
        let site = try Site()
        defer { site.close() }
        let vm = try site.createKVM(alias: "spoof", image: try site.smallGuestImage(), ip: "\(site.subnet).60")
        #expect(site.hostPingSoon("\(site.subnet).60", seconds: 60))
        // Another address: the host side never hears from it.
        #expect(try site.guest(vm, "ip addr add \(site.subnet).99/24 dev eth0 && echo ADDED", expect: "ADDED"))
        #expect(!site.hostPing("\(site.subnet).99"), "a spoofed source address is dropped")
        #expect(try site.guest(vm, "ping -c 2 -W 1 -I \(site.subnet).99 \(site.subnet).1 >/dev/null || echo SPOOF-BLOCKED", expect: "SPOOF-BLOCKED"))
        #expect(site.hostPing("\(site.subnet).60"), "the manifest address still works")
        // Another MAC: its frames are dropped, so the guest loses its own address too.
        #expect(try site.guest(vm, "ip link set eth0 address 02:00:de:ad:be:ef && echo MAC-SET", expect: "MAC-SET"))
        #expect(!site.hostPingSoon("\(site.subnet).60", seconds: 3), "a spoofed MAC loses its traffic")
    }

    @Test func aGuestThatPowersOffPanicsOrLosesItsQEMUShowsHowItEnded() throws {
        let site = try Site()
        defer { site.close() }
        let vm = try site.createKVM(alias: "ends", image: try site.smallGuestImage(), ip: "\(site.subnet).80")
        #expect(site.hostPingSoon("\(site.subnet).80", seconds: 60))
        func settled(_ state: JSONValue) -> [String: JSONValue]? {
            let deadline = Monotonic.now + 30
            repeat {
                if let got = try? site.get(vm), got["state"] == state { return got }
                usleep(200_000)
            } while Monotonic.now < deadline
            return nil
        }
        // The guest powers itself off: QEMU exits, the VM is stopped, and says why.
        _ = try site.guest(vm, "poweroff -f", expect: "never printed", seconds: 0)
        let off = settled("stopped")
        #expect(off?["lumos_state_reason"] == "the guest powered off", "\(String(describing: off))")

        // A guest kernel panic (pvpanic tells QEMU) is a failure, not a silent reboot or hang.
        try site.lumos(["vm", "start", vm])
        #expect(site.hostPingSoon("\(site.subnet).80", seconds: 60))
        _ = try site.guest(vm, "echo c > /proc/sysrq-trigger", expect: "never printed", seconds: 0)
        let panicked = settled("failed")
        #expect(panicked?["lumos_state_reason"] == "the guest kernel panicked", "\(String(describing: panicked)) \(site.consoleLog(vm).suffix(800))")

        // QEMU killed under the VM (as a crash or the OOM killer would): failed, with the reason.
        try site.lumos(["vm", "start", vm])
        let pid = try #require(try site.get(vm)["pid"]?.intValue.map { Int32($0) })
        #expect(kill(pid, SIGKILL) == 0)
        let crashed = settled("failed")
        #expect(crashed?["lumos_state_reason"]?.stringValue?.hasPrefix("QEMU exited without the guest shutting down") == true, "\(String(describing: crashed))")

        // Starting again clears it; an operator's stop leaves no reason behind.
        try site.lumos(["vm", "start", vm])
        #expect(try site.get(vm)["state"] == "running")
        #expect(try site.get(vm)["lumos_state_reason"] == nil)
        try site.lumos(["vm", "stop", "-F", vm])
        let stopped = try site.get(vm)
        #expect(stopped["state"] == "stopped" && stopped["lumos_state_reason"] == nil, "\(stopped)")
    }

    @Test func dataWrittenByTheGuestSurvivesStopStartAndRollback() throws {
        let site = try Site()
        defer { site.close() }
        let vm = try site.createKVM(alias: "data", image: try site.smallGuestImage(), ip: "\(site.subnet).70", extraDisk: 16)
        #expect(site.hostPingSoon("\(site.subnet).70", seconds: 60))
        func write(_ text: String) throws -> Bool {
            try site.guest(vm, "echo \(text) | dd of=/dev/vdb bs=512 conv=sync 2>/dev/null && sync && echo WROTE-\(text)", expect: "WROTE-\(text)")
        }
        func read(_ text: String) throws -> Bool {
            try site.guest(vm, "dd if=/dev/vdb bs=512 count=1 2>/dev/null | grep -q \(text) && echo HAS-\(text)", expect: "HAS-\(text)")
        }
        #expect(try write("first"))
        try site.lumos(["vm", "stop", vm, "-t", "60"])
        try site.lumos(["vm", "start", vm])
        #expect(site.hostPingSoon("\(site.subnet).70", seconds: 60))
        #expect(try read("first"), "the data disk kept the guest's write over stop/start")
        try site.lumos(["vm", "create-snapshot", vm, "before"])
        #expect(try write("second"))
        #expect(try read("second"))
        try site.lumos(["vm", "rollback-snapshot", vm, "before"])
        #expect(site.hostPingSoon("\(site.subnet).70", seconds: 60), "rollback restarts a running VM")
        #expect(try read("first"), "rollback brought back the disk as it was at the snapshot")
    }
}

/// Whether the host's Debian mirror answers (the Debian guest is built from it, as
/// `imgadm build debian` is); a host without one cannot build that image at all.
let debianMirrorReachable: Bool = {
    guard let mirror = try? AptSources.debianMirror(), let host = URL(string: mirror)?.host else { return false }
    return (try? Exec.run(["timeout", "5", "bash", "-c", "exec 3<>/dev/tcp/\(host)/80"], check: false).status) == 0
}()

/// The full Debian guest (docs/vm.md, "The Debian guest"): debootstrap onto a partitioned
/// volume, booted by SeaBIOS and syslinux, systemd as init, DHCP from the switch.
@Suite(.serialized, .enabled(if: getuid() == 0 && Files.exists("/usr/bin/qemu-system-x86_64") && debianMirrorReachable,
                             "needs root, QEMU and the host's Debian mirror"))
struct DebianGuestTests {
    typealias Site = ProvisionToPingTests.Site

    @Test func aDebianGuestBootsSystemdTakesItsAddressAndPowersOffOnStop() throws {
        let site = try Site()
        defer { site.close() }
        try site.lumos(["img", "build", "debian-guest", "--name", "deb-guest", "--version", "1"])
        let out = try site.lumos(["img", "list", "-H", "-o", "uuid,name,type"]).stdout
        let line = try #require(out.split(separator: "\n").first { $0.contains("deb-guest") }, "\(out)")
        #expect(line.hasSuffix("zvol"), "\(line)")
        let image = String(line.split(separator: " ")[0])
        let vm = try site.createKVM(alias: "deb", image: image, ip: "\(site.subnet).90", ram: 512)
        #expect(site.hostPingSoon("\(site.subnet).90", seconds: 240), "\(site.consoleLog(vm).suffix(2000))")
        // The serial getty logs root in (what `vmadm console` reaches).
        let deadline = Monotonic.now + 120
        while !site.consoleLog(vm).contains("(automatic login)") && Monotonic.now < deadline { usleep(200_000) }
        #expect(site.consoleLog(vm).contains("(automatic login)"), "\(site.consoleLog(vm).suffix(2000))")
        usleep(1_000_000)  // the shell's prompt follows the login line
        // systemd is PID 1 and the system came up (running, or degraded with the failed units named).
        // (--wait: under TCG on a loaded host the last units may still be starting.)
        #expect(try site.guest(vm, "echo INIT=$(cat /proc/1/comm) STATE=$(timeout 240 systemctl is-system-running --wait) && systemctl --failed --no-legend",
                               expect: "INIT=systemd", seconds: 260), "\(site.consoleLog(vm).suffix(2000))")
        let log = site.consoleLog(vm)
        #expect(log.contains("STATE=running") || log.contains("STATE=degraded"), "\(log.suffix(2000))")
        #expect(try site.guest(vm, "ip -4 -o addr show dev eth0 | grep -q \(site.subnet).90/24 && echo ADDR-OK", expect: "ADDR-OK"),
                "systemd-networkd took the manifest's address by DHCP")
        // vmadm stop is the ACPI power button: systemd shuts down cleanly.
        try site.lumos(["vm", "stop", vm, "-t", "120"])
        #expect(try site.get(vm)["state"] == "stopped")
        #expect(try site.get(vm)["lumos_state_reason"] == nil)
        #expect(site.consoleLog(vm).contains("reboot: Power down"), "\(site.consoleLog(vm).suffix(1500))")
    }

    /// A pure cgroup v2 host (docs/architecture.md, "Zones"): this host is hybrid, so the host
    /// is a Debian guest, whose systemd mounts only the unified hierarchy. Its second disk
    /// carries this build's lumos (with the Swift libraries it links), lumos-init and a systemd
    /// zone image built here; inside, Lumos makes a pool, imports the image and boots a zone
    /// whose PID 1 is systemd, which must come up, see its own memory limit and stop cleanly.
    @Test func aSystemdZoneBootsAndStopsOnAPureCgroupV2Host() throws {
        let site = try Site(poolSize: "8G")
        defer { site.close() }
        try site.lumos(["img", "build", "debian-guest", "--name", "v2-host", "--version", "1", "--size", "2048",
                        "--packages", "btrfs-progs,lxcfs,zstd"])
        let guestImage = try #require(try site.lumos(["img", "list", "-H", "-o", "uuid,name"]).stdout
            .split(separator: "\n").first { $0.hasSuffix(" v2-host") }?.split(separator: " ").first.map(String.init))

        let payload = site.dir + "/payload"
        try site.lumos(["img", "build", "debian", "--init", "systemd", "-o", payload + "/image"])
        let imageManifest = try #require(Files.list(payload + "/image").first { $0.hasSuffix(".json") })
        let zoneImage = try #require(try JSONValue.parse(FD.readText("\(payload)/image/\(imageManifest)"), what: "the image manifest").lookup("uuid")?.stringValue)
        // Lumos as it runs here: the executable beside the tests, lumos-init beside it, and the
        // shared libraries it links that a Debian system without Swift lacks (glibc is the guest's).
        let exe = Files.parent(site.executable)
        try Files.makeDirectories(payload + "/lumos/bin")
        try Files.makeDirectories(payload + "/lumos/lib")
        try Exec.run(["strip", "-o", payload + "/lumos/bin/lumos", exe + "/lumos"])
        try Exec.run(["cp", exe + "/lumos-init", payload + "/lumos/bin/"])
        let linked = try Exec.run(["ldd", exe + "/lumos"]).stdout.split(separator: "\n").compactMap { line -> String? in
            let parts = line.split(separator: " ")
            guard let arrow = parts.firstIndex(of: "=>"), arrow + 1 < parts.count, parts[arrow + 1].hasPrefix("/") else { return nil }
            return String(parts[arrow + 1])
        }
        let glibc = ["libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1"]
        for lib in linked where !glibc.contains(String(lib.split(separator: "/").last ?? "")) { try Exec.run(["cp", "-L", lib, payload + "/lumos/lib/"]) }
        let zoneUUID = UUID().uuidString.lowercased()
        try Files.writeAtomically(payload + "/zone.json", """
            {"uuid":"\(zoneUUID)","brand":"lx","alias":"v2zone","image_uuid":"\(zoneImage)","max_physical_memory":256,"cpu_cap":100}
            """)
        // What the guest runs: every line it prints that the test reads starts with V2-.
        try Files.writeAtomically(payload + "/run.sh", """
            P=/mnt/payload
            dmesg -n 1
            mkdir -p /opt/lumos && cp -a $P/lumos/. /opt/lumos/
            echo /opt/lumos/lib > /etc/ld.so.conf.d/lumos.conf && ldconfig
            echo "V2-HIERARCHY fs=$(stat -fc %T /sys/fs/cgroup) v1=$(grep -c ' - cgroup ' /proc/self/mountinfo)"
            export LUMOS_ROOT=/var/lib/lumos
            L=/opt/lumos/bin/lumos
            $L pool create --size 4G zones >/dev/null && echo V2-POOL-OK
            $L img import -m $P/image/*.json -f "$(ls $P/image/* | grep -v '[.]json$')" 2>/tmp/import.err && echo V2-IMPORT-OK || cat /tmp/import.err
            $L vm create < $P/zone.json && echo V2-CREATE-OK
            U=\(zoneUUID)
            echo "V2-CGROUP-LIMIT $(cat /sys/fs/cgroup/lumos/$U/memory.max)"
            # systemctl needs systemd's bus: wait for it before asking.
            for i in $(seq 600); do $L login $U test -S /run/systemd/private 2>/dev/null && break; sleep 1; done
            S=$(timeout 600 $L login $U systemctl is-system-running --wait)
            echo "V2-ZONE init=$($L login $U cat /proc/1/comm) state=$S"
            $L login $U systemctl --failed --no-legend --plain | sed 's/^/V2-FAILED /'
            echo "V2-MEM $($L login $U grep MemTotal /proc/meminfo | tr -s ' ')"
            T0=$(date +%s)
            $L vm stop $U -t 120 && echo "V2-STOPPED after=$(( $(date +%s) - T0 ))s state=$($L vm list -H -o state uuid=$U) reason=$($L vm get $U | grep -c lumos_state_reason)"
            $L vm delete $U && echo V2-DELETED
            echo V2-DONE
            """)
        // The payload disk: ext4 made from the tree by mkfs (no mount), imported as a zvol image.
        let used = Int(try Exec.run(["du", "-sm", payload]).stdout.split(separator: "\t").first ?? "0") ?? 0
        let mib = used + used / 4 + 64
        let raw = site.dir + "/payload.raw"
        try Exec.run(["truncate", "-s", "\(mib)M", raw])
        try Exec.run(["mkfs.ext4", "-q", "-L", "lumos-payload", "-d", payload, raw])
        let payloadImage = UUID().uuidString.lowercased()
        let sha1 = String(try Exec.run(["sha1sum", raw]).stdout.prefix(40))
        try Files.writeAtomically(site.dir + "/payload.json", #"{"v":2,"uuid":"\#(payloadImage)","name":"payload","version":"1","type":"zvol","os":"other","image_size":\#(mib),"files":[{"sha1":"\#(sha1)","size":\#(mib << 20),"compression":"none"}]}"#)
        try site.lumos(["img", "import", "-m", site.dir + "/payload.json", "-f", raw])
        _ = try? Exec.run(["rm", "-rf", "--one-file-system", payload, raw], check: false)

        let json = #"{"brand":"kvm","alias":"v2host","ram":1024,"vcpus":2,"disks":[{"boot":true,"image_uuid":"\#(guestImage)"},{"image_uuid":"\#(payloadImage)"}]}"#
        let created = try site.lumos(["vm", "create"], input: json)
        let vm = String(created.stderr.split(separator: " ").last ?? "").trimmingSpaces()
        try #require(vm.count == 36, "created: \(created.stderr)")
        site.vms.append(vm)
        let deadline = Monotonic.now + 300
        while !site.consoleLog(vm).contains("(automatic login)") && Monotonic.now < deadline { usleep(200_000) }
        try #require(site.consoleLog(vm).contains("(automatic login)"), "\(site.consoleLog(vm).suffix(2000))")
        usleep(1_000_000)
        #expect(try site.guest(vm, "mkdir -p /mnt/payload && mount -o ro LABEL=lumos-payload /mnt/payload && sh /mnt/payload/run.sh 2>&1",
                               expect: "V2-DONE", seconds: 1200), "\(site.consoleLog(vm).suffix(3000))")
        let log = site.consoleLog(vm)
        // The serial console ends lines with "\r\n", one Character in Swift: split on any newline.
        let lines = log.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        func line(_ prefix: String) -> String { lines.last { $0.hasPrefix(prefix) } ?? "" }
        let context = String(log.suffix(4000))
        // Only the unified hierarchy is mounted in the guest: no v1 hierarchy holds a controller.
        #expect(line("V2-HIERARCHY") == "V2-HIERARCHY fs=cgroup2fs v1=0", "\(context)")
        #expect(lines.contains("V2-POOL-OK") && lines.contains("V2-IMPORT-OK") && lines.contains("V2-CREATE-OK"), "\(context)")
        // The manifest's memory cap is the zone's memory.max in the unified tree.
        #expect(line("V2-CGROUP-LIMIT") == "V2-CGROUP-LIMIT \(256 << 20)", "\(context)")
        let zone = line("V2-ZONE")
        #expect(zone.hasPrefix("V2-ZONE init=systemd state=running") || zone.hasPrefix("V2-ZONE init=systemd state=degraded"), "\(context)")
        #expect(line("V2-MEM") == "V2-MEM MemTotal: \(256 << 10) kB", "\(context)")
        let stopped = line("V2-STOPPED")
        #expect(stopped.hasSuffix("state=stopped reason=0"), "\(context)")
        if let seconds = Int(stopped.split(separator: " ").first { $0.hasPrefix("after=") }?.dropFirst(6).dropLast() ?? "") {
            #expect(seconds < 120, "systemd shut down within the timeout: \(stopped)")
        }
        #expect(lines.contains("V2-DELETED"), "\(context)")
        try site.lumos(["vm", "stop", vm, "-t", "120"])
    }
}

extension ProvisionToPingTests.Site {
    func smallGuestImage() throws -> String {
        try lumos(["img", "build", "small-guest"])
        let out = try lumos(["img", "list", "-H", "-o", "uuid,name"]).stdout
        return try #require(out.split(separator: "\n").first { $0.hasSuffix("small-guest") }?.split(separator: " ").first.map(String.init))
    }

    func consoleLog(_ uuid: String) -> String { (try? FD.readText("\(dir)/zones/\(uuid)/console.log")) ?? "" }

    func hostPingSoon(_ ip: String, seconds: Double) -> Bool {
        let deadline = Monotonic.now + seconds
        repeat {
            if (try? Exec.run(["ip", "netns", "exec", netns, "ping", "-c", "1", "-W", "1", ip], check: false).status) == 0 { return true }
        } while Monotonic.now < deadline
        return false
    }

    /// Types `command` into the guest's root shell through `vmadm console` and waits for
    /// `expect` in its console log. The marker is split in the typed line (MA""RK), so only the
    /// command's output can match.
    func guest(_ uuid: String, _ command: String, expect marker: String, seconds: Double = 30) throws -> Bool {
        let typed = command.replacingOccurrences(of: marker, with: String(marker.prefix(2)) + "\"\"" + String(marker.dropFirst(2)))
        let before = consoleLog(uuid).count
        try lumos(["vm", "console", uuid], input: "\n" + typed + "\n")
        let deadline = Monotonic.now + seconds
        while Monotonic.now < deadline {
            if consoleLog(uuid).dropFirst(before).contains(marker) { return true }
            usleep(100_000)
        }
        return false
    }
}
