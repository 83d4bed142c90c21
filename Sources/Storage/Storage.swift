/// ZFS-like storage on btrfs: pools, datasets, snapshots, clones, send/receive, volumes.
public enum StorageModule {}
