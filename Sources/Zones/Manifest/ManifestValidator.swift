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

/// Every problem of a payload, as vmadm's validate reports them (vmadm(8) "validate"):
/// properties not valid for the action, values not acceptable, required ones missing. Thrown
/// as an error it reads as its first problem, one line naming the property.
public struct ValidationProblems: Error, CustomStringConvertible, Sendable {
    public var badProperties: [String] = []
    public var badValues: [String] = []
    public var missingProperties: [String] = []
    /// One message per problem, in the order found.
    public var errors: [LumosError] = []

    public var isEmpty: Bool { errors.isEmpty }
    public var description: String { errors.first?.message ?? "valid" }
    public var first: LumosError { errors.first ?? LumosError.invalid("valid") }

    enum Category { case property, value, missing }

    mutating func add(_ name: String, _ category: Category, _ error: LumosError) {
        switch category {
        case .property: if !badProperties.contains(name) { badProperties.append(name) }
        case .value: if !badValues.contains(name) { badValues.append(name) }
        case .missing: if !missingProperties.contains(name) { missingProperties.append(name) }
        }
        errors.append(error)
    }

    /// Runs a check of `name`'s value; a failure is recorded as a bad value.
    mutating func value(_ name: String, _ check: () throws -> Void) {
        do { try check() } catch let e as LumosError { add(name, .value, e) } catch { add(name, .value, .invalid("\(name): \(oneLine(error))")) }
    }

    /// vmadm's JSON: the three lists (only those not empty) plus Lumos's messages.
    public var json: JSONValue {
        var o: [String: JSONValue] = [:]
        if !badProperties.isEmpty { o["bad_properties"] = .array(badProperties.map { .string($0) }) }
        if !badValues.isEmpty { o["bad_values"] = .array(badValues.map { .string($0) }) }
        if !missingProperties.isEmpty { o["missing_properties"] = .array(missingProperties.map { .string($0) }) }
        o["errors"] = .array(errors.map { .string($0.message) })
        return .object(o)
    }
}

/// Validation and defaults for create and update payloads, driven by `PropertyTable`.
public enum ManifestValidator {
    /// Validates a create payload and fills in defaults. Nothing on the host is consulted, so
    /// the same checks run for `vmadm validate create`. Throws the first problem.
    public static func validateCreate(_ payload: JSONValue, newUUID: () -> String = { UUID().uuidString.lowercased() }) throws -> Manifest {
        let (m, problems) = checkCreate(payload, newUUID: newUUID)
        guard let m, problems.isEmpty else { throw problems.first }
        return m
    }

    /// Every problem of a create payload, and the defaulted manifest when there are none.
    public static func checkCreate(_ payload: JSONValue, newUUID: () -> String = { UUID().uuidString.lowercased() }) -> (Manifest?, ValidationProblems) {
        var problems = ValidationProblems()
        guard var props = payload.objectValue else {
            problems.add("payload", .value, .invalid("manifest: a create payload must be a JSON object, got \(payload.typeName)"))
            return (nil, problems)
        }
        let brand = checkBrand(props["brand"], &problems)
        // null at create is the same as leaving the property out.
        props = props.filter { $0.value != .null }
        for key in props.keys.sorted() where key != "brand" {
            guard let spec = acceptedSpec(key, for: .create, brand: brand, &problems) else { continue }
            problems.value(key) { try PropertyChecks.check(spec, props[key]!) }
        }
        for spec in PropertyTable.all where spec.access == .required && props[spec.name] == nil {
            problems.add(spec.name, .missing, .invalid("\(spec.name): is required (\(spec.summary)); add it to the payload"))
        }
        checkImage(brand, &props, &problems)
        resolveAliases(&props, brand: brand, &problems)
        if let zonename = props["zonename"]?.stringValue {
            if props["uuid"] == nil { props["uuid"] = .string(zonename) }
            if props["uuid"]?.stringValue?.lowercased() != zonename.lowercased() {
                problems.add("zonename", .value, .invalid("zonename: Lumos names a zone by its uuid; give the same value as uuid, or leave zonename out"))
            }
            props["zonename"] = nil
        }
        guard problems.isEmpty else { return (nil, problems) }
        if props["uuid"] == nil { props["uuid"] = .string(newUUID()) }
        props["uuid"] = .string(props["uuid"]!.stringValue!.lowercased())
        for spec in PropertyTable.all where props[spec.name] == nil && spec.brands.contains(brand) {
            switch spec.defaultRule {
            case .none: break
            case .value(let v): props[spec.name] = v
            case .derived(let f): if let v = f(props) { props[spec.name] = v }
            }
        }
        props["nics"] = .array(completeNICs(props["nics"]?.arrayValue ?? []))
        dropFalseFlags(&props)
        let manifest = Manifest(props)
        checkRelations(manifest, &problems)
        return (problems.isEmpty ? manifest : nil, problems)
    }

    /// Validates an update payload against the current manifest (vmadm update semantics).
    public static func validateUpdate(_ current: Manifest, _ payload: JSONValue) throws -> UpdatePlan {
        let (plan, problems) = checkUpdate(current, payload)
        guard let plan, problems.isEmpty else { throw problems.first }
        return plan
    }

    /// Checks an update payload's keys and values for a brand without a VM, as
    /// `vmadm validate update BRAND` does: edits are checked for their form, not against NICs
    /// or mounts a VM has.
    public static func checkUpdatePayload(_ payload: JSONValue, brand: Brand) -> ValidationProblems {
        var problems = ValidationProblems()
        guard let changes = payload.objectValue else {
            problems.add("payload", .value, .invalid("update: the payload must be a JSON object, got \(payload.typeName)"))
            return problems
        }
        for key in changes.keys.sorted() {
            guard let spec = acceptedSpec(key, for: .update, brand: brand, &problems) else { continue }
            let value = changes[key]!
            if value == .null { problems.value(key) { try checkClear(spec) }; continue }
            problems.value(key) { try PropertyChecks.check(spec, value) }
        }
        return problems
    }

    /// Every problem of an update payload against the VM `current`, and the plan when none.
    public static func checkUpdate(_ current: Manifest, _ payload: JSONValue) -> (UpdatePlan?, ValidationProblems) {
        let brand = Brand(rawValue: current.brand) ?? .lx
        var problems = checkUpdatePayload(payload, brand: brand)
        guard problems.isEmpty, let raw = payload.objectValue else { return (nil, problems) }
        var changes = raw
        resolveAliases(&changes, brand: brand, &problems)
        var props = current.properties
        var changed: Set<String> = []
        for key in changes.keys.sorted() {
            let value = changes[key]!
            guard let spec = PropertyTable.spec(key) else { continue }
            if case .edit(let op, let target) = spec.kind {
                problems.value(key) {
                    try ListEdits.apply(op, to: target, key: key, value, &props)
                    changed.insert(target)
                }
                continue
            }
            if value == .null {
                if props[key] != nil { props[key] = nil; changed.insert(key) }
                continue
            }
            if props[key] != value { props[key] = value; changed.insert(key) }
        }
        guard problems.isEmpty else { return (nil, problems) }
        // A hardware VM's jail follows its ram (the cap is ram plus QEMU's overhead).
        if brand == .kvm, changed.contains("ram"), changes["max_physical_memory"] == nil, let ram = props["ram"]?.intValue {
            props["max_physical_memory"] = .number(Double(ram + PropertyTable.kvmOverheadMiB))
            changed.insert("max_physical_memory")
        }
        // Raising the memory cap raises the caps derived from it, as vmadm does, unless the
        // payload sets them itself.
        if changed.contains("max_physical_memory"), let ram = props["max_physical_memory"]?.intValue {
            let old = current.integer("max_physical_memory")
            if changes["max_swap"] == nil, (props["max_swap"]?.intValue ?? 0) < ram { props["max_swap"] = .number(Double(ram)); changed.insert("max_swap") }
            if changes["max_locked_memory"] == nil, let locked = props["max_locked_memory"]?.intValue, locked == old || locked > ram {
                props["max_locked_memory"] = .number(Double(ram)); changed.insert("max_locked_memory")
            }
            let maxTmp = Int64(TmpfsBudget(maxPhysicalMemory: UInt64(ram)).maxTmp)
            if changes["tmpfs"] == nil, let tmpfs = props["tmpfs"]?.intValue, tmpfs > maxTmp {
                props["tmpfs"] = .number(Double(maxTmp)); changed.insert("tmpfs")
            }
        }
        dropFalseFlags(&props)
        for name in ["nics", "filesystems", "routes"] where changed.contains(name) {
            if let spec = PropertyTable.spec(name), let v = props[name] { problems.value(name) { try PropertyChecks.check(spec, v) } }
        }
        // Disks vmadm made carry their volume (zfs_filesystem, path); new ones may not.
        if changed.contains("disks"), let v = props["disks"] { problems.value("disks") { try DiskChecks.check(v, recorded: true) } }
        let manifest = Manifest(props)
        checkRelations(manifest, &problems)
        guard problems.isEmpty else { return (nil, problems) }
        return (UpdatePlan(manifest: manifest, changed: changed.sorted()), problems)
    }

    /// Parses `prop=value` arguments of `vmadm update UUID prop=value ...` into a payload;
    /// values are typed by the property table (numbers, booleans, JSON for lists and maps).
    public static func payload(fromAssignments args: [String]) throws -> JSONValue {
        var out: [String: JSONValue] = [:]
        for arg in args {
            guard let eq = arg.firstIndex(of: "=") else { throw LumosError.invalid("update: \"\(arg)\" is not property=value") }
            let key = String(arg[..<eq]), text = String(arg[arg.index(after: eq)...])
            var problems = ValidationProblems()
            guard let spec = PropertyTable.spec(key) else {
                _ = acceptedSpec(key, for: .update, brand: .lx, &problems)
                throw problems.first
            }
            switch spec.kind {
            case .integer:
                guard let n = Int64(text) else { throw LumosError.invalid("\(key): expected a whole number, got \"\(text)\"") }
                out[key] = .number(Double(n))
            case .boolean:
                guard text == "true" || text == "false" else { throw LumosError.invalid("\(key): expected true or false, got \"\(text)\"") }
                out[key] = .bool(text == "true")
            case .ipAddressList, .stringList, .stringMap, .routes, .filesystems, .nics, .disks, .computed, .edit:
                out[key] = text.hasPrefix("[") || text.hasPrefix("{") ? try JSONValue.parse(text, what: key)
                    : .array(text.split(separator: ",").map { .string(String($0)) })
            default:
                out[key] = .string(text)
            }
        }
        return .object(out)
    }

    /// The brand of a create payload; problems go to `problems` (lx is assumed for the rest).
    static func checkBrand(_ value: JSONValue?, _ problems: inout ValidationProblems) -> Brand {
        guard let value, value != .null else { return .lx }
        problems.value("brand") { try PropertyChecks.check(PropertyTable.spec("brand")!, value) }
        return value.stringValue.flatMap(Brand.init(rawValue:)) ?? .lx
    }

    /// The table row of `key` when `action` on a VM of `brand` accepts it; otherwise the
    /// problem is recorded (unknown, not on Linux, another brand's, read-only, not updatable).
    static func acceptedSpec(_ key: String, for action: PropertyAction, brand: Brand, _ problems: inout ValidationProblems) -> PropertySpec? {
        guard let spec = PropertyTable.spec(key) else {
            let hint = PropertyTable.suggestion(for: key).map { "; did you mean \"\($0)\"?" } ?? "; see vmadm(8) for property names"
            problems.add(key, .property, .invalid("\(key): unknown property\(hint)"))
            return nil
        }
        if let why = spec.unsupportedReason {
            problems.add(key, .property, .unsupported("\(key): not supported on Linux: \(why)"))
            return nil
        }
        if !spec.brands.contains(brand) {
            let owners = spec.brands.map(\.rawValue).sorted().joined(separator: ", ")
            let later = spec.brands.isDisjoint(with: PropertyTable.runningBrands) ? ", which this Lumos does not run yet" : ""
            problems.add(key, .property, .unsupported("\(key): is a property of \(owners) VMs (hardware virtualization)\(later), not of \(brand.rawValue) zones; remove it"))
            return nil
        }
        guard spec.actions.contains(action) else {
            let editors = PropertyTable.all.compactMap { s -> String? in if case .edit(_, let of) = s.kind, of == key { return s.name }; return nil }
            let message: String
            switch (action, spec.kind) {
            case (.create, .edit(_, let target)):
                message = "\(key): only valid in an update payload; in create, give \(target) directly"
            case (_, _) where spec.access == .readOnly:
                message = action == .create ? "\(key): is set by Lumos and cannot be given; remove it from the payload" : "\(key): is set by Lumos and cannot be updated"
            case (.update, _) where !editors.isEmpty:
                message = "\(key): use \(editors.joined(separator: ", ")) to change it"
            default:
                message = "\(key): cannot be changed after create (vmadm: not updatable)"
            }
            problems.add(key, .property, .invalid(message))
            return nil
        }
        return spec
    }

    /// vmadm(8) "update": many properties can be cleared with null; those a VM cannot be
    /// without cannot.
    static func checkClear(_ spec: PropertySpec) throws {
        if case .edit = spec.kind { throw LumosError.invalid("\(spec.name): expected a value, got null") }
        if spec.access == .required { throw LumosError.invalid("\(spec.name): cannot be cleared") }
    }

    /// Properties that set another one (`ram` on a zone is max_physical_memory): the value is
    /// moved to its target; giving both with different values is an error.
    static func resolveAliases(_ props: inout [String: JSONValue], brand: Brand, _ problems: inout ValidationProblems) {
        // A hardware VM's ram is the guest's; its jail's cap is derived from it.
        guard brand == .lx else { return }
        for spec in PropertyTable.all {
            guard case .sameAs(let target) = spec.application, let v = props[spec.name] else { continue }
            props[spec.name] = nil
            if let other = props[target], other != v {
                problems.add(spec.name, .value, .invalid("\(spec.name): \(ValueChecks.show(v)) differs from \(target) \(ValueChecks.show(other)); for zones they are the same property, give one"))
                continue
            }
            props[target] = v
        }
    }

    /// image_uuid: a zone's root is cloned from it, so lx needs it; a kvm VM's images are its
    /// disks' (vmadm(8) disks.*.image_uuid), and image_uuid shows the boot disk's.
    static func checkImage(_ brand: Brand, _ props: inout [String: JSONValue], _ problems: inout ValidationProblems) {
        switch brand {
        case .lx:
            if props["image_uuid"] == nil {
                problems.add("image_uuid", .missing, .invalid("image_uuid: is required (the image the zone's root is cloned from); add it to the payload"))
            }
        case .kvm:
            let disks = props["disks"]?.arrayValue?.compactMap(\.objectValue) ?? []
            guard !disks.isEmpty else {
                problems.add("disks", .missing, .invalid("disks: a kvm VM needs at least one disk, e.g. [{\"boot\": true, \"image_uuid\": \"...\"}]"))
                return
            }
            let bootImage = (disks.first { $0["boot"]?.boolValue == true } ?? disks[0])["image_uuid"]?.stringValue?.lowercased()
            if let given = props["image_uuid"]?.stringValue?.lowercased(), given != bootImage {
                problems.add("image_uuid", .value, .invalid("image_uuid: a kvm VM's image is its boot disk's (disks[].image_uuid); remove it or give the same"))
            }
            if let bootImage { props["image_uuid"] = .string(bootImage) }
        }
    }

    /// Flags vmadm shows only when true (do_not_inventory, ...): false removes them.
    static func dropFalseFlags(_ props: inout [String: JSONValue]) {
        for spec in PropertyTable.all where spec.omitWhenFalse && props[spec.name] == .bool(false) { props[spec.name] = nil }
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

    /// Rules between properties, each written once (`PropertyRules`).
    static func checkRelations(_ m: Manifest, _ problems: inout ValidationProblems) {
        for rule in PropertyRules.all {
            if let message = rule.violation(m) { problems.add(rule.property, .value, .invalid(message)) }
        }
    }
}
