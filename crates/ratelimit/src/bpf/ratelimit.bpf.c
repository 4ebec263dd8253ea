// SPDX-License-Identifier: GPL-2.0
/* A token bucket on a cgroup's egress. Attached to a cgroup v2 directory
 * as cgroup_skb/egress, it sees every packet the cgroup's sockets send,
 * on any interface, which tc cannot tell apart on a cgroup v2 host. One
 * loaded copy per limited cgroup: its rate and burst are read-only data
 * fixed at load time, its bucket the only map entry.
 *
 * Over the rate, the bucket may run into debt of up to one burst: such
 * packets pass with congestion notification (return value 3), which makes
 * a TCP sender shrink its window as for a loss, without the loss. Beyond
 * that debt packets are dropped, still with the notification (2). So TCP
 * flows settle near the rate instead of stalling on retransmissions of
 * 64 KiB GSO packets, and other senders are still held to it by drops. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define NSEC_PER_SEC 1000000000ULL

/* Set at load time by ratelimit.rs, which checks that the rate is 1 to
 * 10^13 bytes/s and the burst 32 KiB to 2^63 - 1 bytes. */
const volatile __u64 rate_bytes_per_s = 0;
const volatile __u64 burst_bytes = 0;
/* ceil(burst * 10^9 / rate), saturated at 2^64 - 1: the nanoseconds that
 * earn a whole burst, and the longest gap the exact refill below is asked
 * to price (which keeps its products within 64 bits). */
const volatile __u64 full_refill_ns = 0;

struct pp_bucket {
	struct bpf_spin_lock lock;
	/* Bytes; negative while in debt. */
	__s64 tokens;
	__u64 last_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pp_bucket);
} buckets SEC(".maps");

/* Packets passed and dropped, and their bytes, for whoever inspects the
 * limit (bpftool map dump). */
struct pp_limit_counts {
	__u64 passed_packets;
	__u64 passed_bytes;
	/* Passed in debt, with congestion notification. */
	__u64 marked_packets;
	__u64 dropped_packets;
	__u64 dropped_bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pp_limit_counts);
} counts SEC(".maps");

/* The whole bytes `ns` nanoseconds earn at the rate, floor(ns * rate /
 * 10^9), for ns below full_refill_ns (so below burst bytes). The product
 * is taken in pieces, each within 64 bits for rates up to 10^13 bytes/s:
 * whole seconds, then milliseconds, then the rest. *left_ns is the part
 * of `ns` whose earnings, under a byte, are not in the result, rounded
 * down: the caller keeps it for the next packet. */
static __always_inline __u64 earned(__u64 ns, __u64 *left_ns)
{
	__u64 rate = rate_bytes_per_s;
	__u64 secs = ns / NSEC_PER_SEC, sub_s = ns % NSEC_PER_SEC;
	__u64 ms = sub_s / 1000000, sub_ms = sub_s % 1000000;
	/* sub_s * rate = ms_bytes * 10^6 + sub_ms * rate, and
	 * ms_bytes * 10^6 = (ms_bytes / 1000) * 10^9 + (ms_bytes % 1000) * 10^6. */
	__u64 ms_bytes = ms * rate; /* < 10^3 * 10^13 */
	/* < 10^9 + 10^6 * 10^13 < 2^64 */
	__u64 nano_bytes = (ms_bytes % 1000) * 1000000 + sub_ms * rate;

	*left_ns = (nano_bytes % NSEC_PER_SEC) / rate;
	return secs * rate + ms_bytes / 1000 + nano_bytes / NSEC_PER_SEC;
}

SEC("cgroup_skb/egress")
int limit_egress(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct pp_bucket *b = bpf_map_lookup_elem(&buckets, &zero);
	struct pp_limit_counts *c = bpf_map_lookup_elem(&counts, &zero);
	if (!b || !c)
		return 1;
	/* Read before the lock (no helper may be called under it), so
	 * another CPU may have stored a later last_ns by the time we hold it. */
	__u64 now = bpf_ktime_get_ns();
	__s64 len = skb->len;
	__s64 burst = burst_bytes;
	int verdict;

	bpf_spin_lock(&b->lock);
	__s64 tokens = b->tokens;
	__u64 last = b->last_ns;
	/* Signed: a last_ns later than our `now` is no time at all. */
	__s64 elapsed = (__s64)(now - last);
	if (last == 0) {
		/* The first packet finds the bucket full. */
		tokens = burst;
		last = now;
	} else if (elapsed > 0) {
		__u64 gap = elapsed;
		/* Out of debt first: a whole burst's time pays a whole burst. */
		if (gap >= full_refill_ns && tokens < 0) {
			tokens += burst;
			last += full_refill_ns;
			gap -= full_refill_ns;
		}
		if (gap >= full_refill_ns) {
			tokens = burst;
			last = now;
		} else {
			__u64 left_ns;
			__u64 refill = earned(gap, &left_ns);
			/* Room to the top, up to two bursts: tokens >= -burst. */
			__u64 room = (__u64)burst - (__u64)tokens;
			if (refill >= room) {
				tokens = burst;
				last = now;
			} else {
				tokens += refill;
				/* Only the time the refill paid for: the fraction
				 * of a byte earned since is kept. */
				last += gap - left_ns;
			}
		}
	}
	b->last_ns = last;
	if (tokens >= len) {
		tokens -= len;
		verdict = 1;
	} else if ((__u64)burst + (__u64)tokens >= (__u64)len) {
		/* The debt would stay within one burst (tokens >= -burst, so
		 * the sum is the bytes left before that, without overflow). */
		tokens -= len;
		verdict = 3;
	} else {
		verdict = 2;
	}
	b->tokens = tokens;
	bpf_spin_unlock(&b->lock);

	if (verdict & 1) {
		c->passed_packets++;
		c->passed_bytes += len;
		if (verdict & 2)
			c->marked_packets++;
	} else {
		c->dropped_packets++;
		c->dropped_bytes += len;
	}
	return verdict;
}
