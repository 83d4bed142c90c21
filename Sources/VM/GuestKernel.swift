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
