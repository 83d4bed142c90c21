import Foundation
import Glibc
import Images
import LumosCore

/// The small fast Linux guest (issue 10's local builder; docs/vm.md, "The small guest"):
/// Debian's cloud kernel and a busybox root that loads the virtio modules, takes eth0's
/// address by DHCP (udhcpc), powers off on the ACPI button (busybox acpid) and runs a shell on
/// the serial console. Boots to a DHCP lease in seconds under TCG.
///
/// Layout: `disk.raw` is a partitionless ext4 file system labelled `lumos-root` (mkfs.ext4 -d,
/// no mount, no loop device) holding the root and, in /boot, the kernel and initramfs it
/// boots with, so the disk alone can become a zvol image. The guest is started by direct
/// kernel boot (`kernelBoot(for:)`: -kernel vmlinuz, or the PVH vmlinux on microvm, -initrd
/// initrd.img -append commandLine) from the copies beside the disk: the cloud kernel has virtio_blk as a module, so a tiny initramfs (busybox
/// and the modules, a newc archive written by `CPIOArchive`) loads them, finds the root by
/// label and switch_roots to it.
public struct SmallGuest: Sendable, Equatable {
    public var disk: String
    /// The bzImage, for pc and q35.
    public var kernel: String
    /// The same kernel as a PVH ELF, for microvm (`GuestKernel.pvhKernel`).
    public var pvhKernel: String
    public var initrd: String
    public var commandLine: String
    public var kernelRelease: String

    /// The direct-kernel boot for a machine type: the PVH vmlinux on microvm, else the bzImage.
    /// On microvm the kernel calibrates the TSC against the PIT, which under TCG on a busy host
    /// can spin forever: it is told the TSC's rate instead (`tsc_early_khz`; a TCG guest's TSC
    /// runs at the host's).
    public func kernelBoot(for machine: VMDescription.Machine) -> VMDescription.KernelBoot {
        guard machine == .microvm else { return .init(kernel: kernel, initrd: initrd, commandLine: commandLine) }
        let khz = Self.hostTSCkHz().map { " tsc_early_khz=\($0)" } ?? ""
        return .init(kernel: pvhKernel, initrd: initrd, commandLine: commandLine + khz)
    }

    /// The host's TSC rate from /proc/cpuinfo's "cpu MHz" (the TSC rate on hosts with an
    /// invariant TSC and no frequency scaling, such as cloud VMs), nil when absent.
    static func hostTSCkHz() -> Int? {
        guard let text = try? FD.readText("/proc/cpuinfo") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("cpu MHz") {
            guard let v = line.split(separator: ":").last.flatMap({ Double($0.trimmingCharacters(in: .whitespaces)) }), v > 0 else { return nil }
            return Int((v * 1000).rounded())
        }
        return nil
    }

    public static let rootLabel = "lumos-root"
    public static let defaultDiskMiB = 64
    /// Loaded in this order by the initramfs, after their dependencies. virtio_pci and
    /// virtio_mmio cover pc/q35 and microvm; ata_piix and virtio_scsi with sd_mod let the root
    /// be an ide or scsi disk too; button and evdev carry the ACPI power button to acpid.
    public static let modules = ["virtio_pci", "virtio_mmio", "virtio_blk", "virtio_net", "virtio_scsi", "ata_piix", "sd_mod", "button", "evdev", "pvpanic_mmio"]

    /// Builds the guest into `directory` (created if missing): disk.raw, vmlinuz, initrd.img.
    public static func build(into directory: String, kernels: KernelCache = KernelCache(), diskMiB: Int = defaultDiskMiB, hostname: String = "lumos-guest") throws -> SmallGuest {
        if diskMiB < 32 { throw LumosError.invalid("small guest disk of \(diskMiB) MiB is too small; give at least 32") }
        if hostname.isEmpty || !hostname.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) {
            throw LumosError.invalid("hostname \"\(hostname)\": use letters, digits and '-'")
        }
        for tool in ["mkfs.ext4", "modinfo", "lz4"] where Exec.which(tool) == nil {
            throw LumosError.notFound("\(tool) is missing; run scripts/install-deps.sh")
        }
        let kernel = try kernels.cloudKernel()
        try Files.makeDirectories(directory, mode: 0o755)
        let guest = SmallGuest(disk: "\(directory)/disk.raw", kernel: "\(directory)/vmlinuz", pvhKernel: "\(directory)/vmlinux",
                               initrd: "\(directory)/initrd.img", commandLine: defaultCommandLine, kernelRelease: kernel.release)
        try Exec.run(["cp", "--reflink=auto", kernel.bzImage, guest.kernel])
        try Exec.run(["cp", "--reflink=auto", try kernel.pvhKernel(), guest.pvhKernel])
        try Files.writeAtomically(guest.initrd, try initramfs(kernel: kernel))

        let root = "\(directory)/.root-\(getpid())"
        defer { _ = try? Exec.run(["rm", "-rf", "--one-file-system", root]) }
        try stageRoot(root, hostname: hostname)
        try Exec.run(["cp", guest.kernel, "\(root)/boot/vmlinuz"])
        try Exec.run(["cp", guest.initrd, "\(root)/boot/initrd.img"])
        try Files.writeAtomically("\(root)/boot/cmdline", guest.commandLine + "\n")

        Files.remove(guest.disk)
        let fd = try sys("open", guest.disk) { open(guest.disk, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600) }
        let sized = ftruncate(fd, off_t(diskMiB) << 20)
        close(fd)
        if sized != 0 { throw Errno(errno, "ftruncate", guest.disk) }
        do {
            try Exec.run(["mkfs.ext4", "-q", "-F", "-L", rootLabel, "-E", "root_owner=0:0", "-d", root, guest.disk])
        } catch {
            Files.remove(guest.disk)
            throw LumosError.failed("writing the small guest's root onto \(guest.disk): \(oneLine(error))")
        }
        return guest
    }

    /// The kernel's command line: the console on the first serial port, the root by label.
    public static let defaultCommandLine = "console=ttyS0 root=LABEL=\(rootLabel) quiet panic=-1"

    /// Lays out the guest's root file system in `root` (replaced if present): the busybox
    /// image plus the guest's own files (`guestFiles`) and an empty /boot.
    static func stageRoot(_ root: String, hostname: String) throws {
        _ = try? Exec.run(["rm", "-rf", "--one-file-system", root])
        try BusyboxImage.build(into: root)
        try guestFiles(hostname: hostname).forEach { path, text, mode in
            try Files.makeDirectories(Files.parent("\(root)/\(path)"))
            try Files.writeAtomically("\(root)/\(path)", text, mode: mode)
            _ = chmod("\(root)/\(path)", mode)
        }
        try Files.makeDirectories("\(root)/boot")
    }

    /// busybox, the modules in load order, and /init.
    static func initramfs(kernel: GuestKernel) throws -> [UInt8] {
        var a = CPIOArchive()
        for d in ["bin", "dev", "proc", "sys", "newroot", "etc", "lib", "lib/modules"] { a.directory(d) }
        a.file("bin/busybox", try FD.readFile(BusyboxImage.binary), mode: 0o755)
        var names: [String] = []
        for path in try kernel.loadOrder(modules) {
            let name = Files.basename(path)
            a.file("lib/modules/\(name)", try FD.readFile(path))
            names.append(name)
        }
        a.file("etc/modules", Array((names.joined(separator: "\n") + "\n").utf8))
        a.file("init", Array(initScript.utf8), mode: 0o755)
        return a.finish()
    }

    static let initScript = """
        #!/bin/busybox sh
        # Lumos small guest initramfs (docs/vm.md): load the drivers, find the root, switch to it.
        /bin/busybox --install -s /bin
        mount -t devtmpfs devtmpfs /dev
        mount -t proc proc /proc
        mount -t sysfs sysfs /sys
        for m in $(cat /etc/modules); do insmod /lib/modules/$m || echo "lumos-initramfs: insmod $m failed"; done
        root=LABEL=\(rootLabel)
        for a in $(cat /proc/cmdline); do case "$a" in root=*) root="${a#root=}";; esac; done
        dev=
        i=0
        while [ $i -lt 200 ]; do
            case "$root" in
                /dev/*) [ -b "$root" ] && dev="$root" ;;
                *) dev=$(findfs "$root" 2>/dev/null) ;;
            esac
            [ -n "$dev" ] && break
            usleep 50000
            i=$((i + 1))
        done
        if [ -z "$dev" ] || ! mount -t ext4 -o rw "$dev" /newroot; then
            echo "lumos-initramfs: root $root not found; a shell follows"
            exec sh
        fi
        mount --move /dev /newroot/dev
        umount /proc /sys
        exec switch_root /newroot /sbin/init

        """

    /// The guest's own configuration on top of the busybox image.
    static func guestFiles(hostname: String) -> [(String, String, mode_t)] {
        [
            ("etc/hostname", "\(hostname)\n", 0o644),
            // busybox init: rcS, then a shell on the serial console; the power button and
            // Ctrl-Alt-Del power off; shutdown unmounts read-only first.
            ("etc/inittab", """
                ::sysinit:/etc/init.d/rcS
                ttyS0::respawn:-/bin/sh
                ::ctrlaltdel:/sbin/poweroff
                ::shutdown:/bin/umount -a -r

                """, 0o644),
            ("etc/init.d/rcS", """
                #!/bin/sh
                mount -t proc proc /proc
                mount -t sysfs sysfs /sys
                grep -q "^devtmpfs /dev " /proc/mounts || mount -t devtmpfs devtmpfs /dev
                mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
                mount -t tmpfs -o mode=0755 tmpfs /run
                hostname -F /etc/hostname
                ip link set lo up
                # acpid in the foreground of a background job, so that "up" below comes only
                # once it holds the input devices: a power button pressed earlier is lost.
                acpid -f &
                i=0
                while [ $i -lt 300 ] && ! ls -l /proc/$!/fd 2>/dev/null | grep -q /dev/input/event; do usleep 10000; i=$((i + 1)); done
                for path in /sys/class/net/*; do
                    link=${path##*/}
                    [ "$link" = lo ] && continue
                    ip link set "$link" up
                    udhcpc -i "$link" -s /etc/udhcpc.script -t 20 -T 1 -b
                done
                echo "lumos-guest: up"
                exit 0

                """, 0o755),
            ("etc/udhcpc.script", """
                #!/bin/sh
                # udhcpc's hook: $ip, $mask (prefix length), $router, $dns, $hostname from the lease.
                case "$1" in
                deconfig)
                    ip addr flush dev "$interface"
                    ip link set "$interface" up
                    ;;
                bound|renew)
                    ip addr flush dev "$interface"
                    ip addr add "$ip/${mask:-24}" dev "$interface"
                    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
                    : > /etc/resolv.conf
                    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
                    [ -n "$hostname" ] && hostname "$hostname"
                    echo "lumos-guest: $interface $1 $ip/$mask" > /dev/console
                    ;;
                esac
                exit 0

                """, 0o755),
            // busybox acpid maps the power button (KEY_POWER) to the action PWRF/00000080 and
            // runs /etc/acpi/PWRF/00000080.
            ("etc/acpi/PWRF/00000080", "#!/bin/sh\nexec poweroff\n", 0o755),
        ]
    }
}
