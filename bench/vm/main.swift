// bench/vm: the small guest from QEMU start to its first ping reply, through the VM module
// (Tap + VMDescription + QEMUProcess: descriptors, -sandbox, QMP and console sockets) against
// the same kernel, initramfs and disk started by hand with a plain qemu-system-x86_64 command
// line in the same run, interleaved, and the module on microvm with the PVH kernel; plus QEMU's resident memory beyond the guest's RAM (smaps).
// Both guests take their address by DHCP from the same in-process server (Tests/VMTestSupport)
// on a bridge in a namespace made for the run. Prints markdown. See BENCHMARKS.md.
// Usage: sudo [KEEP=1] [TB_SIZE=MiB] .build/debug/vm-bench [RUNS]   (or bench/vm.sh, which builds it in release mode)
import Foundation
import Glibc
import LumosCore
import Net
import VM
import VMTestSupport

let runs = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 5 : 5
let ramMiB = 128
// TB_SIZE=N gives the module's VMs a TCG translation cache of N MiB (QEMU's default otherwise).
let tbSize = getenv("TB_SIZE").flatMap { Int(String(cString: $0)) }

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.isEmpty ? .nan : s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

func f(_ x: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", x) }

/// QEMU's memory in KiB from /proc/PID/smaps: all resident memory, the guest's RAM (the one
/// anonymous mapping of exactly the RAM size) and TCG's translation cache (the rwx mapping).
struct Memory { var rss = 0, guestRAM = 0, translationCache = 0; var own: Int { rss - guestRAM } }

func memory(_ pid: pid_t, ramMiB: Int) -> Memory {
    guard let text = try? FD.readText("/proc/\(pid)/smaps") else { return Memory() }
    var m = Memory()
    var perms = "", size = 0
    for line in text.split(separator: "\n") {
        let f = line.split(separator: " ", omittingEmptySubsequences: true)
        guard let key = f.first else { continue }
        if key.contains("-") && !key.hasSuffix(":") { perms = f.count > 1 ? String(f[1]) : ""; continue }
        let kb = f.count > 1 ? Int(f[1]) ?? 0 : 0
        if key == "Size:" { size = kb }
        if key == "Rss:" {
            m.rss += kb
            if size == ramMiB * 1024 && perms == "rw-p" { m.guestRAM += kb }
            if perms == "rwxp" { m.translationCache += kb }
        }
    }
    return m
}

func run() throws {
    let work = "/tmp/lumos-vm-bench-\(getpid())"
    try Files.makeDirectories(work, mode: 0o700)
    // KEEP=1 leaves the guest, consoles and QEMU logs for inspection.
    defer { if getenv("KEEP") == nil { _ = try? Exec.run(["rm", "-rf", "--one-file-system", work]) } else { print("kept \(work)") } }
    let t0 = Monotonic.now
    let guest = try SmallGuest.build(into: "\(work)/guest")
    let buildSeconds = Monotonic.now - t0
    let accel = try AcceleratorProbe.choose()
    let network = try GuestNetwork(tag: "vmb", subnet: "10.78.0")
    defer { try? network.remove() }
    let lumosMAC = MACAddress.generate()
    let bareMAC = MACAddress.generate(avoiding: [lumosMAC])
    let lumosDHCP = try network.dhcp(network.lease(1, mac: lumosMAC))
    defer { lumosDHCP.stop() }
    let bareDHCP = try network.dhcp(network.lease(2, mac: bareMAC))
    defer { bareDHCP.stop() }
    let microMAC = MACAddress.generate(avoiding: [lumosMAC, bareMAC])
    let microDHCP = try network.dhcp(network.lease(3, mac: microMAC))
    defer { microDHCP.stop() }

    var lumosTimes: [Double] = [], bareTimes: [Double] = [], microTimes: [Double] = []
    var lumosMem: [Memory] = [], bareMem: [Memory] = [], microMem: [Memory] = []
    // Through the VM module: tap in the namespace, disk as a descriptor, everything QEMU
    // needs handed over at spawn.
    func viaModule(_ i: Int, machine: VMDescription.Machine) throws {
        let micro = machine == .microvm
        let mac = micro ? microMAC : lumosMAC, address = micro ? "10.78.0.4" : "10.78.0.2"
        let start = Monotonic.now
        let tap = try Tap(name: "vmb\(micro ? "m" : "l")\(i)", namespace: network.namespace, bridge: network.bridge)
        defer { tap.close() }
        let disk = try sys("open", guest.disk) { open(guest.disk, O_RDWR | O_CLOEXEC) }
        defer { close(disk) }
        let vm = VMDescription(name: "bench-\(i)", machine: machine, accelerator: accel.accelerator, memoryMiB: ramMiB,
                               disks: [.init(descriptor: disk, boot: true)], nics: [.init(tapDescriptor: tap.descriptor, mac: mac)],
                               kernelBoot: guest.kernelBoot(for: machine), runDirectory: "\(work)/run-\(machine.rawValue)-\(i)",
                               tcgTranslationCacheMiB: tbSize)
        let qemu = try QEMUProcess(vm)
        defer { qemu.kill() }
        guard try network.ping(address, mac: mac, seconds: 120) else { throw LumosError.failed("run \(i): the \(machine.rawValue) guest never answered ping") }
        let elapsed = Monotonic.now - start
        if micro { microTimes.append(elapsed); microMem.append(memory(qemu.pid, ramMiB: ramMiB)) } else {
            lumosTimes.append(elapsed); lumosMem.append(memory(qemu.pid, ramMiB: ramMiB))
        }
        if qemu.stop(timeout: 30) != .poweredOff { FileHandle.standardError.write("run \(i): Lumos guest did not power off; killed\n".data(using: .utf8)!) }
    }
    // By hand: a persistent tap made with ip tuntap, the disk by path, QEMU's defaults.
    func byHand(_ i: Int) throws {
        let tapName = "vmbb\(i)"
        try network.tools.ipBatch(["tuntap add dev \(tapName) mode tap", "link set dev \(tapName) master \(network.bridge)", "link set dev \(tapName) up"])
        defer { try? network.tools.ipBatch(["link delete \(tapName)"]) }
        let qmp = "\(work)/bare-\(i).qmp"
        let argv = ["qemu-system-x86_64", "-machine", "q35", "-accel", accel.accelerator.rawValue, "-m", "\(ramMiB)", "-display", "none",
                    "-kernel", guest.kernel, "-initrd", guest.initrd, "-append", guest.commandLine,
                    "-drive", "file=\(guest.disk),format=raw,if=virtio",
                    "-netdev", "tap,id=n0,ifname=\(tapName),script=no,downscript=no", "-device", "virtio-net-pci,netdev=n0,mac=\(bareMAC)",
                    "-serial", "file:\(work)/bare-\(i).console", "-qmp", "unix:\(qmp),server=on,wait=off"]
        let start = Monotonic.now
        // QEMU opens the tap by name, so it must start inside the namespace.
        let pid = try NetTools.withThread(inNamespace: network.namespace.path!) { try Exec.spawn(argv, stdout: .null, stderr: .null) }
        var reaped = false
        defer { if !reaped { kill(pid, SIGKILL); _ = Exec.wait(pid) } }
        guard try network.ping("10.78.0.3", mac: bareMAC, seconds: 120) else { throw LumosError.failed("run \(i): the hand-started guest never answered ping") }
        bareTimes.append(Monotonic.now - start)
        bareMem.append(memory(pid, ramMiB: ramMiB))
        let q = try QMPClient(socketPath: qmp)
        try q.powerdown()
        let deadline = Monotonic.now + 30
        var status: Int32 = 0
        while Monotonic.now < deadline {
            if waitpid(pid, &status, WNOHANG) == pid { reaped = true; break }
            usleep(20_000)
        }
    }
    // Interleaved, rotating which goes first, so none always finds a warmer cache.
    let order: [(Int) throws -> Void] = [{ try viaModule($0, machine: .q35) }, { try byHand($0) }, { try viaModule($0, machine: .microvm) }]
    for i in 0..<runs {
        for k in 0..<order.count { try order[(i + k) % order.count](i) }
    }
    let lm = median(lumosTimes), bm = median(bareTimes)
    func mib(_ xs: [Memory], _ k: KeyPath<Memory, Int>) -> String { f(Double(xs.map { $0[keyPath: k] }.sorted()[xs.count / 2]) / 1024, 1) }
    print("## VM: small guest, QEMU start → first ping reply (\(accel.accelerator.rawValue), \(ramMiB) MiB, median of \(runs)\(tbSize.map { ", module with tb-size=\($0)" } ?? ""))")
    print("")
    let mm = median(microTimes)
    print("| | VM module, q35 (Tap, fds, -sandbox, QMP) | plain qemu-system-x86_64, q35 | module / plain | VM module, microvm (PVH vmlinux) | microvm / plain |")
    print("|---|---|---|---|---|---|")
    print("| start → first ping reply (s) | \(f(lm)) | \(f(bm)) | \(f(lm / bm)) | \(f(mm)) | \(f(mm / bm)) |")
    print("| QEMU RSS at first reply (MiB) | \(mib(lumosMem, \.rss)) | \(mib(bareMem, \.rss)) | | \(mib(microMem, \.rss)) | |")
    print("| of which guest RAM touched (MiB) | \(mib(lumosMem, \.guestRAM)) | \(mib(bareMem, \.guestRAM)) | | \(mib(microMem, \.guestRAM)) | |")
    print("| QEMU's own memory: RSS minus guest RAM (MiB) | \(mib(lumosMem, \.own)) | \(mib(bareMem, \.own)) | | \(mib(microMem, \.own)) | |")
    print("| of which TCG translation cache (MiB) | \(mib(lumosMem, \.translationCache)) | \(mib(bareMem, \.translationCache)) | | \(mib(microMem, \.translationCache)) | |")
    print("")
    print("all runs (s): module q35 \(lumosTimes.map { f($0) }.joined(separator: " ")); plain \(bareTimes.map { f($0) }.joined(separator: " ")); module microvm \(microTimes.map { f($0) }.joined(separator: " "))")
    print("small guest build (kernel cached): \(f(buildSeconds)) s; accelerator: \(accel)")
}

do { try run() } catch {
    FileHandle.standardError.write("vm-bench: \(oneLine(error))\n".data(using: .utf8)!)
    exit(1)
}
