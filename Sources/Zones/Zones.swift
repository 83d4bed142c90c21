/// The Zones module (see DESIGN.md, "SmartOS part → Lumos part on Linux").
public enum ZonesModule {
    public static let name = "Zones"
}
