import Foundation
import Glibc
import LumosCore
import Net
import PostgresSupport
import Testing
@testable import Analytics
import Trace

/// postgresql.queries, nic.vnic_bytes and disk.physio_ops (docs/analytics.md, "Metrics"):
/// their D programs, the fields the runner derives, and each against real work: a private
/// PostgreSQL cluster under pgbench, ping between two test network namespaces over a link named
/// as a tenant's, and direct I/O to a loop device.
@Suite struct DerivedFieldTests {
    @Test func postgresQueriesAreTimedFromStartToDone() throws {
        let s = try spec(#"{"module": "postgresql", "stat": "queries", "predicate": {"eq": ["zonename", "db"]}, "decomposition": ["query", "latency"]}"#)
        #expect(s.dProgram == """
            postgresql*:::query-start
            {
                self->ca_pg_ts = timestamp;
            }

            postgresql*:::query-done
            /self->ca_pg_ts && (zonename == "db")/
            {
                @ca[copyinstr(arg0)] = llquantize((timestamp - self->ca_pg_ts), 10, 3, 9, 10);
            }

            postgresql*:::query-done
            {
                self->ca_pg_ts = 0;
            }

            """)
    }

    /// nic.vnic_bytes keys by link name (always: links that are no tenant's are left out) and
    /// probe; its predicate is the runner's, so the kernel's is "1".
    @Test func nicBytesAreKeyedByLinkAndProbe() throws {
        let s = try spec(#"{"module": "nic", "stat": "vnic_bytes", "predicate": {"eq": ["direction", "sent"]}, "decomposition": ["zonename"]}"#)
        #expect(s.dProgram == """
            net:::net_dev_xmit
            /1/
            {
                @ca[args->name, probename] = sum(args->len);
            }

            net:::netif_receive_skb
            /1/
            {
                @ca[args->name, probename] = sum(args->len);
            }

            """)
        let context = FieldContext(tenantsByLinkPrefix: ["lz0123abcd": "web"])
        #expect(s.row(["lz0123abcd0", "netif_receive_skb"], context) == "web")
        #expect(s.row(["lz0123abcd0", "net_dev_xmit"], context) == nil)       // received: not the predicate's
        #expect(s.row(["lz0123abcdi0", "netif_receive_skb"], context) == nil)  // the cap's ifb
        #expect(s.row(["lz99999999" + "0", "netif_receive_skb"], context) == nil)  // no tenant of this root
        #expect(s.row(["eth0", "netif_receive_skb"], context) == nil)
        let byVNIC = try spec(#"{"module": "nic", "stat": "vnic_bytes", "decomposition": ["vnic"]}"#)
        #expect(byVNIC.dProgram.contains("@ca[args->name] = sum(args->len);"))
        #expect(byVNIC.row(["lz0123abcd1"], context) == "lz0123abcd1")
        let scalar = try spec(#"{"module": "nic", "stat": "vnic_bytes"}"#)
        #expect(scalar.row(["lz0123abcd1"], context) == "")
        #expect(scalar.row(["net0"], context) == nil)
    }

    @Test func diskOpsAreMatchedByDeviceAndSector() throws {
        let s = try spec(#"{"module": "disk", "stat": "physio_ops", "predicate": {"eq": ["disk", "loop7"]}, "decomposition": ["disk", "latency"]}"#)
        #expect(s.dProgram == """
            io:::start
            {
                ca_io_ts[args->dev, args->sector] = timestamp;
            }

            io:::done
            /ca_io_ts[args->dev, args->sector] && (1)/
            {
                @ca[args->dev] = llquantize((timestamp - ca_io_ts[args->dev, args->sector]), 10, 3, 10, 10);
            }

            io:::done
            {
                ca_io_ts[args->dev, args->sector] = 0;
            }

            """)
        let context = FieldContext(disks: [7 << 20 | 7: "loop7", 8 << 20: "sda"])
        #expect(s.row(["\(7 << 20 | 7)"], context) == "loop7")
        #expect(s.row(["\(8 << 20)"], context) == nil)
        // A kernel field in the predicate: compared in D, as for any other metric.
        let byType = try spec(#"{"module": "disk", "stat": "physio_ops", "predicate": {"ne": ["optype", "R"]}, "decomposition": ["optype"]}"#)
        #expect(byType.dProgram.contains("/ca_io_ts[args->dev, args->sector] && (args->rwbs != \"R\")/"))
        #expect(byType.dProgram.contains("@ca[args->rwbs] = count();"))
    }

    /// The runner's comparisons and the kernel's do not mix in one predicate.
    @Test func derivedAndKernelFieldsDoNotMix() throws {
        for text in [
            #"{"module": "disk", "stat": "physio_ops", "predicate": {"and": [{"eq": ["disk", "sda"]}, {"eq": ["optype", "W"]}]}}"#,
            #"{"module": "disk", "stat": "physio_ops", "predicate": {"or": [{"eq": ["disk", "sda"]}, {"gt": ["latency", 1000]}]}}"#,
            #"{"module": "nic", "stat": "vnic_bytes", "predicate": {"gt": ["zonename", 1]}}"#,
            #"{"module": "nic", "stat": "vnic_bytes", "decomposition": ["zonename", "vnic"]}"#,
        ] {
            do {
                _ = try spec(text)
                Issue.record("accepted: \(text)")
            } catch let e as LumosError {
                #expect(e.kind == .invalidArgument && !e.message.contains("\n"), "\(text): \(e)")
            }
        }
    }
}

@Suite(.serialized) struct MoreMetricsKernelTests {
    /// A USDT metric whose provider no running process has is a conflict with the host's
    /// state (409 over the API), not the tracer's internal error (500).
    @Test(.enabled(if: isRoot, "the probe catalogue reads tracefs"))
    func absentUSDTProviderIsAConflict() throws {
        let metric = Metric(module: "test", stat: "absent", label: "absent", unit: "events", fields: [],
                            whenNoProbes: "no process has the lumosabsent provider",
                            program: { _, aggregate in "lumosabsent\(getpid())*:::nothing\n{\n    \(aggregate)\n}\n" })
        do {
            _ = try InstrumentationRunner(id: "x", spec: try InstrumentationSpec(metric: metric), stateRoot: StateRoot("/tmp/lumos-ca-root-\(getpid())"))
            Issue.record("started")
        } catch let e as LumosError {
            #expect(e.kind == .busy && e.message.contains("no process has the lumosabsent provider"), "\(e)")
        }
    }

    /// postgresql.queries under pgbench (simple protocol: one query per transaction), by query
    /// text and latency and predicated on that text: the runner's seconds add up to exactly the
    /// transactions pgbench ran, in latency buckets above 1 µs; another statement's row is absent.
    @Test(.enabled(if: canRunPostgres, "needs root, PostgreSQL and its user"))
    func pgbenchQueriesAndTheirLatency() throws {
        let pg = try PostgresCluster("ca")
        defer { pg.stop() }
        let statement = "SELECT \(getpid()) AS lumos_ca_test;"
        let script = try pg.script("ca.sql", statement + "\n")
        let runners = try startedRunners([
            ("pg1", #"{"module": "postgresql", "stat": "queries", "predicate": {"eq": ["query", "\#(statement)"]}, "decomposition": ["query", "latency"]}"#),
            ("pg2", #"{"module": "postgresql", "stat": "queries", "decomposition": ["latency"]}"#),
        ])
        defer { for r in runners { r.stop() } }
        let (byQuery, everything) = (runners[0], runners[1])
        let result = try pg.pgbench(["-f", script, "-t", "300", "-c", "2"])
        #expect(result.stdout.contains("600/600"), "pgbench: \(result.stdout)")
        #expect(eventually(10) { byQuery.total(statement) == 600 }, "counted \(byQuery.total(statement))")
        let keys = Set(byQuery.values(start: 0, duration: 1 << 40).flatMap { $0.rows.keys })
        #expect(keys == [statement])
        // pgbench's own set-up queries count in the unpredicated one too.
        #expect(eventually(10) { everything.total("") >= 600 })
        // Latency: buckets of at least 1 µs (a round trip through a backend is no less).
        let bounds = try #require(byQuery.bounds)
        var latencies: [ClosedRange<Int64>: Int64] = [:]
        for s in byQuery.values(start: 0, duration: 1 << 40) {
            for (i, c) in (s.rows[statement] ?? []).enumerated() where c > 0 { latencies[bounds.ranges[i], default: 0] += c }
        }
        #expect(!latencies.isEmpty && latencies.keys.allSatisfy { $0.lowerBound >= 1000 }, "\(latencies)")
        // The heatmap's details name the statement.
        let latest = try #require(byQuery.latest)
        let (map, shown) = try AnalyticsModule.heatmap(byQuery, query: [("start_time", "\(latest - 29)"), ("duration", "30"), ("width", "300"), ("height", "100")])
        #expect(map.present.keys.sorted() == [statement] && (map.present[statement] ?? 0) > 0, "\(map.present)")
        _ = shown
    }

    /// nic.vnic_bytes: two test namespaces joined by a veth whose one side is named as a tenant
    /// of a private state root names its host link; ping over it: bytes sent and received
    /// under the tenant's alias (its peer inside the "tenant", carrying the same packets, counts
    /// nothing), each at least the ICMP payloads and at most twice them.
    @Test(.enabled(if: isRoot, "needs root: netns and bpf"))
    func pingBytesOfATenantLink() throws {
        let uuid = UUID().uuidString.lowercased()
        let alias = "ca-nic-\(getpid())"
        let root = StateRoot("/tmp/lumos-ca-nic-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try Files.makeDirectories(root.sub("zones", uuid))
        try Files.writeAtomically(root.sub("zones", uuid, "manifest.json"), #"{"uuid": "\#(uuid)", "alias": "\#(alias)"}"#)
        let sw = "ca-sw-\(getpid())", tenant = "ca-tn-\(getpid())"
        let link = try TenantNetwork.hostLinkName(tenant: uuid, interface: "net0")
        defer {
            _ = try? Exec.run(["ip", "netns", "del", sw], check: false)
            _ = try? Exec.run(["ip", "netns", "del", tenant], check: false)
            _ = try? Exec.run(["rm", "-rf", root.path], check: false)
        }
        try Exec.run(["ip", "netns", "add", sw])
        try Exec.run(["ip", "netns", "add", tenant])
        try Exec.run(["ip", "-n", sw, "link", "add", link, "type", "veth", "peer", "name", "net0", "netns", tenant])
        try Exec.run(["ip", "-n", sw, "addr", "add", "10.213.7.1/30", "dev", link])
        try Exec.run(["ip", "-n", tenant, "addr", "add", "10.213.7.2/30", "dev", "net0"])
        try Exec.run(["ip", "-n", sw, "link", "set", link, "up"])
        try Exec.run(["ip", "-n", tenant, "link", "set", "net0", "up"])

        let runners = try startedRunners([
            ("nic1", #"{"module": "nic", "stat": "vnic_bytes", "predicate": {"eq": ["zonename", "\#(alias)"]}, "decomposition": ["direction"]}"#),
            ("nic2", #"{"module": "nic", "stat": "vnic_bytes", "decomposition": ["vnic"]}"#),
        ], root: root)
        defer { for r in runners { r.stop() } }
        let (byDirection, byZone) = (runners[0], runners[1])
        let count = 20, size = 1000
        try Exec.run(["ip", "netns", "exec", tenant, "ping", "-q", "-c", "\(count)", "-i", "0.05", "-s", "\(size)", "10.213.7.1"])
        func bytes(_ r: InstrumentationRunner, _ key: String) -> Int64 {
            r.values(start: 0, duration: 1 << 40).reduce(0) { $0 + ($1.rows[key]?.first ?? 0) }
        }
        let payload = Int64(count * size)
        #expect(eventually(10) { bytes(byDirection, "sent") >= payload && bytes(byDirection, "received") >= payload })
        for d in ["sent", "received"] { #expect(bytes(byDirection, d) < 2 * payload, "\(d): \(bytes(byDirection, d))") }
        #expect(Set(byDirection.values(start: 0, duration: 1 << 40).flatMap { $0.rows.keys }) == ["sent", "received"])
        #expect(Set(byZone.values(start: 0, duration: 1 << 40).flatMap { $0.rows.keys }) == [link])
    }

    /// disk.physio_ops: 200 direct 64 KiB writes and 200 direct 4 KiB reads on a loop device,
    /// predicated on its name (a derived field: the runner's predicate): at least that many
    /// operations of that disk alone, writes and reads apart by optype, latencies above 1 µs.
    @Test(.enabled(if: isRoot, "needs root: loop devices and bpf"))
    func directIOOnALoopDevice() throws {
        let file = "/tmp/lumos-ca-disk-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).img"
        try Exec.run(["truncate", "-s", "32M", file])
        defer { _ = try? Exec.run(["rm", "-f", file], check: false) }
        let device = try Exec.run(["losetup", "-f", "--show", file]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? Exec.run(["losetup", "-d", device], check: false) }
        let name = Files.basename(device)
        let runners = try startedRunners([
            ("disk1", #"{"module": "disk", "stat": "physio_ops", "predicate": {"eq": ["disk", "\#(name)"]}, "decomposition": ["disk", "latency"]}"#),
            ("disk2", #"{"module": "disk", "stat": "physio_ops", "decomposition": ["optype"]}"#),
        ])
        defer { for r in runners { r.stop() } }
        let (byLatency, byType) = (runners[0], runners[1])
        try Exec.run(["dd", "if=/dev/zero", "of=\(device)", "bs=64k", "count=200", "oflag=direct"])
        try Exec.run(["dd", "if=\(device)", "of=/dev/null", "bs=4k", "count=200", "iflag=direct"])
        #expect(eventually(10) { byLatency.total(name) >= 400 }, "counted \(byLatency.total(name))")
        #expect(Set(byLatency.values(start: 0, duration: 1 << 40).flatMap { $0.rows.keys }) == [name])
        let bounds = try #require(byLatency.bounds)
        var lowest = Int64.max
        for s in byLatency.values(start: 0, duration: 1 << 40) {
            for (i, c) in (s.rows[name] ?? []).enumerated() where c > 0 { lowest = min(lowest, bounds.ranges[i].lowerBound) }
        }
        #expect(lowest >= 1000, "lowest bucket \(lowest)")
        let types = Set(byType.values(start: 0, duration: 1 << 40).flatMap { $0.rows.keys })
        #expect(types.contains { $0.hasPrefix("W") } && types.contains { $0.hasPrefix("R") }, "\(types)")
    }
}
