import CLinux
import Glibc
import Testing

/// A pipe whose ends are close-on-exec: a child that a test running in parallel spawns
/// meanwhile cannot hold an end open.
func cloexecPipe() throws -> [Int32] {
    var fds: [Int32] = [-1, -1]
    try #require(clinux_pipe2(&fds, O_CLOEXEC) == 0, "pipe2: errno \(errno)")
    return fds
}

/// Writes all of `bytes` to a child's pipe for at most `seconds`: a child that stops reading
/// is SIGKILLed (and an issue recorded) instead of blocking the test for ever. Returns true
/// when every byte was written. A reader that went away is not fatal (SIGPIPE is held).
func writeAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>, seconds: Double = 30, killing child: pid_t) -> Bool {
    var pipeOnly = sigset_t(), old = sigset_t()
    sigemptyset(&pipeOnly)
    sigaddset(&pipeOnly, SIGPIPE)
    pthread_sigmask(SIG_BLOCK, &pipeOnly, &old)
    defer {
        var zero = timespec()
        while sigtimedwait(&pipeOnly, nil, &zero) == SIGPIPE {}
        pthread_sigmask(SIG_SETMASK, &old, nil)
    }
    let flags = fcntl(fd, F_GETFL)
    _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    defer { _ = fcntl(fd, F_SETFL, flags) }
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    let end = Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9 + seconds
    var off = bytes.startIndex
    while off < bytes.endIndex {
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let left = end - (Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9)
        if left <= 0 {
            Issue.record("the child did not read its input within \(seconds) s")
            kill(child, SIGKILL)
            return false
        }
        var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        if poll(&pfd, 1, Int32(left * 1000) + 1) <= 0 { continue }
        let n = bytes[off...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR || errno == EAGAIN { continue }
            return false
        }
        off += n
    }
    return true
}
