import Glibc
import LumosCore
import PostgresSupport
import Testing
@testable import Trace

/// Strings of DTrace's default 256 bytes on a real PostgreSQL under pgbench: statements
/// longer than 63 bytes that share a long prefix are each their own aggregation key, compare
/// and print whole, and strsize cuts them where it says.
@Suite(.serialized) struct StringSizeTests {
    func session(_ source: String, stringLimit: Int? = nil, output: Int32) throws -> TraceSession {
        let catalog = try KernelProbeCatalog()
        let compiler = DCompiler(catalog: catalog, syscallNumbers: catalog.syscallNumbers)
        if let stringLimit { compiler.stringLimit = stringLimit }
        let script = try compiler.compile(try Parser.parse(source))
        var options = TraceOptions()
        options.quiet = true
        return try TraceSession(script: script, options: options, output: output)
    }

    @Test(.enabled(if: canRunPostgres, "needs root, PostgreSQL and its user"))
    func longStatementsAreDistinctKeys() throws {
        let pg = try PostgresCluster("strsize")
        defer { pg.stop() }
        // 150-odd bytes each, the first 140 the same.
        let prefix = "SELECT 1 AS lumos_strsize_\(getpid())_" + String(repeating: "abcdefghij", count: 11)
        let statements = ["one", "two", "three"].map { "\(prefix)_\($0);" }
        #expect(statements.allSatisfy { $0.utf8.count > 140 && $0.utf8.count < 256 })
        let sql = try pg.script("long.sql", statements.joined(separator: "\n") + "\n")
        let out = "/tmp/lumos-trace-str-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        defer { close(fd); unlink(out) }
        let s = try session("""
            postgresql*:::query-start /copyinstr(arg0) == "\(statements[1])"/ { @two = count(); printf("%s\\n", copyinstr(arg0)); }
            postgresql*:::query-start { @q[copyinstr(arg0)] = count(); }
            """, output: fd)
        try s.load()
        try s.attach()
        let r = try pg.pgbench(["-f", sql, "-t", "40", "-c", "1"])
        s.detach()
        s.drain()
        #expect(r.stdout.contains("40/40"), "\(r.stdout)")
        let q = s.snapshot("q").records
        for st in statements {
            #expect(q.first { $0.keys == [.string(st)] }?.value == .count(40), "\(st)")
        }
        #expect(s.snapshot("two").records.first?.value == .count(40))
        #expect(TextFile.read(out) == String(repeating: statements[1] + "\n", count: 40))

        // strsize=32: the statements are cut to 31 bytes and merge into one key.
        let t = try session("postgresql*:::query-start { @q[copyinstr(arg0)] = count(); }", stringLimit: 32, output: fd)
        try t.load()
        try t.attach()
        _ = try pg.pgbench(["-f", sql, "-t", "10", "-c", "1"])
        t.detach()
        t.drain()
        let cut = String(prefix.prefix(31))
        #expect(t.snapshot("q").records.first { $0.keys == [.string(cut)] }?.value == .count(30))
    }

    @Test func strsizeOption() throws {
        var o = TraceOptions()
        #expect(o.stringSize == 256)
        try o.set("strsize", "128")
        #expect(o.stringSize == 128)
        #expect(throws: LumosError.self) { try o.set("strsize", "1024") }
        #expect(throws: LumosError.self) { try o.set("strsize", "1") }
        #expect(o.stringSize == 128)
    }
}
