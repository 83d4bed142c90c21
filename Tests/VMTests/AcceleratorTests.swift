import Glibc
import LumosCore
import Testing
@testable import VM

struct FakeKVMHost: KVMHost {
    var problem: String?
    var modules: Set<String>
    var flags: Set<String>
    func deviceProblem() -> String? { problem }
    func loadedModules() -> Set<String> { modules }
    func cpuFlags() -> Set<String> { flags }
}

@Suite struct AcceleratorTests {
    @Test func hardwareKVMIsPreferred() throws {
        let intel = try AcceleratorProbe.choose(override: nil, host: FakeKVMHost(modules: ["kvm", "kvm_intel"], flags: ["fpu", "vmx"]))
        #expect(intel.accelerator == .kvm)
        #expect(intel.reason.contains("kvm_intel"))
        let amd = try AcceleratorProbe.choose(override: nil, host: FakeKVMHost(modules: ["kvm", "kvm_amd"], flags: ["svm"]))
        #expect(amd.accelerator == .kvm)
    }

    @Test func softwareKVMGetsTCG() throws {
        // What this machine has: /dev/kvm works, but it is PVM (docs/vm.md).
        let pvm = try AcceleratorProbe.choose(override: nil, host: FakeKVMHost(modules: ["kvm", "kvm_pvm"], flags: ["hypervisor"]))
        #expect(pvm.accelerator == .tcg)
        #expect(pvm.reason.contains("kvm_pvm"))
        // A vendor module without the CPU extension (nested virtualisation turned off) is no better.
        let noFlag = try AcceleratorProbe.choose(override: nil, host: FakeKVMHost(modules: ["kvm", "kvm_intel"], flags: ["hypervisor"]))
        #expect(noFlag.accelerator == .tcg)
    }

    @Test func missingDeviceGetsTCG() throws {
        let c = try AcceleratorProbe.choose(override: nil, host: FakeKVMHost(problem: "/dev/kvm cannot be opened (No such file or directory)", modules: ["kvm_intel"], flags: ["vmx"]))
        #expect(c.accelerator == .tcg)
        #expect(c.reason.contains("cannot be opened"))
    }

    @Test func override() throws {
        let pvm = FakeKVMHost(modules: ["kvm", "kvm_pvm"], flags: [])
        #expect(try AcceleratorProbe.choose(override: "kvm", host: pvm).accelerator == .kvm)
        #expect(try AcceleratorProbe.choose(override: "TCG", host: FakeKVMHost(modules: ["kvm_intel"], flags: ["vmx"])).accelerator == .tcg)
        #expect(try AcceleratorProbe.choose(override: "", host: pvm).accelerator == .tcg)
        let bad = #expect(throws: LumosError.self) { try AcceleratorProbe.choose(override: "hvf", host: pvm) }
        #expect(bad?.message.contains("LUMOS_VM_ACCEL=hvf: use kvm or tcg") == true)
        let noDevice = #expect(throws: LumosError.self) {
            try AcceleratorProbe.choose(override: "kvm", host: FakeKVMHost(problem: "/dev/kvm cannot be opened (x)", modules: [], flags: []))
        }
        #expect(noDevice?.message.contains("LUMOS_VM_ACCEL=kvm but /dev/kvm cannot be opened") == true)
    }

    /// The real probe on this host agrees with what the kernel says it has.
    @Test(.enabled(if: getuid() == 0, "needs root: opens /dev/kvm"))
    func realHost() throws {
        let host = KernelKVMHost()
        let choice = try AcceleratorProbe.choose(override: nil, host: host)
        let modules = host.loadedModules()
        if host.deviceProblem() != nil || modules.contains("kvm_pvm") {
            #expect(choice.accelerator == .tcg, "\(choice)")
        } else if modules.contains("kvm_intel") && host.cpuFlags().contains("vmx") {
            #expect(choice.accelerator == .kvm, "\(choice)")
        }
        if modules.contains("kvm_pvm") { #expect(choice.reason.contains("kvm_pvm")) }
    }
}
