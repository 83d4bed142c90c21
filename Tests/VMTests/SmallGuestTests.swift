import Glibc
import LumosCore
import Testing
@testable import VM

/// The small guest's build: kernel from the cache, initramfs with the modules in dependency
/// order, and the root on a partitionless ext4 disk (read back with debugfs, no mount).
@Suite(.serialized, .enabled(if: isRoot, "needs root: fetches the kernel into /var/cache/lumos with apt-get"))
struct SmallGuestTests {
    @Test func buildsDiskKernelAndInitramfs() throws {
        let scratch = try Scratch("guest")
        defer { scratch.remove() }
        let guest = try SmallGuest.build(into: scratch.path)
        #expect(guest.kernelRelease.hasSuffix("-cloud-amd64"))
        var st = stat()
        #expect(stat(guest.disk, &st) == 0 && st.st_size == off_t(SmallGuest.defaultDiskMiB) << 20)
        let header = try Exec.run(["dumpe2fs", "-h", guest.disk]).stdout
        #expect(header.contains("Filesystem volume name:   lumos-root"))
        func cat(_ path: String) throws -> String { try Exec.run(["debugfs", "-R", "cat \(path)", guest.disk]).stdout }
        #expect(try cat("/etc/inittab").contains("ttyS0::respawn:-/bin/sh"))
        #expect(try cat("/etc/init.d/rcS").contains("udhcpc -i \"$link\""))
        #expect(try cat("/boot/cmdline").contains("root=LABEL=lumos-root"))
        let onDisk = try Exec.run(["debugfs", "-R", "stat /boot/vmlinuz", guest.disk]).stdout
        #expect(stat(guest.kernel, &st) == 0 && onDisk.contains("Size: \(st.st_size)"))

        // microvm's kernel: the bzImage's payload as an ELF, the same release.
        let elf = try FD.readFile(guest.pvhKernel)
        #expect(elf.prefix(4).elementsEqual([0x7f, 0x45, 0x4c, 0x46]))
        #expect(String(decoding: elf, as: UTF8.self).contains("Linux version \(guest.kernelRelease)"))
        #expect(guest.kernelBoot(for: .microvm).kernel == guest.pvhKernel && guest.kernelBoot(for: .q35).kernel == guest.kernel)
        #expect(guest.kernelBoot(for: .microvm).commandLine.contains(" tsc_early_khz="))
        #expect(guest.kernelBoot(for: .q35).commandLine == guest.commandLine)

        // The initramfs loads each module after what it depends on.
        let list = try Exec.run(["sh", "-c", "busybox cpio -i --to-stdout etc/modules < \(guest.initrd)"]).stdout
        let order = list.split(separator: "\n").map(String.init)
        func at(_ m: String) -> Int { order.firstIndex(of: m) ?? -1 }
        #expect(at("virtio_ring.ko") >= 0 && at("virtio_ring.ko") < at("virtio.ko"))
        #expect(at("virtio.ko") < at("virtio_pci.ko") && at("virtio.ko") < at("virtio_blk.ko"))
        #expect(at("failover.ko") < at("net_failover.ko") && at("net_failover.ko") < at("virtio_net.ko"))
        #expect(at("scsi_mod.ko") < at("sd_mod.ko") && at("libata.ko") < at("ata_piix.ko"))
    }

    /// A second build uses the cached kernel: the unpacked tree is the same files.
    @Test func kernelIsCached() throws {
        let cache = KernelCache()
        let first = try cache.cloudKernel()
        var a = stat(), b = stat()
        #expect(stat(first.bzImage, &a) == 0)
        let second = try cache.cloudKernel()
        #expect(second == first)
        #expect(stat(second.bzImage, &b) == 0 && a.st_ino == b.st_ino && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec)
    }

    @Test func badInput() throws {
        let scratch = try Scratch("bad")
        defer { scratch.remove() }
        let small = #expect(throws: LumosError.self) { try SmallGuest.build(into: scratch.path, diskMiB: 8) }
        #expect(small?.message.contains("too small") == true)
        let host = #expect(throws: LumosError.self) { try SmallGuest.build(into: scratch.path, hostname: "a b") }
        #expect(host?.message.contains("hostname") == true)
        #expect(Files.list(scratch.path).isEmpty)
    }
}
