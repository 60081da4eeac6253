/* The bounded event queue between pcpd's threads and the hook thread.
 * push never blocks beyond a short mutex and never allocates; when the
 * ring is full the event is not dropped but coalesced: its subscriber is
 * marked, and the hook re-reads that subscriber's mappings whole. */
#ifndef DDNS_QUEUE_H
#define DDNS_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ddns-hook/event.h"

#define DDNS_OVF_WORDS (DDNS_SUB_MAX / 64)

struct ddns_queue;

struct ddns_queue *ddns_queue_new(size_t capacity);
void ddns_queue_free(struct ddns_queue *q);
/* Returns true if queued, false if coalesced into the overflow set. */
bool ddns_queue_push(struct ddns_queue *q, const struct ddns_event *ev);
/* Moves up to max events out, oldest first. */
size_t ddns_queue_pop(struct ddns_queue *q, struct ddns_event *out, size_t max);
/* Takes the overflow set (which[] gets the marked subscribers, the set is
 * cleared). Returns the number of subscribers taken. */
size_t ddns_queue_take_overflow(struct ddns_queue *q, uint64_t which[DDNS_OVF_WORDS]);

struct ddns_queue_stats {
	uint64_t pushed, coalesced, depth, capacity, high_water;
};
void ddns_queue_stats(struct ddns_queue *q, struct ddns_queue_stats *st);

#endif
