import Foundation
import Glibc
import LumosCore
import Net
import Testing
import VMTestSupport
@testable import VM

/// The small guest on a tenant tap (`TenantNetwork.attachTaps`, docs/net.md "Tenant taps"):
/// the switch's responder hands it the manifest address from the tenant record, it answers
/// ping from the switch's host side and from a zone on the same switch, and when root inside the guest takes another address or
/// MAC (typed on its serial console) its replies are dropped by anti-spoofing.
@Suite(.serialized, .enabled(if: isRoot && hasQEMU, "needs root (namespaces, taps) and qemu-system-x86_64"))
struct TenantTapBootTests {
    @Test(.enabled(if: access(SwitchResponderTests.lumos, X_OK) == 0, "needs the lumos binary (swift build --build-tests)"))
    func guestOnATenantTapGetsItsManifestAddressAndCannotSpoof() throws {
        let scratch = try Scratch("ttap")
        defer { scratch.remove() }
        let guest = try SmallGuest.build(into: "\(scratch.path)/guest")
        let network = try GuestNetwork(tag: "vmtt", subnet: "10.83.0")
        defer { try? network.remove() }
        let host = NetworkHost(root: StateRoot("\(scratch.path)/state"), namespace: network.namespace, executable: SwitchResponderTests.lumos)
        let sw = "vmtt\(String(UInt32.random(in: 0...0xfff), radix: 16))"
        try host.createEtherstub(sw)
        try host.addHostAddress(sw, "10.84.0.1/24")
        let net = TenantNetwork(host: host)
        let uuid = UUID().uuidString.lowercased()
        let taps = try net.attachTaps(tenant: uuid, nics: [NicSpec(nicTag: sw, ips: ["10.84.0.7/24"], gateways: ["10.84.0.1"], primary: true)],
                                      hostname: "vm-on-tap")
        defer {
            taps.forEach { $0.close() }
            try? net.cleanup(tenant: uuid)
            try? DHCPService(host: host).stop(switchName: sw)
        }
        let mac = taps[0].mac
        let disk = try sys("open", guest.disk) { open(guest.disk, O_RDWR | O_CLOEXEC) }
        defer { close(disk) }
        let vm = VMDescription(name: "on-tap", machine: .q35, accelerator: try AcceleratorProbe.choose().accelerator, memoryMiB: 128,
                               disks: [.init(descriptor: disk, boot: true)], nics: [.init(tapDescriptor: taps[0].descriptor, mac: mac)],
                               kernelBoot: guest.kernelBoot(for: .q35), runDirectory: "\(scratch.path)/run")
        let qemu = try QEMUProcess(vm)
        defer { qemu.kill() }
        func ping(_ ip: String, lladdr: MACAddress, seconds: Int) throws -> Bool {
            try network.tools.ipBatch(["neigh replace \(ip) lladdr \(lladdr) dev \(sw) nud permanent"])
            return try network.tools.run(["ping", "-n", "-q", "-c", "1", "-i", "0.05", "-w", "\(seconds)", ip], check: false).status == 0
        }
        let replied = try ping("10.84.0.7", lladdr: mac, seconds: 120)
        let console = waitForConsole(vm.consoleLogPath, containing: "lumos-guest: eth0 bound", seconds: replied ? 10 : 0)
        #expect(replied, "console:\n\(console.suffix(1500))")
        #expect(console.contains("lumos-guest: eth0 bound 10.84.0.7/24"))
        try #require(replied)

        // A zone on the same switch (a veth tenant in a namespace of its own) reaches the VM.
        let zoneNS = "lumos-vmttz-\(getpid())-\(String(UInt32.random(in: 0...0xffffff), radix: 16))"
        try Exec.run(["ip", "netns", "add", zoneNS])
        defer { _ = try? Exec.run(["ip", "netns", "delete", zoneNS], check: false) }
        let zone = UUID().uuidString.lowercased()
        try net.attach(tenant: zone, nics: [NicSpec(nicTag: sw, ips: ["10.84.0.9/24"])], netns: .named(zoneNS))
        defer { try? net.cleanup(tenant: zone) }
        #expect(try NetTools(.named(zoneNS)).run(["ping", "-n", "-q", "-c", "1", "-w", "10", "10.84.0.7"], check: false).status == 0,
                "the zone does not reach the VM")
        try net.detach(tenant: zone)

        // Root in the guest adds an address that is not its own, then takes another MAC, then
        // its own MAC back: one line typed on its console, each step announced by a marker.
        let forged = MACAddress("02:de:ad:be:ef:02")!
        let shell = try GuestConsole(vm.consoleSocket)
        defer { shell.close() }
        try shell.type(steps: ["ip addr add 10.84.0.50/24 dev eth0", "ip link set eth0 address \(forged)", "ip link set eth0 address \(mac)"],
                       pause: 12, log: vm.consoleLogPath)
        try shell.waitFor(step: 1, log: vm.consoleLogPath)
        let start = Monotonic.now
        // Replies from the address that is not its own are dropped; its own still works.
        #expect(try !ping("10.84.0.50", lladdr: mac, seconds: 3), "a reply from a spoofed address passed")
        #expect(try ping("10.84.0.7", lladdr: mac, seconds: 5))
        #expect(Monotonic.now - start < 12, "the checks took longer than the guest's pause")
        // With another MAC nothing it sends passes.
        try shell.waitFor(step: 2, log: vm.consoleLogPath)
        #expect(try !ping("10.84.0.7", lladdr: forged, seconds: 3), "a reply from a spoofed MAC passed")
        // Back to its own MAC, traffic flows again (the drop was the MAC, not a dead guest).
        try shell.waitFor(step: 3, log: vm.consoleLogPath)
        #expect(try ping("10.84.0.7", lladdr: mac, seconds: 10))

        #expect(qemu.stop(timeout: 60) == .poweredOff)
        taps[0].close()
        try net.detach(tenant: uuid)
        #expect(try host.tools.links().map(\.name).filter { TenantNetwork.isTenantLink($0) }.isEmpty)
        #expect(try host.tools.nftCommand(["list", "table", "bridge", "lumos"], check: false).status != 0)
        #expect(DHCPService(host: host).runningPid(switchName: sw) == nil)
    }
}

/// The guest's serial console socket, for typing commands into its root shell. What QEMU
/// sends on it must be read: with a connected client that does not read, the guest's console
/// output stopped after a few lines here (console.log too).
final class GuestConsole {
    let fd: Int32

    init(_ path: String) throws { fd = try QMPClient.connect(path) }

    /// Types `text` a few bytes at a time: the emulated UART's FIFO drops what a guest under
    /// TCG does not read in time.
    func type(_ text: String) throws {
        let bytes = Array(text.utf8)
        for start in stride(from: 0, to: bytes.count, by: 4) {
            guard FD.writeAll(fd, Array(bytes[start..<min(start + 4, bytes.count)])) else { throw Errno(errno, "write", "console") }
            usleep(20_000)
            drain()
        }
    }

    /// Types one line at the shell's prompt that runs `steps` in the background, `pause`
    /// seconds apart, each followed (when it succeeded) by the marker `lumos-test-step-N` (printed as an
    /// arithmetic result, which the echoed line does not contain).
    func type(steps: [String], pause: Int, log: String) throws {
        let prompt = Monotonic.now + 20
        while !(((try? FD.readText(log)) ?? "").contains(":/# ")) && Monotonic.now < prompt {
            try type("\n")
            usleep(500_000)
        }
        usleep(500_000)
        let body = steps.enumerated().map { "\($1) && echo lumos-test-step-$((\($0 + 1) + 1000))" }.joined(separator: "; sleep \(pause); ")
        try type("(\(body)) &\n")
    }

    /// What QEMU sent on the socket so far.
    private(set) var received = ""

    func drain() {
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 0) > 0 else { return }
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            received += String(decoding: buf[0..<n], as: UTF8.self)
        }
    }

    func waitFor(step: Int, log: String) throws {
        let end = Monotonic.now + 30
        while Monotonic.now < end && !received.contains("lumos-test-step-\(step + 1000)") {
            drain()
            usleep(50_000)
        }
        let seen = (try? FD.readText(log)) ?? ""
        if !received.contains("lumos-test-step-\(step + 1000)") {
            throw LumosError.failed("guest console did not reach step \(step):\n\(seen.suffix(800))\nsocket:\n\(received.suffix(800))")
        }
    }

    func close() { Glibc.close(fd) }
}
