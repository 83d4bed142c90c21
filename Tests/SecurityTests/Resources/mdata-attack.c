// A hostile client of the zone's metadata server (docs/security.md, "The metadata server"),
// run inside a zone as its root. Each attack prints one line "NAME RESULT" and the tests
// check that the server survived (mdata-get still answers) and kept its caps.
//
//   mdata-attack huge          a 16 MiB line without a newline
//   mdata-attack garbage       malformed frames: bad crc, bad length, bad base64, binary
//   mdata-attack flood N       N connections held open at once, then a normal request on a new one
//   mdata-attack noread N      N requests on one connection without reading a reply
//   mdata-attack fill          PUT keys until refused; prints how many were accepted
//   mdata-attack nobody        connect as uid 65534 (expects EACCES)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define SOCK "/native/.zonecontrol/metadata.sock"

static int dial(void) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    strcpy(a.sun_path, SOCK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) return -1;
    return fd;
}

static uint32_t crc32_of(const char *p, size_t n) {
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        crc ^= (unsigned char)p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static size_t enc(const char *in, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)in[i] << 16 | (i + 1 < n ? (uint32_t)(unsigned char)in[i + 1] << 8 : 0) | (i + 2 < n ? (unsigned char)in[i + 2] : 0);
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    out[o] = 0;
    return o;
}

static void put_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        p += w;
        n -= (size_t)w;
    }
}

static int negotiate(int fd) {
    put_all(fd, "NEGOTIATE V2\n", 13);
    char buf[16];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    return n == 6 && memcmp(buf, "V2_OK\n", 6) == 0 ? 0 : -1;
}

// Sends a framed request and returns the reply's code ("SUCCESS", ...), or "CLOSED".
static const char *frame(int fd, const char *code, const char *payload, size_t plen, char *reply, size_t cap) {
    static char body[300000], line[400000];
    int n = snprintf(body, sizeof body, "0000002a %s ", code);
    n += (int)enc(payload, plen, body + n);
    int l = snprintf(line, sizeof line, "V2 %d %08x %s\n", n, crc32_of(body, (size_t)n), body);
    put_all(fd, line, (size_t)l);
    size_t got = 0;
    while (got < cap - 1) {
        ssize_t r = read(fd, reply + got, 1);
        if (r <= 0) return "CLOSED";
        if (reply[got++] == '\n') break;
    }
    reply[got] = 0;
    char *p = reply;
    for (int spaces = 0; *p && spaces < 4; p++) if (*p == ' ') spaces++;
    static char result[32];
    size_t k = 0;
    while (p[k] && p[k] != ' ' && p[k] != '\n' && k < sizeof result - 1) { result[k] = p[k]; k++; }
    result[k] = 0;
    return result;
}

static int closed(int fd) {
    char c;
    for (;;) {
        ssize_t r = read(fd, &c, 1);
        if (r == 0) return 1;
        if (r < 0) return errno == ECONNRESET;
    }
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) return 2;
    static char reply[200000];
    if (!strcmp(argv[1], "huge")) {
        int fd = dial();
        if (fd < 0 || negotiate(fd) < 0) { printf("huge noconnect\n"); return 1; }
        static char junk[1 << 16];
        memset(junk, 'A', sizeof junk);
        put_all(fd, "V2 ", 3);
        for (int i = 0; i < 256; i++) put_all(fd, junk, sizeof junk);
        printf("huge %s\n", closed(fd) ? "closed" : "open");
        return 0;
    }
    if (!strcmp(argv[1], "garbage")) {
        const char *lines[] = {
            "V2 5 00000000 hello\n", "V2 -1 00000000 x\n", "V2 99999999999999999999 0 x\n",
            "V2 12 zzzzzzzz 0000002a GET\n", "GET sdc:uuid\n", "\x01\x02\x03\xff\xfe\n", "V2\n", "V2 \n",
        };
        int all = 1;
        for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
            int fd = dial();
            if (fd < 0 || negotiate(fd) < 0) { all = 0; continue; }
            put_all(fd, lines[i], strlen(lines[i]));
            if (!closed(fd)) all = 0;
            close(fd);
        }
        // A well-framed request with a payload that is not base64 gets FAILURE.
        int fd = dial();
        negotiate(fd);
        const char *body = "0000002a GET !!!!";
        char line[128];
        int l = snprintf(line, sizeof line, "V2 %zu %08x %s\n", strlen(body), crc32_of(body, strlen(body)), body);
        put_all(fd, line, (size_t)l);
        ssize_t r = read(fd, reply, sizeof reply - 1);
        reply[r > 0 ? r : 0] = 0;
        printf("garbage %s %s\n", all ? "closed" : "open", strstr(reply, " FAILURE") ? "FAILURE" : "other");
        return 0;
    }
    if (!strcmp(argv[1], "flood")) {
        int n = argc > 2 ? atoi(argv[2]) : 100, open_ok = 0;
        for (int i = 0; i < n; i++) if (dial() >= 0) open_ok++;
        int fd = dial();
        const char *code = fd >= 0 && negotiate(fd) == 0 ? frame(fd, "GET", "sdc:uuid", 8, reply, sizeof reply) : "CLOSED";
        printf("flood %d %s\n", open_ok, code);
        return 0;
    }
    if (!strcmp(argv[1], "noread")) {
        int n = argc > 2 ? atoi(argv[2]) : 10000;
        int fd = dial();
        if (fd < 0 || negotiate(fd) < 0) { printf("noread noconnect\n"); return 1; }
        int fl = fcntl(fd, F_GETFL);
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
        static char body[64], line[128];
        int blen = snprintf(body, sizeof body, "0000002a KEYS ");
        int l = snprintf(line, sizeof line, "V2 %d %08x %s\n", blen, crc32_of(body, (size_t)blen), body);
        int sent = 0;
        for (int i = 0; i < n; i++) {
            ssize_t w = send(fd, line, (size_t)l, MSG_NOSIGNAL);
            if (w < 0) break;
            sent++;
        }
        // Meanwhile another client is served.
        int other = dial();
        const char *code = other >= 0 && negotiate(other) == 0 ? frame(other, "GET", "sdc:uuid", 8, reply, sizeof reply) : "CLOSED";
        printf("noread %s %s\n", sent < n ? "stalled" : "all-sent", code);
        return 0;
    }
    if (!strcmp(argv[1], "fill")) {
        int fd = dial();
        if (fd < 0 || negotiate(fd) < 0) { printf("fill noconnect\n"); return 1; }
        static char value[60000], both[200000], ek[64];
        memset(value, 'v', sizeof value);
        int accepted = 0;
        for (int i = 0; i < 1000; i++) {
            char key[32];
            int kl = snprintf(key, sizeof key, "fill-%d", i);
            size_t n = enc(key, (size_t)kl, ek);
            memcpy(both, ek, n);
            both[n++] = ' ';
            n += enc(value, sizeof value, both + n);
            const char *code = frame(fd, "PUT", both, n, reply, sizeof reply);
            if (strcmp(code, "SUCCESS") != 0) break;
            accepted++;
        }
        // The sdc: keys are the host's.
        size_t n = enc("sdc:uuid", 8, ek);
        memcpy(both, ek, n);
        both[n++] = ' ';
        n += enc("forged", 6, both + n);
        const char *sdc = frame(fd, "PUT", both, n, reply, sizeof reply);
        printf("fill %d sdc-put-%s\n", accepted, sdc);
        return 0;
    }
    if (!strcmp(argv[1], "nobody")) {
        if (setgid(65534) < 0 || setuid(65534) < 0) { printf("nobody setuid-failed\n"); return 1; }
        int fd = dial();
        printf("nobody %s\n", fd < 0 ? (errno == EACCES ? "EACCES" : strerror(errno)) : "connected");
        return 0;
    }
    return 2;
}
