import Foundation
import Glibc
import LumosCore

/// A Linux kernel for guests: Debian's cloud kernel package (linux-image-*-cloud-amd64, small,
/// virtio drivers as modules), fetched with `apt-get download` and unpacked with `dpkg-deb -x`
/// into a cache, so no image server, no systemd and no initramfs-tools are needed, and a second
/// build does not fetch it again (docs/vm.md, "The small guest").
public struct GuestKernel: Sendable, Equatable {
    /// e.g. 6.1.0-57-cloud-amd64
    public var release: String
    /// The unpacked package (boot/, lib/modules/RELEASE/).
    public var directory: String

    /// The bzImage, bootable by QEMU's -kernel on pc and q35.
    public var bzImage: String { "\(directory)/boot/vmlinuz-\(release)" }
    public var modulesDirectory: String { "\(directory)/lib/modules/\(release)" }

    /// The kernel as a PVH ELF (vmlinux) for machine microvm, which boots it without a real-mode
    /// setup stage (about a second sooner under TCG than q35 with the bzImage). It is the
    /// compressed payload inside the bzImage: found by the setup header's payload_offset and
    /// payload_length (Documentation/x86/boot.rst), LZ4 on Debian's cloud kernel, unpacked once
    /// with lz4 into the cache. The payload ends with the unpacked size (the kernel build's
    /// size_append), which checks the result.
    public func pvhKernel() throws -> String {
        let out = "\(directory)/boot/vmlinux-\(release).pvh"
        if Files.exists(out) { return out }
        let lock = try FileLock("\(directory)/.pvh.lock")
        defer { _ = lock }
        if Files.exists(out) { return out }
        let image = try FD.readFile(bzImage)
        func u32(_ at: Int) -> Int { at + 4 <= image.count ? Int(image[at]) | Int(image[at + 1]) << 8 | Int(image[at + 2]) << 16 | Int(image[at + 3]) << 24 : 0 }
        guard image.count > 0x250, image[0x202..<0x206].elementsEqual(Array("HdrS".utf8)) else {
            throw LumosError.invalid("\(bzImage) is not a bzImage (no HdrS setup header)")
        }
        let setupSectors = image[0x1f1] == 0 ? 4 : Int(image[0x1f1])
        let start = (setupSectors + 1) * 512 + u32(0x248)
        let length = u32(0x24c)
        guard length > 8, start + length <= image.count else { throw LumosError.invalid("\(bzImage): payload outside the file") }
        let payload = image[start..<(start + length)]
        guard payload.prefix(4).elementsEqual([0x02, 0x21, 0x4c, 0x18]) else {
            throw LumosError.unsupported("kernel \(release) is not LZ4-compressed: boot it on q35 or pc (the bzImage), not microvm")
        }
        let expected = u32(start + length - 4)
        let packed = "\(out).lz4.\(getpid())", unpacked = "\(out).\(getpid())"
        defer { Files.remove(packed); Files.remove(unpacked) }
        try Files.writeAtomically(packed, Array(payload.dropLast(4)))
        try Exec.run(["lz4", "-d", "-q", "-f", packed, unpacked])
        var st = stat()
        var magic = [UInt8](repeating: 0, count: 4)
        let fd = open(unpacked, O_RDONLY | O_CLOEXEC)
        if fd >= 0 { _ = read(fd, &magic, 4); close(fd) }
        guard stat(unpacked, &st) == 0, Int(st.st_size) == expected, magic == [0x7f, 0x45, 0x4c, 0x46] else {
            throw LumosError.failed("unpacking kernel \(release) for microvm gave no ELF of \(expected) bytes")
        }
        if rename(unpacked, out) != 0 { throw Errno(errno, "rename", out) }
        return out
    }

    /// The path of a module by name (`virtio_net`), searched under kernel/.
    public func module(_ name: String) throws -> String {
        if let p = Self.findModule(name, under: "\(modulesDirectory)/kernel") { return p }
        throw LumosError.notFound("kernel \(release) has no module \(name)")
    }

    /// The modules `names` need, each after the ones it depends on (modinfo's depends field;
    /// the package has no modules.dep, and busybox's insmod does not resolve dependencies).
    public func loadOrder(_ names: [String]) throws -> [String] {
        var order: [String] = []
        var seen: Set<String> = []
        func visit(_ name: String, _ chain: [String]) throws {
            let n = name.replacingOccurrences(of: "-", with: "_")
            if seen.contains(n) { return }
            if chain.contains(n) { throw LumosError(.corrupt, "kernel \(release): modules depend on each other in a cycle: \((chain + [n]).joined(separator: " -> "))") }
            let path = try module(n)
            let deps = try Exec.run(["modinfo", "-F", "depends", path]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",").map(String.init).filter { !$0.isEmpty }
            for d in deps { try visit(d, chain + [n]) }
            seen.insert(n)
            order.append(path)
        }
        for name in names { try visit(name, []) }
        return order
    }

    static func findModule(_ name: String, under dir: String) -> String? {
        for entry in Files.list(dir) {
            let path = "\(dir)/\(entry)"
            if Files.isDirectory(path) {
                if let p = findModule(name, under: path) { return p }
            } else if entry == "\(name).ko" || entry.replacingOccurrences(of: "-", with: "_") == "\(name).ko" {
                return path
            }
        }
        return nil
    }
}

/// Where fetched kernels are kept: `/var/cache/lumos/kernels` unless LUMOS_KERNEL_CACHE says.
public struct KernelCache: Sendable {
    public var directory: String
    /// The meta package that names the current cloud kernel.
    public static let metaPackage = "linux-image-cloud-amd64"

    public init(directory: String = KernelCache.defaultDirectory) { self.directory = directory }

    public static var defaultDirectory: String {
        getenv("LUMOS_KERNEL_CACHE").map { String(cString: $0) } ?? "/var/cache/lumos/kernels"
    }

    /// The cloud kernel apt offers now, fetched only when the cache lacks it. Without apt's
    /// package lists (an offline host) the newest cached kernel is used.
    public func cloudKernel() throws -> GuestKernel {
        try Files.makeDirectories(directory, mode: 0o755)
        let lock = try FileLock("\(directory)/.lock")
        defer { _ = lock }
        let package: String
        do {
            package = try Self.currentPackage()
        } catch {
            if let cached = cached().last { return cached }
            throw error
        }
        let release = String(package.dropFirst("linux-image-".count))
        let dir = "\(directory)/\(release)"
        let kernel = GuestKernel(release: release, directory: dir)
        if Files.exists(kernel.bzImage) && Files.isDirectory(kernel.modulesDirectory) { return kernel }
        try fetch(package: package, into: dir)
        return kernel
    }

    /// Kernels already unpacked here, oldest first.
    public func cached() -> [GuestKernel] {
        Files.list(directory).filter { !$0.hasPrefix(".") }.map { GuestKernel(release: $0, directory: "\(directory)/\($0)") }
            .filter { Files.exists($0.bzImage) }
    }

    /// `linux-image-RELEASE`, the package the meta package depends on (from apt's local lists).
    static func currentPackage() throws -> String {
        let out = try Exec.run(["apt-cache", "depends", metaPackage]).stdout
        for line in out.split(separator: "\n") {
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.hasPrefix("Depends: linux-image-") { return String(t.dropFirst("Depends: ".count)) }
        }
        throw LumosError.notFound("apt knows no \(metaPackage); run apt-get update (or set LUMOS_KERNEL_CACHE to a cache holding a kernel)")
    }

    /// Downloads and unpacks into a staging directory, then renames it into place: a killed
    /// fetch leaves only `.staging-*`, removed by the next one.
    func fetch(package: String, into dir: String) throws {
        for stale in Files.list(directory) where stale.hasPrefix(".staging-") {
            try Exec.run(["rm", "-rf", "--one-file-system", "\(directory)/\(stale)"])
        }
        let staging = "\(directory)/.staging-\(getpid())"
        try Files.makeDirectories(staging, mode: 0o755)
        do {
            // apt-get download writes into the working directory; the sandbox user (_apt)
            // cannot write to a root-only cache, so download as root.
            try Exec.run(["env", "-C", staging, "apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", package])
            guard let deb = Files.list(staging).first(where: { $0.hasSuffix(".deb") }) else {
                throw LumosError.failed("apt-get download \(package) left no .deb")
            }
            try Exec.run(["dpkg-deb", "-x", "\(staging)/\(deb)", "\(staging)/root"])
            if rename("\(staging)/root", dir) != 0 { throw Errno(errno, "rename", dir) }
            try Exec.run(["rm", "-rf", "--one-file-system", staging])
        } catch {
            _ = try? Exec.run(["rm", "-rf", "--one-file-system", staging])
            throw LumosError.failed("fetching kernel \(package): \(oneLine(error))")
        }
    }
}
