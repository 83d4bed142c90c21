import LumosCore

extension ZoneLimits {
    /// The runtime's limits of a VM, read from the property table: every row applied as
    /// `.limit` sets its field from the manifest's value (or its default).
    public init(_ manifest: Manifest) {
        self.init()
        for spec in PropertyTable.all {
            guard case .limit(let setting) = spec.application, let n = manifest.integer(spec.name) else { continue }
            self[keyPath: setting.field] = setting.convert(n)
        }
    }
}
