/// The Net module (see DESIGN.md, "SmartOS part → Lumos part on Linux").
public enum NetModule {
    public static let name = "Net"
}
