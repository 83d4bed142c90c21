import Foundation
import Glibc
import Images
import LumosCore

/// A full Debian guest as a zvol image (`imgadm build debian-guest`; docs/vm.md, "The Debian
/// guest"): debootstrap (minbase plus the cloud kernel, systemd, udev and the network tools)
/// from the host's apt mirror into a staging tree, configured to be reachable without a
/// configuration step, then written with the small guest's disk layout (SmallGuestImage): a
/// FAT boot partition with syslinux and copies of the kernel and initramfs Debian built for
/// itself, and the ext4 root `lumos-root` made from the tree by `mkfs.ext4 -d` (no mount, no loop
/// device). In the guest:
///
/// - systemd as init; systemd-networkd takes eth0 (`net.ifnames=0`) by DHCP, so the switch's
///   DHCP responder gives it the manifest's address;
/// - root is logged in on the serial console (`vmadm console`; the console is reachable only
///   by host root), and has no password otherwise;
/// - /etc/machine-id is empty, so every VM cloned from the image makes its own at first boot;
/// - the root's /boot holds the kernel too: a kernel upgraded inside the guest is used after
///   its files are copied to the boot partition (/dev/vda1, FAT), which Debian's hooks do not do.
public enum DebianGuestImage {
    public static let defaultImageMiB = 1024
    public static let packages = ["linux-image-cloud-amd64", "initramfs-tools", "systemd-sysv", "udev", "dbus",
                                  "iproute2", "iputils-ping", "procps", "kmod", "less", "netbase"]
    public static let rootLabel = "lumos-root"
    public static let commandLine = "console=ttyS0 root=LABEL=\(rootLabel) rw net.ifnames=0 panic=-1 quiet"

    /// Builds the disk at `path`; returns the guest kernel's release.
    @discardableResult
    public static func buildDisk(at path: String, suite: String, mirror: String, imageMiB: Int = defaultImageMiB,
                                 hostname: String = "debian-guest", extraPackages: [String] = [], progress: Bool = false) throws -> String {
        if imageMiB < 768 { throw LumosError.invalid("Debian guest image of \(imageMiB) MiB is too small; give at least 768") }
        if hostname.isEmpty || !hostname.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) {
            throw LumosError.invalid("hostname \"\(hostname)\": use letters, digits and '-'")
        }
        try DebianImage.checkPackages(extraPackages)
        try SmallGuestImage.checkTools(["debootstrap": "debootstrap"])
        let stage = "\(path).stage-\(getpid())"
        defer { _ = try? Exec.run(["rm", "-rf", "--one-file-system", stage]) }
        let root = stage + "/root"
        try Files.makeDirectories(root, mode: 0o755)
        try DebianImage.build(into: root, suite: suite, mirror: mirror, include: packages + extraPackages.filter { !packages.contains($0) }, progress: progress)
        try configure(root, hostname: hostname)

        let boot = Files.list(root + "/boot")
        guard let vmlinuz = boot.filter({ $0.hasPrefix("vmlinuz-") }).sorted().last else {
            throw LumosError.failed("the Debian guest has no kernel in /boot after debootstrap")
        }
        let release = String(vmlinuz.dropFirst("vmlinuz-".count))
        guard boot.contains("initrd.img-\(release)") else {
            throw LumosError.failed("the Debian guest has no initramfs for \(release) in /boot (initramfs-tools did not run)")
        }
        try Files.writeAtomically(stage + "/syslinux.cfg", SmallGuestImage.syslinuxConfig(commandLine: commandLine))
        try SmallGuestImage.writeDisk(at: path, imageMiB: imageMiB, kernel: "\(root)/boot/\(vmlinuz)", initrd: "\(root)/boot/initrd.img-\(release)",
                                      config: stage + "/syslinux.cfg", root: root, rootLabel: rootLabel, what: "the Debian guest image")
        return release
    }

    /// What makes the tree a guest that needs no configuration step (see the type's comment).
    static func configure(_ root: String, hostname: String) throws {
        try Files.writeAtomically("\(root)/etc/hostname", hostname + "\n")
        try Files.writeAtomically("\(root)/etc/hosts", "127.0.0.1 localhost\n127.0.1.1 \(hostname)\n::1 localhost ip6-localhost ip6-loopback\n")
        try Files.writeAtomically("\(root)/etc/fstab", "LABEL=\(rootLabel) / ext4 defaults,errors=remount-ro 0 1\n")
        try Files.writeAtomically("\(root)/etc/machine-id", "")
        try Files.makeDirectories("\(root)/etc/systemd/network")
        try Files.writeAtomically("\(root)/etc/systemd/network/10-eth.network", "[Match]\nName=eth*\n\n[Network]\nDHCP=ipv4\n")
        let units = "\(root)/etc/systemd/system"
        for (wants, unit) in [("multi-user.target.wants", "systemd-networkd.service"), ("sockets.target.wants", "systemd-networkd.socket")] {
            try Files.makeDirectories("\(units)/\(wants)")
            let link = "\(units)/\(wants)/\(unit)"
            Files.remove(link)
            guard symlink("/lib/systemd/system/\(unit)", link) == 0 else { throw Errno(errno, "symlink", link) }
        }
        let getty = "\(units)/serial-getty@ttyS0.service.d"
        try Files.makeDirectories(getty)
        try Files.writeAtomically("\(getty)/autologin.conf",
                                  "[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200,38400,9600 %I $TERM\n")
        // No password: root logs in only on the console above.
        _ = try? Exec.run(["chroot", root, "passwd", "-l", "root"], check: false)
        _ = try? Exec.run(["rm", "-rf", "\(root)/var/cache/apt/archives", "\(root)/var/lib/apt/lists"], check: false)
        try Files.makeDirectories("\(root)/var/cache/apt/archives/partial")
        try Files.makeDirectories("\(root)/var/lib/apt/lists/partial")
    }

    /// `imgadm build debian-guest`: builds the disk and installs it as a zvol image.
    public static func install(into store: ImageStore, suite: String, mirror: String, name: String? = nil, version: String? = nil,
                               imageMiB: Int = defaultImageMiB, extraPackages: [String] = [], keepFilesIn output: String? = nil,
                               progress: Bool = false) throws -> ImageManifest {
        try store.installBuiltVolume(
            name: name ?? "debian-\(suite)-guest", version: version ?? ImageManifest.todayVersion(),
            description: "Debian \(suite) kvm guest from \(mirror): cloud kernel, systemd, DHCP on eth0 (systemd-networkd)"
                + (extraPackages.isEmpty ? "" : ", " + extraPackages.joined(separator: ", ")) + "; boots from its disk (syslinux)",
            imageSizeMiB: UInt64(imageMiB), keepFilesIn: output,
            extra: ["requirements": ["brand": "kvm"], "tags": ["lumos:boot": "syslinux", "lumos:init": "systemd"]],
            progress: progress
        ) { disk in
            try buildDisk(at: disk, suite: suite, mirror: mirror, imageMiB: imageMiB, extraPackages: extraPackages, progress: progress)
        }
    }
}
