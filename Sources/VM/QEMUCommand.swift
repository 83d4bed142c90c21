import LumosCore

/// QEMU's argv for a `VMDescription`, and the descriptors to hand it.
///
/// The child gets `descriptors[i]` as fd 3+i (`QEMUProcess` maps them, everything else is
/// closed), and argv names them by those numbers: disks through fdsets (`-add-fd` and
/// /dev/fdset/N, so the block layer opens them like files), taps with `-netdev tap,fd=N`.
/// Always: -nodefaults and -no-user-config (no device or config file we did not ask for),
/// QEMU's own seccomp sandbox with every optional deny, no display unless asked.
public struct QEMUCommand: Sendable, Equatable {
    public var argv: [String]
    /// The caller's descriptors, in the order the child must see them from fd 3.
    public var descriptors: [Int32]

    public static let binary = "qemu-system-x86_64"
    /// QEMU's -sandbox: seccomp in QEMU itself, denying obsolete system calls, set*uid and
    /// friends, fork/exec (so no helper scripts: taps come as descriptors) and scheduler or
    /// CPU-affinity changes (the jail's cgroups own those).
    public static let sandbox = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
    /// sun_path holds 108 bytes with its NUL.
    static let maxSocketPath = 107

    public static func build(_ vm: VMDescription) throws -> QEMUCommand {
        try validate(vm)
        var a: [String] = [binary]
        var fds: [Int32] = []
        func pass(_ fd: Int32) -> Int { fds.append(fd); return 2 + fds.count }

        a += ["-name", "guest=\(vm.name),debug-threads=on"]
        a += ["-nodefaults", "-no-user-config"]
        a += ["-sandbox", sandbox]
        a += ["-machine", machineOption(vm)]
        switch vm.accelerator {
        case .kvm: a += ["-accel", "kvm"]
        case .tcg: a += ["-accel", vm.tcgTranslationCacheMiB.map { "tcg,tb-size=\($0)" } ?? "tcg"]
        }
        a += ["-cpu", vm.cpu]
        a += ["-m", "\(vm.memoryMiB)M"]
        a += ["-smp", "\(vm.vcpus)"]

        // Serial console and QMP: unix sockets QEMU listens on, never waiting for a client.
        var console = "socket,id=console,path=\(vm.consoleSocket),server=on,wait=off"
        if vm.consoleLog { console += ",logfile=\(vm.consoleLogPath),logappend=on" }
        a += ["-chardev", console, "-serial", "chardev:console"]
        a += ["-chardev", "socket,id=qmp,path=\(vm.qmpSocket),server=on,wait=off", "-mon", "chardev=qmp,mode=control"]
        // A second monitor for whoever watches events (the console relay: docs/vm.md, "How a
        // VM ends"); a QMP socket serves one client at a time, and qmp.sock is vmadm's.
        a += ["-chardev", "socket,id=events,path=\(vm.eventsSocket),server=on,wait=off", "-mon", "chardev=events,mode=control"]
        // pvpanic: a guest kernel that panics says so (GUEST_PANICKED, then SHUTDOWN guest-panic),
        // where it would otherwise hang or reboot unseen.
        if vm.machine != .microvm { a += ["-device", "pvpanic"] }

        switch vm.vnc {
        case nil: a += ["-display", "none"]
        case .unixSocket?: a += ["-vnc", "unix:\(vm.vncSocket)"]
        case .tcp(let address, let display, let password)?:
            a += ["-vnc", "\(address):\(display)" + (password ? ",password=on" : "")]
        }
        if let vga = vm.vga { a += ["-vga", vga] }

        let mmio = vm.machine == .microvm
        if vm.disks.contains(where: { $0.model == .scsi }) {
            a += ["-device", "virtio-scsi-pci,id=scsi0"]
        }
        for (i, disk) in vm.disks.enumerated() {
            let set = i + 1
            let fd = pass(disk.descriptor)
            let node = "disk\(i)"
            a += ["-add-fd", "fd=\(fd),set=\(set),opaque=\(node)"]
            a += ["-blockdev", "driver=raw,node-name=\(node),read-only=\(disk.readOnly ? "on" : "off"),"
                + "file.driver=file,file.filename=/dev/fdset/\(set)"]
            var device: String
            switch (disk.model, disk.media) {
            case (.virtio, _): device = mmio ? "virtio-blk-device" : "virtio-blk-pci"
            case (.ide, .disk): device = "ide-hd," + ideSlot(vm, disk: i)
            case (.ide, .cdrom): device = "ide-cd," + ideSlot(vm, disk: i)
            case (.scsi, .disk): device = "scsi-hd,bus=scsi0.0"
            case (.scsi, .cdrom): device = "scsi-cd,bus=scsi0.0"
            }
            device += ",drive=\(node),id=vd\(i)"
            if let bs = disk.blockSize { device += ",logical_block_size=\(bs),physical_block_size=\(bs)" }
            // bootindex 0 is taken by the kernel's option ROM in a direct-kernel boot; 1 is
            // still first among devices.
            if disk.boot { device += ",bootindex=1" }
            a += ["-device", device]
        }
        for (i, nic) in vm.nics.enumerated() {
            let fd = pass(nic.tapDescriptor)
            // No vhost-net: userspace virtio works everywhere (this kernel has no vhost-net).
            a += ["-netdev", "tap,id=net\(i),fd=\(fd),vhost=off"]
            let model: String
            switch nic.model {
            case .virtio: model = mmio ? "virtio-net-device" : "virtio-net-pci"
            case .e1000: model = "e1000"
            case .rtl8139: model = "rtl8139"
            }
            a += ["-device", "\(model),netdev=net\(i),mac=\(nic.mac),id=nic\(i)"]
        }
        if let k = vm.kernelBoot {
            a += ["-kernel", k.kernel]
            if let initrd = k.initrd { a += ["-initrd", initrd] }
            a += ["-append", k.commandLine]
        }
        return QEMUCommand(argv: a, descriptors: fds)
    }

    /// IDE places are explicit: QEMU's automatic choice puts a second device on q35's first
    /// AHCI port, which holds one. q35 has six one-unit buses, pc (PIIX) two buses of two.
    static func ideSlot(_ vm: VMDescription, disk: Int) -> String {
        let k = vm.disks[..<disk].filter { $0.model == .ide }.count
        return vm.machine == .pc ? "bus=ide.\(k / 2),unit=\(k % 2)" : "bus=ide.\(k)"
    }

    static func machineOption(_ vm: VMDescription) -> String {
        switch vm.machine {
        case .pc: return "pc"
        case .q35: return "q35"
        // microvm calibrates the TSC against the PIT; without it a TCG guest can hang there.
        case .microvm: return "microvm,pit=on,acpi=on"
        }
    }

    /// One-line errors for descriptions QEMU would refuse or misread.
    static func validate(_ vm: VMDescription) throws {
        let nameOK = !vm.name.isEmpty && vm.name.utf8.count <= 64 && vm.name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
        if !nameOK { throw LumosError.invalid("VM name \"\(vm.name)\": use 1-64 letters, digits, '-', '_' or '.'") }
        if vm.memoryMiB < 16 { throw LumosError.invalid("ram \(vm.memoryMiB) MiB is too small for any guest; give at least 16") }
        if vm.vcpus < 1 || vm.vcpus > 255 { throw LumosError.invalid("vcpus \(vm.vcpus): use 1 to 255") }
        if vm.cpu.isEmpty || vm.cpu.contains(where: { $0 == " " || $0 == "\n" }) {
            throw LumosError.invalid("cpu_type \"\(vm.cpu)\": name a QEMU CPU model such as qemu64, host or max")
        }
        if vm.cpu.hasPrefix("host") && vm.accelerator != .kvm {
            throw LumosError.invalid("cpu_type host needs KVM; this VM runs under TCG: use qemu64 or max")
        }
        for path in [vm.qmpSocket, vm.eventsSocket, vm.consoleSocket] + (vm.vnc == .unixSocket ? [vm.vncSocket] : []) where path.utf8.count > maxSocketPath {
            throw LumosError.invalid("run directory \(vm.runDirectory) is too long for a unix socket path (\(path.utf8.count) > \(maxSocketPath) bytes); use a shorter one")
        }
        if vm.runDirectory.contains(",") { throw LumosError.invalid("run directory \(vm.runDirectory): QEMU options cannot hold a ','") }
        if let k = vm.kernelBoot {
            for p in [k.kernel] + (k.initrd.map { [$0] } ?? []) where p.contains(",") {
                throw LumosError.invalid("kernel path \(p): QEMU options cannot hold a ','")
            }
        }
        if vm.disks.filter(\.boot).count > 1 { throw LumosError.invalid("disks: only one disk can have boot=true") }
        for (i, d) in vm.disks.enumerated() {
            if d.descriptor < 0 { throw LumosError.invalid("disks[\(i)]: no open descriptor") }
            if d.model == .virtio && d.media == .cdrom {
                throw LumosError.invalid("disks[\(i)]: media cdrom needs model ide or scsi (virtio-blk has no CD-ROM)")
            }
            if vm.machine == .microvm && d.model != .virtio {
                throw LumosError.invalid("disks[\(i)]: model \(d.model.rawValue) needs a PCI machine; microvm takes only virtio")
            }
            if let bs = d.blockSize, bs < 512 || bs > 32768 || bs & (bs - 1) != 0 {
                throw LumosError.invalid("disks[\(i)].block_size \(bs): use a power of two from 512 to 32768")
            }
        }
        let ide = vm.disks.filter { $0.model == .ide }.count
        let idePlaces = vm.machine == .pc ? 4 : 6
        if ide > idePlaces {
            throw LumosError.invalid("disks: \(ide) ide disks, but machine \(vm.machine.rawValue) has \(idePlaces) places; use virtio or scsi for the rest")
        }
        for (i, n) in vm.nics.enumerated() {
            if n.tapDescriptor < 0 { throw LumosError.invalid("nics[\(i)]: no open tap descriptor") }
            if vm.machine == .microvm && n.model != .virtio {
                throw LumosError.invalid("nics[\(i)]: model \(n.model.rawValue) needs a PCI machine; microvm takes only virtio")
            }
            if n.mac.isMulticast || n.mac.isZero { throw LumosError.invalid("nics[\(i)].mac \(n.mac): use a unicast MAC address") }
        }
        if vm.machine == .microvm && vm.kernelBoot == nil {
            throw LumosError.invalid("machine microvm has no firmware boot: give a kernel to boot")
        }
        if let vga = vm.vga, !["std", "cirrus", "vmware", "virtio", "qxl", "none"].contains(vga) {
            throw LumosError.invalid("vga \(vga): use std, cirrus, vmware, virtio, qxl or none")
        }
        if case .tcp(let address, let display, _)? = vm.vnc {
            if address.isEmpty || address.contains(",") || address.contains(" ") { throw LumosError.invalid("vnc address \"\(address)\": give an IP address or host name") }
            if display < 0 || display > 59635 { throw LumosError.invalid("vnc display \(display): use 0 to 59635 (port 5900 + display)") }
        }
        if let tb = vm.tcgTranslationCacheMiB, tb < 1 { throw LumosError.invalid("TCG translation cache \(tb) MiB: give at least 1") }
    }
}
