import Glibc

/// Seconds on CLOCK_MONOTONIC: for deadlines that the host clock's changes must not move.
public enum Monotonic {
    public static var now: Double { Double(nanoseconds) / 1e9 }

    /// The same clock in nanoseconds (what BPF's ktime_get_ns and D's `timestamp` read).
    public static var nanoseconds: Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}
