// What every host role of lumos-init does first (main.c).
#ifndef LUMOS_INIT_SERVICE_H
#define LUMOS_INIT_SERVICE_H
// Its own session (no terminal signals), no SIGPIPE, SIGHUP or SIGINT, and out of the OOM
// killer's choice (its memory counts in the zone's cgroup, and the zone needs it).
void become_service(void);
#endif
