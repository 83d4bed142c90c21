import Foundation
import LumosCore
import Testing
@testable import Net

/// The `dladm` alias and `lumos net` against a switch inside a test namespace
/// (`LUMOS_NET_NETNS` points the CLI there).
@Suite(.serialized, .enabled(if: isRoot, "needs root (network namespaces, nftables)"))
struct DladmCLITests {
    func cli(_ lab: NetLab, _ exe: String, _ args: [String]) throws -> Exec.Result {
        try Exec.run(["env", "LUMOS_ROOT=\(lab.root)", "LUMOS_NET_NETNS=\(lab.hostNS)", exe] + args, check: false)
    }

    @Test func dladmManagesEtherstubsAndShowsTenantVNICs() throws {
        let lab = try NetLab()
        defer { lab.teardown() }
        let dladm = "\(lab.root)/dladm"
        #expect(symlink(NetLab.lumosExecutable, dladm) == 0)
        let lumos = NetLab.lumosExecutable

        #expect(try cli(lab, dladm, ["create-etherstub", "stub0"]).status == 0)
        let again = try cli(lab, dladm, ["create-etherstub", "stub0"])
        #expect(again.status != 0)
        #expect(again.stderr == "dladm: switch stub0 already exists; see `dladm show-etherstub`\n")
        let bad = try cli(lab, dladm, ["create-etherstub", "Stub 0"])
        #expect(bad.status != 0 && bad.stderr.contains("not a valid switch name"))

        let stubs = try JSONSerialization.jsonObject(with: Data(try cli(lab, dladm, ["show-etherstub", "--json"]).stdout.utf8)) as? [[String: Any]]
        #expect(stubs?.first?["link"] as? String == "stub0")
        #expect(try cli(lab, lumos, ["net", "create-addr", "-a", "10.77.0.1/24", "stub0"]).status == 0)

        let ns = try lab.tenantNamespace("a")
        let tenant = lab.uuid()
        let nics = "\(lab.root)/nics.json"
        try Files.writeAtomically(nics, #"[{"nic_tag":"stub0","ips":["10.77.0.10/24"],"mac":"02:00:00:aa:bb:01"}]"#)
        let attach = try cli(lab, lumos, ["net", "attach", "--tenant", tenant, "--netns", ns, "-f", nics])
        #expect(attach.status == 0, "\(attach.stderr)")
        let host = try TenantNetwork.hostLinkName(tenant: tenant, interface: "net0")
        #expect(try cli(lab, dladm, ["show-vnic", "-p", "-o", "link,over,macaddress,zone"]).stdout
            == "\(host):stub0:02\\:00\\:00\\:aa\\:bb\\:01:\(tenant)\n")
        #expect(try lab.ping(ns, "10.77.0.1"))
        let vnics = try JSONSerialization.jsonObject(with: Data(try cli(lab, dladm, ["show-vnic", "--json", host]).stdout.utf8)) as? [[String: Any]]
        #expect((vnics?.first?["ipackets"] as? Int ?? 0) > 0)
        #expect(try cli(lab, dladm, ["show-link", "-p", "-o", "link,class,over"]).stdout.contains("\(host):vnic:stub0\n"))

        let busy = try cli(lab, dladm, ["delete-etherstub", "stub0"])
        #expect(busy.status != 0 && busy.stderr.contains("is used by tenant \(tenant)"))
        #expect(try cli(lab, lumos, ["net", "detach", tenant]).status == 0)
        #expect(try cli(lab, dladm, ["delete-etherstub", "stub0"]).status == 0)
        #expect(try !cli(lab, dladm, ["show-link", "-p", "-o", "link"]).stdout.contains("stub0"))
    }
}
