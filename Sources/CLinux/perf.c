#define _GNU_SOURCE
#include "clinux_perf.h"
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>

int clinux_perf_open(uint32_t type, uint64_t config, const char *uprobe_path, uint64_t config2,
                     uint64_t sample, int use_freq, int pid, int cpu) {
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.size = sizeof(attr);
    attr.type = type;
    attr.config = config;
    if (uprobe_path) attr.config1 = (uint64_t)(uintptr_t)uprobe_path;
    attr.config2 = config2;
    if (use_freq) {
        attr.freq = 1;
        attr.sample_freq = sample;
    } else {
        attr.sample_period = sample ? sample : 1;
    }
    attr.wakeup_events = 1;
    return (int)syscall(SYS_perf_event_open, &attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
}

int clinux_perf_set_bpf(int perf_fd, int prog_fd) { return ioctl(perf_fd, PERF_EVENT_IOC_SET_BPF, prog_fd); }
int clinux_perf_enable(int perf_fd) { return ioctl(perf_fd, PERF_EVENT_IOC_ENABLE, 0); }
int clinux_perf_disable(int perf_fd) { return ioctl(perf_fd, PERF_EVENT_IOC_DISABLE, 0); }

static int sys_bpf(int cmd, union bpf_attr *attr) {
    return (int)syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

int clinux_perf_raw_tp_open(const char *name, int prog_fd) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.raw_tracepoint.name = (uint64_t)(uintptr_t)name;
    attr.raw_tracepoint.prog_fd = (uint32_t)prog_fd;
    return sys_bpf(BPF_RAW_TRACEPOINT_OPEN, &attr);
}

int clinux_perf_selftest_counter_map(void) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 8;
    attr.max_entries = 1;
    return sys_bpf(BPF_MAP_CREATE, &attr);
}

int clinux_perf_selftest_counter_prog(uint32_t prog_type, int map_fd, int store_cgroup_id, char *log, uint32_t log_size) {
    struct bpf_insn insns[16];
    int n = 0;
#define INSN(...) (insns[n++] = (struct bpf_insn){ __VA_ARGS__ })
    if (store_cgroup_id) {
        // r6 = bpf_get_current_cgroup_id()
        INSN(.code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_get_current_cgroup_id);
        INSN(.code = BPF_ALU64 | BPF_MOV | BPF_X, .dst_reg = BPF_REG_6, .src_reg = BPF_REG_0);
    }
    // r0 = map_lookup_elem(map, &(u32){0})
    INSN(.code = BPF_ST | BPF_MEM | BPF_W, .dst_reg = BPF_REG_10, .off = -4, .imm = 0);
    INSN(.code = BPF_ALU64 | BPF_MOV | BPF_X, .dst_reg = BPF_REG_2, .src_reg = BPF_REG_10);
    INSN(.code = BPF_ALU64 | BPF_ADD | BPF_K, .dst_reg = BPF_REG_2, .imm = -4);
    INSN(.code = BPF_LD | BPF_DW | BPF_IMM, .dst_reg = BPF_REG_1, .src_reg = BPF_PSEUDO_MAP_FD, .imm = map_fd);
    INSN(.code = 0);
    INSN(.code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_map_lookup_elem);
    if (store_cgroup_id) {
        // if (r0) *(u64 *)r0 = r6
        INSN(.code = BPF_JMP | BPF_JEQ | BPF_K, .dst_reg = BPF_REG_0, .off = 1, .imm = 0);
        INSN(.code = BPF_STX | BPF_MEM | BPF_DW, .dst_reg = BPF_REG_0, .src_reg = BPF_REG_6, .off = 0);
    } else {
        // if (r0) lock *(u64 *)r0 += 1
        INSN(.code = BPF_JMP | BPF_JEQ | BPF_K, .dst_reg = BPF_REG_0, .off = 2, .imm = 0);
        INSN(.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_1, .imm = 1);
        INSN(.code = BPF_STX | BPF_ATOMIC | BPF_DW, .dst_reg = BPF_REG_0, .src_reg = BPF_REG_1, .off = 0, .imm = BPF_ADD);
    }
    INSN(.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0);
    INSN(.code = BPF_JMP | BPF_EXIT);
#undef INSN
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog_type = prog_type;
    attr.insns = (uint64_t)(uintptr_t)insns;
    attr.insn_cnt = (uint32_t)n;
    attr.license = (uint64_t)(uintptr_t)"GPL";
    if (log && log_size) {
        attr.log_buf = (uint64_t)(uintptr_t)log;
        attr.log_size = log_size;
        attr.log_level = 1;
    }
    return sys_bpf(BPF_PROG_LOAD, &attr);
}

int clinux_perf_selftest_counter_read(int map_fd, uint64_t *value) {
    uint32_t key = 0;
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_fd = (uint32_t)map_fd;
    attr.key = (uint64_t)(uintptr_t)&key;
    attr.value = (uint64_t)(uintptr_t)value;
    return sys_bpf(BPF_MAP_LOOKUP_ELEM, &attr);
}
