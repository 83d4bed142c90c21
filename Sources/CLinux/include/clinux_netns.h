#ifndef CLINUX_NETNS_H
#define CLINUX_NETNS_H

// Moves the calling thread into the network namespace `fd` refers to (setns(2) with
// CLONE_NEWNET; Swift's Glibc does not import setns). A network namespace is per thread, so a
// process it then spawns is born there: one exec instead of nsenter + exec.
int clinux_setns_net(int fd);

#endif
