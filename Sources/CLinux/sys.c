#define _GNU_SOURCE
#include "clinux_sys.h"
#include <unistd.h>
#include <fcntl.h>

int clinux_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
