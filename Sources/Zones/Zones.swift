/// The Zones module (see docs/architecture.md, "Modules").
public enum ZonesModule {
    public static let name = "Zones"
}
