import LumosCore
import Net
import Testing
@testable import VM

/// argv for each option of a `VMDescription` (no QEMU started).
@Suite struct QEMUCommandTests {
    let mac = MACAddress("52:54:00:12:34:56")!

    func vm(_ change: (inout VMDescription) -> Void = { _ in }) -> VMDescription {
        var d = VMDescription(name: "vm01", accelerator: .tcg, runDirectory: "/run/lumos/vm/abc")
        change(&d)
        return d
    }

    /// The value following `flag`, for every occurrence.
    func values(_ argv: [String], _ flag: String) -> [String] {
        zip(argv, argv.dropFirst()).filter { $0.0 == flag }.map(\.1)
    }

    @Test func baseline() throws {
        let c = try QEMUCommand.build(vm())
        #expect(c.argv.first == "qemu-system-x86_64")
        #expect(c.argv.contains("-nodefaults") && c.argv.contains("-no-user-config"))
        #expect(values(c.argv, "-sandbox") == ["on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"])
        #expect(values(c.argv, "-machine") == ["q35"])
        #expect(values(c.argv, "-accel") == ["tcg"])
        #expect(values(c.argv, "-cpu") == ["qemu64"])
        #expect(values(c.argv, "-m") == ["256M"])
        #expect(values(c.argv, "-smp") == ["1"])
        #expect(values(c.argv, "-name") == ["guest=vm01,debug-threads=on"])
        #expect(values(c.argv, "-display") == ["none"])
        #expect(!c.argv.contains("-vnc"))
        #expect(!c.argv.contains("-vga"))
        #expect(c.descriptors.isEmpty)
    }

    @Test func machineAcceleratorCPUMemory() throws {
        let c = try QEMUCommand.build(vm { $0.machine = .pc; $0.accelerator = .kvm; $0.cpu = "host"; $0.memoryMiB = 1024; $0.vcpus = 4 })
        #expect(values(c.argv, "-machine") == ["pc"])
        #expect(values(c.argv, "-accel") == ["kvm"])
        #expect(values(c.argv, "-cpu") == ["host"])
        #expect(values(c.argv, "-m") == ["1024M"])
        #expect(values(c.argv, "-smp") == ["4"])
        let m = try QEMUCommand.build(vm { $0.machine = .microvm; $0.kernelBoot = .init(kernel: "/k", commandLine: "console=ttyS0") })
        #expect(values(m.argv, "-machine") == ["microvm,pit=on,acpi=on"])
        let t = try QEMUCommand.build(vm { $0.tcgTranslationCacheMiB = 64 })
        #expect(values(t.argv, "-accel") == ["tcg,tb-size=64"])
    }

    @Test func consoleAndQMPSockets() throws {
        let c = try QEMUCommand.build(vm())
        #expect(values(c.argv, "-chardev") == [
            "socket,id=console,path=/run/lumos/vm/abc/console.sock,server=on,wait=off,logfile=/run/lumos/vm/abc/console.log,logappend=on",
            "socket,id=qmp,path=/run/lumos/vm/abc/qmp.sock,server=on,wait=off",
            "socket,id=events,path=/run/lumos/vm/abc/events.sock,server=on,wait=off",
        ])
        #expect(values(c.argv, "-serial") == ["chardev:console"])
        #expect(values(c.argv, "-mon") == ["chardev=qmp,mode=control", "chardev=events,mode=control"])
        let quiet = try QEMUCommand.build(vm { $0.consoleLog = false })
        #expect(values(quiet.argv, "-chardev").first == "socket,id=console,path=/run/lumos/vm/abc/console.sock,server=on,wait=off")
    }

    @Test func disksAsFdsets() throws {
        let c = try QEMUCommand.build(vm {
            $0.disks = [
                .init(descriptor: 40, model: .virtio, boot: true),
                .init(descriptor: 41, model: .ide),
                .init(descriptor: 42, model: .scsi, blockSize: 4096),
                .init(descriptor: 43, model: .ide, media: .cdrom),
                .init(descriptor: 44, model: .scsi, media: .cdrom),
            ]
        })
        #expect(c.descriptors == [40, 41, 42, 43, 44])
        #expect(values(c.argv, "-add-fd") == (0..<5).map { "fd=\(3 + $0),set=\($0 + 1),opaque=disk\($0)" })
        let blockdevs = values(c.argv, "-blockdev")
        #expect(blockdevs[0] == "driver=raw,node-name=disk0,read-only=off,file.driver=file,file.filename=/dev/fdset/1")
        #expect(blockdevs[3] == "driver=raw,node-name=disk3,read-only=on,file.driver=file,file.filename=/dev/fdset/4")
        #expect(values(c.argv, "-device") == [
            "pvpanic",
            "virtio-scsi-pci,id=scsi0",
            "virtio-blk-pci,drive=disk0,id=vd0,bootindex=1",
            "ide-hd,bus=ide.0,drive=disk1,id=vd1",
            "scsi-hd,bus=scsi0.0,drive=disk2,id=vd2,logical_block_size=4096,physical_block_size=4096",
            "ide-cd,bus=ide.1,drive=disk3,id=vd3",
            "scsi-cd,bus=scsi0.0,drive=disk4,id=vd4",
        ])
    }

    @Test func idePlacesOnPC() throws {
        let c = try QEMUCommand.build(vm { m in
            m.machine = .pc
            m.disks = (0..<4).map { VMDescription.Disk(descriptor: Int32(10 + $0), model: .ide, media: $0 == 3 ? .cdrom : .disk) }
        })
        #expect(values(c.argv, "-device") == [
            "pvpanic",
            "ide-hd,bus=ide.0,unit=0,drive=disk0,id=vd0", "ide-hd,bus=ide.0,unit=1,drive=disk1,id=vd1",
            "ide-hd,bus=ide.1,unit=0,drive=disk2,id=vd2", "ide-cd,bus=ide.1,unit=1,drive=disk3,id=vd3",
        ])
    }

    @Test func nicsAsTapFds() throws {
        let other = MACAddress("52:54:00:00:00:02")!
        let c = try QEMUCommand.build(vm {
            $0.disks = [.init(descriptor: 9)]
            $0.nics = [.init(tapDescriptor: 7, model: .virtio, mac: mac), .init(tapDescriptor: 8, model: .e1000, mac: other),
                       .init(tapDescriptor: 10, model: .rtl8139, mac: mac)]
        })
        // The disk is fd 3; taps follow in order.
        #expect(c.descriptors == [9, 7, 8, 10])
        #expect(values(c.argv, "-netdev") == ["tap,id=net0,fd=4,vhost=off", "tap,id=net1,fd=5,vhost=off", "tap,id=net2,fd=6,vhost=off"])
        let devices = values(c.argv, "-device")
        #expect(devices.contains("virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56,id=nic0"))
        #expect(devices.contains("e1000,netdev=net1,mac=52:54:00:00:00:02,id=nic1"))
        #expect(devices.contains("rtl8139,netdev=net2,mac=52:54:00:12:34:56,id=nic2"))
    }

    @Test func microvmUsesVirtioMMIO() throws {
        let c = try QEMUCommand.build(vm {
            $0.machine = .microvm
            $0.kernelBoot = .init(kernel: "/k", commandLine: "x")
            $0.disks = [.init(descriptor: 5)]
            $0.nics = [.init(tapDescriptor: 6, mac: mac)]
        })
        let devices = values(c.argv, "-device")
        #expect(devices == ["virtio-blk-device,drive=disk0,id=vd0", "virtio-net-device,netdev=net0,mac=52:54:00:12:34:56,id=nic0"])
    }

    @Test func kernelBoot() throws {
        let c = try QEMUCommand.build(vm { $0.kernelBoot = .init(kernel: "/g/vmlinuz", initrd: "/g/initrd.img", commandLine: "console=ttyS0 quiet") })
        #expect(values(c.argv, "-kernel") == ["/g/vmlinuz"])
        #expect(values(c.argv, "-initrd") == ["/g/initrd.img"])
        #expect(values(c.argv, "-append") == ["console=ttyS0 quiet"])
        let noInitrd = try QEMUCommand.build(vm { $0.kernelBoot = .init(kernel: "/g/vmlinuz", commandLine: "x") })
        #expect(!noInitrd.argv.contains("-initrd"))
    }

    @Test func vncOnlyWhenAsked() throws {
        let unix = try QEMUCommand.build(vm { $0.vnc = .unixSocket })
        #expect(values(unix.argv, "-vnc") == ["unix:/run/lumos/vm/abc/vnc.sock"])
        #expect(!unix.argv.contains("-display"))
        let tcp = try QEMUCommand.build(vm { $0.vnc = .tcp(address: "127.0.0.1", display: 5, password: true); $0.vga = "std" })
        #expect(values(tcp.argv, "-vnc") == ["127.0.0.1:5,password=on"])
        #expect(values(tcp.argv, "-vga") == ["std"])
    }

    @Test(arguments: [
        ("name", "VM name"),
        ("ram", "ram 8 MiB"),
        ("vcpus", "vcpus 0"),
        ("hostcpu", "cpu_type host needs KVM"),
        ("twoboot", "only one disk can have boot=true"),
        ("virtiocd", "media cdrom needs model ide or scsi"),
        ("microide", "microvm takes only virtio"),
        ("microe1000", "microvm takes only virtio"),
        ("blocksize", "block_size 1000"),
        ("multicast", "use a unicast MAC"),
        ("longdir", "too long for a unix socket path"),
        ("vga", "vga banana"),
        ("microfirmware", "microvm has no firmware boot"),
        ("ide", "5 ide disks, but machine pc has 4 places"),
        ("vncaddress", "vnc address"),
    ])
    func rejects(_ what: String, _ message: String) throws {
        let bad = vm {
            switch what {
            case "name": $0.name = "bad name"
            case "ram": $0.memoryMiB = 8
            case "vcpus": $0.vcpus = 0
            case "hostcpu": $0.cpu = "host"
            case "twoboot": $0.disks = [.init(descriptor: 3, boot: true), .init(descriptor: 4, boot: true)]
            case "virtiocd": $0.disks = [.init(descriptor: 3, model: .virtio, media: .cdrom)]
            case "microide": $0.machine = .microvm; $0.kernelBoot = .init(kernel: "/k", commandLine: ""); $0.disks = [.init(descriptor: 3, model: .ide)]
            case "microe1000": $0.machine = .microvm; $0.kernelBoot = .init(kernel: "/k", commandLine: ""); $0.nics = [.init(tapDescriptor: 3, model: .e1000, mac: mac)]
            case "blocksize": $0.disks = [.init(descriptor: 3, blockSize: 1000)]
            case "multicast": $0.nics = [.init(tapDescriptor: 3, mac: MACAddress("01:00:5e:00:00:01")!)]
            case "longdir": $0.runDirectory = "/" + String(repeating: "d", count: 100)
            case "vga": $0.vga = "banana"
            case "microfirmware": $0.machine = .microvm
            case "vncaddress": $0.vnc = .tcp(address: "0.0.0.0,share=ignore", display: 1, password: false)
            case "ide": $0.machine = .pc; $0.disks = (0..<5).map { VMDescription.Disk(descriptor: Int32(3 + $0), model: .ide) }
            default: Issue.record("unknown case \(what)")
            }
        }
        let error = #expect(throws: LumosError.self) { try QEMUCommand.build(bad) }
        #expect(error?.message.contains(message) == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("\n") == false)
    }
}
