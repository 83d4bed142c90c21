import Testing
@testable import Trace

/// A fixed probe list, so type checking and code generation run without a kernel.
struct FakeCatalog: ProbeCatalog {
    static let switchFields = [
        TracepointField(name: "prev_comm", cType: "char[16]", offset: 8, size: 16, isSigned: false),
        TracepointField(name: "prev_pid", cType: "pid_t", offset: 24, size: 4, isSigned: true),
        TracepointField(name: "next_comm", cType: "char[16]", offset: 40, size: 16, isSigned: false),
    ]

    func resolve(_ d: ProbeDescription) throws -> (probes: [ResolvedProbe], matched: Int) {
        let all: [ResolvedProbe] = [
            ResolvedProbe(provider: "dtrace", name: "BEGIN", attach: .begin, context: .none),
            ResolvedProbe(provider: "dtrace", name: "END", attach: .end, context: .none),
            ResolvedProbe(provider: "syscall", function: "read", name: "entry", attach: .tracepoint(category: "syscalls", name: "sys_enter_read"), context: .syscall(entry: true, function: "read")),
            ResolvedProbe(provider: "syscall", function: "read", name: "return", attach: .tracepoint(category: "syscalls", name: "sys_exit_read"), context: .syscall(entry: false, function: "read")),
            ResolvedProbe(provider: "sched", name: "sched_switch", attach: .tracepoint(category: "sched", name: "sched_switch"), context: .tracepoint(FakeCatalog.switchFields)),
            ResolvedProbe(provider: "profile", name: "tick-1s", attach: .tick(periodNs: 1_000_000_000), context: .perfEvent),
        ]
        let found = all.filter { globMatch(d.provider, $0.provider) && globMatch(d.function, $0.function) && globMatch(d.name, $0.name) }
        return (found, found.count)
    }
}

/// Golden tests of the type pass: accepted programs and the exact error (line, column, text).
struct TypeCheckerGoldenTests {
    func compile(_ source: String) throws -> CompiledScript {
        try DCompiler(catalog: FakeCatalog()).compile(try Parser.parse(source))
    }

    func error(_ source: String) -> String? {
        do {
            _ = try compile(source)
            return nil
        } catch let e as DCompileError {
            return e.description
        } catch {
            return "\(error)"
        }
    }

    @Test func variablesAreTypedByTheirFirstAssignment() throws {
        let s = try compile("""
            BEGIN { name = "x"; n = 1; a["k", 2] = execname; self->t = timestamp; }
            syscall::read:entry { n++; self->t = timestamp; @d[execname, pid] = quantize(arg2); }
            END { printf("%s %d %s\\n", name, n, a["k", 2]); }
            """)
        #expect(s.programs.count == 3)
        #expect(s.aggregations.map(\.name) == ["d"])
        #expect(s.aggregations[0].keyTypes == [.string, .integer(signed: true, size: 4)])
        #expect(s.aggregations[0].valueSize == 127 * 8)
        #expect(s.actions.map(\.argumentTypes) == [[.string, .int64, .string]])
    }

    @Test func clauseLocalsAreTypedForKeys() throws {
        let s = try compile("syscall::read:entry { this->name = execname; this->n = 1; @[this->name, this->n] = count(); }")
        #expect(s.aggregations[0].keyTypes == [.string, .int64])
    }

    /// Temporaries of an integer-valued expression are freed once its value is computed,
    /// so many string comparisons fit the 512-byte BPF stack.
    @Test func manyStringComparisonsFitTheStack() throws {
        let names = (0..<16).map { "execname == \"n\($0)\"" }.joined(separator: " || ")
        let s = try compile("syscall::read:entry /\(names)/ { @[execname, probefunc] = count(); }")
        #expect(s.programs.count == 1)
    }

    @Test func tracepointFieldsAreTyped() throws {
        let s = try compile("sched:::sched_switch { @[args->prev_comm, args->prev_pid] = count(); }")
        #expect(s.aggregations[0].keyTypes == [.string, .integer(signed: true, size: 4)])
    }

    @Test func lquantizeAndLlquantizeLayouts() throws {
        let s = try compile("syscall::read:return { @a = lquantize(arg0, 0, 100, 10); @b = llquantize(arg0, 10, 0, 6, 20); }")
        #expect(s.aggregations[0].valueSize == 12 * 8)
        let buckets = try LogLinearBuckets(factor: 10, low: 0, high: 6, steps: 20)
        #expect(s.aggregations[1].valueSize == buckets.count * 8)
    }

    @Test func errors() {
        #expect(error("BEGIN { x = y + 1; }") == "line 1: column 13: failed to resolve y: Unknown variable name")
        #expect(error("BEGIN { s = \"a\"; s = 1; }") == "line 1: column 18: s is string and cannot be assigned an integer")
        #expect(error("BEGIN { printf(\"%d\\n\", execname); }") == "line 1: column 24: printf( ) argument #2 is incompatible with conversion %d: string")
        #expect(error("BEGIN { printf(\"%d %d\\n\", 1); }") == "line 1: column 9: printf( ) prototype mismatch: 2 conversions but 1 argument")
        #expect(error("BEGIN {\n  @a = count();\n  @a = sum(1);\n}") == "line 3: column 3: @a: aggregation redefined with a different function or key signature")
        #expect(error("BEGIN { @a = lquantize(1, 0, 10); }") == "line 1: column 14: lquantize( ) requires 4 arguments")
        // Parameters that would overflow 64 bits or make no buckets are errors, not traps.
        #expect(error("BEGIN { @a = lquantize(5, -9223372036854775808, 9223372036854775807, 1); }") == "line 1: column 14: lquantize( ) has too many levels (more than 2^63)")
        #expect(error("BEGIN { @a = lquantize(5, 0, 100, 9223372036854775807); }") == "line 1: column 14: lquantize( ) step 9223372036854775807 is larger than upper bound minus lower bound: there must be at least one level")
        #expect(error("BEGIN { @a = llquantize(5, 10, 30, 40, 10); }") == "line 1: column 14: llquantize( ) low magnitude 10^30 does not fit in 64 bits")
        #expect(error("BEGIN { @a = llquantize(5, 10, 0, 18, 10); }") == "line 1: column 14: llquantize( ) factor 10 raised to the high magnitude 18 plus one must fit in 64 bits")
        #expect(error("BEGIN { @a = llquantize(5, 2, 0, 62, 2); }") == "line 1: column 14: llquantize( ) factor 2 raised to the high magnitude 62 plus one must fit in 64 bits")
        #expect(error("BEGIN { @a = llquantize(5, 2, 0, 61, 2); }") == nil)
        #expect(error("BEGIN { @a = llquantize(5, 10, 0, 5, 10000); }")?.hasPrefix("line 1: column 14: llquantize( ) would have ") == true)
        #expect(error("BEGIN { @a = llquantize(5, 2, 0, 10, 65536); }") == "line 1: column 14: llquantize( ) factor and steps must be at most 65535")
        #expect(error("BEGIN { @a = 1; }") == "line 1: column 14: @a: aggregations can only be assigned an aggregating function (count, sum, avg, min, max, stddev, quantize, lquantize, llquantize)")
        #expect(error("syscall::read:entry { trace(args->fd); }") == "line 1: column 29: args-> is for tracepoints; use args[N] or argN on syscall probes")
        #expect(error("sched:::sched_switch { trace(args->nope); }") == "line 1: column 30: nope is not a member of args for sched:::sched_switch (fields: prev_comm, prev_pid, next_comm)")
        #expect(error("BEGIN { system(\"ls\"); }") == "line 1: column 9: destructive actions are not allowed unless -w is given: system( )")
        #expect(error("BEGIN { x = execname == 1; }") == "line 1: column 22: operator == operands have incompatible types: string and int64_t")
        #expect(error("nosuch:::probe { }") == "line 1: column 1: probe description nosuch:::probe does not match any probes")
        #expect(error("BEGIN { trace(this->x); }") == "line 1: column 15: this->x is used before it is assigned in this clause")
    }

    @Test func everyProgramEndsInExitAndRelocatesItsMaps() throws {
        let s = try compile("syscall::read:entry /execname == \"dd\"/ { @[probefunc] = count(); }")
        let p = s.programs[0]
        #expect(p.instructions.last == BPFInstruction(code: 0x95))
        for r in p.mapRelocations {
            #expect(p.instructions[r.instruction].code == 0x18 && p.instructions[r.instruction].src == 1)
            #expect(r.map < s.maps.count)
        }
    }
}
