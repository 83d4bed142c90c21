import Glibc
import LumosCore
import PostgresSupport
import Testing
@testable import Trace

/// USDT discovery on a running PostgreSQL: each file read once per session whatever the
/// number of processes and clauses, function names only for matched probes, `-l` without
/// -p finding the provider in every running process, and a binary listed by path.
@Suite(.serialized) struct USDTDiscoveryTests {
    /// The raw one-pass lookup names the same functions as the sorted symbol table.
    @Test(.enabled(if: postgresBin != nil, "needs PostgreSQL")) func functionNamesAgreeWithSymbolTable() throws {
        let path = postgresBin! + "/postgres"
        let elf = try ELFFile(path: path)
        let probes = try USDT.probes(in: elf, path: path)
        #expect(probes.count > 20)
        #expect(probes.allSatisfy { $0.function.isEmpty })
        let names = try elf.functionNames(containing: probes.map(\.address))
        for p in probes {
            let expected = try elf.symbol(containing: p.address)?.name
            #expect(names[p.address] == expected, "\(p.name) at 0x\(String(p.address, radix: 16))")
        }
        #expect(names.values.contains("pg_parse_query") && names.values.contains("PortalRun"))
    }

    /// The byte parser of /proc/PID/maps agrees with the line-splitting one and with stat(2).
    @Test func mapsParsedAsBytes() throws {
        let text = """
            55d0c0a00000-55d0c0a2c000 r--p 00000000 fd:01 1835023                    /usr/bin/bash
            55d0c0a2c000-55d0c0b0b000 r-xp 0002c000 fd:01 1835023                    /usr/bin/bash
            7f1c2c028000-7f1c2c1bd000 r-xp 00028000 103:02 393219                    /usr/lib/x86_64-linux-gnu/libc.so.6
            7f1c2c200000-7f1c2c201000 r-xp 00000000 00:00 0                          [vdso]
            7f1c2c300000-7f1c2c301000 r-xp 00000000 08:01 77                         /tmp/gone (deleted)
            7f1c2c400000-7f1c2c401000 rw-p 00000000 08:01 78                         /tmp/data

            """
        let ids = ProcessMaps.parseMappedFileIDs(Array(text.utf8))
        #expect(ids.map(\.path) == ["/usr/bin/bash", "/usr/lib/x86_64-linux-gnu/libc.so.6"])
        #expect(ids[0].id == FileID(device: FileID.makedev(0xfd, 1), inode: 1835023))
        #expect(ids[1].id == FileID(device: FileID.makedev(0x103, 2), inode: 393219))
        let mine = ProcessMaps.mappedFileIDs(pid: getpid())
        #expect(mine.map(\.path) == ProcessMaps.mappedFiles(pid: getpid()))
        for f in mine { #expect(FileID(path: f.path) == f.id, "\(f.path)") }
    }

    @Test(.enabled(if: canRunPostgres, "needs root, PostgreSQL and its user"))
    func eachFileReadOnceForAllClausesAndProcesses() throws {
        let pg = try PostgresCluster("discovery")
        defer { pg.stop() }
        let catalog = try KernelProbeCatalog()
        func describe(_ name: String) -> ProbeDescription {
            ProbeDescription(provider: "postgresql*", module: "", function: "", name: name, location: SourceLocation(line: 1, column: 1))
        }
        let (starts, _) = try catalog.resolve(describe("query-start"))
        let afterFirst = catalog.usdt.filesRead
        let (dones, _) = try catalog.resolve(describe("query-done"))
        let (txns, _) = try catalog.resolve(describe("transaction-start"))
        // Later clauses reuse the one scan.
        #expect(catalog.usdt.filesRead == afterFirst)
        // Functions as a whole-table lookup names them (query-start sits in a static
        // function Debian strips: empty, as the table says).
        let reference = try USDT.probes(inFile: postgresBin! + "/postgres").filter { $0.dtraceName == "query-start" }.map(\.function)
        #expect(!reference.isEmpty)
        #expect(Set(starts.filter { $0.module == "postgres" }.map(\.function)) == Set(reference))
        #expect(!dones.isEmpty && !txns.isEmpty)
        // Uprobes on the file (pid nil), so backends forked later fire them too.
        for p in starts {
            guard case .uprobe(_, _, let pid, _, _) = p.attach else { Issue.record("not a uprobe: \(p)"); continue }
            #expect(pid == nil)
        }
        // Files read are distinct files: no more than the distinct device+inode pairs mapped.
        var ids = Set<FileID>()
        for name in Files.list("/proc") { if let pid = Int32(name) { ids.formUnion(ProcessMaps.mappedFileIDs(pid: pid).map(\.id)) } }
        #expect(afterFirst <= ids.count + 16, "read \(afterFirst) files, \(ids.count) distinct mapped")
        // The postgres binary of the cluster's several processes maps to one id.
        let postmaster = try #require(pg.postmasterPID)
        let exe = try #require(ProcessMaps.mappedFileIDs(pid: postmaster).first { $0.path.hasSuffix("/postgres") })
        #expect(FileID(path: exe.path) == exe.id)
    }

    /// `dtrace -l -n 'postgresql*:::query-*'` without -p lists each running server
    /// process's probes as postgresql<pid>, with their functions.
    @Test(.enabled(if: canRunPostgres, "needs root, PostgreSQL and its user"))
    func listWithoutPidFindsProvider() throws {
        let pg = try PostgresCluster("list")
        defer { pg.stop() }
        let postmaster = try #require(pg.postmasterPID)
        var inv = DTraceInvocation()
        inv.list = true
        inv.sources = [(text: "postgresql*:::query-*", file: nil)]
        let text = try DTrace.listing(inv, try KernelProbeCatalog())
        let rows = text.split(separator: "\n").dropFirst()
        let mine = rows.filter { $0.contains("postgresql\(postmaster) ") }
        let names = Set(mine.compactMap { $0.split(separator: " ").last.map(String.init) })
        #expect(names.isSuperset(of: ["query-start", "query-done", "query-parse-start"]), "\(text)")
        let parse = try USDT.probes(inFile: postgresBin! + "/postgres").first { $0.dtraceName == "query-parse-start" }
        #expect(mine.contains { $0.contains(" postgres ") && $0.contains(" \(parse?.function ?? "?") query-parse-start") }, "\(text)")
        #expect(rows.allSatisfy { $0.split(separator: " ").last!.hasPrefix("query-") })
    }

    /// A binary given by path as the module lists its probes (no process needed).
    @Test(.enabled(if: isRoot && postgresBin != nil, "needs root and PostgreSQL"))
    func listBinaryByPath() throws {
        let path = postgresBin! + "/postgres"
        var inv = DTraceInvocation()
        inv.list = true
        inv.sources = [(text: "postgresql:\(path)::query-start", file: nil)]
        let text = try DTrace.listing(inv, try KernelProbeCatalog())
        let rows = text.split(separator: "\n").dropFirst()
        #expect(!rows.isEmpty && rows.allSatisfy { $0.contains(path) && $0.hasSuffix("query-start") }, "\(text)")
        inv.sources = [(text: "postgresql:/no/such/binary::", file: nil)]
        #expect(throws: LumosError.self) { try DTrace.listing(inv, try KernelProbeCatalog()) }
    }
}
