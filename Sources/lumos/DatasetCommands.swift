import ArgumentParser
import Foundation
import Glibc
import LumosCore
import Storage

/// `lumos dataset ...` (zfs): datasets, snapshots, clones, send/receive.
struct DatasetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: CLI.commandName("dataset", alias: "zfs"),
        abstract: "Datasets, volumes, snapshots, clones, rollback and send/receive (zfs).",
        subcommands: [Create.self, List.self, Get.self, Set.self, Inherit.self, Destroy.self, Snapshot.self, Rollback.self,
                      Hold.self, Release.self, Holds.self,
                      Clone.self, Promote.self, Send.self, Receive.self]
    )

    static func open(_ text: String, _ global: GlobalOptions) throws -> (Pool, DatasetName) {
        let name = try DatasetName(text)
        return (try Pool.open(name.pool, root: global.stateRoot), name)
    }

    static func parseAssignments(_ list: [String]) throws -> [String: String] {
        var out: [String: String] = [:]
        for a in list {
            guard let eq = a.firstIndex(of: "="), eq != a.startIndex else { throw LumosError.invalid("bad property '\(a)'; use name=value") }
            out[String(a[..<eq])] = String(a[a.index(after: eq)...])
        }
        return out
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a filesystem, or with -V a volume.")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .customShort("p"), help: "Create missing parents.") var parents = false
        @Option(name: .customShort("V"), help: "Create a volume of this size.") var volsize: String?
        @Flag(name: .customShort("s"), help: "With -V: a sparse volume, larger than the pool's available space if need be.") var sparse = false
        @Option(name: .customShort("o"), help: "Property name=value (repeatable).") var props: [String] = []
        @Argument(help: "POOL/NAME") var name: String

        func run() throws {
            let (pool, ds) = try DatasetCommand.open(name, global)
            let p = try DatasetCommand.parseAssignments(props)
            if let volsize {
                guard let size = Size.parse(volsize), size > 0 else { throw LumosError.invalid("bad volume size '\(volsize)'; use a size like 10G") }
                try pool.createVolume(ds, size: size, parents: parents, sparse: sparse, properties: p)
            } else {
                if sparse { throw LumosError.invalid("-s applies to volumes only; give -V SIZE") }
                try pool.createFilesystem(ds, parents: parents, properties: p)
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List datasets (zfs list).")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .customShort("r"), help: "Include everything below the named datasets.") var recursive = false
        @Flag(name: .customShort("H"), help: "Scripted: no header, tab-separated.") var scripted = false
        @Flag(name: .customShort("p"), help: "Exact numbers.") var parsable = false
        @Option(name: .customShort("t"), help: "Types: filesystem,snapshot,volume,all.") var types: String?
        @Option(name: .customShort("o"), help: "Columns: name,used,avail,refer,mountpoint,type,origin,quota,refquota,compression,volsize,creation,guid.")
        var columns = "name,used,avail,refer,mountpoint"
        @Flag(name: .long, help: "JSON output.") var json = false
        @Argument(help: "Datasets (default: every pool).") var names: [String] = []

        func run() throws {
            let root = global.stateRoot
            var wanted: Swift.Set<DatasetType> = [.filesystem, .volume]
            if let types { wanted = try DatasetType.parseList(types) }
            var rows: [DatasetInfo] = []
            if names.isEmpty {
                for cfg in Pool.list(root: root) where !cfg.exported {
                    guard let pool = try? Pool.open(cfg.name, root: root) else { continue }
                    rows += try pool.list(nil, recursive: true, types: wanted)
                }
            } else {
                for n in names {
                    let (pool, ds) = try DatasetCommand.open(n, global)
                    // Naming a snapshot lists it; -t snapshot with a dataset lists its snapshots.
                    let t = ds.isSnapshot ? wanted.union([.snapshot]) : wanted
                    rows += try pool.list(ds, recursive: recursive, types: t)
                }
            }
            if json { return try CLI.printJSON(rows) }
            let cols = columns.split(separator: ",").map(String.init)
            var table = Table(columns: cols)
            func size(_ v: UInt64?) -> String { v.map { parsable ? String($0) : Size.format($0) } ?? (parsable ? "0" : "none") }
            for r in rows {
                table.add(try cols.map { c -> String in
                    switch c {
                    case "name": return r.name
                    case "used": return size(r.used)
                    case "avail", "available": return r.type == .snapshot ? "-" : size(r.available)
                    case "refer", "referenced": return size(r.referenced)
                    case "mountpoint": return r.mountpoint ?? "-"
                    case "type": return r.type.rawValue
                    case "origin": return r.origin ?? "-"
                    case "quota": return r.quota.map { size($0) } ?? "none"
                    case "refquota": return r.refquota.map { size($0) } ?? "none"
                    case "compression": return r.compression
                    case "volsize": return r.volsize.map { size($0) } ?? "-"
                    case "creation": return String(r.creation)
                    case "guid": return r.guid
                    default:
                        if PropertyTable.isUserProperty(c) { return r.userProperties[c] ?? "-" }
                        throw LumosError.invalid("unknown column '\(c)'")
                    }
                })
            }
            print(table.render(header: !scripted, scripted: scripted), terminator: "")
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show properties: get all|PROP[,PROP] DATASET...")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .customShort("H"), help: "Scripted: no header, tab-separated.") var scripted = false
        @Flag(name: .customShort("p"), help: "Exact numbers.") var parsable = false
        @Option(name: .customShort("o"), help: "Fields: name,property,value,source.") var fields = "name,property,value,source"
        @Flag(name: .long, help: "JSON output.") var json = false
        @Argument(help: "all, or a comma-separated list of properties.") var properties: String
        @Argument(help: "Datasets.") var names: [String]

        struct Row: Codable { var name, property, value, source: String }

        func run() throws {
            let want = properties == "all" ? nil : properties.split(separator: ",").map(String.init)
            var rows: [Row] = []
            for n in names {
                let (pool, ds) = try DatasetCommand.open(n, global)
                let all = try pool.properties(ds, parsable: parsable)
                if let want {
                    for w in want {
                        let key = PropertyTable.isUserProperty(w) ? w : (PropertyTable.spec(w)?.name ?? w)
                        if let v = all.first(where: { $0.name == key }) {
                            rows.append(Row(name: ds.description, property: v.name, value: v.value, source: v.source))
                        } else if PropertyTable.isUserProperty(w) {
                            rows.append(Row(name: ds.description, property: w, value: "-", source: "-"))
                        } else if PropertyTable.spec(w) == nil {
                            throw LumosError.invalid("invalid property '\(w)'; see: lumos dataset get all \(ds)")
                        }
                    }
                } else {
                    rows += all.map { Row(name: ds.description, property: $0.name, value: $0.value, source: $0.source) }
                }
            }
            if json { return try CLI.printJSON(rows) }
            let cols = fields.split(separator: ",").map(String.init)
            var t = Table(columns: cols)
            for r in rows {
                t.add(try cols.map { c in
                    switch c {
                    case "name": return r.name
                    case "property": return r.property
                    case "value": return r.value
                    case "source": return r.source
                    default: throw LumosError.invalid("unknown field '\(c)'; use name,property,value,source")
                    }
                })
            }
            print(t.render(header: !scripted, scripted: scripted), terminator: "")
        }
    }

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set properties: set NAME=VALUE... DATASET (quota and compression change live).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "NAME=VALUE assignments followed by the dataset.") var words: [String]

        func run() throws {
            guard words.count >= 2, let target = words.last else { throw LumosError.invalid("usage: lumos dataset set NAME=VALUE... DATASET") }
            let assignments = try DatasetCommand.parseAssignments(Array(words.dropLast()))
            let (pool, ds) = try DatasetCommand.open(target, global)
            for (k, v) in assignments.sorted(by: { $0.key < $1.key }) { try pool.set(ds, k, v) }
        }
    }

    struct Inherit: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Clear a user property (zfs inherit).")
        @OptionGroup var global: GlobalOptions
        @Argument var property: String
        @Argument var name: String

        func run() throws {
            let (pool, ds) = try DatasetCommand.open(name, global)
            try pool.inherit(ds, property)
        }
    }

    struct Destroy: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Destroy a dataset or snapshot.")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .customShort("r"), help: "Also destroy children and snapshots.") var recursive = false
        @Argument var name: String

        func run() throws {
            let (pool, ds) = try DatasetCommand.open(name, global)
            try pool.destroy(ds, recursive: recursive)
        }
    }

    struct Snapshot: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Take a read-only snapshot DATASET@NAME.")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .customShort("r"), help: "Snapshot every nested dataset with the same name.") var recursive = false
        @Argument var names: [String]

        func run() throws {
            for n in names {
                let (pool, ds) = try DatasetCommand.open(n, global)
                try pool.snapshot(ds, recursive: recursive)
            }
        }
    }

    struct Rollback: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Roll a dataset back to a snapshot.")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .customShort("r"), help: "Destroy snapshots newer than the target.") var recursive = false
        @Argument var name: String

        func run() throws {
            let (pool, ds) = try DatasetCommand.open(name, global)
            try pool.rollback(ds, destroyNewer: recursive)
        }
    }

    /// zfs hold TAG SNAPSHOT: the snapshot cannot be destroyed until the tag is released.
    struct Hold: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put a named hold on a snapshot (it cannot be destroyed while held).")
        @OptionGroup var global: GlobalOptions
        @Argument var tag: String
        @Argument var snapshot: String

        func run() throws {
            let (pool, snap) = try DatasetCommand.open(snapshot, global)
            try pool.hold(tag, snap)
        }
    }

    struct Release: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a named hold from a snapshot.")
        @OptionGroup var global: GlobalOptions
        @Argument var tag: String
        @Argument var snapshot: String

        func run() throws {
            let (pool, snap) = try DatasetCommand.open(snapshot, global)
            try pool.release(tag, snap)
        }
    }

    struct Holds: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a snapshot's holds (NAME TAG).")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .customShort("H"), help: "No header.") var noHeader = false
        @Argument var snapshot: String

        func run() throws {
            let (pool, snap) = try DatasetCommand.open(snapshot, global)
            var table = Table(columns: ["NAME", "TAG"])
            for t in try pool.holds(snap) { table.add([snap.description, t]) }
            print(table.render(header: !noHeader), terminator: "")
        }
    }

    struct Clone: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a writable dataset from a snapshot.")
        @OptionGroup var global: GlobalOptions
        @Option(name: .customShort("o"), help: "Property name=value (repeatable).") var props: [String] = []
        @Argument var snapshot: String
        @Argument var target: String

        func run() throws {
            let (pool, snap) = try DatasetCommand.open(snapshot, global)
            let t = try DatasetName(target)
            guard t.pool == snap.pool else { throw LumosError.invalid("cannot clone across pools ('\(snap.pool)' to '\(t.pool)'); use send/receive") }
            try pool.clone(snap, to: t, properties: try DatasetCommand.parseAssignments(props))
        }
    }

    struct Promote: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a clone independent of its origin.")
        @OptionGroup var global: GlobalOptions
        @Argument var name: String

        func run() throws {
            let (pool, ds) = try DatasetCommand.open(name, global)
            try pool.promote(ds)
        }
    }

    struct Send: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a snapshot as a stream to stdout (refuses a terminal).")
        @OptionGroup var global: GlobalOptions
        @Option(name: .customShort("i"), help: "Send only the changes since this earlier snapshot.") var incremental: String?
        @Argument var snapshot: String

        func run() throws {
            let (pool, snap) = try DatasetCommand.open(snapshot, global)
            var base: DatasetName?
            if let incremental {
                base = incremental.hasPrefix("@") ? snap.dataset.at(String(incremental.dropFirst()))
                    : (incremental.contains("@") ? try DatasetName(incremental) : snap.dataset.at(incremental))
            }
            try pool.send(snap, from: base, to: 1)
        }
    }

    struct Receive: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Read a stream from stdin into a dataset.")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .customShort("F"), help: "Discard changes made to the destination since the stream's base snapshot.") var force = false
        @Argument var name: String

        func run() throws {
            let (pool, ds) = try DatasetCommand.open(name, global)
            let snap = try pool.receive(ds, from: 0, force: force)
            FileHandle.standardError.write(Data("received \(snap)\n".utf8))
        }
    }
}

/// `lumos volume ...`: block devices for volumes.
struct VolumeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "volume",
        abstract: "Attach volumes as block devices (direct I/O loop devices).",
        subcommands: [Attach.self, Detach.self, List.self]
    )

    struct Attach: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Attach a volume; prints the block device.")
        @OptionGroup var global: GlobalOptions
        @Argument var name: String
        func run() throws {
            let (pool, ds) = try DatasetCommand.open(name, global)
            print(try pool.attachVolume(ds))
        }
    }

    struct Detach: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Detach a volume's block device.")
        @OptionGroup var global: GlobalOptions
        @Argument var name: String
        func run() throws {
            let (pool, ds) = try DatasetCommand.open(name, global)
            try pool.detachVolume(ds)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List attached volumes.")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .long, help: "JSON output.") var json = false
        struct Row: Codable { var volume: String; var device: String; var directIO: Bool }
        func run() throws {
            let root = global.stateRoot
            var rows: [Row] = []
            for cfg in Pool.list(root: root) where !cfg.exported {
                guard let pool = try? Pool.open(cfg.name, root: root) else { continue }
                for (dev, ds) in try pool.attachedVolumes() { rows.append(Row(volume: ds.description, device: dev, directIO: LoopDevice.directIO(dev))) }
            }
            if json { return try CLI.printJSON(rows) }
            var t = Table(columns: ["volume", "device", "dio"])
            for r in rows { t.add([r.volume, r.device, r.directIO ? "on" : "off"]) }
            print(t.render(), terminator: "")
        }
    }
}
