import Glibc

/// Seconds on CLOCK_MONOTONIC: for deadlines that the host clock's changes must not move.
public enum Monotonic {
    public static var now: Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
