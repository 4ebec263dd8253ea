/* Lock contention: time threads wait in futex waits, by user stack.
 *
 * pthread mutexes, condition variables and rwlocks, Rust's std::sync, Go's
 * runtime and CPython's GIL all sleep in futex(2) (or futex_waitv /
 * futex_wait, the futex2 calls). The syscall entry notes the time in the
 * thread's task storage; the exit, if the wait lasted at least
 * lock_min_ns, unwinds the user stack and adds one contention and the
 * nanoseconds waited to (process, thread, stacks) with SAMPLE_F_LOCK.
 *
 * The stack is taken at the exit, not the entry: the thread is still in
 * the syscall, so its saved user registers and stack are the ones it
 * entered with, while waits under the minimum (most, on a busy host) cost
 * no unwinding at all, and a waiting thread holds 8 bytes instead of the
 * 3 KiB of stacks an off-CPU block keeps. No kernel stack: it would
 * always be the futex syscall path.
 *
 * Included at the end of profiler.bpf.c. No program is loaded unless the
 * lock profile is asked for. */

/* Waits shorter than lock_min_ns are not counted; one wait in
 * lock_sample_every is timed (1: all). Writable while running (.bss), so
 * that a CPU budget can turn them; both are read after the syscall
 * number check only. */
volatile __u64 lock_min_ns = 0;
volatile __u32 lock_sample_every = 0; /* 0 or 1: all */

/* Per thread, when its futex wait started (0: none timed). */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} lock_tasks SEC(".maps");

/* x86-64 syscall numbers. */
#define PP_NR_FUTEX 202
#define PP_NR_FUTEX_WAITV 449
#define PP_NR_FUTEX_WAIT 454

/* futex(2) operations, without FUTEX_PRIVATE_FLAG (128) and
 * FUTEX_CLOCK_REALTIME (256). */
#define PP_FUTEX_CMD_MASK 127
#define PP_FUTEX_WAIT 0
#define PP_FUTEX_LOCK_PI 6
#define PP_FUTEX_WAIT_BITSET 9
#define PP_FUTEX_WAIT_REQUEUE_PI 11
#define PP_FUTEX_LOCK_PI2 13

#define PP_EAGAIN 11

static __always_inline bool futex_is_wait(long nr, unsigned long op)
{
	if (nr == PP_NR_FUTEX_WAITV || nr == PP_NR_FUTEX_WAIT)
		return true;
	if (nr != PP_NR_FUTEX)
		return false;
	switch (op & PP_FUTEX_CMD_MASK) {
	case PP_FUTEX_WAIT:
	case PP_FUTEX_LOCK_PI:
	case PP_FUTEX_WAIT_BITSET:
	case PP_FUTEX_WAIT_REQUEUE_PI:
	case PP_FUTEX_LOCK_PI2:
		return true;
	}
	return false;
}

/* A futex wait starts: note the time (for a target, 1 in N). */
static __always_inline void lock_enter(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if ((self_tgid && tgid == self_tgid) ||
	    (filter_tgids && !bpf_map_lookup_elem(&targets, &tgid)))
		return;
	if (lock_sample_every > 1 && bpf_get_prandom_u32() % lock_sample_every) {
		stat_inc(STAT_LOCK_SKIPPED);
		return;
	}
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 *start = bpf_task_storage_get(&lock_tasks, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!start) {
		stat_inc(STAT_LOCK_NO_STORAGE);
		return;
	}
	*start = bpf_ktime_get_ns();
}

/* A futex syscall returns `ret`: a timed wait is counted at its stack. */
static __always_inline void lock_exit(void *ctx, long ret)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 *start = bpf_task_storage_get(&lock_tasks, task, 0, 0);
	if (!start || !*start)
		return;
	__u64 delay = bpf_ktime_get_ns() - *start;
	*start = 0;
	/* EAGAIN: the futex word had changed, the thread never slept. */
	if (ret == -PP_EAGAIN || delay < lock_min_ns) {
		stat_inc(STAT_LOCK_SHORT);
		return;
	}

	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	__u32 tid = (__u32)id;
	__u32 zero = 0;
	struct pp_scratch *sc = bpf_map_lookup_elem(&scratch_map, &zero);
	if (!sc)
		return;
	sc->user.len = 0;
	sc->kernel.len = 0;
	sc->python.len = 0;
	struct pp_sample_key key = {};
	key.tgid = tgid;
	key.tid = tid;
	key.flags = SAMPLE_F_LOCK;
	if (want_user_stacks) {
		struct pp_proc_maps *proc = bpf_map_lookup_elem(&procs, &tgid);
		if (!proc) {
			notify(EVENT_NEW_PROCESS, tgid, new_process_notify_ns);
			key.flags |= fp_user_stack(ctx, sc);
		} else if (!(proc->flags & PROC_F_KTHREAD)) {
			bool want_raw = false;
			key.flags |= unwind_user_stack(task, proc, tgid, tid, &want_raw);
		}
	}

	__u32 buffer = active_buffer & 1;
	void *counts = buffer ? (void *)&counts1 : (void *)&counts0;
	intern_scratch(&key, sc, buffer);
	stat_inc(STAT_LOCK_WAITS);
	add_count(counts, &key, delay, NULL);
}

/* Two ways in, one loaded (src/profiler.rs chooses). The per-syscall
 * tracepoints run a program only for the futex calls, but every syscall
 * of every thread then takes the kernel's syscall tracing path, about
 * 70 ns each here; and they are attached through tracefs. Without tracefs
 * the generic sys_enter/sys_exit ones run a program for every syscall:
 * about 160 ns each here. */

/* The syscall tracepoints' records: the common header, the syscall
 * number, then the arguments or the return value (8 bytes each). */
struct pp_sys_enter_args {
	__u64 common;
	__s64 nr;
	__u64 args[6];
};

struct pp_sys_exit_args {
	__u64 common;
	__s64 nr;
	__s64 ret;
};

SEC("tracepoint/syscalls/sys_enter_futex")
int on_futex_enter_tp(struct pp_sys_enter_args *ctx)
{
	if (futex_is_wait(PP_NR_FUTEX, ctx->args[1]))
		lock_enter();
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_futex")
int on_futex_exit_tp(struct pp_sys_exit_args *ctx)
{
	lock_exit(ctx, ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_futex_waitv")
int on_futex_waitv_enter_tp(void *ctx)
{
	lock_enter();
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_futex_waitv")
int on_futex_waitv_exit_tp(struct pp_sys_exit_args *ctx)
{
	lock_exit(ctx, ctx->ret);
	return 0;
}

/* futex2's wait (kernel 6.7 and later; attached when there). */
SEC("tracepoint/syscalls/sys_enter_futex_wait")
int on_futex2_enter_tp(void *ctx)
{
	lock_enter();
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_futex_wait")
int on_futex2_exit_tp(struct pp_sys_exit_args *ctx)
{
	lock_exit(ctx, ctx->ret);
	return 0;
}

/* Every syscall entry of every thread comes here: the number is checked
 * first. */
SEC("tp_btf/sys_enter")
int BPF_PROG(on_futex_enter, struct pt_regs *regs, long id)
{
	if (id != PP_NR_FUTEX && id != PP_NR_FUTEX_WAITV && id != PP_NR_FUTEX_WAIT)
		return 0;
	if (futex_is_wait(id, regs->si))
		lock_enter();
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(on_futex_exit, struct pt_regs *regs, long ret)
{
	long nr = regs->orig_ax;
	if (nr != PP_NR_FUTEX && nr != PP_NR_FUTEX_WAITV && nr != PP_NR_FUTEX_WAIT)
		return 0;
	lock_exit(ctx, ret);
	return 0;
}
