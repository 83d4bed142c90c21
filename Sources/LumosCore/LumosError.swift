import Glibc

/// The one error type the CLI prints: a single line naming the thing, what was wrong and
/// what to do (docs/architecture.md "Errors"). `errno` is kept when the kernel said it.
public struct LumosError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: String, Sendable {
        case invalidArgument, usage, notFound, exists, busy, permission, unsupported, corrupt, io, quota, noSpace, failed
    }
    public var kind: Kind
    public var message: String
    public var errno: Int32?

    public init(_ kind: Kind, _ message: String, errno: Int32? = nil) {
        self.kind = kind
        self.message = message
        self.errno = errno
    }

    public var description: String { message }

    public static func invalid(_ m: String) -> LumosError { LumosError(.invalidArgument, m) }
    /// The command line itself is wrong (vmadm(8) "EXIT STATUS" 2: invalid usage).
    public static func usage(_ m: String) -> LumosError { LumosError(.usage, m) }
    public static func notFound(_ m: String) -> LumosError { LumosError(.notFound, m) }
    public static func exists(_ m: String) -> LumosError { LumosError(.exists, m) }
    public static func busy(_ m: String) -> LumosError { LumosError(.busy, m) }
    public static func unsupported(_ m: String) -> LumosError { LumosError(.unsupported, m) }
    public static func failed(_ m: String) -> LumosError { LumosError(.failed, m) }
}

/// A failed system call: the call, the object it worked on, and errno.
public struct Errno: Error, CustomStringConvertible, Equatable, Sendable {
    public var code: Int32
    public var call: String
    public var subject: String

    public init(_ code: Int32, _ call: String, _ subject: String = "") {
        self.code = code
        self.call = call
        self.subject = subject
    }

    public var description: String {
        let reason = String(cString: strerror(code))
        return subject.isEmpty ? "\(call): \(reason)" : "\(call) \(subject): \(reason)"
    }
}

/// Runs a libc call that returns -1 (or a negative value) and sets errno, retrying EINTR.
@discardableResult
public func sys<T: BinaryInteger>(_ call: String, _ subject: String = "", _ body: () -> T) throws(Errno) -> T {
    while true {
        let r = body()
        if r >= 0 { return r }
        let e = Glibc.errno
        if e == EINTR { continue }
        throw Errno(e, call, subject)
    }
}

/// Converts any error to the one line the CLI prints.
public func oneLine(_ error: any Error) -> String {
    let text = "\(error)"
    return text.split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? text
}

/// The first line of a message.
public func oneLine(_ text: String) -> String {
    text.split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? text
}
