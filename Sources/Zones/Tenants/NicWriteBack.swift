import LumosCore

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
