/* Ring under one mutex: the critical section is a struct copy, shorter
 * than any lock-free scheme's retry loop would be under contention. */
#include "ddns-hook/queue.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct ddns_queue {
	pthread_mutex_t lock;
	size_t cap, head, len, high;
	uint64_t pushed, coalesced;
	_Atomic uint64_t ovf[DDNS_OVF_WORDS];
	struct ddns_event ev[];
};

struct ddns_queue *ddns_queue_new(size_t capacity)
{
	if (!capacity)
		capacity = 1;
	struct ddns_queue *q = calloc(1, sizeof(*q) + capacity * sizeof(q->ev[0]));
	if (!q)
		return NULL;
	pthread_mutex_init(&q->lock, NULL);
	q->cap = capacity;
	/* fault the ring in now, not page by page on the PCP path */
	memset(q->ev, 0, capacity * sizeof(q->ev[0]));
	return q;
}

void ddns_queue_free(struct ddns_queue *q)
{
	if (!q)
		return;
	pthread_mutex_destroy(&q->lock);
	free(q);
}

bool ddns_queue_push(struct ddns_queue *q, const struct ddns_event *ev)
{
	pthread_mutex_lock(&q->lock);
	q->pushed++;
	if (q->len == q->cap) {
		q->coalesced++;
		uint32_t i = ev->sub_index % DDNS_SUB_MAX;
		atomic_fetch_or(&q->ovf[i / 64], (uint64_t)1 << (i % 64));
		pthread_mutex_unlock(&q->lock);
		return false;
	}
	q->ev[(q->head + q->len) % q->cap] = *ev;
	q->len++;
	if (q->len > q->high)
		q->high = q->len;
	pthread_mutex_unlock(&q->lock);
	return true;
}

size_t ddns_queue_pop(struct ddns_queue *q, struct ddns_event *out, size_t max)
{
	pthread_mutex_lock(&q->lock);
	size_t n = 0;
	while (n < max && q->len) {
		out[n++] = q->ev[q->head];
		q->head = (q->head + 1) % q->cap;
		q->len--;
	}
	pthread_mutex_unlock(&q->lock);
	return n;
}

size_t ddns_queue_take_overflow(struct ddns_queue *q, uint64_t which[DDNS_OVF_WORDS])
{
	size_t n = 0;
	for (unsigned w = 0; w < DDNS_OVF_WORDS; w++) {
		which[w] = atomic_exchange(&q->ovf[w], 0);
		n += (size_t)__builtin_popcountll(which[w]);
	}
	return n;
}

void ddns_queue_stats(struct ddns_queue *q, struct ddns_queue_stats *st)
{
	pthread_mutex_lock(&q->lock);
	st->pushed = q->pushed;
	st->coalesced = q->coalesced;
	st->depth = q->len;
	st->capacity = q->cap;
	st->high_water = q->high;
	pthread_mutex_unlock(&q->lock);
}
