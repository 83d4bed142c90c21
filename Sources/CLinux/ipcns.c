#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "clinux_ipcns.h"

struct ipc_write {
    int fd;
    uid_t owner;
    const char *name;
    const char *value;
    int result;
};

static void *ipc_write_thread(void *arg) {
    struct ipc_write *w = arg;
    if (setns(w->fd, CLONE_NEWIPC) != 0) { w->result = -errno; return NULL; }
    // The raw system call changes this thread's credentials only (glibc's setresuid would
    // change every thread of the process).
    if (syscall(SYS_setresuid, -1, w->owner, -1) != 0) { w->result = -errno; return NULL; }
    char path[128];
    snprintf(path, sizeof path, "/proc/sys/kernel/%s", w->name);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) { w->result = -errno; return NULL; }
    size_t len = strlen(w->value);
    ssize_t n = write(fd, w->value, len);
    w->result = n == (ssize_t)len ? 0 : (n < 0 ? -errno : -EIO);
    close(fd);
    return NULL;
}

int clinux_ipc_sysctl_write(int ipcns_fd, uid_t owner, const char *name, const char *value) {
    struct ipc_write w = { ipcns_fd, owner, name, value, 0 };
    pthread_t t;
    int e = pthread_create(&t, NULL, ipc_write_thread, &w);
    if (e != 0) return -e;
    pthread_join(t, NULL);
    return w.result;
}
