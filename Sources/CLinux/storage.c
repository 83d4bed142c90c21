// Thin wrappers over ioctls whose request numbers and structs the Swift importer cannot use.
// No logic lives here beyond filling and reading kernel structs.
#include "clinux_storage.h"
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <linux/fs.h>

int clinux_loop_control_get_free(int control_fd) {
    return ioctl(control_fd, LOOP_CTL_GET_FREE);
}

int clinux_loop_configure(int loop_fd, int backing_fd, int read_only, int direct_io, int autoclear) {
    struct loop_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.fd = (unsigned)backing_fd;
    cfg.block_size = 0;
    if (read_only) cfg.info.lo_flags |= LO_FLAGS_READ_ONLY;
    if (direct_io) cfg.info.lo_flags |= LO_FLAGS_DIRECT_IO;
    if (autoclear) cfg.info.lo_flags |= LO_FLAGS_AUTOCLEAR;
    return ioctl(loop_fd, LOOP_CONFIGURE, &cfg);
}

int clinux_loop_clear(int loop_fd) {
    return ioctl(loop_fd, LOOP_CLR_FD, 0);
}

int clinux_loop_backing(int loop_fd, char *path, size_t len, uint64_t *inode, uint64_t *device) {
    struct loop_info64 info;
    memset(&info, 0, sizeof info);
    if (ioctl(loop_fd, LOOP_GET_STATUS64, &info) != 0) return -1;
    size_t n = strnlen((const char *)info.lo_file_name, LO_NAME_SIZE);
    if (n >= len) n = len - 1;
    memcpy(path, info.lo_file_name, n);
    path[n] = 0;
    *inode = info.lo_inode;
    *device = info.lo_device;
    return 0;
}

int clinux_btrfs_quota_enable(int fs_fd) {
    struct btrfs_ioctl_quota_ctl_args a = { .cmd = BTRFS_QUOTA_CTL_ENABLE };
    return ioctl(fs_fd, BTRFS_IOC_QUOTA_CTL, &a);
}

int clinux_btrfs_quota_enable_best(int fs_fd) {
    // BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA is 4 (linux/btrfs.h >= 6.7; Debian 12's headers predate it).
    struct btrfs_ioctl_quota_ctl_args a = { .cmd = 4 };
    if (ioctl(fs_fd, BTRFS_IOC_QUOTA_CTL, &a) == 0) return 1;
    if (errno != EINVAL && errno != EOPNOTSUPP) return -1;
    a.cmd = BTRFS_QUOTA_CTL_ENABLE;
    a.status = 0;
    return ioctl(fs_fd, BTRFS_IOC_QUOTA_CTL, &a) == 0 ? 0 : -1;
}

int clinux_btrfs_qgroup_create(int fs_fd, uint64_t qgroupid, int create) {
    struct btrfs_ioctl_qgroup_create_args a = { .create = (uint64_t)create, .qgroupid = qgroupid };
    return ioctl(fs_fd, BTRFS_IOC_QGROUP_CREATE, &a);
}

int clinux_btrfs_qgroup_assign(int fs_fd, uint64_t src, uint64_t dst, int assign) {
    struct btrfs_ioctl_qgroup_assign_args a = { .assign = (uint64_t)assign, .src = src, .dst = dst };
    // A positive return asks for a rescan because accounting became inconsistent.
    return ioctl(fs_fd, BTRFS_IOC_QGROUP_ASSIGN, &a);
}

int clinux_btrfs_qgroup_limit(int fs_fd, uint64_t qgroupid, int set_rfer, uint64_t max_rfer, int set_excl, uint64_t max_excl) {
    struct btrfs_ioctl_qgroup_limit_args a;
    memset(&a, 0, sizeof a);
    a.qgroupid = qgroupid;
    // Only the flagged fields change; UINT64_MAX means "no limit" (what btrfs-progs writes
    // for "none"). A flagged 0 would be a limit of zero bytes.
    if (set_rfer) { a.lim.flags |= BTRFS_QGROUP_LIMIT_MAX_RFER; a.lim.max_rfer = max_rfer; }
    if (set_excl) { a.lim.flags |= BTRFS_QGROUP_LIMIT_MAX_EXCL; a.lim.max_excl = max_excl; }
    return ioctl(fs_fd, BTRFS_IOC_QGROUP_LIMIT, &a);
}

int clinux_btrfs_quota_rescan(int fs_fd) {
    struct btrfs_ioctl_quota_rescan_args a;
    memset(&a, 0, sizeof a);
    return ioctl(fs_fd, BTRFS_IOC_QUOTA_RESCAN, &a);
}

int clinux_btrfs_quota_rescan_wait(int fs_fd) {
    return ioctl(fs_fd, BTRFS_IOC_QUOTA_RESCAN_WAIT, 0);
}

int clinux_btrfs_qgroups(int fs_fd, struct clinux_qgroup *out, int cap) {
    struct btrfs_ioctl_search_args args;
    int count = 0;
    memset(&args, 0, sizeof args);
    struct btrfs_ioctl_search_key *sk = &args.key;
    sk->tree_id = BTRFS_QUOTA_TREE_OBJECTID;
    sk->min_type = BTRFS_QGROUP_INFO_KEY;
    sk->max_type = BTRFS_QGROUP_LIMIT_KEY;
    sk->max_objectid = UINT64_MAX;
    sk->max_offset = UINT64_MAX;
    sk->max_transid = UINT64_MAX;
    for (;;) {
        sk->nr_items = 4096;
        if (ioctl(fs_fd, BTRFS_IOC_TREE_SEARCH, &args) != 0) return -1;
        if (sk->nr_items == 0) break;
        unsigned long off = 0;
        for (unsigned i = 0; i < sk->nr_items; i++) {
            struct btrfs_ioctl_search_header *sh = (void *)(args.buf + off);
            off += sizeof *sh;
            void *item = args.buf + off;
            off += sh->len;
            if (sh->type != BTRFS_QGROUP_INFO_KEY && sh->type != BTRFS_QGROUP_LIMIT_KEY) goto next;
            int idx = -1;
            for (int j = 0; j < count; j++) if (out[j].qgroupid == sh->offset) { idx = j; break; }
            if (idx < 0) {
                if (count >= cap) { errno = ENOSPC; return -1; }
                idx = count++;
                memset(&out[idx], 0, sizeof out[idx]);
                out[idx].qgroupid = sh->offset;
            }
            if (sh->type == BTRFS_QGROUP_INFO_KEY) {
                struct btrfs_qgroup_info_item *qi = item;
                out[idx].rfer = qi->rfer;
                out[idx].excl = qi->excl;
            } else {
                struct btrfs_qgroup_limit_item *ql = item;
                out[idx].flags = ql->flags;
                out[idx].max_rfer = ql->max_rfer;
                out[idx].max_excl = ql->max_excl;
            }
        next:
            sk->min_objectid = sh->objectid;
            sk->min_type = sh->type;
            sk->min_offset = sh->offset;
        }
        // Advance past the last key returned.
        if (sk->min_offset < UINT64_MAX) sk->min_offset++;
        else if (sk->min_type < BTRFS_QGROUP_LIMIT_KEY) { sk->min_type++; sk->min_offset = 0; }
        else break;
        if (sk->min_type > BTRFS_QGROUP_LIMIT_KEY) break;
    }
    return count;
}

int clinux_btrfs_devices(int fs_fd, struct clinux_dev_stats *out, int cap) {
    struct btrfs_ioctl_fs_info_args fi;
    memset(&fi, 0, sizeof fi);
    if (ioctl(fs_fd, BTRFS_IOC_FS_INFO, &fi) != 0) return -1;
    int count = 0;
    for (uint64_t id = 1; id <= fi.max_id && count < cap; id++) {
        struct btrfs_ioctl_dev_info_args di;
        memset(&di, 0, sizeof di);
        di.devid = id;
        if (ioctl(fs_fd, BTRFS_IOC_DEV_INFO, &di) != 0) {
            if (errno == ENODEV) continue;
            return -1;
        }
        struct btrfs_ioctl_get_dev_stats ds;
        memset(&ds, 0, sizeof ds);
        ds.devid = id;
        ds.nr_items = BTRFS_DEV_STAT_VALUES_MAX;
        if (ioctl(fs_fd, BTRFS_IOC_GET_DEV_STATS, &ds) != 0) return -1;
        struct clinux_dev_stats *o = &out[count++];
        memset(o, 0, sizeof *o);
        o->devid = id;
        for (int k = 0; k < 5; k++) o->counters[k] = ds.values[k];
        o->total_bytes = di.total_bytes;
        o->bytes_used = di.bytes_used;
        strncpy(o->path, (const char *)di.path, sizeof o->path - 1);
    }
    return count;
}

int clinux_btrfs_fs_info(int fs_fd, uint8_t fsid[16], uint64_t *num_devices, uint16_t *csum_type) {
    struct btrfs_ioctl_fs_info_args fi;
    memset(&fi, 0, sizeof fi);
    fi.flags = BTRFS_FS_INFO_FLAG_CSUM_INFO;
    if (ioctl(fs_fd, BTRFS_IOC_FS_INFO, &fi) != 0) return -1;
    memcpy(fsid, fi.fsid, 16);
    *num_devices = fi.num_devices;
    *csum_type = fi.csum_type;
    return 0;
}

int clinux_ficlone(int dst_fd, int src_fd) {
    return ioctl(dst_fd, FICLONE, src_fd);
}

static void copy_progress(const struct btrfs_scrub_progress *p, uint64_t out[15]) {
    memcpy(out, p, sizeof(uint64_t) * 15);
}

int clinux_btrfs_scrub(int fs_fd, uint64_t devid, int readonly, uint64_t out[15]) {
    struct btrfs_ioctl_scrub_args a;
    memset(&a, 0, sizeof a);
    a.devid = devid;
    a.end = UINT64_MAX;
    a.flags = readonly ? BTRFS_SCRUB_READONLY : 0;
    int r = ioctl(fs_fd, BTRFS_IOC_SCRUB, &a);
    copy_progress(&a.progress, out);
    return r;
}

int clinux_btrfs_scrub_progress(int fs_fd, uint64_t devid, uint64_t out[15]) {
    struct btrfs_ioctl_scrub_args a;
    memset(&a, 0, sizeof a);
    a.devid = devid;
    int r = ioctl(fs_fd, BTRFS_IOC_SCRUB_PROGRESS, &a);
    copy_progress(&a.progress, out);
    return r;
}

int clinux_btrfs_scrub_cancel(int fs_fd) {
    return ioctl(fs_fd, BTRFS_IOC_SCRUB_CANCEL, 0);
}

int clinux_loop_set_capacity(int loop_fd) {
    return ioctl(loop_fd, LOOP_SET_CAPACITY, 0);
}

int clinux_btrfs_sync(int fs_fd) {
    return ioctl(fs_fd, BTRFS_IOC_SYNC, NULL);
}
