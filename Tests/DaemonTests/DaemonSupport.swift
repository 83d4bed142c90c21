import Foundation
import Glibc
import Images
import LumosCore
import Storage
import Testing
import Zones

let isRoot = getuid() == 0

/// A real host for one daemon test: a private state root with an embedded `zones` pool and an
/// installed busybox image (as ZonesTests' RealHost), and `lumos daemon` started by hand as a
/// child process on a socket inside it. `close()` ends the daemon by pid, deletes every VM,
/// destroys the pool and removes the directory; call it with defer.
final class DaemonHost {
    let dir: String
    let root: StateRoot
    let pool: Pool
    let imageUUID: String
    let socket: String
    private(set) var daemonPid: pid_t = 0
    private var daemonLog = ""

    init(_ name: String) throws {
        dir = "/tmp/lumos-daemon-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try Files.makeDirectories(dir)
        root = StateRoot(dir)
        socket = dir + "/vmadmd.sock"
        var made: Pool?
        do {
            var options = Pool.CreateOptions()
            options.size = 2 << 30
            let pool = try Pool.create("zones", options: options, root: root).0
            made = pool
            let vmadm = Vmadm(root: root, datasets: PoolDatasets(pool), zones: try RuntimeZones(root: root))
            imageUUID = try vmadm.images.installBuilt(name: "busybox", version: "test", description: "test") {
                try BusyboxImage.build(into: $0)
            }.uuid
            self.pool = pool
        } catch {
            try? made?.destroy(force: true)
            _ = try? Exec.run(["rm", "-rf", dir], check: false)
            throw error
        }
    }

    /// A fresh Vmadm over this host, as a CLI command opens it.
    func vmadm() throws -> Vmadm { try Vmadm.openHost(root: root) }

    func payload(_ extra: [String: JSONValue] = [:]) -> JSONValue {
        var o: [String: JSONValue] = ["brand": "lx", "image_uuid": .string(imageUUID), "alias": "dtest", "max_physical_memory": 128]
        for (k, v) in extra { o[k] = v }
        return .object(o)
    }

    static var buildDirectory: String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        return Files.parent(String(decoding: buf[0..<max(0, n)].map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    static var lumosExe: String { buildDirectory + "/lumos" }

    /// The repository (the OpenAPI document, bench scripts).
    static var repository: String { Files.parent(Files.parent(Files.parent(#filePath))) }

    /// Runs the built `lumos` with this state root.
    func lumos(_ args: [String], stdin: String? = nil) throws -> Exec.Result {
        try Exec.run(["env", "LUMOS_ROOT=\(dir)", Self.lumosExe] + args, input: stdin.map { Array($0.utf8) }, check: false)
    }

    /// Starts `lumos daemon` on this host's socket and waits until it answers /ping.
    func startDaemon(_ extra: [String] = [], env: [String: String] = [:]) throws {
        precondition(daemonPid == 0, "daemon already running")
        let logPath = dir + "/vmadmd.log"
        let logFD = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        defer { Glibc.close(logFD) }
        var argv = ["env", "LUMOS_ROOT=\(dir)", "LUMOS_OPENAPI=\(Self.repository)/docs/api/openapi.yaml"]
        for (k, v) in env { argv.append("\(k)=\(v)") }
        argv += [Self.lumosExe, "daemon", "--socket", socket] + extra
        daemonPid = try Exec.spawn(argv, stdout: .fd(logFD), stderr: .fd(logFD))
        for _ in 0..<600 {
            if let r = try? request("GET", "/ping"), r.status == 200 { return }
            var status: Int32 = 0
            if waitpid(daemonPid, &status, WNOHANG) == daemonPid {
                daemonPid = 0
                throw LumosError.failed("lumos daemon exited at start: \((try? FD.readText(logPath)) ?? "")")
            }
            usleep(100_000)
        }
        throw LumosError.failed("lumos daemon did not answer on \(socket) within 60 s: \((try? FD.readText(logPath)) ?? "")")
    }

    /// SIGTERM (a clean stop) or SIGKILL (kill -9) to the daemon, by pid, and reaps it.
    @discardableResult
    func stopDaemon(signal: Int32 = SIGTERM) -> Int32 {
        guard daemonPid > 0 else { return 0 }
        kill(daemonPid, signal)
        let status = Exec.wait(daemonPid)
        daemonPid = 0
        return status
    }

    var log: String { (try? FD.readText(dir + "/vmadmd.log")) ?? "" }

    struct Reply {
        var status: Int
        var body: String
        var json: JSONValue? { try? JSONValue.parse(body, what: "reply") }
    }

    /// One HTTP request over the unix socket (curl), or to `url` with curl's extra arguments.
    func request(_ method: String, _ path: String, body: String? = nil, url: String? = nil, curl extra: [String] = []) throws -> Reply {
        var argv = ["curl", "-sS", "-X", method, "-w", "\n%{http_code}", "--max-time", "300"] + extra
        if url == nil { argv += ["--unix-socket", socket] }
        if body != nil { argv += ["-H", "Content-Type: application/json", "--data-binary", "@-"] }
        argv.append((url ?? "http://localhost") + path)
        let r = try Exec.run(argv, input: body.map { Array($0.utf8) }, check: false)
        guard r.status == 0, let nl = r.stdout.lastIndex(of: "\n"), let code = Int(r.stdout[r.stdout.index(after: nl)...]) else {
            throw LumosError.failed("curl \(method) \(path): exit \(r.status): \(r.stderr)")
        }
        return Reply(status: code, body: String(r.stdout[..<nl]))
    }

    /// A tenant made over the API with a shell spinning in it (zlogin): its uuid and the zlogin
    /// client's pid, for `stop`. The shell outlives the client; the tenant's delete ends it.
    func busyTenant(_ alias: String) throws -> (uuid: String, spinner: pid_t) {
        let created = try api("POST", "/tenants", payload(["alias": .string(alias)]))
        #expect(created.status == 201, "\(created.body)")
        let uuid = try #require(created.json?.lookup("uuid")?.stringValue)
        return (uuid, try Exec.spawn(["env", "LUMOS_ROOT=\(dir)", Self.lumosExe, "login", uuid, "/bin/sh", "-c", "while :; do :; done"]))
    }

    /// Ends a process this fixture started, by pid.
    func stop(_ pid: pid_t) {
        kill(pid, SIGKILL)
        _ = Exec.wait(pid)
    }

    func api(_ method: String, _ path: String, _ body: JSONValue? = nil) throws -> Reply {
        try request(method, path, body: body?.serialized(pretty: false))
    }

    /// Polls `condition` for up to `seconds` (conditions only, no timing asserted).
    func waitUntil(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if try condition() { return true }
            usleep(100_000)
        }
        return try condition()
    }

    /// Nothing of a tenant is left: no manifest, dataset, cgroup, process or intent.
    func leftovers(_ uuid: String) throws -> [String] { try vmadm().remnants(of: uuid) }

    func close() {
        stopDaemon(signal: SIGKILL)
        if let v = try? vmadm() {
            for uuid in v.store.uuids() {
                if (try? v.store.read(uuid))?.indestructibleZoneroot == true { _ = try? v.update(uuid, ["indestructible_zoneroot": false]) }
                try? v.delete(uuid)
            }
        }
        for _ in 0..<20 {
            // Opened afresh: a test may have exported and imported the pool.
            _ = try? Pool.importPools(["zones"], root: root)
            if (try? Pool.open("zones", root: root).destroy(force: true)) != nil { break }
            usleep(100_000)
        }
        _ = try? Exec.run(["rm", "-rf", dir], check: false)
    }
}
