import Foundation
import LumosCore
import Net

/// `vmadm list` / `lookup`: filters (`key=value`, `key=~regex`, dotted keys, `*` over arrays),
/// columns (`-o`) and sort keys (`-s`, `-key` for descending).
public struct ListQuery: Sendable {
    public static let defaultColumns = ["uuid", "type", "ram", "state", "alias"]
    public static let defaultSort = ["ram", "uuid"]

    public struct Filter: Sendable {
        public var key: String
        public var value: String
        public var isRegex: Bool
    }

    public var filters: [Filter] = []
    public var columns: [String] = defaultColumns
    public var sort: [String] = defaultSort

    public init() {}

    /// Whether `key` can filter VMs (vmadm.js validFilterKey): a listable property, a field of
    /// a NIC (`nics.0.ip`, `nics.*.mac`), or a key of tags or metadata (`tags.role`).
    public static func isFilterKey(_ key: String) -> Bool {
        if PropertyTable.spec(key)?.isListable == true { return true }
        let parts = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        if parts.count == 3, parts[0] == "nics", parts[1] == "*" || Int(parts[1]) != nil { return NicSpec.fieldNames.contains(parts[2]) }
        if parts.count >= 2, ["tags", "customer_metadata", "internal_metadata"].contains(parts[0]) { return !parts[1].isEmpty }
        return false
    }

    /// Whether `key` can be a column or a sort key: a filter key, without `*` (which NIC
    /// would it show?), as vmadm.js validColumnKey.
    public static func isColumnKey(_ key: String) -> Bool { isFilterKey(key) && !key.contains("*") }

    /// Parses `key=value` / `key=~regex` arguments; `what` is "filter" (list) or "lookup".
    public static func filters(_ args: [String], what: String = "filter") throws -> [Filter] {
        try args.map { arg in
            guard let eq = arg.firstIndex(of: "="), eq != arg.startIndex else {
                throw LumosError.invalid("filter \"\(arg)\": expected field=value or field=~regex")
            }
            let key = String(arg[..<eq])
            guard isFilterKey(key) else {
                let hint = PropertyTable.suggestion(for: key).flatMap { PropertyTable.spec($0)?.isListable == true ? "; did you mean \"\($0)\"?" : nil }
                    ?? "; use a listable property (docs/vmadm.md), nics.N.FIELD, nics.*.FIELD or tags.KEY"
                throw LumosError.invalid("Invalid \(what) key: \"\(key)\"\(hint)")
            }
            var value = String(arg[arg.index(after: eq)...])
            var regex = false
            if value.hasPrefix("~") {
                value.removeFirst()
                regex = true
                if (try? NSRegularExpression(pattern: value)) == nil {
                    throw LumosError.invalid("filter \"\(arg)\": \(value) is not a valid regular expression")
                }
            }
            return Filter(key: key, value: value, isRegex: regex)
        }
    }

    /// Checks -o and -s field names: listable properties of the table and dotted keys into
    /// NICs and maps; sort keys may start with - (descending) or + (ascending).
    public static func fields(_ text: String, option: String) throws -> [String] {
        let names = text.split(separator: ",").map { String($0).trimmingSpaces() }.filter { !$0.isEmpty }
        if names.isEmpty { throw LumosError.invalid("\(option): give a comma-separated list of fields, e.g. uuid,alias,state") }
        for n in names {
            let key = option == "-s" && (n.hasPrefix("-") || n.hasPrefix("+")) ? String(n.dropFirst()) : n
            if !isColumnKey(key) {
                if PropertyTable.spec(key) != nil { throw LumosError.invalid("\(option): \(key) is not a list field (vmadm get shows it)") }
                let hint = PropertyTable.suggestion(for: key).map { "; did you mean \"\($0)\"?" } ?? ""
                throw LumosError.invalid("\(option): unknown field \"\(key)\"\(hint)")
            }
        }
        return names
    }

    public func matches(_ vm: JSONValue) -> Bool {
        filters.allSatisfy { f in
            Self.values(vm, f.key).contains { v in
                let text = v.plainText
                if f.isRegex { return text.range(of: f.value, options: .regularExpression) != nil }
                return text == f.value
            }
        }
    }

    /// Values at a dotted path, where `*` stands for every element of an array.
    static func values(_ v: JSONValue, _ path: String) -> [JSONValue] {
        var cur: [JSONValue] = [v]
        for part in path.split(separator: ".").map(String.init) {
            cur = cur.flatMap { node -> [JSONValue] in
                if part == "*", let a = node.arrayValue { return a }
                return node.lookup(part).map { [$0] } ?? []
            }
        }
        return cur
    }

    public func select(_ vms: [JSONValue]) -> [JSONValue] {
        vms.filter(matches).sorted { a, b in
            for key in sort {
                let desc = key.hasPrefix("-")
                let k = desc || key.hasPrefix("+") ? String(key.dropFirst()) : key
                let x = a.lookup(k), y = b.lookup(k)
                if let o = Self.order(x, y), o != .orderedSame { return (o == .orderedAscending) != desc }
            }
            return false
        }
    }

    static func order(_ x: JSONValue?, _ y: JSONValue?) -> ComparisonResult? {
        switch (x, y) {
        case (nil, nil): return .orderedSame
        case (nil, _): return .orderedAscending
        case (_, nil): return .orderedDescending
        case (.number(let a)?, .number(let b)?): return a < b ? .orderedAscending : a > b ? .orderedDescending : .orderedSame
        default:
            let a = x!.plainText, b = y!.plainText
            return a < b ? .orderedAscending : a > b ? .orderedDescending : .orderedSame
        }
    }

    /// Renders rows as vmadm does: columns padded to vmadm's widths (dotted fields 20) and
    /// separated by two spaces, lines right-trimmed, with vmadm's headers; `-H` omits the
    /// header; `-p` prints colon-separated fields without header (colons in values escaped),
    /// a missing value as an empty field where the table prints `-` (vmadm.js outputVMListLine).
    public func render(_ vms: [JSONValue], header: Bool, parsable: Bool) -> String {
        let rows = vms.map { vm in columns.map { col in vm.lookup(col).flatMap { $0 == .null ? nil : $0.plainText } } }
        if parsable {
            return rows.map { $0.map { ($0 ?? "").replacingOccurrences(of: ":", with: "\\:") }.joined(separator: ":") + "\n" }.joined()
        }
        let widths = columns.map { PropertyTable.spec($0)?.column?.width ?? 20 }
        func line(_ fields: [String]) -> String {
            var text = ""
            for (i, f) in fields.enumerated() {
                if i > 0 { text += "  " }
                text += f.padding(toLength: max(widths[i], f.count), withPad: " ", startingAt: 0)
            }
            while text.hasSuffix(" ") { text.removeLast() }
            return text + "\n"
        }
        let headers = columns.map { PropertyTable.spec($0)?.column?.header ?? $0.uppercased() }
        return (header ? line(headers) : "") + rows.map { line($0.map { $0 ?? "-" }) }.joined()
    }
}
