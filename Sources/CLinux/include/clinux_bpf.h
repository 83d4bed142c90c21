// Tracing: bpf(2) is reached through syscall(), which is variadic and so not callable
// from Swift. These wrappers fill union bpf_attr for the few commands the tracer uses.
#ifndef CLINUX_BPF_H
#define CLINUX_BPF_H
#include <stdint.h>
#include <stddef.h>

// BPF_MAP_CREATE; returns a map fd or -1 with errno.
int clinux_bpf_map_create(uint32_t map_type, uint32_t key_size, uint32_t value_size,
                          uint32_t max_entries, uint32_t flags, const char *name);
// BPF_PROG_LOAD with a verifier log; returns a program fd or -1 with errno (the log is
// filled on failure when log_size > 0).
int clinux_bpf_prog_load(uint32_t prog_type, const void *insns, uint32_t insn_count,
                         const char *license, char *log, uint32_t log_size, uint32_t log_level,
                         const char *name);
int clinux_bpf_map_lookup(int map_fd, const void *key, void *value);
int clinux_bpf_map_update(int map_fd, const void *key, const void *value, uint64_t flags);
int clinux_bpf_map_delete(int map_fd, const void *key);
// BPF_MAP_GET_NEXT_KEY; key NULL gives the first key. -1 with ENOENT at the end.
int clinux_bpf_map_next_key(int map_fd, const void *key, void *next_key);
// BPF_PROG_TEST_RUN of a program with an input context (BEGIN/END clauses run this way,
// in the tracer's own task). Returns 0 and the program's return value, or -1 with errno.
int clinux_bpf_prog_test_run(int prog_fd, const void *ctx, uint32_t ctx_size, uint32_t *retval);
// BPF_RAW_TRACEPOINT_OPEN; returns a link fd or -1 with errno.
int clinux_bpf_raw_tracepoint_open(const char *name, int prog_fd);
// PERF_EVENT_IOC_SET_BPF then PERF_EVENT_IOC_ENABLE on an open perf event.
int clinux_bpf_attach_perf_event(int perf_fd, int prog_fd);
// The number of possible CPUs (per-CPU map values come one per possible CPU).
int clinux_bpf_possible_cpus(void);
#endif

#ifndef CLINUX_BPF_ATOMICS
#define CLINUX_BPF_ATOMICS
// Ring-buffer positions are shared with the kernel: read with acquire, write with release.
static inline uint64_t clinux_load_acquire_u64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline uint32_t clinux_load_acquire_u32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void clinux_store_release_u64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
#endif

// Minimal perf_event_open(2) uses of the compiler's own (the probes layer owns the general
// attach code): a tracepoint event by tracefs id (pid -1, cpu 0: a BPF program on a
// tracepoint runs on every CPU), and a cpu-clock sampling event on one CPU, by frequency
// (use_freq=1, value in Hz) or by period (value in ns). Return a perf fd or -1 with errno.
int clinux_bpf_perf_open_tracepoint(uint64_t tracepoint_id);
int clinux_bpf_perf_open_cpu_clock(int cpu, uint64_t value, int use_freq);
