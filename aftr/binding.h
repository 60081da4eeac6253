/* A binding: one internal endpoint (subscriber, protocol, internal IPv4,
 * internal port) bound to one external endpoint (public IPv4, port).
 *
 * Endpoint-independent mapping means every mapping of an internal
 * endpoint shares the same external port, so one object carries all of
 * them: an optional explicit MAP part (nonce, own expiry, FILTERs,
 * DESCRIPTION), a static flag, and zero or more PEER parts (remote
 * endpoint, nonce, expiry). The binding lives until its last part ends.
 *
 * Concurrency: readers find bindings through the table under
 * rcu_read_lock() and may read every field (values may be a moment
 * stale). All writes happen with the owning subscriber's lock held.
 * `filters` and `description` are replaced (rcu_assign_pointer), never
 * modified in place; old copies are freed after a grace period. */
#ifndef AFTR_BINDING_H
#define AFTR_BINDING_H

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <urcu.h>
#include <urcu/list.h>
#include <urcu/rculfhash.h>

#define BINDING_NONCE_LEN 12

enum binding_flags {
	BF_MAP = 1 << 0,            /* explicit inbound mapping (MAP / NAT-PMP) */
	BF_STATIC = 1 << 1,         /* configured by the operator: never deleted by MAP */
	BF_THIRD_PARTY = 1 << 2,    /* MAP came with THIRD_PARTY (echo in Mapping Update) */
	BF_PREFER_FAILURE = 1 << 3,
	BF_NATPMP = 1 << 4,         /* created over NAT-PMP */
	BF_PENDING = 1 << 5,        /* a kernel change is in flight: requests for it wait */
};

struct aftr_filter {
	uint8_t plen;               /* on 128 bits */
	uint16_t port;              /* 0 = any */
	struct in6_addr addr;
};

struct filter_set {
	struct rcu_head rcu;
	unsigned n;
	struct aftr_filter f[];
};

struct peer_part {
	struct peer_part *next;
	struct in6_addr addr;       /* remote peer */
	uint16_t port;
	uint8_t nonce[BINDING_NONCE_LEN];
	uint32_t expires;           /* monotonic seconds */
};

struct binding {
	struct cds_lfht_node by_int;
	struct cds_lfht_node by_ext;
	struct rcu_head rcu;
	struct cds_list_head sub_node;  /* in its subscriber's list, under the sub lock */
	uint32_t heap_idx;          /* position in the expiry heap, UINT32_MAX = none */

	/* internal key */
	uint32_t sub;               /* subscriber index */
	uint8_t proto;
	uint16_t int_port;
	struct in6_addr int_addr;   /* IPv4-mapped */

	/* external endpoint */
	struct in6_addr ext_addr;   /* IPv4-mapped */
	uint16_t ext_port;

	uint8_t flags;              /* enum binding_flags */
	uint8_t nonce[BINDING_NONCE_LEN];   /* MAP part's nonce */
	uint32_t map_expires;       /* MAP part; UINT32_MAX for static */
	uint32_t expires;           /* max over all parts: the heap key */
	uint32_t created;

	struct filter_set *filters; /* MAP part; NULL = no filter */
	char *description;          /* MAP part; NULL = none */
	struct peer_part *peers;

	/* where the last request came from (Mapping Update, ANNOUNCE) */
	struct in6_addr client_addr;
	uint16_t client_port;
};

struct binding *binding_new(void);
/* Frees now: only for bindings never published in the table. */
void binding_free(struct binding *b);
/* Frees after a grace period (table_remove does this). */
void binding_free_rcu(struct binding *b);
/* Replace the filter set / description (subscriber lock held). */
void binding_set_filters(struct binding *b, struct filter_set *fs);
void binding_set_description(struct binding *b, char *desc);
struct filter_set *filter_set_new(unsigned n);
void filter_set_free_rcu(struct filter_set *fs);
/* Recomputes b->expires from the parts. */
void binding_update_expires(struct binding *b);

#endif
