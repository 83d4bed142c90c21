import Foundation
import LumosCore

/// The kernel tools Lumos drives (iproute2, tc, nft), run inside a namespace.
/// Commands are batched (`ip -batch`, `tc -batch`, `nft -f`) so one NIC costs a few execs.
public struct NetTools: Sendable {
    public var namespace: NetNamespace

    public init(_ namespace: NetNamespace) { self.namespace = namespace }

    /// Runs `ip ARGS` and returns stdout.
    @discardableResult
    public func ip(_ args: [String], check: Bool = true) throws -> Exec.Result {
        try Exec.run(namespace.command(["ip"] + args), check: check)
    }

    /// Runs several `ip` commands in one process; the first failing line stops the batch.
    public func ipBatch(_ lines: [String], force: Bool = false) throws {
        if lines.isEmpty { return }
        let text = lines.joined(separator: "\n") + "\n"
        // With -force, ip runs every line and still exits non-zero when one failed: the caller
        // asked to ignore that (e.g. deleting links that may already be gone).
        try Exec.run(namespace.command(["ip"] + (force ? ["-force"] : []) + ["-batch", "-"]), input: Array(text.utf8), check: !force)
    }

    public func tcBatch(_ lines: [String], force: Bool = false) throws {
        if lines.isEmpty { return }
        let text = lines.joined(separator: "\n") + "\n"
        try Exec.run(namespace.command(["tc"] + (force ? ["-force"] : []) + ["-batch", "-"]), input: Array(text.utf8), check: !force)
    }

    /// Applies an nft script as one transaction (all or nothing).
    public func nft(_ script: String) throws {
        try Exec.run(namespace.command(["nft", "-f", "-"]), input: Array(script.utf8))
    }

    @discardableResult
    public func nftCommand(_ args: [String], check: Bool = true) throws -> Exec.Result {
        try Exec.run(namespace.command(["nft"] + args), check: check)
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
