/* The mapping table: two liburcu lock-free hash tables (cds_lfht) over the
 * same binding objects, by internal key and by external key, plus one
 * expiry min-heap keyed by monotonic deadline (one timer drives it).
 *
 * Readers (workers, control dumps) call the lookups under rcu_read_lock()
 * and never take a lock. Writers must serialise per subscriber (the
 * subscriber lock); the heap has its own short mutex. Every thread that
 * touches the table must be registered with rcu_register_thread(). */
#ifndef AFTR_TABLE_H
#define AFTR_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "aftr/binding.h"
#include "common/err.h"

struct table;

struct table *table_new(void);
/* Frees every binding still linked. No reader may be active. */
void table_free(struct table *t);

/* rcu_read_lock() held by the caller. */
struct binding *table_lookup_int(struct table *t, uint32_t sub, uint8_t proto,
				 const struct in6_addr *int_addr, uint16_t int_port);
struct binding *table_lookup_ext(struct table *t, uint8_t proto,
				 const struct in6_addr *ext_addr, uint16_t ext_port);

/* Links b into both indexes and the heap (at b->expires). PERR_EXISTS if
 * either key is taken (then nothing is linked). */
enum perr table_insert(struct table *t, struct binding *b);
/* Unlinks from both indexes and the heap and frees after a grace period. */
void table_remove(struct table *t, struct binding *b);
/* After changing b->expires: reposition in the heap. */
void table_requeue(struct table *t, struct binding *b);

/* Calls cb for every binding whose expires <= now, in deadline order,
 * after taking it off the heap (it stays in the indexes). cb decides:
 * table_remove(), or set a later expiry and table_requeue(). Returns the
 * number of callbacks. Must not be called concurrently with itself.
 * cb runs inside rcu_read_lock() (b stays valid even if another writer
 * removes it meanwhile), so it must not call synchronize_rcu(). */
size_t table_expire(struct table *t, uint32_t now,
		    void (*cb)(void *arg, struct binding *b), void *arg);
/* Earliest deadline, UINT32_MAX if empty. */
uint32_t table_next_expiry(struct table *t);
size_t table_count(struct table *t);

/* Visits every binding (rcu_read_lock() held by the caller). Stop by
 * returning non-zero from cb. */
void table_foreach(struct table *t, int (*cb)(void *arg, struct binding *b), void *arg);

#endif
