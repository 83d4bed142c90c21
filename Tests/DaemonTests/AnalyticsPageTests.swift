import Foundation
import Glibc
import LumosCore
import Testing

/// The Cloud Analytics page (`/ca/ui`, docs/analytics.md) in headless Chromium (Debian's
/// `chromium`), reaching the root-only socket through socat on a loopback port: it loads, shows
/// the heatmap of cpu.thread_samples predicated on a busy tenant with coloured cells whose
/// details name that tenant only, isolating the tenant keeps cells and isolating another value
/// empties the image, and the form creates an instrumentation. Screenshots are kept in
/// `$LUMOS_TEST_ARTIFACTS` (default `test-artifacts/` in the repository).
@Suite(.serialized, .enabled(if: isRoot, "needs root: pools, zones and bpf"))
struct AnalyticsPageTests {
    static var artifacts: String {
        if let v = getenv("LUMOS_TEST_ARTIFACTS"), v.pointee != 0 { return String(cString: v) }
        return DaemonHost.repository + "/test-artifacts"
    }

    /// Runs headless Chromium on `url`: the DOM after `budget` ms of virtual time, and a
    /// screenshot when `screenshot` is given.
    static func chromium(_ url: String, profile: String, screenshot: String? = nil, budget: Int = 8000) throws -> String {
        var argv = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=\(profile)",
                    "--window-size=1100,760", "--virtual-time-budget=\(budget)"]
        argv += screenshot.map { ["--screenshot=\($0)"] } ?? ["--dump-dom"]
        argv.append(url)
        let r = try Exec.run(argv, check: false)
        guard r.status == 0 else { throw LumosError.failed("chromium \(url): exit \(r.status): \(r.stderr.suffix(2000))") }
        return r.stdout
    }

    /// `data-NAME="VALUE"` of the dumped <body>.
    static func bodyData(_ dom: String, _ name: String) -> String? {
        guard let body = dom.range(of: "<body"), let end = dom[body.upperBound...].firstIndex(of: ">") else { return nil }
        let tag = dom[body.upperBound..<end]
        guard let r = tag.range(of: "data-\(name)=\"") else { return nil }
        return String(tag[r.upperBound...].prefix { $0 != "\"" })
    }

    @Test func pageShowsTheHeatmapOfABusyTenant() throws {
        guard Exec.which("chromium") != nil, Exec.which("socat") != nil else {
            Issue.record("chromium or socat is not installed; run scripts/install-deps.sh")
            return
        }
        let h = try DaemonHost("cap")
        defer { h.close() }
        try h.startDaemon(["--no-autoboot"])
        let alias = "cap-\(getpid())"
        let (_, spinner) = try h.busyTenant(alias)
        defer { h.stop(spinner) }
        let made = try h.api("POST", "/ca/instrumentations", [
            "module": "cpu", "stat": "thread_samples",
            "predicate": ["eq": ["zonename", .string(alias)]], "decomposition": ["zonename", "subsecond"],
        ])
        let id = try #require(made.json?.lookup("id")?.stringValue, "\(made.body)")
        // A few seconds of samples before the page looks.
        #expect(try h.waitUntil(30) {
            let v = try h.api("GET", "/ca/instrumentations/\(id)/value/raw?duration=10").json
            return (v?.lookup("value")?.objectValue?[alias]?.arrayValue?.count ?? 0) > 20
        })

        // The loopback proxy to the socket (only this test's port, only 127.0.0.1).
        let port = Int.random(in: 20_000..<40_000)
        let proxy = try Exec.spawn(["socat", "TCP-LISTEN:\(port),bind=127.0.0.1,reuseaddr,fork", "UNIX-CONNECT:\(h.socket)"])
        defer {
            kill(proxy, SIGTERM)
            _ = Exec.wait(proxy)
        }
        let base = "http://127.0.0.1:\(port)"
        #expect(h.waitUntil(10) { (try? h.request("GET", "/ping", url: base))?.status == 200 })
        let profile = h.dir + "/chromium"
        try Files.makeDirectories(Self.artifacts)

        // Watching the instrumentation: coloured cells, and the first one's details name the tenant.
        let page = "\(base)/ca/ui?id=\(id)"
        let dom = try Self.chromium(page + "&autoclick=1", profile: profile)
        #expect(Self.bodyData(dom, "ready") == "1", "\(dom.prefix(3000))")
        #expect(Int(Self.bodyData(dom, "coloured") ?? "") ?? 0 > 0, "\(dom.prefix(3000))")
        #expect(Self.bodyData(dom, "details") == alias, "\(dom.prefix(3000))")
        #expect(dom.contains("Distribution details at"))
        _ = try Self.chromium(page + "&autoclick=1", profile: profile, screenshot: Self.artifacts + "/ca-heatmap.png")

        // Isolating the tenant keeps its cells; isolating a value that is not there empties the image.
        let isolated = try Self.chromium(page + "&selected=\(alias)&mode=isolate", profile: profile)
        #expect(Int(Self.bodyData(isolated, "coloured") ?? "") ?? 0 > 0, "\(isolated.prefix(3000))")
        _ = try Self.chromium(page + "&selected=\(alias)&mode=isolate", profile: profile, screenshot: Self.artifacts + "/ca-heatmap-isolated.png")
        let other = try Self.chromium(page + "&selected=global&mode=isolate", profile: profile)
        #expect(Self.bodyData(other, "coloured") == "0", "\(other.prefix(3000))")

        // The form: metric, predicate and decomposition filled from the URL and submitted.
        let form = try Self.chromium("\(base)/ca/ui?metric=cpu.thread_samples&discrete=zonename&predicate=zonename:\(alias)&create=1",
                                     profile: profile, screenshot: Self.artifacts + "/ca-created.png")
        _ = form
        let list = try h.api("GET", "/ca/instrumentations").json?.arrayValue ?? []
        #expect(list.contains {
            $0.lookup("id")?.stringValue != id && $0.lookup("predicate") == ["eq": ["zonename", .string(alias)]]
                && $0.lookup("decomposition") == ["zonename", "subsecond"]
        }, "\(list)")
        for f in ["ca-heatmap.png", "ca-heatmap-isolated.png", "ca-created.png"] {
            #expect(Files.exists(Self.artifacts + "/" + f))
        }
    }
}
