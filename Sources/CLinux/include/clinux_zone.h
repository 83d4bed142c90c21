// Zones: the clone → setup → exec path that Swift must not run (docs/architecture.md "Processes,
// namespaces, cgroups"). Everything that allocates (argv, envp, paths, the seccomp program)
// is built by the caller before clone; the child runs only async-signal-safe system calls.
//
// Protocol between parent and child, over one AF_UNIX SOCK_SEQPACKET pair (close-on-exec):
//   1. clinux_zone_spawn / clinux_zone_enter clone the child, which blocks reading the pair.
//   2. spawn: the child is born in the zone's cgroups (see cgroup_fd). The parent writes
//      uid_map/gid_map and calls clinux_zone_release passing the rootfs tree (clinux_rootfs_tree).
//      The child builds its mounts and pivots into the root while the parent applies limits
//      and wires the network; then the parent calls clinux_zone_release a second time.
//      enter: one release, once the child is in the zone's cgroups.
//   3. The child finishes (cgroup namespace, capabilities, seccomp) and execs. On failure it writes a clinux_zone_message of kind
//      CLINUX_ZONE_MSG_ERROR naming the step and errno, and exits 127; on success exec closes
//      the pair, so the parent reads end-of-file (clinux_zone_wait_message returns 0).
#ifndef CLINUX_ZONE_H
#define CLINUX_ZONE_H

#include <stdint.h>
#include <sys/types.h>

struct sock_filter;

// The most descriptors clinux_zone_config may pass to a zone's first process.
#define CLINUX_ZONE_MAX_PASS 64

// O_PATH, which the Swift importer hides (it needs _GNU_SOURCE).
#define CLINUX_O_PATH 010000000

// The steps a child reports when it fails (names: clinux_zone_step_name).
enum clinux_zone_step {
    CLINUX_STEP_SYNC = 1, CLINUX_STEP_SETSID, CLINUX_STEP_IDS, CLINUX_STEP_CGROUPNS,
    CLINUX_STEP_MOUNT_PRIVATE, CLINUX_STEP_ROOTFS, CLINUX_STEP_DEV, CLINUX_STEP_DEVNODES,
    CLINUX_STEP_DEVPTS, CLINUX_STEP_SHM, CLINUX_STEP_PROC, CLINUX_STEP_PROC_MASK, CLINUX_STEP_SYS,
    CLINUX_STEP_TMP, CLINUX_STEP_BIND, CLINUX_STEP_PIVOT_ROOT, CLINUX_STEP_HOSTNAME,
    CLINUX_STEP_RLIMIT, CLINUX_STEP_STDIO, CLINUX_STEP_CAPS, CLINUX_STEP_NO_NEW_PRIVS,
    CLINUX_STEP_SECCOMP, CLINUX_STEP_EXEC, CLINUX_STEP_SETNS, CLINUX_STEP_FORK, CLINUX_STEP_TTY,
    CLINUX_STEP_LOOPBACK, CLINUX_STEP_DESCRIPTORS, CLINUX_STEP_DEVICES, CLINUX_STEP_CONSOLE,
};
const char *clinux_zone_step_name(int step);

// A bind mount of a host path into the zone. `target` is relative to the zone's root and is
// resolved inside it (openat2 RESOLVE_IN_ROOT), so symlinks in the image cannot lead out.
struct clinux_zone_mount {
    const char *source;
    const char *target;
    int read_only;
    int noexec;
};

struct clinux_zone_config {
    const char *landing;                // an empty directory any uid can reach; the rootfs tree is mounted on it
    const char *hostname;
    char *const *argv;                  // NULL-terminated
    char *const *envp;                  // NULL-terminated
    int init_fd;                        // >= 0: execveat(init_fd, "", AT_EMPTY_PATH) (Lumos init)
    int stdin_fd, stdout_fd, stderr_fd; // host descriptors for the zone's stdio
    const struct clinux_zone_mount *mounts;
    int mount_count;
    const char *dev_data;               // tmpfs options for /dev
    const char *shm_data;               // tmpfs options for /dev/shm
    const char *tmp_data;               // tmpfs options for /tmp, or NULL for none
    uint64_t caps_keep;                 // bit n = capability n stays (bounding, permitted, effective)
    int cap_last;                       // /proc/sys/kernel/cap_last_cap
    const struct sock_filter *seccomp;  // NULL: no filter
    unsigned short seccomp_len;
    uint64_t memlock_bytes;             // RLIMIT_MEMLOCK (soft = hard); UINT64_MAX: inherited
    int sync_fd;                        // the child's end of the pair
    int parent_fd;                      // the parent's end; the child closes it
    // Host descriptors that become fds 3, 4, ... of the zone's first process, in this order,
    // with close-on-exec cleared (QEMU's disks and taps, docs/vm.md); every other descriptor
    // above 2 is closed at exec. A source may sit on any number, a target slot included.
    const int *pass_fds;
    int pass_count;
    // Device nodes for the zone's /dev: device_fds[i] is a detached mount of one node
    // (clinux_device_tree) moved onto /dev/<device_names[i]>.
    const int *device_fds;
    char *const *device_names;
    int device_count;
    // A system zone (ZoneCapabilities.system): /proc/sys/net stays writable.
    int system;
    // A console (docs/vmadm.md, "Console"): the child allocates a pseudo-terminal from the
    // zone's own devpts, binds its slave onto /dev/console, makes it the stdin, stdout and
    // stderr of the zone's first process (stdin_fd, stdout_fd and stderr_fd are unused, and it
    // is nobody's controlling terminal), and sends the master to the parent as a
    // CLINUX_ZONE_MSG_TTY message once its mounts are done, before the second release.
    int console;
    // The filter's statfs/fstatfs go to a supervisor (docs/architecture.md, "df in a zone"):
    // the filter is loaded with SECCOMP_FILTER_FLAG_NEW_LISTENER and the listener is sent to
    // the parent as a CLINUX_ZONE_MSG_LISTENER message just before exec.
    int notify_statfs;
};

// Clones a child in new user, mount, pid, uts, ipc and net namespaces; it waits for
// clinux_zone_release. Returns the child's pid (and a pidfd) or -1 with errno.
// cgroup_fd >= 0: clone3(CLONE_INTO_CGROUP) into that cgroup v2 directory (the child inherits
// the calling thread's v1 cgroups); -1: plain clone, the caller moves the child afterwards.
pid_t clinux_zone_spawn(const struct clinux_zone_config *cfg, int cgroup_fd, int *pidfd);

// Joining a running zone (zlogin). ns_fds are opened from /proc/<init>/ns in the order user,
// mnt, pid, uts, ipc, net, cgroup (-1 skips one). The returned pid is an intermediate process
// that setns()es and forks the command inside the zone's pid namespace, waits for it, and
// exits with its status (128+signal when killed). With tty, the command gets a fresh
// pseudo-terminal from the zone's own /dev/pts and the master is sent to the parent
// (a message of kind CLINUX_ZONE_MSG_TTY carrying the descriptor).
struct clinux_zone_enter_config {
    int ns_fds[7];
    char *const *argv;
    char *const *envp;
    const char *cwd;
    int tty;
    int stdin_fd, stdout_fd, stderr_fd;
    uint64_t caps_keep;
    int cap_last;
    const struct sock_filter *seccomp;
    unsigned short seccomp_len;
    uint64_t memlock_bytes;             // the zone's RLIMIT_MEMLOCK; UINT64_MAX: inherited
    int sync_fd;
    int parent_fd;
    int notify_statfs;                  // as in clinux_zone_config
};
pid_t clinux_zone_enter(const struct clinux_zone_enter_config *cfg, int cgroup_fd);

// A host program started in a zone's cgroups (lumos-init as console logger, console relay or
// metadata server: HostService in LumosCore): stdin from stdin_fd,
// stdout and stderr /dev/null, no other descriptor, default signals. cgroup_fd as for
// clinux_zone_spawn. Returns the pid or -1 with errno.
struct clinux_exec_config {
    const char *path;
    char *const *argv;
    char *const *envp;
    int stdin_fd;
};
pid_t clinux_spawn_in_cgroup(const struct clinux_exec_config *cfg, int cgroup_fd);

// Lets the child continue; pass_fd >= 0 is sent along (SCM_RIGHTS).
int clinux_zone_release(int sock, int pass_fd);

enum { CLINUX_ZONE_MSG_ERROR = 1, CLINUX_ZONE_MSG_TTY = 2, CLINUX_ZONE_MSG_LISTENER = 3 };
struct clinux_zone_message {
    int32_t kind;
    int32_t step;
    int32_t error;
    int32_t fd;     // received descriptor for CLINUX_ZONE_MSG_TTY and _LISTENER, else -1
};
// Reads one message: returns 1 with *msg filled, 0 on end-of-file (the child exec'd), -1 on error.
int clinux_zone_wait_message(int sock, struct clinux_zone_message *msg);

// A detached clone of the tree at `path` (open_tree(OPEN_TREE_CLONE)), nodev and nosuid, with
// the pool's noexec cleared, idmapped through the user namespace `userns_fd` (>= 0) with
// mount_setattr(MOUNT_ATTR_IDMAP). Returns the tree's fd or -1 with errno.
int clinux_rootfs_tree(const char *path, int userns_fd);

// A detached mount holding one character device node with the numbers of `host_path` (which
// must be a character device), mode 0600, owned by uid:gid: a node in a private tmpfs that
// host root mounts (fsopen/fsmount, never attached to the host's tree), so it opens although
// the zone's own mounts are nodev, and only that host uid (the zone's root) may open it. The
// host's node is not changed. Returns the tree's fd (close-on-exec) or -1 with errno.
int clinux_device_tree(const char *host_path, uint32_t uid, uint32_t gid);

// The default zone seccomp program (see zone.c for the list and why). Returns 0 and a
// malloc'd program (free it) or -1 with errno.
// allow_io_uring: leave io_uring_setup/enter/register allowed (refused with EPERM otherwise).
// deny_ptrace: also refuse ptrace, process_vm_readv/writev and kcmp (zones without
// capabilities, such as QEMU's jail: one program that never inspects another).
// system: a system zone (CAP_SYS_ADMIN and CAP_NET_ADMIN in its own user namespace) may
// mount, unmount and unshare within limits (zone.c says which); otherwise all are refused.
// notify_statfs: statfs and fstatfs return SECCOMP_RET_USER_NOTIF (a supervisor answers them).
int clinux_zone_seccomp_default(int allow_io_uring, int deny_ptrace, int system, int notify_statfs, struct sock_filter **prog, unsigned short *len);

// Sends one descriptor over a connected unix socket (one byte of data, SCM_RIGHTS).
int clinux_send_fd(int sock, int fd);

// prlimit(RLIMIT_MEMLOCK) on another process (needs CAP_SYS_RESOURCE over it).
int clinux_set_memlock(pid_t pid, uint64_t bytes);

int clinux_socketpair_seqpacket(int fds[2]);
int clinux_pidfd_send_signal(int pidfd, int sig);
int clinux_tty_set_raw(int fd, void *saved, size_t saved_len);
int clinux_tty_restore(int fd, const void *saved, size_t saved_len);
int clinux_tty_copy_winsize(int from_fd, int to_fd);
// A pipe that gets a byte on every SIGWINCH (read end returned, non-blocking); undo with close.
int clinux_winch_pipe(void);
void clinux_winch_close(int read_fd);

#endif
