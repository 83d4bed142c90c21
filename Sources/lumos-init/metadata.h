// The metadata tools and server (metadata.c).
#ifndef LUMOS_INIT_METADATA_H
#define LUMOS_INIT_METADATA_H
int mdata_tool_main(const char *tool, int argc, char **argv);
int metadata_server_main(int argc, char **argv);
#endif
