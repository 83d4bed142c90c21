import Glibc
import LumosCore

/// A tenant's NICs: veth pairs whose host side is a port on the NIC's switch and whose other
/// side is `netN` inside the tenant's network namespace, with anti-spoofing, bandwidth caps and
/// DHCP service on the host side where the tenant cannot touch them.
///
/// Every operation holds the net lock, records its intent before touching the kernel, and on
/// failure undoes itself with `cleanup`, so a failed or killed attach leaves no link, set
/// element, qdisc or lease behind after the next command.
public struct TenantNetwork: Sendable {
    public let host: NetworkHost

    public init(host: NetworkHost) { self.host = host }

    // MARK: Names

    /// `lz` + the first 8 hex digits of the tenant uuid: the prefix of all its host links.
    public static func linkPrefix(tenant: String) throws -> String {
        let hex = tenant.lowercased().filter { $0.isHexDigit }
        guard hex.count >= 8, tenant.allSatisfy({ $0.isHexDigit || $0 == "-" }) else {
            throw LumosError.invalid("\(tenant): not a tenant uuid (hex digits and dashes, at least 8 digits)")
        }
        return Antispoof.tenantPortPrefix + hex.prefix(8)
    }

    /// Host side of netN: `lz<uuid8><N>` (at most 12 characters; IFNAMSIZ is 16).
    public static func hostLinkName(tenant: String, interface: String) throws -> String {
        try linkPrefix(tenant: tenant) + interface.dropFirst(3)
    }

    /// The ifb of a host link: `lz<uuid8>i<N>`.
    public static func ifbName(hostLink: String) -> String {
        String(hostLink.prefix(10)) + "i" + hostLink.dropFirst(10)
    }

    /// True for names Lumos gives tenant links (`lz` + 8 hex + [i] + digits).
    public static func isTenantLink(_ name: String) -> Bool {
        guard name.hasPrefix("lz"), name.count > 10 else { return false }
        let hex = name.dropFirst(2).prefix(8)
        var rest = name.dropFirst(10)
        if rest.first == "i" { rest = rest.dropFirst() }
        return hex.allSatisfy { $0.isHexDigit && !$0.isUppercase } && !rest.isEmpty && rest.allSatisfy(\.isNumber)
    }

    // MARK: Queries

    public func nics(tenant: String) throws -> [TenantNIC] { try host.store.tenant(tenant)?.nics ?? [] }

    // MARK: Attach

    /// Wires NICs into a running tenant (a zone's init pid). See `attach(tenant:nics:netns:...)`.
    @discardableResult
    public func attach(tenant: String, nics: [NicSpec], netnsPid: pid_t, hostname: String? = nil,
                       resolvers: [String] = [], addressesByDHCP: Bool = false) throws -> [TenantNIC] {
        try attach(tenant: tenant, nics: nics, netns: .pid(netnsPid), hostname: hostname, resolvers: resolvers, addressesByDHCP: addressesByDHCP)
    }

    /// Creates one veth per NIC, moves its peer into `netns` as netN with the NIC's MAC and MTU,
    /// configures addresses and the default route inside (unless `addressesByDHCP`: then the
    /// built-in DHCP responder hands them out), and installs anti-spoofing, caps and DHCP service.
    /// Returns the NICs with their generated MACs and interface names (write them back to the manifest).
    @discardableResult
    public func attach(tenant: String, nics: [NicSpec], netns: NetNamespace, hostname: String? = nil,
                       resolvers: [String] = [], addressesByDHCP: Bool = false) throws -> [TenantNIC] {
        try attach(tenant: tenant, nics: nics, ports: .veths(netns), hostname: hostname, resolvers: resolvers, addressesByDHCP: addressesByDHCP).nics
    }

    /// A VM's NICs (docs/net.md, "Tenant taps"): one tap per NIC in the switch's namespace,
    /// named like a veth's host side (`lz<uuid8><N>`), a port of its switch with the same
    /// anti-spoofing elements and caps as a zone's NIC, and served by the switch's DHCP
    /// responder with the NIC's manifest address (the record takes addresses by DHCP). Each
    /// `TenantTap` holds the tap's descriptor (O_CLOEXEC) for QEMU; the taps are not persistent,
    /// so they go when the last copy of it is closed (then `repair` drops the rest), or with
    /// `detach`/`cleanup`. NICs of a tap tenant cannot be updated in place (`update` refuses).
    public func attachTaps(tenant: String, nics: [NicSpec], hostname: String? = nil, resolvers: [String] = []) throws -> [TenantTap] {
        let r = try attach(tenant: tenant, nics: nics, ports: .taps, hostname: hostname, resolvers: resolvers, addressesByDHCP: true)
        return zip(r.nics, r.descriptors).map { TenantTap(nic: $0, descriptor: $1) }
    }

    /// Where a tenant's NICs go: veths into its namespace, or taps held by the caller.
    enum Ports {
        case veths(NetNamespace)
        case taps
    }

    func attach(tenant: String, nics: [NicSpec], ports: Ports, hostname: String?, resolvers: [String],
                addressesByDHCP: Bool) throws -> (nics: [TenantNIC], descriptors: [Int32]) {
        try NicValidation.validate(nics)
        for r in resolvers where IPAddress(r) == nil { throw LumosError.invalid("resolvers: \(r) is not an IP address") }
        _ = try Self.linkPrefix(tenant: tenant)
        if case .veths(let netns) = ports { try netns.check() }
        try host.namespace.check()
        let lock = try host.store.lock()
        defer { withExtendedLifetime(lock) {} }
        if try host.store.tenant(tenant) != nil {
            throw LumosError.exists("tenant \(tenant) already has NICs attached; use update, or detach first")
        }
        try checkPrefixFree(tenant)
        var record = TenantRecord(uuid: tenant, hostname: hostname, resolvers: resolvers, addressesByDHCP: addressesByDHCP, nics: [])
        if case .taps = ports { record.taps = true }
        let added = try resolve(nics, tenant: tenant, existing: [])
        try preflight(added)
        record.nics = added
        // Recorded before any link exists: a crash from here on is undone by cleanup/repair.
        try host.store.save(record)
        do {
            return (added, try plumb(added, record: record, ports: ports))
        } catch {
            try? cleanupLocked(tenant)
            throw error
        }
    }

    /// Assigns interface names, host link names and MACs.
    func resolve(_ specs: [NicSpec], tenant: String, existing: [TenantNIC]) throws -> [TenantNIC] {
        var used = try host.store.usedMACs()
        var taken = Set(existing.map(\.interface))
        for s in specs { if let i = s.interface { taken.insert(i) } }
        var out: [TenantNIC] = []
        for (i, var spec) in specs.enumerated() {
            if let m = spec.mac, used.contains(m) {
                throw LumosError.exists("nics[\(i)].mac: \(m) is already used by another NIC on this host; pick another or leave it out")
            }
            let iface: String
            if let given = spec.interface {
                if existing.contains(where: { $0.interface == given }) {
                    throw LumosError.exists("nics[\(i)].interface: \(given) already exists on tenant \(tenant)")
                }
                iface = given
            } else {
                var n = 0
                while taken.contains("net\(n)") { n += 1 }
                iface = "net\(n)"
                taken.insert(iface)
            }
            let generated = spec.mac == nil
            let mac = spec.mac ?? MACAddress.generate(avoiding: used)
            used.insert(mac)
            spec.mac = mac
            spec.interface = iface
            out.append(TenantNIC(tenant: tenant, interface: iface, hostLink: try Self.hostLinkName(tenant: tenant, interface: iface), mac: mac, spec: spec, macGenerated: generated))
        }
        return out
    }

    /// Checks what can only be checked against the host before anything changes.
    func preflight(_ nics: [TenantNIC]) throws {
        var checked: [String: VirtualSwitch] = [:]
        for (i, n) in nics.enumerated() {
            let sw = try checked[n.switchName] ?? host.ensureSwitch(n.switchName)
            checked[n.switchName] = sw
            if let v = n.spec.vlanID, v != 0, try !Self.bridgesFilterVLANs() {
                throw LumosError.unsupported("nics[\(i)].vlan_id \(v): this kernel has no 802.1Q VLAN support on bridges (CONFIG_BRIDGE_VLAN_FILTERING); remove vlan_id or run a kernel with it")
            }
        }
    }

    /// Whether bridges can tag ports (802.1Q filtering). Probed on a throwaway bridge in a
    /// namespace of its own that dies with the probe, so no switch is changed by asking.
    static func bridgesFilterVLANs() throws -> Bool {
        let r = try Exec.run(["unshare", "--net", "--", "ip", "link", "add", "lumosprobe", "type", "bridge", "vlan_filtering", "1"], check: false)
        if r.status == 0 { return true }
        if r.stderr.contains("not supported") { return false }
        throw LumosError.failed("cannot probe bridge VLAN support: \(r.stderr.trimmingSpaces())")
    }

    func checkPrefixFree(_ tenant: String) throws {
        let prefix = try Self.linkPrefix(tenant: tenant)
        if let other = try host.store.tenants().first(where: { $0.uuid != tenant && (try? Self.linkPrefix(tenant: $0.uuid)) == prefix }) {
            throw LumosError.exists("tenant \(tenant) shares its first 8 uuid digits with tenant \(other.uuid); Lumos names links by them: use another uuid")
        }
    }

    /// The kernel side of attach for `nics` (already recorded). For taps, returns their
    /// descriptors in the order of `nics` (none are left open when it throws).
    @discardableResult
    func plumb(_ nics: [TenantNIC], record: TenantRecord, ports: Ports) throws -> [Int32] {
        if nics.isEmpty { return [] }
        // Anti-spoofing is in place before a port joins its bridge, so the tenant never sends
        // one unchecked frame (ifname matching does not need the link to exist yet). The record
        // already holds these NICs, so a missing table is rebuilt with them.
        // The table goes with the last tenant NIC, so the first tenant on a host makes it at once
        // (one nft run) instead of failing to add to a table that is not there. Only the names
        // of the records are read: an attach on a busy host must not parse every record again.
        let firstTenant = host.store.tenantUUIDs().allSatisfy { $0 == record.uuid }
        if firstTenant || (try? host.tools.nft(Antispoof.addScript(nics.map(\.portPolicy)))) == nil {
            try host.rebuildAntispoof()
        }
        var switches: [String: VirtualSwitch] = [:]
        for name in Set(nics.map(\.switchName)) {
            guard let sw = try host.store.switchConfig(name) else { throw LumosError.notFound("nic tag \(name) does not exist") }
            switches[name] = sw
        }
        var hostLines: [String] = []
        var portLines: [String] = []
        var upLines: [String] = []
        var zoneLines: [String] = ["link set lo up"]
        var tcLines: [String] = []
        var bridgeLines: [String] = []
        var createInZone: [String] = []
        var vlanBridges: Set<String> = []
        // Switches made by an older Lumos get the bridge options too (no extra exec: same batch).
        for sw in switches.values.sorted(by: { $0.name < $1.name }) {
            hostLines.append("link set \(sw.bridge) type bridge \(NetworkHost.bridgeOptions)")
        }
        var descriptors: [Int32] = []
        var plumbed = false
        defer { if !plumbed { descriptors.forEach { _ = Glibc.close($0) } } }
        for n in nics {
            let sw = switches[n.switchName]!
            let mtu = n.spec.mtu ?? sw.mtu ?? 1500
            switch ports {
            case .taps:
                // The tap exists from here on, a port of nothing yet: its elements are in the
                // table already, and it joins the bridge in the batch below like a veth.
                descriptors.append(try Tap.open(name: n.hostLink, namespace: host.namespace))
                hostLines.append("link set dev \(n.hostLink) mtu \(mtu)")
            case .veths(let netns):
                if let ref = netns.iprouteReference {
                    hostLines.append("link add \(n.hostLink) mtu \(mtu) type veth peer name \(n.interface) address \(n.mac) mtu \(mtu) netns \(ref)")
                } else if let hostRef = host.namespace.iprouteReference {
                    createInZone.append("link add \(n.interface) address \(n.mac) mtu \(mtu) type veth peer name \(n.hostLink) mtu \(mtu) netns \(hostRef)")
                } else {
                    throw LumosError.unsupported("\(netns) and the host \(host.namespace) are both given only by path; give the tenant by pid")
                }
            }
            if n.spec.txMaxbwMbps != nil {
                hostLines += ["link add \(n.ifbLink) type ifb", "link set \(n.ifbLink) up"]
            }
            portLines += ["link set \(n.hostLink) addrgenmode none", "link set \(n.hostLink) master \(sw.bridge)"]
            upLines.append("link set \(n.hostLink) up")
            tcLines += Bandwidth.lines(hostLink: n.hostLink, ifb: n.ifbLink, rxMbps: n.spec.rxMaxbwMbps, txMbps: n.spec.txMaxbwMbps)
            if let v = n.spec.vlanID, v != 0 {
                // Filtering is switched on only when a port is tagged (preflight checked it can be).
                if vlanBridges.insert(sw.bridge).inserted { hostLines.insert("link set \(sw.bridge) type bridge vlan_filtering 1", at: 0) }
                bridgeLines += ["vlan add dev \(n.hostLink) vid \(v) pvid untagged", "vlan del dev \(n.hostLink) vid 1"]
                if let up = sw.uplink { bridgeLines.append("vlan add dev \(up) vid \(v)") }
            }
            guard case .veths = ports else { continue }
            zoneLines.append("link set \(n.interface) up")
            if !record.addressesByDHCP {
                for a in n.spec.addresses { zoneLines.append(Self.addressLine(a, n.interface)) }
                if n.spec.isPrimary {
                    for g in n.spec.gatewayAddresses { zoneLines.append("route replace default via \(g) dev \(n.interface)") }
                }
            }
        }
        // Caps and VLANs are set before the port comes up; without them one batch does it all.
        if !createInZone.isEmpty, case .veths(let netns) = ports { try NetTools(netns).ipBatch(createInZone) }
        if tcLines.isEmpty && bridgeLines.isEmpty {
            try host.tools.ipBatch(hostLines + portLines + upLines)
        } else {
            try host.tools.ipBatch(hostLines + portLines)
            try host.tools.tcBatch(tcLines)
            try host.tools.bridgeBatch(bridgeLines)
            try host.tools.ipBatch(upLines)
        }
        if case .veths(let netns) = ports { try NetTools(netns).ipBatch(zoneLines) }
        let dhcp = DHCPService(host: host)
        for s in Set(nics.map(\.switchName)) { try dhcp.refresh(switchName: s) }
        plumbed = true
        return descriptors
    }

    // MARK: Detach and cleanup

    /// Removes every NIC of a tenant and all that came with them. Fails when nothing is attached.
    public func detach(tenant: String) throws {
        let lock = try host.store.lock()
        defer { withExtendedLifetime(lock) {} }
        guard try host.store.tenant(tenant) != nil else {
            throw LumosError.notFound("tenant \(tenant) has no NICs attached")
        }
        try cleanupLocked(tenant)
    }

    /// Idempotent crash recovery: removes the tenant's links (by name, recorded or not), its set
    /// elements, qdiscs (they go with the links), leases and record. Succeeds when nothing is left.
    public func cleanup(tenant: String) throws {
        let lock = try host.store.lock()
        defer { withExtendedLifetime(lock) {} }
        try cleanupLocked(tenant)
    }

    func cleanupLocked(_ tenant: String) throws {
        let prefix = try Self.linkPrefix(tenant: tenant)
        let record = try host.store.tenant(tenant)
        try host.namespace.check()
        // Two uuids may share the first 8 hex digits: links another tenant's record owns are
        // that tenant's, not leftovers of this one.
        let others = try host.store.tenants().filter { $0.uuid != tenant }.flatMap(\.nics)
        let ownedByOthers = Set(others.flatMap { [$0.hostLink, $0.ifbLink] })
        // Deleting the host side of a veth deletes its peer inside the tenant too; a tap goes
        // even while QEMU holds its descriptor, which then carries no frames.
        let links = try host.tools.links().map(\.name).filter {
            $0.hasPrefix(prefix) && Self.isTenantLink($0) && !ownedByOthers.contains($0)
        }
        try host.tools.ipBatch(links.map { "link del \($0)" }, force: true)
        // Whether the table may still be there once this tenant's elements are gone.
        var tableLeft = true
        if let record, !record.nics.isEmpty {
            let del = Antispoof.deleteScript(record.nics.map(\.portPolicy))
            // A delete fails as a whole when one element is missing: rebuild without the tenant.
            if (try? host.tools.nft(del)) == nil { try host.rebuildAntispoof(excluding: tenant) }
        } else if Exec.which("nft") == nil {
            // Without nft no table of Lumos's can exist: a tenant without NICs needs no nft.
            tableLeft = false
        } else {
            let r = try host.tools.nftCommand(["list", "table", Antispoof.family, Antispoof.table], check: false)
            tableLeft = r.status == 0
            if tableLeft && r.stdout.contains("\"\(prefix)") { try host.rebuildAntispoof(excluding: tenant) }
        }
        host.store.removeTenant(tenant)
        if tableLeft { try host.dropAntispoofIfUnused() }
        let dhcp = DHCPService(host: host)
        for s in Set(record?.nics.map(\.switchName) ?? []) where try host.store.switchConfig(s) != nil {
            try dhcp.refresh(switchName: s)
        }
    }

    // MARK: Update

    /// `vmadm update` for NICs of a running tenant: `remove` takes MACs (vmadm remove_nics),
    /// `update` entries are matched by mac (vmadm update_nics), `add` are new NICs (vmadm
    /// add_nics). Validated as a whole first. A change of addresses, allow_* properties,
    /// allowed_ips, blocked ports or caps is applied in place (the tenant's netN and its sockets
    /// stay); a change of nic_tag, mtu or vlan_id re-plumbs the NIC with the same netN and MAC.
    @discardableResult
    public func update(tenant: String, netns: NetNamespace, add: [NicSpec] = [], remove: [MACAddress] = [], update: [NicSpec] = []) throws -> [TenantNIC] {
        try netns.check()
        let lock = try host.store.lock()
        defer { withExtendedLifetime(lock) {} }
        guard var record = try host.store.tenant(tenant) else {
            throw LumosError.notFound("tenant \(tenant) has no NICs attached; attach them first")
        }
        if record.hasTaps {
            throw LumosError.unsupported("tenant \(tenant)'s NICs are taps held by its VM; they cannot change while it runs: detach and attach them again")
        }
        for m in remove where !record.nics.contains(where: { $0.mac == m }) {
            throw LumosError.notFound("remove_nics: tenant \(tenant) has no NIC with mac \(m)")
        }
        var changed: [(old: TenantNIC, new: TenantNIC)] = []
        for (i, u) in update.enumerated() {
            guard let m = u.mac, let old = record.nics.first(where: { $0.mac == m }) else {
                throw LumosError.notFound("update_nics[\(i)]: tenant \(tenant) has no NIC with mac \(u.mac?.description ?? "(none)"); name the NIC by its mac")
            }
            var nic = old
            nic.spec = u
            nic.spec.interface = old.interface
            changed.append((old, nic))
        }
        let keep = record.nics.filter { n in !remove.contains(n.mac) && !changed.contains(where: { $0.old.mac == n.mac }) }
        try NicValidation.validate(keep.map(\.spec) + changed.map(\.new.spec) + add)
        let added = try resolve(add, tenant: tenant, existing: keep + changed.map(\.new))
        let replug = changed.filter { Self.needsReplug($0.old.spec, $0.new.spec) }
        let inPlace = changed.filter { !Self.needsReplug($0.old.spec, $0.new.spec) }
        try preflight(replug.map(\.new) + added)
        let gone = record.nics.filter { n in remove.contains(n.mac) || replug.contains(where: { $0.old.mac == n.mac }) }

        // Take down what goes or is re-plumbed, change in place, then plumb what comes.
        try unplumb(gone, record: record)
        record.nics = keep + inPlace.map(\.old)
        try host.store.save(record)
        // Test hook: a kill -9 here leaves some NICs removed and none added (vmadm's recovery).
        CrashPoint.hit("net.update.unplumbed")
        for c in inPlace { try change(c.old, to: c.new, record: &record, netns: netns) }
        let incoming = replug.map(\.new) + added
        record.nics = Self.ordered(keep + inPlace.map(\.new) + incoming)
        try host.store.save(record)
        do {
            try plumb(incoming, record: record, ports: .veths(netns))
        } catch {
            try? unplumb(incoming, record: record)
            record.nics = Self.ordered(keep + inPlace.map(\.new))
            try? host.store.save(record)
            throw error
        }
        let dhcp = DHCPService(host: host)
        for s in Set((gone + inPlace.map(\.old)).map(\.switchName)) where try host.store.switchConfig(s) != nil {
            try dhcp.refresh(switchName: s)
        }
        return record.nics
    }

    /// `ip addr add` for a tenant address. IPv6 skips duplicate address detection: anti-spoofing
    /// already keeps every other port off this address, and DAD would hold it back ~1 s.
    static func addressLine(_ a: IPNetwork, _ iface: String) -> String {
        "addr add \(a) dev \(iface)" + (a.isIPv4 ? "" : " nodad")
    }

    static func ordered(_ nics: [TenantNIC]) -> [TenantNIC] {
        nics.sorted { (Int($0.interface.dropFirst(3)) ?? 0) < (Int($1.interface.dropFirst(3)) ?? 0) }
    }

    /// Properties that are part of the link itself; the rest can change under a live NIC.
    static func needsReplug(_ a: NicSpec, _ b: NicSpec) -> Bool {
        a.nicTag != b.nicTag || a.mtu != b.mtu || (a.vlanID ?? 0) != (b.vlanID ?? 0)
    }

    /// Applies a NIC's new policy, caps and addresses without touching its link.
    func change(_ old: TenantNIC, to new: TenantNIC, record: inout TenantRecord, netns: NetNamespace) throws {
        // Old and new elements swap in one transaction, so there is no moment without a rule.
        let swap = Antispoof.deleteScript([old.portPolicy]) + Antispoof.addScript([new.portPolicy])
        if record.nics.firstIndex(where: { $0.mac == old.mac }).map({ record.nics[$0] = new }) == nil { record.nics.append(new) }
        if (try? host.tools.nft(swap)) == nil {
            try host.store.save(record)
            try host.rebuildAntispoof()
        }
        var ipLines: [String] = []
        var tcLines: [String] = []
        if old.spec.rxMaxbwMbps != new.spec.rxMaxbwMbps {
            tcLines += new.spec.rxMaxbwMbps.map { [Bandwidth.tbf(dev: new.hostLink, mbps: $0)] } ?? Bandwidth.removalLines(hostLink: new.hostLink, rx: true, tx: false)
        }
        if old.spec.txMaxbwMbps != new.spec.txMaxbwMbps {
            if let tx = new.spec.txMaxbwMbps {
                if old.spec.txMaxbwMbps == nil { ipLines += ["link add \(new.ifbLink) type ifb", "link set \(new.ifbLink) up"] }
                tcLines += Bandwidth.ingressCap(dev: new.hostLink, ifb: new.ifbLink, mbps: tx)
            } else {
                tcLines += Bandwidth.removalLines(hostLink: new.hostLink, rx: false, tx: true)
            }
        }
        try host.tools.ipBatch(ipLines)
        try host.tools.tcBatch(tcLines, force: true)
        if old.spec.txMaxbwMbps != nil && new.spec.txMaxbwMbps == nil {
            try host.tools.ipBatch(["link del \(new.ifbLink)"], force: true)
        }
        if !record.addressesByDHCP {
            let iface = new.interface
            let oldAddrs = Set(old.spec.addresses), newAddrs = Set(new.spec.addresses)
            var zone = oldAddrs.subtracting(newAddrs).map { "addr del \($0) dev \(iface)" }
            zone += newAddrs.subtracting(oldAddrs).map { Self.addressLine($0, iface) }
            if old.spec.isPrimary != new.spec.isPrimary || old.spec.gateways != new.spec.gateways {
                if old.spec.isPrimary { zone += old.spec.gatewayAddresses.map { "route del default via \($0) dev \(iface)" } }
                if new.spec.isPrimary { zone += new.spec.gatewayAddresses.map { "route replace default via \($0) dev \(iface)" } }
            }
            try NetTools(netns).ipBatch(zone, force: true)
        }
    }

    /// Removes some NICs of a tenant (links, elements, leases); the record is the caller's.
    func unplumb(_ nics: [TenantNIC], record: TenantRecord) throws {
        if nics.isEmpty { return }
        try host.tools.ipBatch(nics.flatMap { ["link del \($0.hostLink)", "link del \($0.ifbLink)"] }, force: true)
        if (try? host.tools.nft(Antispoof.deleteScript(nics.map(\.portPolicy)))) == nil {
            var rest = record
            rest.nics.removeAll { n in nics.contains { $0.hostLink == n.hostLink } }
            try host.store.save(rest)
            try host.rebuildAntispoof()
        }
    }
}

extension TenantNetwork {
    /// /etc/resolv.conf for a zone whose addresses Lumos sets (vmadm `resolvers`); the zone
    /// runtime writes it into the zone's root. DHCP tenants get the resolvers as option 6.
    public static func resolvConf(resolvers: [String], search: String? = nil) -> String {
        (search.map { ["search \($0)"] } ?? []).joined() + (search == nil ? "" : "\n")
            + resolvers.map { "nameserver \($0)\n" }.joined()
    }
}

extension TenantNetwork {
    /// Brings a running tenant's NICs to `desired` (its manifest's nics[] after vmadm applied
    /// add_nics/remove_nics/update_nics): NICs are matched by mac; those gone are removed,
    /// changed ones updated, new ones (no mac, or an unknown mac) added. Attaches when nothing
    /// is attached yet and detaches when `desired` is empty.
    @discardableResult
    public func apply(tenant: String, nics desired: [NicSpec], netns: NetNamespace, hostname: String? = nil,
                      resolvers: [String] = [], addressesByDHCP: Bool = false) throws -> [TenantNIC] {
        guard let record = try host.store.tenant(tenant) else {
            if desired.isEmpty { return [] }
            return try attach(tenant: tenant, nics: desired, netns: netns, hostname: hostname, resolvers: resolvers, addressesByDHCP: addressesByDHCP)
        }
        if desired.isEmpty { try detach(tenant: tenant); return [] }
        let current = Dictionary(record.nics.map { ($0.mac, $0) }, uniquingKeysWith: { a, _ in a })
        let wanted = Set(desired.compactMap(\.mac))
        let remove = record.nics.map(\.mac).filter { !wanted.contains($0) }
        var add: [NicSpec] = []
        var change: [NicSpec] = []
        for d in desired {
            guard let m = d.mac, let old = current[m] else { add.append(d); continue }
            var same = d
            same.interface = old.interface
            if same != old.spec { change.append(d) }
        }
        if remove.isEmpty && add.isEmpty && change.isEmpty { return record.nics }
        return try update(tenant: tenant, netns: netns, add: add, remove: remove, update: change)
    }
}

/// One NIC of a VM as `TenantNetwork.attachTaps` made it: the recorded NIC (interface netN,
/// MAC, host link `lz<uuid8><N>`, spec) and the open descriptor of its tap (O_CLOEXEC), which
/// goes to QEMU as `-netdev tap,fd=N`. The tap lives while a copy of the descriptor is open.
public final class TenantTap {
    public let nic: TenantNIC
    public private(set) var descriptor: Int32

    init(nic: TenantNIC, descriptor: Int32) {
        self.nic = nic
        self.descriptor = descriptor
    }

    public var interface: String { nic.interface }
    public var mac: MACAddress { nic.mac }
    public var hostLink: String { nic.hostLink }

    /// Closes Lumos's descriptor; the tap goes once QEMU's copy is closed too.
    public func close() {
        if descriptor >= 0 { Glibc.close(descriptor); descriptor = -1 }
    }

    deinit { close() }
}
