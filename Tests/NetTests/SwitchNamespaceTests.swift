import Foundation
import Glibc
import LumosCore
import Testing
@testable import Net

/// br_netfilter's sysctls exist only when the module is loaded; without it there is nothing to
/// turn off.
let hasBrNetfilter = Files.exists("/proc/sys/net/bridge/bridge-nf-call-iptables")

@Suite(.serialized, .enabled(if: isRoot, "needs root (network namespaces)"))
struct SwitchNamespaceTests {
    /// A namespace that holds only Lumos switches does not send bridged frames through the
    /// IP-family hooks (Lumos filters them in its bridge table); anti-spoofing still holds
    /// there, which every TenantNetworkTests case checks with this setting in force.
    @Test(.enabled(if: hasBrNetfilter, "br_netfilter is not loaded"))
    func switchNamespaceTurnsBridgeNetfilterOff() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        let keys = ["iptables", "ip6tables", "arptables"].map { "/proc/sys/net/bridge/bridge-nf-call-\($0)" }
        // Start from the kernel default (on), so the test fails if Lumos leaves it alone.
        for k in keys { try lab.run(lab.hostNS, ["sh", "-c", "echo 1 > \(k)"], check: true) }
        try lab.host.createEtherstub("stub0")
        for k in keys {
            let value = try lab.run(lab.hostNS, ["cat", k], check: true).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(value == "0", "\(k) in the switch namespace")
        }
    }
}
