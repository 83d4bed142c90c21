import LumosCore
import Net

/// nics[]: the values of vmadm's NIC properties, checked here with vmadm's messages; the NIC
/// schema (which keys exist) and the rules across NICs are the Net module's `NicSpec` and
/// `NicValidation.checkAcross`.
enum NicChecks {
    /// Lumos extensions (the Net module's names): bandwidth caps in Mbit/s, like dladm's maxbw;
    /// tx is what the zone sends, rx what it receives.
    static var bandwidthKeys: [String] { NicSpec.bandwidthFields }
    static var booleanKeys: [String] { NicSpec.flagFields }
    /// Only fields the Net module acts on: anything else would be silently ignored.
    static var keys: [String] { NicSpec.fieldNames }

    /// vmadm's nics.* properties Lumos does not act on, with the reason (vmadm(8) "nics.*").
    static let unsupportedFields = [
        "allow_unfiltered_promisc": "Lumos's anti-spoofing has no promiscuous exception; a NIC sees its own MAC's and broadcast traffic only",
        "allowed_dhcp_cids": "DHCP client identifiers are not filtered by Lumos's anti-spoofing; remove it",
        "dhcp_server": "is deprecated in vmadm; use allow_dhcp_spoofing",
        "network_uuid": "Lumos has no network registry to track NICs in; remove it (nic_tag names the switch)",
        "vrrp_vrid": "VRRP MAC addresses are not supported by Lumos's anti-spoofing",
        "vrrp_primary_ip": "VRRP is not supported by Lumos's anti-spoofing",
    ]

    /// kvm NIC models QEMU emulates (nics[].model; lx zones refuse the key, `PropertyRules`).
    static let nicModels: Set<String> = ["virtio", "e1000", "rtl8139"]

    static func check(_ value: JSONValue) throws {
        guard let list = value.arrayValue else {
            throw LumosError.invalid("nics: expected an array of NIC objects, got \(value.typeName)")
        }
        var specs: [NicSpec] = []
        for (i, entry) in list.enumerated() {
            let nic = try checkOne(entry, at: "nics[\(i)]", requireTag: true)
            specs.append(try spec(nic, at: "nics[\(i)]"))
        }
        try NicValidation.checkAcross(specs)
    }

    /// A complete NIC as the Net module's spec, with its values checked there (ranges, the
    /// nic tag's form, gateways in a subnet of ips): the one place those rules are written.
    @discardableResult
    static func spec(_ nic: [String: JSONValue], at: String) throws -> NicSpec {
        let spec: NicSpec
        do { spec = try NicSpec(json: nic) } catch let e as LumosError { throw LumosError(e.kind, "\(at).\(e.message)") }
        try NicValidation.validateValues(spec, at: at)
        return spec
    }

    /// Checks one NIC object. `requireTag` is false for update_nics entries, which name a NIC by mac.
    @discardableResult
    static func checkOne(_ entry: JSONValue, at: String, requireTag: Bool) throws -> [String: JSONValue] {
        guard let nic = entry.objectValue else { throw LumosError.invalid("\(at): expected an object like {\"nic_tag\": \"admin\", \"ips\": [\"dhcp\"]}, got \(entry.typeName)") }
        for k in nic.keys.sorted() where !keys.contains(k) {
            if let why = unsupportedFields[k] { throw LumosError.unsupported("\(at).\(k): \(why)") }
            let hint = keys.map { ($0, PropertyTable.editDistance(k, $0)) }.min { $0.1 < $1.1 }
            let dym = hint.map { $0.1 <= 3 ? "; did you mean \"\($0.0)\"?" : "" } ?? ""
            throw LumosError.invalid("\(at): unknown NIC property \"\(k)\"\(dym)")
        }
        if nic["nic_tag"] == nil && requireTag {
            throw LumosError.invalid("\(at): nic_tag is required; name the host network to attach to, e.g. \"nic_tag\": \"admin\"")
        }
        if let mac = nic["mac"], !(mac.stringValue.map(ValueChecks.isUnicastMAC) ?? false) {
            throw LumosError.invalid("\(at).mac: \(ValueChecks.show(mac)) is not a unicast MAC; write six hex octets like 90:b8:d0:12:34:56")
        }
        if let ip = nic["ip"], !(ip.stringValue.map { $0 == "dhcp" || ValueChecks.isIP($0) } ?? false) {
            throw LumosError.invalid("\(at).ip: \(ValueChecks.show(ip)) is not an IP address or \"dhcp\"")
        }
        if let mask = nic["netmask"], !(mask.stringValue.map(ValueChecks.isIPv4) ?? false) {
            throw LumosError.invalid("\(at).netmask: \(ValueChecks.show(mask)) is not a netmask like 255.255.255.0")
        }
        if let ipsValue = nic["ips"] {
            guard let a = ipsValue.arrayValue, !a.isEmpty else { throw LumosError.invalid("\(at).ips: expected a non-empty array like [\"10.0.0.5/24\"] or [\"dhcp\"]") }
            for (j, v) in a.enumerated() {
                guard let s = v.stringValue, s == "dhcp" || s == "addrconf" || ValueChecks.isCIDR(s) else {
                    let more = v.stringValue.map { ValueChecks.isIP($0) ? " (add the prefix length, e.g. \($0)/24)" : "" } ?? ""
                    throw LumosError.invalid("\(at).ips[\(j)]: \(ValueChecks.show(v)) is not an address with prefix, \"dhcp\" or \"addrconf\"\(more)")
                }
            }
            // vmadm get shows ip/netmask beside ips (the old form, for lookups such as
            // nics.*.ip=...); a NIC copied from it may carry both when they agree.
            if let ip = nic["ip"]?.stringValue, !a.contains(where: { $0.stringValue?.split(separator: "/").first.map(String.init) == ip }) {
                throw LumosError.invalid("\(at): ip \(ip) is not one of ips; give ips only")
            }
        }
        if let gw = nic["gateway"], !(gw.stringValue.map(ValueChecks.isIP) ?? false) {
            throw LumosError.invalid("\(at).gateway: \(ValueChecks.show(gw)) is not an IP address")
        }
        for key in ["gateways", "allowed_ips"] {
            guard let v = nic[key] else { continue }
            guard let a = v.arrayValue else { throw LumosError.invalid("\(at).\(key): expected an array of IP addresses") }
            for (j, e) in a.enumerated() {
                let ok = e.stringValue.map { ValueChecks.isIP($0) || (key == "allowed_ips" && ValueChecks.isCIDR($0)) } ?? false
                if !ok { throw LumosError.invalid("\(at).\(key)[\(j)]: \(ValueChecks.show(e)) is not an IP address\(key == "allowed_ips" ? " or CIDR block" : "")") }
            }
        }
        for key in booleanKeys {
            if let v = nic[key], v.boolValue == nil { throw LumosError.invalid("\(at).\(key): expected true or false, got \(v.typeName) \(ValueChecks.show(v))") }
        }
        if let v = nic["model"], !(v.stringValue.map(nicModels.contains) ?? false) {
            throw LumosError.invalid("\(at).model: unknown NIC model \(ValueChecks.show(v)); use virtio, e1000 or rtl8139")
        }
        for key in bandwidthKeys {
            if let v = nic[key], v.numberValue == nil {
                throw LumosError.invalid("\(at).\(key): \(ValueChecks.show(v)) is not a bandwidth; give Mbit/s as a positive number, e.g. 100")
            }
        }
        return nic
    }
}
