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
    /// An array of strings (or a comma-separated string on the command line).
    case stringList
    /// An object of key → string (metadata) or key → string/number/boolean (tags).
    case stringMap(allowScalars: Bool)
    /// vmadm's routes: destination (address or CIDR) → gateway (address, "nics[N]" or "macs[MAC]").
    case routes
    case filesystems
    case nics
    /// kvm's disks[] (`DiskChecks`).
    case disks
    /// The name of an existing pool (vmadm's "zpool" type).
    case pool
    case timestamp
    /// Computed structure printed by get (e.g. snapshots); never accepted as input.
    case computed
    /// An update-only key that edits a list or map property (vmadm(8) "update": set_tags,
    /// remove_tags, add_nics, update_filesystems, ...).
    case edit(EditOperation, of: String)
}

/// What an update-only key does to the property it edits.
public enum EditOperation: String, Sendable {
    /// set_X: add or replace keys of a map.
    case set
    /// remove_X: remove keys of a map, or entries of a list by their key (mac, target).
    case remove
    /// add_X: append entries to a list.
    case add
    /// update_X: change entries of a list matched by their key.
    case update
}

/// The brands a property belongs to (vmadm(8) "vmtype"). Only lx runs in this Lumos
/// (`PropertyTable.runningBrands`); kvm's rows are in the table so its properties are refused
/// as "kvm only" now and accepted by adding the brand later.
public enum Brand: String, Sendable, CaseIterable {
    case lx
    case kvm
}

/// The vmadm actions that accept or show a property (vmadm(8) "create", "update",
/// "listable"; every property vmadm has is shown by get).
public enum PropertyAction: String, Sendable, CaseIterable {
    case create
    case update
    case list
    case get
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

/// What Lumos knows about a VM when printing it: the manifest plus what the kernel and the
/// pool say. Read-only properties are computed from it by their table entry.
public struct VMFacts: Sendable {
    public var manifest: Manifest
    public var running: Bool
    /// A create or receive holds the VM's lock.
    public var busy: Bool
    public var hasDataset: Bool
    public var dataset: String
    public var pool: String
    public var zonepath: String?
    public var pid: Int32?
    public var bootTimestamp: String?
    public var snapshots: [String]?
    public var serverUUID: String?
    /// A number that stays the same across boots (vmadm's zonedid).
    public var zonedid: Int64?
    /// A running kvm VM's accelerator and why it was chosen ("tcg (...)").
    public var accelerator: String?
    /// The VM has failed (a kvm guest stopped on an error, panicked, or its QEMU crashed).
    public var failed = false
    /// Why it failed, or how it last ended (docs/vm.md, "How a VM ends").
    public var stateReason: String?
    /// A running zone's init has come up (`ZoneControl.initReady`); false: `state` is `ready`.
    public var initReady = true

    public init(manifest: Manifest, running: Bool = false, busy: Bool = false, hasDataset: Bool = true, dataset: String = "",
                pool: String = "zones", zonepath: String? = nil, pid: Int32? = nil, bootTimestamp: String? = nil,
                snapshots: [String]? = nil, serverUUID: String? = nil, zonedid: Int64? = nil, accelerator: String? = nil) {
        self.accelerator = accelerator
        self.manifest = manifest
        self.running = running
        self.busy = busy
        self.hasDataset = hasDataset
        self.dataset = dataset
        self.pool = pool
        self.zonepath = zonepath
        self.pid = pid
        self.bootTimestamp = bootTimestamp
        self.snapshots = snapshots
        self.serverUUID = serverUUID
        self.zonedid = zonedid
    }
}

/// Where a property's value lives.
public enum PropertySource: Sendable {
    /// In the stored manifest (what the user gave or Lumos defaulted).
    case stored
    /// Computed when printing, never stored.
    case computed(@Sendable (VMFacts) -> JSONValue?)
}

/// A runtime resource limit fed by a property: the field of `ZoneLimits` it sets and how the
/// manifest's number (in vmadm's unit) becomes the field's value (nil = no limit).
public struct LimitSetting: Sendable {
    public let field: WritableKeyPath<ZoneLimits, UInt64?> & Sendable
    public let convert: @Sendable (Int64) -> UInt64?

    public init(_ field: WritableKeyPath<ZoneLimits, UInt64?> & Sendable, _ convert: @escaping @Sendable (Int64) -> UInt64? = { $0 >= 0 ? UInt64($0) : nil }) {
        self.field = field
        self.convert = convert
    }
}

/// A boot-time setting fed by a property: how its value (or default) is set on the zone's
/// `ZoneLaunch` (init_name → initCommand, tmpfs → tmpfsMiB, ...).
public struct LaunchSetting: Sendable {
    public let apply: @Sendable (inout ZoneLaunch, JSONValue) -> Void

    public init(_ apply: @escaping @Sendable (inout ZoneLaunch, JSONValue) -> Void) { self.apply = apply }
}

/// A setting of the files Lumos writes into a zone's /etc (hostname, resolv.conf) fed by a
/// property: how its value (or default) is set on `ZoneFiles`.
public struct ZoneFilesSetting: Sendable {
    public let apply: @Sendable (inout ZoneFiles, JSONValue) -> Void

    public init(_ apply: @escaping @Sendable (inout ZoneFiles, JSONValue) -> Void) { self.apply = apply }
}

/// A setting of the zone's dataset fed by a property: how its value is set on `ZoneDataset`.
public struct DatasetSetting: Sendable {
    public let apply: @Sendable (inout ZoneDataset, JSONValue) -> Void

    public init(_ apply: @escaping @Sendable (inout ZoneDataset, JSONValue) -> Void) { self.apply = apply }
}

/// How a property takes effect; the runtime reads the typed forms (`limit`, `boot`) straight
/// from the table, the others name the code that applies them.
public enum Application: Sendable {
    /// Kept in the manifest for people and tools (alias, tags, package_name); nothing to apply.
    case recorded
    /// A resource control of the running zone (cgroups, rlimits, ipc sysctls): `ZoneLimits`.
    case limit(LimitSetting)
    /// The zone's dataset: a field of `ZoneDataset` (quota).
    case dataset(DatasetSetting)
    /// Files written into the zone's /etc before boot: a field of `ZoneFiles`.
    case zoneFiles(ZoneFilesSetting)
    /// How the zone is booted: a field of `ZoneLaunch` (init, tmpfs, bind mounts, restart_init).
    case boot(LaunchSetting)
    /// The Net module (nics, routes).
    case network
    /// vmadm's own behaviour (autoboot, indestructible_zoneroot).
    case vmadm
    /// Sets another property (vmadm: `ram` on an OS VM is max_physical_memory).
    case sameAs(String)
    /// Computed, or refused: nothing to apply.
    case none
}

/// A `vmadm list` column: its header and the width vmadm pads it to (LIST_FIELDS in
/// src/vm/sbin/vmadm.js; a longer value widens only its own row, as sprintf's %-Ns does).
public struct ListColumn: Sendable, Equatable, ExpressibleByStringLiteral {
    public var header: String
    public var width: Int

    public init(_ header: String, width: Int) {
        self.header = header
        self.width = width
    }

    public init(stringLiteral header: String) { self.init(header, width: header.count) }
}

/// One row of the property table: the single place that says how a vmadm property is
/// validated, defaulted, listed, shown, updated and applied (docs/vmadm.md: one table, not checks
/// scattered around; vmadm's own is src/vm/node_modules/proptable.js).
public struct PropertySpec: Sendable {
    public var name: String
    public var kind: PropertyKind
    public var access: Access
    public var brands: Set<Brand>
    public var actions: Set<PropertyAction>
    public var defaultRule: DefaultRule
    public var update: UpdateRule
    public var source: PropertySource
    public var application: Application
    /// The `vmadm list -o` column (vmadm's LIST_FIELDS); nil when not listable.
    public var column: ListColumn?
    public var columnHeader: String? { column?.header }
    public var summary: String
    /// vmadm shows some flags only when true (do_not_inventory, indestructible_zoneroot):
    /// setting false removes the property.
    public var omitWhenFalse = false

    /// `list`: the `vmadm list` header, or nil when vmadm does not list the property. Actions
    /// follow from access and update unless given.
    public init(_ name: String, _ kind: PropertyKind, _ access: Access = .settable, brands: Set<Brand> = [.lx, .kvm],
                default defaultRule: DefaultRule = .none, update: UpdateRule = .no, list: ListColumn? = nil,
                source: PropertySource = .stored, applied: Application = .recorded, actions: Set<PropertyAction>? = nil,
                _ summary: String) {
        self.name = name
        self.kind = kind
        self.access = access
        self.brands = brands
        self.defaultRule = defaultRule
        self.update = update
        self.source = source
        self.column = list
        self.summary = summary
        switch access {
        case .readOnly, .unsupported: self.application = .none
        default: self.application = applied
        }
        var a: Set<PropertyAction> = [.get]
        switch access {
        case .settable, .required: a.insert(.create)
        case .readOnly, .unsupported: break
        }
        if update != .no, access != .readOnly { a.insert(.update) }
        if list != nil { a.insert(.list) }
        self.actions = actions ?? a
    }

    /// An update-only key editing `property` (set_tags, add_nics, ...).
    static func edit(_ name: String, _ op: EditOperation, of property: String, brands: Set<Brand> = [.lx, .kvm]) -> PropertySpec {
        let what: String
        switch op {
        case .set: what = "adds or replaces keys of \(property)"
        case .remove: what = property == "nics" ? "removes NICs by mac" : property == "filesystems" ? "removes mounts by target" : "removes keys of \(property)"
        case .add: what = "adds entries to \(property)"
        case .update: what = property == "nics" ? "changes NICs matched by mac" : "changes entries of \(property) matched by target"
        }
        return PropertySpec(name, .edit(op, of: property), brands: brands, update: .live, actions: [.update], "update only: \(what)")
    }

    func omittedWhenFalse() -> PropertySpec {
        var s = self
        s.omitWhenFalse = true
        return s
    }

    public var isListable: Bool { column != nil }
    public var isComputed: Bool { if case .computed = source { return true }; return false }
    public var unsupportedReason: String? { if case .unsupported(let why) = access { return why }; return nil }
}
