import LumosCore

/// What a VM's manifest sets on its dataset (vmadm's quota).
public struct ZoneDataset: Sendable, Equatable {
    /// Size cap in bytes; nil = none (vmadm's quota 0).
    public var quotaBytes: UInt64?

    public init(_ m: Manifest) {
        for spec in PropertyTable.all {
            guard case .dataset(let setting) = spec.application, let v = m.value(spec.name) else { continue }
            setting.apply(&self, v)
        }
    }
}
