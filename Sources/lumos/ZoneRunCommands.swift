import ArgumentParser
import Glibc
import LumosCore
import Zones

/// `lumos zone ...`: the zone runtime on a bare root directory, without a tenant manifest
/// (what `runc run` is to a bundle). vmadm builds tenants on the same runtime; these commands
/// serve debugging and the start-latency and density benchmarks (bench/zones).
struct ZoneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zone",
        abstract: "Run, stop and list zones on a plain root directory (the runtime under vmadm).",
        subcommands: [ZoneRun.self, ZoneStop.self, ZoneList.self]
    )
}

struct ZoneRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Start a zone on a root directory; wait for it to end unless --detach."
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "The zone's root directory.")
    var rootfs: String

    @Option(help: "The zone's uuid (default: a random one).")
    var uuid: String?

    @Option(help: "Host name inside the zone (default: the uuid).")
    var hostname: String?

    @Option(help: "max_physical_memory in MiB.")
    var memory: UInt64?

    @Option(help: "max_lwps.")
    var lwps: UInt64?

    @Option(name: .customLong("cpu-cap"), help: "cpu_cap in percent of one CPU.")
    var cpuCap: UInt64?

    @Flag(help: "Exec the command directly as PID 1 instead of under lumos-init.")
    var imageInit = false

    @Flag(help: "Print the init's pid and return; the zone keeps running.")
    var detach = false

    @Argument(parsing: .captureForPassthrough, help: "Command to run (default: /sbin/init if present, else lumos-init idles).")
    var command: [String] = []

    func run() throws {
        let root = global.stateRoot
        let id = uuid ?? randomUUID()
        let runtime = try ZoneRuntime()
        // Not fsynced: these zones do not outlive the host (a crash of the host ends them and
        // frees the slot with them); only vmadm's tenants keep their range across reboots.
        let range = try ZoneIDRange.allocate(for: id, root: root, durable: false)
        CrashPoint.hit("zone.run.range-allocated")
        let argv = command.first == "--" ? Array(command.dropFirst()) : command
        let initProcess: ZoneInit = imageInit ? .image(argv) : .lumos(command: argv.isEmpty ? nil : argv)
        let spec = ZoneSpec(uuid: id, hostname: hostname ?? String(id.prefix(63)), rootfs: rootfs, initProcess: initProcess,
                            limits: ZoneLimits(maxPhysicalMemory: memory, maxSwap: memory, maxLwps: lwps, cpuCap: cpuCap),
                            idRange: range, stdin: detach ? nil : 0, stdout: detach ? nil : 1, stderr: detach ? nil : 2)
        let pid: pid_t
        do {
            pid = try runtime.start(spec)
        } catch {
            ZoneIDRange.release(id, root: root)
            throw error
        }
        if detach {
            print("\(id) \(pid)")
            return
        }
        // The zone runs in its own session: pass on what the terminal sends us (lumos-init
        // forwards it to the command), so Ctrl-C ends the zone instead of orphaning it.
        zoneRunInit = pid
        for sig in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] {
            signal(sig) { received in if zoneRunInit > 0 { kill(zoneRunInit, received) } }
        }
        let status = Exec.wait(pid)
        try runtime.cleanup(id)
        ZoneIDRange.release(id, root: root)
        throw ExitCode(status)
    }

    private func randomUUID() -> String {
        var bytes = (0..<16).map { _ in UInt8.random(in: 0...255) }
        bytes[6] = (bytes[6] & 0x0f) | 0x40
        bytes[8] = (bytes[8] & 0x3f) | 0x80
        let hex = bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        let h = Array(hex)
        return [h[0..<8], h[8..<12], h[12..<16], h[16..<20], h[20..<32]].map { String($0) }.joined(separator: "-")
    }
}

/// The init of the zone `lumos zone run` waits for (read by its signal handler).
nonisolated(unsafe) private var zoneRunInit: pid_t = 0

struct ZoneStop: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop",
        abstract: "Stop a zone: SIGTERM to its init, SIGKILL to everything after the timeout."
    )

    @OptionGroup var global: GlobalOptions

    @Flag(name: .customShort("F"), help: "SIGKILL at once.")
    var force = false

    @Option(name: .customShort("t"), help: "Seconds to wait after SIGTERM.")
    var timeout: Double = 30

    @Argument(help: "The zone's uuid.")
    var uuid: String

    func run() throws {
        let outcome = try ZoneRuntime().stop(uuid, force: force, timeout: timeout)
        ZoneIDRange.release(uuid, root: global.stateRoot)
        if outcome == .alreadyStopped { print("\(uuid) was not running") }
    }
}

struct ZoneList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "Zones the kernel knows (a cgroup under lumos/), with state and init pid."
    )

    @OptionGroup var global: GlobalOptions

    @Flag(name: .customShort("H"), help: "No header; tab-separated.")
    var scripted = false

    func run() throws {
        let runtime = try ZoneRuntime()
        var table = Table(columns: ["UUID", "STATE", "PID", "CGROUP_ID"])
        for uuid in runtime.knownZones() {
            table.rows.append([uuid, runtime.state(uuid).rawValue, runtime.initPid(uuid).map { "\($0)" } ?? "-",
                               runtime.cgroup(uuid).cgroupID.map { "\($0)" } ?? "-"])
        }
        print(table.render(header: !scripted, scripted: scripted), terminator: "")
    }
}
