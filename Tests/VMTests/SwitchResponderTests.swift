import Foundation
import Glibc
import LumosCore
import Net
import Testing
import VMTestSupport
@testable import VM

/// The small guest on a Lumos switch (an etherstub made by Net in the test's namespace) takes
/// its address from the switch's own DHCP responder process, `lumos net dhcpd` (docs/net.md,
/// DHCP), as a kvm VM's NIC will: the responder answers the lease in the switch's lease file.
@Suite(.serialized, .enabled(if: isRoot && hasQEMU, "needs root (namespaces, taps) and qemu-system-x86_64"))
struct SwitchResponderTests {
    /// The lumos binary built next to the test bundle.
    static var lumos: String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        return Files.parent(String(decoding: buf[0..<max(0, n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)) + "/lumos"
    }

    @Test(.enabled(if: access(SwitchResponderTests.lumos, X_OK) == 0, "needs the lumos binary (swift build --build-tests)"))
    func guestTakesItsAddressFromTheSwitchResponder() throws {
        let scratch = try Scratch("sw")
        defer { scratch.remove() }
        let guest = try SmallGuest.build(into: "\(scratch.path)/guest")
        let network = try GuestNetwork(tag: "vmsw", subnet: "10.82.0")
        defer { try? network.remove() }
        let root = StateRoot("\(scratch.path)/state")
        let host = NetworkHost(root: root, namespace: network.namespace, executable: Self.lumos)
        let sw = "vmsw\(String(UInt32.random(in: 0...0xfff), radix: 16))"
        try host.createEtherstub(sw)
        try network.tools.ipBatch(["addr add 10.81.0.1/24 dev \(sw)"])

        let mac = MACAddress.generate()
        let server = IPAddress("10.81.0.1")!
        let lease = DHCPLease(mac: mac, address: IPNetwork("10.81.0.7/24")!, gateway: server, hostname: "vm-on-switch", serverID: server)
        let leaseFile = "\(NetStore(root: root).dir)/dhcp/\(sw).json"
        try Files.makeDirectories(Files.parent(leaseFile))
        try Files.writeAtomically(leaseFile, Array(try JSONEncoder().encode([lease])))
        let responder = try NetTools.withThread(inNamespace: network.namespace.path!) {
            try Exec.spawn([Self.lumos, "net", "dhcpd", "--root", root.path, sw], stdout: .null, stderr: .null)
        }
        var responderReaped = false
        defer {
            Files.remove(leaseFile)
            if !responderReaped { kill(responder, SIGKILL); _ = Exec.wait(responder) }
        }
        let pidFile = root.sub("run", "net", "dhcpd-\(sw).pid")
        let ready = Monotonic.now + 10
        while !Files.exists(pidFile) && Monotonic.now < ready { usleep(20_000) }
        #expect(Files.exists(pidFile), "the responder did not start")

        let tap = try Tap(name: "\(sw)t", namespace: network.namespace, bridge: sw)
        defer { tap.close() }
        let disk = try sys("open", guest.disk) { open(guest.disk, O_RDWR | O_CLOEXEC) }
        defer { close(disk) }
        let vm = VMDescription(name: "on-switch", machine: .q35, accelerator: try AcceleratorProbe.choose().accelerator, memoryMiB: 128,
                               disks: [.init(descriptor: disk, boot: true)], nics: [.init(tapDescriptor: tap.descriptor, mac: mac)],
                               kernelBoot: guest.kernelBoot(for: .q35), runDirectory: "\(scratch.path)/run")
        let qemu = try QEMUProcess(vm)
        defer { qemu.kill() }
        try network.tools.ipBatch(["neigh replace 10.81.0.7 lladdr \(mac) dev \(sw) nud permanent"])
        let replied = try network.tools.run(["ping", "-n", "-q", "-c", "1", "-i", "0.05", "-w", "120", "10.81.0.7"], check: false).status == 0
        let console = waitForConsole(vm.consoleLogPath, containing: "lumos-guest: eth0 bound", seconds: replied ? 10 : 0)
        #expect(replied, "console:\n\(console.suffix(1500))")
        #expect(console.contains("lumos-guest: eth0 bound 10.81.0.7/24"))
        #expect(qemu.stop(timeout: 60) == .poweredOff)

        // The responder exits by itself once its lease file is gone (docs/net.md).
        Files.remove(leaseFile)
        let end = Monotonic.now + 10
        var status: Int32 = 0
        while Monotonic.now < end {
            if waitpid(responder, &status, WNOHANG) == responder { responderReaped = true; break }
            usleep(50_000)
        }
        #expect(responderReaped, "the responder kept running without its lease file")
    }
}
