// bpf(2) wrappers: see include/clinux_bpf.h.
#include "clinux_bpf.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>

static long sys_bpf(int cmd, union bpf_attr *attr) {
    return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static void copy_name(char dst[BPF_OBJ_NAME_LEN], const char *name) {
    if (!name) return;
    // Object names allow only [A-Za-z0-9_.]; anything else is dropped.
    size_t j = 0;
    for (size_t i = 0; name[i] && j < BPF_OBJ_NAME_LEN - 1; i++) {
        char c = name[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.')
            dst[j++] = c;
    }
}

int clinux_bpf_map_create(uint32_t map_type, uint32_t key_size, uint32_t value_size,
                          uint32_t max_entries, uint32_t flags, const char *name) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_type = map_type;
    attr.key_size = key_size;
    attr.value_size = value_size;
    attr.max_entries = max_entries;
    attr.map_flags = flags;
    copy_name(attr.map_name, name);
    return (int)sys_bpf(BPF_MAP_CREATE, &attr);
}

int clinux_bpf_prog_load(uint32_t prog_type, const void *insns, uint32_t insn_count,
                         const char *license, char *log, uint32_t log_size, uint32_t log_level,
                         const char *name) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog_type = prog_type;
    attr.insns = (uint64_t)(uintptr_t)insns;
    attr.insn_cnt = insn_count;
    attr.license = (uint64_t)(uintptr_t)license;
    if (log && log_size) {
        log[0] = 0;
        attr.log_buf = (uint64_t)(uintptr_t)log;
        attr.log_size = log_size;
        attr.log_level = log_level;
    }
    copy_name(attr.prog_name, name);
    return (int)sys_bpf(BPF_PROG_LOAD, &attr);
}

static int map_elem(int cmd, int map_fd, const void *key, void *value, uint64_t flags) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_fd = (uint32_t)map_fd;
    attr.key = (uint64_t)(uintptr_t)key;
    attr.value = (uint64_t)(uintptr_t)value;
    attr.flags = flags;
    return (int)sys_bpf(cmd, &attr);
}

int clinux_bpf_map_lookup(int map_fd, const void *key, void *value) {
    return map_elem(BPF_MAP_LOOKUP_ELEM, map_fd, key, value, 0);
}

int clinux_bpf_map_update(int map_fd, const void *key, const void *value, uint64_t flags) {
    return map_elem(BPF_MAP_UPDATE_ELEM, map_fd, key, (void *)value, flags);
}

int clinux_bpf_map_delete(int map_fd, const void *key) {
    return map_elem(BPF_MAP_DELETE_ELEM, map_fd, key, NULL, 0);
}

int clinux_bpf_map_next_key(int map_fd, const void *key, void *next_key) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_fd = (uint32_t)map_fd;
    attr.key = (uint64_t)(uintptr_t)key;
    attr.next_key = (uint64_t)(uintptr_t)next_key;
    return (int)sys_bpf(BPF_MAP_GET_NEXT_KEY, &attr);
}

int clinux_bpf_prog_test_run(int prog_fd, const void *ctx, uint32_t ctx_size, uint32_t *retval) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.test.prog_fd = (uint32_t)prog_fd;
    attr.test.ctx_in = (uint64_t)(uintptr_t)ctx;
    attr.test.ctx_size_in = ctx_size;
    int rc = (int)sys_bpf(BPF_PROG_TEST_RUN, &attr);
    if (rc == 0 && retval) *retval = attr.test.retval;
    return rc;
}

int clinux_bpf_raw_tracepoint_open(const char *name, int prog_fd) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.raw_tracepoint.name = (uint64_t)(uintptr_t)name;
    attr.raw_tracepoint.prog_fd = (uint32_t)prog_fd;
    return (int)sys_bpf(BPF_RAW_TRACEPOINT_OPEN, &attr);
}

int clinux_bpf_attach_perf_event(int perf_fd, int prog_fd) {
    if (ioctl(perf_fd, PERF_EVENT_IOC_SET_BPF, prog_fd) < 0) return -1;
    return ioctl(perf_fd, PERF_EVENT_IOC_ENABLE, 0);
}

int clinux_bpf_possible_cpus(void) {
    // /sys/devices/system/cpu/possible reads like "0-1" or "0,2-3".
    FILE *f = fopen("/sys/devices/system/cpu/possible", "r");
    if (!f) return -1;
    char buf[256];
    int count = 0;
    if (fgets(buf, sizeof(buf), f)) {
        char *p = buf;
        while (*p && *p != '\n') {
            int a = 0, b;
            while (*p >= '0' && *p <= '9') a = a * 10 + (*p++ - '0');
            b = a;
            if (*p == '-') { p++; b = 0; while (*p >= '0' && *p <= '9') b = b * 10 + (*p++ - '0'); }
            count += b - a + 1;
            if (*p == ',') p++;
        }
    }
    fclose(f);
    return count;
}

static int perf_open(struct perf_event_attr *attr, int pid, int cpu) {
    return (int)syscall(__NR_perf_event_open, attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
}

int clinux_bpf_perf_open_tracepoint(uint64_t tracepoint_id) {
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.size = sizeof(attr);
    attr.type = PERF_TYPE_TRACEPOINT;
    attr.config = tracepoint_id;
    attr.sample_period = 1;
    attr.wakeup_events = 1;
    return perf_open(&attr, -1, 0);
}

int clinux_bpf_perf_open_cpu_clock(int cpu, uint64_t value, int use_freq) {
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.size = sizeof(attr);
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_CPU_CLOCK;
    attr.freq = use_freq ? 1 : 0;
    if (use_freq) attr.sample_freq = value; else attr.sample_period = value;
    return perf_open(&attr, -1, cpu);
}
