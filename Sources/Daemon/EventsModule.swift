import Foundation
import Hummingbird
import LumosCore
import Zones

/// `/events`: `vmadm events -j` over HTTP (docs/daemon.md "Events"), a streaming
/// `application/x-ndjson` response, one event a line, for as long as the client reads. It is
/// the host's event journal (TenantEventLog) tailed, the file `vmadm events` tails: the daemon
/// adds nothing of its own but the watch for state changes no vmadm command made, which it
/// records in that journal once a second (Vmadm.recordObservedStates), as `vmadm events` does.
struct EventsModule: DaemonModule {
    func addRoutes(to router: DaemonRouter, daemon: DaemonEnvironment) {
        // ?uuid=U1,U2 (only these), ?ready=true (a ready line first), ?history=true (what the
        // journal keeps first), ?follow=false (only what the journal keeps, then the end).
        router.get("events") { request, context in
            let q = request.uri.queryParameters
            let only = Set(try (q["uuid"].map(String.init) ?? "").split(separator: ",").map { part -> String in
                let u = String(part).lowercased()
                guard ValueChecks.isUUID(u) else { throw LumosError.invalid("events: uuid=\(part) is not a VM uuid; give full uuids, comma-separated") }
                return u
            })
            let ready = try Self.flag(q["ready"].map(String.init), "ready")
            let follow = try Self.flag(q["follow"].map(String.init), "follow", default: true)
            let history = try Self.flag(q["history"].map(String.init), "history") || !follow
            let log = TenantEventLog(root: daemon.root)
            // Opened here, before the response starts: nothing appended after the request is missed.
            let tail = log.tail(fromStart: history)
            let channel = context.channel
            let body = ResponseBody { writer in
                func send(_ e: TenantEvent) async throws {
                    try await writer.write(ByteBuffer(string: e.json.serialized(pretty: false) + "\n"))
                }
                if ready { try await send(.ready()) }
                // A client that goes away ends the stream: its channel closes (or the next write fails).
                while !Task.isCancelled && channel.isActive {
                    for e in tail.next() where only.isEmpty || only.contains(e.uuid) { try await send(e) }
                    if !follow { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                try await writer.finish(nil)
            }
            return Response(status: .ok, headers: [.contentType: "application/x-ndjson", .cacheControl: "no-store"], body: body)
        }
    }

    static func flag(_ text: String?, _ name: String, default value: Bool = false) throws -> Bool {
        switch text {
        case nil: return value
        case "false", "0": return false
        case "true", "1", "": return true
        case let t?: throw LumosError.invalid("events: \(name)=\(t) must be true or false")
        }
    }

    /// The watch for state changes nobody made through vmadm (an init that exited, a guest
    /// that powered off, vmadm kill): as soon as a zone's cgroup.events changes
    /// (CgroupEventWatch), and once a second while the daemon runs.
    func run(daemon: DaemonEnvironment) async throws {
        let known = KnownStates(TenantEventLog(root: daemon.root).lastStates())
        let cgroups = CgroupEventWatch()
        while !Task.isCancelled {
            _ = try? await daemon.vmadm { v in known.update { v.recordObservedStates(known: &$0) } }
            // The wait blocks a dispatch worker (at most a second; workers are reused, so no
            // thread is made per wait), not the server's executor.
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                DispatchQueue.global().async {
                    _ = cgroups.wait(milliseconds: 1000)
                    done.resume()
                }
            }
        }
    }

    /// The watch's last view of each tenant's state, between its runs on a thread each.
    final class KnownStates: @unchecked Sendable {
        private let lock = NSLock()
        private var states: [String: String]
        init(_ states: [String: String]) { self.states = states }
        func update(_ body: (inout [String: String]) -> Void) { lock.withLock { body(&states) } }
    }
}
