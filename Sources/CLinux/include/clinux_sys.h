// Generic syscalls the Swift importer hides (they need _GNU_SOURCE) or cannot call (variadic).
#ifndef CLINUX_SYS_H
#define CLINUX_SYS_H
#include <stdint.h>
#include <sys/types.h>

int clinux_pipe2(int fds[2], int flags);
#endif
