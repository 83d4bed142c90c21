import LumosCore

/// A dataset or snapshot name with ZFS's rules: `pool/a/b` or `pool/a/b@snap`.
/// Components start with a letter or digit and contain letters, digits, `_ - . :`;
/// so internal names (`.lumos`, `@snap` directories) can never collide with a dataset.
public struct DatasetName: Hashable, Sendable, CustomStringConvertible, Comparable {
    public var pool: String
    public var path: [String]
    public var snapshot: String?

    public static let maxLength = 255

    public init(_ text: String) throws {
        guard !text.isEmpty else { throw LumosError.invalid("empty dataset name; use POOL/NAME") }
        guard text.utf8.count <= Self.maxLength else {
            throw LumosError.invalid("dataset name '\(text)' is longer than \(Self.maxLength) characters")
        }
        var body = Substring(text)
        var snap: String?
        if let at = text.firstIndex(of: "@") {
            body = text[..<at]
            let s = String(text[text.index(after: at)...])
            guard Self.isValidComponent(s) else {
                throw LumosError.invalid("invalid snapshot name '\(s)' in '\(text)': use letters, digits and _ - . : (starting with a letter or digit)")
            }
            snap = s
        }
        let parts = body.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard let first = parts.first, !first.isEmpty else {
            throw LumosError.invalid("invalid dataset name '\(text)': it must start with a pool name")
        }
        guard Self.isValidPoolName(first) else {
            throw LumosError.invalid("invalid pool name '\(first)': start with a letter; use letters, digits and _ - . :")
        }
        for p in parts.dropFirst() where !Self.isValidComponent(p) {
            let what = p.isEmpty ? "an empty component" : "'\(p)'"
            throw LumosError.invalid("invalid dataset name '\(text)': \(what) is not allowed; use letters, digits and _ - . : (starting with a letter or digit)")
        }
        pool = first
        path = Array(parts.dropFirst())
        snapshot = snap
    }

    public init(pool: String, path: [String], snapshot: String? = nil) {
        self.pool = pool
        self.path = path
        self.snapshot = snapshot
    }

    static func isValidComponent(_ s: String) -> Bool {
        guard let f = s.unicodeScalars.first, f.isASCIIAlnum, s.utf8.count <= 200 else { return false }
        return s.unicodeScalars.allSatisfy { $0.isASCIIAlnum || "_-.:".unicodeScalars.contains($0) }
    }

    /// zpool's rules: a letter first, and not a reserved vdev word.
    public static func isValidPoolName(_ s: String) -> Bool {
        guard let f = s.unicodeScalars.first, f.properties.isAlphabetic, f.isASCII else { return false }
        if ["mirror", "raidz", "raidz1", "raidz2", "spare", "log"].contains(s) { return false }
        return isValidComponent(s)
    }

    public var isSnapshot: Bool { snapshot != nil }
    public var isPoolRoot: Bool { path.isEmpty && snapshot == nil }
    /// The dataset a snapshot belongs to (itself for a dataset).
    public var dataset: DatasetName { DatasetName(pool: pool, path: path) }
    public var parent: DatasetName? { path.isEmpty ? nil : DatasetName(pool: pool, path: Array(path.dropLast())) }
    public var depth: Int { path.count }
    public func child(_ name: String) -> DatasetName { DatasetName(pool: pool, path: path + [name]) }
    public func at(_ snap: String) -> DatasetName { DatasetName(pool: pool, path: path, snapshot: snap) }
    /// The dataset path relative to the pool root, e.g. `a/b`.
    public var relativePath: String { path.joined(separator: "/") }

    /// True when `self` is `other` or nested below it (snapshots belong to their dataset).
    public func isWithin(_ other: DatasetName) -> Bool {
        pool == other.pool && path.count >= other.path.count && Array(path.prefix(other.path.count)) == other.path
    }

    public var description: String {
        let base = ([pool] + path).joined(separator: "/")
        return snapshot.map { "\(base)@\($0)" } ?? base
    }

    public static func < (a: DatasetName, b: DatasetName) -> Bool {
        let ka = [a.pool] + a.path, kb = [b.pool] + b.path
        if ka != kb { return ka.lexicographicallyPrecedes(kb) }
        return (a.snapshot ?? "") < (b.snapshot ?? "")
    }
}

extension Unicode.Scalar {
    var isASCIIAlnum: Bool { isASCII && properties.isAlphabetic || ("0"..."9").contains(self) }
}
