import Foundation
import Glibc
import LumosCore
import Testing
import Zones

/// A hardware VM (brand kvm, docs/vm.md) through the API under TCG: the small guest
/// (`imgadm build small-guest`: Debian's kernel, busybox, acpid) created, started, seen running,
/// powered off from inside (the event watch sees it, with QMP's reason), started again, stopped
/// with the ACPI button and deleted by HTTP calls, each step checked with the CLI.
@Suite(.serialized, .enabled(if: isRoot && Files.exists("/usr/bin/qemu-system-x86_64"), "needs root and QEMU"))
struct DaemonKVMTests {
    /// Builds the small guest image (`imgadm build small-guest`) in `h` and starts its daemon
    /// with TCG; the image's uuid.
    static func smallGuestDaemon(_ h: DaemonHost) throws -> String {
        let built = try h.lumos(["img", "build", "small-guest"])
        #expect(built.status == 0, "\(built.stderr)")
        let images = try h.lumos(["img", "list", "-H", "-o", "uuid,name"]).stdout
        let image = try #require(images.split(separator: "\n").first { $0.hasSuffix("small-guest") }?.split(separator: " ").first.map(String.init))
        try h.startDaemon(["--no-autoboot"], env: ["LUMOS_VM_ACCEL": "tcg"])
        return image
    }

    @Test func aKVMGuestRoundTripsThroughTheAPI() throws {
        let h = try DaemonHost("kvm")
        defer { h.close() }
        let image = try Self.smallGuestDaemon(h)
        func cliState(_ uuid: String) throws -> String {
            try h.lumos(["vm", "list", "-H", "-o", "uuid,type,state"]).stdout.split(separator: "\n")
                .first { $0.hasPrefix(uuid) }.map { $0.split(separator: " ").dropFirst().joined(separator: " ") } ?? "absent"
        }

        let created = try h.api("POST", "/tenants", ["brand": "kvm", "alias": "apivm", "ram": 128, "autoboot": false,
                                                      "disks": [["boot": true, "image_uuid": .string(image)]]])
        #expect(created.status == 201, "\(created.body)")
        let uuid = try #require(created.json?.lookup("uuid")?.stringValue)
        #expect(created.json?.lookup("brand") == "kvm" && created.json?.lookup("state") == "stopped", "\(created.body)")
        #expect(try cliState(uuid) == "KVM stopped")

        let started = try h.api("POST", "/tenants/\(uuid)/start")
        #expect(started.status == 200, "\(started.body)")
        let running = try h.api("GET", "/tenants/\(uuid)").json
        #expect(running?.lookup("state") == "running")
        #expect(running?.lookup("lumos_accelerator")?.stringValue?.hasPrefix("tcg") == true, "\(String(describing: running?.lookup("lumos_accelerator")))")
        #expect(try cliState(uuid) == "KVM running")
        // QEMU answers QMP for the CLI while the daemon runs it.
        let info = try h.lumos(["vm", "info", uuid, "status"])
        #expect((try? JSONValue.parse(info.stdout, what: "info"))?.lookup("status.status") == "running", "\(info.stdout) \(info.stderr)")

        // Stop is the ACPI power button once the guest's acpid listens ("lumos-guest: up").
        let console = h.dir + "/zones/\(uuid)/console.log"
        let up = h.waitUntil(240) { ((try? FD.readText(console)) ?? "").contains("lumos-guest: up") }
        #expect(up, "the guest did not come up: \(((try? FD.readText(console)) ?? "").suffix(1500))")
        // The guest powers itself off (typed at its console): QEMU exits, nobody ran vmadm stop;
        // the watch records it, with QEMU's SHUTDOWN reason from QMP (the console relay's verdict).
        _ = try h.lumos(["vm", "console", uuid], stdin: "\npoweroff -f\n")
        #expect(h.waitUntil(120) { (try? h.api("GET", "/tenants/\(uuid)").json?.lookup("state")) == "stopped" })
        func kept() throws -> [JSONValue] {
            try h.request("GET", "/events?follow=false&uuid=\(uuid)").body.split(separator: "\n")
                .compactMap { try? JSONValue.parse(String($0), what: "event") }
        }
        #expect(h.waitUntil(30) { (try? kept().last?.lookup("source")) == "observed" })
        let observed = try kept().last
        #expect(observed?.lookup("state") == "stopped", "\(String(describing: observed))")
        let reason = (observed?.lookup("changes")?.arrayValue ?? []).first { $0.lookup("path") == "lumos_state_reason" }
        #expect(reason?.lookup("newValue") == "the guest powered off", "\(String(describing: observed))")

        // Started again, and stopped through the API with the ACPI button.
        #expect(try h.api("POST", "/tenants/\(uuid)/start").status == 200)
        let upAgain = h.waitUntil(240) { ((try? FD.readText(console)) ?? "").components(separatedBy: "lumos-guest: up").count > 2 }
        #expect(upAgain, "the guest did not come up again: \(((try? FD.readText(console)) ?? "").suffix(1500))")
        let stopped = try h.api("POST", "/tenants/\(uuid)/stop", ["timeout": 120])
        #expect(stopped.status == 200, "\(stopped.body)")
        #expect(try h.api("GET", "/tenants/\(uuid)").json?.lookup("state") == "stopped")
        #expect(try cliState(uuid) == "KVM stopped")
        #expect(((try? FD.readText(console)) ?? "").contains("Power down"), "the guest powered itself off: \(((try? FD.readText(console)) ?? "").suffix(1500))")

        let deleted = try h.api("DELETE", "/tenants/\(uuid)")
        #expect(deleted.status == 200, "\(deleted.body)")
        #expect(try h.api("GET", "/tenants/\(uuid)").status == 404)
        #expect(try cliState(uuid) == "absent")
        let left = try h.leftovers(uuid)
        #expect(left.isEmpty, "\(left)")
        // The journal has the VM's life as for a zone.
        let life = try kept()
        #expect(life.map { "\($0.lookup("type")?.stringValue ?? "") \($0.lookup("state")?.stringValue ?? "-") \($0.lookup("source")?.stringValue ?? "")" }
                == ["create stopped vmadm", "modify running vmadm", "modify stopped observed", "modify running vmadm", "modify stopped vmadm", "delete - vmadm"],
                "\(life)")
        #expect(life.allSatisfy { $0.lookup("brand") == "kvm" })
    }

    /// The seed's showcase (docs/analytics.md, "By VM"): cpu.thread_samples predicated on a
    /// VM's zonename (its alias) while its guest boots under TCG, decomposed by execname: its
    /// vCPU thread is among them (QEMU names it "CPU 0/TCG"); the
    /// heatmap isolated on that thread is a PNG.
    @Test func aVMsCPUSamplesByVCPUThread() throws {
        let h = try DaemonHost("kvmca")
        defer { h.close() }
        let image = try Self.smallGuestDaemon(h)
        let alias = "cavm-\(getpid())"
        let created = try h.api("POST", "/tenants", ["brand": "kvm", "alias": .string(alias), "ram": 128, "autoboot": false,
                                                      "disks": [["boot": true, "image_uuid": .string(image)]]])
        let uuid = try #require(created.json?.lookup("uuid")?.stringValue, "\(created.body)")
        let made = try h.api("POST", "/ca/instrumentations", [
            "module": "cpu", "stat": "thread_samples",
            "predicate": ["eq": ["zonename", .string(alias)]], "decomposition": ["execname", "subsecond"],
        ])
        let id = try #require(made.json?.lookup("id")?.stringValue, "\(made.body)")
        #expect(try h.api("POST", "/tenants/\(uuid)/start").status == 200)
        var keys: [String] = []
        let seen = try h.waitUntil(120) {
            keys = Array(try h.api("GET", "/ca/instrumentations/\(id)/value/raw?duration=30").json?.lookup("value")?.objectValue?.keys ?? [:].keys)
            return keys.contains { $0.hasPrefix("CPU ") && $0.hasSuffix("/TCG") }
        }
        #expect(seen, "no vCPU thread among the VM's samples: \(keys)")
        if let vcpu = keys.first(where: { $0.hasPrefix("CPU ") }) {
            let png = h.dir + "/vcpu.png"
            let selected = vcpu.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? vcpu
            let r = try h.request("GET", "/ca/instrumentations/\(id)/value/heatmap/image?duration=30&width=60&height=30&selected=\(selected)&isolate=true", curl: ["-o", png])
            #expect(r.status == 200)
            #expect(Array(try FD.readFile(png).prefix(4)) == [0x89, 0x50, 0x4e, 0x47])
        }
        #expect(try h.api("DELETE", "/ca/instrumentations/\(id)").status == 204)
        #expect(try h.api("POST", "/tenants/\(uuid)/stop", ["force": true]).status == 200)
        #expect(try h.api("DELETE", "/tenants/\(uuid)").status == 200)
    }
}
