import Foundation
import Hummingbird
import LumosCore
import NIOCore
import Zones

/// The request context of every vmadmd route: Hummingbird's basic one, and the connection's
/// channel, so a stream (GET /events) ends when its client goes away rather than at its next write.
public struct DaemonContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}
public typealias DaemonRouter = Router<DaemonContext>

/// One part of vmadmd's API (docs/daemon.md, "Modules"): tenants, images, datasets, networks,
/// and Cloud Analytics (`/ca/...`, added by the Analytics target through the same protocol).
///
/// `addRoutes` is called once for each listener (the unix socket, and the TLS listener when
/// there is one), each with its own router, so it must only add routes. `run` is the module's
/// background work for the daemon's lifetime; it returns when its task is cancelled.
public protocol DaemonModule: Sendable {
    func addRoutes(to router: DaemonRouter, daemon: DaemonEnvironment)
    func run(daemon: DaemonEnvironment) async throws
}

extension DaemonModule {
    public func run(daemon: DaemonEnvironment) async throws {}
}

/// What a module's handlers get: the state root and a way to run blocking library calls.
/// There is no cache: every request opens the tenants as a CLI command does (Vmadm.open), so
/// the daemon holds no state the CLI does not see.
public struct DaemonEnvironment: Sendable {
    public let root: StateRoot

    public init(root: StateRoot) { self.root = root }

    /// Runs `body` with a freshly opened Vmadm on a thread of its own, detached from the
    /// request (a dropped connection does not cancel a create half-way).
    public func vmadm<T: Sendable>(_ body: @escaping @Sendable (Vmadm) throws -> T) async throws -> T {
        let root = self.root
        return try await Detached.run { try body(try Vmadm.openHost(root: root)) }
    }
}

/// Blocking work (the library's calls are synchronous: locks, btrfs, clone3, waits) runs on a
/// thread of its own, not on Swift's cooperative pool (two threads on this host), inside an
/// unstructured task that the request only awaits: cancelling the request does not reach it.
public enum Detached {
    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await Task.detached {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
                let thread = Thread {
                    c.resume(with: Result { try body() })
                }
                thread.start()
            }
        }.value
    }
}
