// The zone child path. Everything between clone and exec is async-signal-safe: raw system
// calls on memory the parent prepared (no malloc, no stdio, no locks). See clinux_zone.h.
#define _GNU_SOURCE
#include "clinux_zone.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <net/if.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/btrfs.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

const char *clinux_zone_step_name(int step) {
    switch (step) {
    case CLINUX_STEP_SYNC: return "waiting for the parent";
    case CLINUX_STEP_SETSID: return "setsid";
    case CLINUX_STEP_IDS: return "becoming root of the user namespace";
    case CLINUX_STEP_CGROUPNS: return "unshare(CLONE_NEWCGROUP)";
    case CLINUX_STEP_MOUNT_PRIVATE: return "making mounts private";
    case CLINUX_STEP_ROOTFS: return "mounting the root file system";
    case CLINUX_STEP_DEV: return "mounting /dev";
    case CLINUX_STEP_DEVNODES: return "binding device nodes into /dev";
    case CLINUX_STEP_DEVPTS: return "mounting /dev/pts";
    case CLINUX_STEP_SHM: return "mounting /dev/shm";
    case CLINUX_STEP_PROC: return "mounting /proc";
    case CLINUX_STEP_PROC_MASK: return "masking /proc";
    case CLINUX_STEP_SYS: return "mounting /sys";
    case CLINUX_STEP_TMP: return "mounting /tmp";
    case CLINUX_STEP_BIND: return "bind-mounting a file system";
    case CLINUX_STEP_PIVOT_ROOT: return "pivot_root";
    case CLINUX_STEP_HOSTNAME: return "sethostname";
    case CLINUX_STEP_RLIMIT: return "setrlimit(RLIMIT_MEMLOCK)";
    case CLINUX_STEP_STDIO: return "setting up stdio";
    case CLINUX_STEP_CAPS: return "dropping capabilities";
    case CLINUX_STEP_NO_NEW_PRIVS: return "PR_SET_NO_NEW_PRIVS";
    case CLINUX_STEP_SECCOMP: return "loading the seccomp filter";
    case CLINUX_STEP_EXEC: return "exec";
    case CLINUX_STEP_SETNS: return "setns";
    case CLINUX_STEP_FORK: return "fork";
    case CLINUX_STEP_TTY: return "allocating a pseudo-terminal";
    case CLINUX_STEP_LOOPBACK: return "bringing up lo";
    case CLINUX_STEP_DESCRIPTORS: return "placing passed descriptors";
    case CLINUX_STEP_DEVICES: return "mounting device nodes";
    case CLINUX_STEP_CONSOLE: return "setting up /dev/console";
    default: return "unknown step";
    }
}

// ---- async-signal-safe helpers (child side) ----

static size_t safe_strlen(const char *s) { size_t n = 0; while (s[n]) n++; return n; }

static void report(int sock, int step) {
    struct clinux_zone_message m = { CLINUX_ZONE_MSG_ERROR, step, errno, -1 };
    (void)!write(sock, &m, sizeof m);
    _exit(127);
}

#define STEP(sock, step, call) do { if ((call) < 0) report((sock), (step)); } while (0)

// "/proc/self/fd/<fd>" without snprintf.
static void fd_path(char out[32], int fd) {
    const char *p = "/proc/self/fd/";
    int i = 0;
    while (*p) out[i++] = *p++;
    char digits[12];
    int n = 0;
    do { digits[n++] = (char)('0' + fd % 10); fd /= 10; } while (fd > 0);
    while (n > 0) out[i++] = digits[--n];
    out[i] = 0;
}

// Resolves `rel` with "/" and ".." pinned to the zone's root. `strict` also refuses symlinks:
// the mount points Lumos itself creates (dev, proc, sys, tmp and below) must be real
// directories, so an image cannot steer /proc or its masks somewhere else.
static int open_beneath(int rootfd, const char *rel, int strict) {
    struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
    if (strict) how.resolve |= RESOLVE_NO_SYMLINKS;
    return (int)syscall(SYS_openat2, rootfd, rel, &how, sizeof how);
}

// How open_in_root treats a missing path: fail, or create directories (and a file last).
// STRICT (or-ed in) refuses symlinks on the way.
enum { MISSING_FAIL = 0, MISSING_DIR = 1, MISSING_FILE = 2, STRICT = 0x10 };

// Opens `rel` (relative to the zone root) with every component resolved inside the root, and
// creates missing components as directories (the last as `missing` says). O_PATH result.
static int open_in_root(int rootfd, const char *rel, int how) {
    int strict = how & STRICT, missing = how & ~STRICT;
    size_t len = safe_strlen(rel);
    char buf[4096];
    if (len >= sizeof buf) { errno = ENAMETOOLONG; return -1; }
    int fd = open_beneath(rootfd, len ? rel : ".", strict);
    if (fd >= 0 || errno != ENOENT || missing == MISSING_FAIL) return fd;
    int parent = (int)syscall(SYS_openat, rootfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
    if (parent < 0) return -1;
    size_t start = 0;
    while (start < len) {
        while (start < len && rel[start] == '/') start++;
        size_t end = start;
        while (end < len && rel[end] != '/') end++;
        if (end == start) break;
        memcpy(buf, rel, end);
        buf[end] = 0;
        char name[256];
        size_t nlen = end - start;
        if (nlen >= sizeof name) { close(parent); errno = ENAMETOOLONG; return -1; }
        memcpy(name, rel + start, nlen);
        name[nlen] = 0;
        int next = open_beneath(rootfd, buf, strict);
        if (next < 0 && errno == ENOENT) {
            int last = 1;
            for (size_t k = end; k < len; k++) if (rel[k] != '/') { last = 0; break; }
            if (last && missing == MISSING_FILE) {
                int f = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
                if (f < 0 && errno != EEXIST) { close(parent); return -1; }
                if (f >= 0) close(f);
            } else if (mkdirat(parent, name, 0755) < 0 && errno != EEXIST) {
                close(parent);
                return -1;
            }
            next = open_beneath(rootfd, buf, strict);
        }
        close(parent);
        if (next < 0) return -1;
        parent = next;
        start = end;
    }
    return parent;
}

// mount(2) onto a target resolved inside the zone root.
static int mount_in_root(int rootfd, const char *rel, int missing, const char *source,
                         const char *fstype, unsigned long flags, const char *data) {
    int fd = open_in_root(rootfd, rel, missing);
    if (fd < 0) return -1;
    char path[32];
    fd_path(path, fd);
    int rc = mount(source, path, fstype, flags, data);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

// Makes the mount now at `rel` read-only. mount_setattr changes only this attribute, so the
// flags the kernel locked for a less privileged mount namespace (nosuid, nodev, ...) stay.
static int setattr_in_root(int rootfd, const char *rel, int recursive, int how, uint64_t attrs) {
    int fd = open_in_root(rootfd, rel, how);
    if (fd < 0) return -1;
    struct mount_attr attr = { .attr_set = attrs };
    int rc = (int)syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr, sizeof attr);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

static int readonly_in_root(int rootfd, const char *rel, int recursive, int how) {
    return setattr_in_root(rootfd, rel, recursive, how, MOUNT_ATTR_RDONLY);
}

// A host directory bound into the zone never brings working device nodes or set-id files
// (vmadm's nodevice/nosuid are the default); ro and noexec come from the manifest's options.
static int bind_in_root(int rootfd, const char *source, const char *rel, int file, int read_only, int noexec) {
    if (mount_in_root(rootfd, rel, file ? MISSING_FILE : MISSING_DIR, source, NULL, MS_BIND | MS_REC, NULL) < 0) return -1;
    uint64_t attrs = MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID | (read_only ? MOUNT_ATTR_RDONLY : 0) | (noexec ? MOUNT_ATTR_NOEXEC : 0);
    return setattr_in_root(rootfd, rel, 1, MISSING_FAIL, attrs);
}

static int drop_caps(uint64_t keep, int cap_last) {
    for (int c = 0; c <= cap_last; c++) {
        if (keep & (1ULL << c)) continue;
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL) return -1;
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return -1;
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    for (int i = 0; i < 2; i++) {
        uint32_t bits = (uint32_t)(keep >> (32 * i));
        data[i].effective = bits;
        data[i].permitted = bits;
        data[i].inheritable = bits;
    }
    return (int)syscall(SYS_capset, &hdr, data);
}

// The caller's thread may block or ignore signals (a Swift runtime thread often does); both
// survive exec, and a zone's processes must start with the defaults.
static void reset_signals(void) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < _NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        sigaction(sig, &dfl, NULL);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static int send_fd(int sock, const void *data, size_t len, int fd);

// uid and gid 0 in the zone's user namespace, with no supplementary groups. Raw system calls:
// glibc's setresgid/setgroups/setresuid signal every thread the process had (__nptl_setxid)
// and wait for each, but a child cloned from a multithreaded parent has only one thread and a
// stale list of the others; one that was being created at the clone is waited for forever.
static int set_root_ids(void) {
    if (syscall(SYS_setresgid, 0, 0, 0) != 0) return -1;
    if (syscall(SYS_setgroups, 0, NULL) != 0) return -1;
    return (int)syscall(SYS_setresuid, 0, 0, 0);
}

// notify: the filter's user notifications (statfs, fstatfs) get a listener, sent to the
// parent, which hands it to the zone's statfs supervisor (lumos-init --statfs-server).
static int restrict_self(int sock, uint64_t keep, int cap_last, const struct sock_filter *filter, unsigned short len, int notify) {
    STEP(sock, CLINUX_STEP_CAPS, drop_caps(keep, cap_last));
    STEP(sock, CLINUX_STEP_NO_NEW_PRIVS, prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    if (filter) {
        struct sock_fprog prog = { .len = len, .filter = (struct sock_filter *)filter };
        long listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, notify ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0, &prog);
        if (listener < 0) report(sock, CLINUX_STEP_SECCOMP);
        if (notify) {
            struct clinux_zone_message m = { CLINUX_ZONE_MSG_LISTENER, 0, 0, -1 };
            STEP(sock, CLINUX_STEP_SECCOMP, send_fd(sock, &m, sizeof m, (int)listener));
            close((int)listener);
        }
    }
    return 0;
}

static int setup_stdio(int in, int out, int err) {
    // Move the descriptors above 2 first so that dup2 cannot clobber one we still need.
    int fds[3] = { in, out, err };
    for (int i = 0; i < 3; i++) {
        if (fds[i] < 0) continue;
        int moved = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
        if (moved < 0) return -1;
        fds[i] = moved;
    }
    for (int i = 0; i < 3; i++) {
        if (fds[i] >= 0 && dup2(fds[i], i) < 0) return -1;
    }
    return 0;
}

// Waits for the parent's go (and an optional descriptor). Returns 1, or 0 if the parent went away.
static int wait_release(int sock, int *fd_out) {
    char byte;
    struct iovec iov = { &byte, 1 };
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } control;
    struct msghdr msg = { 0 };
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    ssize_t n;
    do { n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); } while (n < 0 && errno == EINTR);
    if (n <= 0) return 0;
    *fd_out = -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) memcpy(fd_out, CMSG_DATA(c), sizeof(int));
    return 1;
}

static int send_fd(int sock, const void *data, size_t len, int fd) {
    struct iovec iov = { (void *)data, len };
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } control;
    struct msghdr msg = { 0 };
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (fd >= 0) {
        memset(control.buf, 0, sizeof control.buf);
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof control.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    ssize_t n;
    do { n = sendmsg(sock, &msg, MSG_NOSIGNAL); } while (n < 0 && errno == EINTR);
    return n < 0 ? -1 : 0;
}

// The zone's console: a pseudo-terminal of the zone's own devpts (so the zone sees a pts of
// its own, never a host terminal), its slave bound onto /dev/console and returned (it becomes
// the first process's stdio), its master sent to the parent, which hands it to the console
// relay (lumos-init --console-relay -, docs/vmadm.md "Console"). 80x24 until a client says
// otherwise: programs that size themselves from the terminal get no zero columns.
static int setup_console(int sock, int rootfd) {
    int node = open_in_root(rootfd, "dev/pts/ptmx", MISSING_FAIL | STRICT);
    if (node < 0) report(sock, CLINUX_STEP_CONSOLE);
    char path[32];
    fd_path(path, node);
    int master = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    close(node);
    if (master < 0) report(sock, CLINUX_STEP_CONSOLE);
    int unlock = 0;
    STEP(sock, CLINUX_STEP_CONSOLE, ioctl(master, TIOCSPTLCK, &unlock));
    struct winsize size = { .ws_row = 24, .ws_col = 80 };
    STEP(sock, CLINUX_STEP_CONSOLE, ioctl(master, TIOCSWINSZ, &size));
    int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) report(sock, CLINUX_STEP_CONSOLE);
    char source[32];
    fd_path(source, slave);
    STEP(sock, CLINUX_STEP_CONSOLE, mount_in_root(rootfd, "dev/console", MISSING_FILE | STRICT, source, NULL, MS_BIND, NULL));
    struct clinux_zone_message m = { CLINUX_ZONE_MSG_TTY, 0, 0, -1 };
    STEP(sock, CLINUX_STEP_CONSOLE, send_fd(sock, &m, sizeof m, master));
    close(master);
    return slave;
}

// /proc entries that leak the host or let a zone poke the kernel (the list Docker and runc
// mask): files get /dev/null bound over them, directories an empty read-only tmpfs.
static const char *const proc_masked_files[] = {
    "proc/kcore", "proc/keys", "proc/timer_list", "proc/sched_debug", "proc/latency_stats",
    "proc/kallsyms", "proc/sysrq-trigger",
    // The host's boot command line, kernel configuration, disks and swap devices: nothing a
    // tenant needs, and each tells an attacker about the host (docs/security.md).
    "proc/cmdline", "proc/config.gz", "proc/partitions", "proc/diskstats", "proc/swaps", NULL,
};
static const char *const proc_masked_dirs[] = { "proc/acpi", "proc/scsi", "proc/driver", NULL };
static const char *const proc_readonly[] = { "proc/sys", "proc/irq", "proc/bus", "proc/fs", NULL };
static const char *const dev_nodes[] = { "null", "zero", "full", "random", "urandom", "tty", NULL };

static int setup_dev(int sock, int rootfd, const struct clinux_zone_config *cfg) {
    STEP(sock, CLINUX_STEP_DEV, mount_in_root(rootfd, "dev", MISSING_DIR | STRICT, "tmpfs", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_STRICTATIME, cfg->dev_data));
    // mknod is not allowed in a user namespace: bind the host's harmless nodes instead.
    for (int i = 0; dev_nodes[i]; i++) {
        char host[32] = "/dev/", rel[32] = "dev/";
        size_t n = safe_strlen(dev_nodes[i]);
        memcpy(host + 5, dev_nodes[i], n + 1);
        memcpy(rel + 4, dev_nodes[i], n + 1);
        STEP(sock, CLINUX_STEP_DEVNODES, mount_in_root(rootfd, rel, MISSING_FILE | STRICT, host, NULL, MS_BIND, NULL));
    }
    // Nodes the spec asked for (/dev/kvm): private nodes owned by the zone's root, prepared by
    // the parent as detached mounts (clinux_device_tree).
    for (int i = 0; i < cfg->device_count; i++) {
        char rel[64] = "dev/";
        size_t n = safe_strlen(cfg->device_names[i]);
        if (n + 5 > sizeof rel) { errno = ENAMETOOLONG; report(sock, CLINUX_STEP_DEVICES); }
        memcpy(rel + 4, cfg->device_names[i], n + 1);
        int target = open_in_root(rootfd, rel, MISSING_FILE | STRICT);
        if (target < 0) report(sock, CLINUX_STEP_DEVNODES);
        // move_mount follows no symlink in the target (a /proc/self/fd path would not do):
        // name the target by its descriptor.
        STEP(sock, CLINUX_STEP_DEVICES, syscall(SYS_move_mount, cfg->device_fds[i], "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH));
        close(target);
        close(cfg->device_fds[i]);
    }
    STEP(sock, CLINUX_STEP_DEVPTS, mount_in_root(rootfd, "dev/pts", MISSING_DIR | STRICT, "devpts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"));
    STEP(sock, CLINUX_STEP_SHM, mount_in_root(rootfd, "dev/shm", MISSING_DIR | STRICT, "shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, cfg->shm_data));
    int dev = open_in_root(rootfd, "dev", MISSING_FAIL | STRICT);
    if (dev < 0) report(sock, CLINUX_STEP_DEV);
    // O_PATH descriptors are not enough for symlinkat; reopen the directory for real.
    char path[32];
    fd_path(path, dev);
    int devdir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    close(dev);
    if (devdir < 0) report(sock, CLINUX_STEP_DEV);
    static const char *const links[][2] = {
        { "pts/ptmx", "ptmx" }, { "/proc/self/fd", "fd" }, { "/proc/self/fd/0", "stdin" },
        { "/proc/self/fd/1", "stdout" }, { "/proc/self/fd/2", "stderr" }
    };
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        if (symlinkat(links[i][0], devdir, links[i][1]) < 0 && errno != EEXIST) report(sock, CLINUX_STEP_DEV);
    }
    close(devdir);
    return 0;
}

static int setup_proc_sys(int sock, int rootfd, const struct clinux_zone_config *cfg) {
    STEP(sock, CLINUX_STEP_PROC, mount_in_root(rootfd, "proc", MISSING_DIR | STRICT, "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL));
    for (int i = 0; proc_masked_files[i]; i++) {
        if (mount_in_root(rootfd, proc_masked_files[i], MISSING_FAIL | STRICT, "/dev/null", NULL, MS_BIND, NULL) < 0 && errno != ENOENT)
            report(sock, CLINUX_STEP_PROC_MASK);
    }
    for (int i = 0; proc_masked_dirs[i]; i++) {
        if (mount_in_root(rootfd, proc_masked_dirs[i], MISSING_FAIL | STRICT, "tmpfs", "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k") < 0 && errno != ENOENT)
            report(sock, CLINUX_STEP_PROC_MASK);
    }
    for (int i = 0; proc_readonly[i]; i++) {
        int fd = open_in_root(rootfd, proc_readonly[i], MISSING_FAIL | STRICT);
        if (fd < 0) { if (errno == ENOENT) continue; report(sock, CLINUX_STEP_PROC_MASK); }
        char path[32];
        fd_path(path, fd);
        if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0) report(sock, CLINUX_STEP_PROC_MASK);
        close(fd);
        if (readonly_in_root(rootfd, proc_readonly[i], 1, STRICT) < 0) report(sock, CLINUX_STEP_PROC_MASK);
    }
    // A system zone configures its own network namespace: /proc/sys/net (whose files belong
    // to the zone's root only for the zone's own net namespace) is writable again, as in LXC.
    if (cfg->system) {
        int fd = open_in_root(rootfd, "proc/sys/net", MISSING_FAIL | STRICT);
        if (fd < 0) report(sock, CLINUX_STEP_PROC_MASK);
        char path[32];
        fd_path(path, fd);
        if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0) report(sock, CLINUX_STEP_PROC_MASK);
        close(fd);
        fd = open_in_root(rootfd, "proc/sys/net", MISSING_FAIL | STRICT);
        if (fd < 0) report(sock, CLINUX_STEP_PROC_MASK);
        struct mount_attr attr = { .attr_clr = MOUNT_ATTR_RDONLY };
        if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0) report(sock, CLINUX_STEP_PROC_MASK);
        close(fd);
    }
    // A fresh read-only sysfs shows only the zone's own network devices. Where the kernel
    // refuses it, an empty read-only tmpfs stands in: nothing of the host shows through.
    unsigned long sysflags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
    if (mount_in_root(rootfd, "sys", MISSING_DIR | STRICT, "sysfs", "sysfs", sysflags, NULL) < 0) {
        STEP(sock, CLINUX_STEP_SYS, mount_in_root(rootfd, "sys", MISSING_DIR | STRICT, "tmpfs", "tmpfs", sysflags, "size=4k"));
    } else {
        // sysfs is not namespaced for block devices: the host's disks would be listed. Firmware
        // tables (ACPI, DMI serials) likewise.
        static const char *const sys_masked[] = { "sys/firmware", "sys/block", "sys/class/block", "sys/dev/block", NULL };
        for (int i = 0; sys_masked[i]; i++) {
            if (mount_in_root(rootfd, sys_masked[i], MISSING_FAIL | STRICT, "tmpfs", "tmpfs", sysflags, "size=4k") < 0 && errno != ENOENT)
                report(sock, CLINUX_STEP_SYS);
        }
    }
    return 0;
}

// The new network namespace starts with lo down; a zone expects a working loopback.
static int loopback_up(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", 3);
    int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP;
        rc = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    int saved = errno;
    close(s);
    errno = saved;
    return rc;
}

static int zone_child(void *arg) {
    const struct clinux_zone_config *cfg = arg;
    int sock = cfg->sync_fd;
    close(cfg->parent_fd);
    int tree = -1, unused = -1;
    // First release: the id maps are written and the rootfs tree (if any) comes along.
    if (!wait_release(sock, &tree)) _exit(1);

    STEP(sock, CLINUX_STEP_SETSID, setsid());
    STEP(sock, CLINUX_STEP_IDS, set_root_ids());
    STEP(sock, CLINUX_STEP_MOUNT_PRIVATE, mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL));
    // The root arrives as a detached tree the parent cloned (clinux_rootfs_tree). It lands on
    // cfg->landing, an empty directory every uid may reach: the zone's root directory itself
    // sits in a pool closed to other host users (0700), which this unprivileged child could
    // not walk into.
    if (tree < 0) { errno = EBADF; report(sock, CLINUX_STEP_ROOTFS); }
    STEP(sock, CLINUX_STEP_ROOTFS, syscall(SYS_move_mount, tree, "", AT_FDCWD, cfg->landing, MOVE_MOUNT_F_EMPTY_PATH));
    close(tree);
    STEP(sock, CLINUX_STEP_ROOTFS, chdir(cfg->landing));
    // A clone of a shared mount joins its peer group (open_tree copies propagation), and on a
    // host whose / is shared (every systemd host) pivot_root refuses a shared new root with
    // EINVAL. The zone's tree is made private: nothing the host mounts under the dataset
    // reaches the zone, and nothing the zone mounts reaches the host.
    STEP(sock, CLINUX_STEP_ROOTFS, mount(NULL, ".", NULL, MS_REC | MS_PRIVATE, NULL));
    int rootfd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) report(sock, CLINUX_STEP_ROOTFS);

    setup_dev(sock, rootfd, cfg);
    int console = cfg->console ? setup_console(sock, rootfd) : -1;
    // In a user namespace proc can only be mounted while the host's /proc is still visible
    // (the kernel's mnt_already_visible check), so before the old root is detached.
    setup_proc_sys(sock, rootfd, cfg);
    if (cfg->tmp_data)
        STEP(sock, CLINUX_STEP_TMP, mount_in_root(rootfd, "tmp", MISSING_DIR | STRICT, "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV, cfg->tmp_data));
    for (int i = 0; i < cfg->mount_count; i++) {
        const struct clinux_zone_mount *m = &cfg->mounts[i];
        struct stat st;
        STEP(sock, CLINUX_STEP_BIND, stat(m->source, &st));
        STEP(sock, CLINUX_STEP_BIND, bind_in_root(rootfd, m->source, m->target, !S_ISDIR(st.st_mode), m->read_only, m->noexec));
    }
    close(rootfd);

    STEP(sock, CLINUX_STEP_PIVOT_ROOT, syscall(SYS_pivot_root, ".", "."));
    STEP(sock, CLINUX_STEP_PIVOT_ROOT, umount2(".", MNT_DETACH));
    STEP(sock, CLINUX_STEP_PIVOT_ROOT, chdir("/"));
    STEP(sock, CLINUX_STEP_HOSTNAME, sethostname(cfg->hostname, safe_strlen(cfg->hostname)));
    STEP(sock, CLINUX_STEP_LOOPBACK, loopback_up());

    // Second release: the parent has joined us to the zone's cgroups (meanwhile, the mounts
    // above ran in parallel) and wired the network. Only now may the zone's code run.
    if (!wait_release(sock, &unused)) _exit(1);
    if (unused >= 0) close(unused);
    // After joining the cgroups, so /proc/self/cgroup shows "/".
    STEP(sock, CLINUX_STEP_CGROUPNS, unshare(CLONE_NEWCGROUP));
    // A system zone's init finds its own cgroup tree (the delegated v2 directory, root of the
    // namespace just made) on /sys/fs/cgroup, and follows what is mounted there: systemd
    // runs unified even on a hybrid host, whose v1 controllers the zone cannot use anyway.
    if (cfg->system && mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0 && errno != ENOENT)
        report(sock, CLINUX_STEP_CGROUPNS);
    if (cfg->memlock_bytes != UINT64_MAX) {
        struct rlimit rl = { cfg->memlock_bytes, cfg->memlock_bytes };
        STEP(sock, CLINUX_STEP_RLIMIT, setrlimit(RLIMIT_MEMLOCK, &rl));
    }
    // Passed descriptors and the two this process still needs (the pair, the init binary) go
    // above every target slot first, so no dup2 below overwrites a source before its use,
    // whatever numbers the sources had (0-2 and the slots 3.. included).
    int n = cfg->pass_count > 0 ? cfg->pass_count : 0;
    int high = 3 + n;
    int init_fd = cfg->init_fd;
    int parked[CLINUX_ZONE_MAX_PASS];
    if (n > CLINUX_ZONE_MAX_PASS) { errno = EMFILE; report(sock, CLINUX_STEP_DESCRIPTORS); }
    for (int i = 0; i < n; i++) {
        parked[i] = fcntl(cfg->pass_fds[i], F_DUPFD_CLOEXEC, high);
        if (parked[i] < 0) report(sock, CLINUX_STEP_DESCRIPTORS);
    }
    if (n > 0) {
        int moved = fcntl(sock, F_DUPFD_CLOEXEC, high);
        if (moved < 0) report(sock, CLINUX_STEP_DESCRIPTORS);
        sock = moved;
        if (init_fd >= 0) {
            init_fd = fcntl(init_fd, F_DUPFD_CLOEXEC, high);
            if (init_fd < 0) report(sock, CLINUX_STEP_DESCRIPTORS);
        }
    }
    if (console >= 0) STEP(sock, CLINUX_STEP_STDIO, setup_stdio(console, console, console));
    else STEP(sock, CLINUX_STEP_STDIO, setup_stdio(cfg->stdin_fd, cfg->stdout_fd, cfg->stderr_fd));
    // dup2 clears close-on-exec on the copy; parked copies are >= high and stay close-on-exec.
    for (int i = 0; i < n; i++) STEP(sock, CLINUX_STEP_DESCRIPTORS, dup2(parked[i], 3 + i));
    // Nothing else of the host's descriptor table may reach the zone.
    STEP(sock, CLINUX_STEP_STDIO, syscall(SYS_close_range, high, ~0U, CLOSE_RANGE_CLOEXEC));
    restrict_self(sock, cfg->caps_keep, cfg->cap_last, cfg->seccomp, cfg->seccomp_len, cfg->notify_statfs);
    reset_signals();
    if (init_fd >= 0) syscall(SYS_execveat, init_fd, "", cfg->argv, cfg->envp, AT_EMPTY_PATH);
    else execve(cfg->argv[0], cfg->argv, cfg->envp);
    report(sock, CLINUX_STEP_EXEC);
    return 127;
}

// glibc's clone() with a stack of our own: no CLONE_VM, so the child has a private copy of
// the parent's memory (like fork) but runs no atfork handlers of a multithreaded parent.
static pid_t clone_with_stack(int (*fn)(void *), void *arg, int flags, int *pidfd) {
    size_t size = 256 * 1024;
    void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) return -1;
    int local = -1;
    pid_t pid = clone(fn, (char *)stack + size, flags | SIGCHLD | (pidfd ? CLONE_PIDFD : 0), arg, pidfd ? pidfd : &local);
    int saved = errno;
    munmap(stack, size);
    errno = saved;
    return pid;
}

// clone3 without a new stack (the child runs on its private copy of ours, like fork) and
// CLONE_INTO_CGROUP: the child is born in the zone's cgroup v2 directory, so no cgroup.procs
// write (which takes the global threadgroup lock: an RCU grace period) is needed for it.
static pid_t clone3_into(int (*fn)(void *), void *arg, uint64_t flags, int cgroup_fd, int *pidfd) {
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = flags | CLONE_INTO_CGROUP | (pidfd ? CLONE_PIDFD : 0);
    args.pidfd = (uint64_t)(uintptr_t)pidfd;
    args.exit_signal = SIGCHLD;
    args.cgroup = (uint64_t)cgroup_fd;
    pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) _exit(fn(arg));
    return pid;
}

static int exec_child(void *arg) {
    const struct clinux_exec_config *cfg = arg;
    if (dup2(cfg->stdin_fd, 0) < 0) _exit(127);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0) _exit(127);
    syscall(SYS_close_range, 3, ~0U, 0);
    reset_signals();
    execve(cfg->path, cfg->argv, cfg->envp);
    _exit(127);
}

pid_t clinux_spawn_in_cgroup(const struct clinux_exec_config *cfg, int cgroup_fd) {
    if (cgroup_fd >= 0) return clone3_into(exec_child, (void *)cfg, 0, cgroup_fd, NULL);
    return clone_with_stack(exec_child, (void *)cfg, 0, NULL);
}

pid_t clinux_zone_spawn(const struct clinux_zone_config *cfg, int cgroup_fd, int *pidfd) {
    int flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET;
    if (cgroup_fd >= 0) return clone3_into(zone_child, (void *)cfg, (uint64_t)flags, cgroup_fd, pidfd);
    return clone_with_stack(zone_child, (void *)cfg, flags, pidfd);
}

// Inside the zone's namespaces: execve with a fixed PATH search (execvpe allocates).
static void exec_in_zone(char *const *argv, char *const *envp) {
    const char *cmd = argv[0];
    for (const char *c = cmd; *c; c++) {
        if (*c == '/') { execve(cmd, argv, envp); return; }
    }
    static const char *const dirs[] = { "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin", NULL };
    char path[4096];
    size_t n = safe_strlen(cmd);
    int saved = ENOENT;
    for (int i = 0; dirs[i]; i++) {
        size_t d = safe_strlen(dirs[i]);
        if (d + 1 + n >= sizeof path) break;
        memcpy(path, dirs[i], d);
        path[d] = '/';
        memcpy(path + d + 1, cmd, n + 1);
        execve(path, argv, envp);
        if (errno != ENOENT) saved = errno;
    }
    errno = saved;
}

static int enter_child(void *arg) {
    const struct clinux_zone_enter_config *cfg = arg;
    int sock = cfg->sync_fd;
    close(cfg->parent_fd);
    // Until exec, this process (and the fork below, visible inside the zone) holds host
    // descriptors and full capabilities in the zone's user namespace. Not dumpable: zone
    // processes cannot ptrace it or open its /proc files (exec resets this as usual).
    STEP(sock, CLINUX_STEP_SETNS, prctl(PR_SET_DUMPABLE, 0, 0, 0, 0));
    int unused = -1;
    if (!wait_release(sock, &unused)) _exit(1);
    // The user namespace first: it grants the capabilities needed to join the others.
    for (int i = 0; i < 7; i++) {
        if (cfg->ns_fds[i] >= 0) STEP(sock, CLINUX_STEP_SETNS, setns(cfg->ns_fds[i], 0));
    }
    STEP(sock, CLINUX_STEP_IDS, set_root_ids());
    STEP(sock, CLINUX_STEP_SETNS, chdir(cfg->cwd ? cfg->cwd : "/"));
    // setns(CLONE_NEWPID) applies to children only: fork once more (raw clone, no atfork).
    pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid < 0) report(sock, CLINUX_STEP_FORK);
    if (pid == 0) {
        if (cfg->tty) {
            int master = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
            if (master < 0) report(sock, CLINUX_STEP_TTY);
            int unlock = 0;
            STEP(sock, CLINUX_STEP_TTY, ioctl(master, TIOCSPTLCK, &unlock));
            int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
            if (slave < 0) report(sock, CLINUX_STEP_TTY);
            struct clinux_zone_message m = { CLINUX_ZONE_MSG_TTY, 0, 0, -1 };
            STEP(sock, CLINUX_STEP_TTY, send_fd(sock, &m, sizeof m, master));
            close(master);
            STEP(sock, CLINUX_STEP_SETSID, setsid());
            STEP(sock, CLINUX_STEP_TTY, ioctl(slave, TIOCSCTTY, 0));
            STEP(sock, CLINUX_STEP_STDIO, setup_stdio(slave, slave, slave));
            if (slave > 2) close(slave);
        } else {
            // A new session without a controlling terminal: otherwise the zone's process keeps
            // the operator's terminal and could push input into the operator's shell (TIOCSTI).
            STEP(sock, CLINUX_STEP_SETSID, setsid());
            STEP(sock, CLINUX_STEP_STDIO, setup_stdio(cfg->stdin_fd, cfg->stdout_fd, cfg->stderr_fd));
        }
        STEP(sock, CLINUX_STEP_STDIO, syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC));
        if (cfg->memlock_bytes != UINT64_MAX) {
            struct rlimit rl = { cfg->memlock_bytes, cfg->memlock_bytes };
            STEP(sock, CLINUX_STEP_RLIMIT, setrlimit(RLIMIT_MEMLOCK, &rl));
        }
        restrict_self(sock, cfg->caps_keep, cfg->cap_last, cfg->seccomp, cfg->seccomp_len, cfg->notify_statfs);
        reset_signals();
        exec_in_zone(cfg->argv, cfg->envp);
        report(sock, CLINUX_STEP_EXEC);
    }
    // The intermediate: let the command's exec close the pair, then pass its status up.
    close(sock);
    for (int i = 0; i < 7; i++) if (cfg->ns_fds[i] >= 0) close(cfg->ns_fds[i]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) _exit(126);
    }
    if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
    _exit(128 + WTERMSIG(status));
    return 0;
}

pid_t clinux_zone_enter(const struct clinux_zone_enter_config *cfg, int cgroup_fd) {
    if (cgroup_fd >= 0) return clone3_into(enter_child, (void *)cfg, 0, cgroup_fd, NULL);
    return clone_with_stack(enter_child, (void *)cfg, 0, NULL);
}

// ---- parent side ----

int clinux_send_fd(int sock, int fd) {
    char byte = 'F';
    return send_fd(sock, &byte, 1, fd);
}

int clinux_zone_release(int sock, int pass_fd) {
    char go = 'G';
    return send_fd(sock, &go, 1, pass_fd);
}

int clinux_zone_wait_message(int sock, struct clinux_zone_message *out) {
    struct clinux_zone_message m;
    struct iovec iov = { &m, sizeof m };
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } control;
    struct msghdr msg = { 0 };
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    ssize_t n;
    int resets = 0;
    for (;;) {
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        if (n >= 0 || errno == EINTR) { if (n >= 0) break; continue; }
        // A child that died with our release still unread makes the kernel report
        // ECONNRESET once, ahead of the message it queued for us: read on to get that.
        if (errno == ECONNRESET && resets++ == 0) continue;
        return -1;
    }
    if (n == 0) return 0;
    if ((size_t)n < sizeof m) { errno = EPROTO; return -1; }
    m.fd = -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) memcpy(&m.fd, CMSG_DATA(c), sizeof(int));
    *out = m;
    return 1;
}

int clinux_rootfs_tree(const char *path, int userns_fd) {
    int tree = (int)syscall(SYS_open_tree, AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (tree < 0) return -1;
    // nodev: device nodes an image or a received stream brought along must not open host
    // devices; nosuid: no_new_privs already ignores set-id bits, this makes it visible. The
    // pool is noexec on the host (nothing runs from it there); the zone's own view of its
    // root is where its programs run, so this mount clears it.
    struct mount_attr attr = {
        .attr_set = MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID | (userns_fd >= 0 ? MOUNT_ATTR_IDMAP : 0),
        .attr_clr = MOUNT_ATTR_NOEXEC,
        .userns_fd = userns_fd >= 0 ? (uint64_t)userns_fd : 0,
    };
    if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0) {
        int saved = errno;
        close(tree);
        errno = saved;
        return -1;
    }
    return tree;
}

// The default filter: allow everything except calls that reach the kernel or the host as a
// whole. Most are refused by capability checks anyway (the zone has no CAP_SYS_ADMIN,
// CAP_SYS_TIME, CAP_SYS_MODULE, CAP_SYS_BOOT in the host's user namespace); the filter makes
// that explicit and shrinks the kernel surface a zone can touch, as Docker's default does:
// - kernel and modules: kexec_load, kexec_file_load, init_module, finit_module, delete_module
// - host clock: settimeofday, clock_settime, clock_adjtime, adjtimex, stime
// - whole-machine state: reboot, swapon, swapoff, acct, quotactl, syslog, vhangup
// - mounts and namespaces: mount, umount2, pivot_root, the new mount API, unshare, setns,
//   clone with any CLONE_NEW* flag (a nested user namespace is a large kernel surface);
//   clone3 fails with ENOSYS so libc falls back to clone, whose flags can be checked
// - kernel attack surface: bpf, perf_event_open, userfaultfd, open_by_handle_at (the
//   "shocker" escape), name_to_handle_at, keyctl, add_key, request_key, lookup_dcookie,
//   iopl, ioperm, uselib, personality changes are left to the kernel
// ptrace stays allowed inside the zone: the pid namespace means no host pid can be named.
int clinux_zone_seccomp_default(int allow_io_uring, int deny_ptrace, int system, int notify_statfs, struct sock_filter **prog, unsigned short *len) {
    // io_uring: a large, fast-moving kernel surface with a history of privilege escalations,
    // refused by Docker's default profile too; a manifest may allow it (lumos_allow_io_uring).
    static const char *const io_uring[] = { "io_uring_setup", "io_uring_enter", "io_uring_register", NULL };
    static const char *const denied[] = {
        "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
        "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "stime",
        "reboot", "swapon", "swapoff", "acct", "quotactl", "syslog", "vhangup",
        "pivot_root", "setns",
        "bpf", "perf_event_open", "userfaultfd", "open_by_handle_at", "name_to_handle_at",
        "keyctl", "add_key", "request_key", "lookup_dcookie", "iopl", "ioperm", "uselib",
        NULL,
    };
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx) { errno = ENOMEM; return -1; }
    int rc = 0;
    // 32-bit x86 system calls are reachable from a 64-bit process (int 0x80): filter them too.
    if (seccomp_arch_native() == SCMP_ARCH_X86_64) {
        rc = seccomp_arch_add(ctx, SCMP_ARCH_X86);
        if (rc == -EEXIST) rc = 0;
    }
    if (rc == 0) rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    for (int i = 0; rc == 0 && denied[i]; i++) {
        int nr = seccomp_syscall_resolve_name(denied[i]);
        if (nr == __NR_SCMP_ERROR) continue;
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
        if (rc == -EDOM || rc == -EFAULT) rc = 0;   // not on this architecture
    }
    // Mounts. A standard or jail zone may not mount at all. A system zone (`system`, with
    // CAP_SYS_ADMIN in its own user namespace) may mount what the kernel lets a user
    // namespace mount (proc, sysfs, tmpfs, devpts, cgroup2, mqueue, ...) and unmount, unshare
    // every namespace but a user or time namespace, with three limits the kernel does not
    // set because the zone's mounts were made inside its own namespaces (no MNT_LOCK_*):
    // - a remount must keep MS_RDONLY, MS_NODEV and MS_NOSUID: otherwise `mount -o
    //   remount,bind,rw` would open a read-only host directory (a lofs filesystem) for
    //   writing and `remount,bind,dev` would let a device node from an image open a host disk
    //   on the (host-owned) root file system;
    // - the new mount API answers ENOSYS, so programs fall back to mount(2), whose flags this
    //   filter can see (mount_setattr would clear the same attributes);
    // - pivot_root and setns stay refused (above).
    static const char *const mount_api[] = { "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", NULL };
    static const char *const mounting[] = { "mount", "umount", "umount2", "unshare", NULL };
    for (int i = 0; rc == 0 && mount_api[i]; i++) {
        int nr = seccomp_syscall_resolve_name(mount_api[i]);
        if (nr == __NR_SCMP_ERROR) continue;
        rc = seccomp_rule_add(ctx, system ? SCMP_ACT_ERRNO(ENOSYS) : SCMP_ACT_ERRNO(EPERM), nr, 0);
        if (rc == -EDOM || rc == -EFAULT) rc = 0;
    }
    for (int i = 0; rc == 0 && !system && mounting[i]; i++) {
        int nr = seccomp_syscall_resolve_name(mounting[i]);
        if (nr == __NR_SCMP_ERROR) continue;
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
        if (rc == -EDOM || rc == -EFAULT) rc = 0;
    }
    if (system) {
        const uint64_t kept[] = { MS_RDONLY, MS_NODEV, MS_NOSUID };
        for (size_t i = 0; rc == 0 && i < sizeof kept / sizeof kept[0]; i++)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(mount), 1, SCMP_A3(SCMP_CMP_MASKED_EQ, MS_REMOUNT | kept[i], MS_REMOUNT));
        const uint64_t nested[] = { CLONE_NEWUSER, 0x80 /* CLONE_NEWTIME */ };
        for (size_t i = 0; rc == 0 && i < sizeof nested / sizeof nested[0]; i++)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, nested[i], nested[i]));
    }
    static const char *const inspect[] = { "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", NULL };
    for (int i = 0; rc == 0 && deny_ptrace && inspect[i]; i++) {
        int nr = seccomp_syscall_resolve_name(inspect[i]);
        if (nr == __NR_SCMP_ERROR) continue;
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
        if (rc == -EDOM || rc == -EFAULT) rc = 0;
    }
    for (int i = 0; rc == 0 && !allow_io_uring && io_uring[i]; i++) {
        int nr = seccomp_syscall_resolve_name(io_uring[i]);
        if (nr == __NR_SCMP_ERROR) continue;
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
        if (rc == -EDOM || rc == -EFAULT) rc = 0;
    }
    const uint64_t newns[] = { CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP };
    // A system zone may clone into new namespaces (systemd's PrivateNetwork=, PrivateTmp=)
    // but never into a new user namespace.
    size_t newns_count = system ? 1 : sizeof newns / sizeof newns[0];
    for (size_t i = 0; rc == 0 && i < newns_count; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, newns[i], newns[i]));
    if (rc == 0) rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    // ioctls: TIOCSTI/TIOCLINUX push input into a terminal (an operator's, if one leaked in);
    // btrfs subvolume and snapshot creation would let a tenant make subvolumes outside its
    // dataset's quota group and out of its snapshots and send streams.
    const uint64_t denied_ioctls[] = {
        TIOCSTI, TIOCLINUX, BTRFS_IOC_SUBVOL_CREATE, BTRFS_IOC_SUBVOL_CREATE_V2, BTRFS_IOC_SNAP_CREATE, BTRFS_IOC_SNAP_CREATE_V2,
    };
    for (size_t i = 0; rc == 0 && i < sizeof denied_ioctls / sizeof denied_ioctls[0]; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffULL, denied_ioctls[i]));
    // df in a zone (docs/architecture.md): the supervisor answers for the zone's own file
    // system with its quota and lets every other call through (SECCOMP_USER_NOTIF_FLAG_CONTINUE).
    if (rc == 0 && notify_statfs) rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(statfs), 0);
    if (rc == 0 && notify_statfs) rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(fstatfs), 0);
    if (rc != 0) { seccomp_release(ctx); errno = -rc; return -1; }
    // libseccomp 2.5 exports only to a descriptor: go through a memfd.
    int fd = memfd_create("lumos-seccomp", MFD_CLOEXEC);
    if (fd < 0) { seccomp_release(ctx); return -1; }
    rc = seccomp_export_bpf(ctx, fd);
    seccomp_release(ctx);
    if (rc != 0) { close(fd); errno = -rc; return -1; }
    off_t size = lseek(fd, 0, SEEK_END);
    if (size <= 0 || size % sizeof(struct sock_filter) != 0 || size / sizeof(struct sock_filter) > BPF_MAXINSNS) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    struct sock_filter *buf = malloc((size_t)size);
    if (!buf) { close(fd); errno = ENOMEM; return -1; }
    if (pread(fd, buf, (size_t)size, 0) != size) { free(buf); close(fd); errno = EIO; return -1; }
    close(fd);
    *prog = buf;
    *len = (unsigned short)(size / sizeof(struct sock_filter));
    return 0;
}

int clinux_device_tree(const char *host_path, uint32_t uid, uint32_t gid) {
    struct stat st;
    if (stat(host_path, &st) < 0) return -1;
    if (!S_ISCHR(st.st_mode)) { errno = ENODEV; return -1; }
    int fs = (int)syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
    if (fs < 0) return -1;
    int mnt = -1, tree = -1;
    if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "mode", "0700", 0) < 0 ||
        syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "size", "4k", 0) < 0 ||
        syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "nr_inodes", "4", 0) < 0 ||
        syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) goto out;
    mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
    if (mnt < 0) goto out;
    if (mknodat(mnt, "node", S_IFCHR | 0600, st.st_rdev) < 0) goto out;
    if (fchownat(mnt, "node", uid, gid, AT_SYMLINK_NOFOLLOW) < 0) goto out;
    if (fchmodat(mnt, "node", 0600, 0) < 0) goto out;
    tree = (int)syscall(SYS_open_tree, mnt, "node", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
out:;
    int saved = errno;
    if (mnt >= 0) close(mnt);
    close(fs);
    errno = saved;
    return tree;
}

int clinux_set_memlock(pid_t pid, uint64_t bytes) {
    struct rlimit rl = { bytes, bytes };
    return prlimit(pid, RLIMIT_MEMLOCK, &rl, NULL);
}

int clinux_socketpair_seqpacket(int fds[2]) {
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds);
}

int clinux_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int clinux_tty_set_raw(int fd, void *saved, size_t saved_len) {
    struct termios t;
    if (saved_len < sizeof t) { errno = EINVAL; return -1; }
    if (tcgetattr(fd, &t) < 0) return -1;
    memcpy(saved, &t, sizeof t);
    cfmakeraw(&t);
    return tcsetattr(fd, TCSANOW, &t);
}

int clinux_tty_restore(int fd, const void *saved, size_t saved_len) {
    struct termios t;
    if (saved_len < sizeof t) { errno = EINVAL; return -1; }
    memcpy(&t, saved, sizeof t);
    return tcsetattr(fd, TCSANOW, &t);
}

int clinux_tty_copy_winsize(int from_fd, int to_fd) {
    struct winsize ws;
    if (ioctl(from_fd, TIOCGWINSZ, &ws) < 0) return -1;
    return ioctl(to_fd, TIOCSWINSZ, &ws);
}

// SIGWINCH → a byte on a pipe, so a poll loop can copy the new window size to a zone's pty.
static int winch_write_fd = -1;

static void on_winch(int sig) {
    (void)sig;
    int saved = errno;
    char b = 'W';
    if (winch_write_fd >= 0) (void)!write(winch_write_fd, &b, 1);
    errno = saved;
}

int clinux_winch_pipe(void) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) return -1;
    winch_write_fd = fds[1];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_winch;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGWINCH, &sa, NULL);
    return fds[0];
}

void clinux_winch_close(int read_fd) {
    signal(SIGWINCH, SIG_DFL);
    if (winch_write_fd >= 0) close(winch_write_fd);
    winch_write_fd = -1;
    if (read_fd >= 0) close(read_fd);
}
