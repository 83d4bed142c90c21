#ifndef CLINUX_SPAWN_H
#define CLINUX_SPAWN_H

#include <spawn.h>

// posix_spawn_file_actions_addclosefrom_np (glibc 2.34+), which Swift's Glibc does not
// export: the child closes every descriptor >= from before it execs.
int clinux_spawn_closefrom(posix_spawn_file_actions_t *actions, int from);

#endif
