/* Layouts shared by profiler.bpf.c and src/profiler.rs (which mirrors them
 * with #[repr(C)] structs and checks their sizes against the loaded maps). */
#ifndef PERFPILOT_PROFILER_H
#define PERFPILOT_PROFILER_H

#define MAX_FRAMES 127
#define MAX_EXEC_MAPS 256
#define MAP_SEARCH_STEPS 9  /* log2(MAX_EXEC_MAPS) + 1 */
#define ROW_SEARCH_STEPS 24 /* enough for 16M unwind rows */
#define MAX_UNWIND_TABLES 16384
/* Bytes of user stack copied from rsp for a sample unwound later in user
 * space (see pp_raw_stack). */
#define RAW_STACK_MAX 16384

/* A stack: return addresses, leaf first. 1 KiB. */
struct pp_stack {
	__u64 len;
	__u64 ips[MAX_FRAMES];
};

/* Aggregation key: one count per distinct (process, thread, stacks). */
struct pp_sample_key {
	__u32 tgid;
	__u32 tid;
	__u64 user_stack;   /* hash in the stacks map, 0 = none */
	__u64 kernel_stack; /* hash in the stacks map, 0 = none */
	__u64 python_stack; /* code object pointers | is_entry bit, leaf first */
	__u32 flags;        /* SAMPLE_F_* */
	__u32 _pad;
};

struct pp_sample_value {
	__u64 count;   /* samples, or an amount (SAMPLE_F_OFFCPU, SAMPLE_F_LOCK) */
	char comm[16]; /* thread name at the first sample */
	__u64 events;  /* records added into count (waits, blocks, samples) */
};

#define SAMPLE_F_TRUNCATED (1 << 0)    /* MAX_FRAMES reached */
#define SAMPLE_F_FP_ONLY (1 << 1)      /* process not yet known: frame pointers only */
#define SAMPLE_F_READ_ERROR (1 << 2)   /* stack memory unreadable mid-unwind */
#define SAMPLE_F_NO_UNWIND_INFO (1 << 3) /* a frame fell back to frame pointers */
#define SAMPLE_F_STACK_LOST (1 << 4)   /* stacks map full: a stack is missing */
#define SAMPLE_F_UNSUPPORTED (1 << 5)  /* a CFA rule the unwinder cannot evaluate */
#define SAMPLE_F_PY_TRUNCATED (1 << 6) /* more Python frames than MAX_FRAMES */
#define SAMPLE_F_PY_NO_THREAD (1 << 7) /* Python process, thread state not found */
#define SAMPLE_F_TABLE_PENDING (1 << 8) /* through code whose table was still being built */
/* An off-CPU record: count is the nanoseconds the thread was blocked at
 * these stacks, not a number of samples. */
#define SAMPLE_F_OFFCPU (1 << 9)
/* Off-CPU records of the wall view only (offcpu_wall): time runnable,
 * waiting for a CPU after a preemption; a block shorter than the minimum. */
#define SAMPLE_F_RUNNABLE (1 << 10)
#define SAMPLE_F_SHORT (1 << 11)
/* A lock contention record (lock.bpf.h): count is the nanoseconds waited
 * in futex waits at these stacks, events the number of waits. */
#define SAMPLE_F_LOCK (1 << 13)

/* A thread switched out while not runnable: when, and the stacks it
 * blocked at, kept in its task storage until it runs again. The stacks
 * are interned only then, into the buffer active at that moment: one
 * drained in between would otherwise have taken them. */
struct pp_offcpu {
	__u64 start_ns; /* 0: not blocked, or the block is not recorded */
	__u32 tgid;
	__u32 tid;
	__u32 flags; /* SAMPLE_F_* of the capture */
	__u32 every; /* recorded 1 in this many: its time is scaled by it */
	char comm[16];
	struct pp_stack user;
	struct pp_stack kernel;
	struct pp_stack python;
};

/* One row of an unwind table: from pc (relative to the ELF's virtual
 * addresses) until the next row's pc, how to find the CFA and rbp. */
struct pp_unwind_row {
	__u32 pc;
	__s32 cfa_offset; /* for CFA_PLT: the (rip & 15) threshold */
	__s16 rbp_offset; /* rbp saved at CFA + rbp_offset */
	__u8 cfa_kind;    /* CFA_* */
	__u8 rbp_kind;    /* RBP_* */
};

#define CFA_NONE 0        /* no unwind info here: try frame pointers */
#define CFA_RSP 1         /* CFA = rsp + cfa_offset */
#define CFA_RBP 2         /* CFA = rbp + cfa_offset */
#define CFA_PLT 3         /* CFA = rsp + 8 + ((rip & 15) >= cfa_offset ? 8 : 0) */
#define CFA_END 4         /* return address undefined: outermost frame */
#define CFA_UNSUPPORTED 5 /* a DWARF expression we do not evaluate */

#define RBP_SAME 0
#define RBP_OFFSET 1

/* One executable mapping of a process. */
struct pp_exec_map {
	__u64 start;
	__u64 end;
	__u64 bias;      /* runtime address - ELF virtual address */
	__u32 table;     /* index in unwind_tables, or TABLE_PENDING */
	__u32 row_count; /* 0: no table, use frame pointers */
};

/* pp_exec_map.table of an object whose table user space is still building
 * (row_count is 0): samples through it are copied raw. */
#define TABLE_PENDING 0xffffffffU

#define PROC_F_PYTHON 1
#define PROC_F_KTHREAD 2

/* struct bpf_pidns_info (UAPI), without CO-RE. */
struct pp_pidns_info {
	__u32 pid;
	__u32 tgid;
};

/* struct pt_regs on x86-64 (the layout of user_regs_struct). */
struct pp_user_regs {
	__u64 r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
	__u64 ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};

struct pp_proc_maps {
	__u32 count; /* sorted by start */
	__u32 flags;
	struct pp_exec_map maps[MAX_EXEC_MAPS];
};

/* Where CPython keeps what the Python unwinder reads, per version. */
struct pp_py_offsets {
	__u16 runtime_interp_head;
	__u16 runtime_tstate_current;
	__u16 interp_threads_head;
	__u16 tstate_next;
	__u16 tstate_native_thread_id;
	__u16 tstate_cframe;
	__u16 cframe_current_frame;
	__u16 frame_code;
	__u16 frame_previous;
	__u16 frame_is_entry;
	__u16 code_qualname;
	__u16 code_filename;
	__u16 code_firstlineno;
	__u16 unicode_state;
	__u16 unicode_ascii_data;
	__u16 unicode_compact_data;
	__u16 frame_owner; /* with PY_F_SHIM_FRAMES */
	__u16 flags;       /* PY_F_* */
};

/* How one CPython version's frame model differs from 3.11's. */
#define PY_F_NO_TSTATE_CURRENT (1 << 0) /* 3.12+: the GIL holder is thread-local: search */
#define PY_F_PTHREAD_ID (1 << 1)        /* < 3.11: the thread id is pthread_self(), not the tid */
#define PY_F_FRAME_IN_TSTATE (1 << 2)   /* tstate_cframe is the frame itself, no cframe */
#define PY_F_ALL_ENTRY (1 << 3)         /* < 3.11: one C eval call per frame */
#define PY_F_SHIM_FRAMES (1 << 4)       /* 3.12+: C-stack-owned shims mark entries */
#define PY_FRAME_OWNED_BY_CSTACK 3

struct pp_py_proc {
	__u64 runtime;   /* address of _PyRuntime */
	__u64 pidns_dev; /* the process's pid namespace, to match thread ids */
	__u64 pidns_ino;
	struct pp_py_offsets o;
	__u32 task_fsbase; /* offsetof(task_struct, thread.fsbase), with PY_F_PTHREAD_ID */
};

struct pp_py_name_key {
	__u32 tgid;
	__u32 _pad;
	__u64 code;
};

#define PY_NAME_LEN 64
#define PY_FILE_LEN 96

struct pp_py_name {
	char qualname[PY_NAME_LEN];
	char filename[PY_FILE_LEN];
	__u32 firstlineno;
	__u32 _pad;
};

struct pp_event {
	__u32 kind; /* EVENT_* */
	__u32 tgid;
};

/* A sample whose user stack is copied for user space to unwind once the
 * process's mappings and tables are known: registers, stacks and the raw
 * stack memory from sp upwards. Sent through the raw_stacks ring buffer,
 * followed by data: kernel_len kernel addresses, python_len Python
 * entries (u64 each), then stack_len bytes of stack. */
struct pp_raw_stack {
	__u32 tgid;
	__u32 tid;
	__u64 ip;
	__u64 sp;
	__u64 bp;
	__u64 user_stack; /* the in-kernel unwind's stack (compare mode), else 0 */
	__u32 flags;      /* SAMPLE_F_* of the in-kernel attempt */
	__u16 kernel_len;
	__u16 python_len;
	__u32 stack_len;
	__u32 _pad;
	char comm[16];
};

#define RAW_DATA_MAX (2 * MAX_FRAMES * 8 + RAW_STACK_MAX)

#define EVENT_NEW_PROCESS 1 /* sampled a process with no proc_maps */
#define EVENT_MAPS_STALE 2  /* pc outside every known mapping */
#define EVENT_EXEC 3
#define EVENT_EXIT 4

enum pp_stat {
	STAT_SAMPLES,        /* perf events handled */
	STAT_IDLE,           /* idle samples dropped */
	STAT_FILTERED,       /* not a target */
	STAT_COUNTS_FULL,    /* sample lost: counts map full */
	STAT_STACKS_FULL,    /* stack lost: stacks map full */
	STAT_STACK_COLLISION,/* two stacks with one hash (the later is dropped) */
	STAT_EVENTS_LOST,    /* ring buffer full */
	STAT_UNWIND_TRUNCATED,
	STAT_UNWIND_FP_ONLY,
	STAT_UNWIND_READ_ERROR,
	STAT_UNWIND_UNSUPPORTED,
	STAT_KERNEL_STACK_ERROR,
	STAT_PY_NO_THREAD,   /* Python process, no thread state for the thread */
	STAT_PY_TRUNCATED,
	STAT_RAW_TAKEN,       /* user stacks copied for unwinding in user space */
	STAT_RAW_RATE_LIMITED,/* not copied: over its process's raw_stack_rate (unwound in the kernel) */
	STAT_RAW_RING_FULL,   /* not copied: raw_stacks ring full (unwound in the kernel) */
	STAT_OFFCPU_BLOCKS,   /* blocks counted (at least offcpu_min_ns) */
	STAT_OFFCPU_SHORT,    /* blocks shorter than offcpu_min_ns, not counted */
	STAT_OFFCPU_SKIPPED,  /* switches not sampled (1 in offcpu_sample_every kept) */
	STAT_OFFCPU_NO_STORAGE,/* no task storage for the thread: block lost */
	STAT_STACKS_NOMEM,    /* stack lost: no memory for it at that moment (not a full map) */
	STAT_LOCK_WAITS,      /* futex waits counted (at least lock_min_ns) */
	STAT_LOCK_SHORT,      /* futex waits shorter than lock_min_ns, or that did not sleep */
	STAT_LOCK_SKIPPED,    /* futex waits not sampled (1 in lock_sample_every kept) */
	STAT_LOCK_NO_STORAGE, /* no task storage for the thread: wait lost */
	STAT_MAX,
};

#endif
