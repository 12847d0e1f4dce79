/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * lrp_xdp.h - map layouts shared by the lrp XDP program (lrp_xdp.c) and its Rust loader.
 *
 * Every struct here is mirrored by a #[repr(C)] struct in lrp-net/src/xdp/abi.rs with a
 * compile-time size assertion, and the loader checks the key/value sizes of every map in
 * the loaded object against those structs. Change both sides together.
 *
 * Conventions:
 *  - Addresses are 16 bytes. IPv4 uses the first 4 bytes (network order), the other 12
 *    are zero; `family` (4 or 6) says which. An all-zero address of a family is that
 *    family's wildcard in listener keys.
 *  - Ports are stored in network byte order, exactly as they appear on the wire.
 *  - Padding is explicit and must be zero: hash-map keys are compared bytewise.
 */
#ifndef LRP_XDP_H
#define LRP_XDP_H

#include <linux/types.h>

/* Default number of channel slots (XSKMAP, gate and per-slot stats entries). The loader
 * may change it at load time; all three maps always have the same size. */
#define LRP_MAX_SLOTS 64
#define LRP_MAX_FLOWS 16384
#define LRP_MAX_LISTENERS 1024
#define LRP_MAX_HOSTS 64
#define LRP_MAX_SOURCES 1024

/* Receive queues the dispatcher (lrp_dispatch.c) can hand to a demux program. */
#define LRP_MAX_QUEUES 64

/* "No channel" in a listener entry. */
#define LRP_NO_SLOT 0xffffffffu

/* Address families as stored in keys. */
#define LRP_FAMILY_ANY 0
#define LRP_FAMILY_V4 4
#define LRP_FAMILY_V6 6

/* config.mode */
#define LRP_MODE_NI 0   /* NI-LRP: the program demultiplexes to per-endpoint slots */
#define LRP_MODE_SOFT 1 /* SOFT-LRP: every frame a rule claims goes to soft_slot */

/* Number of malformed-frame reasons. The order is lrp_core::flow::Malformed::ALL. */
#define LRP_MALFORMED_REASONS 11
enum lrp_malformed {
	LRP_MAL_TRUNCATED_ETHERNET = 0,
	LRP_MAL_TRUNCATED_IP = 1,
	LRP_MAL_BAD_IP_HEADER_LEN = 2,
	LRP_MAL_BAD_IP_VERSION = 3,
	LRP_MAL_BAD_IP_TOTAL_LEN = 4,
	LRP_MAL_BAD_IPV6_EXT_HEADERS = 5,
	LRP_MAL_TRUNCATED_L4 = 6,
	LRP_MAL_BAD_TCP_DATA_OFFSET = 7,
	LRP_MAL_BAD_UDP_LEN = 8,
	LRP_MAL_BAD_ARP = 9,
	/* 10 = BadChecksum: never produced in XDP (checksums are verified lazily). */
};

/* config map, one entry at index 0. All-zero = NI mode, pass to the kernel, slot 0. */
struct lrp_config {
	__u32 mode;           /* LRP_MODE_* */
	__u32 default_action; /* XDP_DROP (1) drops; anything else passes (XDP_PASS) */
	__u32 soft_slot;      /* SOFT mode: the slot every claimed frame goes to */
	__u32 reserved;       /* zero */
};

/* flows: exact 5-tuple -> slot (__u32). src/dst as the frame carries them. */
struct lrp_flow_key {
	__u8 src[16];
	__u8 dst[16];
	__be16 sport;
	__be16 dport;
	__u8 proto;  /* IPPROTO_TCP (6) or IPPROTO_UDP (17) */
	__u8 family; /* LRP_FAMILY_* */
	__u8 pad[2];
};

/* listeners: (proto, family, local addr, local port) -> struct lrp_listener. The wildcard
 * (every local address of both families, lrp_core ListenerKey::any) has family 0 and an
 * all-zero address. */
struct lrp_listener_key {
	__u8 addr[16];
	__be16 port;
	__u8 proto;
	__u8 family; /* LRP_FAMILY_*, or LRP_FAMILY_ANY for the wildcard */
};

/* The channels of a listener: `slot` for its traffic, `syn_slot` for TCP connection
 * requests (SYN without ACK). Either may be LRP_NO_SLOT: frames that would go there take
 * the default action instead (a listener with only a SYN channel has slot = NO_SLOT). */
struct lrp_listener {
	__u32 slot;
	__u32 syn_slot;
};

/* sources: (proto, family, remote addr, remote port) of a frame's *source* -> slot (__u32).
 * UDP/TCP from that endpoint, whatever its destination, that no flow or listener claims
 * (lrp_core SourceKey: an LVS director's NAT replies from a real server). Same layout as
 * lrp_listener_key, but there is no wildcard: family is LRP_FAMILY_V4 or LRP_FAMILY_V6. */
struct lrp_source_key {
	__u8 addr[16];
	__be16 port;
	__u8 proto;
	__u8 family; /* LRP_FAMILY_V4 or LRP_FAMILY_V6 */
};

/* hosts: a local address (ARP target / ICMP destination / destination of UDP/TCP that no
 * flow, listener or source claims) -> slot.
 * IPv6 neighbor solicitations go to the solicited-node multicast address: register it too. */
struct lrp_host_key {
	__u8 addr[16];
	__u8 family;
	__u8 pad[3];
};

/* slot_stats (per CPU, one entry per slot). Outcomes are exclusive. */
struct lrp_slot_stats {
	__u64 redirected; /* bpf_redirect_map returned XDP_REDIRECT */
	__u64 gate_drops; /* the slot's gate was closed: XDP_DROP before any copy */
	__u64 no_socket;  /* no socket in the XSKMAP slot: the default action was taken */
};

/* global_stats (per CPU, one entry). Outcomes not tied to a slot; exclusive with the
 * per-slot outcomes, so the sum over both is the number of frames the program saw. */
struct lrp_global_stats {
	__u64 passed;          /* default action XDP_PASS (nothing matched) */
	__u64 dropped_default; /* default action XDP_DROP (nothing matched) */
	__u64 bad_slot;        /* a map named a slot >= max slots: default action taken */
	__u64 malformed[LRP_MALFORMED_REASONS]; /* XDP_DROP, by reason */
	/* Which rule chose the slot (informational, counted in addition to the outcome). */
	__u64 hit_exact;
	__u64 hit_syn;
	__u64 hit_listener;
	__u64 hit_host;
	__u64 hit_soft; /* SOFT mode: claimed frames sent to soft_slot (counted with the rule) */
	__u64 fragments; /* non-first IP fragments (no ports: they take the default action) */
	__u64 hit_source; /* a source entry chose the slot (a rule hit, like hit_exact..hit_host) */
};

#endif /* LRP_XDP_H */
