import CLinux
import Glibc
import LumosCore

/// `vmadm console`: attaches the caller's terminal (or any pair of descriptors) to a VM's
/// console relay (`ConsoleRelay`, docs/vm.md "Console").
///
///     let ending = try ConsoleClient.attach(socket: relay.listenSocket)
///
/// On a terminal stdin the terminal is put in raw mode (every key, Ctrl-C included, goes to
/// the guest) and restored on every way out, errors included; SIGINT, SIGTERM, SIGHUP and
/// SIGQUIT sent to the calling thread end the session as `.signal` (the terminal restored
/// first) instead of killing the process with the terminal left raw. `Ctrl-]` detaches, as
/// SmartOS's `vmadm console`, and so does `~.` at the start of a line (`~~` there sends one
/// `~`). End of input detaches too, so input can be piped in (tests do). Detaching prints one
/// line on `notices` and leaves the VM running. A console already in use by another client
/// throws `LumosError.busy`.
public enum ConsoleClient {
    /// How the user detaches.
    public struct Escape: Sendable, Equatable {
        /// A byte that detaches wherever it is typed; nil for none.
        public var byte: UInt8?
        /// `~.` at the start of a line detaches.
        public var tildeDot: Bool

        public init(byte: UInt8?, tildeDot: Bool) { self.byte = byte; self.tildeDot = tildeDot }

        /// Ctrl-] (0x1d) and `~.`.
        public static let standard = Escape(byte: 0x1d, tildeDot: true)
        /// Nothing typed detaches; only end of input or a closed console ends the session.
        public static let none = Escape(byte: nil, tildeDot: false)

        /// For the notice: "Ctrl-]" and/or "~.".
        public var description: String {
            var keys: [String] = []
            if let b = byte { keys.append(b < 0x20 ? "Ctrl-\(Character(Unicode.Scalar(b + 0x40)))" : "\(Character(Unicode.Scalar(b)))") }
            if tildeDot { keys.append("~.") }
            return keys.isEmpty ? "none" : keys.joined(separator: " or ")
        }
    }

    public enum Ending: Sendable, Equatable {
        /// The escape was typed.
        case escape
        /// End of input (or the output could not be written).
        case inputClosed
        /// The relay closed the console: the VM stopped.
        case consoleClosed
        /// A signal ended the session; vmadm exits with 128 + it.
        case signal(Int32)
    }

    /// The notice printed on detaching.
    public static let detachedNotice = "[detached from the console; the VM keeps running]"

    @discardableResult
    public static func attach(socket: String, escape: Escape = .standard, input: Int32 = 0, output: Int32 = 1, notices: Int32 = 2) throws -> Ending {
        let fd: Int32
        do {
            fd = try QMPClient.connect(socket)
        } catch let e as Errno where e.code == ENOENT || e.code == ECONNREFUSED {
            throw LumosError.notFound("console \(socket): nothing listens there; is the VM running?")
        }
        defer { close(fd) }

        // Signals as a descriptor while the terminal is raw: a kill(1) must not leave it raw.
        // Blocked before the terminal goes raw and unblocked after it is restored, so a signal
        // taken by its default action finds the terminal as it was.
        let tty = isatty(input) == 1
        var signals: Int32 = -1
        var oldMask = sigset_t()
        if tty {
            var mask = sigset_t()
            sigemptyset(&mask)
            for s in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] { sigaddset(&mask, s) }
            pthread_sigmask(SIG_BLOCK, &mask, &oldMask)
            signals = signalfd(-1, &mask, Int32(SFD_CLOEXEC))
        }
        defer {
            if signals >= 0 { close(signals) }
            if tty { pthread_sigmask(SIG_SETMASK, &oldMask, nil) }
        }

        // Raw terminal, restored by the defer below on every exit.
        var saved = termios()
        let raw = tty && tcgetattr(input, &saved) == 0
        if raw {
            var mode = saved
            cfmakeraw(&mode)
            if tcsetattr(input, TCSANOW, &mode) != 0 { throw Errno(errno, "tcsetattr", "console terminal") }
        }
        defer { if raw { _ = tcsetattr(input, TCSANOW, &saved) } }

        var filter = EscapeFilter(escape)
        var inbuf = [UInt8](repeating: 0, count: 4096)
        var outbuf = [UInt8](repeating: 0, count: 65536)
        // What came from the relay so far, while it could still be the "in use" line.
        var head: [UInt8] = []
        var received = 0
        let ending: Ending
        loop: while true {
            var p = [pollfd(fd: input, events: Int16(POLLIN), revents: 0), pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
                     pollfd(fd: signals, events: Int16(POLLIN), revents: 0)]
            let r = poll(&p, signals >= 0 ? 3 : 2, -1)
            if r < 0 {
                if errno == EINTR { continue }
                throw Errno(errno, "poll", "console")
            }
            if p[1].revents != 0 {
                let n = outbuf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 {
                    if String(decoding: head, as: UTF8.self).hasPrefix(ConsoleRelay.inUseMessage) {
                        throw LumosError.busy("console \(socket) is in use by another client; detach it first")
                    }
                    ending = .consoleClosed
                    break loop
                }
                if received < 256 { head += outbuf[0..<min(n, 256)] }
                received += n
                if !outbuf.withUnsafeBytes({ FD.writeAll(output, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }) {
                    ending = .inputClosed
                    break loop
                }
            }
            if p[0].revents != 0 {
                let n = inbuf.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
                if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                if n <= 0 {
                    let rest = filter.finish()
                    if !rest.isEmpty { _ = send(fd, rest, rest.count, Int32(MSG_NOSIGNAL)) }
                    ending = .inputClosed
                    break loop
                }
                let (bytes, detach) = filter.feed(inbuf[0..<n])
                if !bytes.isEmpty && !sendAll(fd, bytes) {
                    ending = .consoleClosed
                    break loop
                }
                if detach {
                    ending = .escape
                    break loop
                }
            }
            if signals >= 0 && p[2].revents != 0 {
                var info = signalfd_siginfo()
                let n = withUnsafeMutableBytes(of: &info) { read(signals, $0.baseAddress, $0.count) }
                if n == MemoryLayout<signalfd_siginfo>.size {
                    ending = .signal(Int32(info.ssi_signo))
                    break loop
                }
            }
        }
        if ending != .consoleClosed {
            let line = (raw ? "\r\n" : "\n") + detachedNotice + (raw ? "\r\n" : "\n")
            _ = FD.writeAll(notices, Array(line.utf8))
        }
        return ending
    }

    private static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            off += n
        }
        return true
    }
}

/// The escape sequences, byte by byte: what to send on, and whether to detach.
struct EscapeFilter {
    let escape: ConsoleClient.Escape
    var atLineStart = true
    var pendingTilde = false

    init(_ escape: ConsoleClient.Escape) { self.escape = escape }

    /// The bytes to send, and whether an escape was typed (nothing after it is sent).
    mutating func feed(_ input: ArraySlice<UInt8>) -> ([UInt8], Bool) {
        var out: [UInt8] = []
        out.reserveCapacity(input.count)
        for b in input {
            if pendingTilde {
                pendingTilde = false
                if b == 0x2E { return (out, true) }                 // "~."
                out.append(0x7E)
                if b == 0x7E { atLineStart = false; continue }      // "~~" sends one "~"
            }
            if let e = escape.byte, b == e { return (out, true) }
            if escape.tildeDot && atLineStart && b == 0x7E {
                pendingTilde = true
                continue
            }
            out.append(b)
            atLineStart = b == 0x0D || b == 0x0A
        }
        return (out, false)
    }

    /// A "~" held back at the end of input goes after all.
    mutating func finish() -> [UInt8] {
        defer { pendingTilde = false }
        return pendingTilde ? [0x7E] : []
    }
}
