import Foundation
import Glibc
import LumosCore
import Testing
import Zones

/// `vmadm events` (docs/vmadm.md "Events") on real zones: the built `lumos vm events -j -r` runs
/// as a child process, without the daemon and beside it, while vmadm (CLI and API) changes
/// tenants; the events are checked one by one, in order.
@Suite(.serialized, .enabled(if: isRoot, "needs root: pools, namespaces and cgroups"))
struct EventsTests {
    /// A `lumos vm events` child writing to a file, ended by pid.
    final class Watcher {
        let pid: pid_t
        let path: String

        init(_ h: DaemonHost, _ args: [String], name: String) throws {
            path = h.dir + "/events-\(name).out"
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            defer { close(fd) }
            pid = try Exec.spawn(["env", "LUMOS_ROOT=\(h.dir)", DaemonHost.lumosExe, "vm", "events"] + args, stdout: .fd(fd), stderr: .fd(fd))
        }

        var text: String { (try? FD.readText(path)) ?? "" }
        var lines: [String] { text.split(separator: "\n").map(String.init) }
        var events: [JSONValue] { lines.compactMap { try? JSONValue.parse($0, what: "event") } }

        /// Waits (up to `seconds`, a bound for a broken build, not a timing assertion) until
        /// `condition` holds for the lines seen so far.
        func wait(seconds: Double = 60, _ condition: ([JSONValue]) -> Bool) -> Bool {
            let end = Date().addingTimeInterval(seconds)
            while Date() < end {
                if condition(events) { return true }
                usleep(50_000)
            }
            return condition(events)
        }

        func stop() {
            kill(pid, SIGTERM)
            _ = Exec.wait(pid)
        }
    }

    /// (type, state, the changed paths) of each event, for comparing whole sequences.
    static func shape(_ events: [JSONValue]) -> [String] {
        events.map { e in
            let changes = (e.lookup("changes")?.arrayValue ?? []).map { c in
                "\(c.lookup("path")?.stringValue ?? "?")=\(c.lookup("oldValue")?.plainText ?? "")>\(c.lookup("newValue")?.plainText ?? "")"
            }
            return ([e.lookup("type")?.stringValue ?? "?", e.lookup("state")?.stringValue ?? "-"] + changes).joined(separator: " ")
        }
    }

    static func isDelete(of uuid: String) -> ([JSONValue]) -> Bool {
        { $0.contains { $0.lookup("type") == "delete" && $0.lookup("uuid")?.stringValue == uuid } }
    }

    /// Without the daemon: create, start, update, stop, delete through the CLI, each exactly
    /// once and in order, with the tenant's uuid, alias and zonename; a stream for another
    /// uuid sees none of it; the human form says the same in one line each.
    @Test func cliChangesAreStreamedInOrderWithoutTheDaemon() throws {
        let h = try DaemonHost("events")
        defer { h.close() }
        let all = try Watcher(h, ["-j", "-r"], name: "all")
        defer { all.stop() }
        let other = UUID().uuidString.lowercased()
        let filtered = try Watcher(h, ["-j", "-r", other], name: "other")
        defer { filtered.stop() }
        let human = try Watcher(h, ["-r"], name: "human")
        defer { human.stop() }
        #expect(all.wait { $0.first?.lookup("type") == "ready" }, "no ready line: \(all.text)")
        #expect(filtered.wait { $0.first?.lookup("type") == "ready" }, "no ready line: \(filtered.text)")
        #expect(human.wait { _ in human.lines.first?.hasSuffix("] ready") == true }, "no ready line: \(human.text)")

        let created = try h.lumos(["vm", "create"], stdin: h.payload(["alias": "ev0", "autoboot": false]).serialized())
        #expect(created.status == 0, "\(created.stderr)")
        let uuid = try #require(created.stderr.split(separator: " ").last.map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) })
        for args in [["vm", "start", uuid], ["vm", "update", uuid, "alias=ev1"], ["vm", "stop", uuid], ["vm", "delete", uuid]] {
            let r = try h.lumos(args)
            #expect(r.status == 0, "\(args): \(r.stderr)")
        }
        #expect(all.wait(Self.isDelete(of: uuid)), "no delete event: \(all.text)")
        let events = Array(all.events.dropFirst())
        #expect(Self.shape(events) == [
            "create stopped",
            "modify running state=stopped>running",
            "modify running alias=ev0>ev1",
            "modify stopped state=running>stopped",
            "delete -",
        ], "\(all.text)")
        for e in events {
            #expect(e.lookup("uuid")?.stringValue == uuid)
            #expect(e.lookup("zonename")?.stringValue == uuid)
            #expect(e.lookup("source") == "vmadm")
            #expect(e.lookup("timestamp")?.stringValue?.hasPrefix("20") == true)
        }
        #expect(events.map { $0.lookup("alias")?.stringValue } == ["ev0", "ev0", "ev1", "ev1", "ev1"])

        #expect(human.wait { _ in human.lines.count >= 6 }, "\(human.text)")
        let short = String(uuid.prefix(8))
        let lines = human.lines.dropFirst().map { $0.split(separator: "]", maxSplits: 1).last.map { String($0) } ?? $0 }
        #expect(lines == [" \(short) (ev0) create: state stopped", " \(short) (ev0) modify: state stopped -> running",
                          " \(short) (ev1) modify: alias ev0 -> ev1", " \(short) (ev1) modify: state running -> stopped",
                          " \(short) (ev1) delete"], "\(human.text)")
        // The stream for another uuid got its ready line and nothing else.
        #expect(filtered.events.count == 1, "\(filtered.text)")
    }

    /// A zone whose init exits by itself (nobody ran vmadm stop) is seen through its cgroup
    /// and recorded once in the journal, also with two watchers running (two `vmadm events`)
    /// and the daemon; the daemon's GET /events streams the same events as the CLI.
    @Test func aZoneThatStopsByItselfIsRecordedOnceAndTheAPIStreamsTheSame() throws {
        let h = try DaemonHost("evobs")
        defer { h.close() }
        try h.startDaemon(["--no-autoboot"])
        let a = try Watcher(h, ["-j", "-r"], name: "a")
        defer { a.stop() }
        let b = try Watcher(h, ["-j", "-r"], name: "b")
        defer { b.stop() }
        #expect(a.wait { $0.first?.lookup("type") == "ready" } && b.wait { $0.first?.lookup("type") == "ready" })
        // The API's stream, read by curl into a file.
        let apiOut = h.dir + "/events-api.out"
        let fd = open(apiOut, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        let curl = try Exec.spawn(["curl", "-sS", "-N", "--unix-socket", h.socket, "http://localhost/events?ready=true"], stdout: .fd(fd), stderr: .fd(fd))
        close(fd)
        defer { kill(curl, SIGTERM); _ = Exec.wait(curl) }
        func apiEvents() -> [JSONValue] {
            ((try? FD.readText(apiOut)) ?? "").split(separator: "\n").compactMap { try? JSONValue.parse(String($0), what: "event") }
        }
        #expect(h.waitUntil(60) { apiEvents().first?.lookup("type") == "ready" }, "\((try? FD.readText(apiOut)) ?? "")")

        // An init that ends when told to through a file in the zone.
        let created = try h.api("POST", "/tenants", h.payload(["alias": "quits", "autoboot": false, "init_name": "/sbin/quitter"]))
        #expect(created.status == 201, "\(created.body)")
        let uuid = try #require(created.json?.lookup("uuid")?.stringValue)
        let root = try h.vmadm().rootfs(uuid)
        try Files.writeAtomically(root + "/sbin/quitter", "#!/bin/sh\nwhile [ ! -e /quit ]; do sleep 1; done\nexit 0\n", mode: 0o755)
        #expect(try h.api("POST", "/tenants/\(uuid)/start").status == 200)
        #expect(a.wait { $0.contains { $0.lookup("state") == "running" } }, "\(a.text)")
        try Files.writeAtomically(root + "/quit", "")
        #expect(a.wait { $0.contains { $0.lookup("source") == "observed" } }, "the exit was not seen: \(a.text)")
        #expect(try h.vmadm().store.read(uuid).autoboot, "autoboot stays as start set it (vmadm stop did not run)")
        #expect(try h.api("DELETE", "/tenants/\(uuid)").status == 200)

        let expected = ["create stopped", "modify running state=stopped>running", "modify stopped state=running>stopped", "delete -"]
        for w in [a, b] {
            #expect(w.wait(Self.isDelete(of: uuid)), "\(w.text)")
            let events = Array(w.events.dropFirst())
            #expect(Self.shape(events) == expected, "\(w.text)")
            #expect(events.map { $0.lookup("source")?.stringValue ?? "" } == ["vmadm", "vmadm", "observed", "vmadm"])
        }
        #expect(h.waitUntil(60) { Self.isDelete(of: uuid)(apiEvents()) })
        #expect(Self.shape(Array(apiEvents().dropFirst())) == expected, "\((try? FD.readText(apiOut)) ?? "")")
        // What the journal keeps, through the API without following: the same events.
        let kept = try h.request("GET", "/events?follow=false&uuid=\(uuid)")
        #expect(kept.status == 200)
        let keptEvents = kept.body.split(separator: "\n").compactMap { try? JSONValue.parse(String($0), what: "event") }
        #expect(Self.shape(keptEvents) == expected, "\(kept.body)")
    }

    /// Bad flags and arguments: one line, non-zero exit; the API answers 400 in JSON.
    @Test func badArgumentsAreOneLineErrors() throws {
        let h = try DaemonHost("evbad")
        defer { h.close() }
        for args in [["vm", "events", "-x"], ["vm", "events", "not-a-uuid"], ["vm", "events", "-j", "--nope"]] {
            let r = try h.lumos(args)
            #expect(r.status != 0, "\(args)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1 && r.stdout.isEmpty, "\(args): \(r.stderr)")
        }
        try h.startDaemon(["--no-autoboot"])
        for q in ["uuid=nope", "ready=maybe", "follow=2"] {
            let r = try h.request("GET", "/events?\(q)")
            #expect(r.status == 400, "\(q): \(r.body)")
            #expect(r.json?.lookup("code") != nil, "\(q): \(r.body)")
        }
    }
}
