// df in a zone (docs/architecture.md, "df in a zone"): the supervisor that answers the zone's
// statfs(2) and fstatfs(2) with its quota.
//
//   lumos-init --statfs-server QGROUP_DIR ROOT_DEV      (listening unix socket on fd 0)
//
// A zone's / is a subvolume of the pool's one btrfs file system, and its quota a btrfs qgroup,
// which statfs on btrfs does not report: df in the zone would show the pool. The zone's
// seccomp filter sends statfs and fstatfs to a user-space supervisor instead
// (SECCOMP_RET_USER_NOTIF). This is it: run on the host in the zone's cgroups (like
// --metadata-server), it accepts connections on the listening socket it is given as fd 0 (the
// host made it, in a root-only directory), each bringing one seccomp listener (SCM_RIGHTS):
// the zone init's, then one per zlogin session. For each notification it finds the file the
// call names, as the zone sees it; when that file is on the zone's root file system (device
// ROOT_DEV) and the qgroup QGROUP_DIR (/sys/fs/btrfs/FSID/qgroups/1_N) has a limit, it writes
// a struct statfs whose size is the quota and whose free space is what the quota leaves (no
// more than the pool has); every other call goes on to the kernel unchanged
// (SECCOMP_USER_NOTIF_FLAG_CONTINUE). It exits when every listener has hung up (no process of
// the zone is left).
//
// The zone is an attacker. Paths are read from its memory (bounded, PATH_MAX) and resolved
// with openat2(RESOLVE_IN_ROOT) under /proc/PID/root, so a symlink or ".." cannot reach a
// host file; a relative path is resolved under /proc/PID/cwd only without ".." or symlinks
// (otherwise the kernel answers). The files are opened O_PATH (no open side effects), and
// nothing about them is returned unless they are on the zone's own file system. Every
// /proc/PID access is checked against the notification's id afterwards
// (SECCOMP_IOCTL_NOTIF_ID_VALID), so a recycled pid is never answered for. The caller's memory
// is read and written with process_vm_readv/writev, which keep page protections as the
// kernel's own copies do; the only write is the struct statfs into the caller's buffer, and a
// bad or read-only one gets EFAULT. No allocation per
// request, one poll() loop.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "service.h"
#include "statfs.h"

#define SF_LISTENERS 1024    // the init's and concurrent zlogin sessions'; a later one answers ENOSYS

static const char *qgroup_dir;
static dev_t root_dev;

// The qgroup's files, opened once and read again with pread at offset 0 (sysfs makes the
// value anew for each read from the start), so a call costs one read per figure, not an
// open, a read and a close; -1 until first opened, and again after a failed read (the
// qgroup went away: the next call tries to open it again).
static int qgroup_fds[3] = { -1, -1, -1 };
static const char *const qgroup_files[3] = { "limit_flags", "max_exclusive", "exclusive" };
enum { QG_FLAGS, QG_LIMIT, QG_USED };

static int read_u64(int which, uint64_t *out) {
    char buf[32];
    if (qgroup_fds[which] < 0) {
        char path[512];
        if (snprintf(path, sizeof path, "%s/%s", qgroup_dir, qgroup_files[which]) >= (int)sizeof path) return -1;
        qgroup_fds[which] = open(path, O_RDONLY | O_CLOEXEC);
        if (qgroup_fds[which] < 0) return -1;
    }
    ssize_t n = pread(qgroup_fds[which], buf, sizeof buf - 1, 0);
    if (n <= 0) {
        close(qgroup_fds[which]);
        qgroup_fds[which] = -1;
        return -1;
    }
    buf[n] = 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (errno || end == buf) return -1;
    *out = v;
    return 0;
}

static int notification_valid(int listener, uint64_t id) {
    return ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

// Reads the NUL-terminated path at `addr` of the notifying process; 0, or -1 (unreadable or
// longer than PATH_MAX). process_vm_readv, not /proc/PID/mem, so page protections hold as
// for the kernel's own copy (a PROT_NONE path is not read).
static int read_path(pid_t pid, uint64_t addr, char *out, size_t cap) {
    size_t got = 0;
    while (got < cap) {
        // Up to the end of the page, so a path at the end of a mapping reads.
        size_t chunk = 4096 - (size_t)((addr + got) & 4095);
        if (chunk > cap - got) chunk = cap - got;
        struct iovec local = { out + got, chunk }, remote = { (void *)(uintptr_t)(addr + got), chunk };
        ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
        if (n <= 0) return -1;
        if (memchr(out + got, 0, (size_t)n)) return 0;
        got += (size_t)n;
    }
    return -1;
}

static int has_dotdot(const char *p) {
    for (const char *c = p; *c; ) {
        const char *e = strchrnul(c, '/');
        if (e - c == 2 && c[0] == '.' && c[1] == '.') return 1;
        c = *e ? e + 1 : e;
    }
    return 0;
}

static int open_in(int dirfd, const char *path, uint64_t resolve) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = O_PATH | O_CLOEXEC;
    how.resolve = resolve;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

// The file the call names, opened O_PATH as the zone sees it, or -1 (let the kernel answer).
static int target_of(const struct seccomp_notif *req) {
    char proc[64];
    pid_t pid = (pid_t)req->pid;
    if (req->data.nr == __NR_fstatfs) {
        int fd = (int)req->data.args[0];
        if (fd < 0) return -1;
        snprintf(proc, sizeof proc, "/proc/%d/fd/%d", pid, fd);
        return open(proc, O_PATH | O_CLOEXEC);
    }
    static char path[PATH_MAX];
    if (read_path(pid, req->data.args[0], path, sizeof path) < 0 || !path[0]) return -1;
    int relative = path[0] != '/';
    if (relative && has_dotdot(path)) return -1;
    snprintf(proc, sizeof proc, relative ? "/proc/%d/cwd" : "/proc/%d/root", pid);
    int dir = open(proc, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return -1;
    int fd = relative ? open_in(dir, path, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH)
                      : open_in(dir, path, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
    close(dir);
    return fd;
}

// Fills `out` for a file on the zone's own file system; 0, or -1 (let the kernel answer).
static int quota_view(int fd, struct statfs *out) {
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_dev != root_dev) return -1;
    uint64_t flags = 0, limit = 0, used = 0;
    // limit_flags bit 2: BTRFS_QGROUP_LIMIT_MAX_EXCL (Lumos's quota is the exclusive limit).
    if (read_u64(QG_FLAGS, &flags) < 0 || !(flags & 2)) return -1;
    if (read_u64(QG_LIMIT, &limit) < 0 || limit == 0 || limit == UINT64_MAX) return -1;
    if (read_u64(QG_USED, &used) < 0) return -1;
    if (fstatfs(fd, out) != 0 || out->f_bsize <= 0) return -1;
    uint64_t bsize = (uint64_t)out->f_bsize;
    uint64_t blocks = limit / bsize;
    uint64_t used_blocks = (used + bsize - 1) / bsize;
    uint64_t left = used_blocks >= blocks ? 0 : blocks - used_blocks;
    out->f_blocks = blocks;
    if ((uint64_t)out->f_bfree > left) out->f_bfree = left;
    if ((uint64_t)out->f_bavail > left) out->f_bavail = left;
    return 0;
}

static void answer(int listener) {
    struct seccomp_notif req;
    struct seccomp_notif_resp resp;
    memset(&req, 0, sizeof req);
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) return;   // gone meanwhile (ENOENT)
    memset(&resp, 0, sizeof resp);
    resp.id = req.id;
    resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    int supported = req.data.arch == AUDIT_ARCH_X86_64 && (req.data.nr == __NR_statfs || req.data.nr == __NR_fstatfs);
    if (supported && notification_valid(listener, req.id)) {
        int fd = target_of(&req);
        struct statfs view;
        // Valid still after every /proc/PID access: the files were the caller's, not a new
        // process's under a recycled pid.
        if (fd >= 0 && quota_view(fd, &view) == 0 && notification_valid(listener, req.id)) {
            resp.flags = 0;
            // process_vm_writev honours page protections as the kernel's copy-out does (a
            // read-only buffer gets EFAULT; /proc/PID/mem would write through them).
            struct iovec local = { &view, sizeof view }, remote = { (void *)(uintptr_t)req.data.args[1], sizeof view };
            if (process_vm_writev((pid_t)req.pid, &local, 1, &remote, 1, 0) != (ssize_t)sizeof view) resp.error = -EFAULT;
        }
        if (fd >= 0) close(fd);
    }
    ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

// A listener from a connection on the listening socket (SCM_RIGHTS), or -1.
static int receive_listener(int server) {
    int conn = accept4(server, NULL, NULL, SOCK_CLOEXEC);
    if (conn < 0) return -1;
    struct ucred cred;
    socklen_t len = sizeof cred;
    int fd = -1;
    if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == 0) {
        char byte;
        struct iovec iov = { &byte, 1 };
        union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } control;
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof control.buf;
        if (recvmsg(conn, &msg, MSG_CMSG_CLOEXEC) > 0) {
            struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
            if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
                memcpy(&fd, CMSG_DATA(c), sizeof(int));
        }
    }
    close(conn);
    return fd;
}

int statfs_server_main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: lumos-init --statfs-server QGROUP_DIR ROOT_DEV   (listening socket on fd 0)\n");
        return 2;
    }
    qgroup_dir = argv[2];
    char *end;
    errno = 0;
    root_dev = (dev_t)strtoull(argv[3], &end, 10);
    if (errno || *end || end == argv[3]) {
        fprintf(stderr, "lumos-init: --statfs-server: bad device number '%s'\n", argv[3]);
        return 2;
    }
    // If it died, the zone's statfs would fail (ENOSYS): not the OOM killer's choice.
    become_service();
    static struct pollfd fds[1 + SF_LISTENERS];
    int count = 0, served = 0;
    fds[0].fd = 0;
    fds[0].events = POLLIN;
    for (;;) {
        int n = poll(fds, (nfds_t)(1 + count), -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        for (int i = 1; i <= count; i++) {
            if (fds[i].revents & POLLIN) answer(fds[i].fd);
            else if (fds[i].revents & (POLLHUP | POLLERR | POLLNVAL)) {
                close(fds[i].fd);
                fds[i] = fds[count];
                count--;
                i--;
            }
        }
        if (fds[0].revents & POLLIN) {
            int fd = receive_listener(0);
            if (fd >= 0 && count < SF_LISTENERS) {
                count++;
                fds[count].fd = fd;
                fds[count].events = POLLIN;
                fds[count].revents = 0;
                served = 1;
            } else if (fd >= 0) {
                close(fd);
            }
        }
        // Every process of the zone is gone (each filter's last task exited).
        if (served && count == 0) return 0;
    }
}
