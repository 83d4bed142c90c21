import Foundation
import Glibc
import LumosCore
import Net
import Testing
import VMTestSupport
@testable import VM

/// The small guest under QEMU (TCG here), on a tap on a bridge in a network namespace the test
/// creates: it takes its address by DHCP from Net's DHCP code, answers ping from the bridge's
/// side, and powers off on the ACPI button through QMP. Nothing is left afterwards.
@Suite(.serialized, .enabled(if: isRoot && hasQEMU, "needs root (namespaces, taps) and qemu-system-x86_64"))
struct BootToPingTests {
    @Test(arguments: [VMDescription.Machine.q35, .microvm])
    func smallGuestGetsDHCPAnswersPingAndPowersOff(machine: VMDescription.Machine) throws {
        let scratch = try Scratch("boot")
        defer { scratch.remove() }
        let guest = try SmallGuest.build(into: "\(scratch.path)/guest")
        let network = try GuestNetwork(tag: "vmt", subnet: "10.77.0")
        defer { try? network.remove() }
        let net = network.tools
        let id = String(UInt32.random(in: 0...0xffffff), radix: 16)
        let tapName = "vmt\(id)"
        let tap = try Tap(name: tapName, namespace: network.namespace, bridge: network.bridge)
        defer { tap.close() }
        #expect(try net.linkExists(tapName))
        let mac = MACAddress.generate()
        let dhcp = try network.dhcp(network.lease(1, mac: mac))
        defer { dhcp.stop() }

        let disk = try sys("open", guest.disk) { open(guest.disk, O_RDWR | O_CLOEXEC) }
        defer { close(disk) }
        let accel = try AcceleratorProbe.choose()
        let vm = VMDescription(
            name: "vmt-\(id)", machine: machine, accelerator: accel.accelerator, memoryMiB: 128,
            disks: [.init(descriptor: disk, boot: true)], nics: [.init(tapDescriptor: tap.descriptor, mac: mac)],
            kernelBoot: guest.kernelBoot(for: machine),
            runDirectory: "\(scratch.path)/run")
        let t0 = Monotonic.now
        let qemu = try QEMUProcess(vm)
        defer { qemu.kill() }

        let replied = try network.ping("10.77.0.2", mac: mac, seconds: 120)
        let bootToPing = Monotonic.now - t0
        // The lease script prints its line after it set the address, so after ping can work.
        let console = waitForConsole(vm.consoleLogPath, containing: "lumos-guest: eth0 bound", seconds: replied ? 10 : 0)
        if replied { print("small guest (\(accel.accelerator.rawValue), \(machine.rawValue)): QEMU start to first ping reply \(String(format: "%.2f", bootToPing)) s") }
        for line in console.split(whereSeparator: \.isNewline) where line.contains("lumos-") || line.contains("rror") || line.contains("fail") {
            print("  guest console: \(line)")
        }
        #expect(replied, "no ping reply; console:\n\(console.suffix(2000))\nqemu.log:\n\((try? FD.readText(qemu.logPath)) ?? "")")
        #expect(dhcp.replies.contains(.offer) && dhcp.replies.contains(.ack), "DHCP replies: \(dhcp.replies)")
        #expect(console.contains("lumos-guest: eth0 bound 10.77.0.2/24"))

        let state = try qemu.qmp().status()
        #expect(state.running && state.failure == nil)
        #expect(qemu.failure() == nil)

        // The guest's acpid turns the power button into poweroff; QEMU then exits by itself.
        #expect(qemu.stop(timeout: 60) == .poweredOff, "console:\n\(((try? FD.readText(vm.consoleLogPath)) ?? "").suffix(1500))")
        #expect(qemu.exitStatus == 0)
        #expect(!processExists(qemu.pid))

        // The tap goes with the last descriptor; the namespace with `ip netns delete`.
        tap.close()
        #expect(try !net.linkExists(tapName))
        dhcp.stop()
        try network.remove()
        #expect(!Files.exists("/run/netns/\(network.name)"))
    }

    /// The guest's initramfs finds its root on an ide (PIIX, machine pc; the cloud kernel has
    /// no AHCI driver for q35's ide) or a virtio-scsi disk, by label.
    @Test(arguments: [(VMDescription.Machine.pc, VMDescription.DiskModel.ide), (.q35, .scsi)])
    func bootsFromOtherDiskModels(machine: VMDescription.Machine, model: VMDescription.DiskModel) throws {
        let scratch = try Scratch("root-\(model.rawValue)")
        defer { scratch.remove() }
        let guest = try SmallGuest.build(into: "\(scratch.path)/guest")
        let disk = try sys("open", guest.disk) { open(guest.disk, O_RDWR | O_CLOEXEC) }
        defer { close(disk) }
        let vm = VMDescription(
            name: "root-\(model.rawValue)", machine: machine, accelerator: try AcceleratorProbe.choose().accelerator, memoryMiB: 128,
            disks: [.init(descriptor: disk, model: model, boot: true)],
            kernelBoot: .init(kernel: guest.kernel, initrd: guest.initrd, commandLine: guest.commandLine),
            runDirectory: "\(scratch.path)/run")
        let qemu = try QEMUProcess(vm)
        defer { qemu.kill() }
        let deadline = Monotonic.now + 120
        var console = ""
        while Monotonic.now < deadline && qemu.isRunning {
            console = (try? FD.readText(vm.consoleLogPath)) ?? ""
            if console.contains("lumos-guest: up") || console.contains("lumos-initramfs: root") { break }
            usleep(100_000)
        }
        #expect(console.contains("lumos-guest: up"), "console:\n\(console.suffix(1500))")
        #expect(!console.contains("lumos-initramfs"))
        #expect(qemu.stop(timeout: 60) == .poweredOff, "console:\n\(((try? FD.readText(vm.consoleLogPath)) ?? "").suffix(1500))")
    }
}
