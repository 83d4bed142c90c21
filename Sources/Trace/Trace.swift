/// The Trace module (see docs/architecture.md, "Modules").
public enum TraceModule {
    public static let name = "Trace"
}
