import Glibc
import LumosCore
import Testing

let isRoot = getuid() == 0

/// A host to attack, made as an operator would through the `lumos` CLI: a private state root
/// with an embedded pool, the busybox image, and an etherstub whose host side lives in a
/// network namespace this site creates (never the machine's own network). Zones are made
/// with `vmadm create`; the attacker's tools (Resources/attack.c, built static) are copied into
/// a zone's root and run there with zlogin, as the tenant's root. `close()` removes it all.
final class AttackSite {
    let dir: String
    let netns: String
    let subnet: String
    let stub = "stub0"
    let network: Bool
    private(set) var vms: [String] = []
    private var tool: String?

    init(network: Bool = true) throws {
        let tag = "\(getpid() % 100000)-\(UInt32.random(in: 0...99999))"
        dir = "/tmp/lumos-sec-\(tag)"
        netns = "lumos-t-sec-\(tag)"
        subnet = "10.\(UInt8.random(in: 100...200)).\(UInt8.random(in: 1...250))"
        self.network = network
        try Files.makeDirectories(dir)
        do {
            try lumos(["pool", "create", "--size", "2G", "zones"])
            try lumos(["img", "build", "busybox"])
            if network {
                try Exec.run(["ip", "netns", "add", netns])
                try lumos(["net", "create-etherstub", stub])
                try lumos(["net", "create-addr", "-a", "\(subnet).1/24", stub])
            }
        } catch {
            close()
            throw error
        }
    }

    static var lumosExecutable: String {
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = buf.withUnsafeMutableBufferPointer { b in
            b.baseAddress!.withMemoryRebound(to: CChar.self, capacity: b.count) { readlink("/proc/self/exe", $0, b.count - 1) }
        }
        return Files.parent(String(decoding: buf[0..<max(0, n)], as: UTF8.self)) + "/lumos"
    }

    var environment: [String] { (network ? ["LUMOS_NET_NETNS=\(netns)"] : []) + ["LUMOS_ROOT=\(dir)"] }

    @discardableResult
    func lumos(_ args: [String], input: String? = nil, inputBytes: [UInt8]? = nil, check: Bool = true) throws -> Exec.Result {
        try Exec.run(["env"] + environment + [Self.lumosExecutable] + args, input: inputBytes ?? input.map { Array($0.utf8) }, check: check)
    }

    /// A VM this site did not create (received) that close() must delete.
    func adopt(_ uuid: String) { vms.append(uuid) }

    var imageUUID: String { get throws { try lumos(["img", "list", "-H", "-o", "uuid"]).stdout.trimmingSpaces() } }

    /// `vmadm create` of a busybox zone (or of `image`, with `memory` MiB); `host` adds one NIC on
    /// the etherstub with this host number.
    func create(alias: String, host: Int? = nil, extra: String = "", nicExtra: String = "", image: String? = nil, memory: Int = 64) throws -> String {
        var json = "{\"brand\":\"lx\",\"alias\":\"\(alias)\",\"image_uuid\":\"\(try image ?? imageUUID)\",\"max_physical_memory\":\(memory)\(extra)"
        if let host {
            json += ",\"nics\":[{\"nic_tag\":\"\(stub)\",\"ips\":[\"\(subnet).\(host)/24\"],\"gateways\":[\"\(subnet).1\"],\"primary\":true\(nicExtra)}]"
        }
        json += "}"
        let r = try lumos(["vm", "create"], input: json)
        let uuid = String(r.stderr.split(separator: " ").last ?? "").trimmingSpaces()
        try #require(uuid.count == 36, "vmadm create: \(r.stderr)")
        vms.append(uuid)
        return uuid
    }

    func delete(_ uuid: String) throws {
        try lumos(["vm", "delete", uuid])
        vms.removeAll { $0 == uuid }
    }

    /// The zone's root directory as the host sees it (inside the pool).
    func zoneRoot(_ uuid: String) -> String { "\(dir)/mnt/zones/\(uuid)/root" }

    func get(_ uuid: String) throws -> [String: JSONValue] {
        let out = try lumos(["vm", "get", uuid]).stdout
        return try JSONValue.parse(Array(out.utf8), what: "vmadm get").objectValue ?? [:]
    }

    func mac(_ uuid: String) throws -> String {
        try #require(try get(uuid)["nics"]?.arrayValue?.first?.objectValue?["mac"]?.stringValue)
    }

    /// Runs a command in the zone as its root (zlogin).
    @discardableResult
    func zlogin(_ uuid: String, _ argv: [String], check: Bool = false) throws -> Exec.Result {
        try lumos(["login", uuid] + argv, check: check)
    }

    /// Builds the attack tool once per site and places it at /bin/attack in the zone.
    func arm(_ uuid: String) throws {
        if tool == nil {
            let source = Files.parent(#filePath) + "/Resources/attack.c"
            let out = dir + "/attack"
            try Exec.run(["cc", "-static", "-O1", "-o", out, source])
            tool = out
        }
        try Exec.run(["install", "-m", "0755", tool!, zoneRoot(uuid) + "/bin/attack"])
    }

    /// The attack tool inside the zone.
    @discardableResult
    func attack(_ uuid: String, _ args: [String]) throws -> Exec.Result {
        try zlogin(uuid, ["/bin/attack"] + args)
    }

    /// Runs `attack listen net0 SECONDS` in `victim` while `during` runs, and returns what it
    /// counted by kind (udp68, udp6868, icmp4-redirect, icmp4-echo, icmp6-ra, icmp6-echo).
    func listen(in victim: String, seconds: Int = 3, during: () throws -> Void) throws -> [String: Int] {
        let out = "\(dir)/listen-\(victim.prefix(8))-\(UInt32.random(in: 0...99999))"
        let fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        let pid = try Exec.spawn(["env"] + environment + [Self.lumosExecutable, "login", victim, "/bin/attack", "listen", "net0", String(seconds)],
                                 stdout: .fd(fd), stderr: .fd(fd))
        Glibc.close(fd)
        defer { _ = Exec.wait(pid) }
        let deadline = Monotonic.now + 10
        while Monotonic.now < deadline, !((try? FD.readText(out)) ?? "").contains("ready") { usleep(10_000) }
        try #require(((try? FD.readText(out)) ?? "").contains("ready"), "the listener did not start: \((try? FD.readText(out)) ?? "")")
        try during()
        _ = Exec.wait(pid)
        var counts: [String: Int] = [:]
        for line in try FD.readText(out).split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count == 2, let n = Int(f[1]) { counts[String(f[0])] = n }
        }
        let text = try FD.readText(out)
        try #require(counts.count == 6, "listener output: \(text)")
        return counts
    }

    /// A command in the switch's namespace (the host side of the etherstub).
    @discardableResult
    func inSwitch(_ argv: [String], check: Bool = true) throws -> Exec.Result {
        try Exec.run(["ip", "netns", "exec", netns] + argv, check: check)
    }

    func hostPing(_ host: Int) -> Bool {
        (try? inSwitch(["ping", "-c", "1", "-W", "1", "\(subnet).\(host)"], check: false).status) == 0
    }

    /// For expectations that traffic passes: a zone just started (or a table just repaired)
    /// may miss the first echo while its neighbour entry resolves, so try a few times.
    func hostPingSoon(_ host: Int, tries: Int = 5) -> Bool {
        for _ in 0..<tries where hostPing(host) { return true }
        return false
    }

    func close() {
        for v in vms { _ = try? lumos(["vm", "delete", v], check: false) }
        _ = try? lumos(["net", "delete-etherstub", stub], check: false)
        _ = try? lumos(["pool", "destroy", "-f", "zones"], check: false)
        _ = try? Exec.run(["ip", "netns", "del", netns], check: false)
        _ = try? Exec.run(["rm", "-rf", "--one-file-system", dir], check: false)
    }
}
