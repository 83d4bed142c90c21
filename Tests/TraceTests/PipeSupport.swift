import CLinux
import Glibc
import Testing

/// A pipe whose ends are close-on-exec: a child that a test running in parallel spawns
/// meanwhile cannot hold the write end open and make a read wait for ever.
func cloexecPipe() throws -> [Int32] {
    var fds: [Int32] = [-1, -1]
    try #require(clinux_pipe2(&fds, O_CLOEXEC) == 0, "pipe2: errno \(errno)")
    return fds
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Reads to end of file, for at most `seconds`: past that it records an issue, SIGKILLs
/// `child` (when given) and returns what it read.
func readAll(_ fd: Int32, seconds: Double = 30, killing child: pid_t? = nil) -> [UInt8] {
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    let end = monotonicSeconds() + seconds
    while true {
        let left = end - monotonicSeconds()
        if left <= 0 {
            Issue.record("no end of file on fd \(fd) within \(seconds) s")
            if let child { kill(child, SIGKILL) }
            return out
        }
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&pfd, 1, Int32(left * 1000) + 1)
        if ready < 0 && errno != EINTR { return out }
        if ready <= 0 { continue }
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 { if errno == EINTR || errno == EAGAIN { continue }; return out }
        if n == 0 { return out }
        out.append(contentsOf: buf[0..<n])
    }
}
