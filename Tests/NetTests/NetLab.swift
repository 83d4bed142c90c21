import Foundation
import Glibc
import LumosCore
@testable import Net

let isRoot = getuid() == 0

/// A throwaway network for integration tests: a "host" namespace that holds the switches (so
/// nothing touches the real host network), tenant namespaces, and a private LUMOS_ROOT.
/// Everything is named `lumos-t-<pid>-<random>-...` and removed by `teardown()`.
final class NetLab: @unchecked Sendable {
    let id: String
    let hostNS: String
    let root: String
    let host: NetworkHost
    private(set) var namespaces: [String] = []
    private(set) var pids: [pid_t] = []

    init() throws {
        id = "\(getpid())-\(UInt32.random(in: 0...0xffffff))"
        hostNS = "lumos-t-\(id)-h"
        root = "/tmp/lumos-t-\(id)"
        host = NetworkHost(root: StateRoot(root), namespace: .named(hostNS), executable: NetLab.lumosExecutable)
        try Files.makeDirectories(root)
        do {
            try Exec.run(["ip", "netns", "add", hostNS])
            namespaces.append(hostNS)
            try Exec.run(["ip", "netns", "exec", hostNS, "ip", "link", "set", "lo", "up"])
        } catch {
            teardown()
            throw error
        }
    }

    /// The lumos binary built next to the test bundle (swift build builds it with the tests).
    static var lumosExecutable: String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        let exe = String(decoding: buf[0..<max(0, n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return Files.parent(exe) + "/lumos"
    }

    /// A new tenant namespace; returns its ip-netns name.
    func tenantNamespace(_ tag: String) throws -> String {
        let name = "lumos-t-\(id)-\(tag)"
        try Exec.run(["ip", "netns", "add", name])
        namespaces.append(name)
        return name
    }

    /// A tenant uuid unique to this run.
    func uuid() -> String { UUID().uuidString.lowercased() }

    @discardableResult
    func run(_ ns: String, _ argv: [String], check: Bool = false) throws -> Exec.Result {
        try Exec.run(["ip", "netns", "exec", ns] + argv, check: check)
    }

    /// Starts a long-running process in a namespace; killed by teardown.
    func spawn(_ ns: String, _ argv: [String]) throws -> pid_t {
        let pid = try Exec.spawn(["ip", "netns", "exec", ns] + argv, stdin: .null, stdout: .null, stderr: .null)
        pids.append(pid)
        return pid
    }

    func stop(_ pid: pid_t) {
        kill(pid, SIGKILL)
        _ = Exec.wait(pid)
        pids.removeAll { $0 == pid }
    }

    /// Waits (up to 5 s) until sockets listen on `ports` inside `ns` (`udp`: bound UDP
    /// sockets); false when they never do. Checks that a listener a test relies on is there.
    func waitListening(_ ns: String, ports: [Int], udp: Bool = false) throws -> Bool {
        for _ in 0..<250 {
            let out = try run(ns, ["ss", udp ? "-lunH" : "-ltnH"]).stdout
            let local = out.split(separator: "\n").compactMap { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first }
            if ports.allSatisfy({ p in local.contains { $0.hasSuffix(":\(p)") } }) { return true }
            usleep(20_000)
        }
        return false
    }

    func ping(_ ns: String, _ target: String, count: Int = 2) throws -> Bool {
        try run(ns, ["busybox", "ping", "-c", "\(count)", "-W", "1", "-w", "\(count + 1)", target]).status == 0
    }

    /// Host links whose names Lumos gives tenants.
    func tenantLinks() throws -> [String] {
        try host.tools.links().map(\.name).filter { TenantNetwork.isTenantLink($0) }
    }

    /// Elements in the anti-spoofing table's `ports` set.
    func protectedPorts() throws -> [String] {
        let r = try host.tools.nftCommand(["-j", "list", "set", "bridge", "lumos", "ports"], check: false)
        guard r.status == 0, let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
              let items = obj["nftables"] as? [[String: Any]] else { return [] }
        return items.compactMap { $0["set"] as? [String: Any] }.flatMap { $0["elem"] as? [String] ?? [] }
    }

    func teardown() {
        let dhcp = DHCPService(host: host)
        for sw in (try? host.store.switches()) ?? [] { try? dhcp.stop(switchName: sw.name) }
        for p in pids { kill(p, SIGKILL); _ = Exec.wait(p) }
        for ns in namespaces.reversed() { _ = try? Exec.run(["ip", "netns", "del", ns], check: false) }
        _ = try? Exec.run(["rm", "-rf", root], check: false)
    }
}
