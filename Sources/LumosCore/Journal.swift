import Foundation
import Glibc

/// An intent record: written before a multi-step operation changes anything, updated as steps
/// complete, removed when the operation is done. A record whose lock nobody holds belongs to a
/// command that died (kill -9, power loss); the next command finishes or undoes it
/// (docs/architecture.md "State and safety").
public struct Intent: Codable, Sendable, Equatable {
    public var operation: String
    public var subject: String
    public var steps: [String]
    public var data: [String: String]
    public var pid: Int32
    public var started: String

    public func did(_ step: String) -> Bool { steps.contains(step) }
}

/// A directory of intent records, one per subject and lock file per subject.
public struct Journal: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    public func lockPath(_ subject: String) -> String { "\(directory)/\(subject).lock" }
    func recordPath(_ subject: String) -> String { "\(directory)/\(subject).intent.json" }

    /// Takes the subject's lock (waiting for another command to finish with it).
    public func lock(_ subject: String, wait: Bool = true) throws -> FileLock {
        try FileLock(lockPath(subject), wait: wait)
    }

    /// Records that `operation` on `subject` begins. The caller holds the subject's lock.
    public func begin(_ operation: String, _ subject: String, data: [String: String] = [:]) throws -> IntentRecord {
        try Files.makeDirectories(directory)
        let intent = Intent(operation: operation, subject: subject, steps: [], data: data, pid: getpid(),
                            started: ISO8601DateFormatter().string(from: Date()))
        let record = IntentRecord(journal: self, intent: intent)
        try record.save()
        return record
    }

    public func read(_ subject: String) -> Intent? {
        guard let bytes = try? FD.readFile(recordPath(subject)) else { return nil }
        return try? JSONDecoder().decode(Intent.self, from: Data(bytes))
    }

    public func remove(_ subject: String) {
        unlink(recordPath(subject))
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }

    /// Subjects with a record on disk.
    public func pendingSubjects() -> [String] {
        Files.list(directory).filter { $0.hasSuffix(".intent.json") }.map { String($0.dropLast(".intent.json".count)) }
    }

    /// Runs `recover` for every record whose command is gone, holding that subject's lock so
    /// a live command is never disturbed. Returns the intents recovered.
    @discardableResult
    public func recoverAbandoned(_ recover: (Intent) throws -> Void) throws -> [Intent] {
        var done: [Intent] = []
        for subject in pendingSubjects() {
            guard let lock = try? FileLock(lockPath(subject), wait: false) else { continue }
            defer { withExtendedLifetime(lock) {} }
            guard let intent = read(subject) else { remove(subject); continue }
            try recover(intent)
            remove(subject)
            done.append(intent)
        }
        return done
    }
}

/// A live intent: mark steps as they complete, finish when done.
public final class IntentRecord: @unchecked Sendable {
    public let journal: Journal
    public private(set) var intent: Intent

    init(journal: Journal, intent: Intent) {
        self.journal = journal
        self.intent = intent
    }

    func save() throws {
        let data = try JSONEncoder().encode(intent)
        try Files.writeAtomically(journal.recordPath(intent.subject), Array(data))
    }

    /// Records a completed step (and lets a crash test die right after it). Steps are written
    /// to disk only when `persist` is set or new data comes with them: recovery that does not
    /// depend on how far an operation got need not pay an fsync per step.
    public func mark(_ step: String, data: [String: String] = [:], persist: Bool = false) throws {
        intent.steps.append(step)
        for (k, v) in data { intent.data[k] = v }
        if persist || !data.isEmpty { try save() }
        CrashPoint.hit("\(intent.operation).\(step)")
    }

    /// Removes the record: the operation is complete (for create, this is the commit point).
    public func finish() {
        journal.remove(intent.subject)
    }
}

/// Test hook: `LUMOS_TEST_CRASH_AT=create.cloned` makes the process _exit(137) at that step,
/// as a kill -9 would, so crash-safety tests can stop a command at each step.
public enum CrashPoint {
    public static func hit(_ step: String) {
        guard let env = getenv("LUMOS_TEST_CRASH_AT") else { return }
        if String(cString: env) == step { _exit(137) }
    }
}
