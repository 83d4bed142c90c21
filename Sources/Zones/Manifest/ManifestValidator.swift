import Foundation
import LumosCore
import Net

/// The result of validating an update: the new manifest and which properties changed, by
/// when they take effect.
public struct UpdatePlan: Sendable {
    public var manifest: Manifest
    public var changed: [String]
    public var live: [String] { changed.filter { PropertyTable.spec($0)?.update == .live } }
    public var nextBoot: [String] { changed.filter { PropertyTable.spec($0)?.update == .nextBoot } }
}

/// Validation and defaults for create and update payloads, driven by `PropertyTable`.
public enum ManifestValidator {
    /// vmadm update's keys that edit a map or list property instead of replacing it.
    static let mapEdits = ["customer_metadata", "internal_metadata", "tags"]
    static let updateOnlyKeys: Set<String> = Set(mapEdits.flatMap { ["set_\($0)", "remove_\($0)"] } + ["add_nics", "remove_nics", "update_nics"])

    /// Validates a create payload and fills in defaults. Nothing on the host is consulted, so
    /// the same checks run for `vmadm validate create`.
    public static func validateCreate(_ payload: JSONValue, newUUID: () -> String = { UUID().uuidString.lowercased() }) throws -> Manifest {
        guard var props = payload.objectValue else {
            throw LumosError.invalid("manifest: a create payload must be a JSON object, got \(payload.typeName)")
        }
        for key in props.keys.sorted() {
            if updateOnlyKeys.contains(key) {
                throw LumosError.invalid("\(key): only valid in an update payload; in create, give \(key.replacingOccurrences(of: "set_", with: "").replacingOccurrences(of: "add_", with: "")) directly")
            }
            let spec = try knownSpec(key)
            if spec.access == .readOnly { throw LumosError.invalid("\(key): is set by Lumos and cannot be given; remove it from the payload") }
            try PropertyChecks.check(spec, props[key]!)
        }
        for spec in PropertyTable.all where spec.access == .required && props[spec.name] == nil {
            throw LumosError.invalid("\(spec.name): is required (\(spec.summary)); add it to the payload")
        }
        if props["uuid"] == nil { props["uuid"] = .string(newUUID()) }
        props["uuid"] = .string(props["uuid"]!.stringValue!.lowercased())
        for spec in PropertyTable.all where props[spec.name] == nil {
            switch spec.defaultRule {
            case .none: break
            case .value(let v): props[spec.name] = v
            case .derived(let f): if let v = f(props) { props[spec.name] = v }
            }
        }
        props["nics"] = .array(completeNICs(props["nics"]?.arrayValue ?? []))
        let manifest = Manifest(props)
        try checkRelations(manifest)
        return manifest
    }

    /// Validates an update payload against the current manifest (vmadm update semantics).
    public static func validateUpdate(_ current: Manifest, _ payload: JSONValue) throws -> UpdatePlan {
        guard let changes = payload.objectValue else {
            throw LumosError.invalid("update: the payload must be a JSON object, got \(payload.typeName)")
        }
        var props = current.properties
        var changed: Set<String> = []
        for key in changes.keys.sorted() {
            let value = changes[key]!
            if let edit = try applyEdit(key, value, &props) { changed.insert(edit); continue }
            let spec = try knownSpec(key)
            if spec.access == .readOnly { throw LumosError.invalid("\(key): is set by Lumos and cannot be updated") }
            if spec.update == .no { throw LumosError.invalid("\(key): cannot be changed after create (vmadm: not updatable)") }
            try PropertyChecks.check(spec, value)
            if key == "nics" { throw LumosError.invalid("nics: use add_nics, remove_nics or update_nics to change NICs") }
            if props[key] != value { props[key] = value; changed.insert(key) }
        }
        // Raising the memory cap raises the caps derived from it, as vmadm does, unless the
        // payload sets them itself.
        if changed.contains("max_physical_memory"), let ram = props["max_physical_memory"]?.intValue {
            let old = current.maxPhysicalMemoryMiB
            if changes["max_swap"] == nil, (props["max_swap"]?.intValue ?? 0) < ram { props["max_swap"] = .number(Double(ram)); changed.insert("max_swap") }
            if changes["max_locked_memory"] == nil, let locked = props["max_locked_memory"]?.intValue, locked == old || locked > ram {
                props["max_locked_memory"] = .number(Double(ram)); changed.insert("max_locked_memory")
            }
            let maxTmp = Int64(TmpfsBudget(maxPhysicalMemory: UInt64(ram)).maxTmp)
            if changes["tmpfs"] == nil, let tmpfs = props["tmpfs"]?.intValue, tmpfs > maxTmp {
                props["tmpfs"] = .number(Double(maxTmp)); changed.insert("tmpfs")
            }
        }
        try NicChecks.check(props["nics"] ?? .array([]))
        let manifest = Manifest(props)
        try checkRelations(manifest)
        return UpdatePlan(manifest: manifest, changed: changed.sorted())
    }

    /// Parses `prop=value` arguments of `vmadm update UUID prop=value ...` into a payload;
    /// values are typed by the property table (numbers, booleans, JSON for lists and maps).
    public static func payload(fromAssignments args: [String]) throws -> JSONValue {
        var out: [String: JSONValue] = [:]
        for arg in args {
            guard let eq = arg.firstIndex(of: "=") else { throw LumosError.invalid("update: \"\(arg)\" is not property=value") }
            let key = String(arg[..<eq]), text = String(arg[arg.index(after: eq)...])
            if updateOnlyKeys.contains(key) { out[key] = try JSONValue.parse(text, what: key); continue }
            let spec = try knownSpec(key)
            switch spec.kind {
            case .integer:
                guard let n = Int64(text) else { throw LumosError.invalid("\(key): expected a whole number, got \"\(text)\"") }
                out[key] = .number(Double(n))
            case .boolean:
                guard text == "true" || text == "false" else { throw LumosError.invalid("\(key): expected true or false, got \"\(text)\"") }
                out[key] = .bool(text == "true")
            case .ipAddressList, .stringMap, .filesystems, .nics, .computed:
                out[key] = text.hasPrefix("[") || text.hasPrefix("{") ? try JSONValue.parse(text, what: key)
                    : .array(text.split(separator: ",").map { .string(String($0)) })
            default:
                out[key] = .string(text)
            }
        }
        return .object(out)
    }

    static func knownSpec(_ key: String) throws -> PropertySpec {
        guard let spec = PropertyTable.spec(key) else {
            let hint = PropertyTable.suggestion(for: key).map { "; did you mean \"\($0)\"?" } ?? "; see vmadm(8) for property names"
            throw LumosError.invalid("\(key): unknown property\(hint)")
        }
        if case .unsupported(let why) = spec.access { throw LumosError.unsupported("\(key): not supported on Linux: \(why)") }
        return spec
    }

    /// set_X / remove_X / add_nics / remove_nics / update_nics. Returns the property changed.
    static func applyEdit(_ key: String, _ value: JSONValue, _ props: inout [String: JSONValue]) throws -> String? {
        for map in mapEdits {
            if key == "set_\(map)" {
                guard let o = value.objectValue else { throw LumosError.invalid("\(key): expected an object of keys to set") }
                var cur = props[map]?.objectValue ?? [:]
                for (k, v) in o { cur[k] = v }
                try PropertyChecks.check(PropertyTable.spec(map)!, .object(cur))
                props[map] = .object(cur)
                return map
            }
            if key == "remove_\(map)" {
                guard let a = value.arrayValue, a.allSatisfy({ $0.stringValue != nil }) else {
                    throw LumosError.invalid("\(key): expected an array of key names to remove")
                }
                var cur = props[map]?.objectValue ?? [:]
                for k in a.compactMap(\.stringValue) { cur[k] = nil }
                props[map] = .object(cur)
                return map
            }
        }
        var nics = props["nics"]?.arrayValue ?? []
        switch key {
        case "add_nics":
            guard let a = value.arrayValue else { throw LumosError.invalid("add_nics: expected an array of NIC objects") }
            for (i, n) in a.enumerated() { try NicChecks.checkOne(n, at: "add_nics[\(i)]", requireTag: true) }
            nics = completeNICs(nics + a)
        case "remove_nics":
            guard let a = value.arrayValue, a.allSatisfy({ $0.stringValue != nil }) else { throw LumosError.invalid("remove_nics: expected an array of MAC addresses") }
            for mac in a.compactMap({ $0.stringValue?.lowercased() }) {
                guard let i = nics.firstIndex(where: { $0.objectValue?["mac"]?.stringValue?.lowercased() == mac }) else {
                    throw LumosError.notFound("remove_nics: this VM has no NIC with MAC \(mac); see vmadm get UUID")
                }
                nics.remove(at: i)
            }
        case "update_nics":
            guard let a = value.arrayValue else { throw LumosError.invalid("update_nics: expected an array of NIC objects with mac") }
            for (i, n) in a.enumerated() {
                let o = try NicChecks.checkOne(n, at: "update_nics[\(i)]", requireTag: false)
                guard let mac = o["mac"]?.stringValue?.lowercased() else { throw LumosError.invalid("update_nics[\(i)]: mac is required to say which NIC to change") }
                guard let j = nics.firstIndex(where: { $0.objectValue?["mac"]?.stringValue?.lowercased() == mac }) else {
                    throw LumosError.notFound("update_nics[\(i)]: this VM has no NIC with MAC \(mac)")
                }
                var cur = nics[j].objectValue ?? [:]
                for (k, v) in o { cur[k] = v }
                if cur["ips"] != nil && o["ips"] != nil { cur["ip"] = nil }
                nics[j] = .object(cur)
            }
        default:
            return nil
        }
        props["nics"] = .array(nics)
        return "nics"
    }

    /// Gives every NIC a MAC and an interface name, and makes the first one primary when
    /// none is, as vmadm does. MACs come from the Net module's generator (random, locally
    /// administered), the one place Lumos makes them; the manifest then holds them for good.
    static func completeNICs(_ nics: [JSONValue]) -> [JSONValue] {
        var used = Set(nics.compactMap { $0.objectValue?["interface"]?.stringValue })
        var macs = Set(nics.compactMap { $0.objectValue?["mac"]?.stringValue.flatMap(MACAddress.init) })
        let hasPrimary = nics.contains { $0.objectValue?["primary"]?.boolValue == true }
        return nics.enumerated().map { i, v in
            guard var o = v.objectValue else { return v }
            if o["mac"] == nil {
                let mac = MACAddress.generate(avoiding: macs)
                macs.insert(mac)
                o["mac"] = .string(mac.description)
            }
            if o["interface"] == nil {
                var n = 0
                while used.contains("net\(n)") { n += 1 }
                used.insert("net\(n)")
                o["interface"] = .string("net\(n)")
            }
            if !hasPrimary && i == 0 { o["primary"] = .bool(true) }
            return .object(o)
        }
    }

    /// Rules between properties.
    static func checkRelations(_ m: Manifest) throws {
        let ram = m.maxPhysicalMemoryMiB
        if m.maxSwapMiB < ram {
            throw LumosError.invalid("max_swap: \(m.maxSwapMiB) MiB is below max_physical_memory (\(ram) MiB); max_swap counts memory plus swap, so set it to at least \(ram)")
        }
        if m.maxLockedMemoryMiB > ram {
            throw LumosError.invalid("max_locked_memory: \(m.maxLockedMemoryMiB) MiB is above max_physical_memory (\(ram) MiB); lower it or raise max_physical_memory")
        }
        let budget = TmpfsBudget(maxPhysicalMemory: UInt64(ram))
        if m.tmpfsMiB > budget.maxTmp {
            throw LumosError.invalid("tmpfs: \(m.tmpfsMiB) MiB leaves too little of max_physical_memory (\(ram) MiB) once /dev/shm (\(budget.shm) MiB) and room for processes (\(budget.reserve) MiB) are counted; use at most \(budget.maxTmp)")
        }
    }
}
