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
            if PropertyTable.brands.contains(s) { return }
            if let why = PropertyTable.laterBrands[s] { throw LumosError.unsupported("brand: \(why)") }
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
        case .filesystems:
            try FilesystemChecks.check(value)
        case .nics:
            try NicChecks.check(value)
        case .timestamp, .computed:
            break
        }
    }
}
