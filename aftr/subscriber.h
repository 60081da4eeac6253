/* Subscribers (B4s) and their deterministic resources (RFC 7422).
 *
 * A subscriber is identified by its B4 IPv6 address masked to the
 * subscriber prefix length (plain mode) or by its softwire interface
 * (encapsulated mode), never by an IPv4 address: every subscriber uses
 * the same private IPv4 space (RFC 6333 §5.7, §6.6).
 *
 * Each subscriber gets one public address and one port block from its
 * index; the first pcp_ports ports of the block serve PCP MAP, the rest
 * dynamic NAPT (and PEER in the in-memory backend). Lookups are RCU
 * (caller holds rcu_read_lock()); subscribers live until the registry is
 * freed or they are removed. Mutable per-subscriber state is guarded by
 * sub->lock. */
#ifndef AFTR_SUBSCRIBER_H
#define AFTR_SUBSCRIBER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <urcu.h>
#include <urcu/list.h>
#include <urcu/rculfhash.h>

#include "aftr/aftr_config.h"
#include "aftr/portalloc.h"
#include "common/addr.h"
#include "common/err.h"

enum { PA_TCP_MAP, PA_UDP_MAP, PA_TCP_NAPT, PA_UDP_NAPT, PA__COUNT };

struct subscriber {
	struct cds_lfht_node by_b4;
	struct cds_lfht_node by_if;
	struct cds_lfht_node by_index;
	struct rcu_head rcu;

	uint32_t index;
	char name[AFTR_SUB_NAME_MAX];     /* "" for subscribers derived from a B4 prefix */
	struct prefix b4;                 /* masked; plen 0 = none */
	char ifname[IF_NAMESIZE];
	int ifindex;                      /* 0 = none or not (yet) present */

	struct in6_addr ext_addr;         /* IPv4-mapped public address */
	uint16_t block_lo;                /* first port of the block */
	uint16_t block_n;                 /* ports in the block */
	uint16_t pcp_n;                   /* first pcp_n ports are PCP's */

	pthread_mutex_t lock;
	struct portalloc pa[PA__COUNT];   /* under lock */
	uint32_t nmappings;               /* mapping parts created by PCP/NAT-PMP, under lock */
	struct cds_list_head bindings;    /* this subscriber's bindings, under lock: per-
					   * subscriber walks never scan the whole table */
	uint64_t rl_stamp_ms;             /* token bucket, under lock */
	uint64_t rl_tokens_milli;

	/* last PCP client endpoint seen and the server address it used (for
	 * unsolicited ANNOUNCE after a restart), under lock */
	struct in6_addr client_addr;
	struct in6_addr client_server;
	uint16_t client_port;

	_Atomic bool provisioned;
	_Atomic bool removing;            /* being removed: no new mappings */         /* data plane installed in the kernel backend */
	_Atomic uint64_t requests;
	_Atomic uint64_t rate_limited;
};

struct subscribers;

struct subscribers *subs_new(const struct aftr_config *cfg);
void subs_free(struct subscribers *s);

/* Plain mode: the subscriber for a B4 address (explicit entry by longest
 * prefix, else derived from a configured B4 prefix, created on first
 * contact). NULL if the address is in no configured prefix. */
struct subscriber *subs_by_b4(struct subscribers *s, const struct in6_addr *b4);
/* Encapsulated mode: the subscriber whose softwire is ifindex. */
struct subscriber *subs_by_ifindex(struct subscribers *s, int ifindex);
struct subscriber *subs_by_index(struct subscribers *s, uint32_t index);
/* The subscriber with this index, created if the index belongs to a B4
 * prefix range (a restart brings back derived subscribers' bindings). */
struct subscriber *subs_by_index_or_derive(struct subscribers *s, uint32_t index);
/* Re-resolves softwire interface names to indexes (interfaces may come
 * and go); cheap, call periodically. Returns how many changed. */
unsigned subs_refresh_ifindexes(struct subscribers *s);
/* Is a an internal address a subscriber may map (THIRD_PARTY, encapsulated
 * source)? */
bool subs_internal_allowed(const struct subscribers *s, const struct in6_addr *a);
/* The port allocator for a binding of proto; map = PCP range vs NAPT range.
 * NULL for protocols other than TCP/UDP. */
struct portalloc *sub_portalloc(struct subscriber *sub, uint8_t proto, bool map);
/* Token bucket: true if a request may be served now. */
bool sub_rate_ok(struct subscriber *sub, uint64_t now_ms, uint32_t rate, uint32_t burst);

/* Run time (control socket): adds an explicit subscriber like a config
 * entry. PERR_EXISTS if the name, index, B4 prefix or interface is taken,
 * PERR_INVAL if the index is beyond the pool's capacity. The caller then
 * provisions it in the kernel backend. */
enum perr subs_add(struct subscribers *s, const struct aftr_sub_conf *c,
		   struct subscriber **out);
/* Unpublishes a subscriber (its bindings must be gone) and frees it after a
 * grace period. PERR_NOT_FOUND if unknown. */
enum perr subs_remove(struct subscribers *s, struct subscriber *sub);
struct subscriber *subs_by_name(struct subscribers *s, const char *name);

size_t subs_count(struct subscribers *s);
/* Visits every subscriber (rcu_read_lock() held). Stop by returning non-zero. */
void subs_foreach(struct subscribers *s, int (*cb)(void *arg, struct subscriber *sub), void *arg);

/* Computes the public address and port block of an index. False if the
 * index is beyond the pool's capacity. */
bool aftr_index_resources(const struct aftr_config *c, uint32_t index, struct in6_addr *ext,
			  uint16_t *block_lo);

#endif
