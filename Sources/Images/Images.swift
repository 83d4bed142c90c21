/// The Images module (see DESIGN.md, "SmartOS part → Lumos part on Linux").
public enum ImagesModule {
    public static let name = "Images"
}
