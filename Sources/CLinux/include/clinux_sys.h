// Generic syscalls the Swift importer hides (they need _GNU_SOURCE) or cannot call (variadic).
#ifndef CLINUX_SYS_H
#define CLINUX_SYS_H
#include <stdint.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <sys/file.h>

int clinux_pipe2(int fds[2], int flags);

// CRC-32C (Castagnoli), used to seal Lumos send streams. `crc` starts at 0.
uint32_t clinux_crc32c(uint32_t crc, const void *buf, size_t len);


// openat2(2) (no glibc wrapper in Debian 12). `resolve` takes RESOLVE_* flags from linux/openat2.h.
int clinux_openat2(int dirfd, const char *path, int flags, unsigned mode, unsigned long long resolve);
// RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV
unsigned long long clinux_resolve_strict(void);

#endif
