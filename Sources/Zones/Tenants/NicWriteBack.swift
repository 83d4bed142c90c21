import LumosCore
import Net

extension Manifest {
    /// The manifest with each NIC's `mac` and `interface` as the network wired them, so
    /// `vmadm get` shows what the zone has. vmadm gives every NIC a MAC and an interface when
    /// the payload is validated, so normally nothing changes; a manifest that lacks them
    /// (written by hand, or received from an older host) gets what the network generated.
    /// NICs are matched by mac; NICs without one take the unmatched results in order.
    public func withNicResults(_ results: [NicResult]) -> Manifest {
        guard !results.isEmpty else { return self }
        let known = Set(nics.compactMap { $0.objectValue?["mac"]?.stringValue?.lowercased() })
        var unmatched = results.filter { !known.contains($0.mac) }[...]
        var out = self
        out["nics"] = .array(nics.map { value in
            guard var nic = value.objectValue else { return value }
            let result: NicResult?
            if let mac = nic["mac"]?.stringValue?.lowercased() {
                result = results.first { $0.mac == mac }
            } else {
                result = unmatched.popFirst()
            }
            guard let result else { return value }
            nic["mac"] = .string(result.mac)
            nic["interface"] = .string(result.interface)
            return .object(nic)
        })
        return out
    }
}

extension Manifest {
    /// nics[] as vmadm get shows them: with vmadm's older single-address fields (ip, netmask,
    /// gateway) beside ips and gateways, taken from the first IPv4 address, so lookups written
    /// for them (vmadm(8) example 5, nics.*.ip=10.2.121.70) find VMs made with ips. Only shown,
    /// never stored.
    public var nicsAsShown: [JSONValue] {
        nics.map { value in
            guard var o = value.objectValue, let spec = try? NicSpec(json: o) else { return value }
            if o["ip"] == nil, let net = spec.ipv4Addresses.first {
                o["ip"] = .string(net.address.description)
                o["netmask"] = .string(net.netmask.description)
            }
            if o["gateway"] == nil, let gw = spec.gatewayAddresses.first(where: \.isIPv4) { o["gateway"] = .string(gw.description) }
            return .object(o)
        }
    }
}
