import CLinux
import Glibc
import LumosCore

/// The `-c` command: started before compiling (its pid is `$target`) but held at a gate
/// until the probes are attached, so tracing sees it from its first instruction of user
/// code, as DTrace's created process does.
public final class TargetProcess {
    public let pid: pid_t
    var gate: Int32
    public private(set) var exitStatus: Int32?

    public init(command: String) throws {
        var fds: [Int32] = [0, 0]
        try sys("pipe2") { clinux_pipe2(&fds, O_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[0], 3)
        // The shell waits for a line (or EOF) on fd 3, closes it, then becomes the command.
        let script = "read _ <&3; exec 3<&-; exec \(command)"
        let words: [String] = ["/bin/sh", "-c", script]
        var argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, "/bin/sh", &actions, nil, &argv, environ)
        close(fds[0])
        if rc != 0 {
            close(fds[1])
            throw Errno(rc, "posix_spawn", "/bin/sh -c \(command)")
        }
        pid = child
        gate = fds[1]
    }

    /// Lets the command run.
    public func release() {
        guard gate >= 0 else { return }
        _ = write(gate, "\n", 1)
        close(gate)
        gate = -1
    }

    /// True once the process has exited (reaped without blocking).
    public func hasExited() -> Bool {
        if exitStatus != nil { return true }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid {
            exitStatus = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            return true
        }
        return false
    }

    /// Kills a command that never got to run (tracing failed to start).
    public func abandon() {
        if exitStatus == nil && gate >= 0 {
            kill(pid, SIGKILL)
            close(gate)
            gate = -1
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            exitStatus = 137
        }
    }

    deinit { abandon() }
}
