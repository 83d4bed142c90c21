import LumosCore

/// The host's uuid for `server_uuid` (vmadm(8): "the UUID of the compute node", which SmartOS
/// takes from SMBIOS via sysinfo): the firmware's product uuid when it can be read, else
/// /etc/machine-id written as a uuid.
enum HostIdentity {
    static let uuid: String? = {
        if let text = try? FD.readText("/sys/class/dmi/id/product_uuid") {
            let u = text.trimmingSpaces().lowercased()
            if ValueChecks.isUUID(u) { return u }
        }
        guard let id = try? FD.readText("/etc/machine-id") else { return nil }
        let hex = Array(id.trimmingSpaces().lowercased())
        guard hex.count == 32, hex.allSatisfy(\.isHexDigit) else { return nil }
        let parts = [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(hex[$0]) }
        return parts.joined(separator: "-")
    }()
}
