import Glibc

/// A one-line progress bar on stderr for long work (import, send, debootstrap); silent when
/// stderr is not a terminal, so piped and scripted use stays quiet (docs/architecture.md "Interfaces").
public final class ProgressBar: @unchecked Sendable {
    let label: String
    let total: UInt64
    let enabled: Bool
    var done: UInt64 = 0
    var lastPercent = -1

    public init(_ label: String, total: UInt64, enabled: Bool = isatty(2) == 1) {
        self.label = label
        self.total = total
        self.enabled = enabled
    }

    public func advance(_ bytes: UInt64) {
        done += bytes
        guard enabled, total > 0 else { return }
        let pct = Int(min(100, done * 100 / total))
        if pct == lastPercent { return }
        lastPercent = pct
        let width = 30
        let filled = width * pct / 100
        let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
        let line = "\r\(label) [\(bar)] \(pct)% \(Size.format(done))/\(Size.format(total))"
        FD.writeAll(2, Array(line.utf8))
    }

    public func finish() {
        guard enabled, lastPercent >= 0 else { return }
        FD.writeAll(2, Array("\n".utf8))
    }
}
