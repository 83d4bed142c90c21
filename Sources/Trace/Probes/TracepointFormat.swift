import LumosCore

/// A tracepoint's record layout from tracefs events/<category>/<name>/format: what
/// `args->field` reads in a D clause on that tracepoint.
///
///     field:char prev_comm[16];	offset:8;	size:16;	signed:0;
///     field:__data_loc char[] filename;	offset:8;	size:4;	signed:0;
///
/// Public API:
///   TracepointFormat.parse(_ text:) throws -> TracepointFormat
///   TracepointFormat.name / .id / .fields / .argumentFields / .field(named:)
///   TracepointFormat.Field: name, type (C type without the name, "char *", "char"), offset, size,
///     isSigned, arrayLength (nil unless "[N]"; 0 for a flexible "[]"), isDataLocation
///     (__data_loc: a u32 holding length << 16 | offset of the real data), isCommon
extension TracepointFormat {
public struct Field: Sendable, Hashable {
    public var name: String
    public var type: String
    public var offset: Int
    public var size: Int
    public var isSigned: Bool
    public var arrayLength: Int?
    public var isDataLocation: Bool
    public var isCommon: Bool { name.hasPrefix("common_") }

    public init(name: String, type: String, offset: Int, size: Int, isSigned: Bool,
                arrayLength: Int? = nil, isDataLocation: Bool = false) {
        self.name = name
        self.type = type
        self.offset = offset
        self.size = size
        self.isSigned = isSigned
        self.arrayLength = arrayLength
        self.isDataLocation = isDataLocation
    }

    /// A string field: char arrays, __data_loc char[] and `char *` pointers (the latter
    /// point to memory that must be read with a probe-read helper).
    public var isString: Bool {
        let base = type.replacing("const ", with: "").trimmingWhitespace()
        return (base == "char" && arrayLength != nil) || (isDataLocation && base.hasPrefix("char"))
    }

    public var isPointer: Bool { type.hasSuffix("*") }
}
}

public struct TracepointFormat: Sendable, Hashable {
    public var name: String
    public var id: UInt32
    public var fields: [TracepointFormat.Field]

    /// Fields after the common header (what DTrace shows as args->).
    public var argumentFields: [TracepointFormat.Field] { fields.filter { !$0.isCommon } }

    public func field(named n: String) -> TracepointFormat.Field? { fields.first { $0.name == n } }

    public static func parse(_ text: String) throws -> TracepointFormat {
        var name = ""
        var id: UInt32 = 0
        var fields: [TracepointFormat.Field] = []
        for raw in text.split(separator: "\n") {
            let line = String(raw).trimmingWhitespace()
            if line.hasPrefix("name:") {
                name = String(line.dropFirst(5)).trimmingWhitespace()
            } else if line.hasPrefix("ID:") {
                id = UInt32(String(line.dropFirst(3)).trimmingWhitespace()) ?? 0
            } else if line.hasPrefix("field:") {
                fields.append(try parseField(line))
            }
        }
        guard !name.isEmpty else { throw LumosError(.corrupt, "tracepoint format has no name: line") }
        return TracepointFormat(name: name, id: id, fields: fields)
    }

    /// One "field:DECL;\toffset:N;\tsize:N;\tsigned:N;" line.
    static func parseField(_ line: String) throws -> TracepointFormat.Field {
        var decl = ""
        var offset = -1, size = -1
        var signed = false
        for part in line.split(separator: ";") {
            let p = String(part).trimmingWhitespace()
            if p.hasPrefix("field:") { decl = String(p.dropFirst(6)) }
            else if p.hasPrefix("offset:") { offset = Int(p.dropFirst(7)) ?? -1 }
            else if p.hasPrefix("size:") { size = Int(p.dropFirst(5)) ?? -1 }
            else if p.hasPrefix("signed:") { signed = p.dropFirst(7) == "1" }
        }
        guard !decl.isEmpty, offset >= 0, size >= 0 else {
            throw LumosError(.corrupt, "cannot parse tracepoint field '\(line)'")
        }
        var isDataLoc = false
        decl = decl.trimmingWhitespace()
        for prefix in ["__data_loc ", "__rel_loc "] where decl.hasPrefix(prefix) {
            isDataLoc = true
            decl = String(decl.dropFirst(prefix.count))
        }
        // The name is the last identifier; an array suffix "[16]" follows it.
        var arrayLength: Int? = nil
        if decl.hasSuffix("]"), let open = decl.lastIndex(of: "[") {
            let inside = decl[decl.index(after: open)..<decl.index(before: decl.endIndex)]
            arrayLength = inside.isEmpty ? 0 : Int(inside)
            decl = String(decl[..<open]).trimmingWhitespace()
        }
        var nameStart = decl.endIndex
        while nameStart > decl.startIndex {
            let c = decl[decl.index(before: nameStart)]
            if c.isLetter || c.isNumber || c == "_" { nameStart = decl.index(before: nameStart) } else { break }
        }
        let name = String(decl[nameStart...])
        var type = String(decl[..<nameStart]).trimmingWhitespace()
        if isDataLoc, type.hasSuffix("[]") {
            type = String(type.dropLast(2)).trimmingWhitespace()
            arrayLength = 0
        }
        guard !name.isEmpty else { throw LumosError(.corrupt, "tracepoint field without a name: '\(line)'") }
        return TracepointFormat.Field(name: name, type: type, offset: offset, size: size, isSigned: signed,
                               arrayLength: arrayLength, isDataLocation: isDataLoc)
    }
}
