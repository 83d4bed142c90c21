import Glibc
import LumosCore
import PostgresSupport
import Testing
@testable import Trace

@Suite(.serialized) struct PostgresTracingTests {
    /// A private PostgreSQL cluster (unix socket only) under pgbench: `postgresql*:::`
    /// probes found in the running server binary, self-> timing from query-start to
    /// query-done, and the count of query-done for pgbench's statement equals the
    /// transactions pgbench ran (simple protocol: one statement per transaction).
    @Test(.enabled(if: isRoot && postgresBin != nil && hasPostgresUser, "needs root, PostgreSQL and its user"))
    func pgbenchQueriesCounted() throws {
        let bin = postgresBin!
        let dir = "/tmp/lumos-trace-pg-\(getpid())"
        let port = "\(40000 + Int(getpid()) % 10000)"
        let pw = getpwnam("postgres")!.pointee
        try Files.makeDirectories(dir)
        chown(dir, pw.pw_uid, pw.pw_gid)
        func asPostgres(_ argv: [String]) throws -> Exec.Result {
            try Exec.run(["runuser", "-u", "postgres", "--"] + argv)
        }
        defer {
            _ = try? asPostgres(["\(bin)/pg_ctl", "-D", "\(dir)/data", "-m", "immediate", "stop"])
            _ = try? Exec.run(["rm", "-rf", dir])
        }
        _ = try asPostgres(["\(bin)/initdb", "-D", "\(dir)/data", "-A", "trust"])
        _ = try asPostgres(["\(bin)/pg_ctl", "-D", "\(dir)/data", "-o", "-k \(dir) -p \(port) -c listen_addresses=''", "-l", "\(dir)/log", "-w", "start"])
        let statement = "SELECT 1 AS lumos_trace_test;"
        try Files.writeAtomically("\(dir)/bench.sql", statement + "\n")
        chown("\(dir)/bench.sql", pw.pw_uid, pw.pw_gid)

        let catalog = try KernelProbeCatalog()
        let script = try DCompiler(catalog: catalog, syscallNumbers: catalog.syscallNumbers).compile(try Parser.parse("""
            postgresql*:::query-start { self->ts = timestamp; }
            postgresql*:::query-done /self->ts/ { @queries[copyinstr(arg0)] = count(); @latency = quantize(timestamp - self->ts); self->ts = 0; }
            """))
        var options = TraceOptions()
        options.quiet = true
        let session = try TraceSession(script: script, options: options, output: open("/dev/null", O_WRONLY | O_CLOEXEC))
        try session.load()
        try session.attach()
        let result = try asPostgres(["\(bin)/pgbench", "-h", dir, "-p", port, "-n", "-M", "simple", "-f", "\(dir)/bench.sql", "-t", "60", "-c", "2", "postgres"])
        session.detach()
        let processed = result.stdout.split(separator: "\n").first { $0.contains("number of transactions actually processed") }
        #expect(processed?.contains("120/120") == true, "pgbench: \(result.stdout)")
        let queries = session.snapshot("queries")
        #expect(queries.records.first { $0.keys == [.string(statement)] }?.value == .count(120))
        guard case .quantize(let buckets)? = session.snapshot("latency").records.first?.value else {
            Issue.record("no latency distribution")
            return
        }
        // pgbench's own setup queries are timed too, so the distribution holds at least the 120.
        #expect(buckets.reduce(0, +) >= 120)
    }

    /// Clauses of one USDT probe run in program order, as DTrace runs them (the kernel runs a
    /// uprobe's consumers newest first; TraceSession.attach attaches them in reverse): the
    /// second query-done clause clears what the first one reads, so the first must see it set.
    @Test(.enabled(if: canRunPostgres, "needs root, PostgreSQL and its user"))
    func clausesOfAUSDTProbeRunInOrder() throws {
        let pg = try PostgresCluster("order")
        defer { pg.stop() }
        let statement = "SELECT 2 AS lumos_trace_order;"
        let sql = try pg.script("order.sql", statement + "\n")
        let catalog = try KernelProbeCatalog()
        let script = try DCompiler(catalog: catalog, syscallNumbers: catalog.syscallNumbers).compile(try Parser.parse("""
            postgresql*:::query-start { self->ts = timestamp; }
            postgresql*:::query-done /self->ts/ { @seen[copyinstr(arg0)] = count(); }
            postgresql*:::query-done { self->ts = 0; }
            """))
        var options = TraceOptions()
        options.quiet = true
        let session = try TraceSession(script: script, options: options, output: open("/dev/null", O_WRONLY | O_CLOEXEC))
        try session.load()
        try session.attach()
        _ = try pg.pgbench(["-f", sql, "-t", "50", "-c", "1"])
        session.detach()
        #expect(session.snapshot("seen").records.first { $0.keys == [.string(statement)] }?.value == .count(50))
    }
}
