// The statfs supervisor of a zone (statfs.c).
#ifndef LUMOS_INIT_STATFS_H
#define LUMOS_INIT_STATFS_H
int statfs_server_main(int argc, char **argv);
#endif
