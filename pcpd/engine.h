/* The mapping engine: RFC 6887 MAP/PEER semantics (§11.3, §12.3, §15) on
 * top of the subscriber registry, the mapping table and a kernel backend.
 * Knows nothing of packets or sockets: the PCP handler, the NAT-PMP
 * handler and the control socket all drive it.
 *
 * Every operation ends in exactly one call of done(), either before the
 * function returns or later, once the kernel backend has committed. A
 * success is reported only after the kernel has the change; on failure
 * the table is rolled back (RFC 6887 §7.3: no state change on error). */
#ifndef PCPD_ENGINE_H
#define PCPD_ENGINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "aftr/backend.h"
#include "aftr/subscriber.h"
#include "aftr/table.h"
#include "pcpd/codec.h"

#define ENGINE_DESC_MAX 128          /* stored DESCRIPTION octets (RFC 7220 §4: >= 128) */
#define ENGINE_STATIC_LIFETIME UINT32_MAX

struct engine_limits {
	uint32_t min_lifetime;
	uint32_t max_lifetime;
	uint32_t max_filters;
	uint32_t max_mappings;        /* per subscriber */
	uint32_t hold_down;
};

struct engine_stats {
	_Atomic uint64_t created, deleted, expired, refreshed, kernel_failures;
};

/* Who wants to know when an inbound mapping (MAP, NAT-PMP, static)
 * appears or goes: the DDNS hook. Called with the subscriber's lock held
 * on the PCP path, so it must only queue. */
struct engine_observer {
	void *ctx;
	void (*mapping)(void *ctx, const struct subscriber *sub, const struct binding *b, bool up,
			uint32_t now);
};

struct engine {
	struct engine_limits lim;
	pthread_mutex_t prov_lock;    /* serialises data-plane provisioning */
	struct subscribers *subs;
	struct table *table;
	struct kbackend *kb;
	struct engine_stats stats;
	const struct engine_observer *obs;  /* NULL: nobody */
};

struct engine_req {
	struct subscriber *sub;
	uint8_t proto;
	struct in6_addr int_addr;        /* IPv4-mapped */
	uint16_t int_port;
	uint16_t sugg_port;
	struct in6_addr sugg_addr;
	uint16_t peer_port;              /* PEER */
	struct in6_addr peer_addr;
	uint32_t lifetime;               /* requested */
	uint8_t nonce[PCP_NONCE_LEN];
	uint8_t flags;                   /* BF_THIRD_PARTY | BF_PREFER_FAILURE | BF_NATPMP | BF_STATIC */
	unsigned nfilters;
	const struct pcp_filter *filters;
	bool has_desc;
	const char *desc;
	uint16_t desc_len;
	struct in6_addr client_addr;     /* transport source, for Mapping Update/ANNOUNCE */
	uint16_t client_port;
	uint32_t now;                    /* monotonic seconds */
};

struct engine_result {
	enum perr err;
	uint32_t lifetime;               /* granted lifetime, or the error's lifetime */
	bool lifetime_set;               /* error lifetime decided by the engine (nonce mismatch) */
	struct in6_addr ext_addr;
	uint16_t ext_port;
	bool has_desc;                   /* stored description to echo */
	uint16_t desc_len;
	char desc[ENGINE_DESC_MAX + 1];
};

typedef void (*engine_done_fn)(void *arg, const struct engine_result *r);

void engine_init(struct engine *e, const struct engine_limits *lim, struct subscribers *subs,
		 struct table *t, struct kbackend *kb);

/* MAP create/refresh (lifetime > 0) or delete (lifetime 0). The caller has
 * validated the request (protocol 0 with port != 0 is MALFORMED_REQUEST
 * before this point). rcu_read_lock() must be held. */
void engine_map(struct engine *e, const struct engine_req *rq, engine_done_fn done, void *arg);
/* PEER create/refresh; never shortens or deletes. */
void engine_peer(struct engine *e, const struct engine_req *rq, engine_done_fn done, void *arg);
/* NAT-PMP "delete all": every NAT-PMP mapping of int_addr for proto. */
void engine_delete_all_natpmp(struct engine *e, struct subscriber *sub, uint8_t proto,
			      const struct in6_addr *int_addr, uint32_t now);
/* Control socket: deletes every binding of a subscriber, static ones
 * included (flush / subscriber remove). done() runs once, after the
 * kernel has them all removed; err is the first failure. */
void engine_flush_sub(struct engine *e, struct subscriber *sub, uint32_t now,
		      void (*done)(void *arg, enum perr err, unsigned deleted), void *arg);
/* Control socket: deletes one static mapping (MAP requests cannot). */
void engine_static_delete(struct engine *e, const struct engine_req *rq, engine_done_fn done,
			  void *arg);
/* Provisions / unprovisions a subscriber's data plane (synchronous). */
enum perr engine_sub_provision(struct engine *e, struct subscriber *sub);
enum perr engine_sub_unprovision(struct engine *e, struct subscriber *sub);

/* Start-up after a restart: rebuilds the table from what the kernel
 * backend still holds (its subscribers must exist); elements of unknown
 * subscribers or outside their port blocks are removed. Returns how many
 * bindings were restored. */
size_t engine_restore(struct engine *e, uint32_t now);

/* Expires what is due; called from one timer. Returns expired parts. */
size_t engine_expire(struct engine *e, uint32_t now);

/* Truncates s to at most max octets without splitting a UTF-8 sequence. */
uint16_t utf8_truncate(const char *s, uint16_t len, uint16_t max);

#endif
