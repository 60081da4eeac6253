/* Mapping table: two cds_lfht indexes over the same bindings plus an
 * expiry min-heap. See table.h for the concurrency contract. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <urcu.h>
#include <urcu/rculfhash.h>

#include "aftr/table.h"
#include "common/addr.h"

/* The heap stores a snapshot of the deadline next to the pointer: writers
 * change b->expires under the subscriber lock, not the heap lock, so the
 * heap must not read it while sifting. */
struct heap_ent {
	uint32_t key;
	struct binding *b;
};

struct table {
	struct cds_lfht *by_int;
	struct cds_lfht *by_ext;
	uint32_t seed;
	unsigned long count;        /* atomic */

	pthread_mutex_t heap_lock;
	struct heap_ent *heap;
	uint32_t heap_n;
	uint32_t heap_cap;
	/* Slots promised to linked bindings, so that a push after linking
	 * can never fail for lack of memory. */
	uint32_t heap_reserved;
};

struct int_key {
	uint32_t sub;
	uint8_t proto;
	uint16_t port;
	const struct in6_addr *addr;
};

struct ext_key {
	uint8_t proto;
	uint16_t port;
	const struct in6_addr *addr;
};

/* 64-bit finaliser (splitmix64): spreads the small key fields over every
 * bit, since lfht uses the low bits for buckets and the reversed hash
 * for ordering. */
static unsigned long mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return (unsigned long)x;
}

static unsigned long hash_int(const struct table *t, const struct int_key *k)
{
	uint64_t h = addr_hash(k->addr, t->seed);
	h = (h << 32) ^ ((uint64_t)k->sub << 24) ^ ((uint64_t)k->proto << 16) ^ k->port;
	return mix64(h ^ t->seed);
}

static unsigned long hash_ext(const struct table *t, const struct ext_key *k)
{
	uint64_t h = addr_hash(k->addr, ~t->seed);
	h = (h << 32) ^ ((uint64_t)k->proto << 16) ^ k->port;
	return mix64(h + t->seed);
}

static int match_int(struct cds_lfht_node *node, const void *key)
{
	const struct binding *b = caa_container_of(node, struct binding, by_int);
	const struct int_key *k = key;
	return b->sub == k->sub && b->proto == k->proto && b->int_port == k->port &&
	       addr_equal(&b->int_addr, k->addr);
}

static int match_ext(struct cds_lfht_node *node, const void *key)
{
	const struct binding *b = caa_container_of(node, struct binding, by_ext);
	const struct ext_key *k = key;
	return b->proto == k->proto && b->ext_port == k->port && addr_equal(&b->ext_addr, k->addr);
}

static uint32_t random_seed(void)
{
	uint32_t s;
	if (getrandom(&s, sizeof(s), GRND_NONBLOCK) == (ssize_t)sizeof(s))
		return s;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec;
}

struct table *table_new(void)
{
	struct table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->seed = random_seed();
	int flags = CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING;
	t->by_int = cds_lfht_new(1024, 1024, 0, flags, NULL);
	t->by_ext = cds_lfht_new(1024, 1024, 0, flags, NULL);
	if (!t->by_int || !t->by_ext || pthread_mutex_init(&t->heap_lock, NULL) != 0) {
		if (t->by_int)
			cds_lfht_destroy(t->by_int, NULL);
		if (t->by_ext)
			cds_lfht_destroy(t->by_ext, NULL);
		free(t);
		return NULL;
	}
	return t;
}

void table_free(struct table *t)
{
	if (!t)
		return;
	/* cds_lfht_destroy refuses a non-empty table, and a resize worker may
	 * still walk deleted nodes until destroy has flushed it: unlink
	 * everything, destroy, and only then free. */
	size_t n = 0, cap = 0;
	struct binding **v = NULL;
	struct cds_lfht_iter it;
	struct binding *b;

	rcu_read_lock();
	cds_lfht_for_each_entry(t->by_int, &it, b, by_int) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 256;
			struct binding **nv = realloc(v, ncap * sizeof(*nv));
			if (!nv)
				break;  /* keep what we have; the rest is leaked, not corrupted */
			v = nv;
			cap = ncap;
		}
		cds_lfht_del(t->by_int, &b->by_int);
		cds_lfht_del(t->by_ext, &b->by_ext);
		v[n++] = b;
	}
	rcu_read_unlock();

	cds_lfht_destroy(t->by_int, NULL);
	cds_lfht_destroy(t->by_ext, NULL);
	for (size_t i = 0; i < n; i++)
		binding_free(v[i]);
	free(v);
	free(t->heap);
	pthread_mutex_destroy(&t->heap_lock);
	free(t);
}

struct binding *table_lookup_int(struct table *t, uint32_t sub, uint8_t proto,
				 const struct in6_addr *int_addr, uint16_t int_port)
{
	struct int_key k = { .sub = sub, .proto = proto, .port = int_port, .addr = int_addr };
	struct cds_lfht_iter it;
	cds_lfht_lookup(t->by_int, hash_int(t, &k), match_int, &k, &it);
	struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
	return node ? caa_container_of(node, struct binding, by_int) : NULL;
}

struct binding *table_lookup_ext(struct table *t, uint8_t proto,
				 const struct in6_addr *ext_addr, uint16_t ext_port)
{
	struct ext_key k = { .proto = proto, .port = ext_port, .addr = ext_addr };
	struct cds_lfht_iter it;
	cds_lfht_lookup(t->by_ext, hash_ext(t, &k), match_ext, &k, &it);
	struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
	return node ? caa_container_of(node, struct binding, by_ext) : NULL;
}

/* ---- expiry heap (heap_lock held) ---- */

static void heap_set(struct table *t, uint32_t i, struct heap_ent e)
{
	t->heap[i] = e;
	e.b->heap_idx = i;
}

static void heap_up(struct table *t, uint32_t i)
{
	struct heap_ent e = t->heap[i];
	while (i > 0) {
		uint32_t p = (i - 1) / 2;
		if (t->heap[p].key <= e.key)
			break;
		heap_set(t, i, t->heap[p]);
		i = p;
	}
	heap_set(t, i, e);
}

static void heap_down(struct table *t, uint32_t i)
{
	struct heap_ent e = t->heap[i];
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= t->heap_n)
			break;
		if (c + 1 < t->heap_n && t->heap[c + 1].key < t->heap[c].key)
			c++;
		if (e.key <= t->heap[c].key)
			break;
		heap_set(t, i, t->heap[c]);
		i = c;
	}
	heap_set(t, i, e);
}

static bool heap_reserve(struct table *t)
{
	if (t->heap_reserved == t->heap_cap) {
		uint32_t ncap = t->heap_cap ? t->heap_cap * 2 : 1024;
		if (ncap <= t->heap_cap)
			return false;
		struct heap_ent *nh = realloc(t->heap, (size_t)ncap * sizeof(*nh));
		if (!nh)
			return false;
		t->heap = nh;
		t->heap_cap = ncap;
	}
	t->heap_reserved++;
	return true;
}

static void heap_push(struct table *t, struct binding *b)
{
	uint32_t i = t->heap_n++;
	t->heap[i] = (struct heap_ent){ .key = b->expires, .b = b };
	heap_up(t, i);
}

static void heap_remove(struct table *t, struct binding *b)
{
	uint32_t i = b->heap_idx;
	if (i == UINT32_MAX)
		return;
	b->heap_idx = UINT32_MAX;
	uint32_t last = --t->heap_n;
	if (i == last)
		return;
	struct binding *m = t->heap[last].b;
	heap_set(t, i, t->heap[last]);
	heap_up(t, i);
	heap_down(t, m->heap_idx);
}

/* ---- writers ---- */

enum perr table_insert(struct table *t, struct binding *b)
{
	struct int_key ik = { .sub = b->sub, .proto = b->proto, .port = b->int_port,
			      .addr = &b->int_addr };
	struct ext_key ek = { .proto = b->proto, .port = b->ext_port, .addr = &b->ext_addr };
	unsigned long hi = hash_int(t, &ik), he = hash_ext(t, &ek);

	b->heap_idx = UINT32_MAX;
	pthread_mutex_lock(&t->heap_lock);
	bool ok = heap_reserve(t);
	pthread_mutex_unlock(&t->heap_lock);
	if (!ok)
		return PERR_NOMEM;

	enum perr ret = PERR_OK;
	bool wait_gp = false;
	rcu_read_lock();
	/* The internal key is owned by one subscriber, whose lock serialises
	 * writers: this check is authoritative and the common refusal never
	 * publishes b. The external key can race across subscribers (only
	 * with overlapping static ports), so it goes first with add_unique,
	 * which refuses without publishing. */
	struct cds_lfht_iter it;
	cds_lfht_lookup(t->by_int, hi, match_int, &ik, &it);
	if (cds_lfht_iter_get_node(&it)) {
		ret = PERR_EXISTS;
	} else if (cds_lfht_add_unique(t->by_ext, he, match_ext, &ek, &b->by_ext) != &b->by_ext) {
		ret = PERR_EXISTS;
	} else if (cds_lfht_add_unique(t->by_int, hi, match_int, &ik, &b->by_int) != &b->by_int) {
		/* Only if writers of one subscriber were not serialised: b was
		 * visible by its external key for a moment. */
		cds_lfht_del(t->by_ext, &b->by_ext);
		ret = PERR_EXISTS;
		wait_gp = true;
	}
	rcu_read_unlock();

	pthread_mutex_lock(&t->heap_lock);
	if (ret == PERR_OK)
		heap_push(t, b);
	else
		t->heap_reserved--;
	pthread_mutex_unlock(&t->heap_lock);

	if (ret == PERR_OK)
		uatomic_inc(&t->count);
	/* The caller frees b at once on failure: readers that saw it must
	 * be gone first (impossible to wait for from inside a read-side
	 * section, which that unserialised caller would also be violating). */
	if (wait_gp && !rcu_read_ongoing())
		synchronize_rcu();
	return ret;
}

void table_remove(struct table *t, struct binding *b)
{
	rcu_read_lock();
	int r = cds_lfht_del(t->by_int, &b->by_int);
	if (r == 0)
		cds_lfht_del(t->by_ext, &b->by_ext);
	rcu_read_unlock();
	if (r != 0)
		return;  /* already removed: never free twice */

	pthread_mutex_lock(&t->heap_lock);
	heap_remove(t, b);
	t->heap_reserved--;
	pthread_mutex_unlock(&t->heap_lock);
	uatomic_dec(&t->count);
	binding_free_rcu(b);
}

void table_requeue(struct table *t, struct binding *b)
{
	pthread_mutex_lock(&t->heap_lock);
	if (cds_lfht_is_node_deleted(&b->by_int)) {
		/* removed meanwhile: queuing it would resurrect freed memory */
	} else if (b->heap_idx == UINT32_MAX) {
		heap_push(t, b);
	} else {
		uint32_t i = b->heap_idx;
		t->heap[i].key = b->expires;
		heap_up(t, i);
		heap_down(t, b->heap_idx);
	}
	pthread_mutex_unlock(&t->heap_lock);
}

size_t table_expire(struct table *t, uint32_t now,
		    void (*cb)(void *arg, struct binding *b), void *arg)
{
	size_t n = 0;
	pthread_mutex_lock(&t->heap_lock);
	while (t->heap_n > 0 && t->heap[0].key <= now) {
		struct binding *b = t->heap[0].b;
		heap_remove(t, b);
		pthread_mutex_unlock(&t->heap_lock);
		/* The read lock keeps b's memory valid even if another writer
		 * removes it while cb waits for the subscriber lock. */
		rcu_read_lock();
		cb(arg, b);
		rcu_read_unlock();
		n++;
		pthread_mutex_lock(&t->heap_lock);
	}
	pthread_mutex_unlock(&t->heap_lock);
	return n;
}

uint32_t table_next_expiry(struct table *t)
{
	pthread_mutex_lock(&t->heap_lock);
	uint32_t e = t->heap_n ? t->heap[0].key : UINT32_MAX;
	pthread_mutex_unlock(&t->heap_lock);
	return e;
}

size_t table_count(struct table *t)
{
	return uatomic_read(&t->count);
}

void table_foreach(struct table *t, int (*cb)(void *arg, struct binding *b), void *arg)
{
	struct cds_lfht_iter it;
	struct binding *b;
	cds_lfht_for_each_entry(t->by_int, &it, b, by_int) {
		if (cb(arg, b))
			break;
	}
}
