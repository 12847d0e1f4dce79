// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * lrp_xdp.c - early demultiplexing for Lazy Receiver Processing on AF_XDP.
 *
 * This is the "network interface" half of NI-LRP: it runs in the XDP hook, before the
 * kernel allocates an skb or copies the frame into a socket, parses the headers once,
 * finds the endpoint's channel ("slot") in BPF maps and redirects the frame to that
 * channel's own AF_XDP socket. A closed per-slot gate drops the frame right here
 * (early discard) instead of letting it be copied into a full RX ring.
 *
 * The parse mirrors lrp_core::wire::classify rule for rule (same malformed reasons, same
 * order) and the lookup mirrors lrp_core::demux::Demux:
 *   (a) exact 5-tuple (flows)
 *   (b) TCP SYN without ACK whose matching listener has a syn_slot -> that slot
 *   (c) listener, destination address before the wildcard
 *   (d) source: UDP/TCP that (a) - (c) leave unclaimed, from a (proto, address, port) in
 *       sources, whatever its destination (an LVS director's NAT replies from a real
 *       server, addressed to clients). After the listeners: a frame addressed to a local
 *       listener stays that listener's; before the hosts: a source entry is more
 *       specific than a local address's catch-all (see lrp_core::demux for the why)
 *   (e) host: ARP target / ICMP destination in hosts, and UDP/TCP to an address in
 *       hosts that (a) - (d) leave unclaimed (the stack owning the address answers a
 *       closed port with a RST or an ICMP port unreachable)
 *   (f) the default action from config (XDP_PASS keeps ARP, ICMP, ssh on the kernel)
 * Non-first fragments, other IP protocols and other ethertypes take the default action.
 * In SOFT mode (SOFT-LRP) the same lookup only decides *whether* lrp claims the frame:
 * every claimed frame goes to config.soft_slot (one shared socket) and userspace
 * demultiplexes it into its NI channels; unclaimed frames take the default action, so the
 * kernel keeps ARP, ICMP, ssh and every port lrp does not serve, in both modes alike.
 *
 * Malformed frames are dropped and counted by reason. Checksums are not verified here:
 * that is protocol work, done lazily by the receiver.
 *
 * Build: lrp-net/bpf/build.sh (clang -O2 -g -target bpf). Map layouts: lrp_xdp.h.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "lrp_xdp.h"

/* Bound of the IPv6 extension-header walk (lrp_core::wire::ipv6::MAX_EXT_HEADERS). */
#define LRP_IPV6_EXT_MAX 8

#define IPV6_NH_HOP 0
#define IPV6_NH_ROUTING 43
#define IPV6_NH_FRAGMENT 44
#define IPV6_NH_DSTOPTS 60
#define IPPROTO_ICMPV6_ 58

#define TCP_FLAG_SYN_ 0x02
#define TCP_FLAG_ACK_ 0x10

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, LRP_MAX_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LRP_MAX_SLOTS);
	__type(key, __u32);
	__type(value, __u32); /* non-zero: gate closed */
} gates SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LRP_MAX_SLOTS);
	__type(key, __u32);
	__type(value, struct lrp_slot_stats);
} slot_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lrp_global_stats);
} global_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lrp_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LRP_MAX_FLOWS);
	__type(key, struct lrp_flow_key);
	__type(value, __u32);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LRP_MAX_LISTENERS);
	__type(key, struct lrp_listener_key);
	__type(value, struct lrp_listener);
} listeners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LRP_MAX_HOSTS);
	__type(key, struct lrp_host_key);
	__type(value, __u32);
} hosts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LRP_MAX_SOURCES);
	__type(key, struct lrp_source_key);
	__type(value, __u32);
} sources SEC(".maps");

struct lrp_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

/* ARP for IPv4 over Ethernet (RFC 826), the only kind we understand. */
struct lrp_arp_eth_ipv4 {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 oper;
	__u8 sha[6];
	__u8 spa[4];
	__u8 tha[6];
	__u8 tpa[4];
} __attribute__((packed));

/* Result of lrp_parse_l4: the frame is a flow (key and flags filled in). */
#define LRP_L4_OK -1

static __always_inline int lrp_malformed(struct lrp_global_stats *gs, __u32 reason)
{
	if (reason < LRP_MALFORMED_REASONS)
		gs->malformed[reason]++;
	return XDP_DROP;
}

static __always_inline int lrp_default(struct lrp_global_stats *gs, __u32 deflt)
{
	if (deflt == XDP_DROP)
		gs->dropped_default++;
	else
		gs->passed++;
	return deflt;
}

/*
 * Early discard at the slot's gate, then redirect to the slot's socket. In SOFT mode the
 * rule's slot only says that lrp claims the frame: it goes to the soft slot instead.
 */
static __always_inline int lrp_to_slot(struct lrp_global_stats *gs,
				       const struct lrp_config *cfg, __u32 slot, __u32 deflt)
{
	if (cfg->mode == LRP_MODE_SOFT) {
		gs->hit_soft++;
		slot = cfg->soft_slot;
	}
	__u32 *gate = bpf_map_lookup_elem(&gates, &slot);
	struct lrp_slot_stats *ss = bpf_map_lookup_elem(&slot_stats, &slot);

	if (!gate || !ss) {
		gs->bad_slot++;
		return deflt;
	}
	if (*gate) {
		ss->gate_drops++;
		return XDP_DROP;
	}
	long act = bpf_redirect_map(&xsks, slot, deflt);
	if (act == XDP_REDIRECT)
		ss->redirected++;
	else
		ss->no_socket++;
	return (int)act;
}

static __always_inline __u32 *lrp_host_lookup(__u8 family, const __u8 *addr16)
{
	struct lrp_host_key hk;

	__builtin_memset(&hk, 0, sizeof(hk));
	__builtin_memcpy(hk.addr, addr16, 16);
	hk.family = family;
	return bpf_map_lookup_elem(&hosts, &hk);
}

/* (e): ARP, ICMP and unclaimed UDP/TCP to a registered local address. */
static __always_inline int lrp_host_or_default(struct lrp_global_stats *gs,
					       const struct lrp_config *cfg, __u8 family,
					       const __u8 *addr16, __u32 deflt)
{
	__u32 *slot = lrp_host_lookup(family, addr16);

	if (slot) {
		gs->hit_host++;
		return lrp_to_slot(gs, cfg, *slot, deflt);
	}
	return lrp_default(gs, deflt);
}

/* (d), then (e) for the destination address, then the default: UDP/TCP that no flow or
 * listener claims. lrp_core's Demux skips the source probe while its table is empty; a
 * lookup in an empty BPF hash map is one hash and one bucket read, so the program always
 * probes (no entry count to keep in step). */
static __always_inline int lrp_source_host_or_default(struct lrp_global_stats *gs,
						      const struct lrp_config *cfg,
						      const struct lrp_flow_key *fk, __u32 deflt)
{
	struct lrp_source_key sk;

	__builtin_memset(&sk, 0, sizeof(sk));
	__builtin_memcpy(sk.addr, fk->src, 16);
	sk.port = fk->sport;
	sk.proto = fk->proto;
	sk.family = fk->family;
	__u32 *slot = bpf_map_lookup_elem(&sources, &sk);

	if (slot) {
		gs->hit_source++;
		return lrp_to_slot(gs, cfg, *slot, deflt);
	}
	return lrp_host_or_default(gs, cfg, fk->family, fk->dst, deflt);
}

/* (a) - (c), then (d) - (e) (lrp_source_host_or_default), then the default. A listener
 * entry without a plain slot (LRP_NO_SLOT: only a SYN channel) claims the port all the
 * same: its other segments take the default action (neither a source nor a host entry
 * gets them), as lrp-net's facade does with lrp_core's Demux. */
static __always_inline int lrp_flow(struct lrp_global_stats *gs, const struct lrp_config *cfg,
				    const struct lrp_flow_key *fk, __u8 tcp_flags, __u32 deflt)
{
	struct lrp_listener_key lk;
	struct lrp_listener *l;
	__u32 *slot = bpf_map_lookup_elem(&flows, fk);

	if (slot) {
		gs->hit_exact++;
		return lrp_to_slot(gs, cfg, *slot, deflt);
	}

	__builtin_memset(&lk, 0, sizeof(lk));
	__builtin_memcpy(lk.addr, fk->dst, 16);
	lk.port = fk->dport;
	lk.proto = fk->proto;
	lk.family = fk->family;
	l = bpf_map_lookup_elem(&listeners, &lk);
	if (!l) {
		__builtin_memset(lk.addr, 0, sizeof(lk.addr));
		lk.family = LRP_FAMILY_ANY;
		l = bpf_map_lookup_elem(&listeners, &lk);
		if (!l)
			return lrp_source_host_or_default(gs, cfg, fk, deflt);
	}
	if (fk->proto == IPPROTO_TCP &&
	    (tcp_flags & (TCP_FLAG_SYN_ | TCP_FLAG_ACK_)) == TCP_FLAG_SYN_ &&
	    l->syn_slot != LRP_NO_SLOT) {
		gs->hit_syn++;
		return lrp_to_slot(gs, cfg, l->syn_slot, deflt);
	}
	if (l->slot == LRP_NO_SLOT)
		return lrp_default(gs, deflt);
	gs->hit_listener++;
	return lrp_to_slot(gs, cfg, l->slot, deflt);
}

/*
 * UDP/TCP header at offset l4; the IP packet ends at l3_end (l4 <= l3_end). Fills the
 * ports and proto of fk and the TCP flags and returns LRP_L4_OK, or returns a malformed
 * reason. `first_frag`: the first fragment of a fragmented datagram.
 */
static __always_inline int lrp_parse_l4(void *data, void *data_end, __u32 l4, __u32 l3_end,
					__u8 proto, int first_frag, struct lrp_flow_key *fk,
					__u8 *tcp_flags)
{
	__u32 seg_len = l3_end - l4;

	if (proto == IPPROTO_UDP) {
		struct udphdr *uh = data + l4;

		if (seg_len < sizeof(*uh) || (void *)(uh + 1) > data_end)
			return LRP_MAL_TRUNCATED_L4;
		__u32 ulen = bpf_ntohs(uh->len);
		/* A first fragment carries only the start of the datagram. */
		if (first_frag ? ulen < seg_len : ulen != seg_len)
			return LRP_MAL_BAD_UDP_LEN;
		fk->sport = uh->source;
		fk->dport = uh->dest;
		*tcp_flags = 0;
	} else {
		struct tcphdr *th = data + l4;

		if (seg_len < sizeof(*th) || (void *)(th + 1) > data_end)
			return LRP_MAL_TRUNCATED_L4;
		__u32 doff = th->doff * 4;
		if (doff < sizeof(*th) || doff > seg_len)
			return LRP_MAL_BAD_TCP_DATA_OFFSET;
		fk->sport = th->source;
		fk->dport = th->dest;
		*tcp_flags = ((__u8 *)th)[13];
	}
	fk->proto = proto;
	return LRP_L4_OK;
}

static __always_inline int lrp_ipv4(void *data, void *data_end, __u32 l3,
				    struct lrp_global_stats *gs, struct lrp_config *cfg,
				    __u32 deflt)
{
	struct iphdr *ip = data + l3;
	struct lrp_flow_key fk;
	__u8 tcp_flags = 0;

	if ((void *)(ip + 1) > data_end)
		return lrp_malformed(gs, LRP_MAL_TRUNCATED_IP);
	if (ip->version != 4)
		return lrp_malformed(gs, LRP_MAL_BAD_IP_VERSION);
	__u32 hlen = ip->ihl * 4;
	if (hlen < sizeof(*ip) || data + l3 + hlen > data_end)
		return lrp_malformed(gs, LRP_MAL_BAD_IP_HEADER_LEN);
	__u32 tot = bpf_ntohs(ip->tot_len);
	if (tot < hlen || data + l3 + tot > data_end)
		return lrp_malformed(gs, LRP_MAL_BAD_IP_TOTAL_LEN);

	__builtin_memset(&fk, 0, sizeof(fk));
	fk.family = LRP_FAMILY_V4;
	__builtin_memcpy(fk.src, &ip->saddr, 4);
	__builtin_memcpy(fk.dst, &ip->daddr, 4);

	__u16 frag = bpf_ntohs(ip->frag_off);
	if (frag & 0x1fff) {
		gs->fragments++;
		return lrp_default(gs, deflt);
	}
	__u32 l4 = l3 + hlen;
	__u32 l3_end = l3 + tot;
	__u8 proto = ip->protocol;

	if (proto == IPPROTO_ICMP) {
		if (l3_end - l4 < 4)
			return lrp_malformed(gs, LRP_MAL_TRUNCATED_L4);
		return lrp_host_or_default(gs, cfg, LRP_FAMILY_V4, fk.dst, deflt);
	}
	if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
		return lrp_default(gs, deflt);
	int r = lrp_parse_l4(data, data_end, l4, l3_end, proto, (frag & 0x2000) != 0, &fk,
			     &tcp_flags);
	if (r != LRP_L4_OK)
		return lrp_malformed(gs, r);
	return lrp_flow(gs, cfg, &fk, tcp_flags, deflt);
}

static __always_inline int lrp_ipv6(void *data, void *data_end, __u32 l3,
				    struct lrp_global_stats *gs, struct lrp_config *cfg,
				    __u32 deflt)
{
	struct ipv6hdr *ip6 = data + l3;
	struct lrp_flow_key fk;
	__u8 tcp_flags = 0;

	if ((void *)(ip6 + 1) > data_end)
		return lrp_malformed(gs, LRP_MAL_TRUNCATED_IP);
	if (ip6->version != 6)
		return lrp_malformed(gs, LRP_MAL_BAD_IP_VERSION);
	__u32 l3_end = l3 + sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	if (data + l3_end > data_end)
		return lrp_malformed(gs, LRP_MAL_BAD_IP_TOTAL_LEN);

	__builtin_memset(&fk, 0, sizeof(fk));
	fk.family = LRP_FAMILY_V6;
	__builtin_memcpy(fk.src, &ip6->saddr, 16);
	__builtin_memcpy(fk.dst, &ip6->daddr, 16);

	/* Extension headers, as lrp_core::wire::ipv6::walk_ext_headers: hop-by-hop only
	 * first, at most one fragment header, at most LRP_IPV6_EXT_MAX headers, each inside
	 * the IP payload. A non-first fragment stops the walk. */
	__u8 nh = ip6->nexthdr;
	__u32 off = l3 + sizeof(*ip6);
	int seen_frag = 0, first_frag = 0;
	int i;

#pragma unroll
	for (i = 0; i <= LRP_IPV6_EXT_MAX; i++) {
		if (nh != IPV6_NH_HOP && nh != IPV6_NH_ROUTING && nh != IPV6_NH_FRAGMENT &&
		    nh != IPV6_NH_DSTOPTS)
			break;
		if (nh == IPV6_NH_HOP && i != 0)
			return lrp_malformed(gs, LRP_MAL_BAD_IPV6_EXT_HEADERS);
		__u8 *h = data + off;
		/* Every extension header is at least 8 bytes. */
		if (off + 8 > l3_end || (void *)(h + 8) > data_end)
			return lrp_malformed(gs, LRP_MAL_BAD_IPV6_EXT_HEADERS);
		__u32 len;
		if (nh == IPV6_NH_FRAGMENT) {
			if (seen_frag)
				return lrp_malformed(gs, LRP_MAL_BAD_IPV6_EXT_HEADERS);
			seen_frag = 1;
			__u16 fo = ((__u16)h[2] << 8) | h[3];
			if (fo & 0xfff8) {
				gs->fragments++;
				return lrp_default(gs, deflt);
			}
			first_frag = fo & 1;
			len = 8;
		} else {
			len = ((__u32)h[1] + 1) * 8;
			if (off + len > l3_end)
				return lrp_malformed(gs, LRP_MAL_BAD_IPV6_EXT_HEADERS);
		}
		/* One header more than the bound (a later fragment is still recognised). */
		if (i == LRP_IPV6_EXT_MAX)
			return lrp_malformed(gs, LRP_MAL_BAD_IPV6_EXT_HEADERS);
		nh = h[0];
		off += len;
	}

	if (nh == IPPROTO_ICMPV6_) {
		if (l3_end - off < 4)
			return lrp_malformed(gs, LRP_MAL_TRUNCATED_L4);
		return lrp_host_or_default(gs, cfg, LRP_FAMILY_V6, fk.dst, deflt);
	}
	if (nh != IPPROTO_UDP && nh != IPPROTO_TCP)
		return lrp_default(gs, deflt);
	int r = lrp_parse_l4(data, data_end, off, l3_end, nh, first_frag, &fk, &tcp_flags);
	if (r != LRP_L4_OK)
		return lrp_malformed(gs, r);
	return lrp_flow(gs, cfg, &fk, tcp_flags, deflt);
}

static __always_inline int lrp_arp(void *data, void *data_end, __u32 l3,
				   struct lrp_global_stats *gs, struct lrp_config *cfg,
				   __u32 deflt)
{
	struct lrp_arp_eth_ipv4 *arp = data + l3;
	__u8 target[16];

	if ((void *)(arp + 1) > data_end)
		return lrp_malformed(gs, LRP_MAL_BAD_ARP);
	if (arp->htype != bpf_htons(1) || arp->ptype != bpf_htons(ETH_P_IP) || arp->hlen != 6 ||
	    arp->plen != 4 || (arp->oper != bpf_htons(1) && arp->oper != bpf_htons(2)))
		return lrp_malformed(gs, LRP_MAL_BAD_ARP);
	__builtin_memset(target, 0, sizeof(target));
	__builtin_memcpy(target, arp->tpa, 4);
	return lrp_host_or_default(gs, cfg, LRP_FAMILY_V4, target, deflt);
}

SEC("xdp")
int lrp_demux(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct lrp_config *cfg = bpf_map_lookup_elem(&config, &zero);
	struct lrp_global_stats *gs = bpf_map_lookup_elem(&global_stats, &zero);

	/* Single-entry arrays always have index 0; this only satisfies the verifier. */
	if (!cfg || !gs)
		return XDP_PASS;
	__u32 deflt = cfg->default_action == XDP_DROP ? XDP_DROP : XDP_PASS;

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return lrp_malformed(gs, LRP_MAL_TRUNCATED_ETHERNET);
	__be16 h_proto = eth->h_proto;
	__u32 l3 = sizeof(*eth);

	/* One 802.1Q tag; a second tag (QinQ) is another ethertype. */
	if (h_proto == bpf_htons(ETH_P_8021Q)) {
		struct lrp_vlan_hdr *vh = data + l3;
		if ((void *)(vh + 1) > data_end)
			return lrp_malformed(gs, LRP_MAL_TRUNCATED_ETHERNET);
		h_proto = vh->proto;
		l3 += sizeof(*vh);
	}

	if (h_proto == bpf_htons(ETH_P_IP))
		return lrp_ipv4(data, data_end, l3, gs, cfg, deflt);
	if (h_proto == bpf_htons(ETH_P_IPV6))
		return lrp_ipv6(data, data_end, l3, gs, cfg, deflt);
	if (h_proto == bpf_htons(ETH_P_ARP))
		return lrp_arp(data, data_end, l3, gs, cfg, deflt);
	return lrp_default(gs, deflt);
}

/* No GPL-only helper is used; the string only has to be one the kernel accepts. */
char LICENSE[] SEC("license") = "Dual MIT/GPL";
