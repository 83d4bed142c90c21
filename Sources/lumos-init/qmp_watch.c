// The QMP event watcher of --console-relay (docs/vm.md, "How a VM ends").
//
// QEMU is PID 1 of its jail, so no Lumos process is its parent and nobody can wait for its
// exit status. What the owner needs to know is why it ended: the guest powered off, the
// guest kernel panicked, or QEMU went away without the guest shutting down (a crash, or a
// kill by someone other than vmadm). QEMU says the first two on a QMP monitor as the SHUTDOWN
// event (with its reason) before it exits; the third is the monitor closing with no such
// event. The relay already lives exactly as long as QEMU, so it also holds a second QMP
// monitor (events.sock; vmadm's own commands use qmp.sock, which serves one client at a
// time) and, when QEMU has gone, writes the verdict as one word to EXIT_FILE:
//   guest-shutdown, guest-panic, guest-reset, host-signal, host-qmp-quit, ... (QEMU's
//   ShutdownCause names, as QEMU sent them), or `crashed` when no SHUTDOWN came.
// Input is QEMU's, but parsed defensively anyway: lines longer than the buffer are dropped,
// the reason is copied only when it is made of [a-z-] and fits.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "qmp_watch.h"

int qmp_watch_connect(struct qmp_watch *w, const char *path) {
    memset(w, 0, sizeof *w);
    w->fd = -1;
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) { errno = ENAMETOOLONG; return -1; }
    strcpy(addr.sun_path, path);
    // QEMU creates its monitors before the guest runs; the console socket was already there.
    for (int tries = 0; tries < 100; tries++) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return -1;
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) {
            static const char hello[] = "{\"execute\":\"qmp_capabilities\"}\r\n";
            if (send(fd, hello, sizeof hello - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof hello - 1)) { close(fd); return -1; }
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
            w->fd = fd;
            return 0;
        }
        int e = errno;
        close(fd);
        if (e != ENOENT && e != ECONNREFUSED && e != EINTR) { errno = e; return -1; }
        struct timespec pause = { 0, 50 * 1000 * 1000 };
        nanosleep(&pause, NULL);
    }
    errno = ETIMEDOUT;
    return -1;
}

// One complete line from QEMU: a SHUTDOWN event sets the reason.
static void take_line(struct qmp_watch *w, const char *line) {
    if (!strstr(line, "\"event\"") || !strstr(line, "\"SHUTDOWN\"")) return;
    const char *r = strstr(line, "\"reason\"");
    if (!r) { strcpy(w->reason, "unknown"); return; }
    r = strchr(r + 8, '"');
    if (!r) return;
    r++;
    size_t n = 0;
    while (r[n] && r[n] != '"' && n < sizeof w->reason - 1) {
        char c = r[n];
        if (!((c >= 'a' && c <= 'z') || c == '-')) return;
        n++;
    }
    if (r[n] != '"' || n == 0) return;
    memcpy(w->reason, r, n);
    w->reason[n] = 0;
}

int qmp_watch_read(struct qmp_watch *w) {
    for (;;) {
        ssize_t n = read(w->fd, w->line + w->len, sizeof w->line - 1 - w->len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        if (n <= 0) return -1;  // QEMU has gone
        w->len += (size_t)n;
        w->line[w->len] = 0;
        char *start = w->line, *nl;
        while ((nl = strchr(start, '\n'))) {
            *nl = 0;
            if (!w->overflow) take_line(w, start);
            w->overflow = 0;
            start = nl + 1;
        }
        size_t rest = w->len - (size_t)(start - w->line);
        memmove(w->line, start, rest);
        w->len = rest;
        if (w->len == sizeof w->line - 1) { w->len = 0; w->overflow = 1; }  // a line too long to be one we want
    }
}

int qmp_watch_finish(struct qmp_watch *w, const char *exit_file) {
    const char *verdict = w->reason[0] ? w->reason : "crashed";
    char temp[4096];
    if (snprintf(temp, sizeof temp, "%s.new", exit_file) >= (int)sizeof temp) return -1;
    int fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return -1;
    char text[96];
    int len = snprintf(text, sizeof text, "%s\n", verdict);
    int ok = write(fd, text, (size_t)len) == len && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(temp, exit_file) < 0) { unlink(temp); return -1; }
    return 0;
}
