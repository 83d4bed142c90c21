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
// Lumos executes this binary from a descriptor opened on the host before pivot_root
// (execveat(fd, "", AT_EMPTY_PATH)), so images need not contain it: it is linked statically
// and depends on nothing inside the zone.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const int forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };
#define FORWARDED_COUNT ((int)(sizeof forwarded / sizeof forwarded[0]))

static int exit_code(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 1;
}

static void ignore(int sig) { (void)sig; }

int main(int argc, char **argv) {
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

    pid_t child = -1;
    if (argc > 1) {
        child = fork();
        if (child < 0) {
            perror("lumos-init: fork");
            return 1;
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
            execvp(argv[1], argv + 1);
            fprintf(stderr, "lumos-init: cannot run %s: %s\n", argv[1], strerror(errno));
            _exit(127);
        }
    }

    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&set, &info);
        if (sig < 0) continue;
        if (sig == SIGCHLD) {
            int status;
            pid_t pid;
            while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                if (pid == child) return exit_code(status);
            }
            continue;
        }
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
