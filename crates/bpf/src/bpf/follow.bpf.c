// SPDX-License-Identifier: GPL-2.0
/* Following a recorded command's children: every process a target forks
 * becomes a target. Kept apart from profiler.bpf.c because it reads
 * task_struct (CO-RE), which makes libbpf load the kernel's BTF, a cost
 * the other modes do not pay. The targets map is the profiler's own,
 * shared at load time. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

#include "targets.h"

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = parent->tgid;
	__u32 ctgid = child->tgid;
	if (ptgid == ctgid || !bpf_map_lookup_elem(&targets, &ptgid))
		return 0;
	__u8 one = 1;
	bpf_map_update_elem(&targets, &ctgid, &one, BPF_ANY);
	return 0;
}
