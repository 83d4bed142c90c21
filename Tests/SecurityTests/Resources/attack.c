// The attacker's toolbox for Tests/SecurityTests: a static program the tests copy into a real
// zone and run there with zlogin, as a tenant's root would. Each subcommand is one attack from
// the security issue (docs/security.md) or a listener a neighbour runs to see what reaches it.
//
//   attack ll-frame IFACE SRCMAC COUNT       frames to 01:80:c2:00:00:0e (LLDP) from SRCMAC
//   attack ra IFACE COUNT                    IPv6 router advertisements for 2001:db8:bad::/64
//   attack redirect IFACE COUNT              IPv4 ICMP redirects (gateway: our own address)
//   attack icmp-echo IFACE COUNT             the control: IPv4 broadcast and IPv6 all-nodes pings
//   attack dhcp-reply IFACE SPORT COUNT      a DHCP offer to the broadcast address from SPORT
//   attack udp IFACE DPORT COUNT             the control: a broadcast UDP datagram to DPORT
//   attack listen IFACE SECONDS              counts what arrives, one "KIND COUNT" line per kind
//   attack io-uring                          prints io_uring_setup's errno (0: it worked)
//   attack flood-console BYTES               writes BYTES to PID 1's stdout (pidfd_getfd)
//   attack setcap FILE                       gives FILE cap_setuid+cap_dac_override (xattr)
//   attack mknod PATH                        tries to make a device node (prints errno)
//   attack fds                               the open descriptors, one "FD TARGET" line each
//   attack statfs                            bad buffers and paths for statfs(2), then 20000
//                                            calls; "KEY ERRNO" lines, then the sizes statfs
//                                            and fstatfs of / report in bytes
//   attack status                            Cap*, NoNewPrivs and Seccomp_filters, "KEY VALUE"
//   attack sleep SECONDS                     sleeps (a zone's init that stays up)
//   attack jail [PATH...]                    what a compromised QEMU would try in its jail, one
//                                            "KEY VALUE" line each (errno 0: it worked): pids,
//                                            Cap* and NoNewPrivs, Seccomp_filters, mount,
//                                            unshare, ptrace, setuid, setgid, mknod of a loop
//                                            device, then "open PATH ERRNO" for each PATH
//                                            (KVM_GET_API_VERSION as "kvm-api N" when /dev/kvm opens)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <linux/capability.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) { perror(what); exit(2); }

struct link { int fd, index; uint8_t mac[6]; uint32_t ipv4; };

static struct link open_link(const char *ifname) {
    struct link l = { .fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)) };
    if (l.fd < 0) die("socket(AF_PACKET)");
    struct ifreq ifr = { 0 };
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    if (ioctl(l.fd, SIOCGIFINDEX, &ifr) < 0) die("SIOCGIFINDEX");
    l.index = ifr.ifr_ifindex;
    if (ioctl(l.fd, SIOCGIFHWADDR, &ifr) < 0) die("SIOCGIFHWADDR");
    memcpy(l.mac, ifr.ifr_hwaddr.sa_data, 6);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    if (s >= 0 && ioctl(s, SIOCGIFADDR, &ifr) == 0) l.ipv4 = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr.s_addr;
    if (s >= 0) close(s);
    struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = l.index };
    if (bind(l.fd, (struct sockaddr *)&sll, sizeof sll) < 0) die("bind");
    return l;
}

static void send_frame(struct link *l, const uint8_t *frame, size_t len, int count) {
    for (int i = 0; i < count; i++) {
        if (send(l->fd, frame, len, 0) < 0) die("send");
        usleep(20000);
    }
}

static int parse_mac(const char *text, uint8_t mac[6]) {
    return sscanf(text, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4], &mac[5]) == 6;
}

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t acc) {
    for (size_t i = 0; i + 1 < n; i += 2) acc += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1) acc += (uint32_t)(p[n - 1] << 8);
    return acc;
}

static uint16_t fold(uint32_t acc) {
    while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
    return (uint16_t)~acc;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }

static size_t ether(uint8_t *f, const uint8_t dst[6], const uint8_t src[6], uint16_t type) {
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    put16(f + 12, type);
    return 14;
}

// An IPv4 header at f (20 bytes) with its checksum.
static void ipv4(uint8_t *f, uint8_t proto, uint32_t src, uint32_t dst, size_t payload) {
    memset(f, 0, 20);
    f[0] = 0x45;
    put16(f + 2, (uint16_t)(20 + payload));
    f[8] = 64;
    f[9] = proto;
    memcpy(f + 12, &src, 4);
    memcpy(f + 16, &dst, 4);
    put16(f + 10, fold(sum16(f, 20, 0)));
}

// The EUI-64 link-local address of a MAC (what the kernel gives the interface).
static void link_local(const uint8_t mac[6], uint8_t out[16]) {
    memset(out, 0, 16);
    out[0] = 0xfe; out[1] = 0x80;
    out[8] = mac[0] ^ 2; out[9] = mac[1]; out[10] = mac[2]; out[11] = 0xff;
    out[12] = 0xfe; out[13] = mac[3]; out[14] = mac[4]; out[15] = mac[5];
}

// IPv6 header + ICMPv6 message (already at f + 40, `len` bytes); fills the checksum.
static void ipv6_icmp(uint8_t *f, const uint8_t src[16], const uint8_t dst[16], size_t len) {
    memset(f, 0, 40);
    f[0] = 0x60;
    put16(f + 4, (uint16_t)len);
    f[6] = 58;
    f[7] = 255;
    memcpy(f + 8, src, 16);
    memcpy(f + 24, dst, 16);
    uint8_t *icmp = f + 40;
    put16(icmp + 2, 0);
    uint32_t acc = sum16(src, 16, 0);
    acc = sum16(dst, 16, acc);
    acc += (uint32_t)len + 58;
    acc = sum16(icmp, len, acc);
    put16(icmp + 2, fold(acc));
}

static const uint8_t broadcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static const uint8_t all_nodes_mac[6] = { 0x33, 0x33, 0, 0, 0, 1 };
static const uint8_t all_nodes[16] = { 0xff, 0x02, [15] = 1 };

static int ra(struct link *l, int count) {
    uint8_t f[256] = { 0 }, src[16];
    size_t off = ether(f, all_nodes_mac, l->mac, 0x86dd);
    link_local(l->mac, src);
    uint8_t *m = f + off + 40;
    m[0] = 134;                     // router advertisement
    m[4] = 64;                      // hop limit
    put16(m + 6, 1800);             // router lifetime: "I am your default router"
    uint8_t *o = m + 16;
    o[0] = 3; o[1] = 4;             // prefix information
    o[2] = 64; o[3] = 0xc0;         // on-link, autonomous
    put32(o + 4, 86400); put32(o + 8, 14400);
    uint8_t prefix[16] = { 0x20, 0x01, 0x0d, 0xb8, 0x0b, 0xad };
    memcpy(o + 16, prefix, 16);
    uint8_t *s = o + 32;
    s[0] = 1; s[1] = 1;             // source link-layer address
    memcpy(s + 2, l->mac, 6);
    size_t len = 16 + 32 + 8;
    ipv6_icmp(f + off, src, all_nodes, len);
    send_frame(l, f, off + 40 + len, count);
    return 0;
}

static int icmp4(struct link *l, uint8_t type, int count) {
    uint8_t f[128] = { 0 };
    size_t off = ether(f, broadcast, l->mac, 0x0800);
    uint8_t *m = f + off + 20;
    m[0] = type;
    size_t len = 8;
    if (type == 5) {                // redirect for host: the gateway is us; the original datagram follows
        m[1] = 1;
        memcpy(m + 4, &l->ipv4, 4);
        uint32_t anywhere = htonl(0xc6336401);   // 198.51.100.1
        ipv4(m + 8, 17, l->ipv4 ^ htonl(1), anywhere, 8);
        len = 8 + 28;
    }
    put16(m + 2, fold(sum16(m, len, 0)));
    ipv4(f + off, 1, l->ipv4, htonl(0xffffffff), len);
    send_frame(l, f, off + 20 + len, count);
    return 0;
}

static int icmp6_echo(struct link *l, int count) {
    uint8_t f[128] = { 0 }, src[16];
    size_t off = ether(f, all_nodes_mac, l->mac, 0x86dd);
    link_local(l->mac, src);
    uint8_t *m = f + off + 40;
    m[0] = 128;
    ipv6_icmp(f + off, src, all_nodes, 8);
    send_frame(l, f, off + 48, count);
    return 0;
}

static int udp(struct link *l, uint16_t sport, uint16_t dport, int dhcp, int count) {
    uint8_t f[600] = { 0 };
    size_t off = ether(f, broadcast, l->mac, 0x0800);
    uint8_t *u = f + off + 20, *b = u + 8;
    size_t blen = 32;
    if (dhcp) {                     // BOOTREPLY/DHCPOFFER naming us as router and DNS
        b[0] = 2; b[1] = 1; b[2] = 6;
        put32(b + 4, 0x12345678);
        put32(b + 16, ntohl(l->ipv4) + 100);        // yiaddr
        memcpy(b + 28, broadcast, 6);               // chaddr: anyone
        put32(b + 236, 0x63825363);
        uint8_t *o = b + 240;
        uint8_t opts[] = { 53, 1, 2, 54, 4, 0, 0, 0, 0, 3, 4, 0, 0, 0, 0, 6, 4, 0, 0, 0, 0, 51, 4, 0, 0, 0x0e, 0x10, 255 };
        memcpy(opts + 5, &l->ipv4, 4);
        memcpy(opts + 11, &l->ipv4, 4);
        memcpy(opts + 17, &l->ipv4, 4);
        memcpy(o, opts, sizeof opts);
        blen = 240 + sizeof opts;
    }
    put16(u, sport);
    put16(u + 2, dport);
    put16(u + 4, (uint16_t)(8 + blen));
    ipv4(f + off, 17, l->ipv4, htonl(0xffffffff), 8 + blen);
    send_frame(l, f, off + 20 + 8 + blen, count);
    return 0;
}

static int ll_frame(struct link *l, const char *mac_text, int count) {
    uint8_t src[6], f[64] = { 0 };
    if (!parse_mac(mac_text, src)) { fprintf(stderr, "bad MAC %s\n", mac_text); return 2; }
    const uint8_t lldp[6] = { 0x01, 0x80, 0xc2, 0, 0, 0x0e };
    ether(f, lldp, src, 0x88cc);
    send_frame(l, f, sizeof f, count);
    return 0;
}

// Counts, per kind, what arrives on IFACE for SECONDS. "ready" goes to stdout first.
static int listen_for(struct link *l, int seconds) {
    const char *names[] = { "udp68", "udp6868", "icmp4-redirect", "icmp4-echo", "icmp6-ra", "icmp6-echo" };
    int counts[6] = { 0 };
    printf("ready\n");
    fflush(stdout);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    uint8_t f[2048];
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left = seconds * 1000L - ((now.tv_sec - start.tv_sec) * 1000L + (now.tv_nsec - start.tv_nsec) / 1000000L);
        if (left <= 0) break;
        struct pollfd p = { l->fd, POLLIN, 0 };
        if (poll(&p, 1, (int)left) <= 0) continue;
        struct sockaddr_ll from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(l->fd, f, sizeof f, 0, (struct sockaddr *)&from, &fl);
        if (n < 14 || from.sll_pkttype == PACKET_OUTGOING) continue;
        uint16_t type = (uint16_t)(f[12] << 8 | f[13]);
        if (type == 0x0800 && n >= 34) {
            size_t l4 = 14 + (size_t)(f[14] & 0xf) * 4;
            if (f[23] == 17 && (size_t)n >= l4 + 8) {
                uint16_t dport = (uint16_t)(f[l4 + 2] << 8 | f[l4 + 3]);
                if (dport == 68) counts[0]++;
                if (dport == 6868) counts[1]++;
            } else if (f[23] == 1 && (size_t)n > l4) {
                if (f[l4] == 5) counts[2]++;
                if (f[l4] == 8) counts[3]++;
            }
        } else if (type == 0x86dd && n >= 55 && f[20] == 58) {
            if (f[54] == 134) counts[4]++;
            if (f[54] == 128) counts[5]++;
        }
    }
    for (int i = 0; i < 6; i++) printf("%s %d\n", names[i], counts[i]);
    return 0;
}

static int flood_console(long long bytes) {
    int pidfd = (int)syscall(SYS_pidfd_open, 1, 0);
    if (pidfd < 0) die("pidfd_open");
    int fd = (int)syscall(SYS_pidfd_getfd, pidfd, 1, 0);
    if (fd < 0) die("pidfd_getfd");
    static char buf[65536];
    memset(buf, 'A', sizeof buf);
    long long done = 0;
    while (done < bytes) {
        ssize_t w = write(fd, buf, (size_t)(bytes - done < (long long)sizeof buf ? bytes - done : (long long)sizeof buf));
        if (w < 0) { if (errno == EINTR) continue; break; }
        done += w;
    }
    printf("wrote %lld\n", done);
    return 0;
}

static int set_caps(const char *file) {
    struct vfs_cap_data data = { 0 };
    data.magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE;
    data.data[0].permitted = (1u << CAP_SETUID) | (1u << CAP_DAC_OVERRIDE);
    if (setxattr(file, "security.capability", &data, XATTR_CAPS_SZ_2, 0) < 0) { printf("%d\n", errno); return 1; }
    printf("0\n");
    return 0;
}

static int list_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) die("opendir /proc/self/fd");
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d)) continue;
        char link[300], target[4096];
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        target[n < 0 ? 0 : n] = 0;
        printf("%s %s\n", e->d_name, target);
    }
    closedir(d);
    return 0;
}

// A child runs `what` and exits with its errno (0: it worked).
static int in_child(int what) {
    pid_t pid = fork();
    if (pid < 0) return errno;
    if (pid == 0) {
        int r = what == 0 ? setuid(1000) : setgid(1000);
        _exit(r < 0 ? errno : 0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

static void print_status(void) {
    FILE *st = fopen("/proc/self/status", "r");
    char line[256];
    while (st && fgets(line, sizeof line, st)) {
        if (!strncmp(line, "Cap", 3) || !strncmp(line, "NoNewPrivs", 10) || !strncmp(line, "Seccomp_filters", 15)) {
            char *colon = strchr(line, ':');
            *colon = 0;
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t') v++;
            printf("%s %s", line, v);
        }
    }
    if (st) fclose(st);
}

static int jail(int argc, char **argv) {
    // Meant to run as a zone's first process only: on the host, as root, its mount would work.
    if (getpid() != 1) { fprintf(stderr, "attack jail: not PID 1 of a zone; refusing to run\n"); return 2; }
    printf("pids");
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) if (e->d_name[0] >= '0' && e->d_name[0] <= '9') printf(" %s", e->d_name);
    if (d) closedir(d);
    printf("\n");
    print_status();
    printf("mount %d\n", mount("none", "/tmp", "tmpfs", 0, NULL) < 0 ? errno : 0);
    printf("unshare-user %d\n", unshare(CLONE_NEWUSER) < 0 ? errno : 0);
    printf("unshare-mount %d\n", unshare(CLONE_NEWNS) < 0 ? errno : 0);
    pid_t victim = fork();
    if (victim == 0) { pause(); _exit(0); }
    int r = (int)ptrace(PTRACE_ATTACH, victim, NULL, NULL);
    printf("ptrace %d\n", r < 0 ? errno : 0);
    kill(victim, SIGKILL);
    waitpid(victim, NULL, 0);
    printf("setuid %d\n", in_child(0));
    printf("setgid %d\n", in_child(1));
    r = mknod("/tmp/loop0", S_IFBLK | 0600, makedev(7, 0));
    printf("mknod %d\n", r < 0 ? errno : 0);
    unlink("/tmp/loop0");
    for (int i = 2; i < argc; i++) {
        int fd = open(argv[i], O_RDWR | O_CLOEXEC);
        printf("open %s %d\n", argv[i], fd < 0 ? errno : 0);
        if (fd >= 0 && !strcmp(argv[i], "/dev/kvm")) printf("kvm-api %d\n", ioctl(fd, 0xAE00, 0));
        if (fd >= 0) close(fd);
    }
    return 0;
}

// Feeds the zone's statfs supervisor (docs/architecture.md, "df in a zone") what a careless
// or hostile program passes: no buffer, a read-only buffer (the program's own code), an
// unmapped one, an unreadable or overlong path; then many calls in a row. The kernel's own
// answers are the reference (EFAULT, ENAMETOOLONG); the sizes go to the caller.
static long statfs_errno(const char *path, void *buf) {
    return syscall(SYS_statfs, path, buf) < 0 ? errno : 0;
}

static int statfs_attack(void) {
    printf("null %ld\n", statfs_errno("/", NULL));
    printf("text %ld\n", statfs_errno("/", (void *)statfs_attack));
    printf("unmapped %ld\n", statfs_errno("/", (void *)16));
    printf("badpath %ld\n", statfs_errno((const char *)1, &(struct statfs){ 0 }));
    static char longpath[3 * 4096];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    printf("longpath %ld\n", statfs_errno(longpath, &(struct statfs){ 0 }));
    struct statfs st;
    long failed = 0;
    for (int i = 0; i < 20000; i++) failed += statfs("/", &st) != 0;
    printf("repeated-failures %ld\n", failed);
    printf("statfs %llu\n", statfs("/", &st) == 0 ? (unsigned long long)st.f_blocks * (unsigned long long)st.f_bsize : 0ULL);
    int fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    printf("fstatfs %llu\n", fstatfs(fd, &st) == 0 ? (unsigned long long)st.f_blocks * (unsigned long long)st.f_bsize : 0ULL);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: see attack.c\n"); return 2; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "io-uring")) {
        char params[120] = { 0 };
        long fd = syscall(SYS_io_uring_setup, 4, params);
        printf("%d\n", fd < 0 ? errno : 0);
        return 0;
    }
    if (!strcmp(cmd, "flood-console") && argc == 3) return flood_console(atoll(argv[2]));
    if (!strcmp(cmd, "setcap") && argc == 3) return set_caps(argv[2]);
    if (!strcmp(cmd, "fds")) return list_fds();
    if (!strcmp(cmd, "statfs")) return statfs_attack();
    if (!strcmp(cmd, "status")) { print_status(); return 0; }
    if (!strcmp(cmd, "sleep") && argc == 3) { sleep((unsigned)atoi(argv[2])); return 0; }
    if (!strcmp(cmd, "jail")) return jail(argc, argv);
    if (!strcmp(cmd, "mknod") && argc == 3) {
        int r = mknod(argv[2], S_IFCHR | 0666, makedev(1, 3));
        printf("%d\n", r < 0 ? errno : 0);
        return 0;
    }
    if (argc < 4) { fprintf(stderr, "usage: see attack.c\n"); return 2; }
    struct link l = open_link(argv[2]);
    if (!strcmp(cmd, "ll-frame") && argc == 5) return ll_frame(&l, argv[3], atoi(argv[4]));
    if (!strcmp(cmd, "ra")) return ra(&l, atoi(argv[3]));
    if (!strcmp(cmd, "redirect")) return icmp4(&l, 5, atoi(argv[3]));
    if (!strcmp(cmd, "icmp-echo")) { icmp4(&l, 8, atoi(argv[3])); return icmp6_echo(&l, atoi(argv[3])); }
    if (!strcmp(cmd, "dhcp-reply") && argc == 5) return udp(&l, (uint16_t)atoi(argv[3]), 68, 1, atoi(argv[4]));
    if (!strcmp(cmd, "udp") && argc == 5) return udp(&l, 40000, (uint16_t)atoi(argv[3]), 0, atoi(argv[4]));
    if (!strcmp(cmd, "listen")) return listen_for(&l, atoi(argv[3]));
    fprintf(stderr, "unknown command %s\n", cmd);
    return 2;
}
