/* Conntrack (libnetfilter_conntrack) for the nftables backend: removing
 * the flows of a deleted or changed binding, and the implicit mappings
 * PEER looks up or creates (RFC 6887 §12.3). All calls are synchronous,
 * one netlink request each, on the handle's own socket; IPv4 only (the
 * AFTR's NAT44); addresses are IPv4-mapped in6_addr, ports host order.
 * A handle is not thread-safe: one per thread, or a lock around it. */
#ifndef AFTR_CT_H
#define AFTR_CT_H

#include <stdint.h>
#include <netinet/in.h>

#include "common/err.h"

struct ct;

/* Opens a ctnetlink handle in the current network namespace. NULL on
 * failure (errno set). */
struct ct *ct_open(void);
void ct_close(struct ct *c);

/* Removes every conntrack entry whose ct mark equals mark (kernel-side
 * flush by mark/mask, one request). *removed (may be NULL) gets how many
 * were removed where the kernel tells, else 0. Mark 0 is PERR_INVAL: it
 * would flush every unmarked flow. */
enum perr ct_flush_mark(struct ct *c, uint32_t mark, unsigned *removed);

/* Calls cb with the ct mark of every IPv4 entry whose mark is not 0 (one
 * dump of the whole table: for start-up only, never per request). */
enum perr ct_marks(struct ct *c, void (*cb)(void *arg, uint32_t mark), void *arg);

/* The flow (proto, int_addr:int_port -> peer:peer_port) in zone: fills the
 * external endpoint it is translated to (its reply tuple's destination).
 * PERR_NOT_FOUND if no such entry. */
enum perr ct_find(struct ct *c, uint16_t zone, uint8_t proto, const struct in6_addr *int_addr,
		  uint16_t int_port, const struct in6_addr *peer, uint16_t peer_port,
		  struct in6_addr *ext_addr, uint16_t *ext_port);

/* Creates the entry for that flow translated to ext_addr:ext_port (source
 * NAT), with ct mark and timeout (seconds). PERR_EXISTS if the flow or the
 * reply tuple is already taken. */
enum perr ct_create(struct ct *c, uint16_t zone, uint8_t proto, const struct in6_addr *int_addr,
		    uint16_t int_port, const struct in6_addr *peer, uint16_t peer_port,
		    const struct in6_addr *ext_addr, uint16_t ext_port, uint32_t mark,
		    uint32_t timeout);

/* Changes the timeout of that flow's entry (PEER refresh). */
enum perr ct_set_timeout(struct ct *c, uint16_t zone, uint8_t proto,
			 const struct in6_addr *int_addr, uint16_t int_port,
			 const struct in6_addr *peer, uint16_t peer_port, uint32_t timeout);

#endif
