/* External port allocation inside one subscriber's PCP port range, per
 * protocol: a bitmap of ports in use plus a hold-down list of released
 * ports (RFC 6888 REQ-8, RFC 6887 §15), reclaimable by the same client
 * (internal address, internal port, nonce). Not thread-safe: the owning
 * subscriber's lock protects it. */
#ifndef AFTR_PORTALLOC_H
#define AFTR_PORTALLOC_H

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>

#include "common/err.h"

struct port_owner {
	struct in6_addr int_addr;
	uint16_t int_port;
	uint8_t nonce[12];
};

struct port_hold {
	uint16_t port;
	uint32_t until;             /* monotonic seconds */
	struct port_owner owner;
};

struct portalloc {
	uint8_t proto;
	uint16_t lo;                /* first port of the range */
	uint16_t n;                 /* ports in the range */
	uint16_t used;
	uint64_t *bits;             /* n bits, 1 = in use (forbidden ports too),
				     * then as many bits, 1 = held down */
	struct port_hold *holds;
	unsigned nholds, capholds;
	uint32_t cursor;            /* next-fit start, seeded randomly */
};

/* Ports that are never handed out: < 1024, UDP 5350/5351 (RFC 6887 §11.3). */
bool port_forbidden(uint8_t proto, uint16_t port);

enum perr portalloc_init(struct portalloc *pa, uint8_t proto, uint16_t lo, uint16_t n,
			 uint32_t seed);
void portalloc_fini(struct portalloc *pa);
bool portalloc_in_range(const struct portalloc *pa, uint16_t port);

/* Takes a specific port. PERR_EXISTS if in use, held for another owner,
 * out of range or forbidden. A hold for the same owner is consumed. */
enum perr portalloc_take(struct portalloc *pa, uint16_t port, uint32_t now,
			 const struct port_owner *owner);
/* Takes a port held for this owner if there is one, else any free port
 * (skipping held and forbidden ones). PERR_PORTS_EXHAUSTED if none. */
enum perr portalloc_any(struct portalloc *pa, uint32_t now, const struct port_owner *owner,
			uint16_t *port);
/* Releases port; it is held until now + hold_down for owner (0 = no hold). */
void portalloc_release(struct portalloc *pa, uint16_t port, uint32_t now, uint32_t hold_down,
		       const struct port_owner *owner);
/* Number of ports currently held down (expired holds are dropped). */
unsigned portalloc_held(struct portalloc *pa, uint32_t now);

#endif
