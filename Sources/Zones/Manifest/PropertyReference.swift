import LumosCore

/// The property table as the reference in docs/vmadm.md (`lumos vm properties` prints it;
/// a test checks the document holds exactly this).
public enum PropertyReference {
    public static func markdown() -> String {
        var out = "| property | type | brands | create | update | list | default | how it applies |\n"
        out += "|---|---|---|---|---|---|---|---|\n"
        for spec in PropertyTable.all.sorted(by: { $0.name < $1.name }) {
            let create = spec.actions.contains(.create) ? "yes" : "no"
            // An edit takes effect when the property it edits does.
            var rule = spec.update
            if case .edit(_, let target) = spec.kind, let t = PropertyTable.spec(target) { rule = t.update }
            let update: String
            switch (spec.actions.contains(.update), rule) {
            case (false, _), (_, .no): update = "no"
            case (true, .live): update = "live"
            case (true, .nextBoot): update = "next boot"
            }
            let list = spec.columnHeader.map { "`\($0)`" } ?? ""
            var what: String
            if let why = spec.unsupportedReason {
                what = "**refused**: \(why)"
            } else if !spec.brands.contains(.lx) {
                what = "**\(spec.brands.map(\.rawValue).sorted().joined(separator: ", ")) only** (refused for lx): \(spec.summary)"
            } else {
                what = "\(application(spec)): \(spec.summary)"
            }
            what = what.replacingOccurrences(of: "|", with: "\\|")
            let brands = spec.unsupportedReason == nil ? spec.brands.map(\.rawValue).sorted().joined(separator: ", ") : ""
            out += "| `\(spec.name)` | \(type(spec.kind)) | \(brands) | \(spec.unsupportedReason == nil ? create : "no") | \(spec.unsupportedReason == nil ? update : "no") | \(list) | \(defaultText(spec.defaultRule)) | \(what) |\n"
        }
        return out
    }

    static func application(_ spec: PropertySpec) -> String {
        if case .sameAs(let other) = spec.application { return "sets \(other)" }
        if spec.isComputed || spec.access == .readOnly { return "read-only" }
        if case .edit(_, let target) = spec.kind { return "edits \(target)" }
        switch spec.application {
        case .recorded: return "stored"
        case .limit: return "limit"
        case .dataset: return "dataset"
        case .zoneFiles: return "zone files"
        case .boot: return "boot"
        case .network: return "network"
        case .vmadm: return "vmadm"
        case .sameAs(let other): return "sets \(other)"
        case .none: return "read-only"
        }
    }

    static func type(_ kind: PropertyKind) -> String {
        switch kind {
        case .uuid: return "uuid"
        case .string: return "string"
        case .hostname: return "hostname"
        case .boolean: return "boolean"
        case .integer(_, _, let unit): return unit.isEmpty ? "integer" : "integer (\(unit))"
        case .brand: return "brand"
        case .ipAddressList: return "array of IP addresses"
        case .stringList: return "array of strings"
        case .stringMap: return "object"
        case .routes: return "object (destination → gateway)"
        case .filesystems: return "array of mounts"
        case .nics: return "array of NICs"
        case .disks: return "array of disks"
        case .pool: return "pool name"
        case .timestamp: return "ISO 8601 time"
        case .computed: return "array"
        case .edit(let op, let target): return op == .set ? "object (edits \(target))" : "array (edits \(target))"
        }
    }

    static func defaultText(_ rule: DefaultRule) -> String {
        switch rule {
        case .none: return ""
        case .value(let v): return "`\(v.serialized(pretty: false))`"
        case .derived: return "derived"
        }
    }
}
