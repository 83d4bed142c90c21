import Glibc

/// SIGINT/SIGTERM end tracing the way DTrace's Ctrl-C does: the loop notices the flag,
/// runs END and prints the aggregations.
public enum Interrupt {
    nonisolated(unsafe) static var flag: sig_atomic_t = 0

    public static var requested: Bool { flag != 0 }

    public static func install() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in Interrupt.flag = 1 }
        sigemptyset(&action.sa_mask)
        // No SA_RESTART: poll() must return so the loop sees the flag.
        action.sa_flags = 0
        sigaction(SIGINT, &action, nil)
        sigaction(SIGTERM, &action, nil)
    }
}
