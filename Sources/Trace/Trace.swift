/// The Trace module (see DESIGN.md, "SmartOS part → Lumos part on Linux").
public enum TraceModule {
    public static let name = "Trace"
}
