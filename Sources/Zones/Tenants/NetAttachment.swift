import Foundation
import Glibc
import LumosCore
import Net

/// Plugs the Net module into vmadm: a zone's nics[] become veths on their nic tag's switch,
/// with anti-spoofing, caps and DHCP service, wired into the zone's network namespace before
/// its init is released (so the first packet the zone sends is already policed), and changed
/// under the running zone by `vmadm update`.
public final class NetAttachment: TenantNetwork {
    let net: Net.TenantNetwork

    public init(host: NetworkHost) {
        net = Net.TenantNetwork(host: host)
    }

    /// The manifest's nics[] as the Net module's specs (`NicSpec` is the one NIC schema).
    public static func nicSpecs(_ vm: Manifest) throws -> [NicSpec] {
        try vm.nics.enumerated().map { i, nic in
            guard let o = nic.objectValue else { throw LumosError.invalid("nics[\(i)]: expected an object, got \(nic.typeName)") }
            do { return try NicSpec(json: o) } catch let e as LumosError { throw LumosError(e.kind, "nics[\(i)].\(e.message)") }
        }
    }

    /// What Net chose for each NIC, in the terms vmadm writes back.
    static func results(_ nics: [TenantNIC]) -> [NicResult] {
        nics.map { NicResult(mac: $0.mac.description, interface: $0.interface) }
    }

    public func validate(vm: Manifest) throws {
        let nics = try Self.nicSpecs(vm)
        try NicValidation.validate(nics)
        let store = net.host.store
        for (i, n) in nics.enumerated() where try store.switchConfig(n.nicTag) == nil {
            throw LumosError.notFound("nics[\(i)].nic_tag: \(n.nicTag) does not exist on this host; create it with `dladm create-etherstub \(n.nicTag)` or pick one from `dladm show-etherstub`")
        }
        // A MAC another tenant holds now would make its attach fail later; say so up front.
        let others = try store.tenants().filter { $0.uuid != vm.uuid }.flatMap(\.nics)
        for (i, n) in nics.enumerated() {
            if let m = n.mac, let owner = others.first(where: { $0.mac == m }) {
                throw LumosError.exists("nics[\(i)].mac: \(m) is already used by VM \(owner.tenant); pick another or leave it out to generate one")
            }
        }
    }

    /// A zone has no CAP_NET_ADMIN, so it could not configure what a DHCP client learns:
    /// Lumos always sets a zone's static addresses itself. A NIC that also lists `dhcp` is
    /// served the same address by the switch's responder, so a zone whose init runs a DHCP
    /// client gets exactly what it already has.
    static let addressesByDHCP = false

    public func attach(vm: Manifest, pid: pid_t) throws -> [NicResult] {
        let nics = try Self.nicSpecs(vm)
        guard !nics.isEmpty else { return [] }
        let results = Self.results(try net.attach(tenant: vm.uuid, nics: nics, netnsPid: pid, hostname: vm.hostname,
                                                  resolvers: vm.resolvers, addressesByDHCP: Self.addressesByDHCP))
        try setRoutes(vm, results, pid: pid)
        return results
    }

    public func attachTaps(vm: Manifest) throws -> [TapPort] {
        let nics = try Self.nicSpecs(vm)
        guard !nics.isEmpty else { return [] }
        let taps = try net.attachTaps(tenant: vm.uuid, nics: nics, hostname: vm.hostname, resolvers: vm.resolvers)
        return try taps.map { tap in
            // Our own copy: the TenantTap closes its descriptor when it goes.
            let fd = fcntl(tap.descriptor, F_DUPFD_CLOEXEC, 3)
            if fd < 0 { throw Errno(errno, "dup", tap.interface) }
            return TapPort(descriptor: fd, mac: tap.mac.description, interface: tap.interface)
        }
    }

    public func apply(vm: Manifest, pid: pid_t) throws -> [NicResult] {
        let nics = try Self.nicSpecs(vm)
        let results = Self.results(try net.apply(tenant: vm.uuid, nics: nics, netns: .pid(pid), hostname: vm.hostname,
                                                 resolvers: vm.resolvers, addressesByDHCP: Self.addressesByDHCP))
        try setRoutes(vm, results, pid: pid)
        return results
    }

    /// The manifest's routes as the zone's static routes; `nics[N]` and `macs[MAC]` become
    /// link-local routes over that NIC's interface (vmadm(8) "routes").
    static func staticRoutes(_ vm: Manifest, _ results: [NicResult]) -> [StaticRoute] {
        let nics = vm.withNicResults(results).nics.compactMap(\.objectValue)
        return vm.routes.map { dest, gw in
            switch RouteGateway(gw) {
            case .nic(let i) where i < nics.count:
                return StaticRoute(destination: dest, interface: nics[i]["interface"]?.stringValue)
            case .mac(let mac):
                let nic = nics.first { $0["mac"]?.stringValue?.lowercased() == mac }
                return StaticRoute(destination: dest, interface: nic?["interface"]?.stringValue)
            default:
                return StaticRoute(destination: dest, gateway: gw)
            }
        }
    }

    func setRoutes(_ vm: Manifest, _ results: [NicResult], pid: pid_t) throws {
        let routes = Self.staticRoutes(vm, results)
        do {
            try StaticRoutes.set(routes, in: .pid(pid))
        } catch {
            throw LumosError.failed("routes: the zone's static routes could not be set (\(oneLine(error))); check each gateway is reachable from a NIC's subnet")
        }
    }

    public func reset(vm: Manifest, pid: pid_t) throws -> [NicResult] {
        try net.cleanup(tenant: vm.uuid)
        return try attach(vm: vm, pid: pid)
    }

    public func detach(vm: Manifest) throws {
        // Idempotent: also removes what a killed attach left behind.
        try net.cleanup(tenant: vm.uuid)
    }
}
