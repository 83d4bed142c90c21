import Foundation
import Glibc
import LumosCore

/// Starts and stops the DHCP responder of each switch: it runs only while a NIC on the switch
/// gets its address from it, and is stopped with the last one. No daemon: a detached
/// `lumos net dhcpd SWITCH` process (setsid) with a pid file under `$LUMOS_ROOT/run/net/`.
public struct DHCPService: Sendable {
    public let host: NetworkHost

    public init(host: NetworkHost) { self.host = host }

    static func leasePath(_ store: NetStore, _ sw: String) -> String { "\(store.dir)/dhcp/\(sw).json" }
    static func pidPath(_ store: NetStore, _ sw: String) -> String { store.root.sub("run", "net", "dhcpd-\(sw).pid") }

    /// The leases a switch must serve, from every tenant record: a NIC is served when it has a
    /// static IPv4 address and its tenant takes addresses by DHCP or the NIC lists `dhcp`.
    public func leases(switchName: String) throws -> [DHCPLease] {
        guard let sw = try host.store.switchConfig(switchName) else { return [] }
        let hostNets = sw.hostAddresses.compactMap { IPNetwork($0) }
        var out: [DHCPLease] = []
        for t in try host.store.tenants() {
            for n in t.nics where n.switchName == switchName && (t.addressesByDHCP || n.spec.usesDHCP) {
                guard let a = n.spec.ipv4Addresses.first else { continue }
                let gw = n.spec.gatewayAddresses.first { $0.isIPv4 && a.contains($0) }
                out.append(DHCPLease(
                    mac: n.mac, address: a, gateway: gw,
                    resolvers: n.spec.isPrimary || t.nics.count == 1 ? t.resolvers.compactMap { IPAddress($0) }.filter(\.isIPv4) : [],
                    hostname: t.hostname,
                    serverID: DHCPLease.serverID(for: a, gateway: gw, hostAddresses: hostNets)))
            }
        }
        return out.sorted { $0.mac.description < $1.mac.description }
    }

    /// Writes the switch's leases and starts or stops its responder to match. Net lock held.
    public func refresh(switchName: String) throws {
        let list = try leases(switchName: switchName)
        let path = Self.leasePath(host.store, switchName)
        if list.isEmpty {
            try stop(switchName: switchName)
            return
        }
        try Files.makeDirectories(Files.parent(path))
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try Files.writeAtomically(path, Array(try enc.encode(list)))
        if runningPid(switchName: switchName) == nil { try start(switchName: switchName) }
    }

    /// The responder's pid when it is alive (checked by its command line, not just the pid).
    public func runningPid(switchName: String) -> pid_t? {
        guard let text = try? FD.readText(Self.pidPath(host.store, switchName)), let pid = pid_t(text.trimmingSpaces()), pid > 0 else { return nil }
        guard Self.isRunning(pid), let cmd = try? FD.readFile("/proc/\(pid)/cmdline") else { return nil }
        let args = cmd.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        return args.contains("dhcpd") && args.contains(switchName) ? pid : nil
    }

    /// The responder's arguments after the executable; unique per state root and switch.
    func responderArguments(_ switchName: String) -> [String] { ["net", "dhcpd", "--root", host.root.path, switchName] }

    /// Starts the responder and waits up to `deadline` seconds for its pid file (written once
    /// its socket is bound). A responder that is not ready by then is killed, so a failed
    /// start leaves no responder nobody tracks.
    func start(switchName: String, deadline: Double = 10) throws {
        guard let exe = host.executable ?? Self.selfExecutable() else {
            throw LumosError.notFound("cannot start the DHCP responder for \(switchName): the lumos executable is unknown")
        }
        let pidPath = Self.pidPath(host.store, switchName)
        Files.remove(pidPath)
        try Files.makeDirectories(Files.parent(pidPath))
        let argv = ["setsid", "-f"] + host.namespace.command([exe] + responderArguments(switchName))
        let pid = try Exec.spawn(argv, stdin: .null, stdout: .null, stderr: .null)
        _ = Exec.wait(pid)
        let end = Monotonic.now + deadline
        repeat {
            if runningPid(switchName: switchName) != nil { return }
            usleep(5000)
        } while Monotonic.now < end
        // setsid -f detached it, so its pid is found by its command line (which setsid and
        // nsenter carry too while they have not exec'd yet); repeated until none is left.
        let tail = responderArguments(switchName)
        for _ in 0..<200 {
            let stragglers = Self.processes(endingWith: tail)
            if stragglers.isEmpty { break }
            for p in stragglers { kill(p, SIGKILL) }
            usleep(5000)
        }
        Files.remove(pidPath)
        throw LumosError.failed("DHCP responder for switch \(switchName) did not start within \(Int(deadline)) s; run `lumos net dhcpd \(switchName)` to see why")
    }

    /// Live processes whose argv ends with `tail`.
    static func processes(endingWith tail: [String]) -> [pid_t] {
        Files.list("/proc").compactMap { name -> pid_t? in
            guard let pid = pid_t(name), pid != getpid(), isRunning(pid),
                  let cmd = try? FD.readFile("/proc/\(pid)/cmdline") else { return nil }
            let args = cmd.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            return args.count > tail.count && Array(args.suffix(tail.count)) == tail ? pid : nil
        }
    }

    /// Stops the responder and removes its lease file (which alone would also stop it).
    public func stop(switchName: String) throws {
        Files.remove(Self.leasePath(host.store, switchName))
        if let pid = runningPid(switchName: switchName) {
            kill(pid, SIGTERM)
            for _ in 0..<200 where Self.isRunning(pid) { usleep(5000) }
        }
        Files.remove(Self.pidPath(host.store, switchName))
    }

    /// True while a process exists and has not exited (a zombie waiting for its reaper has).
    public static func isRunning(_ pid: pid_t) -> Bool {
        guard let text = try? FD.readText("/proc/\(pid)/stat"), let paren = text.lastIndex(of: ")") else { return false }
        let state = String(text[text.index(after: paren)...]).trimmingSpaces().first
        return state != nil && state != "Z" && state != "X"
    }

    /// This process's executable when it is lumos (or one of its argv[0] names).
    static func selfExecutable() -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        let path = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return ["lumos", "dladm", "vmadm"].contains(Files.basename(path)) ? path : nil
    }
}
