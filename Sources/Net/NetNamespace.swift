import Glibc
import LumosCore

/// A network namespace Lumos works in: the host side (where switches live) or a tenant's.
/// iproute2's `-n` only takes names under /run/netns, so commands enter a namespace with
/// nsenter(1) by path, which works for every form (docs/architecture.md: "iproute2 accepts a netns path"
/// holds for `netns NAME|PID` arguments, not for `-n`).
public enum NetNamespace: Sendable, Equatable, Codable, CustomStringConvertible {
    /// The namespace of the calling process (the real host in production).
    case current
    /// The namespace of a process, e.g. a zone's init.
    case pid(pid_t)
    /// A namespace file: /proc/PID/ns/net, /run/netns/NAME or any bind mount of one.
    case path(String)

    /// A namespace made by `ip netns add NAME`.
    public static func named(_ name: String) -> NetNamespace { .path("/run/netns/\(name)") }

    /// The file that names this namespace, or nil for the current one.
    public var path: String? {
        switch self {
        case .current: return nil
        case .pid(let p): return "/proc/\(p)/ns/net"
        case .path(let p): return p
        }
    }

    /// What `ip link ... netns X` accepts for this namespace (a pid or a name under /run/netns),
    /// or nil when only a path names it.
    public var iprouteReference: String? {
        switch self {
        case .current: return String(getpid())
        case .pid(let p): return String(p)
        case .path(let p):
            for dir in ["/run/netns/", "/var/run/netns/"] where p.hasPrefix(dir) {
                let name = String(p.dropFirst(dir.count))
                if !name.isEmpty && !name.contains("/") { return name }
            }
            let parts = p.split(separator: "/")
            if parts.count == 4, parts[0] == "proc", parts[2] == "ns", parts[3] == "net", let pid = Int32(parts[1]) {
                return String(pid)
            }
            return nil
        }
    }

    public var description: String {
        switch self {
        case .current: return "the current network namespace"
        case .pid(let p): return "the network namespace of pid \(p)"
        case .path(let p): return "network namespace \(p)"
        }
    }

    /// Fails with a one-line error when the namespace is gone.
    public func check() throws {
        guard let path else { return }
        if !Files.exists(path) {
            throw LumosError.notFound("\(description) does not exist; start the tenant (or create the namespace) first")
        }
    }

    /// argv that runs `argv` inside this namespace.
    public func command(_ argv: [String]) -> [String] {
        guard let path else { return argv }
        return ["nsenter", "--net=\(path)", "--"] + argv
    }

    /// Resolves a namespace given on a command line: a pid, a path, or a name from `ip netns`.
    public static func parse(_ text: String) -> NetNamespace {
        if let pid = Int32(text), pid > 0 { return .pid(pid) }
        if text.contains("/") { return .path(text) }
        return .named(text)
    }
}
