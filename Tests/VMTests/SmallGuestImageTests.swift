import Glibc
import Images
import LumosCore
import Net
@testable import Storage
import Testing
import VMTestSupport
@testable import VM

/// A real Lumos pool (btrfs on a sparse file, loop-mounted) in its own state root, with an
/// image store on it; `cleanup()` (with defer) destroys it and detaches its loop devices, also
/// after a failure.
final class ImagePool {
    let dir: String
    let root: StateRoot
    let pool: Pool
    let datasets: PoolDatasets
    let store: ImageStore

    init() throws {
        dir = "/tmp/lumos-vmimg-\(getpid())-\(String(UInt32.random(in: 0...0xffffff), radix: 16))"
        try Files.makeDirectories(dir)
        root = StateRoot(dir + "/state")
        var o = Pool.CreateOptions()
        o.size = 1 << 30
        do { pool = try Pool.create("zones", options: o, root: root).0 } catch {
            Self.sweep(dir: dir, root: root)
            throw error
        }
        datasets = PoolDatasets(pool)
        store = ImageStore(root: root, datasets: datasets)
    }

    func cleanup() { Self.sweep(dir: dir, root: root) }

    static func sweep(dir: String, root: StateRoot) {
        for cfg in Pool.list(root: root) {
            let p = Pool(root: root, config: cfg)
            for (dev, _) in (try? p.attachedVolumes()) ?? [] { try? LoopDevice.detach(dev) }
            try? p.destroy(force: true)
            if p.isMountedHere { umount2(p.mountpoint, Int32(MNT_DETACH)) }
        }
        for (dev, backing) in LoopDevice.all() where backing.hasPrefix(dir) { try? LoopDevice.detach(dev) }
        _ = try? Exec.run(["rm", "-rf", "--one-file-system", dir], check: false)
    }
}

/// The small guest as a zvol image (`imgadm build small-guest`): the disk's layout read back
/// without mounting it, and the image booting by itself under TCG (SeaBIOS → syslinux →
/// kernel, no -kernel) to a DHCP lease, writing to a second (data) disk from its shell.
@Suite(.serialized, .enabled(if: isRoot, "needs root: fetches the kernel with apt-get, makes a pool, taps and namespaces"))
struct SmallGuestImageTests {
    @Test func diskLayout() throws {
        let scratch = try Scratch("sgi")
        defer { scratch.remove() }
        let disk = "\(scratch.path)/disk.raw"
        try SmallGuestImage.buildDisk(at: disk, imageMiB: 96)
        var st = stat()
        #expect(stat(disk, &st) == 0 && st.st_size == 96 << 20)
        #expect(Int64(st.st_blocks) * 512 < 40 << 20, "sparse: \(st.st_blocks * 512) bytes allocated")
        let sector = Array(try FD.readFile(disk).prefix(512))
        #expect(sector[510] == 0x55 && sector[511] == 0xaa)
        let mbr = try FD.readFile(SmallGuestImage.mbrCandidates.first(where: Files.exists)!)
        #expect(sector.prefix(440).elementsEqual(mbr.prefix(440)), "syslinux's MBR boot code")
        func u32(_ at: Int) -> Int { Int(sector[at]) | Int(sector[at + 1]) << 8 | Int(sector[at + 2]) << 16 | Int(sector[at + 3]) << 24 }
        #expect(sector[446] == 0x80 && sector[450] == 0x0e && u32(454) == 2048 && u32(458) == SmallGuestImage.bootPartitionMiB * 2048)
        let rootStart = 2048 + SmallGuestImage.bootPartitionMiB * 2048
        #expect(sector[462] == 0x00 && sector[466] == 0x83 && u32(470) == rootStart && u32(474) == 96 * 2048 - rootStart)

        let files = try Exec.run(["mdir", "-a", "-b", "-i", "\(disk)@@1048576", "::"]).stdout.lowercased()
        for f in ["vmlinuz", "initrd.img", "syslinux.cfg", "ldlinux.sys", "ldlinux.c32"] { #expect(files.contains(f), "\(files)") }
        let cfg = try Exec.run(["mtype", "-i", "\(disk)@@1048576", "::syslinux.cfg"]).stdout
        #expect(cfg.contains("APPEND \(SmallGuest.defaultCommandLine)") && cfg.contains("INITRD /initrd.img"))

        let rootFS = "\(disk)?offset=\(rootStart * 512)"
        #expect(try Exec.run(["dumpe2fs", "-h", rootFS]).stdout.contains("Filesystem volume name:   lumos-root"))
        let inittab = try Exec.run(["debugfs", "-R", "cat /etc/inittab", rootFS]).stdout
        #expect(inittab.contains("ttyS0::respawn:-/bin/sh"))
        #expect(try Exec.run(["debugfs", "-R", "cat /etc/init.d/rcS", rootFS]).stdout.contains("udhcpc -i"))

        #expect(throws: LumosError.self) { try SmallGuestImage.buildDisk(at: "\(scratch.path)/small.raw", imageMiB: 48) }
        #expect(!Files.exists("\(scratch.path)/small.raw"))
    }

    /// The image as vmadm will use it: installed into a pool, its `@final` cloned into a VM's
    /// boot disk, plus an empty data volume; QEMU on q35 under TCG with both disks and a tap,
    /// no kernel. The guest boots from its disk, takes its lease, answers ping, writes to
    /// /dev/vdb from its shell (read back on the host) and powers off on the ACPI button.
    @Test(.enabled(if: hasQEMU, "needs qemu-system-x86_64"))
    func bootsFromItsOwnDiskToADHCPLease() throws {
        let images = try ImagePool()
        defer { images.cleanup() }
        let scratch = try Scratch("sgboot")
        defer { scratch.remove() }
        let m = try SmallGuestImage.install(into: images.store, version: "1.0")
        #expect(m.type == "zvol" && m.imageSizeMiB == UInt64(SmallGuestImage.defaultImageMiB))
        #expect(images.store.isVolumeImage(m.uuid))
        let ds = images.datasets
        let bootDisk = ds.dataset("vm-\(m.uuid.prefix(8))-disk0"), dataDisk = ds.dataset("vm-\(m.uuid.prefix(8))-disk1")
        try ds.clone(images.store.finalSnapshot(m.uuid), to: bootDisk)
        try ds.createVolume(dataDisk, bytes: 16 << 20)
        func sha1(_ path: String) throws -> String { String(try Exec.run(["sha1sum", path]).stdout.prefix(40)) }
        let imageSHA = try sha1(ds.volumeFile(images.store.finalSnapshot(m.uuid)))

        let network = try GuestNetwork(tag: "sgi", subnet: "10.79.0")
        defer { try? network.remove() }
        let id = String(UInt32.random(in: 0...0xffffff), radix: 16)
        let tap = try Tap(name: "sgi\(id)", namespace: network.namespace, bridge: network.bridge)
        defer { tap.close() }
        let mac = MACAddress.generate()
        let dhcp = try network.dhcp(network.lease(1, mac: mac))
        defer { dhcp.stop() }

        let bootFile = try ds.volumeFile(bootDisk), dataFile = try ds.volumeFile(dataDisk)
        let boot = try sys("open", bootFile) { open(bootFile, O_RDWR | O_CLOEXEC) }
        defer { close(boot) }
        let data = try sys("open", dataFile) { open(dataFile, O_RDWR | O_CLOEXEC) }
        defer { close(data) }
        let vm = VMDescription(
            name: "sgi-\(id)", machine: .q35, accelerator: .tcg, memoryMiB: 128,
            disks: [.init(descriptor: boot, boot: true), .init(descriptor: data)],
            nics: [.init(tapDescriptor: tap.descriptor, mac: mac)],
            runDirectory: "\(scratch.path)/run")
        let t0 = Monotonic.now
        let qemu = try QEMUProcess(vm)
        defer { qemu.kill() }
        #expect(!qemu.command.argv.contains("-kernel"))

        let replied = try network.ping("10.79.0.2", mac: mac, seconds: 180)
        let bootToPing = Monotonic.now - t0
        let console = waitForConsole(vm.consoleLogPath, containing: "lumos-guest: eth0 bound", seconds: replied ? 10 : 0)
        if replied { print("small guest image (tcg, q35, SeaBIOS + syslinux): QEMU start to first ping reply \(String(format: "%.2f", bootToPing)) s") }
        #expect(replied, "no ping reply; console:\n\(console.suffix(2000))\nqemu.log:\n\((try? FD.readText(qemu.logPath)) ?? "")")
        #expect(console.contains("SYSLINUX"), "booted by syslinux from the disk")
        #expect(console.contains("lumos-guest: eth0 bound 10.79.0.2/24"))
        #expect(!console.contains("lumos-initramfs"))

        // The data disk, written from the guest's root shell.
        let shell = try GuestConsole(vm.consoleSocket)
        defer { shell.close() }
        try shell.type(steps: ["echo lumos-data-disk-ok > /dev/vdb && sync"], pause: 1, log: vm.consoleLogPath)
        try shell.waitFor(step: 1, log: vm.consoleLogPath)
        #expect(String(decoding: try FD.readFile(dataFile).prefix(18), as: UTF8.self) == "lumos-data-disk-ok")

        #expect(qemu.stop(timeout: 60) == .poweredOff, "console:\n\(((try? FD.readText(vm.consoleLogPath)) ?? "").suffix(1500))")
        #expect(!processExists(qemu.pid))
        tap.close()
        dhcp.stop()
        try network.remove()
        // The image's snapshot is untouched by the guest's writes to its clone.
        #expect(try sha1(ds.volumeFile(images.store.finalSnapshot(m.uuid))) == imageSHA)
        #expect(try sha1(bootFile) != imageSHA, "the guest wrote to its own disk (ext4 mount times at least)")
    }
}
