// SPDX-License-Identifier: GPL-2.0
/* perfpilot's CPU sampler.
 *
 * On every cpu-clock tick: unwind the user stack with .eh_frame-derived
 * tables (frame pointers where a module has none), take the kernel stack,
 * intern both by content hash and count (pid, tid, stacks) in a hash map.
 * Maps come in pairs; user space flips `active_buffer` and drains the idle
 * pair in batches, so draining never races with counting. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "profiler.h"

char LICENSE[] SEC("license") = "GPL";


const volatile bool include_idle = false;
/* perfpilot itself: its cost is reported from rusage instead, and
 * symbolizing its own large binary would dominate its memory. */
const volatile __u32 self_tgid = 0;
const volatile bool filter_tgids = false;
const volatile bool want_kernel_stacks = true;
const volatile bool want_user_stacks = true;
const volatile __u64 new_process_notify_ns = 50000000ULL; /* 50 ms */
const volatile __u64 stale_notify_ns = 1000000000ULL;     /* 1 s */
/* Raw stack copies: each process may have raw_stack_burst copies at once,
 * then raw_stack_rate per second (0: never); raw_stacks_always copies every
 * sample's stack beside its in-kernel unwind (to compare the two
 * unwinders). */
const volatile __u64 raw_stack_rate = 0;
const volatile __u64 raw_stack_burst = 0;
const volatile bool raw_stacks_always = false;

/* Off-CPU: blocks shorter than offcpu_min_ns are not counted; one
 * blocking switch in offcpu_sample_every is recorded (1: all). */
const volatile __u64 offcpu_min_ns = 1000000ULL;
const volatile __u32 offcpu_sample_every = 1;
/* For the wall view: also record time runnable after a preemption, and
 * blocks shorter than offcpu_min_ns (flagged, left out of off-CPU). */
const volatile bool offcpu_wall = false;

/* Flipped by user space between drains. */
volatile __u32 active_buffer = 0;
/* Set by user space to shed load under a CPU budget: records one blocking
 * switch in this many instead of offcpu_sample_every (0: that one). Each
 * block carries the rate it was chosen at, so values stay unbiased when it
 * changes. */
volatile __u32 offcpu_every_now = 0;

/* Never read. The layouts that reach user space only through the events
 * ring buffer or the unwind tables' inner maps have no map type naming
 * them, so these put them in the object's BTF, and so in the skeleton's
 * Rust types, against which src/profiler/layout.rs checks the Rust side
 * at build time. */
const volatile struct pp_event layout_event = {};
const volatile struct pp_unwind_row layout_unwind_row = {};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pp_sample_key);
	__type(value, struct pp_sample_value);
} counts0 SEC(".maps"), counts1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct pp_stack);
} stacks0 SEC(".maps"), stacks1 SEC(".maps");

/* Processes to sample when filter_tgids is set. */
#include "targets.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct pp_proc_maps);
} procs SEC(".maps");

/* One array of rows per object file, created by user space with exactly
 * the rows it needs, so kernel memory follows what is profiled. */
struct pp_unwind_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct pp_unwind_row));
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, MAX_UNWIND_TABLES);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	__array(values, struct pp_unwind_table);
} unwind_tables SEC(".maps");

/* Last time a process was reported to user space, to rate-limit events. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} notified SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* Samples whose stacks user space unwinds (struct pp_raw_stack); apart
 * from events so that a burst of them never costs an exec or exit. Sized
 * by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 2 * 1024 * 1024);
} raw_stacks SEC(".maps");

struct pp_raw_scratch {
	struct pp_raw_stack hdr;
	/* One page of slack: the verifier bounds each read by the room a
	 * whole page would need. */
	__u8 data[RAW_DATA_MAX + 4096];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pp_raw_scratch);
} raw_scratch SEC(".maps");

/* Per-process token buckets for raw copies, in nanosecond-tokens: a
 * process whose tables take long cannot use up the copies of the next. */
struct pp_raw_budget {
	__u64 tokens;
	__u64 last_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct pp_raw_budget);
} raw_budget SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

struct pp_scratch {
	struct pp_stack user;
	struct pp_stack kernel;
	struct pp_stack python;
	struct pp_py_name name;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct pp_py_proc);
} py_procs SEC(".maps");

/* Names of code objects, read once at sample time so they survive the
 * process. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct pp_py_name_key);
	__type(value, struct pp_py_name);
} py_names SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pp_scratch);
} scratch_map SEC(".maps");

static __always_inline void stat_inc(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &which);
	if (v)
		(*v)++;
}

static __always_inline void notify(__u32 kind, __u32 tgid, __u64 min_gap_ns)
{
	__u64 now = bpf_ktime_get_ns();
	__u64 *last = bpf_map_lookup_elem(&notified, &tgid);
	if (last && now - *last < min_gap_ns)
		return;
	bpf_map_update_elem(&notified, &tgid, &now, BPF_ANY);
	struct pp_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		stat_inc(STAT_EVENTS_LOST);
		return;
	}
	e->kind = kind;
	e->tgid = tgid;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void emit(__u32 kind, __u32 tgid)
{
	struct pp_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		stat_inc(STAT_EVENTS_LOST);
		return;
	}
	e->kind = kind;
	e->tgid = tgid;
	bpf_ringbuf_submit(e, 0);
}

struct pp_unwind_state {
	__u64 pc;
	__u64 sp;
	__u64 bp;
	__u32 tgid;
	__u32 flags;
	bool stale_reported;
	/* The tables are not ready for this stack: copy it for user space. */
	bool want_raw;
};

/* Binary search state: find the last entry whose start is <= pc, in
 * [lo, hi). Each search runs under bpf_loop so the verifier checks one step
 * instead of every path through the whole search. */
struct search {
	__u64 pc;
	__u32 lo;
	__u32 hi;
	__u32 tgid;
	__u32 table;
};

static long map_search_step(__u64 index, void *ctx)
{
	struct search *s = ctx;
	if (s->lo >= s->hi)
		return 1;
	struct pp_proc_maps *proc = bpf_map_lookup_elem(&procs, &s->tgid);
	if (!proc)
		return 1;
	__u32 mid = s->lo + (s->hi - s->lo) / 2;
	if (proc->maps[mid & (MAX_EXEC_MAPS - 1)].start <= s->pc)
		s->lo = mid + 1;
	else
		s->hi = mid;
	return 0;
}

static long row_search_step(__u64 index, void *ctx)
{
	struct search *s = ctx;
	if (s->lo >= s->hi)
		return 1;
	__u32 mid = s->lo + (s->hi - s->lo) / 2;
	void *table = bpf_map_lookup_elem(&unwind_tables, &s->table);
	if (!table)
		return 1;
	struct pp_unwind_row *r = bpf_map_lookup_elem(table, &mid);
	if (!r)
		return 1;
	if ((__u64)r->pc <= s->pc)
		s->lo = mid + 1;
	else
		s->hi = mid;
	return 0;
}

/* One frame: record pc, then find the caller's pc, sp and bp. Returns 1 to
 * stop. */
static long unwind_step(__u64 index, void *ctx)
{
	struct pp_unwind_state *st = ctx;
	__u32 zero = 0;
	struct pp_scratch *sc = bpf_map_lookup_elem(&scratch_map, &zero);
	if (!sc)
		return 1;
	__u64 n = sc->user.len;
	if (st->pc == 0)
		return 1;
	if (n >= MAX_FRAMES) {
		st->flags |= SAMPLE_F_TRUNCATED;
		return 1;
	}
	sc->user.ips[n] = st->pc;
	sc->user.len = n + 1;

	/* A return address points after the call; look up the call itself. */
	__u64 pc = index == 0 ? st->pc : st->pc - 1;
	__u64 cfa = 0, ra = 0, bp = st->bp;
	__u8 cfa_kind = CFA_NONE;
	__s32 cfa_offset = 0;
	__u8 rbp_kind = RBP_SAME;
	__s16 rbp_offset = 0;

	struct pp_proc_maps *proc = bpf_map_lookup_elem(&procs, &st->tgid);
	if (!proc)
		return 1;
	struct search s = {};
	s.pc = pc;
	s.tgid = st->tgid;
	s.hi = proc->count;
	if (s.hi > MAX_EXEC_MAPS)
		s.hi = MAX_EXEC_MAPS;
	bpf_loop(MAP_SEARCH_STEPS, map_search_step, &s, 0);
	struct pp_exec_map *m = NULL;
	if (s.lo > 0) {
		m = &proc->maps[(s.lo - 1) & (MAX_EXEC_MAPS - 1)];
		if (pc >= m->end)
			m = NULL;
	}
	if (!m) {
		if (!st->stale_reported) {
			st->stale_reported = true;
			notify(EVENT_MAPS_STALE, st->tgid, stale_notify_ns);
		}
		/* Reached by exact unwinding, this is code mapped since user
		 * space last read the mappings (the libraries the dynamic
		 * loader maps after exec, dlopen). After frame-pointer guesses
		 * it is more likely a bad address: not worth a copy. */
		if (!(st->flags & SAMPLE_F_NO_UNWIND_INFO))
			st->want_raw = true;
	} else if (m->table == TABLE_PENDING) {
		st->flags |= SAMPLE_F_TABLE_PENDING;
		st->want_raw = true;
	} else if (m->row_count > 0 && pc - m->bias <= 0xffffffffULL) {
		s.pc = pc - m->bias;
		s.lo = 0;
		s.hi = m->row_count;
		s.table = m->table;
		bpf_loop(ROW_SEARCH_STEPS, row_search_step, &s, 0);
		void *table = bpf_map_lookup_elem(&unwind_tables, &s.table);
		if (s.lo > 0 && table) {
			__u32 idx = s.lo - 1;
			struct pp_unwind_row *r = bpf_map_lookup_elem(table, &idx);
			if (!r)
				return 1;
			cfa_kind = r->cfa_kind;
			cfa_offset = r->cfa_offset;
			rbp_kind = r->rbp_kind;
			rbp_offset = r->rbp_offset;
		}
	}

	switch (cfa_kind) {
	case CFA_RSP:
		cfa = st->sp + (__s64)cfa_offset;
		break;
	case CFA_RBP:
		cfa = st->bp + (__s64)cfa_offset;
		break;
	case CFA_PLT:
		cfa = st->sp + 8 + (((st->pc & 15) >= (__u64)cfa_offset) ? 8 : 0);
		break;
	case CFA_END:
		return 1;
	case CFA_UNSUPPORTED:
		st->flags |= SAMPLE_F_UNSUPPORTED;
		return 1;
	default:
		/* No table for this code: follow the frame pointer chain. */
		st->flags |= SAMPLE_F_NO_UNWIND_INFO;
		if (st->bp == 0 || st->bp < st->sp)
			return 1;
		cfa = st->bp + 16;
		rbp_kind = RBP_OFFSET;
		rbp_offset = -16;
		break;
	}

	if (bpf_probe_read_user(&ra, sizeof(ra), (void *)(cfa - 8))) {
		st->flags |= SAMPLE_F_READ_ERROR;
		return 1;
	}
	if (rbp_kind == RBP_OFFSET) {
		if (bpf_probe_read_user(&bp, sizeof(bp), (void *)(cfa + (__s64)rbp_offset))) {
			st->flags |= SAMPLE_F_READ_ERROR;
			return 1;
		}
	}
	/* The caller's frame lies above ours; anything else is a corrupt
	 * chain that could loop. */
	if (ra == 0 || cfa <= st->sp)
		return 1;
	st->pc = ra;
	st->sp = cfa;
	st->bp = bp;
	return 0;
}

/* Which scratch stack an interning step works on. */
#define WHICH_USER 0
#define WHICH_KERNEL 1
#define WHICH_PYTHON 2

static __always_inline struct pp_stack *scratch_stack(struct pp_scratch *sc, __u32 which)
{
	if (which == WHICH_USER)
		return &sc->user;
	if (which == WHICH_KERNEL)
		return &sc->kernel;
	return &sc->python;
}

struct stack_walk {
	__u64 h;
	__u32 which;
};

static long hash_step(__u64 i, void *ctx)
{
	struct stack_walk *w = ctx;
	__u32 zero = 0;
	struct pp_scratch *sc = bpf_map_lookup_elem(&scratch_map, &zero);
	if (!sc)
		return 1;
	struct pp_stack *s = scratch_stack(sc, w->which);
	if (i >= s->len || i >= MAX_FRAMES)
		return 1;
	w->h ^= s->ips[i];
	w->h *= 0xff51afd7ed558ccdULL;
	w->h ^= w->h >> 33;
	return 0;
}

struct stack_cmp {
	__u64 hash;
	__u32 which;
	__u32 buffer;
	__u32 differs;
};

static long compare_step(__u64 i, void *ctx)
{
	struct stack_cmp *c = ctx;
	__u32 zero = 0;
	struct pp_scratch *sc = bpf_map_lookup_elem(&scratch_map, &zero);
	const struct pp_stack *old = bpf_map_lookup_elem(c->buffer ? (void *)&stacks1 : (void *)&stacks0, &c->hash);
	if (!sc || !old) {
		return 1;
	}
	struct pp_stack *s = scratch_stack(sc, c->which);
	if (i >= s->len || i >= MAX_FRAMES)
		return 1;
	if (old->ips[i] != s->ips[i]) {
		c->differs = 1;
		return 1;
	}
	return 0;
}

/* Interns scratch stack `which` in the stacks map of `buffer`; returns its
 * hash, or 0 when it could not be stored (counted). A global function, so
 * the verifier checks it once rather than at each of its three calls. */
__noinline __u64 intern_stack(__u32 which, __u32 buffer)
{
	__u32 zero = 0;
	struct pp_scratch *sc = bpf_map_lookup_elem(&scratch_map, &zero);
	if (!sc)
		return 0;
	struct pp_stack *s = scratch_stack(sc, which);
	if (s->len == 0)
		return 0;
	struct stack_walk w = {};
	w.h = 0x9e3779b97f4a7c15ULL ^ s->len;
	w.which = which;
	bpf_loop(MAX_FRAMES, hash_step, &w, 0);
	__u64 h = w.h ? w.h : 1;
	void *stacks = buffer ? (void *)&stacks1 : (void *)&stacks0;
	long err = bpf_map_update_elem(stacks, &h, s, BPF_NOEXIST);
	if (err == 0)
		return h;
	if (err != -17 /* EEXIST */) {
		/* E2BIG: full. Else the element could not be allocated then
		 * (the allocator's per-CPU cache is refilled outside the
		 * program: a CPU's first stacks with interrupts off). */
		stat_inc(err == -7 /* E2BIG */ ? STAT_STACKS_FULL : STAT_STACKS_NOMEM);
		return 0;
	}
	const struct pp_stack *old = bpf_map_lookup_elem(stacks, &h);
	if (!old)
		return h; /* drained meanwhile: the count will find no stack */
	if (old->len != s->len) {
		stat_inc(STAT_STACK_COLLISION);
		return 0;
	}
	struct stack_cmp c = {};
	c.hash = h;
	c.which = which;
	c.buffer = buffer;
	bpf_loop(MAX_FRAMES, compare_step, &c, 0);
	if (c.differs) {
		stat_inc(STAT_STACK_COLLISION);
		return 0;
	}
	return h;
}

/* Interns the scratch stacks into `buffer` for `key`, flagging any lost. */
static __always_inline void intern_scratch(struct pp_sample_key *key, struct pp_scratch *sc,
					   __u32 buffer)
{
	key->user_stack = intern_stack(WHICH_USER, buffer);
	key->kernel_stack = intern_stack(WHICH_KERNEL, buffer);
	key->python_stack = intern_stack(WHICH_PYTHON, buffer);
	if ((sc->user.len && !key->user_stack) || (sc->kernel.len && !key->kernel_stack) ||
	    (sc->python.len && !key->python_stack))
		key->flags |= SAMPLE_F_STACK_LOST;
}

/* Adds `amount` and one event to key's count in `counts`; `comm` names a
 * new record (NULL: the current thread's name). */
static __always_inline void add_count(void *counts, struct pp_sample_key *key, __u64 amount,
				      const char *comm)
{
	struct pp_sample_value *v = bpf_map_lookup_elem(counts, key);
	if (v) {
		__sync_fetch_and_add(&v->count, amount);
		__sync_fetch_and_add(&v->events, 1);
		return;
	}
	struct pp_sample_value nv = {};
	nv.count = amount;
	nv.events = 1;
	if (comm)
		__builtin_memcpy(nv.comm, comm, sizeof(nv.comm));
	else
		bpf_get_current_comm(nv.comm, sizeof(nv.comm));
	long err = bpf_map_update_elem(counts, key, &nv, BPF_NOEXIST);
	if (err == -17 /* EEXIST: another CPU inserted it */) {
		v = bpf_map_lookup_elem(counts, key);
		if (v) {
			__sync_fetch_and_add(&v->count, amount);
			__sync_fetch_and_add(&v->events, 1);
		}
	} else if (err) {
		stat_inc(STAT_COUNTS_FULL);
	}
}

/* ---- Raw stack copies, for user space to unwind ---- */

#define barrier_var(v) asm volatile("" : "+r"(v))

static __always_inline bool raw_allowed(__u32 tgid)
{
	if (raw_stack_rate == 0)
		return false;
	__u64 now = bpf_ktime_get_ns();
	__u64 cap = raw_stack_burst * 1000000000ULL;
	struct pp_raw_budget *b = bpf_map_lookup_elem(&raw_budget, &tgid);
	if (!b) {
		/* A process seen first starts with a full bucket. */
		struct pp_raw_budget nb = {};
		nb.tokens = cap - 1000000000ULL;
		nb.last_ns = now;
		bpf_map_update_elem(&raw_budget, &tgid, &nb, BPF_ANY);
		return true;
	}
	/* Racing CPUs may lose an update: the bound is approximate. */
	__u64 dt = now - b->last_ns;
	b->last_ns = now;
	if (dt > 100000000000ULL) /* 100 s: a full bucket, without overflow */
		dt = 100000000000ULL;
	__u64 tokens = b->tokens + dt * raw_stack_rate;
	if (tokens > cap)
		tokens = cap;
	if (tokens < 1000000000ULL) {
		b->tokens = tokens;
		return false;
	}
	b->tokens = tokens - 1000000000ULL;
	return true;
}

/* 64-bit throughout: clang's 32-bit zero extensions make copies of
 * registers the verifier has bounded on the original only. */
struct raw_copy {
	__u64 src;    /* next user address to read */
	__u64 off;    /* bytes of data[] used */
	__u64 copied; /* bytes of stack copied */
};

/* Copies the stack a page at a time, up to the first unreadable page. */
static long raw_copy_step(__u64 index, void *ctx)
{
	struct raw_copy *c = ctx;
	__u32 zero = 0;
	struct pp_raw_scratch *r = bpf_map_lookup_elem(&raw_scratch, &zero);
	if (!r || c->copied >= RAW_STACK_MAX)
		return 1;
	__u64 len = 4096 - (c->src & 4095);
	__u64 left = RAW_STACK_MAX - c->copied;
	if (len > left)
		len = left;
	__u64 off = c->off;
	barrier_var(len);
	barrier_var(off);
	if (off > RAW_DATA_MAX || len == 0 || len > 4096)
		return 1;
	if (bpf_probe_read_user(&r->data[off], len, (void *)c->src))
		return 1;
	c->src += len;
	c->off = off + len;
	c->copied += len;
	return 0;
}

/* Sends the current sample's registers, kernel and Python stacks (in the
 * scratch stacks) and user stack memory to user space. Returns 1 when
 * sent. `flags` and `user_stack` describe the in-kernel attempt. */
__noinline __u32 copy_raw_stack(__u32 tgid, __u32 tid, __u32 flags, __u64 user_stack)
{
	__u32 zero = 0;
	struct pp_raw_scratch *r = bpf_map_lookup_elem(&raw_scratch, &zero);
	struct pp_scratch *sc = bpf_map_lookup_elem(&scratch_map, &zero);
	if (!r || !sc)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	struct pp_user_regs *regs = (struct pp_user_regs *)bpf_task_pt_regs(task);
	__u64 ip = regs->ip, sp = regs->sp, bp = regs->bp;
	/* Kernel threads' saved user registers are all zero. */
	if (!sp || !ip)
		return 0;

	__u64 nk = sc->kernel.len;
	__u64 np = sc->python.len;
	if (nk > MAX_FRAMES)
		nk = MAX_FRAMES;
	if (np > MAX_FRAMES)
		np = MAX_FRAMES;
	/* MAX_FRAMES is 127: the masks change nothing but show the verifier
	 * the bounds clang's register reuse hides. */
	barrier_var(nk);
	barrier_var(np);
	nk &= 127;
	np &= 127;
	bpf_probe_read_kernel(&r->data[0], nk * 8, sc->kernel.ips);
	bpf_probe_read_kernel(&r->data[nk * 8], np * 8, sc->python.ips);

	struct raw_copy c = {};
	c.src = sp;
	c.off = (nk + np) * 8;
	bpf_loop(RAW_STACK_MAX / 4096 + 1, raw_copy_step, &c, 0);
	if (c.copied == 0)
		return 0;

	r->hdr.tgid = tgid;
	r->hdr.tid = tid;
	r->hdr.ip = ip;
	r->hdr.sp = sp;
	r->hdr.bp = bp;
	r->hdr.user_stack = user_stack;
	r->hdr.flags = flags;
	r->hdr.kernel_len = nk;
	r->hdr.python_len = np;
	r->hdr.stack_len = c.copied;
	r->hdr._pad = 0;
	bpf_get_current_comm(r->hdr.comm, sizeof(r->hdr.comm));
	__u64 size = sizeof(r->hdr) + c.off;
	barrier_var(size);
	if (size > sizeof(*r))
		return 0;
	if (bpf_ringbuf_output(&raw_stacks, r, size, 0)) {
		stat_inc(STAT_RAW_RING_FULL);
		return 0;
	}
	stat_inc(STAT_RAW_TAKEN);
	return 1;
}

/* A copy instead of an in-kernel unwind, within the rate. */
static __always_inline bool take_raw(__u32 tgid, __u32 tid, __u32 flags)
{
	if (raw_stacks_always)
		return false; /* copied after counting, see on_sample */
	if (!raw_allowed(tgid)) {
		if (raw_stack_rate)
			stat_inc(STAT_RAW_RATE_LIMITED);
		return false;
	}
	return copy_raw_stack(tgid, tid, flags, 0);
}

/* ---- CPython frames ---- */

static __always_inline __u64 read_u64(__u64 addr)
{
	__u64 v = 0;
	bpf_probe_read_user(&v, sizeof(v), (void *)addr);
	return v;
}

struct py_thread_search {
	__u64 t;
	__u64 found;
	__u64 tid; /* the thread id as CPython records it */
	__u32 tgid;
};

static long py_thread_step(__u64 index, void *ctx)
{
	struct py_thread_search *s = ctx;
	if (!s->t)
		return 1;
	struct pp_py_proc *py = bpf_map_lookup_elem(&py_procs, &s->tgid);
	if (!py)
		return 1;
	if (read_u64(s->t + py->o.tstate_native_thread_id) == s->tid) {
		s->found = s->t;
		return 1;
	}
	s->t = read_u64(s->t + py->o.tstate_next);
	return 0;
}

/* Copies a str object's text (ASCII or Latin-1 compact strings). */
static __always_inline void read_py_str(char *dst, __u32 len, __u64 str, struct pp_py_proc *py)
{
	dst[0] = 0;
	if (!str)
		return;
	__u32 state = 0;
	bpf_probe_read_user(&state, sizeof(state), (void *)(str + py->o.unicode_state));
	__u32 kind = (state >> 2) & 7;
	bool compact = state & (1 << 5);
	bool ascii = state & (1 << 6);
	if (!compact)
		return;
	if (ascii)
		bpf_probe_read_user_str(dst, len, (void *)(str + py->o.unicode_ascii_data));
	else if (kind == 1)
		bpf_probe_read_user_str(dst, len, (void *)(str + py->o.unicode_compact_data));
}

struct py_walk {
	__u64 frame;
	__u32 tgid;
	__u32 flags;
};

static long py_frame_step(__u64 index, void *ctx)
{
	struct py_walk *w = ctx;
	if (!w->frame)
		return 1;
	__u32 zero = 0;
	struct pp_scratch *sc = bpf_map_lookup_elem(&scratch_map, &zero);
	struct pp_py_proc *py = bpf_map_lookup_elem(&py_procs, &w->tgid);
	if (!sc || !py)
		return 1;
	__u64 n = sc->python.len;
	__u16 pyflags = py->o.flags;
	__u8 is_entry = 1;
	if (pyflags & PY_F_SHIM_FRAMES) {
		/* 3.12+: each C call into the eval loop pushes a shim frame
		 * below the first frame it runs; that frame was entered from C. */
		__u8 owner = 0;
		bpf_probe_read_user(&owner, 1, (void *)(w->frame + py->o.frame_owner));
		if (owner == PY_FRAME_OWNED_BY_CSTACK) {
			w->frame = read_u64(w->frame + py->o.frame_previous);
			if (n - 1 < MAX_FRAMES)
				sc->python.ips[n - 1] |= 1;
			return 0;
		}
		is_entry = 0;
	} else if (!(pyflags & PY_F_ALL_ENTRY)) {
		is_entry = 0;
		bpf_probe_read_user(&is_entry, 1, (void *)(w->frame + py->o.frame_is_entry));
	}
	if (n >= MAX_FRAMES) {
		w->flags |= SAMPLE_F_PY_TRUNCATED;
		return 1;
	}
	__u64 code = read_u64(w->frame + py->o.frame_code);
	w->frame = read_u64(w->frame + py->o.frame_previous);
	if (!code)
		return 0;
	/* A code object's address is reused once it is freed (module code
	 * after import, for one), so the address alone would name a later
	 * function after an earlier one. Its name and file objects tell the
	 * two apart: a hash of their addresses goes in the pointer's unused
	 * top 16 bits, and the tagged value is the key everywhere. */
	__u64 qualname = read_u64(code + py->o.code_qualname);
	__u64 filename = read_u64(code + py->o.code_filename);
	__u64 mix = (qualname ^ (filename << 7)) * 0x9E3779B97F4A7C15ULL;
	__u64 tagged = (code & 0x0000FFFFFFFFFFFFULL) | (mix & 0xFFFF000000000000ULL);
	sc->python.ips[n] = tagged | (is_entry ? 1 : 0);
	sc->python.len = n + 1;

	struct pp_py_name_key k = {.tgid = w->tgid, .code = tagged};
	if (bpf_map_lookup_elem(&py_names, &k))
		return 0;
	struct pp_py_name *name = &sc->name;
	read_py_str(name->qualname, PY_NAME_LEN, qualname, py);
	read_py_str(name->filename, PY_FILE_LEN, filename, py);
	name->firstlineno = 0;
	bpf_probe_read_user(&name->firstlineno, 4, (void *)(code + py->o.code_firstlineno));
	bpf_map_update_elem(&py_names, &k, name, BPF_ANY);
	return 0;
}

/* Walks the Python frames of the current thread into sc->python. */
__noinline __u32 python_stack(__u32 tgid, __u32 tid)
{
	struct pp_py_proc *py = bpf_map_lookup_elem(&py_procs, &tgid);
	if (!py)
		return 0;
	__u16 pyflags = py->o.flags;
	__u64 want = tid;
	if (pyflags & PY_F_PTHREAD_ID) {
		/* pthread_self() is the thread's TCB, which %fs points at. The
		 * offset comes from user space: a CO-RE read would make libbpf
		 * load the kernel's BTF for every recording. */
		want = 0;
		if (py->task_fsbase)
			bpf_probe_read_kernel(&want, sizeof(want),
					      (void *)(bpf_get_current_task() + py->task_fsbase));
	} else if (py->pidns_ino) {
		struct pp_pidns_info ns = {};
		if (bpf_get_ns_current_pid_tgid(py->pidns_dev, py->pidns_ino, (void *)&ns, sizeof(ns)) == 0)
			want = ns.pid;
	}
	/* The thread holding the GIL is the usual answer; else search. */
	__u64 tstate = 0;
	if (!(pyflags & PY_F_NO_TSTATE_CURRENT))
		tstate = read_u64(py->runtime + py->o.runtime_tstate_current);
	if (!tstate || read_u64(tstate + py->o.tstate_native_thread_id) != want) {
		__u64 interp = read_u64(py->runtime + py->o.runtime_interp_head);
		struct py_thread_search s = {};
		s.t = interp ? read_u64(interp + py->o.interp_threads_head) : 0;
		s.tid = want;
		s.tgid = tgid;
		bpf_loop(64, py_thread_step, &s, 0);
		tstate = s.found;
	}
	if (!tstate) {
		stat_inc(STAT_PY_NO_THREAD);
		return SAMPLE_F_PY_NO_THREAD;
	}
	struct py_walk w = {};
	if (pyflags & PY_F_FRAME_IN_TSTATE) {
		w.frame = read_u64(tstate + py->o.tstate_cframe);
	} else {
		__u64 cframe = read_u64(tstate + py->o.tstate_cframe);
		w.frame = cframe ? read_u64(cframe + py->o.cframe_current_frame) : 0;
	}
	w.tgid = tgid;
	/* Shim frames take steps too: at most one per real frame. */
	bpf_loop(2 * MAX_FRAMES + 2, py_frame_step, &w, 0);
	if (w.flags & SAMPLE_F_PY_TRUNCATED)
		stat_inc(STAT_PY_TRUNCATED);
	return w.flags;
}

/* ---- User stacks, shared by every program that captures one ---- */

/* The current thread's user stack into sc->user, unwound with its
 * process's tables from the user registers saved at kernel entry, and
 * its Python frames into sc->python. Returns SAMPLE_F_* flags; *want_raw
 * is set when a frame's table is not loaded yet (a copy would do better). */
static __always_inline __u32 unwind_user_regs(struct pp_user_regs *regs,
					      struct pp_proc_maps *proc, __u32 tgid,
					      __u32 tid, bool *want_raw)
{
	struct pp_unwind_state st = {};
	st.pc = regs->ip;
	st.sp = regs->sp;
	st.bp = regs->bp;
	st.tgid = tgid;
	bpf_loop(MAX_FRAMES + 1, unwind_step, &st, 0);
	if (st.flags & SAMPLE_F_TRUNCATED)
		stat_inc(STAT_UNWIND_TRUNCATED);
	if (st.flags & SAMPLE_F_READ_ERROR)
		stat_inc(STAT_UNWIND_READ_ERROR);
	if (st.flags & SAMPLE_F_UNSUPPORTED)
		stat_inc(STAT_UNWIND_UNSUPPORTED);
	__u32 flags = st.flags;
	if (proc->flags & PROC_F_PYTHON)
		flags |= python_stack(tgid, tid);
	*want_raw = st.want_raw;
	return flags;
}

/* The same from a task's user registers. */
static __always_inline __u32 unwind_user_stack(struct task_struct *task,
					       struct pp_proc_maps *proc, __u32 tgid,
					       __u32 tid, bool *want_raw)
{
	/* pt_regs has the ABI-fixed layout of pp_user_regs on x86-64;
	 * reading it without CO-RE spares loading the kernel's BTF. */
	return unwind_user_regs((struct pp_user_regs *)bpf_task_pt_regs(task), proc, tgid, tid,
				want_raw);
}

/* A process not read yet: its frame-pointer stack into sc->user. */
static __always_inline __u32 fp_user_stack(void *ctx, struct pp_scratch *sc)
{
	stat_inc(STAT_UNWIND_FP_ONLY);
	long n = bpf_get_stack(ctx, sc->user.ips, sizeof(sc->user.ips), BPF_F_USER_STACK);
	if (n > 0)
		sc->user.len = n / 8;
	return SAMPLE_F_FP_ONLY;
}

SEC("perf_event")
int on_sample(struct bpf_perf_event_data *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	__u32 tid = (__u32)id;
	__u32 zero = 0;

	stat_inc(STAT_SAMPLES);
	if (tid == 0 && !include_idle) {
		stat_inc(STAT_IDLE);
		return 0;
	}
	if ((self_tgid && tgid == self_tgid) ||
	    (filter_tgids && !bpf_map_lookup_elem(&targets, &tgid))) {
		stat_inc(STAT_FILTERED);
		return 0;
	}

	struct pp_scratch *sc = bpf_map_lookup_elem(&scratch_map, &zero);
	if (!sc)
		return 0;
	sc->user.len = 0;
	sc->kernel.len = 0;
	sc->python.len = 0;

	struct pp_sample_key key = {};
	key.tgid = tgid;
	key.tid = tid;

	struct task_struct *task = bpf_get_current_task_btf();
	/* Kernel addresses have the top bit set. (The context starts with the
	 * interrupted pt_regs; read through our own layout, not CO-RE.) */
	bool user_mode = (((struct pp_user_regs *)ctx)->ip >> 63) == 0;

	if (want_kernel_stacks && !user_mode) {
		long n = bpf_get_stack(ctx, sc->kernel.ips, sizeof(sc->kernel.ips), 0);
		if (n < 0)
			stat_inc(STAT_KERNEL_STACK_ERROR);
		else
			sc->kernel.len = n / 8;
	}

	struct pp_proc_maps *proc = NULL;
	if (want_user_stacks && tgid != 0)
		proc = bpf_map_lookup_elem(&procs, &tgid);
	/* Kernel threads are registered with PROC_F_KTHREAD: no user stack. */
	if (want_user_stacks && tgid != 0 && !(proc && (proc->flags & PROC_F_KTHREAD))) {
		if (!proc) {
			/* Unknown yet: the stack is copied for user space to
			 * unwind once it has read the process (else frame
			 * pointers now). */
			notify(EVENT_NEW_PROCESS, tgid, new_process_notify_ns);
			if (take_raw(tgid, tid, SAMPLE_F_FP_ONLY))
				return 0;
			key.flags |= fp_user_stack(ctx, sc);
		} else {
			bool want_raw = false;
			key.flags |= unwind_user_stack(task, proc, tgid, tid, &want_raw);
			if (want_raw && take_raw(tgid, tid, key.flags))
				return 0;
		}
	}

	__u32 buffer = active_buffer & 1;
	void *counts = buffer ? (void *)&counts1 : (void *)&counts0;

	intern_scratch(&key, sc, buffer);

	if (raw_stacks_always && want_user_stacks && tgid != 0 && proc &&
	    !(proc->flags & PROC_F_KTHREAD))
		copy_raw_stack(tgid, tid, key.flags, key.user_stack);

	add_count(counts, &key, 1, NULL);
	return 0;
}

/* ---- Off-CPU time ---- */

/* Per thread, the block in progress (created at a thread's first recorded
 * block, freed with the thread). Not created at all unless off-CPU
 * profiling is on. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct pp_offcpu);
} offcpu_tasks SEC(".maps");

#define OFFCPU_KERNEL_SKIP 2

/* Copies the used part of a stack (len and its frames). */
static __always_inline void copy_stack(struct pp_stack *dst, const struct pp_stack *src)
{
	__u64 n = src->len;
	if (n > MAX_FRAMES)
		n = MAX_FRAMES;
	barrier_var(n);
	n &= 127;
	bpf_probe_read_kernel(dst, 8 + n * 8, src);
}

/* A recorded block ended after `delta` ns: its stacks are interned into
 * the active buffer and the time added to their count. */
static __always_inline void offcpu_count(struct pp_offcpu *b, __u64 delta, __u32 extra)
{
	__u32 zero = 0;
	struct pp_scratch *sc = bpf_map_lookup_elem(&scratch_map, &zero);
	if (!sc)
		return;
	copy_stack(&sc->user, &b->user);
	copy_stack(&sc->kernel, &b->kernel);
	copy_stack(&sc->python, &b->python);
	/* One recorded block in `every` stands for them all. */
	if (b->every > 1)
		delta *= b->every;

	__u32 buffer = active_buffer & 1;
	void *counts = buffer ? (void *)&counts1 : (void *)&counts0;
	struct pp_sample_key key = {};
	key.tgid = b->tgid;
	key.tid = b->tid;
	key.flags = b->flags | SAMPLE_F_OFFCPU | extra;
	intern_scratch(&key, sc, buffer);

	stat_inc(STAT_OFFCPU_BLOCKS);
	add_count(counts, &key, delta, b->comm);
}

/* The stacks of the current thread, which is blocking, into the scratch
 * stacks; returns SAMPLE_F_* flags. Unlike a CPU sample, a thread not
 * known yet gets its frame-pointer stack (a copy would be unwound as a
 * CPU sample) and asks to be read. */
static __always_inline __u32 offcpu_capture(void *ctx, struct task_struct *task, __u32 tgid,
					    __u32 tid, struct pp_scratch *sc)
{
	__u32 flags = 0;
	sc->user.len = 0;
	sc->kernel.len = 0;
	sc->python.len = 0;
	if (want_kernel_stacks) {
		/* The two leaf frames are this program and the tracepoint's
		 * runner (bpf_trace_run4): the stack starts at __schedule. */
		long n = bpf_get_stack(ctx, sc->kernel.ips, sizeof(sc->kernel.ips),
				       OFFCPU_KERNEL_SKIP);
		if (n < 0)
			stat_inc(STAT_KERNEL_STACK_ERROR);
		else
			sc->kernel.len = n / 8;
	}
	if (!want_user_stacks || tgid == 0)
		return flags;
	struct pp_proc_maps *proc = bpf_map_lookup_elem(&procs, &tgid);
	if (proc && (proc->flags & PROC_F_KTHREAD))
		return flags;
	if (!proc) {
		notify(EVENT_NEW_PROCESS, tgid, new_process_notify_ns);
		return flags | fp_user_stack(ctx, sc);
	}
	bool want_raw = false;
	flags |= unwind_user_stack(task, proc, tgid, tid, &want_raw);
	return flags;
}

/* TASK_DEAD: the thread is exiting and never runs again. */
#define PP_TASK_DEAD 0x80

/* Every context switch: `next`'s recorded block ends; `prev`, switched out
 * while not runnable (a voluntary sleep, not a preemption), starts one;
 * for the wall view a preempted `prev` does too. It runs in `prev`, so its
 * user stack and memory are the current ones. Loaded only for the off-CPU
 * profile or the wall view (it needs the kernel's BTF). */
SEC("tp_btf/sched_switch")
int BPF_PROG(on_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	__u64 now = bpf_ktime_get_ns();
	struct pp_offcpu *in = bpf_task_storage_get(&offcpu_tasks, next, 0, 0);
	if (in && in->start_ns) {
		__u64 delta = now - in->start_ns;
		in->start_ns = 0;
		if (delta >= offcpu_min_ns || (in->flags & SAMPLE_F_RUNNABLE)) {
			offcpu_count(in, delta, 0);
		} else {
			stat_inc(STAT_OFFCPU_SHORT);
			if (offcpu_wall)
				offcpu_count(in, delta, SAMPLE_F_SHORT);
		}
	}

	if (prev_state & PP_TASK_DEAD)
		return 0;
	bool blocked = !preempt && prev_state != 0;
	if (!blocked && !offcpu_wall)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	__u32 tid = (__u32)id;
	if (tid == 0 || (self_tgid && tgid == self_tgid) ||
	    (filter_tgids && !bpf_map_lookup_elem(&targets, &tgid)))
		return 0;
	__u32 every = offcpu_every_now ? offcpu_every_now : offcpu_sample_every;
	if (every > 1 && bpf_get_prandom_u32() % every) {
		stat_inc(STAT_OFFCPU_SKIPPED);
		return 0;
	}
	struct pp_offcpu *out =
		bpf_task_storage_get(&offcpu_tasks, prev, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!out) {
		stat_inc(STAT_OFFCPU_NO_STORAGE);
		return 0;
	}
	__u32 zero = 0;
	struct pp_scratch *sc = bpf_map_lookup_elem(&scratch_map, &zero);
	if (!sc)
		return 0;
	out->flags = offcpu_capture(ctx, prev, tgid, tid, sc) | (blocked ? 0 : SAMPLE_F_RUNNABLE);
	out->tgid = tgid;
	out->tid = tid;
	out->every = every;
	bpf_get_current_comm(out->comm, sizeof(out->comm));
	copy_stack(&out->user, &sc->user);
	copy_stack(&out->kernel, &sc->kernel);
	copy_stack(&out->python, &sc->python);
	/* The block starts after the capture, which prev paid on CPU. */
	out->start_ns = bpf_ktime_get_ns();
	return 0;
}

static __always_inline bool is_target(__u32 tgid)
{
	return !filter_tgids || bpf_map_lookup_elem(&targets, &tgid);
}

/* Exec and exit run in the task concerned, so the current pid is enough:
 * raw tracepoints, no BTF. */
SEC("raw_tp/sched_process_exec")
int on_exec(void *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!is_target(tgid))
		return 0;
	/* The old image's tables no longer apply; the new one starts with a
	 * full bucket of copies. */
	bpf_map_delete_elem(&procs, &tgid);
	bpf_map_delete_elem(&raw_budget, &tgid);
	emit(EVENT_EXEC, tgid);
	return 0;
}

SEC("raw_tp/sched_process_exit")
int on_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	if ((__u32)id != tgid)
		return 0;
	if (!bpf_map_lookup_elem(&procs, &tgid) && !(filter_tgids && is_target(tgid)))
		return 0;
	emit(EVENT_EXIT, tgid);
	return 0;
}

/* Allocation profiles (uprobes on the allocator). */
#include "alloc.bpf.h"

/* Lock contention: futex waits (its own file, sharing all of the above). */
#include "lock.bpf.h"
