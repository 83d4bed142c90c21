#define _GNU_SOURCE
#include <sched.h>
#include "clinux_netns.h"

int clinux_setns_net(int fd) { return setns(fd, CLONE_NEWNET); }
