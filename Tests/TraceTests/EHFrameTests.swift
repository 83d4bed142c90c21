import Glibc
import LumosCore
import Testing
@testable import Trace

/// The .eh_frame reader against binutils: every row `readelf --debug-dump=frames-interp`
/// prints for a file must be the row EHFrame finds at that address (CFA rule and offset,
/// where rbp was saved, and the outermost frame where the return address is undefined).
@Suite struct EHFrameTests {
    struct ReadelfRow {
        var address: UInt64
        var cfa: String
        var rbp: String?
        var ra: String?
    }

    /// Rows of readelf's interpreted table for each FDE. An FDE with no instructions of its
    /// own prints no rows: it has its CIE's initial row at its start.
    static func readelfRows(_ path: String) throws -> (rows: [ReadelfRow], starts: Set<UInt64>, ends: [UInt64]) {
        // readelf exits 1 over warnings about other sections of some libraries; the table is printed.
        let text = try Exec.run(["readelf", "--wide", "--debug-dump=frames-interp", path], check: false).stdout
        var rows: [ReadelfRow] = []
        var starts: Set<UInt64> = []
        var ends: [UInt64] = []
        var columns: [String] = []
        var cieRows: [String: ReadelfRow] = [:]
        var current: (kind: String, id: String, cie: String, start: UInt64, rows: Int)?
        func finish() {
            if let c = current, c.kind == "FDE", c.rows == 0, var r = cieRows[c.cie] {
                r.address = c.start
                rows.append(r)
            }
        }
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            if f.count >= 4, f[3] == "FDE" || f[3] == "CIE" {
                finish()
                let cie = f.first(where: { $0.hasPrefix("cie=") }).map { String($0.dropFirst(4)) } ?? ""
                var start: UInt64 = 0
                if let pc = f.first(where: { $0.hasPrefix("pc=") }) {
                    let r = pc.dropFirst(3).components(separatedBy: "..")
                    if r.count == 2, let b = UInt64(r[0], radix: 16), let e = UInt64(r[1], radix: 16) {
                        start = b
                        if e > b { starts.insert(b); ends.append(e) }
                    }
                }
                current = (f[3], f[0], cie, start, 0)
                continue
            }
            if f.first == "LOC" { columns = f; continue }
            guard current != nil, f.count == columns.count, f[1] != "ZERO", let addr = UInt64(f[0], radix: 16) else { continue }
            func column(_ name: String) -> String? { columns.firstIndex(of: name).map { f[$0] } }
            let row = ReadelfRow(address: addr, cfa: f[1], rbp: column("rbp"), ra: column("ra"))
            if current!.kind == "CIE" {
                if cieRows[current!.id] == nil { cieRows[current!.id] = row }
            } else {
                rows.append(row)
                current!.rows += 1
            }
        }
        finish()
        return (rows, starts, ends)
    }

    static func row(at address: UInt64, in rows: [EHFrame.Row]) -> EHFrame.Row? {
        var lo = 0, hi = rows.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if rows[mid].address <= address { lo = mid + 1 } else { hi = mid }
        }
        return lo == 0 ? nil : rows[lo - 1]
    }

    static func compare(_ path: String) throws -> (checked: Int, mismatches: [String]) {
        let ours = try EHFrame.rows(of: try ELFFile(path: path))
        let (theirs, starts, ends) = try readelfRows(path)
        var bad: [String] = []
        for t in theirs {
            guard let o = row(at: t.address, in: ours) else { bad.append("0x\(String(t.address, radix: 16)): no row"); continue }
            var want: (EHFrame.Rule, Int32)?
            if t.ra == "u" {
                want = (.stop, 0)
            } else if t.cfa == "exp" {
                want = nil  // .plt or .expression
            } else if t.cfa.hasPrefix("rsp+") {
                want = (.rsp, Int32(t.cfa.dropFirst(4)) ?? -1)
            } else if t.cfa.hasPrefix("rbp+") {
                want = (.rbp, Int32(t.cfa.dropFirst(4)) ?? -1)
            } else {
                want = (.expression, 0)
            }
            if let w = want {
                if o.rule != w.0 || (w.0 != .stop && w.0 != .expression && o.cfaOffset != w.1) {
                    bad.append("0x\(String(t.address, radix: 16)): readelf \(t.cfa) ra=\(t.ra ?? "-"), ours \(o.rule) \(o.cfaOffset)")
                }
            } else if o.rule != .plt && o.rule != .expression {
                bad.append("0x\(String(t.address, radix: 16)): readelf exp, ours \(o.rule)")
            }
            if o.rule != .stop, let rbp = t.rbp, rbp.hasPrefix("c") {
                if o.rbpOffset.map(Int.init) != Int(rbp.dropFirst()) {
                    bad.append("0x\(String(t.address, radix: 16)): rbp readelf \(rbp), ours \(o.rbpOffset.map(String.init) ?? "unchanged")")
                }
            } else if o.rule != .stop, o.rbpOffset != nil {
                bad.append("0x\(String(t.address, radix: 16)): rbp readelf \(t.rbp ?? "unchanged"), ours \(o.rbpOffset!)")
            }
            if bad.count > 20 { break }
        }
        // Past the end of a function that no other function follows, there is no rule.
        for e in ends where !starts.contains(e) {
            if let o = row(at: e, in: ours), o.address == e, o.rule != .none {
                bad.append("0x\(String(e, radix: 16)): a function ends here, ours \(o.rule)")
            }
        }
        return (theirs.count, bad)
    }

    @Test func libcMatchesReadelf() throws {
        let libc = ["/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"].first(where: Files.exists)
        let path = try #require(libc)
        let (checked, bad) = try Self.compare(path)
        #expect(checked > 10_000, "readelf printed only \(checked) rows")
        #expect(bad.isEmpty, "\(bad.prefix(20).joined(separator: "\n"))")
    }

    /// A program without frame pointers, at -O2: the rules change inside functions (pushes,
    /// stack adjustments) and PLT entries use the expression rule.
    @Test func programWithoutFramePointersMatchesReadelf() throws {
        let prog = try TestProgram([Self.unwindSource], name: "nofp", flags: ["-O2", "-fomit-frame-pointer", "-fasynchronous-unwind-tables"])
        defer { prog.remove() }
        let (checked, bad) = try Self.compare(prog.binary)
        #expect(checked > 5)
        #expect(bad.isEmpty, "\(bad.joined(separator: "\n"))")
        let rows = try EHFrame.rows(of: try ELFFile(path: prog.binary))
        #expect(rows.contains { $0.rule == .plt }, "no PLT rule in \(rows)")
        #expect(rows.contains { $0.rule == .rsp && $0.cfaOffset > 8 })
    }

    @Test func truncatedSectionIsAnError() throws {
        // A CIE whose length runs past the end of the section.
        let bytes: [UInt8] = [0x40, 0, 0, 0, 0, 0, 0, 0, 1, 0x7a, 0x52, 0]
        #expect(throws: LumosError.self) { try EHFrame.parse(bytes, sectionAddress: 0x1000) }
        // An FDE that points at no CIE.
        let orphan: [UInt8] = [0x10, 0, 0, 0, 0x40, 0, 0, 0] + [UInt8](repeating: 0, count: 12)
        #expect(throws: LumosError.self) { try EHFrame.parse(orphan, sectionAddress: 0x1000) }
    }

    /// Three non-inlined functions that each keep data on the stack, so each has its own CFA
    /// offsets. `prog N` loops for ever with `leaf` hot (for a profile); `prog N sys R` runs R
    /// rounds, with a getppid() in `leaf` and 1 ms sleeps between rounds.
    static let unwindSource = """
        #include <stdlib.h>
        #include <stdio.h>
        #include <string.h>
        #include <unistd.h>

        volatile unsigned long sink;
        int sys;

        __attribute__((noinline)) unsigned long leaf(unsigned long n) {
            volatile unsigned long buf[16];
            for (unsigned long i = 0; i < n; i++) { buf[i & 15] = i * 2654435761u; sink += buf[(i * 7) & 15]; }
            if (sys) sink += getppid();
            return sink;
        }

        __attribute__((noinline)) unsigned long middle(unsigned long n) {
            volatile unsigned long pad[32];
            pad[n & 31] = n;
            unsigned long r = leaf(n + pad[n & 31] - n);
            return r + pad[(n + 1) & 31];
        }

        __attribute__((noinline)) unsigned long outer(unsigned long n) {
            volatile unsigned long pad[8];
            pad[n & 7] = leaf(1);
            return middle(n) + pad[n & 7];
        }

        int main(int argc, char **argv) {
            unsigned long n = argc > 1 ? strtoul(argv[1], 0, 10) : 1000;
            sys = argc > 2 && strcmp(argv[2], "sys") == 0;
            int rounds = argc > 3 ? atoi(argv[3]) : -1;
            unsigned long total = 0;
            for (int r = 0; rounds < 0 || r < rounds; r++) {
                total += outer(n);
                if (sys) usleep(1000);
            }
            printf("%lu\\n", total);
            return 0;
        }
        """
}
