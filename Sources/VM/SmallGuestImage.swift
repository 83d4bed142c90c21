import Foundation
import Glibc
import Images
import LumosCore

/// The small guest as a zvol image (`imgadm build small-guest`; docs/vm.md, "The small guest
/// as an image"): a disk that boots by itself from the firmware (SeaBIOS on pc and q35), with no
/// kernel given by the host. Layout, all written into one sparse file with no mount and no loop
/// device:
///
/// - sector 0: syslinux's MBR boot code (mbr.bin) and a DOS partition table;
/// - partition 1 (bootable, FAT16 LBA, from 1 MiB): the cloud kernel, the initramfs, and
///   syslinux with a syslinux.cfg that boots them with `SmallGuest.defaultCommandLine`
///   (mkfs.fat --offset, files by mtools' mcopy, the boot loader by `syslinux --install
///   --offset`, which goes through mtools too);
/// - partition 2 (Linux): the ext4 root labelled `lumos-root`, made by `mkfs.ext4 -E offset=
///   -d` from the same staging tree as `SmallGuest.build`.
///
/// The initramfs is the small guest's: it loads virtio, ata and scsi drivers and finds the root
/// by label, so the disk boots on virtio, ide or scsi.
public enum SmallGuestImage {
    public static let defaultImageMiB = 128
    /// The boot partition: the kernel (~14 MiB) and initramfs (~4 MiB) with room for a second kernel.
    public static let bootPartitionMiB = 40
    static let firstSector = 2048
    public static let mbrCandidates = ["/usr/lib/syslinux/mbr/mbr.bin", "/usr/lib/SYSLINUX/mbr.bin", "/usr/share/syslinux/mbr.bin"]

    public static func syslinuxConfig(commandLine: String) -> String {
        """
        SERIAL 0 115200
        DEFAULT lumos
        PROMPT 0
        TIMEOUT 0
        LABEL lumos
          LINUX /vmlinuz
          INITRD /initrd.img
          APPEND \(commandLine)

        """
    }

    /// Writes the bootable disk at `path` (a new sparse file of `imageMiB` MiB). Returns the
    /// guest kernel's release.
    @discardableResult
    public static func buildDisk(at path: String, kernels: KernelCache = KernelCache(), imageMiB: Int = defaultImageMiB,
                                 hostname: String = "lumos-guest") throws -> String {
        let rootMiB = imageMiB - bootPartitionMiB - 1
        if rootMiB < 24 { throw LumosError.invalid("small guest image of \(imageMiB) MiB is too small; give at least \(bootPartitionMiB + 25)") }
        if hostname.isEmpty || !hostname.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) {
            throw LumosError.invalid("hostname \"\(hostname)\": use letters, digits and '-'")
        }
        try checkTools(["modinfo": "kmod"])
        let kernel = try kernels.cloudKernel()

        let stage = "\(path).stage-\(getpid())"
        defer { _ = try? Exec.run(["rm", "-rf", "--one-file-system", stage]) }
        try Files.makeDirectories(stage + "/boot", mode: 0o700)
        try SmallGuest.stageRoot(stage + "/root", hostname: hostname)
        try Files.writeAtomically(stage + "/boot/initrd.img", try SmallGuest.initramfs(kernel: kernel))
        try Files.writeAtomically(stage + "/boot/syslinux.cfg", syslinuxConfig(commandLine: SmallGuest.defaultCommandLine))
        try Files.writeAtomically(stage + "/root/boot/cmdline", SmallGuest.defaultCommandLine + "\n")
        try writeDisk(at: path, imageMiB: imageMiB, kernel: kernel.bzImage, initrd: stage + "/boot/initrd.img",
                      config: stage + "/boot/syslinux.cfg", root: stage + "/root", rootLabel: SmallGuest.rootLabel, what: "the small guest image")
        return kernel.release
    }

    static func checkTools(_ more: [String: String] = [:]) throws {
        let tools = ["mkfs.ext4": "e2fsprogs", "mkfs.fat": "dosfstools", "mcopy": "mtools", "syslinux": "syslinux"].merging(more) { a, _ in a }
        for (tool, package) in tools.sorted(by: { $0.key < $1.key }) where Exec.which(tool) == nil {
            throw LumosError.notFound("\(tool) is missing; apt-get install \(package) (scripts/install-deps.sh)")
        }
        guard mbrCandidates.contains(where: Files.exists) else {
            throw LumosError.notFound("syslinux's mbr.bin is missing; apt-get install syslinux-common (scripts/install-deps.sh)")
        }
    }

    /// The disk layout above, from a kernel, an initramfs, a syslinux.cfg and a root tree: a new
    /// sparse file of `imageMiB` MiB at `path`, removed again when anything fails.
    static func writeDisk(at path: String, imageMiB: Int, kernel: String, initrd: String, config: String,
                          root: String, rootLabel: String, what: String) throws {
        try checkTools()
        guard let mbrPath = mbrCandidates.first(where: Files.exists) else { throw LumosError.notFound("syslinux's mbr.bin is missing") }
        let mbrCode = try FD.readFile(mbrPath)
        guard mbrCode.count >= 440 else { throw LumosError.invalid("\(mbrPath) is \(mbrCode.count) bytes, not an MBR boot code") }
        Files.remove(path)
        let fd = try sys("open", path) { open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600) }
        var ok = false
        defer {
            close(fd)
            if !ok { Files.remove(path) }
        }
        guard ftruncate(fd, off_t(imageMiB) << 20) == 0 else { throw Errno(errno, "ftruncate", path) }
        let bootStart = firstSector, bootSectors = bootPartitionMiB * 2048
        let rootStart = bootStart + bootSectors, rootSectors = imageMiB * 2048 - rootStart
        let bootOffset = bootStart * 512
        do {
            // mkfs.fat warns that the file is larger than the file system; that is the point.
            try Exec.run(["mkfs.fat", "-F", "16", "-n", "LUMOSBOOT", "--offset=\(bootStart)", "-h", "\(bootStart)",
                          path, "\(bootSectors / 2)"])
            let fat = "\(path)@@\(bootOffset)"
            try Exec.run(["mcopy", "-i", fat, kernel, "::vmlinuz"])
            try Exec.run(["mcopy", "-i", fat, initrd, "::initrd.img"])
            try Exec.run(["mcopy", "-i", fat, config, "::syslinux.cfg"])
            try Exec.run(["syslinux", "--install", "--offset", "\(bootOffset)", path])
            try Exec.run(["mkfs.ext4", "-q", "-F", "-L", rootLabel,
                          "-E", "offset=\(rootStart * 512),root_owner=0:0", "-d", root, path, "\(rootSectors / 2)k"])
        } catch {
            throw LumosError.failed("writing \(what) \(path): \(oneLine(error))")
        }
        // Last, so nothing above can overwrite it: boot code, a disk signature, the table.
        var sector = [UInt8](repeating: 0, count: 512)
        sector.replaceSubrange(0..<440, with: mbrCode[0..<440])
        let signature = UInt32.random(in: 1...UInt32.max)
        for i in 0..<4 { sector[440 + i] = UInt8(truncatingIfNeeded: signature >> (8 * UInt32(i))) }
        sector.replaceSubrange(446..<462, with: partitionEntry(bootable: true, type: 0x0e, start: bootStart, sectors: bootSectors))
        sector.replaceSubrange(462..<478, with: partitionEntry(bootable: false, type: 0x83, start: rootStart, sectors: rootSectors))
        sector[510] = 0x55
        sector[511] = 0xaa
        let written = sector.withUnsafeBytes { pwrite(fd, $0.baseAddress, 512, 0) }
        guard written == 512, fsync(fd) == 0 else { throw Errno(errno, "write", path) }
        ok = true
    }

    /// A DOS partition table entry (LBA only: the CHS fields say "beyond CHS", as for any
    /// disk past 8 GiB; SeaBIOS and syslinux use the LBA fields).
    static func partitionEntry(bootable: Bool, type: UInt8, start: Int, sectors: Int) -> [UInt8] {
        var e: [UInt8] = [bootable ? 0x80 : 0x00, 0xfe, 0xff, 0xff, type, 0xfe, 0xff, 0xff]
        for v in [UInt32(start), UInt32(sectors)] { for i in 0..<4 { e.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) } }
        return e
    }

    /// `imgadm build small-guest`: builds the disk and installs it as a zvol image.
    public static func install(into store: ImageStore, name: String = "small-guest", version: String? = nil,
                               imageMiB: Int = defaultImageMiB, kernels: KernelCache = KernelCache(),
                               keepFilesIn output: String? = nil, progress: Bool = false) throws -> ImageManifest {
        let kernel = try kernels.cloudKernel()
        return try store.installBuiltVolume(
            name: name, version: version ?? ImageManifest.todayVersion(),
            description: "Lumos small guest: Debian's cloud kernel \(kernel.release) and busybox; boots from its disk (syslinux), DHCP on eth0",
            imageSizeMiB: UInt64(imageMiB), keepFilesIn: output,
            extra: ["requirements": ["brand": "kvm"], "tags": ["lumos:boot": "syslinux", "lumos:kernel": .string(kernel.release)]],
            progress: progress
        ) { disk in
            try buildDisk(at: disk, kernels: kernels, imageMiB: imageMiB)
        }
    }
}
