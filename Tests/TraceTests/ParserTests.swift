import Testing
@testable import Trace

/// Golden tests: each D program parses to exactly this S-expression form.
struct ParserGoldenTests {
    func parsed(_ source: String, macros: [String: String] = [:]) throws -> String {
        try Parser.parse(source, macros: macros).clauses.map(\.description).joined(separator: "\n")
    }

    @Test func countByExecname() throws {
        #expect(try parsed("syscall:::entry { @[execname] = count(); }")
            == "syscall:::entry { (= (index @ execname) (call count)); }")
    }

    @Test func shortDescriptionsFillFromTheRight() throws {
        let p = try Parser.parse("BEGIN {} read:entry {} tick-1s {}")
        #expect(p.clauses.map { $0.probes[0].description } == [":::BEGIN", "::read:entry", ":::tick-1s"])
    }

    @Test func predicateAndPrecedence() throws {
        #expect(try parsed("syscall::read:return /execname == \"dd\" && arg0 > 0/ { @b = quantize(timestamp - self->ts * 2); }")
            == "syscall::read:return /(&& (== execname \"dd\") (> arg0 0))/ { (= @b (call quantize (- timestamp (* self->ts 2)))); }")
    }

    @Test func predicateWithDivisionInsideParentheses() throws {
        #expect(try parsed("tick-1s /(x / 2) > 1/ { x++; }") == ":::tick-1s /(> (/ x 2) 1)/ { (post++ x); }")
    }

    @Test func multipleProbesAndGlobs() throws {
        #expect(try parsed("syscall::read*:entry,\nsyscall::write:entry\n{ self->ts = timestamp; }")
            == "syscall::read*:entry, syscall::write:entry { (= self->ts timestamp); }")
    }

    @Test func ternaryCastsAndMembers() throws {
        #expect(try parsed("sched:::on-cpu { this->x = (int)args->prev_pid ? -1 : ~arg0; trace(args[1]); }")
            == "sched:::on-cpu { (= this->x (? (cast int (-> args prev_pid)) (- 1) (~ arg0))); (call trace (index args 1)); }")
    }

    @Test func printfWithEscapesAndTupleKeys() throws {
        #expect(try parsed("END { printf(\"%s\\t%d\\n\", \"a\", 1); @c[pid, probefunc] = sum(arg2); printa(@c); exit(0) }")
            == ":::END { (call printf \"%s\t%d\\n\" \"a\" 1); (= (index @c pid probefunc) (call sum arg2)); (call printa @c); (call exit 0); }")
    }

    @Test func commentsPragmasAndDeclarations() throws {
        let p = try Parser.parse("""
            #!/usr/sbin/dtrace -s
            #pragma D option quiet
            /* counts */
            self int ts; // per thread
            int total;
            BEGIN { total = 0x10 + 010; }
            """)
        #expect(p.pragmas.map(\.0) == ["quiet"])
        #expect(p.declarations.map { "\($0.scope.rawValue) \($0.type) \($0.name)" } == ["self int ts", "global int total"])
        #expect(p.clauses.map(\.description) == [":::BEGIN { (= total (+ 16 8)); }"])
    }

    @Test func macrosExpand() throws {
        #expect(try parsed("syscall:::entry /pid == $target/ { trace($$1); }", macros: ["target": "42", "1": "hi"])
            == "syscall:::entry /(== pid 42)/ { (call trace \"hi\"); }")
        #expect(try parsed("pid$target::malloc:entry {}", macros: ["target": "7"]) == "pid7::malloc:entry { }")
    }

    @Test func ifElse() throws {
        #expect(try parsed("BEGIN { if (x > 1) { y = 1; } else y = 2; }")
            == ":::BEGIN { (if (> x 1) { (= y 1) } else { (= y 2) }); }")
    }

    @Test func bareDescriptionHasNoBody() throws {
        let p = try Parser.parse("syscall::read:entry")
        #expect(p.clauses.count == 1 && p.clauses[0].body == nil)
    }

    @Test func syntaxErrorsPointAtLineAndColumn() {
        #expect(throws: DCompileError(.syntax, "syntax error near \";\"", at: SourceLocation(line: 2, column: 7))) {
            try Parser.parse("BEGIN {\n  x = ; }")
        }
        #expect(throws: DCompileError(.syntax, "syntax error near end of input", at: SourceLocation(line: 1, column: 14))) {
            try Parser.parse("BEGIN { x = 1")
        }
        #expect(throws: DCompileError(.syntax, "unterminated string constant", at: SourceLocation(line: 1, column: 16))) {
            try Parser.parse("BEGIN { printf(\"abc); }")
        }
        #expect(throws: DCompileError(.probe, "invalid probe description \"a:b:c:d:e\": too many fields", at: SourceLocation(line: 1, column: 1))) {
            try Parser.parse("a:b:c:d:e { }")
        }
    }

    @Test func errorRendering() {
        let e = DCompileError(.syntax, "syntax error near \";\"", at: SourceLocation(line: 2, column: 7))
        #expect(e.rendered(scriptName: "x.d") == "failed to compile script x.d: line 2: column 7: syntax error near \";\"")
    }
}
