// Storage: what Swift cannot reach directly for btrfs and loop devices.
// libbtrfsutil covers subvolumes, snapshots and qgroup inheritance; the ioctls
// below cover qgroup limits/assignment, quota enable, scrub-free device stats and
// loop devices, whose request numbers are macros the Swift importer cannot expand.
#ifndef CLINUX_STORAGE_H
#define CLINUX_STORAGE_H

#include <btrfsutil.h>
#include <stdint.h>
#include <linux/loop.h>

// Loop devices (loop(4)).
int clinux_loop_control_get_free(int control_fd);
int clinux_loop_configure(int loop_fd, int backing_fd, int read_only, int direct_io, int autoclear);
int clinux_loop_clear(int loop_fd);
int clinux_loop_set_capacity(int loop_fd);
// Fills the backing file name and returns 0, or -1 with errno (ENXIO when unbound).
int clinux_loop_backing(int loop_fd, char *path, size_t len, uint64_t *inode, uint64_t *device);

// btrfs quota and qgroups (BTRFS_IOC_QUOTA_CTL / QGROUP_CREATE / QGROUP_ASSIGN / QGROUP_LIMIT).
int clinux_btrfs_quota_enable(int fs_fd);
// Commits the file system's running transaction (BTRFS_IOC_SYNC): a subvolume's generation
// shows a change only once its transaction has committed.
int clinux_btrfs_sync(int fs_fd);
int clinux_btrfs_qgroup_create(int fs_fd, uint64_t qgroupid, int create);
int clinux_btrfs_qgroup_assign(int fs_fd, uint64_t src, uint64_t dst, int assign);
// Set the flagged limits on qgroupid; a value of UINT64_MAX means "no limit".
int clinux_btrfs_qgroup_limit(int fs_fd, uint64_t qgroupid, int set_rfer, uint64_t max_rfer, int set_excl, uint64_t max_excl);
int clinux_btrfs_quota_rescan_wait(int fs_fd);
int clinux_btrfs_quota_rescan(int fs_fd);

// Qgroup accounting read from the quota tree (BTRFS_IOC_TREE_SEARCH).
struct clinux_qgroup {
    uint64_t qgroupid;
    uint64_t rfer, excl;
    uint64_t max_rfer, max_excl;
    uint64_t flags;
};
// Fills up to `cap` entries; returns the count, or -1 with errno (ENOENT: quota off).
int clinux_btrfs_qgroups(int fs_fd, struct clinux_qgroup *out, int cap);

// Per-device error counters (BTRFS_IOC_GET_DEV_STATS), in the order
// write, read, flush, corruption, generation.
struct clinux_dev_stats {
    uint64_t devid;
    uint64_t counters[5];
    uint64_t total_bytes, bytes_used;
    char path[1024];
};
// Fills one entry per device; returns the count or -1 with errno.
int clinux_btrfs_devices(int fs_fd, struct clinux_dev_stats *out, int cap);

// Filesystem identity (BTRFS_IOC_FS_INFO): returns 0 and fills fsid[16], num_devices, csum_type.
int clinux_btrfs_fs_info(int fs_fd, uint8_t fsid[16], uint64_t *num_devices, uint16_t *csum_type);

// Reflink a whole file (FICLONE).
int clinux_ficlone(int dst_fd, int src_fd);

// Scrub one device (BTRFS_IOC_SCRUB); blocks until done or cancelled. Progress counters
// are returned in the out array: data_extents_scrubbed, tree_extents_scrubbed,
// data_bytes_scrubbed, tree_bytes_scrubbed, read_errors, csum_errors, verify_errors,
// no_csum, csum_discards, super_errors, malloc_errors, uncorrectable_errors,
// corrected_errors, last_physical, unverified_errors.
int clinux_btrfs_scrub(int fs_fd, uint64_t devid, int readonly, uint64_t out[15]);
int clinux_btrfs_scrub_progress(int fs_fd, uint64_t devid, uint64_t out[15]);
int clinux_btrfs_scrub_cancel(int fs_fd);


// Enables simple quotas (kernel >= 6.7: extents charged to the subvolume that wrote them,
// like ZFS charges a clone's shared blocks to its origin); falls back to full qgroups.
// Returns 1 for simple quotas, 0 for full qgroups, -1 with errno on failure.
int clinux_btrfs_quota_enable_best(int fs_fd);

#endif
