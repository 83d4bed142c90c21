import Foundation
import Glibc
import LumosCore
import Net

/// Plugs the Net module into vmadm: a zone's nics[] become veths on their nic tag's switch,
/// with anti-spoofing, caps and DHCP service, wired into the zone's network namespace before
/// its init is released (so the first packet the zone sends is already policed).
public final class NetAttachment: TenantNetwork {
    let net: Net.TenantNetwork

    public init(host: NetworkHost) {
        net = Net.TenantNetwork(host: host)
    }

    /// The manifest's nics[] as the Net module's specs (same vmadm property names).
    public static func nicSpecs(_ vm: Manifest) throws -> [NicSpec] {
        try vm.nics.enumerated().map { i, nic in
            do {
                return try JSONDecoder().decode(NicSpec.self, from: JSONEncoder().encode(nic))
            } catch let e as LumosError {
                throw e
            } catch {
                throw LumosError.invalid("nics[\(i)]: \(oneLine(String(describing: error)))")
            }
        }
    }

    public func attach(vm: Manifest, pid: pid_t) throws {
        let nics = try Self.nicSpecs(vm)
        guard !nics.isEmpty else { return }
        try net.attach(tenant: vm.uuid, nics: nics, netnsPid: pid, hostname: vm.hostname, resolvers: vm.resolvers,
                       addressesByDHCP: nics.contains { $0.usesDHCP })
    }

    public func detach(vm: Manifest) throws {
        // Idempotent: also removes what a killed attach left behind.
        try net.cleanup(tenant: vm.uuid)
    }
}
