/// Names of switches (nic tags, etherstubs) and hand-made VNICs: they become Linux link
/// names, so at most 15 bytes (IFNAMSIZ - 1) of a-z, 0-9, `_`, `.`, `-`, starting with a letter.
public enum SwitchName {
    public static func isValid(_ name: String, maxLength: Int = 15) -> Bool {
        guard let first = name.unicodeScalars.first, (1...maxLength).contains(name.utf8.count), ("a"..."z").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || "_.-".unicodeScalars.contains($0) }
    }
}
