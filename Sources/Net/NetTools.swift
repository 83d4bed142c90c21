import CLinux
import Foundation
import Glibc
import LumosCore

/// The kernel tools Lumos drives (iproute2, tc, nft), run inside a namespace.
/// Commands are batched (`ip -batch`, `tc -batch`, `nft -f`) so one NIC costs a few execs.
public struct NetTools: Sendable {
    public var namespace: NetNamespace

    public init(_ namespace: NetNamespace) { self.namespace = namespace }

    /// Runs a tool inside the namespace. The calling thread enters the namespace for the spawn
    /// (a network namespace is per thread, and a child is born in its parent thread's), so
    /// each call is one exec, not nsenter's exec plus the tool's (~3 ms each on every NIC).
    @discardableResult
    public func run(_ argv: [String], input: [UInt8]? = nil, check: Bool = true) throws -> Exec.Result {
        guard let path = namespace.path else { return try Exec.run(argv, input: input, check: check) }
        return try Self.withThread(inNamespace: path) { try Exec.run(argv, input: input, check: check) }
    }

    /// Runs `body` with the calling thread in the network namespace at `path`, then returns
    /// the thread to its own. A thread that cannot go back stops the process: nothing may run
    /// in a tenant's namespace by mistake.
    public static func withThread<R>(inNamespace path: String, _ body: () throws -> R) throws -> R {
        let home = try sys("open", "/proc/thread-self/ns/net") { open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC) }
        defer { close(home) }
        let target = try sys("open", path) { open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(target) }
        try sys("setns", path) { clinux_setns_net(target) }
        defer {
            if clinux_setns_net(home) != 0 { fatalError("cannot return to the host network namespace: \(String(cString: strerror(errno)))") }
        }
        return try body()
    }

    /// Runs `ip ARGS` and returns stdout.
    @discardableResult
    public func ip(_ args: [String], check: Bool = true) throws -> Exec.Result {
        try run(["ip"] + args, check: check)
    }

    /// Runs several `ip` commands in one process; the first failing line stops the batch.
    public func ipBatch(_ lines: [String], force: Bool = false) throws { try batch("ip", lines, force: force) }

    public func tcBatch(_ lines: [String], force: Bool = false) throws { try batch("tc", lines, force: force) }

    public func bridgeBatch(_ lines: [String], force: Bool = false) throws { try batch("bridge", lines, force: force) }

    /// `TOOL [-force] -batch -` (iproute2's ip, tc and bridge) with the lines on stdin.
    func batch(_ tool: String, _ lines: [String], force: Bool) throws {
        if lines.isEmpty { return }
        let text = lines.joined(separator: "\n") + "\n"
        // With -force, the tool runs every line and still exits non-zero when one failed: the
        // caller asked to ignore that (e.g. deleting links that may already be gone).
        try run([tool] + (force ? ["-force"] : []) + ["-batch", "-"], input: Array(text.utf8), check: !force)
    }

    /// Applies an nft script as one transaction (all or nothing).
    public func nft(_ script: String) throws {
        try run(["nft", "-f", "-"], input: Array(script.utf8))
    }

    @discardableResult
    public func nftCommand(_ args: [String], check: Bool = true) throws -> Exec.Result {
        try run(["nft"] + args, check: check)
    }

    /// Whether a link of that name exists, asked of the kernel directly (if_nametoindex from a
    /// thread inside the namespace): every attach checks its switch, and an exec costs ms.
    public func linkExists(_ name: String) throws -> Bool {
        guard let path = namespace.path else { return if_nametoindex(name) != 0 }
        return try Self.withThread(inNamespace: path) { if_nametoindex(name) != 0 }
    }

    /// Writes `/proc/sys/<key with / for .>` for each pair inside the namespace without an
    /// exec (one namespace switch for all): sysctl files under /proc/sys/net belong to the
    /// network namespace of the thread that opens them. A missing key (no IPv6, a link gone)
    /// throws.
    public func writeSysctls(_ settings: [(key: String, value: String)]) throws {
        func write() throws {
            for (key, value) in settings {
                let path = "/proc/sys/" + key.split(separator: ".", omittingEmptySubsequences: false).joined(separator: "/")
                let fd = try sys("open", path) { open(path, O_WRONLY | O_CLOEXEC) }
                defer { close(fd) }
                if !FD.writeAll(fd, Array(value.utf8)) { throw Errno(errno, "write", path) }
            }
        }
        guard let ns = namespace.path else { return try write() }
        try Self.withThread(inNamespace: ns) { try write() }
    }

    /// Every link with its counters (`ip -j -s link show`).
    public func links() throws -> [LinkInfo] {
        let out = try ip(["-j", "-s", "-d", "link", "show"]).stdout
        return try LinkInfo.parse(out)
    }

    public func link(_ name: String) throws -> LinkInfo? {
        let r = try ip(["-j", "-s", "-d", "link", "show", "dev", name], check: false)
        if r.status != 0 { return nil }
        return try LinkInfo.parse(r.stdout).first
    }

    /// Addresses of every link (`ip -j addr show`).
    public func addresses() throws -> [String: [String]] {
        let out = try ip(["-j", "addr", "show"]).stdout
        return try LinkInfo.parseAddresses(out)
    }
}
