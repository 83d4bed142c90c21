import LumosCore

/// The probes `dtrace -l` lists on this host, numbered in a stable order, and filtered by
/// `-n` patterns: the dtrace provider (BEGIN, END, ERROR), syscall entry/return per system
/// call, the usual profile-N and tick-N rates (any rate can be used; these are the ones
/// DTrace lists), the stable proc/sched/io probes, every tracepoint as
/// `<category>:::<event>`, and USDT probes of given processes as `<provider><pid>`.
///
/// Public API:
///   ProbeList.kernel(tracefs:) -> [ProbeIdentity]
///   ProbeList.usdt(pids:discovery:) -> [ProbeIdentity]   -- no pids: every running process
///   ProbeList.usdt(file:discovery:) throws -> [ProbeIdentity] -- a binary by path
///   ProbeList.render(_ probes:, matching patterns:) -> String   -- header + "%5d %10s %17s %33s %s" rows
public enum ProbeList {
    public static let profileRates = ["profile-97", "profile-199", "profile-499", "profile-997", "profile-1999",
                                      "profile-4001", "profile-4999", "tick-1", "tick-10", "tick-100", "tick-500",
                                      "tick-1000", "tick-5000", "tick-1sec", "tick-10sec"]

    /// DTrace's stable providers and the tracepoints they stand for.
    public static let stableProbes: [(ProbeIdentity, TracepointName)] = [
        (ProbeIdentity(provider: "proc", name: "exec"), TracepointName(category: "sched", name: "sched_process_exec")),
        (ProbeIdentity(provider: "proc", name: "exit"), TracepointName(category: "sched", name: "sched_process_exit")),
        (ProbeIdentity(provider: "proc", name: "create"), TracepointName(category: "sched", name: "sched_process_fork")),
        (ProbeIdentity(provider: "sched", name: "on-cpu"), TracepointName(category: "sched", name: "sched_switch")),
        (ProbeIdentity(provider: "sched", name: "off-cpu"), TracepointName(category: "sched", name: "sched_switch")),
        (ProbeIdentity(provider: "io", name: "start"), TracepointName(category: "block", name: "block_rq_issue")),
        (ProbeIdentity(provider: "io", name: "done"), TracepointName(category: "block", name: "block_rq_complete")),
    ]

    public static func kernel(tracefs: Tracefs) -> [ProbeIdentity] {
        var out = ["BEGIN", "END", "ERROR"].map { ProbeIdentity(provider: "dtrace", name: $0) }
        for s in SyscallTable.names(tracefs: tracefs) {
            out.append(ProbeIdentity(provider: "syscall", function: s, name: "entry"))
            out.append(ProbeIdentity(provider: "syscall", function: s, name: "return"))
        }
        out += profileRates.map { ProbeIdentity(provider: "profile", name: $0) }
        out += stableProbes.filter { tracefs.exists($0.1) }.map(\.0)
        out += tracefs.allEvents().map { ProbeIdentity(provider: $0.category, name: $0.name) }
        return out
    }

    /// USDT probes of the given processes, as `<provider><pid>`; with no pids, of every
    /// running process (as DTrace lists every process's USDT providers). Each file is read
    /// once (`discovery` caches by device and inode).
    public static func usdt(pids: [Int32], discovery: USDTDiscovery = USDTDiscovery()) -> [ProbeIdentity] {
        let all = pids.isEmpty ? Files.list("/proc").compactMap { Int32($0) }.sorted() : pids
        var out: [ProbeIdentity] = []
        var seen = Set<ProbeIdentity>()
        for pid in all {
            let found = (try? discovery.probes(inProcess: pid)) ?? []
            if found.isEmpty { continue }
            for p in discovery.withFunctions(found) {
                let id = ProbeIdentity(provider: p.dtraceProvider, module: p.module, function: p.function, name: p.dtraceName)
                if seen.insert(id).inserted { out.append(id) }
            }
        }
        return out
    }

    /// USDT probes of a binary given by path (provider without a pid, as a uprobe on the file
    /// has none).
    public static func usdt(file path: String, discovery: USDTDiscovery = USDTDiscovery()) throws -> [ProbeIdentity] {
        discovery.withFunctions(try discovery.probes(inFile: path)).map {
            ProbeIdentity(provider: $0.provider, module: $0.path, function: $0.function, name: $0.dtraceName)
        }
    }

    /// The listing: every probe is numbered by its position (1-based) so ids stay the same
    /// whatever the patterns; with patterns, only probes matching one of them are shown.
    public static func render(_ probes: [ProbeIdentity], matching patterns: [ProbePattern] = []) -> String {
        var out = ProbeListText.header
        for (i, p) in probes.enumerated() where patterns.isEmpty || patterns.contains(where: { $0.matches(p) }) {
            out += ProbeListText.row(id: i + 1, provider: p.provider, module: p.module, function: p.function, name: p.name)
        }
        return out
    }
}
