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

/// A state root remembers where its switches live, so commands without $LUMOS_NET_NETNS find
/// them; only a namespace that keeps its name is remembered.
@Suite(.serialized, .enabled(if: isRoot, "needs root (network namespaces)"))
struct SwitchNamespaceRecordTests {
    @Test func firstSwitchRecordsItsNamespaceAndTheLastOneForgetsIt() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        #expect(try lab.host.store.switchNamespace() == nil)
        try lab.host.createEtherstub("stub0")
        #expect(try lab.host.store.switchNamespace() == .named(lab.hostNS))
        try lab.host.createEtherstub("stub1")
        // A switch for this state root in another namespace is refused, not made where no
        // later command would look for it.
        // (Another test namespace, never the host's: if the check failed, nothing leaks there.)
        let other = try NetLab()
        defer { other.teardown() }
        let elsewhere = NetworkHost(root: lab.host.root, namespace: .named(other.hostNS))
        #expect(throws: LumosError.self) { try elsewhere.createEtherstub("stub2") }
        #expect(try lab.host.store.switchConfig("stub2") == nil)
        try lab.host.deleteSwitch("stub0")
        #expect(try lab.host.store.switchNamespace() == .named(lab.hostNS))
        try lab.host.deleteSwitch("stub1")
        #expect(try lab.host.store.switchNamespace() == nil)
    }

    @Test func aPidNamespaceIsNotRecorded() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        // A process that holds the lab's host namespace; its pid names it only while it lives.
        let holder = try Exec.spawn(["ip", "netns", "exec", lab.hostNS, "sleep", "30"])
        defer { kill(holder, SIGKILL); _ = Exec.wait(holder) }
        var tries = 0
        while tries < 100, (try? Exec.run(["ip", "netns", "identify", "\(holder)"]).stdout.contains(lab.hostNS)) != true {
            usleep(10_000); tries += 1
        }
        let byPid = NetworkHost(root: lab.host.root, namespace: .pid(holder))
        try byPid.createEtherstub("stub0")
        #expect(try lab.host.store.switchNamespace() == nil)
        try byPid.deleteSwitch("stub0")
    }

    /// The CLI's choice: the variable, else the record; a variable that contradicts the record
    /// is an error (only CLI processes read it; no other test calls fromEnvironment).
    @Test func environmentAndRecordMustAgree() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        try lab.host.createEtherstub("stub0")
        defer { try? lab.host.deleteSwitch("stub0") }
        #expect(try NetworkHost.fromEnvironment(root: lab.host.root).namespace == .named(lab.hostNS))
        setenv("LUMOS_NET_NETNS", lab.hostNS, 1)
        defer { unsetenv("LUMOS_NET_NETNS") }
        #expect(try NetworkHost.fromEnvironment(root: lab.host.root).namespace == .named(lab.hostNS))
        setenv("LUMOS_NET_NETNS", "lumos-t-not-\(lab.id)", 1)
        #expect(throws: LumosError.self) { try NetworkHost.fromEnvironment(root: lab.host.root) }
    }

    @Test func aCorruptRecordIsAnErrorNotTheHostNamespace() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        try Files.makeDirectories(lab.host.store.dir + "/switches")
        try Files.writeAtomically(lab.host.store.dir + "/switches/.namespace.json", "{not json")
        #expect(throws: LumosError.self) { try NetworkHost.fromEnvironment(root: lab.host.root) }
    }
}
