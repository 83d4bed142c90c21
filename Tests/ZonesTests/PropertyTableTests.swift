import Foundation
import LumosCore
import Testing
@testable import Zones

/// The property table is the only place a property is defined: these fail when a property is
/// used, accepted, listed or applied without a table entry.
@Suite struct PropertyTableTests {
    static let sources: String = {
        var dir = URL(fileURLWithPath: #filePath)
        while dir.path != "/" && !FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
            dir.deleteLastPathComponent()
        }
        return dir.appendingPathComponent("Sources").path
    }()

    /// Swift files that read or write manifests.
    static func files() throws -> [String] {
        let zones = sources + "/Zones"
        let all = try FileManager.default.subpathsOfDirectory(atPath: zones).filter { $0.hasSuffix(".swift") }.map { zones + "/" + $0 }
        return all.filter { !$0.hasSuffix("/PropertyTable.swift") } + [sources + "/lumos/VmadmCommands.swift"]
    }

    @Test func everyPropertyNameInTheCodeIsATableEntry() throws {
        // Manifest reads and writes: m["x"], props["x"], manifest["x"], .value("x"),
        // .integer("x"), changed.contains("x"), ...
        let pattern = try NSRegularExpression(pattern:
            #"\b(?:m|props|properties|manifest|current|changes|payload)\["([a-z_]+)"\]|\b(?:value|integer)\("([a-z_]+)"\)|changed\.contains\("([a-z_]+)"\)|PropertyTable\.spec\("([a-z_]+)"\)"#)
        var seen: Set<String> = []
        var outside: [String] = []
        for file in try Self.files() {
            let text = try String(contentsOfFile: file, encoding: .utf8)
            for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                for g in 1..<match.numberOfRanges {
                    guard let r = Range(match.range(at: g), in: text) else { continue }
                    let name = String(text[r])
                    seen.insert(name)
                    if PropertyTable.spec(name) == nil { outside.append("\(URL(fileURLWithPath: file).lastPathComponent): \(name)") }
                }
            }
        }
        #expect(outside.isEmpty, "properties used outside PropertyTable: \(outside)")
        // The scan sees the code (it would pass vacuously if the pattern matched nothing).
        #expect(seen.isSuperset(of: ["max_physical_memory", "nics", "uuid", "routes"]))
    }

    @Test func everyRuntimeLimitComesFromExactlyOneEntry() throws {
        // A manifest with every limit property set: every ZoneLimits field is then set, so a
        // field without a table entry (or two entries for one field) fails here.
        var props: [String: JSONValue] = ["brand": "lx", "image_uuid": "0b8a7c2e-1f2d-4c5e-9a6b-7c8d9e0f1a2b"]
        var fields: [PartialKeyPath<ZoneLimits>] = []
        for spec in PropertyTable.all {
            guard case .limit(let setting) = spec.application else { continue }
            props[spec.name] = 7
            fields.append(setting.field)
        }
        #expect(Set(fields).count == fields.count, "two properties feed one ZoneLimits field")
        let limits = ZoneLimits(Manifest(props))
        let children = Mirror(reflecting: limits).children
        #expect(children.count == fields.count, "ZoneLimits has \(children.count) fields, the table feeds \(fields.count)")
        for c in children { #expect((c.value as? UInt64?) == .some(7), "\(c.label ?? "?") is not fed by the table") }
    }

    @Test func everyBootSettingComesFromAnEntry() {
        // Each `.boot` row changes a field of ZoneLaunch; every field the manifest decides
        // (all but the VM's identity, where it lives and its limits, which are `.limit` rows)
        // must be fed by one.
        let blank = ZoneLaunch(Manifest(["uuid": "7b4ad1a2-3c1e-4a8e-9f00-2f1b8c0d6e11"]), rootfs: "/r", consoleLog: ConsoleLog(path: "/c"))
        func fields(_ l: ZoneLaunch) -> [String: String] {
            Dictionary(uniqueKeysWithValues: Mirror(reflecting: l).children.map { ($0.label ?? "?", String(describing: $0.value)) })
        }
        var fed: Set<String> = []
        for spec in PropertyTable.all {
            guard case .boot(let setting) = spec.application else { continue }
            let sample: JSONValue
            switch spec.kind {
            case .integer: sample = 4242
            case .boolean: sample = true
            case .filesystems: sample = [["type": "lofs", "source": "/a", "target": "/b"]]
            default: sample = "/sbin/sample"
            }
            var l = blank
            setting.apply(&l, sample)
            let changed = fields(l).filter { fields(blank)[$0.key] != $0.value }.map(\.key)
            #expect(changed.count == 1, "\(spec.name) changes \(changed)")
            fed.formUnion(changed)
        }
        // hypervisor: a kvm VM's QEMU command line, built by vmadm from the disks, NICs and kvm rows;
        // metadata, consoleSocket: set by vmadm for every lx zone it boots (the metadata service,
        // lxcfs views; the /dev/console relay's socket, docs/vmadm.md "Console"); quotaGroup: where
        // the kernel shows the zone dataset's qgroup, which the `quota` row sets on the dataset
        // (docs/architecture.md, "df in a zone").
        let decided = Set(fields(blank).keys).subtracting(["uuid", "hostname", "rootfs", "limits", "hypervisor", "metadata", "consoleSocket", "quotaGroup"])
        #expect(fed == decided, "ZoneLaunch fields without a table entry: \(decided.subtracting(fed))")
    }

    @Test func everyZoneFileSettingComesFromAnEntry() {
        let blank = ZoneFiles(Manifest(["uuid": "7b4ad1a2-3c1e-4a8e-9f00-2f1b8c0d6e11"]))
        func fields(_ f: ZoneFiles) -> [String: String] {
            Dictionary(uniqueKeysWithValues: Mirror(reflecting: f).children.map { ($0.label ?? "?", String(describing: $0.value)) })
        }
        var fed: Set<String> = []
        for spec in PropertyTable.all {
            guard case .zoneFiles(let setting) = spec.application else { continue }
            let sample: JSONValue
            switch spec.kind {
            case .boolean: sample = true
            case .ipAddressList: sample = ["192.0.2.1"]
            default: sample = "sample.example"
            }
            var f = blank
            setting.apply(&f, sample)
            let changed = fields(f).filter { fields(blank)[$0.key] != $0.value }.map(\.key)
            #expect(changed.count == 1, "\(spec.name) changes \(changed)")
            fed.formUnion(changed)
        }
        #expect(fed == Set(fields(blank).keys), "ZoneFiles fields without a table entry: \(Set(fields(blank).keys).subtracting(fed))")
        #expect(ZoneFiles(Manifest(["uuid": "u", "resolvers": ["192.0.2.53"], "dns_domain": "example.com"])).resolvConf == "search example.com\nnameserver 192.0.2.53\n")
    }

    @Test func theDatasetSettingsComeFromTheTable() {
        #expect(ZoneDataset(Manifest(["quota": 20])).quotaBytes == 20 << 30)
        #expect(ZoneDataset(Manifest(["quota": 0])).quotaBytes == nil)
        // Absent: the table's default (10 GiB), not a literal somewhere else.
        #expect(ZoneDataset(Manifest([:])).quotaBytes == 10 << 30)
        let fed = PropertyTable.all.filter { if case .dataset = $0.application { return true }; return false }.count
        #expect(fed == Mirror(reflecting: ZoneDataset(Manifest([:]))).children.count)
    }

    @Test func everyAcceptedKeyIsAnEntryAndEveryEntryIsAcceptedOrRefusedWithAReason() {
        // Names that are not properties (NIC and mount fields, vmadm commands) are unknown.
        for name in ["mac", "ips", "target", "options", "console", "maxPhysicalMemory"] {
            let p = ManifestValidator.checkCreate(["brand": "lx", "image_uuid": "0b8a7c2e-1f2d-4c5e-9a6b-7c8d9e0f1a2b", name: 1]).1
            #expect(p.first.message.hasPrefix("\(name): unknown property"), "\(name)")
        }
        for spec in PropertyTable.all {
            let p = ManifestValidator.checkCreate(["brand": "lx", "image_uuid": "0b8a7c2e-1f2d-4c5e-9a6b-7c8d9e0f1a2b", spec.name: .null]).1
            if spec.actions.contains(.create) || spec.name == "brand" || spec.name == "image_uuid" { continue }
            // Not a create property: refused, not ignored (null counts as leaving it out, so give a value).
            let q = ManifestValidator.checkCreate(["brand": "lx", "image_uuid": "0b8a7c2e-1f2d-4c5e-9a6b-7c8d9e0f1a2b", spec.name: 1]).1
            #expect(p.isEmpty && q.badProperties == [spec.name], "\(spec.name)")
        }
    }

    @Test func listColumnsAndHeadersComeFromTheTable() throws {
        for c in ListQuery.defaultColumns + ListQuery.defaultSort { #expect(PropertyTable.spec(c)?.isListable == true, "\(c)") }
        let q = ListQuery()
        let header = q.render([], header: true, parsable: false)
        #expect(header.split(whereSeparator: \.isWhitespace).map(String.init) == ListQuery.defaultColumns.map { PropertyTable.spec($0)!.columnHeader! })
        // vmadm.js LIST_FIELDS headers that differ from the upper-cased name.
        for (name, header) in ["cpu_shares": "CPU_SHARE", "zfs_io_priority": "IO_PRIORITY", "max_physical_memory": "MAX_PHYS",
                               "max_locked_memory": "MAX_LOCKED", "max_lwps": "MAX_LWP", "dns_domain": "DOMAIN", "do_not_inventory": "DNI",
                               "package_version": "PACKAGE_VER", "indestructible_zoneroot": "INDESTR_ROOT"] {
            #expect(PropertyTable.spec(name)?.columnHeader == header, "\(name)")
        }
    }

    @Test func computedPropertiesAreNeverStoredAndEditsNameRealProperties() {
        for spec in PropertyTable.all {
            if case .edit(_, let target) = spec.kind { #expect(PropertyTable.spec(target) != nil, "\(spec.name) edits \(target)") }
            if case .sameAs(let target) = spec.application { #expect(PropertyTable.spec(target) != nil, "\(spec.name)") }
            if spec.isComputed { #expect(!Manifest([spec.name: 1]).stored.properties.keys.contains(spec.name)) }
        }
    }

    @Test func theReferenceInDocsIsTheTable() throws {
        let doc = try String(contentsOfFile: Self.sources + "/../docs/vmadm.md", encoding: .utf8)
        let reference = PropertyReference.markdown()
        let upToDate = doc.contains(reference)
        #expect(upToDate, "docs/vmadm.md is out of date: regenerate its reference with `lumos vm properties`")
        for spec in PropertyTable.all { #expect(reference.contains("| `\(spec.name)` |"), "\(spec.name)") }
    }
}
