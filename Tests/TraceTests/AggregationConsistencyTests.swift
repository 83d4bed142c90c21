import Glibc
import LumosCore
import PostgresSupport
import Testing
@testable import Trace

/// DTrace's aggregation semantics under load, on a real PostgreSQL under pgbench: the
/// aggregation actions of one firing act on one snapshot, and after exit() no probe
/// changes what END prints.
@Suite(.serialized) struct AggregationConsistencyTests {
    func session(_ source: String, output: Int32) throws -> TraceSession {
        let catalog = try KernelProbeCatalog()
        let script = try DCompiler(catalog: catalog, syscallNumbers: catalog.syscallNumbers).compile(try Parser.parse(source))
        var options = TraceOptions()
        options.quiet = true
        return try TraceSession(script: script, options: options, output: output)
    }

    func tempFile() -> String { "/tmp/lumos-trace-agg-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }

    /// pgbench in the background (not waited for here).
    func load(_ pg: PostgresCluster, _ args: [String]) throws -> pid_t {
        try Exec.spawn(["runuser", "-u", "postgres", "--", "\(pg.bin)/pgbench", "-h", pg.dir, "-p", pg.port, "-n", "-M", "simple"]
                       + args + ["postgres"], stdout: .null, stderr: .null)
    }

    /// `trunc(@, 8); printa(@)` every 100 ms while two pgbench clients run statements with
    /// random constants (thousands of new keys a second): every printa shows exactly 8 rows.
    @Test(.enabled(if: canRunPostgres, "needs root, PostgreSQL and its user"))
    func truncThenPrintaUnderLoadPrintsExactlyN() throws {
        let pg = try PostgresCluster("trunc")
        defer { pg.stop() }
        let sql = try pg.script("trunc.sql", "\\set r random(1, 100000000)\nSELECT :r AS lumos_trunc_test;\n")
        let bench = try load(pg, ["-f", sql, "-c", "2", "-T", "8"])
        defer { _ = Exec.wait(bench) }
        // pgbench connected and running before the probes are attached.
        usleep(1_500_000)
        let out = tempFile()
        let fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        defer { close(fd); unlink(out) }
        let s = try session("""
            postgresql*:::query-start { @q[copyinstr(arg0)] = count(); }
            tick-100ms { trunc(@q, 8); printf("--\\n"); printa("%s @@row@@ %@d\\n", @q); }
            """, output: fd)
        try s.load()
        try s.attach()
        let end = monotonicSeconds() + 3
        while monotonicSeconds() < end { s.poll(timeoutMs: 50) }
        s.detach()
        s.drain()
        let text = TextFile.read(out) ?? ""
        let blocks = text.components(separatedBy: "--\n").dropFirst()
        #expect(blocks.count >= 10, "\(text.prefix(2000))")
        // Rows are counted by their marker: a statement's text may hold newlines.
        let rows = blocks.map { $0.components(separatedBy: "@@row@@").count - 1 }
        // Before pgbench has made 8 keys a printa shows fewer (a loaded machine may be slow
        // to start it); from the first full one on, trunc always leaves exactly 8.
        let full = rows.drop { $0 < 8 }
        #expect(full.count >= 5 && full.allSatisfy { $0 == 8 }, "rows per printa: \(rows)")
        // Every probe on the postgres binary counts, other clusters' statements too: which
        // 8 are kept is not asserted, only that each printa shows the one truncated snapshot.
    }

    /// exit() on the 500th statement of a one-client pgbench that goes on running: END's
    /// printa shows 500, and so does the aggregation after the session ended.
    @Test(.enabled(if: canRunPostgres, "needs root, PostgreSQL and its user"))
    func endAfterExitEqualsLastSnapshot() throws {
        let pg = try PostgresCluster("exit")
        defer { pg.stop() }
        let statement = "SELECT 1 AS lumos_exit_\(getpid());"
        let sql = try pg.script("exit.sql", statement + "\n")
        let out = tempFile()
        let fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        defer { close(fd); unlink(out) }
        let s = try session("""
            postgresql*:::query-start /copyinstr(arg0) == "\(statement)"/ { @n = count(); n = n + 1; }
            postgresql*:::query-start /n >= 500/ { exit(0); }
            END { printa("%@d\\n", @n); }
            """, output: fd)
        try s.load()
        try s.attach()
        let bench = try load(pg, ["-f", sql, "-c", "1", "-t", "20000"])
        defer { _ = Exec.wait(bench) }
        let end = monotonicSeconds() + 60
        while s.exitStatus == nil && monotonicSeconds() < end { s.poll(timeoutMs: 100) }
        #expect(s.exitStatus == 0)
        // pgbench is still running statements while END runs.
        try s.finish()
        #expect(TextFile.read(out) == "500\n")
        #expect(s.snapshot("n").records.first?.value == .count(500))
    }
}
