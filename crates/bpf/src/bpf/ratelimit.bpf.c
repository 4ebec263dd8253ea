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

const volatile __u64 rate_bytes_per_s = 0;
const volatile __u64 burst_bytes = 0;

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

SEC("cgroup_skb/egress")
int limit_egress(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct pp_bucket *b = bpf_map_lookup_elem(&buckets, &zero);
	struct pp_limit_counts *c = bpf_map_lookup_elem(&counts, &zero);
	if (!b || !c)
		return 1;
	__u64 now = bpf_ktime_get_ns();
	__s64 len = skb->len;
	__s64 burst = burst_bytes;
	int verdict;

	bpf_spin_lock(&b->lock);
	__u64 elapsed = now - b->last_ns;
	b->last_ns = now;
	/* A second or more refills the bucket; below that, microseconds
	 * keep the product clear of overflow up to 10^13 bytes/s. */
	__s64 refill = elapsed >= 1000000000ULL
			       ? burst
			       : (__s64)((elapsed / 1000) * rate_bytes_per_s / 1000000);
	__s64 tokens = b->tokens + refill;
	if (tokens > burst)
		tokens = burst;
	if (tokens >= len) {
		tokens -= len;
		verdict = 1;
	} else if (tokens - len >= -burst) {
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
