import Glibc
import LumosCore

/// The host's virtual network: switches (Linux bridges) in one network namespace, the Lumos
/// anti-spoofing table there, hand-made VNICs, and the state under `$LUMOS_ROOT/net/`.
/// `namespace` is the real host (`.current`) in production; tests and benchmarks give a
/// namespace they created so nothing touches the host's own network.
public struct NetworkHost: Sendable {
    public let root: StateRoot
    public let namespace: NetNamespace
    public let store: NetStore
    public let tools: NetTools
    /// The `lumos` executable that runs `lumos net dhcpd` (nil: this process, when it is lumos).
    public let executable: String?

    public init(root: StateRoot, namespace: NetNamespace = .current, executable: String? = nil) {
        self.root = root
        self.namespace = namespace
        self.store = NetStore(root: root)
        self.tools = NetTools(namespace)
        self.executable = executable
    }

    /// The host namespace named by `$LUMOS_NET_NETNS` (a pid, path or `ip netns` name), else the
    /// one this state root's switches were created in, else the current one: lets the CLI and
    /// bench/net work on switches inside a test namespace, and a later command without the
    /// variable still finds them.
    public static func fromEnvironment(root: StateRoot) throws -> NetworkHost {
        let recorded = try NetStore(root: root).switchNamespace()
        if let v = getenv("LUMOS_NET_NETNS"), v.pointee != 0 {
            let named = NetNamespace.parse(String(cString: v))
            if let recorded, recorded != named {
                throw LumosError.invalid("this state root's switches live in \(recorded), but LUMOS_NET_NETNS names \(named); unset it or point it there")
            }
            return NetworkHost(root: root, namespace: named)
        }
        return NetworkHost(root: root, namespace: recorded ?? .current)
    }

    /// Only a namespace that keeps its name is recorded: a pid (or /proc/PID/ns/net) may name
    /// another process's namespace once that process is gone.
    var namespaceIsStable: Bool {
        switch namespace {
        case .current: return true
        case .pid: return false
        case .path(let p): return !p.hasPrefix("/proc/")
        }
    }

    // MARK: Switches

    /// `dladm create-etherstub`: a switch with no uplink.
    @discardableResult
    public func createEtherstub(_ name: String, mtu: Int? = nil, gateway: String? = nil, nat: String? = nil) throws -> VirtualSwitch {
        let gw = gateway.map { g in IPNetwork(g, bareIsHost: false)?.description ?? g }
        return try createSwitch(VirtualSwitch(name: name, mtu: mtu, gateway: gw, nat: nat))
    }

    /// A nic tag over a physical link (nictagadm add NAME LINK): the link is enslaved to the bridge.
    @discardableResult
    public func createNicTag(_ name: String, uplink: String, mtu: Int? = nil) throws -> VirtualSwitch {
        try createSwitch(VirtualSwitch(name: name, uplink: uplink, mtu: mtu))
    }

    func createSwitch(_ sw: VirtualSwitch) throws -> VirtualSwitch {
        guard SwitchName.isValid(sw.name) else {
            throw LumosError.invalid("\(sw.name): not a valid switch name (1-15 characters a-z, 0-9, _ . -, starting with a letter)")
        }
        if let m = sw.mtu, !(576...65535).contains(m) { throw LumosError.invalid("\(sw.name): mtu \(m) is out of range (576-65535)") }
        try namespace.check()
        let lock = try store.lock()
        defer { withExtendedLifetime(lock) {} }
        if try store.switchConfig(sw.name) != nil { throw LumosError.exists("switch \(sw.name) already exists; see `dladm show-etherstub`") }
        if try tools.link(sw.name) != nil { throw LumosError.exists("\(sw.name): a link with this name already exists; pick another name") }
        if let up = sw.uplink {
            guard let link = try tools.link(up) else { throw LumosError.notFound("uplink \(up) does not exist; see `dladm show-link`") }
            if let m = link.master { throw LumosError.busy("uplink \(up) is already on \(m); remove it from there first") }
        }
        try validateNAT(sw, others: try store.switches())
        let firstSwitch = try store.switches().isEmpty
        if let recorded = try store.switchNamespace(), recorded != namespace, !firstSwitch {
            throw LumosError.invalid("this state root's switches live in \(recorded), not in \(namespace); create \(sw.name) there")
        }
        if firstSwitch && namespaceIsStable { try store.saveSwitchNamespace(namespace) }
        try store.save(sw)
        do {
            try plumb(sw)
        } catch {
            _ = try? tools.ip(["link", "del", sw.bridge], check: false)
            store.removeSwitch(sw.name)
            if sw.nat != nil { try? applyNAT() }
            if firstSwitch { store.removeSwitchNamespace() }
            throw error
        }
        return sw
    }

    /// Creates the bridge of a configured switch (again, e.g. after a reboot).
    func plumb(_ sw: VirtualSwitch) throws {
        var lines = ["link add \(sw.bridge)\(sw.mtu.map { " mtu \($0)" } ?? "") type bridge \(Self.bridgeOptions)"]
        if let up = sw.uplink { lines += ["link set \(up) master \(sw.bridge)", "link set \(up) up"] }
        for a in sw.hostAddresses + (sw.gateway.map { [$0] } ?? []) { lines.append("addr add \(a) dev \(sw.bridge)") }
        try tools.ipBatch(lines)
        try ignoreRouterMessages(sw.bridge)
        try tools.ipBatch(["link set \(sw.bridge) up"])
        try bypassBridgeNetfilter()
        // After a reboot the NAT table and forwarding went with the bridge: back from the records.
        if sw.nat != nil { try applyNAT() }
    }

    /// Bridge options every switch has (docs/security.md, "Switches"): frames to the link-local
    /// group addresses (01:80:c2:00:00:0X: LLDP, 802.1X, ...) are delivered to the bridge before
    /// any netfilter hook sees them, and the bridge would learn their source MAC on the sending
    /// port, so a tenant could move a neighbour's MAC to itself. Not learning from them leaves
    /// learning to frames that passed the anti-spoofing check at prerouting.
    static let bridgeOptions = "no_linklocal_learn 1"

    /// The switch's own interface in the host never takes a tenant's word on routing: no router
    /// advertisements (a rogue RA would give the host a prefix and a default route) and no ICMP
    /// redirects. Lumos owns the bridge, so it sets these; the host's other interfaces are not
    /// touched. Cheap (no exec): every attach re-asserts them, for switches made before.
    func ignoreRouterMessages(_ bridge: String) throws {
        var settings = [(key: "net.ipv4.conf.\(bridge).accept_redirects", value: "0")]
        // A host without IPv6 has no net.ipv6 keys and nothing to refuse.
        if Files.isDirectory("/proc/sys/net/ipv6") {
            settings += [("net.ipv6.conf.\(bridge).accept_ra", "0"), ("net.ipv6.conf.\(bridge).accept_redirects", "0")]
        }
        try tools.writeSysctls(settings)
    }

    /// br_netfilter (on by default in every new namespace when the module is loaded) sends each
    /// bridged IPv4/IPv6/ARP frame through the IP-family hooks as well: an skb extension, header
    /// validation and three more hook walks per packet, ~4% of the CPU a tenant-to-tenant TCP
    /// stream costs (bench/net.sh). Lumos filters bridged traffic in its own bridge-family table,
    /// so a namespace that holds only Lumos switches turns that off. The host's own namespace is
    /// left alone: other software there (container runtimes) may rely on it; see docs/net.md.
    func bypassBridgeNetfilter() throws {
        guard namespace != .current else { return }
        let keys = ["iptables", "ip6tables", "arptables"].map { "net.bridge.bridge-nf-call-\($0)=0" }
        // -e: without br_netfilter the keys do not exist, and there is nothing to turn off.
        try tools.run(["sysctl", "-q", "-e", "-w"] + keys)
    }

    /// Makes sure a switch's bridge exists; returns its config. Lock held by the caller.
    func ensureSwitch(_ name: String) throws -> VirtualSwitch {
        guard let sw = try store.switchConfig(name) else {
            throw LumosError.notFound("nic tag \(name) does not exist; create it with `dladm create-etherstub \(name)`")
        }
        if try !tools.linkExists(sw.bridge) { try plumb(sw) } else { try ignoreRouterMessages(sw.bridge) }
        return sw
    }

    /// Removes a switch that no tenant or VNIC uses.
    public func deleteSwitch(_ name: String) throws {
        let lock = try store.lock()
        defer { withExtendedLifetime(lock) {} }
        guard let sw = try store.switchConfig(name) else { throw LumosError.notFound("switch \(name) does not exist; see `dladm show-etherstub`") }
        if let t = try store.tenants().first(where: { $0.nics.contains { $0.switchName == name } }) {
            throw LumosError.busy("switch \(name) is used by tenant \(t.uuid); delete the tenant's NICs on it first")
        }
        if let v = try store.vnics().first(where: { $0.switchName == name }) {
            throw LumosError.busy("switch \(name) is used by vnic \(v.name); run `dladm delete-vnic \(v.name)` first")
        }
        try DHCPService(host: self).stop(switchName: name)
        _ = try tools.ip(["link", "del", sw.bridge], check: false)
        store.removeSwitch(name)
        // Its masquerade and forwarding rules go, and the uplink's forwarding if Lumos turned it on.
        if sw.nat != nil { try applyNAT() }
        if try store.switches().isEmpty { store.removeSwitchNamespace() }
    }

    public func switches() throws -> [VirtualSwitch] { try store.switches() }

    /// Gives the host an address on a switch (the global zone's leg on the admin network).
    public func addHostAddress(_ switchName: String, _ cidr: String) throws {
        guard let net = IPNetwork(cidr, bareIsHost: false) else { throw LumosError.invalid("\(cidr): not an address with prefix (use 10.0.0.1/24)") }
        let lock = try store.lock()
        defer { withExtendedLifetime(lock) {} }
        var sw = try ensureSwitch(switchName)
        if sw.hostAddresses.contains(net.description) { throw LumosError.exists("\(switchName) already has host address \(net)") }
        if sw.gatewayNetwork?.address == net.address { throw LumosError.exists("\(net.address) is \(switchName)'s gateway (`dladm show-etherstub`)") }
        try tools.ip(["addr", "add", net.description, "dev", sw.bridge])
        sw.hostAddresses.append(net.description)
        try store.save(sw)
    }

    public func removeHostAddress(_ switchName: String, _ cidr: String) throws {
        let lock = try store.lock()
        defer { withExtendedLifetime(lock) {} }
        guard var sw = try store.switchConfig(switchName) else { throw LumosError.notFound("switch \(switchName) does not exist") }
        guard let net = IPNetwork(cidr), let i = sw.hostAddresses.firstIndex(of: net.description) else {
            throw LumosError.notFound("\(switchName) has no host address \(cidr); see `lumos net show-addr`")
        }
        _ = try tools.ip(["addr", "del", net.description, "dev", sw.bridge], check: false)
        sw.hostAddresses.remove(at: i)
        try store.save(sw)
    }

    // MARK: Hand-made VNICs

    /// `dladm create-vnic -l SWITCH NAME`: a veth whose end NAME stays in the host namespace
    /// (for the operator to use or move) and whose other end is a port on the switch.
    @discardableResult
    public func createVNIC(_ name: String, over switchName: String, mac: MACAddress? = nil) throws -> HandmadeVNIC {
        guard SwitchName.isValid(name, maxLength: 13) else {
            throw LumosError.invalid("\(name): not a valid vnic name (1-13 characters a-z, 0-9, _ . -, starting with a letter)")
        }
        if let mac, mac.isMulticast || mac.isZero { throw LumosError.invalid("\(mac): a VNIC needs a unicast MAC address") }
        let lock = try store.lock()
        defer { withExtendedLifetime(lock) {} }
        let sw = try ensureSwitch(switchName)
        if try tools.link(name) != nil { throw LumosError.exists("\(name): a link with this name already exists") }
        let used = try store.usedMACs()
        if let mac, used.contains(mac) { throw LumosError.exists("\(mac) is already used by another NIC on this host") }
        let vnic = HandmadeVNIC(name: name, switchName: switchName, mac: mac ?? .generate(avoiding: used))
        try store.save(vnic)
        do {
            try tools.ipBatch([
                "link add \(name) address \(vnic.mac) type veth peer name \(vnic.port)",
                "link set \(vnic.port) master \(sw.bridge)",
                "link set \(vnic.port) up",
                "link set \(name) up",
            ])
        } catch {
            _ = try? tools.ip(["link", "del", vnic.port], check: false)
            store.removeVNIC(name)
            throw error
        }
        return vnic
    }

    public func deleteVNIC(_ name: String) throws {
        let lock = try store.lock()
        defer { withExtendedLifetime(lock) {} }
        guard let v = try store.vnics().first(where: { $0.name == name }) else {
            if try store.tenants().contains(where: { $0.nics.contains { $0.hostLink == name } }) {
                throw LumosError.busy("\(name) belongs to a tenant; remove it with `vmadm update` (remove_nics) or delete the tenant")
            }
            throw LumosError.notFound("vnic \(name) does not exist; see `dladm show-vnic`")
        }
        _ = try tools.ip(["link", "del", v.port], check: false)
        store.removeVNIC(name)
    }

    // MARK: Anti-spoofing table

    /// Removes the table once no recorded tenant has a NIC (an empty table is never left).
    func dropAntispoofIfUnused() throws {
        if try store.tenants().allSatisfy({ $0.nics.isEmpty }) { try tools.nft(Antispoof.rebuildScript([])) }
    }

    /// Replaces the table with exactly the ports of every recorded tenant (atomic); removes it
    /// when there are none.
    func rebuildAntispoof(excluding tenant: String? = nil) throws {
        let ports = try store.tenants().filter { $0.uuid != tenant }.flatMap { $0.nics.map(\.portPolicy) }
        try tools.nft(Antispoof.rebuildScript(ports))
    }

    // MARK: Repair

    /// Brings the kernel in line with the records: removes tenant links no record owns (left by a
    /// crash), drops records whose NICs all vanished with their namespace, rebuilds the nft table
    /// and restarts or stops DHCP responders. Safe to run at any time.
    public func repair() throws {
        let lock = try store.lock()
        defer { withExtendedLifetime(lock) {} }
        try namespace.check()
        var records = try store.tenants()
        let links = try tools.links()
        let names = Set(links.map(\.name))
        // A tenant whose namespace died took its veths with it, and a VM whose QEMU died its
        // taps (they are not persistent): only its record, ifbs, set elements and leases remain.
        for r in records where !r.nics.isEmpty && r.nics.allSatisfy({ !names.contains($0.hostLink) }) {
            store.removeTenant(r.uuid)
        }
        records = try store.tenants()
        let owned = Set(records.flatMap { $0.nics.flatMap { [$0.hostLink, $0.ifbLink] } })
        let orphans = links.map(\.name).filter { TenantNetwork.isTenantLink($0) && !owned.contains($0) }
        try tools.ipBatch(orphans.map { "link del \($0)" }, force: true)
        try rebuildAntispoof()
        try applyNAT()
        let dhcp = DHCPService(host: self)
        for sw in try store.switches() { try dhcp.refresh(switchName: sw.name) }
    }
}
