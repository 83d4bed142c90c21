import Glibc

/// SIGINT/SIGTERM end tracing the way DTrace's Ctrl-C does: the loop notices the flag,
/// runs END and prints the aggregations.
public enum Interrupt {
    nonisolated(unsafe) static var flag: sig_atomic_t = 0

    public static var requested: Bool { flag != 0 }

    /// Installs the handlers; call `restore` with the result when tracing ends.
    public static func install() -> [sigaction] {
        flag = 0
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in Interrupt.flag = 1 }
        sigemptyset(&action.sa_mask)
        // No SA_RESTART: poll() must return so the loop sees the flag.
        action.sa_flags = 0
        var old = [sigaction(), sigaction()]
        sigaction(SIGINT, &action, &old[0])
        sigaction(SIGTERM, &action, &old[1])
        // A parent may have started us with these blocked (the mask is inherited across exec).
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        return old
    }

    public static func restore(_ old: [sigaction]) {
        var o = old
        sigaction(SIGINT, &o[0], nil)
        sigaction(SIGTERM, &o[1], nil)
    }
}
