/* PCP request handling (RFC 6887 §8.2 onwards), transport-free: the same
 * code runs under cmocka, libFuzzer and the UDP workers. A request comes
 * with its metadata; the reply (if any) leaves through the reply hook,
 * possibly after the kernel backend has committed. */
#ifndef PCPD_HANDLER_H
#define PCPD_HANDLER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#include "pcpd/config.h"
#include "pcpd/engine.h"

struct pcp_meta {
	struct in6_addr src;        /* IPv4 as mapped */
	uint16_t sport;
	struct in6_addr dst;        /* where the request was sent: replies come from there */
	uint16_t dport;
	int ifindex;                /* ingress interface (encapsulated mode) */
	uint32_t now;               /* monotonic seconds */
	uint64_t now_ms;
	void *io;                   /* the transport's own context */
	int fd;
};

typedef void (*pcp_reply_fn)(const struct pcp_meta *m, const uint8_t *buf, size_t len);

enum { STAT_OP_ANNOUNCE, STAT_OP_MAP, STAT_OP_PEER, STAT_OP_NATPMP, STAT_OP_OTHER, STAT_OP__N };

struct pcp_stats {
	_Atomic uint64_t received;
	_Atomic uint64_t dropped;            /* silently discarded */
	_Atomic uint64_t rate_limited;
	_Atomic uint64_t unknown_client;
	_Atomic uint64_t by_opcode[STAT_OP__N];
	_Atomic uint64_t by_result[256];     /* PCP result codes sent */
};

struct pcp_handler {
	const struct pcpd_config *cfg;
	struct subscribers *subs;
	struct engine *eng;
	uint32_t epoch_base;        /* monotonic second at which the epoch is 0 */
	pcp_reply_fn reply;
	struct pcp_stats stats;
	_Atomic bool clients_dirty;  /* a subscriber's client endpoint changed (restart.h) */
};

void pcp_handler_init(struct pcp_handler *h, const struct pcpd_config *cfg,
		      struct subscribers *subs, struct engine *eng, uint32_t epoch_base,
		      pcp_reply_fn reply);
/* RFC 6887 §8.5: seconds since the epoch base. */
uint32_t pcp_epoch(const struct pcp_handler *h, uint32_t now);

/* Handles one datagram. The caller holds rcu_read_lock() and its thread
 * is RCU-registered. */
void pcp_handle(struct pcp_handler *h, const struct pcp_meta *m, const uint8_t *pkt, size_t len);

/* NAT-PMP (RFC 6886) over the same engine; called by pcp_handle for
 * version 0 when enabled. */
void natpmp_handle(struct pcp_handler *h, const struct pcp_meta *m, const uint8_t *pkt,
		   size_t len);

#endif
