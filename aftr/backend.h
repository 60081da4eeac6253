/* Kernel backend interface: a const ops table chosen at run time.
 *
 * Asynchronous by contract: submit() queues a change and the backend calls
 * done() once the kernel has it (or has refused it). A backend may call
 * done() from inside submit() (the in-memory one does) or later from
 * flush(), which the owner calls once per event-loop iteration so that all
 * changes queued in that iteration become one kernel transaction (group
 * commit). A response is sent only from done().
 *
 * Threading: submit() may be called from any worker thread; flush() and
 * done() run on the thread that calls flush(). The other ops are called
 * from the main thread only (start-up, control socket).
 *
 * A change describes the WHOLE state the kernel must hold for one binding
 * (keyed by proto, ext_addr, ext_port) after it is applied: KOP_ADD installs
 * it, KOP_REFRESH makes the installed state equal to it (timeouts, inbound
 * part on/off, filters), KOP_DEL removes it and every conntrack entry that
 * carried it. The backend keeps its own record of what it installed so it
 * can compute the difference. */
#ifndef AFTR_BACKEND_H
#define AFTR_BACKEND_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#include "aftr/aftr_config.h"
#include "aftr/binding.h"
#include "common/err.h"

enum kop { KOP_ADD, KOP_DEL, KOP_REFRESH };

/* A remote peer of a PEER part (RFC 6887 §12). */
struct kpeer {
	struct in6_addr addr;        /* IPv4-mapped */
	uint16_t port;
	uint8_t nonce[BINDING_NONCE_LEN];
	uint32_t timeout;            /* seconds left */
};

/* A change is a value: the backend copies what it needs in submit(). */
struct kchange {
	enum kop op;
	uint32_t sub;                /* subscriber index */
	uint16_t zone;               /* its conntrack zone (kzone_of(sub)) */
	uint8_t proto;
	struct in6_addr int_addr;
	uint16_t int_port;
	struct in6_addr ext_addr;
	uint16_t ext_port;
	uint32_t timeout;            /* seconds until the kernel expires the binding; 0 = never */
	uint32_t map_timeout;        /* seconds left of the inbound (MAP) part; 0 = never */
	uint8_t flags;               /* BF_MAP installs the inbound DNAT; BF_STATIC etc. */
	uint8_t nonce[BINDING_NONCE_LEN];
	unsigned nfilters;
	const struct aftr_filter *filters;
	unsigned npeers;             /* PEER parts (kept for restart) */
	const struct kpeer *peers;
	/* PEER: this remote peer's flow must exist in conntrack with this
	 * external endpoint; created if absent (NULL = nothing to create) */
	const struct kpeer *new_peer;
};

/* Per-subscriber data-plane state, installed when a subscriber is
 * provisioned (softwire -> zone, port block -> zone and mark, NAPT range). */
struct ksub {
	uint32_t index;
	uint16_t zone;               /* kzone_of(index) */
	uint32_t mark;               /* packet mark for return traffic: kmark_of(index) */
	char ifname[IF_NAMESIZE];    /* softwire; "" = none (plain mode without a tunnel) */
	struct in6_addr ext_addr;
	uint16_t block_lo;           /* whole block: [block_lo, block_lo + block_n) */
	uint16_t block_n;
	uint16_t pcp_n;              /* first pcp_n are PCP's; the rest is dynamic NAPT */
};

/* Subscriber index -> conntrack zone and packet mark (the mark/zone
 * contract, docs/operations.md). Zones are 16-bit and 0 is the default
 * zone, so indexes 0..65534 are usable. */
#define KZONE_MAX_INDEX 65534u
static inline uint16_t kzone_of(uint32_t index) { return (uint16_t)(index + 1); }
static inline uint32_t kmark_of(uint32_t index) { return index + 1; }
/* Packets that came in on a softwire carry this mark bit until NAT. */
#define KMARK_SOFTWIRE 0x80000000u

struct kbackend_conf {
	const char *table;           /* nft table name ("pcpd") */
	bool keep_table;             /* leave the table in the kernel on close (default) */
	const struct aftr_config *aftr;  /* the pool, for kmark_id() */
};

/* Statistics for pcpctl stats; monotonic counters. */
#define KSTAT_HIST 8                 /* batch sizes 1, 2-3, 4-15, 16-63, 64-255, 256-1023, 1024-4095, 4096+ */
struct kbackend_stats {
	uint64_t commits;            /* transactions committed */
	uint64_t commit_failures;    /* transactions the kernel refused */
	uint64_t changes;            /* changes submitted */
	uint64_t messages;           /* netlink messages sent */
	uint64_t enobufs;            /* ENOBUFS seen (and recovered) */
	uint64_t latency_us_sum;     /* commit latency: send of BEGIN to last ACK */
	uint64_t latency_us_max;
	uint64_t batch_max;
	uint64_t batch_hist[KSTAT_HIST];
	uint64_t ct_flushes;         /* conntrack flush requests */
	uint64_t ct_created;         /* conntrack entries created for PEER */
	uint64_t elements;           /* bindings currently installed */
};

typedef void (*kbackend_done_fn)(void *arg, enum perr result);
/* restore() hands back each binding found in the kernel; c->op is KOP_ADD,
 * the timeouts are what is left. Pointers in c are valid during the call. */
typedef void (*kbackend_restore_fn)(void *arg, const struct kchange *c);

struct kbackend;

struct kbackend_ops {
	const char *name;
	/* Opens the backend. Creates the table and its static chains and maps
	 * if missing; an existing table of ours is kept (restart). *fresh is set
	 * to true when the table did not exist (state was lost). */
	struct kbackend *(*open)(const struct kbackend_conf *conf, bool *fresh);
	void (*submit)(struct kbackend *kb, const struct kchange *c, kbackend_done_fn done,
		       void *arg);
	void (*flush)(struct kbackend *kb);
	/* Synchronous; the subscriber's whole data-plane state. sub_set
	 * replaces what was there. */
	enum perr (*sub_set)(struct kbackend *kb, const struct ksub *s);
	enum perr (*sub_del)(struct kbackend *kb, const struct ksub *s);
	/* Reads back every binding installed (restart); inconsistent elements
	 * are removed and not reported. */
	enum perr (*restore)(struct kbackend *kb, kbackend_restore_fn cb, void *arg);
	/* PEER: the external endpoint an existing flow (zone, proto, internal
	 * endpoint -> peer) uses. PERR_NOT_FOUND if there is no such flow. */
	enum perr (*peer_find)(struct kbackend *kb, uint16_t zone, uint8_t proto,
			       const struct in6_addr *int_addr, uint16_t int_port,
			       const struct in6_addr *peer_addr, uint16_t peer_port,
			       struct in6_addr *ext_addr, uint16_t *ext_port);
	void (*stats)(struct kbackend *kb, struct kbackend_stats *out);
	void (*close)(struct kbackend *kb);
};

struct kbackend {
	const struct kbackend_ops *ops;
};

/* Looks a backend up by name ("memory", "nftables"); NULL if unknown. */
const struct kbackend_ops *kbackend_find(const char *name);

/* The conntrack mark of every flow that uses a binding: unique per
 * (external address, protocol, external port) so one flush-by-mark removes
 * exactly that binding's flows: (ordinal of the address in the pool + 1)
 * << 17 | (UDP ? 1 << 16 : 0) | port. Pools hold at most KMARK_MAX_POOL
 * addresses so bit 31 is never set. 0 if the address is not in the pool. */
#define KMARK_MAX_POOL 16383u
uint32_t kmark_id(const struct kbackend_conf *conf, const struct in6_addr *ext_addr,
		  uint8_t proto, uint16_t ext_port);

/* The inverse: the binding a conntrack mark names. False for marks that
 * are no binding id (0, bit 31, beyond the pool). */
bool kmark_decode(const struct kbackend_conf *conf, uint32_t mark, struct in6_addr *ext_addr,
		  uint8_t *proto, uint16_t *ext_port);

extern const struct kbackend_ops kbackend_mem_ops;
extern const struct kbackend_ops kbackend_nft_ops;

/* In-memory backend: inspection and fault injection for tests. */
size_t kbackend_mem_count(struct kbackend *kb);
/* True if an element for (proto, ext_addr, ext_port) exists; fills *out. */
bool kbackend_mem_lookup(struct kbackend *kb, uint8_t proto, const struct in6_addr *ext_addr,
			 uint16_t ext_port, struct kchange *out);
/* The next n submits fail with err (PERR_KERNEL or PERR_NO_RESOURCES). */
void kbackend_mem_fail_next(struct kbackend *kb, unsigned n, enum perr err);

#endif
