import Glibc
import LumosCore
import Net
import VM

/// Test and bench support (not shipped): a network namespace made for one test or bench run,
/// holding a bridge with the host's address, the guests' taps and a DHCP server. Nothing
/// here touches the host's own network; `remove()` deletes the namespace and all in it.
public final class GuestNetwork {
    public let name: String
    public let namespace: NetNamespace
    public let bridge = "br0"
    /// e.g. "10.77.0": the host is .1, guests .2 and up.
    public let subnet: String
    public private(set) var removed = false

    public init(tag: String, subnet: String) throws {
        name = "lumos-\(tag)-\(getpid())-\(String(UInt32.random(in: 0...0xffffff), radix: 16))"
        namespace = .named(name)
        self.subnet = subnet
        try Exec.run(["ip", "netns", "add", name])
        do {
            try tools.ipBatch(["link set lo up", "link add \(bridge) type bridge", "addr add \(subnet).1/24 dev \(bridge)", "link set \(bridge) up"])
        } catch {
            try? remove()
            throw error
        }
    }

    public var tools: NetTools { NetTools(namespace) }
    public var hostAddress: IPAddress { IPAddress("\(subnet).1")! }

    /// The DHCP lease for guest number `n` (.1+n).
    public func lease(_ n: Int, mac: MACAddress) -> DHCPLease {
        DHCPLease(mac: mac, address: IPNetwork("\(subnet).\(1 + n)/24")!, gateway: hostAddress, serverID: hostAddress)
    }

    public func dhcp(_ lease: DHCPLease) throws -> GuestDHCP {
        try GuestDHCP(namespacePath: namespace.path!, bridge: bridge, lease: lease)
    }

    /// Pings from the bridge's side every 50 ms until the first reply or `seconds` pass. The
    /// guest's neighbour entry is pinned first: while the guest boots, ARP would fail and ping
    /// stop at the "host unreachable" error (and ARP's retry timers would blur the time).
    public func ping(_ address: String, mac: MACAddress, seconds: Int) throws -> Bool {
        try tools.ipBatch(["neigh replace \(address) lladdr \(mac) dev \(bridge) nud permanent"])
        return try tools.run(["ping", "-n", "-q", "-c", "1", "-i", "0.05", "-w", "\(seconds)", address], check: false).status == 0
    }

    public func remove() throws {
        if removed { return }
        try Exec.run(["ip", "netns", "delete", name])
        removed = true
    }

    deinit { try? remove() }
}
