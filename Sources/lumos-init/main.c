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
//
//   lumos-init --console-relay QEMU_SOCKET LISTEN_SOCKET LOG_PATH MAX_BYTES [EVENTS_SOCKET EXIT_FILE]
//
// A kvm VM's serial console relay (docs/vm.md, "Console"), run on the host in the VM's
// cgroups. QEMU stalls the guest's serial output while its console socket has a client that
// does not read, so the relay is QEMU's only client and always reads: it connects to
// QEMU_SOCKET (retrying for 10 s while QEMU creates it), keeps everything the guest writes in
// LOG_PATH with the --console-log cap and rotation (at most 2 x MAX_BYTES on disk), and
// listens on LISTEN_SOCKET (a unix socket, mode 0600) for `vmadm console`. One client at a
// time: a second one is sent the line "lumos: console in use by another client" and closed.
// Guest output goes to the client with non-blocking writes through a fixed 64 KiB buffer; a
// client that does not keep up loses what does not fit, the guest and the log never wait for
// it. Client input goes to QEMU (a client that types faster than the guest reads is simply
// read more slowly). The relay exits 0 when QEMU closes its socket (QEMU has exited), and on
// SIGTERM; it removes LISTEN_SOCKET either way. A poll() loop on static buffers, EINTR-safe.
// With EVENTS_SOCKET (a second QMP monitor) it also watches QEMU's events and, when QEMU has
// gone by itself, writes why to EXIT_FILE (qmp_watch.c); not when it is stopped by SIGTERM.
//
//   lumos-init --console-relay - LISTEN_SOCKET LOG_PATH MAX_BYTES INIT_PID
//
// An lx zone's console (docs/vmadm.md, "Console"): the same relay with the master of the
// zone's /dev/console pseudo-terminal on stdin instead of QEMU's socket. It keeps the slave
// open itself (TIOCGPTPEER), so the master never hangs up while the zone's own programs close
// and reopen /dev/console, and it ends when the zone's init (INIT_PID, a pidfd) exits, after
// taking what is left in the terminal.
//
//   lumos-init --statfs-server QGROUP_DIR ROOT_DEV
//
// A zone's statfs(2) supervisor, so df in the zone shows its quota (statfs.c).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "metadata.h"
#include "qmp_watch.h"
#include "service.h"
#include "statfs.h"

static int open_log(const char *path, long long *size) {
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return -1;
    struct stat st;
    *size = fstat(fd, &st) == 0 ? (long long)st.st_size : 0;
    return fd;
}

// The capped log shared by --console-log and --console-relay: PATH grows to MAX_BYTES, then
// becomes PATH.0 (replacing the previous one) and a new PATH starts.
struct capped_log {
    const char *path;
    char rotated[4096];
    long long max, size;
    int fd;
};

static int parse_max(const char *mode, const char *text, long long *max) {
    char *end = NULL;
    errno = 0;
    *max = strtoll(text, &end, 10);
    if (errno || !end || end == text || *end || *max < 1) {
        fprintf(stderr, "lumos-init: %s: MAX_BYTES must be a positive number, not '%s'\n", mode, text);
        return -1;
    }
    return 0;
}

static int log_open(struct capped_log *log, const char *path, long long max) {
    log->path = path;
    log->max = max;
    log->size = 0;
    if (snprintf(log->rotated, sizeof log->rotated, "%s.0", path) >= (int)sizeof log->rotated) {
        fprintf(stderr, "lumos-init: %s: path too long\n", path);
        return -1;
    }
    log->fd = open_log(path, &log->size);
    if (log->fd < 0) { fprintf(stderr, "lumos-init: %s: %s\n", path, strerror(errno)); return -1; }
    return 0;
}

// Appends what it can; output that cannot be written (disk full, file gone) is dropped so
// the writer never blocks on its console. Returns -1 only when a rotated log cannot be opened.
static int log_write(struct capped_log *log, const char *p, ssize_t n) {
    while (n > 0) {
        if (log->fd < 0) {
            log->fd = open_log(log->path, &log->size);
            if (log->fd < 0) return -1;
        }
        if (log->size >= log->max) {
            close(log->fd);
            rename(log->path, log->rotated);
            log->fd = open_log(log->path, &log->size);
            if (log->fd < 0) return -1;
        }
        ssize_t room = (ssize_t)(log->max - log->size), chunk = n < room ? n : room;
        ssize_t w = write(log->fd, p, (size_t)chunk);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return 0;
        p += w;
        n -= w;
        log->size += w;
    }
    return 0;
}

// A logger, relay or server on the host (service.h).
void become_service(void) {
    setsid();
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    int adj = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (adj >= 0) { (void)!write(adj, "-1000", 5); close(adj); }
}

static int console_log(const char *path, const char *max_text) {
    long long max;
    if (parse_max("--console-log", max_text, &max) < 0) return 2;
    become_service();
    struct capped_log log;
    if (log_open(&log, path, max) < 0) return 1;
    static char buf[65536];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (log_write(&log, buf, n) < 0) return 1;
    }
    close(log.fd);
    return 0;
}

// --console-relay

#define RELAY_BUFFER 65536
static const char console_in_use[] = "lumos: console in use by another client\r\n";
static volatile sig_atomic_t relay_stop;
static void relay_signal(int sig) { (void)sig; relay_stop = 1; }

static int unix_address(const char *path, struct sockaddr_un *addr) {
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n >= sizeof addr->sun_path) {
        fprintf(stderr, "lumos-init: --console-relay: socket path %s is too long (%zu > %zu bytes)\n", path, n, sizeof addr->sun_path - 1);
        return -1;
    }
    memcpy(addr->sun_path, path, n + 1);
    return 0;
}

// A queue of bytes in a static buffer: appended at the end, taken from the front.
struct queue { char data[RELAY_BUFFER]; size_t start, len; };

static void queue_compact(struct queue *q) {
    if (q->start == 0) return;
    memmove(q->data, q->data + q->start, q->len);
    q->start = 0;
}

// Writes as much of the queue as `fd` takes now (non-blocking); -1 when the peer is gone.
static int queue_flush(struct queue *q, int fd) {
    while (q->len > 0) {
        // write(), not send(): `fd` may be a terminal. Both kinds are non-blocking here, and
        // SIGPIPE is ignored (become_service).
        ssize_t w = write(fd, q->data + q->start, q->len);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        if (w <= 0) return -1;
        q->start += (size_t)w;
        q->len -= (size_t)w;
    }
    q->start = 0;
    return 0;
}

// Queues what fits and drops the rest (a slow client loses output, nobody waits).
static void queue_put(struct queue *q, const char *p, size_t n) {
    queue_compact(q);
    size_t room = sizeof q->data - q->len;
    if (n > room) n = room;
    memcpy(q->data + q->len, p, n);
    q->len += n;
}

// What is left in the zone's terminal once its init has gone (non-blocking reads).
static void drain_terminal(int fd, struct capped_log *log, char *buf, size_t size) {
    for (;;) {
        ssize_t n = read(fd, buf, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        (void)log_write(log, buf, n);
    }
}

static int console_relay(const char *qemu_path, const char *listen_path, const char *log_path, const char *max_text,
                         const char *events_path, const char *exit_path, const char *init_pid_text) {
    long long max;
    if (parse_max("--console-relay", max_text, &max) < 0) return 2;
    // "-": the console is the pseudo-terminal master on stdin, and the zone's init is watched.
    int terminal = strcmp(qemu_path, "-") == 0, init = -1, peer = -1;
    struct sockaddr_un qemu_addr, listen_addr;
    if ((!terminal && unix_address(qemu_path, &qemu_addr) < 0) || unix_address(listen_path, &listen_addr) < 0) return 2;
    if (terminal) {
        char *end = NULL;
        long pid = init_pid_text ? strtol(init_pid_text, &end, 10) : 0;
        if (!init_pid_text || !end || *end || pid < 1) {
            fprintf(stderr, "lumos-init: --console-relay -: INIT_PID must be a process id, not '%s'\n", init_pid_text ? init_pid_text : "");
            return 2;
        }
        init = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
        if (init < 0) { fprintf(stderr, "lumos-init: --console-relay: pid %ld: %s\n", pid, strerror(errno)); return 1; }
        peer = ioctl(0, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (peer < 0) { fprintf(stderr, "lumos-init: --console-relay -: stdin is not a pseudo-terminal master: %s\n", strerror(errno)); return 1; }
    }
    become_service();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = relay_signal;  // no SA_RESTART: poll() returns EINTR and the loop ends
    sigaction(SIGTERM, &sa, NULL);
    struct capped_log log;
    if (log_open(&log, log_path, max) < 0) return 1;

    // QEMU creates its socket a moment after it starts.
    int qemu = terminal ? 0 : -1, last = ETIMEDOUT;
    for (int tries = 0; tries < 200 && !relay_stop && !terminal; tries++) {
        qemu = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (qemu < 0) { perror("lumos-init: socket"); return 1; }
        if (connect(qemu, (struct sockaddr *)&qemu_addr, sizeof qemu_addr) == 0) break;
        last = errno;
        close(qemu);
        qemu = -1;
        if (last != ENOENT && last != ECONNREFUSED && last != EINTR) break;
        struct timespec pause = { 0, 50 * 1000 * 1000 };
        nanosleep(&pause, NULL);
    }
    if (qemu < 0) {
        fprintf(stderr, "lumos-init: --console-relay: cannot connect to %s: %s\n", qemu_path, strerror(last));
        return 1;
    }
    fcntl(qemu, F_SETFL, fcntl(qemu, F_GETFL) | O_NONBLOCK);
    static struct qmp_watch watch;
    watch.fd = -1;
    if (events_path && qmp_watch_connect(&watch, events_path) < 0)
        fprintf(stderr, "lumos-init: --console-relay: cannot watch QEMU's events at %s: %s\n", events_path, strerror(errno));

    // Bound and listening under a temporary name, then renamed into place: whoever sees
    // LISTEN_SOCKET can connect to it.
    struct sockaddr_un temp_addr = listen_addr;
    size_t len = strlen(temp_addr.sun_path);
    if (len + 4 >= sizeof temp_addr.sun_path) {
        fprintf(stderr, "lumos-init: --console-relay: socket path %s is too long\n", listen_path);
        return 2;
    }
    memcpy(temp_addr.sun_path + len, ".new", 5);
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (listener < 0) { perror("lumos-init: socket"); return 1; }
    unlink(temp_addr.sun_path);
    mode_t old = umask(077);  // the socket is born 0600: only root attaches
    int bound = bind(listener, (struct sockaddr *)&temp_addr, sizeof temp_addr);
    umask(old);
    if (bound < 0 || chmod(temp_addr.sun_path, 0600) < 0 || listen(listener, 4) < 0 || rename(temp_addr.sun_path, listen_path) < 0) {
        fprintf(stderr, "lumos-init: --console-relay: cannot listen on %s: %s\n", listen_path, strerror(errno));
        unlink(temp_addr.sun_path);
        return 1;
    }

    static char buf[RELAY_BUFFER];
    static struct queue to_client, to_qemu;
    int client = -1, status = 0;
    while (!relay_stop) {
        struct pollfd p[5];
        p[0].fd = qemu;
        p[0].events = POLLIN | (to_qemu.len > 0 ? POLLOUT : 0);
        p[1].fd = listener;
        p[1].events = POLLIN;
        p[2].fd = client;  // poll skips it while negative
        // Client input is read only while there is room for it on the way to QEMU.
        p[2].events = (to_qemu.len < sizeof to_qemu.data ? POLLIN : 0) | (to_client.len > 0 ? POLLOUT : 0);
        p[3].fd = watch.fd;
        p[3].events = POLLIN;
        p[4].fd = init;  // the zone's init; -1 for QEMU
        p[4].events = POLLIN;
        p[0].revents = p[1].revents = p[2].revents = p[3].revents = p[4].revents = 0;
        int r = poll(p, 5, -1);
        if (r < 0) {
            if (errno == EINTR) continue;
            perror("lumos-init: poll");
            status = 1;
            break;
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = read(qemu, buf, sizeof buf);
            if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) break;  // QEMU has gone
            if (n > 0) {
                // A log that cannot be reopened is tried again with the next output; the
                // console itself keeps working.
                (void)log_write(&log, buf, n);
                if (client >= 0) {
                    // Straight to the client when nothing is queued; the rest waits in the queue.
                    ssize_t w = 0;
                    if (to_client.len == 0) {
                        w = send(client, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (w < 0) w = (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
                    }
                    if (w < 0) { close(client); client = -1; to_client.len = 0; }
                    else if (w < n) queue_put(&to_client, buf + w, (size_t)(n - w));
                }
            }
        }
        if (init >= 0 && (p[4].revents & POLLIN)) {
            // The zone's init has exited: the zone is ending. Log its last words and go.
            drain_terminal(qemu, &log, buf, sizeof buf);
            break;
        }
        if (p[0].revents & POLLOUT) {
            if (queue_flush(&to_qemu, qemu) < 0) break;
        }
        if (watch.fd >= 0 && (p[3].revents & (POLLIN | POLLHUP | POLLERR)) && qmp_watch_read(&watch) < 0) {
            close(watch.fd);
            watch.fd = -2;  // QEMU closed its monitor: it is exiting
        }
        if (p[1].revents & POLLIN) {
            int c = accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (c >= 0) {
                if (client >= 0) {
                    (void)!send(c, console_in_use, sizeof console_in_use - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
                    close(c);
                } else {
                    client = c;
                    to_client.start = to_client.len = 0;
                }
            }
        }
        if (client >= 0 && p[2].fd == client && (p[2].revents & (POLLIN | POLLHUP | POLLERR))) {
            queue_compact(&to_qemu);
            size_t room = sizeof to_qemu.data - to_qemu.len;
            // With no room, POLLIN was not asked for: a hangup alone ends the client.
            ssize_t n = room > 0 ? read(client, to_qemu.data + to_qemu.len, room) : 0;
            if (n > 0) {
                to_qemu.len += (size_t)n;
                if (queue_flush(&to_qemu, qemu) < 0) break;
            } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
                // The client detached; what it typed and QEMU has not taken yet still goes.
                close(client);
                client = -1;
                to_client.len = 0;
            }
        }
        if (client >= 0 && p[2].fd == client && (p[2].revents & POLLOUT)) {
            if (queue_flush(&to_client, client) < 0) { close(client); client = -1; to_client.len = 0; }
        }
    }
    // QEMU may close the console before the monitor: take its last events (it is exiting, so
    // the monitor closes within moments), then say how it ended.
    for (int waited = 0; watch.fd >= 0 && !relay_stop && waited < 40; waited++) {
        struct pollfd w = { .fd = watch.fd, .events = POLLIN };
        if (poll(&w, 1, 50) > 0 && qmp_watch_read(&watch) < 0) { close(watch.fd); watch.fd = -2; }
    }
    if (watch.fd >= 0) close(watch.fd);
    if (watch.fd != -1 && exit_path && !relay_stop && qmp_watch_finish(&watch, exit_path) < 0)
        fprintf(stderr, "lumos-init: --console-relay: cannot write %s: %s\n", exit_path, strerror(errno));
    unlink(listen_path);
    if (init >= 0) close(init);
    if (peer >= 0) close(peer);
    if (client >= 0) close(client);
    close(listener);
    close(qemu);
    if (log.fd >= 0) close(log.fd);
    return status;
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
    // Inside a zone as mdata-get, mdata-put, ... (metadata.c).
    const char *name = argc > 0 ? strrchr(argv[0], '/') : NULL;
    name = name ? name + 1 : argc > 0 ? argv[0] : "";
    if (strncmp(name, "mdata-", 6) == 0) return mdata_tool_main(name, argc, argv);
    if (argc >= 2 && strcmp(argv[1], "--metadata-server") == 0) return metadata_server_main(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "--statfs-server") == 0) return statfs_server_main(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "--console-log") == 0) {
        if (argc != 4) { fprintf(stderr, "usage: lumos-init --console-log PATH MAX_BYTES\n"); return 2; }
        return console_log(argv[2], argv[3]);
    }
    if (argc >= 2 && strcmp(argv[1], "--console-relay") == 0) {
        int terminal = argc >= 3 && strcmp(argv[2], "-") == 0;
        if (terminal ? argc != 7 : (argc != 6 && argc != 8)) {
            fprintf(stderr, "usage: lumos-init --console-relay QEMU_SOCKET LISTEN_SOCKET LOG_PATH MAX_BYTES [EVENTS_SOCKET EXIT_FILE]\n"
                            "       lumos-init --console-relay - LISTEN_SOCKET LOG_PATH MAX_BYTES INIT_PID   (a pty master on stdin)\n");
            return 2;
        }
        if (terminal) return console_relay(argv[2], argv[3], argv[4], argv[5], NULL, NULL, argv[6]);
        return console_relay(argv[2], argv[3], argv[4], argv[5], argc == 8 ? argv[6] : NULL, argc == 8 ? argv[7] : NULL, NULL);
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
