import ArgumentParser
import Foundation
import Glibc
import LumosCore
import Storage

/// `lumos pool ...` (zpool): pools of files or block devices formatted btrfs.
struct PoolCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: CLI.commandName("pool", alias: "zpool"),
        abstract: "Create, inspect, scrub, import and destroy storage pools (zpool).",
        subcommands: [Create.self, List.self, Status.self, Scrub.self, Import.self, Export.self, Destroy.self]
    )

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a pool; with no devices, a sparse file under the state root (the embedded default).")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .long, help: "Mirror data and metadata on every device (btrfs raid1, raid1c3 for 3+).") var mirror = false
        @Flag(name: .long, help: "Single parity (btrfs raid5; the kernel warns it is discouraged).") var raidz1 = false
        @Flag(name: .long, help: "Double parity (btrfs raid6; the kernel warns it is discouraged).") var raidz2 = false
        @Option(name: .long, help: "Checksum: crc32c, xxhash, sha256 or blake2.") var checksum = "crc32c"
        @Option(name: .long, help: "Size of files lumos creates (default 16G for the embedded pool).") var size: String?
        @Option(name: .long, help: "Where to mount the pool (default ROOT/mnt/NAME).") var mountpoint: String?
        @Flag(name: .shortAndLong, help: "Overwrite devices that hold another file system.") var force = false
        @Argument(help: "Pool name.") var name: String
        @Argument(help: "Files or block devices.") var devices: [String] = []

        func run() throws {
            var o = Pool.CreateOptions()
            o.devices = devices
            let layouts = [(mirror, PoolLayout.mirror), (raidz1, .raidz1), (raidz2, .raidz2)].filter(\.0)
            guard layouts.count <= 1 else { throw LumosError.invalid("choose one of --mirror, --raidz1, --raidz2") }
            o.layout = layouts.first?.1 ?? .single
            guard let c = ChecksumAlgorithm(rawValue: checksum) else {
                throw LumosError.invalid("bad --checksum '\(checksum)'; use crc32c, xxhash, sha256 or blake2")
            }
            o.checksum = c
            if let size {
                guard let s = Size.parse(size) else { throw LumosError.invalid("bad --size '\(size)'; use a size like 4G") }
                o.size = s
            }
            o.mountpoint = mountpoint
            o.force = force
            let (pool, warnings) = try Pool.create(name, options: o, root: global.stateRoot)
            for w in warnings { FileHandle.standardError.write(Data("warning: \(w.trimmingSpaces())\n".utf8)) }
            print("created pool '\(pool.name)' (\(pool.config.layout.rawValue), \(pool.config.checksum.rawValue)) at \(pool.mountpoint)")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List pools.")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .customShort("H"), help: "Scripted: no header, tab-separated.") var scripted = false
        @Flag(name: .customShort("p"), help: "Exact numbers.") var parsable = false
        @Option(name: .shortAndLong, help: "Columns: name,size,alloc,free,health,layout,checksum,mountpoint.") var o = "name,size,alloc,free,health,layout"
        @Flag(name: .long, help: "JSON output.") var json = false

        func run() throws {
            let root = global.stateRoot
            var rows: [PoolStatus] = []
            for cfg in Pool.list(root: root) {
                let pool = try? Pool.open(cfg.name, root: root)
                rows.append((try? pool?.status()) ?? .unavailable(cfg))
            }
            if json { return try CLI.printJSON(rows) }
            let cols = o.split(separator: ",").map(String.init)
            var t = Table(columns: cols)
            func size(_ v: UInt64) -> String { parsable ? String(v) : Size.format(v) }
            for s in rows {
                t.add(try cols.map { c -> String in
                    switch c {
                    case "name": return s.name
                    case "size": return size(s.size)
                    case "alloc", "used": return size(s.used)
                    case "free", "avail": return size(s.available)
                    case "health": return s.health
                    case "layout": return s.layout.rawValue
                    case "checksum": return s.checksum.rawValue
                    case "mountpoint": return s.mountpoint
                    default: throw LumosError.invalid("unknown column '\(c)'; use name,size,alloc,free,health,layout,checksum,mountpoint")
                    }
                })
            }
            print(t.render(header: !scripted, scripted: scripted), terminator: "")
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show health, devices and error counters.")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .long, help: "JSON output.") var json = false
        @Argument(help: "Pool names (default: all).") var names: [String] = []

        func run() throws {
            let root = global.stateRoot
            let all = names.isEmpty ? Pool.list(root: root).map(\.name) : names
            if all.isEmpty { print("no pools available"); return }
            var out: [PoolStatus] = []
            for n in all { out.append(try Pool.open(n, root: root).status()) }
            if json { return try CLI.printJSON(out) }
            for s in out { print(render(s)) }
        }

        func render(_ s: PoolStatus) -> String {
            var t = "  pool: \(s.name)\n state: \(s.health)\n"
            if let sc = s.lastScrub {
                t += "  scan: scrub repaired \(Size.format(sc.corrected * 4096)) (\(sc.corrected) blocks) with \(sc.uncorrectable) uncorrectable errors in \(String(format: "%.1f", sc.seconds))s\n"
            } else {
                t += "  scan: none requested\n"
            }
            t += "  size: \(Size.format(s.size)), used \(Size.format(s.used)), available \(Size.format(s.available)); checksum \(s.checksum.rawValue); quotas \(s.quotaMode)\n"
            t += "config:\n\n"
            var tab = Table(columns: ["NAME", "STATE", "READ", "WRITE", "CKSUM", "SIZE"])
            let state = s.health.hasPrefix("ONLINE") ? "ONLINE" : s.health
            tab.add([s.name, state, "0", "0", "0", Size.format(s.size)])
            let vdev = s.layout == .single ? nil : "  \(s.layout.rawValue)-0"
            if let vdev { tab.add([vdev, state, "0", "0", "0", ""]) }
            for d in s.devices {
                let indent = vdev == nil ? "  " : "    "
                let label = d.backing.map { "\(d.path) (\($0))" } ?? d.path
                tab.add([indent + label, d.missing ? "UNAVAIL" : "ONLINE", String(d.readErrors), String(d.writeErrors + d.flushErrors),
                         String(d.corruptionErrors + d.generationErrors), Size.format(d.size)])
            }
            for line in tab.render().split(separator: "\n") { t += "\t" + line + "\n" }
            let errs = s.devices.reduce(UInt64(0)) { $0 + $1.readErrors + $1.writeErrors + $1.corruptionErrors + $1.generationErrors }
            t += "\nerrors: " + (errs == 0 ? "No known data errors" : "\(errs) errors recorded (READ/WRITE/CKSUM above); run lumos pool scrub \(s.name)") + "\n"
            return t
        }
    }

    struct Scrub: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Verify every checksum and repair from good copies.")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .long, help: "JSON output.") var json = false
        @Argument(help: "Pool name.") var name: String

        func run() throws {
            let pool = try Pool.open(name, root: global.stateRoot)
            let tty = CLI.stderrIsTerminal && !json
            let s = try pool.scrub(progress: tty ? { f in
                FileHandle.standardError.write(Data(String(format: "\rscrub %@: %5.1f%%", pool.name, f * 100).utf8))
            } : nil)
            if tty { FileHandle.standardError.write(Data("\n".utf8)) }
            if json { return try CLI.printJSON(s) }
            print("scrub of \(pool.name) done in \(String(format: "%.2f", s.seconds))s: \(Size.format(s.bytesScrubbed)) scrubbed, \(s.csumErrors) checksum errors, \(s.corrected) corrected, \(s.uncorrectable) uncorrectable")
            if s.uncorrectable > 0 { throw ExitCode(3) }
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Attach loop devices, find devices and mount pools (after a reboot, brings everything back).")
        @OptionGroup var global: GlobalOptions
        @Option(name: .customShort("d"), help: "A device or file to scan for a pool (repeatable).") var devices: [String] = []
        @Argument(help: "Pools to import (default: every known pool).") var names: [String] = []

        func run() throws {
            let pools = try Pool.importPools(names, scan: devices, root: global.stateRoot)
            for p in pools { print("imported pool '\(p.name)' at \(p.mountpoint)") }
            if pools.isEmpty { print("no pools to import") }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Unmount a pool and detach its devices.")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .shortAndLong, help: "Detach volumes and unmount even if busy.") var force = false
        @Argument(help: "Pool name.") var name: String

        func run() throws {
            try Pool.open(name, root: global.stateRoot).export(force: force)
            print("exported pool '\(name)'")
        }
    }

    struct Destroy: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Destroy a pool and everything in it.")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .shortAndLong, help: "Destroy even while tenants or attached volumes use it.") var force = false
        @Argument(help: "Pool name.") var name: String

        func run() throws {
            try Pool.open(name, root: global.stateRoot).destroy(force: force)
            print("destroyed pool '\(name)'")
        }
    }
}
