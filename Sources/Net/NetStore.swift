import Foundation
import LumosCore

/// A virtual switch: a Linux bridge named after its nic tag, with a physical uplink or none
/// (an etherstub), and addresses the host holds on it (the global zone's admin network).
public struct VirtualSwitch: Sendable, Equatable, Codable {
    public var name: String
    public var uplink: String?
    public var mtu: Int?
    public var hostAddresses: [String]
    /// The host's address on an etherstub that its tenants route through (CIDR; their NICs'
    /// `gateways`), held on the bridge like a host address (docs/net.md, "NAT").
    public var gateway: String?
    /// The uplink an etherstub's gateway subnet is masqueraded to (`nat=UPLINK`), or nil.
    public var nat: String?

    public init(name: String, uplink: String? = nil, mtu: Int? = nil, hostAddresses: [String] = [], gateway: String? = nil, nat: String? = nil) {
        self.name = name; self.uplink = uplink; self.mtu = mtu; self.hostAddresses = hostAddresses
        self.gateway = gateway; self.nat = nat
    }

    public var gatewayNetwork: IPNetwork? { gateway.flatMap { IPNetwork($0, bareIsHost: false) } }

    /// The bridge device; the switch's name is the link name, as dladm names etherstubs.
    public var bridge: String { name }
    public var isEtherstub: Bool { uplink == nil }

    enum CodingKeys: String, CodingKey {
        case name, uplink, mtu, gateway, nat
        case hostAddresses = "host_addresses"
    }
}

/// A tenant NIC as attached: the manifest entry plus what Lumos chose for it.
public struct TenantNIC: Sendable, Equatable, Codable {
    public var tenant: String
    public var interface: String
    public var hostLink: String
    public var mac: MACAddress
    public var spec: NicSpec
    /// True when Lumos generated the MAC (dladm's MACADDRTYPE "random").
    public var macGenerated: Bool

    public var switchName: String { spec.nicTag }
    /// The ifb that carries what the tenant sends when it has a tx cap.
    public var ifbLink: String { TenantNetwork.ifbName(hostLink: hostLink) }

    public var portPolicy: PortPolicy { PortPolicy(port: hostLink, mac: mac, spec: spec) }

    enum CodingKeys: String, CodingKey {
        case tenant, interface, mac, spec
        case hostLink = "host_link"
        case macGenerated = "mac_generated"
    }
}

/// Everything Lumos attached for one tenant.
public struct TenantRecord: Sendable, Equatable, Codable {
    public var uuid: String
    public var hostname: String?
    public var resolvers: [String]
    /// True when the tenant configures its addresses with DHCP from the built-in responder
    /// (VMs, or zones that run a DHCP client) instead of Lumos setting them inside.
    public var addressesByDHCP: Bool
    public var nics: [TenantNIC]
    /// True when the NICs are taps held by a VM's QEMU (`TenantNetwork.attachTaps`), not veths
    /// into a namespace; absent (nil) in records of zones and of older Lumos.
    public var taps: Bool? = nil

    public var hasTaps: Bool { taps == true }

    enum CodingKeys: String, CodingKey {
        case uuid, hostname, resolvers, nics, taps
        case addressesByDHCP = "addresses_by_dhcp"
    }
}

/// A VNIC made by hand with `dladm create-vnic`: a veth whose other end is on the switch.
public struct HandmadeVNIC: Sendable, Equatable, Codable {
    public var name: String
    public var switchName: String
    public var mac: MACAddress

    public var port: String { "lv" + String(name.prefix(13)) }

    enum CodingKeys: String, CodingKey {
        case name, mac
        case switchName = "switch"
    }
}

/// Net's persistent configuration under `$LUMOS_ROOT/net/`, written atomically, one file an object.
public struct NetStore: Sendable {
    public let root: StateRoot
    public var dir: String { root.sub("net") }

    public init(root: StateRoot) { self.root = root }

    func path(_ kind: String, _ name: String) -> String { "\(dir)/\(kind)/\(name).json" }

    /// An exclusive lock for every change to switches, tenants and the nft table.
    public func lock() throws -> FileLock { try FileLock("\(dir)/lock") }

    func load<T: Decodable>(_ type: T.Type, _ kind: String, _ name: String) throws -> T? {
        let p = path(kind, name)
        guard Files.exists(p) else { return nil }
        do {
            return try JSONDecoder().decode(T.self, from: Data(try FD.readFile(p)))
        } catch {
            throw LumosError(.corrupt, "\(p): cannot be read (\(oneLine(error))); repair or remove the file")
        }
    }

    /// `durable: false` for records of volatile kernel state (a tenant's links and set
    /// elements, gone after a power loss anyway): atomic for kill -9, without an fsync.
    func save<T: Encodable>(_ value: T, _ kind: String, _ name: String, durable: Bool = true) throws {
        try Files.makeDirectories("\(dir)/\(kind)")
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let bytes = Array(try enc.encode(value))
        if durable {
            try Files.writeAtomically(path(kind, name), bytes)
        } else {
            try Files.replaceAtomically(path(kind, name), bytes)
        }
    }

    func remove(_ kind: String, _ name: String) { Files.remove(path(kind, name)) }

    func all<T: Decodable>(_ type: T.Type, _ kind: String) throws -> [T] {
        try names(kind).compactMap { try load(T.self, kind, $0) }
    }

    /// The names of the records of one kind, without reading them.
    func names(_ kind: String) -> [String] {
        Files.list("\(dir)/\(kind)").filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }.map { String($0.dropLast(5)) }
    }

    public func switchConfig(_ name: String) throws -> VirtualSwitch? { try load(VirtualSwitch.self, "switches", name) }
    public func switches() throws -> [VirtualSwitch] { try all(VirtualSwitch.self, "switches") }
    public func save(_ s: VirtualSwitch) throws { try save(s, "switches", s.name) }
    public func removeSwitch(_ name: String) { remove("switches", name) }

    /// The network namespace this state root's switches live in, recorded with the first
    /// switch: later commands (a `vmadm delete` from a shell without $LUMOS_NET_NETNS) find the
    /// switches, the table and the tenants' links where they are.
    public func switchNamespace() throws -> NetNamespace? { try load(NetNamespace.self, "switches", ".namespace") }
    public func saveSwitchNamespace(_ ns: NetNamespace) throws { try save(ns, "switches", ".namespace") }
    public func removeSwitchNamespace() { remove("switches", ".namespace") }

    public func tenant(_ uuid: String) throws -> TenantRecord? { try load(TenantRecord.self, "tenants", uuid) }
    public func tenants() throws -> [TenantRecord] { try all(TenantRecord.self, "tenants") }
    /// Uuids of the tenants with a record (one directory read, no record parsed).
    public func tenantUUIDs() -> [String] { names("tenants") }
    public func save(_ t: TenantRecord) throws { try save(t, "tenants", t.uuid, durable: false) }
    public func removeTenant(_ uuid: String) { remove("tenants", uuid) }

    public func vnics() throws -> [HandmadeVNIC] { try all(HandmadeVNIC.self, "vnics") }
    public func save(_ v: HandmadeVNIC) throws { try save(v, "vnics", v.name) }
    public func removeVNIC(_ name: String) { remove("vnics", name) }

    /// Every MAC in use on this host (tenant NICs and hand-made VNICs).
    public func usedMACs() throws -> Set<MACAddress> {
        Set(try tenants().flatMap { $0.nics.map(\.mac) } + vnics().map(\.mac))
    }
}
