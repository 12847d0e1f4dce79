// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * lrp_dispatch.c - one XDP program per interface, one lrp demux program per queue.
 *
 * An interface has a single XDP hook, but lrp serves it with one NIC instance per
 * hardware queue (each with its own UMEM, AF_XDP sockets, demux maps and gates: a socket
 * receives only frames of the queue it is bound to). This program is what is attached to
 * the interface: it tail-calls the demux program (lrp_xdp.c) registered for the frame's
 * receive queue in `lrp_queues`. A frame on a queue that no lrp instance serves falls
 * through to XDP_PASS (the kernel keeps it) and is counted per queue in `lrp_unserved`.
 *
 * Build: lrp-net/bpf/build.sh. Map layouts: lrp_xdp.h (LRP_MAX_QUEUES).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "lrp_xdp.h"

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, LRP_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} lrp_queues SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LRP_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u64);
} lrp_unserved SEC(".maps");

SEC("xdp")
int lrp_dispatch(struct xdp_md *ctx)
{
	__u32 queue = ctx->rx_queue_index;

	/* Returns only if there is no program for this queue. */
	bpf_tail_call(ctx, &lrp_queues, queue);

	__u64 *unserved = bpf_map_lookup_elem(&lrp_unserved, &queue);
	if (unserved)
		(*unserved)++;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
