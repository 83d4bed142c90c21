// lumos-init: PID 1 of a zone that has no init of its own.
//
//   lumos-init [command [args...]]
//
// A process that is PID 1 of a pid namespace gets no default signal actions (the kernel drops
// signals it has no handler for, even SIGTERM from the host) and inherits every orphan in the
// zone. So this init: runs `command` as its child (none: it just idles until told to stop),
// forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH to it, reaps every
// zombie, and exits with the command's status (128+signal when it was killed), which ends the
// zone. Without a command, SIGTERM/SIGINT/SIGHUP make it exit 0.
//
//   lumos-init --restart command [args...]
//
// vmadm's restart_init: when `command` exits it is started again (after a second, so a command
// that cannot start does not spin), until the zone is told to stop (SIGTERM or SIGINT) or the
// command has failed within a second of starting five times in a row; then this init exits
// with its status. PID 1 itself cannot be restarted (Linux ends a pid namespace with its
// PID 1), so the command runs as this init's child: inits that insist on being PID 1
// (busybox init, systemd) cannot be restarted this way.
//
// Lumos executes this binary from a descriptor opened on the host before pivot_root
// (execveat(fd, "", AT_EMPTY_PATH)), so images need not contain it: it is linked statically
// and depends on nothing inside the zone.
//
//   lumos-init --console-log PATH MAX_BYTES
//
// The same binary, run on the host (never inside a zone), is a zone's console logger, as
// zoneadmd's zlog is on SmartOS: it copies what the zone's init writes to its stdout and
// stderr (a pipe on our stdin) into PATH, and when PATH would pass MAX_BYTES it renames it to
// PATH.0 (replacing the previous one) and starts a new PATH. So a zone's console never takes
// more than 2 x MAX_BYTES of the host's disk, whatever the zone writes (docs/security.md).
// It lives in the zone's cgroups (its memory is the zone's, cgroup.kill ends it), out of the
// OOM killer's choice (a dead logger would make the init's next write raise SIGPIPE), and
// exits when the last writer in the zone has gone.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int open_log(const char *path, long long *size) {
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return -1;
    struct stat st;
    *size = fstat(fd, &st) == 0 ? (long long)st.st_size : 0;
    return fd;
}

static int console_log(const char *path, const char *max_text) {
    char *end = NULL;
    long long max = strtoll(max_text, &end, 10);
    if (!end || *end || max < 1) {
        fprintf(stderr, "lumos-init: --console-log: MAX_BYTES must be a positive number, not '%s'\n", max_text);
        return 2;
    }
    char rotated[4096];
    if (snprintf(rotated, sizeof rotated, "%s.0", path) >= (int)sizeof rotated) return 2;
    setsid();
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    int adj = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (adj >= 0) { (void)!write(adj, "-1000", 5); close(adj); }
    long long size = 0;
    int fd = open_log(path, &size);
    if (fd < 0) { fprintf(stderr, "lumos-init: %s: %s\n", path, strerror(errno)); return 1; }
    static char buf[65536];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        char *p = buf;
        while (n > 0) {
            if (size >= max) {
                close(fd);
                rename(path, rotated);
                fd = open_log(path, &size);
                if (fd < 0) return 1;
            }
            ssize_t room = (ssize_t)(max - size), chunk = n < room ? n : room;
            ssize_t w = write(fd, p, (size_t)chunk);
            if (w < 0 && errno == EINTR) continue;
            // The disk is full or the file went away: drop this output, keep draining the pipe
            // so the zone never blocks on its console.
            if (w <= 0) break;
            p += w;
            n -= w;
            size += w;
        }
    }
    close(fd);
    return 0;
}

static const int forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };
#define FORWARDED_COUNT ((int)(sizeof forwarded / sizeof forwarded[0]))

static int exit_code(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 1;
}

static void ignore(int sig) { (void)sig; }

// Forks and execs the zone's command with default signal handling; returns its pid, or -1.
static pid_t start_command(char **command) {
    pid_t child = fork();
    if (child < 0) {
        perror("lumos-init: fork");
        return -1;
    }
    if (child == 0) {
        // Handlers do not survive exec, but restore the defaults before it anyway.
        signal(SIGCHLD, SIG_DFL);
        for (int i = 0; i < FORWARDED_COUNT; i++) signal(forwarded[i], SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        // Its own process group, so a terminal's job control works inside the zone.
        setpgid(0, 0);
        execvp(command[0], command);
        fprintf(stderr, "lumos-init: cannot run %s: %s\n", command[0], strerror(errno));
        _exit(127);
    }
    return child;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "--console-log") == 0) {
        if (argc != 4) { fprintf(stderr, "usage: lumos-init --console-log PATH MAX_BYTES\n"); return 2; }
        return console_log(argv[2], argv[3]);
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    for (int i = 0; i < FORWARDED_COUNT; i++) sigaddset(&set, forwarded[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    // The kernel discards signals PID 1 leaves at SIG_DFL before they can even be pending, so
    // each one gets a handler; they stay blocked and are taken with sigwaitinfo below.
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = ignore;
    for (int i = 0; i < FORWARDED_COUNT; i++) sigaction(forwarded[i], &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);

    int restart = 0, stopping = 0, quick_failures = 0;
    if (argc >= 2 && strcmp(argv[1], "--restart") == 0) {
        restart = 1;
        argv++;
        argc--;
    }
    pid_t child = -1;
    time_t started = 0;
    if (argc > 1) {
        child = start_command(argv + 1);
        if (child < 0) return 1;
        started = time(NULL);
    }

    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&set, &info);
        if (sig < 0) continue;
        if (sig == SIGCHLD) {
            int status;
            pid_t pid;
            while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                if (pid != child) continue;
                if (!restart || stopping) return exit_code(status);
                quick_failures = time(NULL) - started < 1 && exit_code(status) != 0 ? quick_failures + 1 : 0;
                if (quick_failures >= 5) {
                    fprintf(stderr, "lumos-init: %s failed 5 times within a second of starting; not restarting it\n", argv[1]);
                    return exit_code(status);
                }
                sleep(1);
                child = start_command(argv + 1);
                if (child < 0) return 1;
                started = time(NULL);
            }
            continue;
        }
        if (sig == SIGTERM || sig == SIGINT) stopping = 1;
        if (child > 0) {
            kill(child, sig);
        } else if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
            return 0;
        }
    }
}

// SwiftPM links every executable through the Swift driver, which adds swiftrt.o: its
// constructor registers the image with the Swift runtime. This program has no Swift code, so
// it defines those two hooks itself; the static link then pulls nothing from libswiftCore and
// the zone's PID 1 stays a small C program (tens of KiB resident instead of ~1.6 MiB, and no
// runtime start-up work before the zone's command runs).
void swift_addNewDSOImage(const void *image);
void swift_addNewDSOImage(const void *image) { (void)image; }
int _swift_backtrace_isThunkFunction(const char *name);
int _swift_backtrace_isThunkFunction(const char *name) { (void)name; return 0; }
