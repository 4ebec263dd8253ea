/* SPDX-License-Identifier: GPL-2.0 */
/* Allocation profiles: uprobes on the allocator's entry points.
 *
 * Byte-based Poisson sampling: each CPU counts down bytes allocated from
 * an exponential draw of mean alloc_sample_bytes, so an allocation of s
 * bytes is sampled with probability 1 - exp(-s/mean) whatever came
 * before it (the exponential is memoryless, so a countdown shared by the
 * threads of a CPU samples as fairly as one per thread, for one array
 * lookup). Most calls do only that subtraction. A sampled allocation's
 * stack is counted in the shared counts maps with the bytes and objects
 * it stands for, and its address kept in alloc_live; a free looks its
 * address up there (one hash lookup) and, for a sampled one, counts the
 * same weights back as a free record. In-use is what user space sums.
 *
 * Included at the end of profiler.bpf.c: shares its unwinder, stacks and
 * counts maps. */

/* An allocation record: count is bytes (an estimate: each sampled
 * allocation counts for what it represents). With ALLOC_OBJECTS the count
 * is objects in 1/1024ths; with ALLOC_FREE it is what frees of sampled
 * allocations gave back; with ALLOC_UNTRACKED the allocation's address
 * could not be kept (alloc_live full): it counts in the allocation
 * totals and never in use. */
#define SAMPLE_F_ALLOC (1 << 12)
#define SAMPLE_F_ALLOC_OBJECTS (1 << 16)
#define SAMPLE_F_ALLOC_FREE (1 << 17)
#define SAMPLE_F_ALLOC_UNTRACKED (1 << 18)

#define ALLOC_LOG_STEPS 1024 /* log2(1 + k/1024), 2^24-scaled */
#define ALLOC_WEIGHT_STEPS 1024 /* g(x) tabulated for x in [0, 16), 64 per unit */
#define ALLOC_OBJECT_ONE 1024

/* Mean bytes between samples. */
const volatile __u64 alloc_sample_bytes = 524288;
/* log2(1 + k/1024) * 2^24, k = 0..1024: the countdown's exponential
 * draws are -ln U of a 32-bit U, its logarithm from this table, linearly
 * interpolated (a draw's resolution is a 2^-24th of the mean, so the
 * smallest allocations keep their sampling probability). */
const volatile __u32 alloc_log2_table[ALLOC_LOG_STEPS + 1] = {};
/* g(x) = x / (1 - exp(-x)) * 2^16 at x = i/64: a sampled allocation of
 * s bytes stands for mean * g(s/mean) bytes (s / P(sampled)). */
const volatile __u32 alloc_weight_table[ALLOC_WEIGHT_STEPS + 1] = {};

enum pp_alloc_stat {
	ALLOC_STAT_CALLS,     /* allocation entry points hit */
	ALLOC_STAT_FREES,     /* free (and realloc) hits */
	ALLOC_STAT_SAMPLED,   /* allocations sampled */
	ALLOC_STAT_RECORDED,  /* sampled and counted with their stack */
	ALLOC_STAT_LOST_RETURN, /* sampled, but the return was not seen on that CPU */
	ALLOC_STAT_LIVE_FULL, /* sampled, not kept in use: alloc_live full */
	ALLOC_STAT_FREED,     /* frees of sampled allocations */
	ALLOC_STAT_FAILED,    /* sampled call that returned no memory */
	ALLOC_STAT_MAX,
};

struct pp_alloc_cpu {
	__s64 left;          /* bytes until the next sample */
	__u32 init;
	__u32 pending_tid;   /* a sampled call in progress on this CPU */
	__u64 pending_size;
	__u64 pending_out;   /* posix_memalign's result pointer */
	__u64 stat[ALLOC_STAT_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pp_alloc_cpu);
} alloc_cpu SEC(".maps");

struct pp_alloc_addr {
	__u32 tgid;
	__u32 _pad;
	__u64 addr;
};

struct pp_alloc_live {
	struct pp_sample_key key; /* the allocation's record */
	__u64 bytes;
	__u64 objects;            /* in 1/ALLOC_OBJECT_ONE */
};

/* Sampled allocations not freed yet. Sized by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pp_alloc_addr);
	__type(value, struct pp_alloc_live);
} alloc_live SEC(".maps");

/* ln 2 * 2^24 */
#define ALLOC_LN2 11629080ULL

/* Bytes until the next sample: exponential, mean alloc_sample_bytes. */
static __always_inline __u64 alloc_draw(void)
{
	__u64 u = bpf_get_prandom_u32() | 1;
	__u64 e = 0, v = u;
	if (v >> 16) {
		v >>= 16;
		e += 16;
	}
	if (v >> 8) {
		v >>= 8;
		e += 8;
	}
	if (v >> 4) {
		v >>= 4;
		e += 4;
	}
	if (v >> 2) {
		v >>= 2;
		e += 2;
	}
	if (v >> 1)
		e += 1;
	/* u = 2^e * (1 + k/1024 + rest): the table and an interpolation. */
	__u64 m = u << (31 - e);
	__u64 k = (m >> 21) & (ALLOC_LOG_STEPS - 1);
	__u64 rest = (m >> 5) & 0xffff;
	__u64 a = alloc_log2_table[k];
	__u64 b = alloc_log2_table[k + 1];
	__u64 lg = (e << 24) + a + (((b - a) * rest) >> 16);
	/* -ln(u / 2^32) = (32 - log2 u) * ln 2, 2^24-scaled. */
	__u64 x = (((32ULL << 24) - lg) * ALLOC_LN2) >> 24;
	return (alloc_sample_bytes * x) >> 24;
}

/* Bytes a sampled allocation of `size` stands for. */
static __always_inline __u64 alloc_weight(__u64 size)
{
	__u64 mean = alloc_sample_bytes;
	if (size >= 16 * mean)
		return size; /* sampled with probability 1 - e^-16 */
	__u64 x = (size << 22) / mean; /* x * 64 * 2^16 */
	__u64 i = x >> 16;
	__u64 f = x & 0xffff;
	if (i >= ALLOC_WEIGHT_STEPS)
		return size;
	/* The mask shows the verifier the bound clang's copies hide. */
	barrier_var(i);
	i &= ALLOC_WEIGHT_STEPS - 1;
	__u64 a = alloc_weight_table[i];
	__u64 b = alloc_weight_table[i + 1];
	__u64 g = a + (((b - a) * f) >> 16);
	return (mean * g) >> 16;
}

/* An allocation of `size` starts: counts it down; when sampled, marks the
 * CPU so the return records it. */
static __always_inline void alloc_enter(__u64 size, __u64 out)
{
	__u32 zero = 0;
	struct pp_alloc_cpu *c = bpf_map_lookup_elem(&alloc_cpu, &zero);
	if (!c)
		return;
	c->stat[ALLOC_STAT_CALLS]++;
	if (!c->init) {
		c->init = 1;
		c->left = alloc_draw();
	}
	c->left -= (__s64)size;
	if (c->left >= 0)
		return;
	c->left = alloc_draw();
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	if ((self_tgid && tgid == self_tgid) || !is_target(tgid) || size == 0)
		return;
	c->stat[ALLOC_STAT_SAMPLED]++;
	if (c->pending_tid)
		c->stat[ALLOC_STAT_LOST_RETURN]++;
	c->pending_tid = (__u32)id;
	c->pending_size = size;
	c->pending_out = out;
}

static __always_inline void alloc_stat(__u32 which)
{
	__u32 zero = 0;
	struct pp_alloc_cpu *c = bpf_map_lookup_elem(&alloc_cpu, &zero);
	if (c && which < ALLOC_STAT_MAX)
		c->stat[which]++;
}

static __always_inline void alloc_count(struct pp_sample_key *key, __u64 n)
{
	__u32 buffer = active_buffer & 1;
	add_count(buffer ? (void *)&counts1 : (void *)&counts0, key, n, NULL);
}

/* The user stack of the current thread at `regs` (in a uretprobe, the
 * caller of the allocator, just returned to) into the scratch stacks;
 * returns SAMPLE_F_* flags. */
static __always_inline __u32 alloc_capture(struct pt_regs *ctx, __u32 tgid, __u32 tid,
					   struct pp_scratch *sc)
{
	__u32 flags = 0;
	sc->user.len = 0;
	sc->kernel.len = 0;
	sc->python.len = 0;
	struct pp_proc_maps *proc = bpf_map_lookup_elem(&procs, &tgid);
	if (!proc) {
		notify(EVENT_NEW_PROCESS, tgid, new_process_notify_ns);
		return fp_user_stack(ctx, sc);
	}
	/* Allocation records take no raw-stack copy. */
	bool want_raw = false;
	flags |= unwind_user_regs((struct pp_user_regs *)ctx, proc, tgid, tid, &want_raw);
	return flags;
}

/* A sampled allocation returned `addr`: its stack and weights are
 * counted and its address kept for its free. */
static __always_inline void alloc_record(struct pt_regs *ctx, __u64 addr, __u64 size)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	__u32 tid = (__u32)id;
	__u32 zero = 0;
	struct pp_scratch *sc = bpf_map_lookup_elem(&scratch_map, &zero);
	if (!sc)
		return;
	struct pp_sample_key key = {};
	key.tgid = tgid;
	key.tid = tid;
	key.flags = alloc_capture(ctx, tgid, tid, sc) | SAMPLE_F_ALLOC;
	intern_scratch(&key, sc, active_buffer & 1);

	struct pp_alloc_live live = {};
	live.key = key;
	live.bytes = alloc_weight(size);
	live.objects = live.bytes * ALLOC_OBJECT_ONE / size;
	struct pp_alloc_addr a = {.tgid = tgid, .addr = addr};
	/* An address sampled twice without a free seen (a free missed, as
	 * with probes detached) drops the older: in use stays an
	 * underestimate, never an invented leak. */
	if (bpf_map_update_elem(&alloc_live, &a, &live, BPF_ANY)) {
		alloc_stat(ALLOC_STAT_LIVE_FULL);
		key.flags |= SAMPLE_F_ALLOC_UNTRACKED;
	}
	alloc_count(&key, live.bytes);
	key.flags |= SAMPLE_F_ALLOC_OBJECTS;
	alloc_count(&key, live.objects);
	alloc_stat(ALLOC_STAT_RECORDED);
}

static __always_inline void alloc_free(__u64 addr)
{
	if (!addr)
		return;
	struct pp_alloc_addr a = {.tgid = bpf_get_current_pid_tgid() >> 32, .addr = addr};
	struct pp_alloc_live *live = bpf_map_lookup_elem(&alloc_live, &a);
	if (!live)
		return;
	struct pp_sample_key key = live->key;
	__u64 bytes = live->bytes, objects = live->objects;
	if (bpf_map_delete_elem(&alloc_live, &a))
		return; /* another thread freed it first (a double free) */
	key.flags |= SAMPLE_F_ALLOC_FREE;
	alloc_count(&key, bytes);
	key.flags |= SAMPLE_F_ALLOC_OBJECTS;
	alloc_count(&key, objects);
	alloc_stat(ALLOC_STAT_FREED);
}

/* x86-64 SysV: arguments in rdi, rsi, rdx; the result in rax. */
#define ALLOC_ARG1(ctx) (((struct pp_user_regs *)(ctx))->di)
#define ALLOC_ARG2(ctx) (((struct pp_user_regs *)(ctx))->si)
#define ALLOC_ARG3(ctx) (((struct pp_user_regs *)(ctx))->dx)
#define ALLOC_RET(ctx) (((struct pp_user_regs *)(ctx))->ax)

/* malloc, valloc, pvalloc */
SEC("uprobe")
int alloc_malloc(struct pt_regs *ctx)
{
	alloc_enter(ALLOC_ARG1(ctx), 0);
	return 0;
}

SEC("uprobe")
int alloc_calloc(struct pt_regs *ctx)
{
	__u64 n = ALLOC_ARG1(ctx), size = ALLOC_ARG2(ctx);
	/* Factors under 2^32 cannot overflow; larger ones (no real calloc)
	 * are left out rather than checked with a 128-bit division. */
	if ((n | size) >> 32)
		return 0;
	alloc_enter(n * size, 0);
	return 0;
}

/* The attach cookie of the probes on glibc: some of its entry points
 * call its own malloc, whose probe counts them (other allocators are
 * probed without it, and count every entry point). */
#define ALLOC_COOKIE_GLIBC 1

/* realloc(p, size): p freed, size allocated (at the same address or not). */
SEC("uprobe")
int alloc_realloc(struct pt_regs *ctx)
{
	alloc_stat(ALLOC_STAT_FREES);
	__u64 old = ALLOC_ARG1(ctx);
	alloc_free(old);
	/* glibc's realloc(NULL, n) is its malloc. */
	if (old || bpf_get_attach_cookie(ctx) != ALLOC_COOKIE_GLIBC)
		alloc_enter(ALLOC_ARG2(ctx), 0);
	return 0;
}

/* glibc serves alignments up to its own (16 on x86-64) with its malloc. */
#define ALLOC_MALLOC_ALIGNMENT 16

static __always_inline bool alloc_via_malloc(void *ctx, __u64 alignment)
{
	return bpf_get_attach_cookie(ctx) == ALLOC_COOKIE_GLIBC &&
	       alignment <= ALLOC_MALLOC_ALIGNMENT;
}

/* aligned_alloc, memalign (alignment, size) */
SEC("uprobe")
int alloc_aligned(struct pt_regs *ctx)
{
	if (!alloc_via_malloc(ctx, ALLOC_ARG1(ctx)))
		alloc_enter(ALLOC_ARG2(ctx), 0);
	return 0;
}

/* posix_memalign(&p, alignment, size): the address is written to p. */
SEC("uprobe")
int alloc_posix_memalign(struct pt_regs *ctx)
{
	__u64 out = ALLOC_ARG1(ctx);
	if (out && !alloc_via_malloc(ctx, ALLOC_ARG2(ctx)))
		alloc_enter(ALLOC_ARG3(ctx), out);
	return 0;
}

/* The return of every allocation entry point. */
SEC("uretprobe")
int alloc_return(struct pt_regs *ctx)
{
	__u32 zero = 0;
	struct pp_alloc_cpu *c = bpf_map_lookup_elem(&alloc_cpu, &zero);
	if (!c || !c->pending_tid)
		return 0;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	if (c->pending_tid != tid)
		return 0;
	__u64 size = c->pending_size, out = c->pending_out;
	c->pending_tid = 0;
	__u64 addr = ALLOC_RET(ctx);
	if (out) {
		/* posix_memalign returns 0 on success. */
		if (addr)
			addr = 0;
		else if (bpf_probe_read_user(&addr, sizeof(addr), (void *)out))
			addr = 0;
	}
	if (!addr) {
		c->stat[ALLOC_STAT_FAILED]++;
		return 0;
	}
	alloc_record(ctx, addr, size);
	return 0;
}

SEC("uprobe")
int alloc_free_probe(struct pt_regs *ctx)
{
	alloc_stat(ALLOC_STAT_FREES);
	alloc_free(ALLOC_ARG1(ctx));
	return 0;
}
