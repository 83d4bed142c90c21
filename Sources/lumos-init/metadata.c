// The SmartOS metadata service of a zone (docs/architecture.md, "Metadata"; docs/security.md,
// "The metadata server"): the tools inside the zone and the server on the host.
//
//   mdata-get KEY | mdata-put KEY [VALUE] | mdata-delete KEY | mdata-list
//
// This binary, run inside a zone under one of those names (vmadm binds it read-only at
// /native/usr/sbin/mdata-*), is SmartOS's mdata-client: it talks SmartOS's metadata protocol
// version 2 over the unix socket /native/.zonecontrol/metadata.sock and exits as mdata-client
// does: 0 success, 1 no such key ("No metadata for 'KEY'"), 2 error, 3 usage. mdata-put reads
// the value from stdin when it is not given.
//
//   lumos-init --metadata-server KEYS_DIR INIT_PID      (listening socket on fd 0)
//
// The server, run on the host in the zone's cgroups (like --console-log): it accepts on the
// listening unix socket it is given as fd 0 (the host created it, so a client can connect
// from the zone's first instruction on) and serves keys from KEYS_DIR, one file per key:
// "c-HEX" for customer_metadata, "s-HEX" for the sdc: keys the host writes, HEX the key's
// bytes in hex (so no key names a path). The zone may change only customer_metadata (PUT,
// DELETE) and within caps (MD_KEY_MAX, MD_VALUE_MAX, MD_KEYS_MAX, MD_TOTAL_MAX), so it cannot
// fill the host's disk. It exits when the zone's init (INIT_PID, watched through a pidfd)
// exits, and on SIGTERM.
//
// The server is fed by the zone, an attacker: requests are bounded lines (MD_LINE_MAX), a
// line too long or malformed closes that connection, replies go out through a bounded
// non-blocking queue (a client that does not read stalls only itself), at most MD_CLIENTS
// connections are kept (the least recently active one is dropped for a new one), and
// nothing is allocated per request. One poll() loop, no threads.
//
// Protocol (Joyent's "Metadata Protocol Specification, Version 2"): the client sends
// "NEGOTIATE V2\n", the server answers "V2_OK\n"; then each request is the line
// "V2 LEN CRC BODY\n" with BODY "REQID CODE [BASE64 PAYLOAD]", LEN its length, CRC its crc32 in
// 8 hex digits, REQID 8 hex digits echoed in the reply. Codes: GET (payload the key), KEYS,
// PUT (payload base64(key) " " base64(value)), DELETE (payload the key); replies SUCCESS
// [payload], NOTFOUND or FAILURE.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "metadata.h"
#include "service.h"

#define MD_SOCKET "/native/.zonecontrol/metadata.sock"
#define MD_KEY_MAX 120  // "c-" and 240 hex digits fit NAME_MAX
#define MD_VALUE_MAX 65536
#define MD_KEYS_MAX 128
#define MD_TOTAL_MAX (1024 * 1024)
// The longest request: PUT of the largest key and value, base64 twice, plus the frame.
#define MD_LINE_MAX (4 * ((4 * ((MD_KEY_MAX + 2) / 3) + 1 + 4 * ((MD_VALUE_MAX + 2) / 3) + 2) / 3) + 64)
#define MD_CLIENTS 8

enum { EXIT_OK = 0, EXIT_NOTFOUND = 1, EXIT_ERROR = 2, EXIT_USAGE = 3 };

// MARK: crc32 and base64

static uint32_t crc32_of(const unsigned char *p, size_t n) {
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_encode(const unsigned char *in, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = b64chars[(v >> 18) & 63];
        out[o++] = b64chars[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64chars[v & 63] : '=';
    }
    out[o] = 0;
    return o;
}

static int b64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

// Decodes strict base64 (length a multiple of 4, padding only at the end) into out, which has
// room for `cap` bytes; returns the length, or -1 when the text is not base64 or too long.
static long b64_decode(const char *in, size_t n, unsigned char *out, size_t cap) {
    if (n % 4) return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            if (in[i + k] == '=' && i + 4 == n && k >= 2) { v[k] = 0; pad++; continue; }
            if (pad) return -1;
            if ((v[k] = b64_value(in[i + k])) < 0) return -1;
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        unsigned char bytes[3] = { (unsigned char)(w >> 16), (unsigned char)(w >> 8), (unsigned char)w };
        for (int k = 0; k < 3 - pad; k++) {
            if (o >= cap) return -1;
            out[o++] = bytes[k];
        }
    }
    return (long)o;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

// MARK: the key files

// "P-HEX" for key bytes `key` (length 1...MD_KEY_MAX).
static void key_file(char prefix, const unsigned char *key, size_t n, char *out) {
    static const char hex[] = "0123456789abcdef";
    out[0] = prefix;
    out[1] = '-';
    for (size_t i = 0; i < n; i++) {
        out[2 + 2 * i] = hex[key[i] >> 4];
        out[3 + 2 * i] = hex[key[i] & 15];
    }
    out[2 + 2 * n] = 0;
}

// The key a "c-HEX" file name holds; -1 for any other name.
static long file_key(const char *name, unsigned char *key) {
    if (name[0] != 'c' || name[1] != '-') return -1;
    size_t n = strlen(name + 2);
    if (n == 0 || n % 2 || n / 2 > MD_KEY_MAX) return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_digit(name[2 + 2 * i]), lo = hex_digit(name[3 + 2 * i]);
        if (hi < 0 || lo < 0) return -1;
        key[i] = (unsigned char)(hi << 4 | lo);
    }
    return (long)(n / 2);
}

static int keys_dir = -1;

// Reads a key's file into `value` (room for MD_VALUE_MAX); its length, -1 when there is none
// (or it is not a regular file within the cap: the host's files are trusted, but checked).
static long read_key(const char *file, unsigned char *value) {
    int fd = openat(keys_dir, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return -1;
    struct stat st;
    long n = -1;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= MD_VALUE_MAX) {
        n = 0;
        while (n < st.st_size) {
            ssize_t r = read(fd, value + n, (size_t)(st.st_size - n));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;
            n += r;
        }
    }
    close(fd);
    return n;
}

// The customer keys' count and bytes (names and values), not counting `except`.
static void customer_usage(const char *except, long *count, long long *bytes) {
    *count = 0;
    *bytes = 0;
    int fd = dup(keys_dir);
    if (fd < 0) return;
    DIR *d = fdopendir(fd);
    if (!d) { close(fd); return; }
    rewinddir(d);
    struct dirent *e;
    unsigned char key[MD_KEY_MAX];
    while ((e = readdir(d))) {
        long n = file_key(e->d_name, key);
        if (n < 0 || strcmp(e->d_name, except) == 0) continue;
        struct stat st;
        if (fstatat(keys_dir, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        (*count)++;
        *bytes += n + st.st_size;
    }
    closedir(d);
}

static int write_key(const char *file, const unsigned char *value, size_t n) {
    char temp[2 * MD_KEY_MAX + 16];
    snprintf(temp, sizeof temp, ".new-%s", file + 2);
    unlinkat(keys_dir, temp, 0);
    int fd = openat(keys_dir, temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, value + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) { close(fd); unlinkat(keys_dir, temp, 0); return -1; }
        done += (size_t)w;
    }
    if (fsync(fd) < 0 || close(fd) < 0) { unlinkat(keys_dir, temp, 0); return -1; }
    if (renameat(keys_dir, temp, keys_dir, file) < 0) { unlinkat(keys_dir, temp, 0); return -1; }
    return 0;
}

// MARK: the server

struct client {
    int fd;
    int negotiated;
    unsigned long long active;  // the loop's tick of its last request
    char *in;                   // MD_LINE_MAX + 1
    size_t in_len;
    char *out;                  // MD_LINE_MAX
    size_t out_start, out_len;
};

static struct client clients[MD_CLIENTS];
static volatile sig_atomic_t server_stop;
static void server_signal(int sig) { (void)sig; server_stop = 1; }

// Scratch space for one request at a time (the loop serves one line after another).
static unsigned char payload[MD_LINE_MAX];
static unsigned char value[MD_VALUE_MAX + 1];
static char reply_body[MD_LINE_MAX];
static char encoded[MD_LINE_MAX];

static void client_close(struct client *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->in_len = c->out_start = c->out_len = 0;
    c->negotiated = 0;
}

static int queue_reply(struct client *c, const char *text, size_t n) {
    if (c->out_start > 0) {
        memmove(c->out, c->out + c->out_start, c->out_len);
        c->out_start = 0;
    }
    if (n > MD_LINE_MAX - c->out_len) return -1;  // the client is not reading its replies
    memcpy(c->out + c->out_len, text, n);
    c->out_len += n;
    return 0;
}

// Frames and queues "REQID CODE [base64(data)]".
static int reply(struct client *c, const char *reqid, const char *code, const unsigned char *data, size_t n) {
    int len = snprintf(reply_body, sizeof reply_body, "%s %s", reqid, code);
    if (data) {
        if ((size_t)len + 1 + 4 * ((n + 2) / 3) + 1 > sizeof reply_body) return -1;
        reply_body[len++] = ' ';
        len += (int)b64_encode(data, n, reply_body + len);
    }
    char head[48];
    int h = snprintf(head, sizeof head, "V2 %d %08x ", len, crc32_of((unsigned char *)reply_body, (size_t)len));
    if (queue_reply(c, head, (size_t)h) < 0 || queue_reply(c, reply_body, (size_t)len) < 0) return -1;
    return queue_reply(c, "\n", 1);
}

// A key from the zone: 1...MD_KEY_MAX bytes, no NUL, no newline.
static int valid_key(const unsigned char *k, long n) {
    if (n < 1 || n > MD_KEY_MAX) return 0;
    for (long i = 0; i < n; i++) if (k[i] == 0 || k[i] == '\n') return 0;
    return 1;
}

static int is_sdc(const unsigned char *k, long n) { return n >= 4 && memcmp(k, "sdc:", 4) == 0; }

// Serves one request line (without its newline); -1 closes the connection.
static int serve_line(struct client *c, char *line, size_t n) {
    if (!c->negotiated) {
        if (n == 12 && memcmp(line, "NEGOTIATE V2", 12) == 0) {
            c->negotiated = 1;
            return queue_reply(c, "V2_OK\n", 6);
        }
        // Version 1 is not served: a client that tries it learns so and may go on.
        return queue_reply(c, "invalid command\n", 16);
    }
    // "V2 LEN CRC BODY"
    line[n] = 0;
    if (n < 3 || memcmp(line, "V2 ", 3) != 0) return -1;
    char *p = line + 3, *end;
    errno = 0;
    unsigned long len = strtoul(p, &end, 10);
    if (errno || end == p || *end != ' ' || *p == '-' || *p == '+') return -1;
    p = end + 1;
    if (strlen(p) < 9 || p[8] != ' ') return -1;
    for (int i = 0; i < 8; i++) if (hex_digit(p[i]) < 0) return -1;
    unsigned long crc = strtoul(p, NULL, 16);
    char *body = p + 9;
    size_t body_len = n - (size_t)(body - line);
    if (len != body_len || crc != crc32_of((unsigned char *)body, body_len)) return -1;
    // BODY: "REQID CODE [PAYLOAD]"
    if (body_len < 10 || body[8] != ' ') return -1;
    char reqid[9];
    for (int i = 0; i < 8; i++) {
        if (hex_digit(body[i]) < 0) return -1;
        reqid[i] = body[i];
    }
    reqid[8] = 0;
    char *code = body + 9, *space = strchr(code, ' ');
    size_t code_len = space ? (size_t)(space - code) : strlen(code);
    const char *b64 = space ? space + 1 : "";
    long plen = b64_decode(b64, strlen(b64), payload, sizeof payload - 1);
    if (plen < 0) return reply(c, reqid, "FAILURE", NULL, 0);
    payload[plen] = 0;
    char file[2 * MD_KEY_MAX + 3];

    if (code_len == 3 && memcmp(code, "GET", 3) == 0) {
        if (!valid_key(payload, plen)) return reply(c, reqid, "NOTFOUND", NULL, 0);
        key_file(is_sdc(payload, plen) ? 's' : 'c', payload, (size_t)plen, file);
        long vlen = read_key(file, value);
        if (vlen < 0) return reply(c, reqid, "NOTFOUND", NULL, 0);
        return reply(c, reqid, "SUCCESS", value, (size_t)vlen);
    }
    if (code_len == 4 && memcmp(code, "KEYS", 4) == 0) {
        // The customer_metadata keys, one a line (mdata-list).
        size_t out = 0;
        int fd = dup(keys_dir);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d) { if (fd >= 0) close(fd); return reply(c, reqid, "FAILURE", NULL, 0); }
        rewinddir(d);
        struct dirent *e;
        unsigned char key[MD_KEY_MAX];
        int listed = 0;
        while ((e = readdir(d)) && listed < MD_KEYS_MAX) {
            long k = file_key(e->d_name, key);
            if (k < 0 || out + (size_t)k + 1 > sizeof value) continue;
            memcpy(value + out, key, (size_t)k);
            out += (size_t)k;
            value[out++] = '\n';
            listed++;
        }
        closedir(d);
        if (out > 0) out--;  // no newline after the last key
        return reply(c, reqid, "SUCCESS", value, out);
    }
    if (code_len == 6 && memcmp(code, "DELETE", 6) == 0) {
        if (!valid_key(payload, plen) || is_sdc(payload, plen)) return reply(c, reqid, "FAILURE", NULL, 0);
        key_file('c', payload, (size_t)plen, file);
        if (unlinkat(keys_dir, file, 0) < 0 && errno != ENOENT) return reply(c, reqid, "FAILURE", NULL, 0);
        return reply(c, reqid, "SUCCESS", NULL, 0);
    }
    if (code_len == 3 && memcmp(code, "PUT", 3) == 0) {
        // PAYLOAD: base64(key) " " base64(value)
        char *sep = memchr(payload, ' ', (size_t)plen);
        if (!sep) return reply(c, reqid, "FAILURE", NULL, 0);
        unsigned char key[MD_KEY_MAX + 1];
        long klen = b64_decode((char *)payload, (size_t)(sep - (char *)payload), key, sizeof key);
        char *vtext = sep + 1;
        long vlen = b64_decode(vtext, (size_t)plen - (size_t)(vtext - (char *)payload), value, MD_VALUE_MAX);
        if (klen < 0 || vlen < 0 || !valid_key(key, klen) || is_sdc(key, klen)) return reply(c, reqid, "FAILURE", NULL, 0);
        key_file('c', key, (size_t)klen, file);
        long count;
        long long bytes;
        customer_usage(file, &count, &bytes);
        if (count + 1 > MD_KEYS_MAX || bytes + klen + vlen > MD_TOTAL_MAX) return reply(c, reqid, "FAILURE", NULL, 0);
        if (write_key(file, value, (size_t)vlen) < 0) return reply(c, reqid, "FAILURE", NULL, 0);
        return reply(c, reqid, "SUCCESS", NULL, 0);
    }
    return reply(c, reqid, "FAILURE", NULL, 0);
}

// Reads what the client sent and serves every complete line; -1 closes it.
static int client_input(struct client *c) {
    ssize_t r = read(c->fd, c->in + c->in_len, MD_LINE_MAX - c->in_len);
    if (r < 0) return (errno == EINTR || errno == EAGAIN) ? 0 : -1;
    if (r == 0) return -1;
    c->in_len += (size_t)r;
    size_t start = 0;
    for (;;) {
        char *nl = memchr(c->in + start, '\n', c->in_len - start);
        if (!nl) break;
        size_t n = (size_t)(nl - (c->in + start));
        if (serve_line(c, c->in + start, n) < 0) return -1;
        start += n + 1;
    }
    memmove(c->in, c->in + start, c->in_len - start);
    c->in_len -= start;
    return c->in_len >= MD_LINE_MAX ? -1 : 0;  // a line longer than any request
}

static int client_flush(struct client *c) {
    while (c->out_len > 0) {
        ssize_t w = send(c->fd, c->out + c->out_start, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        if (w <= 0) return -1;
        c->out_start += (size_t)w;
        c->out_len -= (size_t)w;
    }
    c->out_start = 0;
    return 0;
}

int metadata_server_main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: lumos-init --metadata-server KEYS_DIR INIT_PID (listening socket on fd 0)\n");
        return 2;
    }
    char *end = NULL;
    long pid = strtol(argv[3], &end, 10);
    if (!end || *end || pid < 1) {
        fprintf(stderr, "lumos-init: --metadata-server: INIT_PID must be a pid, not '%s'\n", argv[3]);
        return 2;
    }
    keys_dir = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (keys_dir < 0) { fprintf(stderr, "lumos-init: --metadata-server: %s: %s\n", argv[2], strerror(errno)); return 1; }
    int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
    if (pidfd < 0) { fprintf(stderr, "lumos-init: --metadata-server: pid %ld: %s\n", pid, strerror(errno)); return 1; }
    int listener = 0;
    int type = 0;
    socklen_t tl = sizeof type;
    if (getsockopt(listener, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM) {
        fprintf(stderr, "lumos-init: --metadata-server: fd 0 is not a listening stream socket\n");
        return 2;
    }
    fcntl(listener, F_SETFL, fcntl(listener, F_GETFL) | O_NONBLOCK);
    become_service();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = server_signal;
    sigaction(SIGTERM, &sa, NULL);
    for (int i = 0; i < MD_CLIENTS; i++) {
        clients[i].fd = -1;
        clients[i].in = malloc(MD_LINE_MAX + 1);
        clients[i].out = malloc(MD_LINE_MAX);
        if (!clients[i].in || !clients[i].out) { fprintf(stderr, "lumos-init: --metadata-server: out of memory\n"); return 1; }
    }
    unsigned long long tick = 0;
    while (!server_stop) {
        struct pollfd p[MD_CLIENTS + 2];
        p[0].fd = pidfd;
        p[0].events = POLLIN;
        p[1].fd = listener;
        p[1].events = POLLIN;
        for (int i = 0; i < MD_CLIENTS; i++) {
            p[i + 2].fd = clients[i].fd;
            // A client whose replies are not read is not read either.
            p[i + 2].events = (clients[i].out_len < MD_LINE_MAX / 2 ? POLLIN : 0) | (clients[i].out_len > 0 ? POLLOUT : 0);
            p[i + 2].revents = 0;
        }
        p[0].revents = p[1].revents = 0;
        if (poll(p, MD_CLIENTS + 2, -1) < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        if (p[0].revents) break;  // the zone's init has exited
        tick++;
        for (int i = 0; i < MD_CLIENTS; i++) {
            struct client *c = &clients[i];
            if (c->fd < 0 || !p[i + 2].revents) continue;
            if (p[i + 2].revents & (POLLIN | POLLHUP | POLLERR)) {
                c->active = tick;
                if (client_input(c) < 0) { client_flush(c); client_close(c); continue; }
            }
            if (client_flush(c) < 0) client_close(c);
        }
        if (p[1].revents & POLLIN) {
            int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd >= 0) {
                int slot = -1;
                for (int i = 0; i < MD_CLIENTS && slot < 0; i++) if (clients[i].fd < 0) slot = i;
                if (slot < 0) {
                    // Full: the least recently active connection makes room.
                    slot = 0;
                    for (int i = 1; i < MD_CLIENTS; i++) if (clients[i].active < clients[slot].active) slot = i;
                    client_close(&clients[slot]);
                }
                clients[slot].fd = fd;
                clients[slot].active = tick;
            }
        }
    }
    return 0;
}

// MARK: the tools

static int md_fd = -1;
static char md_line[MD_LINE_MAX + 2];

static int send_all(const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(md_fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

// One reply line into md_line (without the newline); its length or -1. What follows the
// line stays in md_rbuf for the next call.
static char md_rbuf[MD_LINE_MAX + 2];
static size_t md_have;
static long recv_line(void) {
    for (;;) {
        char *nl = memchr(md_rbuf, '\n', md_have);
        if (nl) {
            size_t n = (size_t)(nl - md_rbuf);
            memcpy(md_line, md_rbuf, n);
            md_line[n] = 0;
            md_have -= n + 1;
            memmove(md_rbuf, nl + 1, md_have);
            return (long)n;
        }
        if (md_have >= sizeof md_rbuf - 1) return -1;
        struct pollfd p = { md_fd, POLLIN, 0 };
        int r = poll(&p, 1, 30000);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        ssize_t got = read(md_fd, md_rbuf + md_have, sizeof md_rbuf - 1 - md_have);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return -1;
        md_have += (size_t)got;
    }
}

static char md_request[MD_LINE_MAX + 64];
static char md_body[MD_LINE_MAX];
static unsigned char md_reply[MD_LINE_MAX];

// Sends CODE with `data` and returns 0 SUCCESS, 1 NOTFOUND, 2 anything else; the reply's
// payload in md_reply (*out_len bytes).
static int request(const char *code, const unsigned char *data, size_t n, size_t *out_len) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned reqid = (unsigned)(ts.tv_nsec ^ (ts.tv_sec << 20) ^ (unsigned)getpid());
    int len = snprintf(md_body, sizeof md_body, "%08x %s ", reqid, code);
    if ((size_t)len + 4 * ((n + 2) / 3) + 1 > sizeof md_body) return 2;
    len += (int)b64_encode(data, n, md_body + len);
    int total = snprintf(md_request, sizeof md_request, "V2 %d %08x %s\n", len, crc32_of((unsigned char *)md_body, (size_t)len), md_body);
    if (total < 0 || (size_t)total >= sizeof md_request || send_all(md_request, (size_t)total) < 0) return 2;
    long r = recv_line();
    if (r < 0) return 2;
    // "V2 LEN CRC REQID CODE [PAYLOAD]"
    unsigned long blen, crc;
    int off = 0;
    if (sscanf(md_line, "V2 %lu %lx %n", &blen, &crc, &off) != 2 || off <= 0) return 2;
    char *body = md_line + off;
    if (strlen(body) != blen || crc32_of((unsigned char *)body, blen) != crc) return 2;
    char rid[9];
    if (blen < 10 || body[8] != ' ') return 2;
    memcpy(rid, body, 8);
    rid[8] = 0;
    if (strtoul(rid, NULL, 16) != reqid) return 2;
    char *rcode = body + 9, *space = strchr(rcode, ' ');
    if (space) *space = 0;
    *out_len = 0;
    if (space) {
        long got = b64_decode(space + 1, strlen(space + 1), md_reply, sizeof md_reply);
        if (got < 0) return 2;
        *out_len = (size_t)got;
    }
    if (strcmp(rcode, "SUCCESS") == 0) return 0;
    if (strcmp(rcode, "NOTFOUND") == 0) return 1;
    return 2;
}

static int connect_server(const char *tool) {
    md_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, MD_SOCKET, sizeof MD_SOCKET);
    if (md_fd < 0 || connect(md_fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        fprintf(stderr, "%s: cannot reach the metadata service at %s: %s\n", tool, MD_SOCKET, strerror(errno));
        return -1;
    }
    if (send_all("NEGOTIATE V2\n", 13) < 0 || recv_line() < 0 || strcmp(md_line, "V2_OK") != 0) {
        fprintf(stderr, "%s: the metadata service did not accept protocol version 2\n", tool);
        return -1;
    }
    return 0;
}

static int usage(const char *tool) {
    if (strcmp(tool, "mdata-list") == 0) fprintf(stderr, "usage: mdata-list\n");
    else if (strcmp(tool, "mdata-put") == 0) fprintf(stderr, "usage: mdata-put KEY [VALUE]  (the value from stdin when not given)\n");
    else fprintf(stderr, "usage: %s KEY\n", tool);
    return EXIT_USAGE;
}

int mdata_tool_main(const char *tool, int argc, char **argv) {
    int is_get = strcmp(tool, "mdata-get") == 0, is_put = strcmp(tool, "mdata-put") == 0;
    int is_delete = strcmp(tool, "mdata-delete") == 0, is_list = strcmp(tool, "mdata-list") == 0;
    if (!is_get && !is_put && !is_delete && !is_list) {
        fprintf(stderr, "lumos-init: unknown tool %s; the metadata tools are mdata-get, mdata-put, mdata-delete, mdata-list\n", tool);
        return EXIT_USAGE;
    }
    if (is_list ? argc != 1 : is_put ? (argc != 2 && argc != 3) : argc != 2) return usage(tool);
    const char *key = argc > 1 ? argv[1] : "";
    size_t klen = strlen(key);
    if (!is_list && (klen == 0 || klen > MD_KEY_MAX)) {
        fprintf(stderr, "%s: a key is 1 to %d bytes, not %zu\n", tool, MD_KEY_MAX, klen);
        return EXIT_USAGE;
    }
    static unsigned char val[MD_VALUE_MAX + 1];
    size_t vlen = 0;
    if (is_put) {
        if (argc == 3) {
            vlen = strlen(argv[2]);
            if (vlen > MD_VALUE_MAX) { fprintf(stderr, "%s: the value is larger than %d bytes\n", tool, MD_VALUE_MAX); return EXIT_ERROR; }
            memcpy(val, argv[2], vlen);
        } else {
            for (;;) {
                ssize_t r = read(0, val + vlen, sizeof val - vlen);
                if (r < 0 && errno == EINTR) continue;
                if (r < 0) { fprintf(stderr, "%s: reading the value from stdin: %s\n", tool, strerror(errno)); return EXIT_ERROR; }
                if (r == 0) break;
                vlen += (size_t)r;
                if (vlen > MD_VALUE_MAX) { fprintf(stderr, "%s: the value is larger than %d bytes\n", tool, MD_VALUE_MAX); return EXIT_ERROR; }
            }
        }
    }
    if (connect_server(tool) < 0) return EXIT_ERROR;
    size_t out = 0;
    int rc;
    if (is_put) {
        // base64(key) " " base64(value)
        static char both[MD_LINE_MAX];
        size_t n = b64_encode((const unsigned char *)key, klen, both);
        both[n++] = ' ';
        n += b64_encode(val, vlen, both + n);
        rc = request("PUT", (unsigned char *)both, n, &out);
    } else {
        rc = request(is_get ? "GET" : is_delete ? "DELETE" : "KEYS", (const unsigned char *)key, klen, &out);
    }
    if (rc == 1 && is_get) { fprintf(stderr, "No metadata for '%s'\n", key); return EXIT_NOTFOUND; }
    if (rc != 0) { fprintf(stderr, "%s: the metadata service refused the request\n", tool); return EXIT_ERROR; }
    if (is_get || is_list) {
        if (fwrite(md_reply, 1, out, stdout) != out) return EXIT_ERROR;
        if (out > 0 && md_reply[out - 1] != '\n') fputc('\n', stdout);
        if (fflush(stdout) != 0) return EXIT_ERROR;
    }
    return EXIT_OK;
}
