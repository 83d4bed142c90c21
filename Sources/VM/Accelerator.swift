import CLinux
import Glibc
import LumosCore

/// How QEMU runs guest code: hardware KVM, or TCG (QEMU's own translator, ~10-15x slower).
public enum Accelerator: String, Sendable, CaseIterable { case kvm, tcg }

/// What the host offers for KVM, asked of the kernel: a narrow view so that the choice can be
/// tested with any answers (`KernelKVMHost` is the real one).
public protocol KVMHost: Sendable {
    /// Opens /dev/kvm, checks the API version and creates (and closes) an empty VM; nil when all
    /// of that worked, else why not.
    func deviceProblem() -> String?
    /// Names under /sys/module (kvm_intel, kvm_amd, kvm_pvm, ...).
    func loadedModules() -> Set<String>
    /// The flags of the first CPU in /proc/cpuinfo.
    func cpuFlags() -> Set<String>
}

/// The accelerator a VM gets and why, as `vmadm get`/`info` will show it.
public struct AcceleratorChoice: Sendable, Equatable, CustomStringConvertible {
    public var accelerator: Accelerator
    public var reason: String
    public var description: String { "\(accelerator.rawValue) (\(reason))" }
}

/// Chooses the accelerator (docs/vm.md, "Accelerator").
///
/// A quick probe is not enough: a software KVM such as PVM (module kvm_pvm) opens, answers
/// KVM_GET_API_VERSION and creates VMs, runs a guest's user code fast, but sends its kernel
/// code through KVM's instruction emulator and stops a stock Debian kernel with "KVM internal
/// error ... emulation failure" after minutes. So KVM is chosen only when /dev/kvm works AND
/// the kernel's KVM is a hardware vendor module (kvm_intel or kvm_amd) AND the CPU reports the
/// matching extension (vmx or svm). Anything else runs under TCG. LUMOS_VM_ACCEL=kvm|tcg
/// overrides the choice; asking for kvm where /dev/kvm does not work is an error.
public enum AcceleratorProbe {
    public static let environmentKey = "LUMOS_VM_ACCEL"

    public static func choose(override: String? = environmentValue(), host: some KVMHost = KernelKVMHost()) throws -> AcceleratorChoice {
        if let override, !override.isEmpty {
            guard let forced = Accelerator(rawValue: override.lowercased()) else {
                throw LumosError.invalid("\(environmentKey)=\(override): use kvm or tcg (or unset it to probe)")
            }
            if forced == .kvm, let problem = host.deviceProblem() {
                throw LumosError.unsupported("\(environmentKey)=kvm but \(problem); unset it to fall back to TCG")
            }
            return AcceleratorChoice(accelerator: forced, reason: "\(environmentKey)=\(forced.rawValue)")
        }
        if let problem = host.deviceProblem() {
            return AcceleratorChoice(accelerator: .tcg, reason: problem)
        }
        let modules = host.loadedModules()
        let flags = host.cpuFlags()
        let vendors: [(module: String, flag: String)] = [("kvm_intel", "vmx"), ("kvm_amd", "svm")]
        if let v = vendors.first(where: { modules.contains($0.module) && flags.contains($0.flag) }) {
            return AcceleratorChoice(accelerator: .kvm, reason: "hardware KVM (\(v.module), cpu flag \(v.flag))")
        }
        let other = modules.filter { $0.hasPrefix("kvm_") }.sorted()
        if !other.isEmpty {
            return AcceleratorChoice(accelerator: .tcg, reason: "/dev/kvm is \(other.joined(separator: ", ")), not hardware KVM: its emulator fails on real guest kernels; set \(environmentKey)=kvm to use it anyway")
        }
        return AcceleratorChoice(accelerator: .tcg, reason: "/dev/kvm works but no kvm_intel/kvm_amd module with vmx/svm backs it; set \(environmentKey)=kvm to use it anyway")
    }

    public static func environmentValue() -> String? { getenv(environmentKey).map { String(cString: $0) } }
}

/// The running kernel's KVM.
public struct KernelKVMHost: KVMHost {
    public var device: String

    public init(device: String = "/dev/kvm") { self.device = device }

    public func deviceProblem() -> String? {
        let fd = open(device, O_RDWR | O_CLOEXEC)
        if fd < 0 { return "\(device) cannot be opened (\(String(cString: strerror(errno))))" }
        defer { close(fd) }
        let version = clinux_kvm_api_version(fd)
        if version != 12 { return "\(device) answers KVM API version \(version), not 12" }
        if clinux_kvm_check_extension(fd, Int32(CLINUX_KVM_CAP_USER_MEMORY)) <= 0 { return "\(device) lacks KVM_CAP_USER_MEMORY" }
        let vm = clinux_kvm_create_vm(fd)
        if vm < 0 { return "\(device) cannot create a VM (\(String(cString: strerror(errno))))" }
        close(vm)
        return nil
    }

    public func loadedModules() -> Set<String> { Set(Files.list("/sys/module")) }

    public func cpuFlags() -> Set<String> {
        guard let text = try? FD.readText("/proc/cpuinfo") else { return [] }
        for line in text.split(separator: "\n") where line.hasPrefix("flags") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
        }
        return []
    }
}
