/* The processes to sample when filtering, shared by profiler.bpf.c and
 * follow.bpf.c (the same map, passed by fd at load). */
#ifndef PERFPILOT_TARGETS_H
#define PERFPILOT_TARGETS_H

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u8);
} targets SEC(".maps");

#endif
