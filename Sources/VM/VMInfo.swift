import LumosCore

/// `vmadm info UUID [type,...]` from QMP (docs/vm.md, "vmadm info"). As on SmartOS the answer
/// is one JSON object with a member per type asked for (all of them for none or `all`):
///
///     {"status": {...}, "version": {...}, "block": [...], ...}
///
/// The members are named by SmartOS's types (vmadm(1M), `info`); each holds QEMU's reply to
/// the type's query command (SmartOS's QEMU answered the same QMP queries). `vnc` and `spice`
/// also carry SmartOS's `port` and `display` (VNC display = port - 5900) beside QEMU's `host`
/// when QEMU listens on TCP, and `path` for a unix socket. A query QEMU cannot answer (a build
/// without SPICE, a command it lacks) gives `{"error": "..."}` in that member instead of
/// failing the others. An unknown type is a one-line error naming the valid ones.
public enum VMInfo {
    /// The types and QEMU's query for each, in SmartOS's order.
    public static let commands: [(type: String, command: String)] = [
        ("block", "query-block"), ("blockstats", "query-blockstats"), ("chardev", "query-chardev"),
        ("cpus", "query-cpus-fast"), ("kvm", "query-kvm"), ("pci", "query-pci"), ("spice", "query-spice"),
        ("status", "query-status"), ("version", "query-version"), ("vnc", "query-vnc"),
    ]

    public static var types: [String] { commands.map(\.type) }

    /// The types named by vmadm's arguments: each may hold several separated by commas
    /// (`block,vnc`); `all` or nothing means every type. Unknown names throw.
    public static func parseTypes(_ arguments: [String]) throws -> [String] {
        let names = arguments.flatMap { $0.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init) }
        if names.isEmpty || names.contains("all") {
            if let bad = names.first(where: { $0 != "all" && !types.contains($0) }) { throw unknown(bad) }
            return types
        }
        var chosen: [String] = []
        for n in names {
            guard types.contains(n) else { throw unknown(n) }
            if !chosen.contains(n) { chosen.append(n) }
        }
        return chosen
    }

    static func unknown(_ name: String) -> LumosError {
        LumosError.invalid("vmadm info: unknown type \"\(name)\"; use all, \(types.joined(separator: ", "))")
    }

    /// Asks QEMU for each type (`parseTypes` first: names and "all" are accepted here too).
    public static func query(_ qmp: QMPClient, types requested: [String]) throws -> JSONValue {
        let chosen = try parseTypes(requested)
        var result: [String: JSONValue] = [:]
        for type in chosen {
            let command = commands.first { $0.type == type }!.command
            do {
                let reply = try qmp.execute(command)
                result[type] = shape(type, reply)
            } catch let e as LumosError {
                result[type] = .object(["error": .string(reason(type, command, e))])
            }
        }
        return .object(result)
    }

    static func reason(_ type: String, _ command: String, _ e: LumosError) -> String {
        if e.message.contains("CommandNotFound") {
            return type == "spice" ? "this QEMU has no SPICE support (\(command) is not built in)" : "this QEMU has no \(command)"
        }
        return e.message
    }

    /// SmartOS's host/port/display beside QEMU's own members for the remote displays.
    static func shape(_ type: String, _ reply: JSONValue) -> JSONValue {
        guard type == "vnc" || type == "spice", var o = reply.objectValue else { return reply }
        guard o["enabled"]?.boolValue == true else { return reply }
        let service = o["service"]?.stringValue
        if o["family"]?.stringValue == "unix" {
            // QEMU names a unix socket's path in `service`.
            o["path"] = .string(service ?? o["host"]?.stringValue ?? "")
        } else if let port = service.flatMap({ Int($0) }) ?? o["port"]?.intValue.map({ Int($0) }) {
            o["port"] = .number(Double(port))
            if type == "vnc" && port >= 5900 { o["display"] = .number(Double(port - 5900)) }
        }
        return .object(o)
    }
}
