#ifndef CLINUX_IPCNS_H
#define CLINUX_IPCNS_H

#include <sys/types.h>

// Writes `value` to /proc/sys/kernel/`name` as seen from the ipc namespace `ipcns_fd` refers
// to (kernel.shmmax, shmall, shmmni, sem, msgmni are per ipc namespace). An ipc namespace's
// sysctls are writable only by the root of its user namespace (ipc/ipc_sysctl.c:
// ipc_permissions; the host's root gets EACCES), so the write is made with effective uid
// `owner` (the zone's root on the host). Both changes are made on a short-lived thread of its
// own, so the caller's threads never leave their namespace or uid. Returns 0, or -errno.
int clinux_ipc_sysctl_write(int ipcns_fd, uid_t owner, const char *name, const char *value);

#endif
