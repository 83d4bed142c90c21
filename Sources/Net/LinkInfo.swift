import Foundation
import LumosCore

/// One link as the kernel reports it through `ip -j -s -d link show`.
public struct LinkInfo: Sendable, Equatable, Codable {
    public var name: String
    public var index: Int
    public var kind: String        // "veth", "bridge", "ifb", "" for physical
    public var mtu: Int
    public var state: String       // "up", "down", "unknown"
    public var mac: String
    public var master: String?
    public var rxBytes: UInt64
    public var rxPackets: UInt64
    public var txBytes: UInt64
    public var txPackets: UInt64

    public init(name: String, index: Int = 0, kind: String = "", mtu: Int = 1500, state: String = "up", mac: String = "",
                master: String? = nil, rxBytes: UInt64 = 0, rxPackets: UInt64 = 0, txBytes: UInt64 = 0, txPackets: UInt64 = 0) {
        self.name = name; self.index = index; self.kind = kind; self.mtu = mtu; self.state = state; self.mac = mac
        self.master = master; self.rxBytes = rxBytes; self.rxPackets = rxPackets; self.txBytes = txBytes; self.txPackets = txPackets
    }

    /// Parses the JSON array iproute2 prints.
    public static func parse(_ json: String) throws -> [LinkInfo] {
        let trimmed = json.trimmingSpaces()
        if trimmed.isEmpty { return [] }
        guard let items = try JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [[String: Any]] else {
            throw LumosError.failed("ip -j link: output is not a JSON array")
        }
        return items.compactMap { item in
            guard let name = item["ifname"] as? String else { return nil }
            let linkinfo = item["linkinfo"] as? [String: Any]
            let stats = item["stats64"] as? [String: Any]
            let rx = stats?["rx"] as? [String: Any]
            let tx = stats?["tx"] as? [String: Any]
            func num(_ d: [String: Any]?, _ k: String) -> UInt64 { (d?[k] as? NSNumber)?.uint64Value ?? 0 }
            let operstate = (item["operstate"] as? String)?.lowercased() ?? "unknown"
            let flags = item["flags"] as? [String] ?? []
            let state = operstate == "unknown" && flags.contains("UP") ? "up" : operstate
            return LinkInfo(
                name: name,
                index: (item["ifindex"] as? NSNumber)?.intValue ?? 0,
                kind: linkinfo?["info_kind"] as? String ?? "",
                mtu: (item["mtu"] as? NSNumber)?.intValue ?? 0,
                state: state,
                mac: item["address"] as? String ?? "",
                master: item["master"] as? String,
                rxBytes: num(rx, "bytes"), rxPackets: num(rx, "packets"),
                txBytes: num(tx, "bytes"), txPackets: num(tx, "packets"))
        }
    }

    /// Parses `ip -j addr show` into link name → ["10.0.0.1/24", ...] (global scope only).
    public static func parseAddresses(_ json: String) throws -> [String: [String]] {
        let trimmed = json.trimmingSpaces()
        if trimmed.isEmpty { return [:] }
        guard let items = try JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [[String: Any]] else {
            throw LumosError.failed("ip -j addr: output is not a JSON array")
        }
        var out: [String: [String]] = [:]
        for item in items {
            guard let name = item["ifname"] as? String else { continue }
            let infos = item["addr_info"] as? [[String: Any]] ?? []
            out[name] = infos.compactMap { a in
                guard let local = a["local"] as? String, let len = (a["prefixlen"] as? NSNumber)?.intValue else { return nil }
                if (a["scope"] as? String) == "link" { return nil }
                return "\(local)/\(len)"
            }
        }
        return out
    }
}
