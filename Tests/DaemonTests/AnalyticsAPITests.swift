import Foundation
import Glibc
import LumosCore
import Testing

/// Cloud Analytics through vmadmd (docs/analytics.md): a real lx tenant created over the API runs
/// a busy loop (`lumos login`, zlogin); an instrumentation of cpu.thread_samples predicated on its zonename (the
/// tenant's alias) sees it, the heatmap is a PNG and its details name the tenant; bad requests
/// are 400s with one-line JSON; delete stops it.
@Suite(.serialized, .enabled(if: isRoot, "needs root: pools, zones and bpf"))
struct AnalyticsAPITests {
    @Test func instrumentATenantOverTheAPI() throws {
        let h = try DaemonHost("ca")
        defer { h.close() }
        try h.startDaemon(["--no-autoboot"])
        let alias = "ca-\(getpid())"
        let (_, spinner) = try h.busyTenant(alias)
        defer { h.stop(spinner) }

        let metrics = try h.api("GET", "/ca")
        #expect(metrics.status == 200)
        #expect(metrics.json?.lookup("metrics")?.arrayValue?.contains { $0.lookup("stat") == "thread_samples" } == true)

        let made = try h.api("POST", "/ca/instrumentations", [
            "module": "cpu", "stat": "thread_samples",
            "predicate": ["eq": ["zonename", .string(alias)]],
            "decomposition": ["zonename", "subsecond"],
        ])
        #expect(made.status == 201, "\(made.body)")
        let id = try #require(made.json?.lookup("id")?.stringValue)
        #expect(made.json?.lookup("d-program")?.stringValue?.contains("zonename == \"\(alias)\"") == true)
        #expect(try h.api("GET", "/ca/instrumentations").json?.arrayValue?.count == 1)

        // Samples of the tenant, under its alias, and of nothing else.
        var value: [String: JSONValue] = [:]
        let seen = try h.waitUntil(30) {
            value = try h.api("GET", "/ca/instrumentations/\(id)/value/raw?duration=10").json?.lookup("value")?.objectValue ?? [:]
            // A second's worth of samples (99 Hz), so the cells probed below cannot all miss a
            // tenant that has only just begun to be seen (a CI run found that).
            let count = value[alias]?.arrayValue?.reduce(0.0) { $0 + ($1.arrayValue?.last?.numberValue ?? 0) } ?? 0
            return count >= 99
        }
        #expect(seen, "no samples for \(alias): \(value)")
        #expect(Array(value.keys) == [alias])

        // The heatmap: a PNG (signature, IHDR of the asked size) with cells; isolate changes it.
        let png = h.dir + "/heatmap.png", isolated = h.dir + "/isolated.png"
        let q = "duration=10&width=100&height=50"
        #expect(try h.request("GET", "/ca/instrumentations/\(id)/value/heatmap/image?\(q)", curl: ["-o", png]).status == 200)
        #expect(try h.request("GET", "/ca/instrumentations/\(id)/value/heatmap/image?\(q)&selected=\(alias)&isolate=true", curl: ["-o", isolated]).status == 200)
        let bytes = try FD.readFile(png)
        #expect(Array(bytes.prefix(8)) == [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
        #expect(Array(bytes[16..<24]) == [0, 0, 0, 100, 0, 0, 0, 50])
        #expect(try FD.readFile(isolated) != bytes)
        // Asked for JSON, Cloud Analytics' own answer: the same kind of PNG in base64, its
        // parameters and the values present.
        let ca = try h.request("GET", "/ca/instrumentations/\(id)/value/heatmap/image?\(q)", curl: ["-H", "Accept: application/json"])
        #expect(ca.status == 200, "\(ca.body)")
        #expect(ca.json?.lookup("width") == 100 && ca.json?.lookup("height") == 50 && ca.json?.lookup("duration") == 10, "\(ca.body.prefix(300))")
        #expect(ca.json?.lookup("present")?.arrayValue?.contains(.string(alias)) == true, "\(ca.body.prefix(300))")
        let decoded = ca.json?.lookup("image")?.stringValue.flatMap { Data(base64Encoded: $0) }.map { Array($0) } ?? []
        #expect(decoded.count > 24 && Array(decoded.prefix(8)) == Array(bytes.prefix(8)) && Array(decoded[16..<24]) == Array(bytes[16..<24]))

        // Details of every column's cells until one has the tenant (a spinning thread is in
        // most 20 ms rows of most seconds).
        var found = false
        for x in stride(from: 95, through: 0, by: -10) where !found {
            for y in stride(from: 1, to: 50, by: 2) where !found {
                let d = try h.api("GET", "/ca/instrumentations/\(id)/value/heatmap/details?\(q)&x=\(x)&y=\(y)")
                #expect(d.status == 200, "\(d.body)")
                if let n = d.json?.lookup("present")?.objectValue?[alias]?.numberValue, n > 0 {
                    #expect(d.json?.lookup("present")?.objectValue?.count == 1)
                    found = true
                }
            }
        }
        #expect(found)

        // Bad requests: 400 and one line of JSON; unknown ids 404.
        for path in ["/ca/instrumentations/\(id)/value/heatmap/image?width=abc",
                     "/ca/instrumentations/\(id)/value/heatmap/image?isolate=true&exclude=true",
                     "/ca/instrumentations/\(id)/value/heatmap/details?x=1",
                     "/ca/instrumentations/\(id)/value/raw?duration=0",
                     // Past 2^40 a time would no longer be an exact JSON integer (schemathesis found it).
                     "/ca/instrumentations/\(id)/value/raw?start_time=4995978817858079744",
                     "/ca/instrumentations/\(id)/value/heatmap/image?start_time=1099511627777"] {
            let r = try h.request("GET", path)
            #expect(r.status == 400, "\(path): \(r.body)")
            #expect(r.json?.lookup("code") == "InvalidArgument" && !r.body.dropLast().contains("\n"), "\(path): \(r.body)")
        }
        for body in [#"{"module": "cpu", "stat": "thread_samples", "predicate": {"eq": ["zonename", "a\"b"]}}"#,
                     #"{"module": "cpu", "stat": "nope"}"#, #"not json"#] {
            let r = try h.request("POST", "/ca/instrumentations", body: body)
            #expect(r.status == 400, "\(body): \(r.body)")
        }
        #expect(try h.api("GET", "/ca/instrumentations").json?.arrayValue?.count == 1)
        #expect(try h.api("GET", "/ca/instrumentations/999").status == 404)

        #expect(try h.api("DELETE", "/ca/instrumentations/\(id)").status == 204)
        #expect(try h.api("GET", "/ca/instrumentations/\(id)").status == 404)
        #expect(try h.api("GET", "/ca/instrumentations").json == [])
    }

    /// Instrumentations survive a daemon restart, even kill -9 (docs/analytics.md, "Restarts"):
    /// the one still defined is running again under its id with its program and crtime and
    /// gathers values; the deleted one stays deleted; new ids do not reuse old ones; a recorded
    /// definition that cannot start is reported in the log, kept, and removed by DELETE.
    @Test func instrumentationsSurviveARestart() throws {
        let h = try DaemonHost("car")
        defer { h.close() }
        try h.startDaemon(["--no-autoboot"])
        let spinner = try Exec.spawn(["sh", "-c", "while :; do :; done"])
        defer {
            kill(spinner, SIGKILL)
            _ = Exec.wait(spinner)
        }
        let kept = try h.api("POST", "/ca/instrumentations", ["module": "cpu", "stat": "thread_samples", "decomposition": ["execname"], "retention-time": 120])
        #expect(kept.status == 201, "\(kept.body)")
        let gone = try h.api("POST", "/ca/instrumentations", ["module": "syscall", "stat": "syscalls", "decomposition": ["syscall"]])
        #expect(gone.status == 201, "\(gone.body)")
        let id = try #require(kept.json?.lookup("id")?.stringValue), goneID = try #require(gone.json?.lookup("id")?.stringValue)
        #expect(try h.api("DELETE", "/ca/instrumentations/\(goneID)").status == 204)
        // A definition a restart cannot start (as a corrupt or outdated one would be).
        let bad = h.dir + "/ca/instrumentations/90.json"
        try Files.writeAtomically(bad, #"{"id": "90", "definition": {"module": "cpu", "stat": "nope"}}"#)

        h.stopDaemon(signal: SIGKILL)
        try h.startDaemon(["--no-autoboot"])
        let list = try h.api("GET", "/ca/instrumentations").json?.arrayValue ?? []
        #expect(list.map { $0.lookup("id")?.stringValue } == [id], "\(list)")
        let again = try h.api("GET", "/ca/instrumentations/\(id)")
        #expect(again.status == 200)
        for k in ["d-program", "crtime", "decomposition", "retention-time"] {
            #expect(again.json?.lookup(k) == kept.json?.lookup(k), "\(k): \(again.body)")
        }
        #expect(again.json?.lookup("enabled") == .bool(true))
        #expect(try h.waitUntil(30) {
            (try h.api("GET", "/ca/instrumentations/\(id)/value/raw?duration=5").json?.lookup("value")?.objectValue?.isEmpty) == false
        })
        #expect(try h.api("GET", "/ca/instrumentations/\(goneID)").status == 404)
        #expect(h.log.contains("instrumentation 90 not restored"), "\(h.log)")
        #expect(try h.api("GET", "/ca/instrumentations/90").status == 404)
        let next = try h.api("POST", "/ca/instrumentations", ["module": "cpu", "stat": "thread_samples"])
        #expect(next.status == 201)
        #expect((Int(next.json?.lookup("id")?.stringValue ?? "") ?? 0) > 90, "\(next.body)")
        #expect(try h.api("DELETE", "/ca/instrumentations/90").status == 204)
        #expect(!Files.exists(bad))
        #expect(try h.api("DELETE", "/ca/instrumentations/90").status == 404)
    }
}
