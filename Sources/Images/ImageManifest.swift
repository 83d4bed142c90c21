import Foundation
import LumosCore

/// An IMGAPI v2 image manifest (the JSON that travels with an image file). Kept as the full
/// object so fields Lumos does not use survive import and `imgadm get`.
public struct ImageManifest: Sendable, Equatable {
    public static let types = ["lx-dataset", "zone-dataset", "zvol"]
    public static let compressions = ["gzip", "bzip2", "xz", "zstd", "none"]

    public var fields: [String: JSONValue]

    public var uuid: String { fields["uuid"]?.stringValue ?? "" }
    public var name: String { fields["name"]?.stringValue ?? "" }
    public var version: String { fields["version"]?.stringValue ?? "" }
    public var type: String { fields["type"]?.stringValue ?? "" }
    public var os: String { fields["os"]?.stringValue ?? "" }
    public var publishedAt: String? { fields["published_at"]?.stringValue }
    /// A zvol image's disk size in MiB (IMGAPI `image_size`).
    public var imageSizeMiB: UInt64? { fields["image_size"]?.intValue.flatMap { $0 > 0 ? UInt64($0) : nil } }
    public var file: ImageFileInfo { ImageFileInfo(json: fields["files"]?.arrayValue?.first ?? .null) }
    public var json: JSONValue { .object(fields) }

    public init(fields: [String: JSONValue]) { self.fields = fields }

    /// Parses and checks a manifest; errors name the field and the fix.
    public static func parse(_ bytes: [UInt8], what: String) throws -> ImageManifest {
        guard let o = try JSONValue.parse(bytes, what: what).objectValue else {
            throw LumosError.invalid("\(what): an image manifest must be a JSON object")
        }
        let m = ImageManifest(fields: o)
        try m.validate(what)
        return m
    }

    public func validate(_ what: String) throws {
        func need(_ key: String) throws -> String {
            guard let s = fields[key]?.stringValue, !s.isEmpty else {
                throw LumosError.invalid("\(what): \"\(key)\" is missing or not a string; IMGAPI manifests need uuid, name, version, type, os and files")
            }
            return s
        }
        if let v = fields["v"], v.intValue != 2 {
            throw LumosError.unsupported("\(what): manifest version v=\(v) is not supported; Lumos reads IMGAPI v2 manifests")
        }
        let id = try need("uuid")
        guard Self.isUUID(id) else { throw LumosError.invalid("\(what): uuid \"\(id)\" is not a UUID") }
        _ = try need("name")
        _ = try need("version")
        let t = try need("type")
        guard Self.types.contains(t) else {
            throw LumosError.invalid("\(what): type \"\(t)\" is not an image type Lumos knows; use \(Self.types.joined(separator: ", "))")
        }
        _ = try need("os")
        guard let files = fields["files"]?.arrayValue, files.count == 1, files[0].objectValue != nil else {
            throw LumosError.invalid("\(what): \"files\" must be an array with one {sha1, size, compression} object")
        }
        let f = file
        guard f.sha1.count == 40, f.sha1.allSatisfy(\.isHexDigit) else {
            throw LumosError.invalid("\(what): files[0].sha1 must be 40 hex digits")
        }
        guard f.size > 0 else { throw LumosError.invalid("\(what): files[0].size must be the file's size in bytes") }
        guard Self.compressions.contains(f.compression) else {
            throw LumosError.invalid("\(what): files[0].compression \"\(f.compression)\" is unknown; use \(Self.compressions.joined(separator: ", "))")
        }
        if t == "zvol" {
            guard let mib = fields["image_size"]?.intValue, mib > 0 else {
                throw LumosError.invalid("\(what): a zvol image needs \"image_size\", its disk's size in MiB (a positive integer)")
            }
        }
    }

    static func isUUID(_ s: String) -> Bool {
        let parts = s.split(separator: "-", omittingEmptySubsequences: false)
        return parts.map(\.count) == [8, 4, 4, 4, 12] && parts.allSatisfy { $0.allSatisfy(\.isHexDigit) }
    }

    /// A fresh manifest for an image Lumos made (build, create).
    public static func make(name: String, version: String, type: String = "lx-dataset", os: String = "linux",
                            description: String, sha1: String, size: UInt64, compression: String,
                            extra: [String: JSONValue] = [:]) -> ImageManifest {
        var f: [String: JSONValue] = [
            "v": 2, "uuid": .string(UUID().uuidString.lowercased()), "owner": "00000000-0000-0000-0000-000000000000",
            "name": .string(name), "version": .string(version), "description": .string(description),
            "state": "active", "disabled": false, "public": false,
            "published_at": .string(ISO8601DateFormatter().string(from: Date())),
            "type": .string(type), "os": .string(os),
            "files": [["sha1": .string(sha1), "size": .number(Double(size)), "compression": .string(compression)]],
            "requirements": [:],
        ]
        for (k, v) in extra { f[k] = v }
        return ImageManifest(fields: f)
    }
}

extension ImageManifest {
    /// The version a locally built image gets when none is given: today's date in UTC, YYYYMMDD.
    public static func todayVersion() -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd"
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: Date())
    }
}

public struct ImageFileInfo: Sendable, Equatable {
    public var sha1: String
    public var size: UInt64
    public var compression: String

    init(json: JSONValue) {
        let o = json.objectValue ?? [:]
        sha1 = o["sha1"]?.stringValue?.lowercased() ?? ""
        size = o["size"]?.intValue.map { UInt64(max(0, $0)) } ?? 0
        compression = o["compression"]?.stringValue ?? "none"
    }

    /// tar's flag for the compression (GNU tar runs the matching tool).
    var tarFlag: String? {
        switch compression {
        case "gzip": return "--gzip"
        case "bzip2": return "--bzip2"
        case "xz": return "--xz"
        case "zstd": return "--zstd"
        default: return nil
        }
    }

    /// File name extension imgadm uses for the compression.
    public static func fileExtension(_ compression: String) -> String {
        switch compression {
        case "gzip": return ".gz"
        case "bzip2": return ".bz2"
        case "xz": return ".xz"
        case "zstd": return ".zst"
        default: return ""
        }
    }
}
