import LumosCore

/// Validates one property's value against its row in the table. Errors are one line:
/// `<property>: <what is wrong>; <what to do>`.
enum PropertyChecks {
    static func check(_ spec: PropertySpec, _ value: JSONValue) throws {
        let name = spec.name
        func bad(_ expected: String) -> LumosError {
            LumosError.invalid("\(name): expected \(expected), got \(value.typeName) \(ValueChecks.show(value))")
        }
        switch spec.kind {
        case .uuid:
            guard let s = value.stringValue else { throw bad("a UUID string") }
            guard ValueChecks.isUUID(s) else {
                throw LumosError.invalid("\(name): \(ValueChecks.show(value)) is not a UUID; write it like 7b4ad1a2-3c1e-4a8e-9f00-2f1b8c0d6e11")
            }
        case .string(let maxLength):
            guard let s = value.stringValue else { throw bad("a string") }
            if s.count > maxLength { throw LumosError.invalid("\(name): longer than \(maxLength) characters; shorten it") }
            if ValueChecks.hasControlCharacters(s) { throw LumosError.invalid("\(name): contains control characters (newline, tab, ...); remove them") }
            if name == "init_name" && !s.hasPrefix("/") {
                throw LumosError.invalid("\(name): \(ValueChecks.show(value)) is not an absolute path; use e.g. /sbin/init")
            }
        case .hostname:
            guard let s = value.stringValue else { throw bad("a host name string") }
            guard ValueChecks.isHostname(s) else {
                throw LumosError.invalid("\(name): \(ValueChecks.show(value)) is not a valid host name; use letters, digits and '-' (at most 63 per label)")
            }
        case .boolean:
            guard value.boolValue != nil else { throw bad("true or false") }
        case .integer(let min, let max, let unit):
            guard let n = value.intValue else {
                throw bad("a whole number" + (unit.isEmpty ? "" : " of \(unit)"))
            }
            guard n >= min && n <= max else {
                throw LumosError.invalid("\(name): \(n) is out of range; use \(min) to \(max)" + (unit.isEmpty ? "" : " (\(unit))"))
            }
        case .brand:
            guard let s = value.stringValue else { throw bad("a brand name string") }
            if let b = Brand(rawValue: s), PropertyTable.runningBrands.contains(b) { return }
            if let why = PropertyTable.otherBrands[s] { throw LumosError.unsupported("brand: \(why)") }
            throw LumosError.invalid("brand: unknown brand \(ValueChecks.show(value)); use \"lx\"")
        case .ipAddressList:
            guard let a = value.arrayValue else { throw bad("an array of IP addresses") }
            for (i, e) in a.enumerated() {
                guard let s = e.stringValue, ValueChecks.isIP(s) else {
                    throw LumosError.invalid("\(name)[\(i)]: \(ValueChecks.show(e)) is not an IP address; write e.g. \"8.8.8.8\"")
                }
            }
        case .stringMap(let allowScalars):
            guard let o = value.objectValue else { throw bad("an object of key/value pairs") }
            for (k, v) in o {
                if k.isEmpty || ValueChecks.hasControlCharacters(k) { throw LumosError.invalid("\(name): key \(ValueChecks.show(.string(k))) is empty or has control characters") }
                let scalar: Bool
                switch v {
                case .number, .bool: scalar = true
                default: scalar = false
                }
                if v.stringValue == nil && !(allowScalars && scalar) {
                    throw LumosError.invalid("\(name).\(k): values must be \(allowScalars ? "strings, numbers or booleans" : "strings"), got \(v.typeName)")
                }
            }
        case .stringList:
            guard let a = value.arrayValue, a.allSatisfy({ $0.stringValue.map { !ValueChecks.hasControlCharacters($0) } ?? false }) else {
                throw bad("an array of strings")
            }
        case .routes:
            guard let o = value.objectValue else { throw bad("an object of destination → gateway, e.g. {\"10.2.2.0/24\": \"10.2.1.1\"}") }
            for (dest, gw) in o.sorted(by: { $0.key < $1.key }) {
                guard ValueChecks.isIP(dest) || ValueChecks.isCIDR(dest) else {
                    throw LumosError.invalid("\(name).\(dest): the destination is not an address or CIDR subnet like 10.2.2.0/24")
                }
                guard let g = gw.stringValue, RouteGateway(g) != .invalid else {
                    throw LumosError.invalid("\(name).\(dest): gateway \(ValueChecks.show(gw)) is not an address, \"nics[N]\" or \"macs[MAC]\"")
                }
            }
        case .pool:
            guard let s = value.stringValue else { throw bad("a pool name") }
            guard !s.isEmpty, s.count <= 255, s.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_-.:".contains($0)) }) else {
                throw LumosError.invalid("\(name): \(ValueChecks.show(value)) is not a pool name")
            }
        case .filesystems:
            try FilesystemChecks.check(value)
        case .nics:
            try NicChecks.check(value)
        case .disks:
            try DiskChecks.check(value)
        case .edit(let op, let target):
            try checkEdit(name, op, target, value)
        case .timestamp, .computed:
            break
        }
    }

    /// The form of an update-only edit (vmadm(8) "update"), without a VM to apply it to.
    static func checkEdit(_ name: String, _ op: EditOperation, _ target: String, _ value: JSONValue) throws {
        guard let targetSpec = PropertyTable.spec(target) else { return }
        let field = ListEdits.entryKey(target)
        switch op {
        case .set:
            guard value.objectValue != nil else { throw LumosError.invalid("\(name): expected an object of keys to set") }
            do { try check(targetSpec, value) } catch let e as LumosError {
                throw LumosError(e.kind, e.message.replacingOccurrences(of: "\(target)", with: name, options: .anchored))
            }
        case .remove:
            guard let a = value.arrayValue, a.allSatisfy({ $0.stringValue != nil }) else {
                throw LumosError.invalid(target == "nics" ? "\(name): expected an array of MAC addresses"
                    : target == "disks" ? "\(name): expected an array of disk paths (see vmadm get UUID)"
                    : target == "filesystems" ? "\(name): expected an array of mount targets" : "\(name): expected an array of key names to remove")
            }
            if target == "nics", let bad = a.compactMap(\.stringValue).first(where: { !ValueChecks.isUnicastMAC($0) }) {
                throw LumosError.invalid("\(name): \(bad) is not a MAC address")
            }
        case .add:
            guard let a = value.arrayValue else { throw LumosError.invalid("\(name): expected an array of \(target == "nics" ? "NIC" : "entry") objects") }
            if target == "nics" {
                for (i, n) in a.enumerated() {
                    try NicChecks.spec(try NicChecks.checkOne(n, at: "\(name)[\(i)]", requireTag: true), at: "\(name)[\(i)]")
                }
            } else if target == "filesystems" {
                try FilesystemChecks.check(value, name: name)
            } else if target == "disks" {
                for (i, d) in a.enumerated() { try DiskChecks.checkOne(d, at: "\(name)[\(i)]", partial: false) }
            }
        case .update:
            guard let a = value.arrayValue else { throw LumosError.invalid("\(name): expected an array of objects with \(field)") }
            for (i, e) in a.enumerated() {
                guard let o = e.objectValue, o[field]?.stringValue != nil else {
                    throw LumosError.invalid("\(name)[\(i)]: \(field) is required to say which \(target == "nics" ? "NIC" : "mount") to change")
                }
                if target == "nics" { try NicChecks.checkOne(e, at: "\(name)[\(i)]", requireTag: false) }
                if target == "filesystems" { try FilesystemChecks.checkEntry(o, at: "\(name)[\(i)]", partial: true) }
                if target == "disks" {
                    try DiskChecks.checkOne(e, at: "\(name)[\(i)]", partial: true)
                    for key in ["image_uuid", "media", "zfs_filesystem"] where o[key] != nil {
                        throw LumosError.invalid("\(name)[\(i)].\(key): cannot be changed on an existing disk; remove the disk and add a new one")
                    }
                }
            }
        }
    }
}
