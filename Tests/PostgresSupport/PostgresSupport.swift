import Glibc
import LumosCore

// What TraceTests, AnalyticsTests and their suites share: a private PostgreSQL 15 cluster
// (Debian's server, whose stapsdt notes carry the `postgresql` provider) under pgbench.
// Not part of any product.

/// Debian's PostgreSQL server binary directory (postgres and pgbench), if installed.
public let postgresBin: String? = {
    guard let version = Files.list("/usr/lib/postgresql").sorted().last else { return nil }
    let bin = "/usr/lib/postgresql/\(version)/bin"
    return Files.exists("\(bin)/postgres") && Files.exists("\(bin)/pgbench") ? bin : nil
}()
public let hasPostgresUser = getpwnam("postgres") != nil
public let canRunPostgres = getuid() == 0 && postgresBin != nil && hasPostgresUser

/// A private PostgreSQL cluster for one test: unix socket only, in a directory named by
/// the test and pid (runs can overlap), stopped and removed by `stop()` (call it in a
/// defer: it also runs when the test fails).
public final class PostgresCluster {
    public let bin: String
    public let dir: String
    public let port: String
    let pw: passwd

    public init(_ name: String) throws {
        bin = postgresBin!
        let unique = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        dir = "/tmp/lumos-trace-pg-\(name)-\(unique)"
        port = "\(40000 + Int.random(in: 0..<10000))"
        pw = getpwnam("postgres")!.pointee
        try Files.makeDirectories(dir)
        chown(dir, pw.pw_uid, pw.pw_gid)
        do {
            _ = try asPostgres(["\(bin)/initdb", "-D", "\(dir)/data", "-A", "trust"])
            _ = try asPostgres(["\(bin)/pg_ctl", "-D", "\(dir)/data", "-o", "-k \(dir) -p \(port) -c listen_addresses=''",
                                "-l", "\(dir)/log", "-w", "start"])
        } catch {
            stop()
            throw error
        }
    }

    public func asPostgres(_ argv: [String]) throws -> Exec.Result {
        try Exec.run(["runuser", "-u", "postgres", "--"] + argv)
    }

    /// The postmaster's pid (first line of postmaster.pid).
    public var postmasterPID: Int32? {
        (try? FD.readText("\(dir)/data/postmaster.pid"))?.split(separator: "\n").first.flatMap { Int32($0) }
    }

    /// A pgbench script file readable by the postgres user.
    public func script(_ name: String, _ text: String) throws -> String {
        let path = "\(dir)/\(name)"
        try Files.writeAtomically(path, text)
        chown(path, pw.pw_uid, pw.pw_gid)
        return path
    }

    /// pgbench with the simple protocol (one statement per query-start).
    public func pgbench(_ args: [String]) throws -> Exec.Result {
        try asPostgres(["\(bin)/pgbench", "-h", dir, "-p", port, "-n", "-M", "simple"] + args + ["postgres"])
    }

    public func stop() {
        _ = try? asPostgres(["\(bin)/pg_ctl", "-D", "\(dir)/data", "-m", "immediate", "stop"])
        _ = try? Exec.run(["rm", "-rf", dir])
    }
}
