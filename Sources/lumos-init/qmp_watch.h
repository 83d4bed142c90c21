// The QMP event watcher of --console-relay: see qmp_watch.c.
#pragma once

struct qmp_watch {
    int fd;
    int overflow;
    char line[8192];
    unsigned long len;
    char reason[48];
};

// Connects to QEMU's event monitor and leaves capabilities negotiation sent; 0 or -1 (errno).
int qmp_watch_connect(struct qmp_watch *w, const char *path);
// Reads what is there (non-blocking); -1 when QEMU has closed the monitor.
int qmp_watch_read(struct qmp_watch *w);
// Writes the verdict (the SHUTDOWN reason, or "crashed") to exit_file atomically.
int qmp_watch_finish(struct qmp_watch *w, const char *exit_file);
