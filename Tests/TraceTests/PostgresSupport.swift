import Glibc
import LumosCore
import Testing
@testable import Trace

/// Debian's PostgreSQL server binary, whose stapsdt notes carry the `postgresql` provider.
let postgresBin: String? = {
    guard let version = Files.list("/usr/lib/postgresql").sorted().last else { return nil }
    let bin = "/usr/lib/postgresql/\(version)/bin"
    return Files.exists("\(bin)/postgres") && Files.exists("\(bin)/pgbench") ? bin : nil
}()
let hasPostgresUser = getpwnam("postgres") != nil
let canRunPostgres = isRoot && postgresBin != nil && hasPostgresUser

/// A private PostgreSQL cluster for one test: unix socket only, in a directory named by
/// the test and pid (runs can overlap), stopped and removed by `stop()` (call it in a
/// defer: it also runs when the test fails).
final class PostgresCluster {
    let bin: String
    let dir: String
    let port: String
    let pw: passwd

    init(_ name: String) throws {
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

    func asPostgres(_ argv: [String]) throws -> Exec.Result {
        try Exec.run(["runuser", "-u", "postgres", "--"] + argv)
    }

    /// The postmaster's pid (first line of postmaster.pid).
    var postmasterPID: Int32? {
        TextFile.read("\(dir)/data/postmaster.pid")?.split(separator: "\n").first.flatMap { Int32($0) }
    }

    /// A pgbench script file readable by the postgres user.
    func script(_ name: String, _ text: String) throws -> String {
        let path = "\(dir)/\(name)"
        try Files.writeAtomically(path, text)
        chown(path, pw.pw_uid, pw.pw_gid)
        return path
    }

    /// pgbench with the simple protocol (one statement per query-start).
    func pgbench(_ args: [String]) throws -> Exec.Result {
        try asPostgres(["\(bin)/pgbench", "-h", dir, "-p", port, "-n", "-M", "simple"] + args + ["postgres"])
    }

    func stop() {
        _ = try? asPostgres(["\(bin)/pg_ctl", "-D", "\(dir)/data", "-m", "immediate", "stop"])
        _ = try? Exec.run(["rm", "-rf", dir])
    }
}
