import LumosCore

/// vmadm update's edits of list and map properties (vmadm(8) "update"): set_X/remove_X on
/// maps (tags, metadata, routes), add_X/remove_X/update_X on lists (nics matched by mac,
/// filesystems by target). Forms were checked by `PropertyChecks`; this applies them to the
/// VM, where a remove or update must find what it names.
enum ListEdits {
    /// The field that names an entry of a list property.
    static func entryKey(_ list: String) -> String { list == "filesystems" ? "target" : list == "disks" ? "path" : "mac" }

    static func noun(_ list: String) -> String { list == "nics" ? "NIC" : list == "disks" ? "disk" : "mount" }

    static func apply(_ op: EditOperation, to target: String, key: String, _ value: JSONValue, _ props: inout [String: JSONValue]) throws {
        if case .stringMap = PropertyTable.spec(target)?.kind { return try applyMap(op, target, key, value, &props) }
        if case .routes = PropertyTable.spec(target)?.kind { return try applyMap(op, target, key, value, &props) }
        let field = entryKey(target)
        func norm(_ s: String) -> String { field == "mac" ? s.lowercased() : s }
        var list = props[target]?.arrayValue ?? []
        func index(of name: String) -> Int? {
            list.firstIndex { $0.objectValue?[field]?.stringValue.map(norm) == norm(name) }
        }
        let entries = value.arrayValue ?? []
        switch op {
        case .add:
            for (i, e) in entries.enumerated() {
                if let name = e.objectValue?[field]?.stringValue, index(of: name) != nil {
                    throw LumosError.exists("\(key)[\(i)].\(field): this VM already has a \(noun(target)) with \(field) \(name)")
                }
            }
            list += entries
            if target == "nics" { list = ManifestValidator.completeNICs(list) }
        case .remove:
            for name in entries.compactMap(\.stringValue) {
                guard let i = index(of: name) else {
                    throw LumosError.notFound("\(key): this VM has no \(noun(target)) with \(field == "mac" ? "MAC" : field) \(norm(name)); see vmadm get UUID")
                }
                list.remove(at: i)
            }
        case .update:
            for (i, e) in entries.enumerated() {
                let o = e.objectValue ?? [:]
                guard let name = o[field]?.stringValue, let j = index(of: name) else {
                    throw LumosError.notFound("\(key)[\(i)]: this VM has no \(noun(target)) with \(field == "mac" ? "MAC" : field) \(o[field]?.stringValue.map(norm) ?? "?")")
                }
                var cur = list[j].objectValue ?? [:]
                for (k, v) in o { cur[k] = v == .null ? nil : v }
                if target == "nics" && o["ips"] != nil { cur["ip"] = nil }
                list[j] = .object(cur)
            }
        case .set:
            throw LumosError.invalid("\(key): set_ applies to maps, not to \(target)")
        }
        props[target] = .array(list)
    }

    static func applyMap(_ op: EditOperation, _ target: String, _ key: String, _ value: JSONValue, _ props: inout [String: JSONValue]) throws {
        var cur = props[target]?.objectValue ?? [:]
        switch op {
        case .set:
            for (k, v) in value.objectValue ?? [:] { cur[k] = v }
        case .remove:
            for k in value.arrayValue?.compactMap(\.stringValue) ?? [] { cur[k] = nil }
        case .add, .update:
            throw LumosError.invalid("\(key): \(target) is changed with set_\(target) and remove_\(target)")
        }
        props[target] = .object(cur)
    }
}
