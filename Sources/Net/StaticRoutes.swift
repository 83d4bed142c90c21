import LumosCore

/// One static route inside a tenant (vmadm(8) "routes"): to `destination` (an address or a
/// CIDR subnet) via a gateway address, or link-local over one of the tenant's interfaces.
public struct StaticRoute: Sendable, Equatable {
    public var destination: String
    public var gateway: String?
    public var interface: String?

    public init(destination: String, gateway: String? = nil, interface: String? = nil) {
        self.destination = destination
        self.gateway = gateway
        self.interface = interface
    }

    /// The `ip route` arguments that install it.
    public var ipArguments: String {
        var line = "route replace \(destination)"
        if let gateway { line += " via \(gateway)" }
        if let interface { line += " dev \(interface)" }
        if gateway == nil { line += " scope link" }
        return line + " proto \(StaticRoutes.protocolNumber)"
    }
}

/// A tenant's static routes, set inside its network namespace. They carry their own route
/// protocol number, so replacing them never touches the routes Net makes for a NIC's own
/// addresses and default gateway.
public enum StaticRoutes {
    public static let protocolNumber = 77

    /// Makes the namespace's static routes exactly `routes`.
    public static func set(_ routes: [StaticRoute], in netns: NetNamespace) throws {
        let tools = NetTools(netns)
        for family in ["-4", "-6"] {
            try tools.ip([family, "route", "flush", "proto", String(protocolNumber)], check: false)
        }
        guard !routes.isEmpty else { return }
        try tools.ipBatch(routes.map(\.ipArguments))
    }
}
