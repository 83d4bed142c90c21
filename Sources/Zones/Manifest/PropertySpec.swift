import LumosCore

/// What kind of value a manifest property holds, and so how it is checked.
public enum PropertyKind: Sendable {
    case uuid
    case string(maxLength: Int)
    case hostname
    case boolean
    /// A whole number in [min, max]; `unit` names it in errors ("MiB", "GiB", "percent").
    case integer(min: Int64, max: Int64, unit: String)
    case brand
    case ipAddressList
    /// An object of key → string (metadata) or key → string/number/boolean (tags).
    case stringMap(allowScalars: Bool)
    case filesystems
    case nics
    case timestamp
    /// Computed structure printed by get (e.g. snapshots); never accepted as input.
    case computed
}

/// When a changed value takes effect (vmadm(8) "update": live, at next boot, or never).
public enum UpdateRule: Sendable, Equatable {
    case no
    case live
    case nextBoot
}

/// How a default is chosen when the create payload leaves a property out.
public enum DefaultRule: Sendable {
    case none
    case value(JSONValue)
    /// Derived from other (already defaulted) properties, as vmadm does for max_swap/tmpfs.
    case derived(@Sendable ([String: JSONValue]) -> JSONValue?)
}

/// Whether a property can be set by a user.
public enum Access: Sendable, Equatable {
    case settable
    /// Required at create.
    case required
    /// Printed by get/list, computed by Lumos; rejected in payloads.
    case readOnly
    /// A vmadm property with no meaning on Linux; rejected with the reason.
    case unsupported(String)
}

/// One row of the property table: the single place that says how a vmadm property is
/// validated, defaulted, listed and updated (STYLE.md: "one table, not checks scattered around").
public struct PropertySpec: Sendable {
    public var name: String
    public var kind: PropertyKind
    public var access: Access
    public var defaultRule: DefaultRule
    public var update: UpdateRule
    /// The column header in `vmadm list -o`, when it differs from the upper-cased name.
    public var columnHeader: String?
    public var summary: String

    public init(_ name: String, _ kind: PropertyKind, _ access: Access = .settable, default defaultRule: DefaultRule = .none,
                update: UpdateRule = .no, column: String? = nil, _ summary: String) {
        self.name = name
        self.kind = kind
        self.access = access
        self.defaultRule = defaultRule
        self.update = update
        self.columnHeader = column
        self.summary = summary
    }
}
