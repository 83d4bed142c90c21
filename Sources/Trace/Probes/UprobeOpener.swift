import Dispatch
import Glibc
import LumosCore

/// Opens uprobe perf events on a worker while the program is still being compiled and
/// loaded. Registering a uprobe makes the kernel wait for an RCU grace period (5-30 ms
/// here; docs/trace.md, "USDT start-up"), which is most of a USDT start-up, so it is begun
/// as soon as the probes are resolved. The events are opened in the order the session would
/// open them (a uprobe runs its consumers newest first, so that order is what makes clauses
/// run in program order), and the session gives each its program with `take`. The grace
/// periods are expedited meanwhile (ExpeditedGracePeriods).
///
/// Public API:
///   UprobeOpener.Key(path:offset:pid:isReturn:semaphore:)
///   .start(_ keys:)            -- opens them, in order, on a worker
///   .take(_ key:) -> Int32?    -- waits for the worker; the next fd opened for key, or nil
///   deinit                      -- closes what was not taken
public final class UprobeOpener: @unchecked Sendable {
    public struct Key: Hashable, Sendable {
        public var path: String
        public var offset: UInt64
        public var pid: Int32?
        public var isReturn: Bool
        public var semaphore: UInt64?

        public init?(_ attach: ProbeAttachPoint) {
            guard case .uprobe(let path, let offset, let pid, let isReturn, let semaphore) = attach else { return nil }
            self.path = path
            self.offset = offset
            self.pid = pid
            self.isReturn = isReturn
            self.semaphore = semaphore
        }
    }

    private var opened: [Key: [Int32]] = [:]
    private let done = DispatchGroup()
    private let lock = PthreadMutex()

    public init() {}

    public func start(_ keys: [Key]) {
        guard !keys.isEmpty else { return }
        done.enter()
        DispatchQueue.global().async { [self] in
            ExpeditedGracePeriods.shared.during {
                for k in keys {
                    // A failure is left to the session, which opens that one itself and reports it.
                    guard let fd = try? ProbeAttach.openUprobe(path: k.path, offset: k.offset, returnProbe: k.isReturn,
                                                               pid: k.pid ?? -1, semaphoreOffset: k.semaphore) else { break }
                    lock.locked { opened[k, default: []].append(fd) }
                }
            }
            done.leave()
        }
    }

    public func take(_ key: Key) -> Int32? {
        done.wait()
        return lock.locked {
            guard var fds = opened[key], !fds.isEmpty else { return nil }
            let fd = fds.removeFirst()
            opened[key] = fds
            return fd
        }
    }

    deinit {
        done.wait()
        for fds in opened.values { for fd in fds { close(fd) } }
    }
}
