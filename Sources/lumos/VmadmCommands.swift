import ArgumentParser
import Foundation
import Glibc
import Images
import LumosCore
import Net
import VM
import Zones

/// Opens the host's tenants (Vmadm.open: the `zones` pool, the zone runtime, recovery).
func openVmadm(_ root: StateRoot) throws -> Vmadm { try Vmadm.openHost(root: root) }

/// Success lines go to stderr as vmadm prints them, so stdout stays for data.
func report(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// Reads a JSON payload from -f FILE or stdin (refusing a terminal, as vmadm does).
func readPayload(_ file: String?, what: String) throws -> JSONValue {
    if let file, file != "-" {
        guard Files.exists(file) else { throw LumosError.notFound("\(file) does not exist") }
        return try JSONValue.parse(try FD.readFile(file), what: file)
    }
    guard isatty(0) == 0 else { throw LumosError.invalid("\(what): no payload; give -f FILE or pipe JSON on stdin") }
    return try JSONValue.parse(FD.readAll(0), what: "stdin")
}

/// `lumos vm ...` / `vmadm ...`: manage zones as SmartOS vmadm(8) does.
struct VmadmCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: CLI.commandName("vm", alias: "vmadm"),
        abstract: "Create, inspect, change and remove zones (vmadm).",
        subcommands: [Create.self, Validate.self, Start.self, Stop.self, Reboot.self, Delete.self, Kill.self, List.self,
                      Get.self, Lookup.self, Info.self, Update.self, CreateSnapshot.self, RollbackSnapshot.self,
                      DeleteSnapshot.self, Send.self, Receive.self, Console.self, Events.self, Properties.self]
    )

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a VM from a JSON manifest (file or stdin).")
        @OptionGroup var global: GlobalOptions
        @Option(name: .short, help: "Manifest file (default: stdin).") var f: String?

        func run() throws {
            let payload = try readPayload(f, what: "create")
            let m = try openVmadm(global.stateRoot).create(payload)
            report("Successfully created VM \(m.uuid)")
        }
    }

    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a create or update payload without changing anything (vmadm validate create | update BRAND|UUID).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "create or update.") var action: String
        @Argument(help: "For update: the brand (lx), or the uuid of a VM to check the payload against.") var target: String?
        @Option(name: .short, help: "Payload file (default: stdin).") var f: String?
        @Flag(name: .long, help: "On failure, print every problem as vmadm's JSON (bad_properties, bad_values, missing_properties).") var json = false

        func run() throws {
            let problems: ValidationProblems
            let what: String
            switch action {
            case "create":
                if target != nil { throw LumosError.usage("validate create: takes no brand; the payload's brand is checked") }
                let payload = try readPayload(f, what: "validate")
                let (m, p) = ManifestValidator.checkCreate(payload)
                problems = p
                what = m?.brand ?? payload.lookup("brand")?.stringValue ?? "lx"
            case "update":
                guard let target else { throw LumosError.usage("validate update: give the brand (lx) or a VM's uuid, as in vmadm validate update lx -f FILE") }
                let payload = try readPayload(f, what: "validate")
                if ValueChecks.isUUID(target) {
                    // Checked against the VM named: remove_nics and update_nics must find its NICs.
                    let v = try openVmadm(global.stateRoot)
                    let current = try v.store.read(target.lowercased())
                    problems = ManifestValidator.checkUpdate(current, payload).1
                    what = current.brand
                } else {
                    guard let brand = Brand(rawValue: target), PropertyTable.runningBrands.contains(brand) else {
                        throw LumosError.invalid("validate update: brand \(target) is not one this Lumos runs; use lx (or a VM's uuid)")
                    }
                    problems = ManifestValidator.checkUpdatePayload(payload, brand: brand)
                    what = brand.rawValue
                }
            default:
                throw LumosError.usage("validate: \"\(action)\" is not create or update")
            }
            guard problems.isEmpty else {
                if json { print(problems.json.serialized()) }
                throw problems.first
            }
            report("VALID '\(action)' payload for \(what) brand VMs.")
        }
    }

    struct Properties: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print every vmadm property Lumos knows as a Markdown table (the reference in docs/vmadm.md).")
        func run() throws { print(PropertyReference.markdown(), terminator: "") }
    }

    struct Start: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Boot a stopped VM.")
        @OptionGroup var global: GlobalOptions
        @Argument var uuid: String
        func run() throws {
            let v = try openVmadm(global.stateRoot)
            let id = try v.store.resolve(uuid)
            // vmadm.js: starting a running VM is a no-op that exits 0 (EALREADYRUNNING).
            if v.zones.isRunning(id) { report("VM \(id) is already running"); return }
            try v.start(id)
            report("Successfully started VM \(id)")
        }
    }

    struct Stop: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a VM: SIGTERM to its init, SIGKILL to all after the timeout.")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .customShort("F"), help: "Kill at once.") var force = false
        @Option(name: .short, help: "Seconds to wait for init to exit before SIGKILL to everything.") var t: Double = 30
        @Argument var uuid: String
        func run() throws {
            let v = try openVmadm(global.stateRoot)
            let id = try v.store.resolve(uuid)
            // vmadm.js: stopping a stopped VM is a no-op that exits 0 (ENOTRUNNING).
            if !force && !v.zones.isRunning(id) { report("VM \(id) is not running"); return }
            try v.stop(id, force: force, timeout: t)
            report("Successfully completed stop for VM \(id)")
        }
    }

    struct Reboot: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop and start a running VM.")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .customShort("F"), help: "Kill at once.") var force = false
        @Argument var uuid: String
        func run() throws {
            let v = try openVmadm(global.stateRoot)
            let id = try v.store.resolve(uuid)
            try v.reboot(id, force: force)
            report("Successfully completed reboot for VM \(id)")
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a VM and remove it with its dataset.")
        @OptionGroup var global: GlobalOptions
        @Argument var uuid: String
        func run() throws {
            let v = try openVmadm(global.stateRoot)
            let id = try v.store.resolve(uuid)
            try v.delete(id)
            report("Successfully deleted VM \(id)")
        }
    }

    struct Kill: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send a signal to a VM's init (default SIGTERM).")
        @OptionGroup var global: GlobalOptions
        @Option(name: .short, help: "Signal name or number (TERM, SIGKILL, 9).") var s = "SIGTERM"
        @Argument var uuid: String
        func run() throws {
            let signal = try Signals.parse(s)
            let v = try openVmadm(global.stateRoot)
            let id = try v.store.resolve(uuid)
            try v.kill(id, signal: signal)
            report("Successfully sent \(s) to VM \(id)")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List VMs (default columns uuid,type,ram,state,alias; sorted by ram,uuid).")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .customShort("p"), help: "Parsable: colon-separated, no header.") var parsable = false
        @Flag(name: .customShort("H"), help: "No header.") var noHeader = false
        // Unconditional: vmadm's sort fields start with '-' for descending (-s -ram,uuid).
        @Option(name: .short, parsing: .unconditional, help: "Columns, comma-separated.") var o: String?
        @Option(name: .short, parsing: .unconditional, help: "Sort fields, comma-separated; -field for descending.") var s: String?
        @Argument(help: "Filters: field=value or field=~regex.") var filters: [String] = []
        func run() throws {
            var q = ListQuery()
            q.filters = try ListQuery.filters(filters)
            if let o { q.columns = try ListQuery.fields(o, option: "-o") }
            if let s { q.sort = try ListQuery.fields(s, option: "-s") }
            let vms = q.select(try openVmadm(global.stateRoot).list())
            print(q.render(vms, header: !noHeader && !parsable, parsable: parsable), terminator: "")
        }
    }

    struct Events: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print every tenant's state changes as they happen: create, start/stop, modify, delete (one line each; -j: JSON).")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .short, help: "One JSON object per line.") var j = false
        @Flag(name: .short, help: "Print a ready event once the stream is open (events after it are never missed).") var r = false
        @Flag(name: .short, help: "Print the events kept in the journal first.") var a = false
        @Argument(help: "Only these VMs (full uuids).") var uuids: [String] = []

        func run() throws {
            let only = Set(try uuids.map { u -> String in
                guard ValueChecks.isUUID(u) else { throw LumosError.usage("events: \(u) is not a VM uuid; give full uuids as vmadm list shows them") }
                return u.lowercased()
            })
            try EventStream(root: global.stateRoot, only: only, history: a).run(ready: r) { e in
                let text = j ? e.json.serialized(pretty: false) : e.line
                return FD.writeAll(1, Array((text + "\n").utf8))
            }
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a VM's manifest as JSON, with its state from the kernel.")
        @OptionGroup var global: GlobalOptions
        @Argument var uuid: String
        func run() throws {
            print(try openVmadm(global.stateRoot).get(uuid).serialized())
        }
    }

    struct Lookup: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Find VMs by field=value / field=~regex; prints uuids.")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .customShort("j"), help: "JSON objects instead of uuids.") var json = false
        @Flag(name: .customShort("1"), help: "Exactly one VM must match.") var one = false
        @Option(name: .short, help: "Fields of each object with -j.") var o: String?
        @Argument(help: "Filters.") var filters: [String] = []
        func run() throws {
            // vmadm.js: "Cannot specify -o without -j" (without -j lookup prints only uuids).
            if o != nil && !json { throw LumosError.invalid("lookup: cannot specify -o without -j (without -j lookup prints uuids)") }
            var q = ListQuery()
            q.filters = try ListQuery.filters(filters, what: "lookup")
            q.sort = ["uuid"]
            let fields = try o.map { try ListQuery.fields($0, option: "-o") }
            let vms = q.select(try openVmadm(global.stateRoot).list())
            if one && vms.count != 1 {
                throw LumosError.invalid("lookup -1: \(vms.count) VMs match \(filters.joined(separator: " ")); exactly one must")
            }
            if json {
                let objects: [JSONValue] = vms.map { vm in
                    guard let fields else { return vm }
                    var o: [String: JSONValue] = [:]
                    for f in fields { o[f] = vm.lookup(f) ?? .null }
                    return .object(o)
                }
                print(JSONValue.array(objects).serialized())
            } else {
                for vm in vms { print(vm.lookup("uuid")?.plainText ?? "") }
            }
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Runtime information about a VM (JSON): for a kvm VM QEMU's answers to [all|block|blockstats|chardev|cpus|kvm|pci|spice|status|version|vnc], for a zone the kernel's.")
        @OptionGroup var global: GlobalOptions
        @Argument var uuid: String
        @Argument(help: "kvm: what to ask QEMU (comma- or space-separated; default all)") var types: [String] = []
        func run() throws {
            let v = try openVmadm(global.stateRoot)
            let id = try v.store.resolve(uuid)
            let m = try v.store.read(id)
            if m.isKVM {
                // vmadm info for a hardware VM: QEMU's answers over QMP, as SmartOS gives them.
                let types = try VMInfo.parseTypes(types)
                guard let socket = v.qmpSocket(id), v.zones.isRunning(id) else {
                    throw LumosError.invalid("VM \(id) is not running; vmadm info asks its QEMU")
                }
                print(try VMInfo.query(try QMPClient(socketPath: socket, timeout: 5), types: types).serialized())
                return
            }
            let vm = try v.get(id)
            var info: [String: JSONValue] = ["uuid": .string(id), "state": vm.lookup("state") ?? .null]
            if let runtime = v.zones as? RuntimeZones {
                let cg = runtime.runtime.cgroup(id)
                info["pid"] = vm.lookup("pid") ?? .null
                info["cgroup_id"] = cg.cgroupID.map { .number(Double($0)) } ?? .null
                info["cgroups"] = .array(cg.allDirectories.filter(Files.isDirectory).map { .string($0) })
                info["processes"] = .number(Double(cg.processes().count))
                info["cpu_usage_ns"] = cg.cpuUsageNanos().map { .number(Double($0)) } ?? .null
            }
            print(JSONValue.object(info).serialized())
        }
    }

    struct Update: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a VM: JSON (-f or stdin) or property=value arguments; limits apply live.")
        @OptionGroup var global: GlobalOptions
        @Option(name: .short, help: "Update payload file.") var f: String?
        @Argument var uuid: String
        @Argument(help: "property=value ...") var assignments: [String] = []
        func run() throws {
            let payload = assignments.isEmpty ? try readPayload(f, what: "update") : try ManifestValidator.payload(fromAssignments: assignments)
            let v = try openVmadm(global.stateRoot)
            let id = try v.store.resolve(uuid)
            let plan = try v.update(id, payload)
            report("Successfully updated VM \(id)")
            if !plan.nextBoot.isEmpty && v.zones.isRunning(id) {
                report("note: \(plan.nextBoot.joined(separator: ", ")) take effect at the next boot")
            }
        }
    }

    struct CreateSnapshot: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "create-snapshot", abstract: "Snapshot a VM's dataset.")
        @OptionGroup var global: GlobalOptions
        @Argument var uuid: String
        @Argument var name: String
        func run() throws {
            let v = try openVmadm(global.stateRoot)
            let id = try v.store.resolve(uuid)
            try v.createSnapshot(id, name)
            report("Created snapshot \(name) for VM \(id)")
        }
    }

    struct RollbackSnapshot: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rollback-snapshot",
                                                        abstract: "Return a VM's files to a snapshot (restarts it if running; newer snapshots are removed).")
        @OptionGroup var global: GlobalOptions
        @Argument var uuid: String
        @Argument var name: String
        func run() throws {
            let v = try openVmadm(global.stateRoot)
            let id = try v.store.resolve(uuid)
            try v.rollbackSnapshot(id, name)
            report("Rolled back VM \(id) to snapshot \(name)")
        }
    }

    struct DeleteSnapshot: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "delete-snapshot", abstract: "Remove a VM snapshot.")
        @OptionGroup var global: GlobalOptions
        @Argument var uuid: String
        @Argument var name: String
        func run() throws {
            let v = try openVmadm(global.stateRoot)
            let id = try v.store.resolve(uuid)
            try v.deleteSnapshot(id, name)
            report("Deleted snapshot \(name) for VM \(id)")
        }
    }

    struct Send: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a stopped VM (manifest and data) to stdout, for vmadm receive.")
        @OptionGroup var global: GlobalOptions
        @Argument var uuid: String
        func run() throws {
            guard isatty(1) == 0 else { throw LumosError.invalid("send: refusing to write a stream to a terminal; redirect to a file or pipe to vmadm receive") }
            let v = try openVmadm(global.stateRoot)
            let id = try v.store.resolve(uuid)
            try v.send(id, to: 1)
            report("Successfully sent VM \(id)")
        }
    }

    struct Receive: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Recreate a VM from a vmadm send stream on stdin.")
        @OptionGroup var global: GlobalOptions
        func run() throws {
            guard isatty(0) == 0 else { throw LumosError.invalid("receive: stdin is a terminal; pipe in a vmadm send stream") }
            let m = try openVmadm(global.stateRoot).receive(from: 0)
            report("Successfully received VM \(m.uuid)")
        }
    }

    struct Console: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Attach to a running VM's console: a kvm VM's serial console, an lx zone's /dev/console (detach with Ctrl-] or ~.; the output is also logged in ROOT/zones/UUID/console.log, capped by zlog_max_size).")
        @OptionGroup var global: GlobalOptions
        @Argument var uuid: String
        func run() throws {
            let v = try openVmadm(global.stateRoot)
            let id = try v.store.resolve(uuid)
            try ConsoleSession.attach(v, id)
        }
    }
}

/// `vmadm console` and `zlogin -C`: the terminal attached to the VM's console relay until the
/// escape (docs/vmadm.md, "Console").
enum ConsoleSession {
    static func attach(_ v: Vmadm, _ id: String) throws {
        let what = try v.store.read(id).isKVM ? "the serial console of VM" : "the console of zone"
        guard v.zones.isRunning(id) else { throw LumosError.invalid("VM \(id) is not running; start it with vmadm start \(id)") }
        if isatty(0) == 1 { report("[connected to \(what) \(id); \(ConsoleClient.Escape.standard) detaches]") }
        switch try ConsoleClient.attach(socket: v.consoleSocket(id)) {
        case .signal(let s): throw ExitCode(128 + s)
        default: return
        }
    }
}

/// Signal names as kill(1) takes them.
enum Signals {
    static let names: [String: Int32] = ["HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "KILL": SIGKILL, "USR1": SIGUSR1,
                                         "USR2": SIGUSR2, "TERM": SIGTERM, "CONT": SIGCONT, "STOP": SIGSTOP, "ALRM": SIGALRM]

    static func parse(_ text: String) throws -> Int32 {
        if let n = Int32(text), n > 0, n < 65 { return n }
        var name = text.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        guard let s = names[name] else { throw LumosError.usage("-s \(text): unknown signal; use e.g. TERM, KILL, HUP or a number") }
        return s
    }
}
