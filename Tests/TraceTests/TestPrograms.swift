import Glibc
import LumosCore
@testable import Trace

/// Builds small C programs for the probe tests in a private temporary directory.
final class TestProgram {
    let directory: String
    let binary: String

    /// Compiles the C `sources` (one translation unit each) with cc; the directory is
    /// removed by `remove()` (call it in defer).
    init(_ sources: [String], name: String = "prog", flags: [String] = ["-O1"]) throws {
        var template = Array("/tmp/lumos-trace-test-\(getpid())-XXXXXX".utf8CString)
        guard let dir = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else { throw Errno(errno, "mkdtemp") }
        directory = String(cString: dir)
        binary = directory + "/\(name)"
        var files: [String] = []
        do {
            for (i, source) in sources.enumerated() {
                let src = directory + "/\(name)\(i).c"
                try Files.writeAtomically(src, source)
                files.append(src)
            }
            try Exec.run(["cc"] + flags + ["-o", binary] + files)
        } catch {
            remove()
            throw error
        }
    }

    func remove() {
        for f in Files.list(directory) { unlink(directory + "/" + f) }
        rmdir(directory)
    }

    /// A program with three USDT probes: one with a semaphore, one with signed/unsigned and
    /// memory arguments, one without arguments. It loops `argv[1]` times (default 3),
    /// sleeping `argv[2]` ms per turn so a test can attach while it runs.
    static let usdtSource = [
        """
        #include <sys/sdt.h>
        #include <stdlib.h>
        #include <unistd.h>

        volatile long counter = 7;
        void guarded(int i);

        __attribute__((noinline)) int work(int i) {
            long big = 1234567890123L + i;
            int neg = -5 - i;
            STAP_PROBE3(lumostest, tick, big, neg, counter);
            guarded(i);
            return neg;
        }

        int main(int argc, char **argv) {
            int n = argc > 1 ? atoi(argv[1]) : 3;
            int ms = argc > 2 ? atoi(argv[2]) : 0;
            int sum = 0;
            STAP_PROBE(lumostest, begin__work);
            for (int i = 0; i < n; i++) {
                sum += work(i);
                if (ms) usleep(ms * 1000);
            }
            return sum == 12345 ? 1 : 0;
        }
        """,
        // A second unit with semaphores: sdt.h then requires one for every probe in it.
        """
        #define _SDT_HAS_SEMAPHORES 1
        #include <sys/sdt.h>
        __extension__ unsigned short lumostest_guarded_semaphore __attribute__((unused)) __attribute__((section(".probes")));
        __attribute__((noinline)) void guarded(int i) {
            if (lumostest_guarded_semaphore) {
                STAP_PROBE1(lumostest, guarded, i);
            }
        }
        """,
    ]
}

let isRoot = getuid() == 0
