import Glibc
import LumosCore
import Net
import Testing
import VMTestSupport
@testable import VM

/// QMP against a real QEMU: a q35 machine with no disk, whose firmware finds nothing to boot
/// and idles (no guest OS, so nothing answers the ACPI button either).
@Suite(.serialized, .enabled(if: hasQEMU, "needs qemu-system-x86_64: run scripts/install-deps.sh"))
struct QMPTests {
    func start(_ scratch: Scratch) throws -> QEMUProcess {
        try QEMUProcess(VMDescription(name: "qmp-test", machine: .q35, accelerator: .tcg, memoryMiB: 64, runDirectory: scratch.path))
    }

    @Test func statusStopContinueAndErrors() throws {
        let scratch = try Scratch("qmp")
        defer { scratch.remove() }
        let qemu = try start(scratch)
        defer { qemu.kill() }
        let q = try qemu.qmp()
        #expect(q.greeting.lookup("QMP")?.objectValue?["version"] != nil)
        let s = try q.status()
        #expect(s.running && s.status == "running" && s.failure == nil && !s.isPaused)

        try q.execute("stop")
        let paused = try q.status()
        #expect(!paused.running && paused.status == "paused" && paused.isPaused && paused.failure == nil)
        #expect(try q.waitForEvent("STOP", seconds: 5) != nil)
        try q.execute("cont")
        #expect(try q.status().running)

        let version = try q.execute("query-version")
        #expect((version.lookup("qemu")?.objectValue?["major"]?.intValue ?? 0) >= 7)
        let error = #expect(throws: LumosError.self) { try q.execute("no-such-command") }
        #expect(error?.message.contains("CommandNotFound") == true)
        #expect(qemu.failure() == nil)
        // QEMU's own seccomp filter (-sandbox) is on.
        #expect(try FD.readText("/proc/\(qemu.pid)/status").contains("Seccomp:\t2"))
    }

    @Test func quitEndsQEMU() throws {
        let scratch = try Scratch("quit")
        defer { scratch.remove() }
        let qemu = try start(scratch)
        defer { qemu.kill() }
        try qemu.qmp().quit()
        #expect(qemu.waitForExit(seconds: 10))
        #expect(qemu.exitStatus == 0)
        #expect(!processExists(qemu.pid))
    }

    /// vmadm stop of a guest that ignores the ACPI button: killed after the timeout.
    @Test func stopKillsAGuestThatIgnoresPowerdown() throws {
        let scratch = try Scratch("stop")
        defer { scratch.remove() }
        let qemu = try start(scratch)
        defer { qemu.kill() }
        _ = try qemu.qmp().status()
        let t0 = Monotonic.now
        #expect(qemu.stop(timeout: 1.5) == .killed)
        #expect(Monotonic.now - t0 >= 1.5)
        #expect(!processExists(qemu.pid))
        #expect(qemu.failure() != nil)
    }

    /// A QEMU that dies under its owner (here SIGKILL from outside, by pid) is reported, not
    /// taken for a running VM.
    @Test func deadQEMUIsAFailure() throws {
        let scratch = try Scratch("dead")
        defer { scratch.remove() }
        let qemu = try start(scratch)
        defer { qemu.kill() }
        #expect(try qemu.qmp().status().running)
        #expect(qemu.failure() == nil)
        #expect(kill(qemu.pid, SIGKILL) == 0)
        #expect(qemu.waitForExit(seconds: 10))
        #expect(qemu.failure() == "QEMU exited with status 137")
        #expect(qemu.stop(timeout: 1) == .alreadyExited)
    }

    @Test func failureVerdict() {
        let log = "qemu-system-x86_64: warning: x\nKVM internal error. Suberror: 1\nemulation failure\n"
        let paused = RunState(status: "internal-error", running: false)
        #expect(QEMUProcess.failure(log: log, exitStatus: nil, state: paused) == "QEMU: KVM internal error. Suberror: 1")
        #expect(QEMUProcess.failure(log: "", exitStatus: nil, state: paused)?.contains("KVM internal error") == true)
        #expect(QEMUProcess.failure(log: "", exitStatus: 1, state: nil) == "QEMU exited with status 1")
        #expect(QEMUProcess.failure(log: "", exitStatus: nil, state: RunState(status: "running", running: true)) == nil)
    }

    @Test func runStateFailures() {
        #expect(RunState(status: "internal-error", running: false).failure?.contains("KVM internal error") == true)
        #expect(RunState(status: "guest-panicked", running: false).failure != nil)
        #expect(RunState(status: "io-error", running: false).failure != nil)
        #expect(RunState(status: "shutdown", running: false).failure == nil)
        #expect(RunState(status: "paused", running: false).isPaused)
        #expect(!RunState(status: "internal-error", running: false).isPaused)
    }
}

/// Every disk and NIC model on a real QEMU, checked over QMP: the block devices with their
/// fdsets and read-only flags, the NICs' MACs, and the PCI ids of each NIC model.
@Suite(.serialized, .enabled(if: isRoot && hasQEMU, "needs root (taps in a namespace) and qemu-system-x86_64"))
struct QEMUDeviceModelTests {
    @Test(arguments: [VMDescription.Machine.pc, .q35])
    func everyModelAttaches(machine: VMDescription.Machine) throws {
        let scratch = try Scratch("models")
        defer { scratch.remove() }
        let switchNet = try GuestNetwork(tag: "vmm", subnet: "10.79.0")
        defer { try? switchNet.remove() }
        var files: [Int32] = []
        defer { for fd in files { close(fd) } }
        for i in 0..<5 {
            let path = "\(scratch.path)/d\(i).raw"
            let fd = try sys("open", path) { open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600) }
            #expect(ftruncate(fd, 1 << 20) == 0)
            if i >= 3 {
                // The two CD-ROMs are read-only: QEMU wants O_RDONLY descriptors for them.
                close(fd)
                files.append(try sys("open", path) { open(path, O_RDONLY | O_CLOEXEC) })
            } else {
                files.append(fd)
            }
        }
        let id = String(UInt32.random(in: 0...0xfffff), radix: 16)
        let taps = try (0..<3).map { try Tap(name: "vmm\(id)\($0)", namespace: switchNet.namespace, bridge: switchNet.bridge) }
        defer { taps.forEach { $0.close() } }
        let macs = (0..<3).map { MACAddress("52:54:00:00:10:0\($0)")! }
        let vm = VMDescription(
            name: "models", machine: machine, accelerator: .tcg, memoryMiB: 64,
            disks: [.init(descriptor: files[0], model: .virtio, boot: true), .init(descriptor: files[1], model: .ide),
                    .init(descriptor: files[2], model: .scsi, blockSize: 4096), .init(descriptor: files[3], model: .ide, media: .cdrom),
                    .init(descriptor: files[4], model: .scsi, media: .cdrom)],
            nics: [.init(tapDescriptor: taps[0].descriptor, model: .virtio, mac: macs[0]),
                   .init(tapDescriptor: taps[1].descriptor, model: .e1000, mac: macs[1]),
                   .init(tapDescriptor: taps[2].descriptor, model: .rtl8139, mac: macs[2])],
            runDirectory: "\(scratch.path)/run")
        let qemu = try QEMUProcess(vm)
        defer { qemu.kill() }
        let q = try qemu.qmp()
        #expect(try q.status().running, "qemu.log: \((try? FD.readText(qemu.logPath)) ?? "")")

        let blocks = try q.execute("query-block").arrayValue ?? []
        // qdev is the device id, or the QOM path of a virtio device's backend.
        func block(_ id: String) -> JSONValue? {
            blocks.first { b in
                guard let q = b.lookup("qdev")?.stringValue else { return false }
                return q == id || q.hasPrefix("/machine/peripheral/\(id)/")
            }
        }
        for i in 0..<5 {
            let b = block("vd\(i)")
            #expect(b?.lookup("inserted")?.objectValue?["file"]?.stringValue?.contains("/dev/fdset/\(i + 1)") == true, "vd\(i): \(String(describing: b))")
            #expect(b?.lookup("inserted")?.objectValue?["ro"]?.boolValue == (i >= 3))
        }
        let network = try q.execute("human-monitor-command", arguments: ["command-line": "info network"]).stringValue ?? ""
        for (i, (mac, model)) in zip(macs, ["virtio-net-pci", "e1000", "rtl8139"]).enumerated() {
            #expect(network.contains("nic\(i): index=0,type=nic,model=\(model),macaddr=\(mac)"), "info network:\n\(network)")
        }
        var ids: Set<String> = []
        for bus in try q.execute("query-pci").arrayValue ?? [] {
            for dev in bus.objectValue?["devices"]?.arrayValue ?? [] {
                if let v = dev.lookup("id")?.objectValue?["vendor"]?.intValue, let d = dev.lookup("id")?.objectValue?["device"]?.intValue {
                    ids.insert(String(format: "%04x:%04x", v, d))
                }
            }
        }
        // virtio-net (legacy id), e1000, rtl8139, virtio-scsi, virtio-blk.
        for want in ["1af4:1000", "8086:100e", "10ec:8139", "1af4:1004", "1af4:1001"] {
            #expect(ids.contains(want), "PCI ids: \(ids.sorted())")
        }
        qemu.kill()
    }

    @Test func descriptorModeMustMatch() throws {
        let scratch = try Scratch("mode")
        defer { scratch.remove() }
        let path = "\(scratch.path)/d.raw"
        let rw = try sys("open", path) { open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600) }
        defer { close(rw) }
        let ro = try sys("open", path) { open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(ro) }
        func start(_ disk: VMDescription.Disk) throws {
            _ = try QEMUProcess(VMDescription(name: "mode", accelerator: .tcg, memoryMiB: 64, disks: [disk], runDirectory: "\(scratch.path)/run"))
        }
        let cd = #expect(throws: LumosError.self) { try start(.init(descriptor: rw, model: .ide, media: .cdrom)) }
        #expect(cd?.message == "disks[0] is read-only: open it O_RDONLY")
        let disk = #expect(throws: LumosError.self) { try start(.init(descriptor: ro)) }
        #expect(disk?.message == "disks[0] is writable: open it O_RDWR")
        // Nothing was started: no QEMU log, no run directory.
        #expect(!Files.exists("\(scratch.path)/run"))
    }
}
