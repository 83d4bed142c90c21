// Tracing probes: perf_event_open(2) and bpf(2) are reached through syscall(), which is
// variadic and so not callable from Swift, and struct perf_event_attr has bit-fields and
// unions; these wrappers fill it for the probe kinds the tracer attaches to.
#ifndef CLINUX_PERF_H
#define CLINUX_PERF_H
#include <stdint.h>

// perf_event_open with PERF_FLAG_FD_CLOEXEC. `type` is PERF_TYPE_* or a dynamic PMU type
// (uprobe: /sys/bus/event_source/devices/uprobe/type). For a uprobe pass the file in
// `uprobe_path` (config1) and the file offset in `config2`; `config` carries the retprobe
// bit and the reference-counter (semaphore) offset. `sample` is the period, or the
// frequency in Hz when `use_freq` is set. Returns an fd or -1 with errno.
int clinux_perf_open(uint32_t type, uint64_t config, const char *uprobe_path, uint64_t config2,
                     uint64_t sample, int use_freq, int pid, int cpu);
// PERF_EVENT_IOC_SET_BPF, PERF_EVENT_IOC_ENABLE, PERF_EVENT_IOC_DISABLE.
int clinux_perf_set_bpf(int perf_fd, int prog_fd);
int clinux_perf_enable(int perf_fd);
int clinux_perf_disable(int perf_fd);
// bpf(BPF_RAW_TRACEPOINT_OPEN): attaches a RAW_TRACEPOINT program by tracepoint name;
// returns the link fd (close it to detach) or -1 with errno.
int clinux_perf_raw_tp_open(const char *name, int prog_fd);

// The values Swift cannot see as macros.
enum {
    CLINUX_PERF_TYPE_SOFTWARE = 1,
    CLINUX_PERF_TYPE_TRACEPOINT = 2,
    CLINUX_PERF_COUNT_SW_CPU_CLOCK = 0,
    CLINUX_BPF_PROG_TYPE_KPROBE = 2,
    CLINUX_BPF_PROG_TYPE_TRACEPOINT = 5,
    CLINUX_BPF_PROG_TYPE_PERF_EVENT = 7,
    CLINUX_BPF_PROG_TYPE_RAW_TRACEPOINT = 17,
};

// Self-test support for the probe tests: a one-slot array map and a program that adds 1
// to it each time it runs (so a test can see a probe fire without the compiler), or, with
// store_cgroup_id set, stores bpf_get_current_cgroup_id() of the task it ran in.
int clinux_perf_selftest_counter_map(void);
int clinux_perf_selftest_counter_prog(uint32_t prog_type, int map_fd, int store_cgroup_id, char *log, uint32_t log_size);
int clinux_perf_selftest_counter_read(int map_fd, uint64_t *value);
#endif
