import Glibc
import LumosCore
import Testing
import Zones
@testable import VM

/// QEMU as PID 1 of its own zone (docs/vm.md, "The jail"): a root populated by `QEMUJail`, no
/// capabilities, Lumos's seccomp filter under QEMU's own, the guest's disk passed as a
/// descriptor, QMP reached by the host through /proc/<init>/root. Stopping the zone leaves
/// no process and no cgroup.
@Suite(.serialized, .enabled(if: isRoot && hasQEMU, "needs root (zones) and qemu-system-x86_64"))
struct JailTests {
    @Test func populateCopiesOnlyWhatQEMUNeeds() throws {
        let scratch = try Scratch("jailfs")
        defer { scratch.remove() }
        let qemu = try #require(QEMUJail.findQEMU())
        let root = "\(scratch.path)/root"
        try Files.makeDirectories(root)
        try QEMUJail.populate(root: root, qemu: qemu)
        #expect(access(root + QEMUJail.binaryPath, X_OK) == 0)
        #expect(Files.isDirectory(root + QEMUJail.runDirectory))
        for dir in ["/dev", "/proc", "/sys", "/tmp"] { #expect(Files.isDirectory(root + dir), "\(dir)") }
        #expect(access(root + (try QEMUJail.interpreter(of: qemu)), X_OK) == 0)
        for firmware in ["share/seabios/bios-256k.bin", "share/qemu/linuxboot_dma.bin", "share/qemu/pvh.bin", "share/qemu/kvmvapic.bin"] {
            #expect(Files.exists("\(root)/usr/\(firmware)"), "\(firmware)")
        }
        // Every file is a regular file or a directory: no program but QEMU, no shell, no
        // set-id bit, no symlink out.
        let found = try Exec.run(["find", root, "-mindepth", "1", "-not", "-type", "d", "-not", "-type", "f"]).stdout
        #expect(found.isEmpty, "not a file or directory: \(found)")
        let setid = try Exec.run(["find", root, "-perm", "/7000", "-not", "-path", root + "/tmp"]).stdout
        #expect(setid.isEmpty, "set-id or sticky: \(setid)")
        let executables = try Exec.run(["find", root, "-type", "f", "-perm", "/111", "-not", "-name", "*.so*"]).stdout
            .split(separator: "\n").map { String($0.dropFirst(root.count)) }
        #expect(executables == [QEMUJail.binaryPath], "programs in the jail: \(executables)")
        #expect(!Files.exists(root + "/bin/sh") && !Files.exists(root + "/usr/bin/sh"))
        let size = try Exec.run(["du", "-sk", root]).stdout.split(separator: "\t").first.flatMap { Int($0) } ?? 0
        print("QEMU jail: \(size / 1024) MiB")
        // A non-empty directory is refused.
        #expect(throws: LumosError.self) { try QEMUJail.populate(root: root, qemu: qemu) }
    }

    @Test func fingerprintFollowsTheFiles() throws {
        let qemu = try #require(QEMUJail.findQEMU())
        let a = try QEMUJail.fingerprint(qemu: qemu)
        #expect(a.count == 16 && a.allSatisfy { $0.isHexDigit })
        #expect(try QEMUJail.fingerprint(qemu: qemu) == a)
        // The same layout from a copy of the binary (another inode) is another fingerprint.
        let scratch = try Scratch("jailfp")
        defer { scratch.remove() }
        try Files.makeDirectories("\(scratch.path)/bin")
        try Exec.run(["cp", qemu, "\(scratch.path)/bin/qemu-system-x86_64"])
        #expect(try QEMUJail.fingerprint(qemu: "\(scratch.path)/bin/qemu-system-x86_64") != a)
    }

    @Test(arguments: [VMDescription.Machine.q35, .microvm])
    func qemuRunsAsInitOfAJailZone(machine: VMDescription.Machine) throws {
        let scratch = try Scratch("jail")
        defer { scratch.remove() }
        let qemu = try #require(QEMUJail.findQEMU())
        let root = "\(scratch.path)/root"
        try Files.makeDirectories(root)
        try QEMUJail.populate(root: root, qemu: qemu)
        // A direct-kernel boot: QEMU opens the kernel and initrd by path, so the jail carries them.
        let guest = try SmallGuest.build(into: "\(scratch.path)/guest")
        let boot = guest.kernelBoot(for: machine)
        try Files.makeDirectories(root + "/boot")
        try Exec.run(["cp", boot.kernel, root + "/boot/kernel"])
        try Exec.run(["cp", try #require(boot.initrd), root + "/boot/initrd"])

        let disk = try sys("open", guest.disk) { open(guest.disk, O_RDWR | O_CLOEXEC) }
        defer { close(disk) }
        let vm = VMDescription(
            name: "jail", machine: machine, accelerator: .tcg, memoryMiB: 128,
            disks: [.init(descriptor: disk, boot: true)],
            kernelBoot: .init(kernel: "/boot/kernel", initrd: "/boot/initrd", commandLine: boot.commandLine),
            runDirectory: QEMUJail.runDirectory)
        let command = try QEMUCommand.build(vm)
        let log = "\(scratch.path)/qemu.log"
        let logFD = try sys("open", log) { open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
        defer { close(logFD) }

        let runtime = try ZoneRuntime()
        let uuid = "test-jail-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? runtime.cleanup(uuid) }
        var spec = ZoneSpec(uuid: uuid, hostname: "jail", rootfs: root,
                            initProcess: .image([QEMUJail.binaryPath] + command.argv.dropFirst()),
                            environment: [], limits: ZoneLimits(maxPhysicalMemory: 1024),
                            idRange: ZoneIDRange(base: ZoneIDRange.firstBase + UInt32.random(in: 1..<60000) * ZoneIDRange.size),
                            stdout: logFD, stderr: logFD)
        spec.descriptors = command.descriptors
        spec.capabilities = .none
        let pid = try runtime.start(spec)

        let qmpPath = "/proc/\(pid)/root\(QEMUJail.runDirectory)/qmp.sock"
        #expect(qmpPath.utf8.count < 108)
        let qmp = try QMPClient(socketPath: qmpPath, timeout: 20)
        let state = try qmp.status()
        #expect(state.running && state.status == "running", "\(state); qemu.log: \((try? FD.readText(log)) ?? "")")
        // PID 1 of its pid namespace, no capability at all, Lumos's filter and QEMU's own.
        let status = try FD.readText("/proc/\(pid)/status")
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            #expect(status.contains("\(set):\t0000000000000000"), "\(set) in\n\(status)")
        }
        #expect(status.contains("NoNewPrivs:\t1"))
        #expect(status.contains("Seccomp:\t2"))
        #expect(status.contains("Seccomp_filters:\t2"), "QEMU's -sandbox filter did not stack on Lumos's:\n\(status)")
        #expect(status.split(separator: "\n").contains { $0.hasPrefix("NSpid:") && $0.hasSuffix("\t1") })
        // The guest boots from the disk QEMU got as fd 3 and reaches its rc script.
        let console = waitForConsole("/proc/\(pid)/root\(QEMUJail.runDirectory)/console.log", containing: "lumos-guest: up", seconds: 120)
        #expect(console.contains("lumos-guest: up"), "console:\n\(console.suffix(1500))\nqemu.log:\n\((try? FD.readText(log)) ?? "")")
        #expect(try qmp.status().running)
        // Only QEMU runs in the zone; the disk it uses is the descriptor it was given (QEMU
        // moves fd 3 into its fdset), a file it could not open by path.
        #expect(runtime.cgroup(uuid).processes() == [pid])
        let links = Files.list("/proc/\(pid)/fd").compactMap { try? readLink("/proc/\(pid)/fd/\($0)") }
        #expect(links.contains(guest.disk), "QEMU's descriptors: \(links)")
        #expect(access("/proc/\(pid)/root\(guest.disk)", F_OK) != 0)

        // QEMU exits on SIGTERM: the zone stops and nothing of it is left.
        let outcome = try runtime.stop(uuid, timeout: 20)
        #expect(outcome == .exited)
        #expect(runtime.state(uuid) == .stopped)
        #expect(!runtime.cgroup(uuid).exists)
        #expect(!processExists(pid))
        #expect(runtime.initPid(uuid) == nil)
    }

    /// A kvm zone: devices ["/dev/kvm"] lets the jailed QEMU (no capabilities) open KVM; QMP's
    /// query-kvm says so. Without the device QEMU exits at once (checked by hand). This host's
    /// KVM is PVM: only QEMU's start is checked, no guest.
    @Test(.enabled(if: Files.exists("/dev/kvm"), "needs /dev/kvm"))
    func jailedQEMUOpensKVMWhenGivenTheDevice() throws {
        let scratch = try Scratch("jailkvm")
        defer { scratch.remove() }
        let root = "\(scratch.path)/root"
        try Files.makeDirectories(root)
        try QEMUJail.populate(root: root, qemu: try #require(QEMUJail.findQEMU()))
        let vm = VMDescription(name: "jailkvm", machine: .q35, accelerator: .kvm, memoryMiB: 64, runDirectory: QEMUJail.runDirectory)
        let command = try QEMUCommand.build(vm)
        let log = "\(scratch.path)/qemu.log"
        let logFD = try sys("open", log) { open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
        defer { close(logFD) }
        let runtime = try ZoneRuntime()
        let uuid = "test-jailkvm-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? runtime.cleanup(uuid) }
        var spec = ZoneSpec(uuid: uuid, hostname: "jail", rootfs: root, initProcess: .image([QEMUJail.binaryPath] + command.argv.dropFirst()),
                            environment: [], idRange: ZoneIDRange(base: ZoneIDRange.firstBase + UInt32.random(in: 1..<60000) * ZoneIDRange.size),
                            stdout: logFD, stderr: logFD)
        spec.capabilities = .none
        spec.devices = ["/dev/kvm"]
        let pid = try runtime.start(spec)
        let qmp = try QMPClient(socketPath: "/proc/\(pid)/root\(QEMUJail.runDirectory)/qmp.sock", timeout: 20)
        let kvm = try qmp.execute("query-kvm")
        #expect(kvm.lookup("enabled")?.boolValue == true, "\(kvm); qemu.log: \((try? FD.readText(log)) ?? "")")
        #expect(try runtime.stop(uuid, force: true) == .killed)
        #expect(!runtime.cgroup(uuid).exists)
    }
}

func readLink(_ path: String) throws -> String {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink(path, &buf, buf.count - 1)
    if n < 0 { throw Errno(errno, "readlink", path) }
    return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
