import Foundation

/// A JSON document kept as written: manifests (vmadm, IMGAPI) are open-ended objects whose
/// property table lives elsewhere, so they are held as values and checked against that table
/// rather than decoded into fixed structs that would drop unknown keys.
public enum JSONValue: Sendable, Equatable, Codable, CustomStringConvertible {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null; return }
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let i = try? c.decode(Int64.self) { self = .number(Double(i)); return }
        if let d = try? c.decode(Double.self) { self = .number(d); return }
        if let s = try? c.decode(String.self) { self = .string(s); return }
        if let a = try? c.decode([JSONValue].self) { self = .array(a); return }
        self = .object(try c.decode([String: JSONValue].self))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let d):
            // Whole numbers print without a fraction, as vmadm and imgadm print them.
            if d == d.rounded(), abs(d) < 9.0e15 { try c.encode(Int64(d)) } else { try c.encode(d) }
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    /// Parses a JSON text; the error names `what` and says what is wrong with it.
    public static func parse(_ bytes: [UInt8], what: String) throws -> JSONValue {
        do {
            return try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
        } catch {
            throw LumosError.invalid("\(what): not valid JSON (\(JSONValue.reason(error))); check the syntax")
        }
    }

    public static func parse(_ text: String, what: String) throws -> JSONValue {
        try parse(Array(text.utf8), what: what)
    }

    private static func reason(_ error: Error) -> String {
        if case DecodingError.dataCorrupted(let ctx) = error {
            if let u = ctx.underlyingError as NSError?, let d = u.userInfo[NSDebugDescriptionErrorKey] as? String { return oneLine(d) }
            return oneLine(ctx.debugDescription)
        }
        return oneLine("\(error)")
    }

    /// Serializes with sorted keys; pretty output is JSON.stringify(v, null, 2) as vmadm and
    /// imgadm print it (`"key": value`, two-space indent, `{}` and `[]` when empty).
    public func serialized(pretty: Bool = true) -> String {
        var out = ""
        write(to: &out, pretty: pretty, indent: 0)
        return out
    }

    private func write(to out: inout String, pretty: Bool, indent: Int) {
        let pad = pretty ? String(repeating: " ", count: indent + 2) : ""
        let close = pretty ? String(repeating: " ", count: indent) : ""
        let nl = pretty ? "\n" : ""
        switch self {
        case .array(let a):
            if a.isEmpty { out += "[]"; return }
            out += "[" + nl
            for (i, v) in a.enumerated() {
                out += pad
                v.write(to: &out, pretty: pretty, indent: indent + 2)
                out += (i < a.count - 1 ? "," : "") + nl
            }
            out += close + "]"
        case .object(let o):
            if o.isEmpty { out += "{}"; return }
            out += "{" + nl
            let keys = o.keys.sorted()
            for (i, k) in keys.enumerated() {
                out += pad + JSONValue.string(k).atom() + (pretty ? ": " : ":")
                o[k]!.write(to: &out, pretty: pretty, indent: indent + 2)
                out += (i < keys.count - 1 ? "," : "") + nl
            }
            out += close + "}"
        default:
            out += atom()
        }
    }

    /// A scalar as JSON text (strings escaped by Foundation's encoder).
    private func atom() -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.withoutEscapingSlashes]
        guard let data = try? enc.encode(self) else { return "null" }
        return String(decoding: data, as: UTF8.self)
    }

    public var description: String { serialized(pretty: false) }

    public var objectValue: [String: JSONValue]? { if case .object(let o) = self { return o }; return nil }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var numberValue: Double? { if case .number(let d) = self { return d }; return nil }

    /// The value as a whole number, when it is one.
    public var intValue: Int64? {
        guard case .number(let d) = self, d == d.rounded(), abs(d) < 9.0e15 else { return nil }
        return Int64(d)
    }

    /// The JSON type name used in error messages ("a string", "an object", ...).
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// Text for list columns and filters: strings bare, numbers without fraction, others as JSON.
    public var plainText: String {
        switch self {
        case .null: return "-"
        case .string(let s): return s
        case .bool(let b): return b ? "true" : "false"
        case .number: return description
        default: return description
        }
    }

    /// Looks up a dotted path (`tags.role`, `nics.0.ip`).
    public func lookup(_ path: String) -> JSONValue? {
        var cur: JSONValue = self
        for part in path.split(separator: ".", omittingEmptySubsequences: false) {
            switch cur {
            case .object(let o):
                guard let v = o[String(part)] else { return nil }
                cur = v
            case .array(let a):
                guard let i = Int(part), i >= 0, i < a.count else { return nil }
                cur = a[i]
            default: return nil
            }
        }
        return cur
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByFloatLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        var o: [String: JSONValue] = [:]
        for (k, v) in elements { o[k] = v }
        self = .object(o)
    }
}
