/* Mapping-table benchmark: insert and lookup rates (1 and 2 threads) and
 * heap memory per binding, hash tables and expiry heap included.
 * Usage: bench_table [max_n]   (default 1000000) */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <urcu.h>

#include "aftr/table.h"
#include "common/addr.h"

struct key {
	uint32_t sub;
	struct in6_addr int_addr;
	uint16_t int_port;
	struct in6_addr ext_addr;
	uint16_t ext_port;
};

/* 16 hosts per subscriber, external ports from 100.64/10 in 2048-port blocks. */
static void make_key(struct key *k, uint32_t i)
{
	k->sub = i / 16;
	addr_from_v4(&k->int_addr, 0xc0a80102u + i % 16);
	k->int_port = (uint16_t)(1024 + (i * 7919u) % 60000);
	addr_from_v4(&k->ext_addr, 0x64400000u + i / 2048);
	k->ext_port = (uint16_t)(1024 + i % 2048);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t heap_bytes(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

struct lctx {
	struct table *t;
	const struct key *keys;
	const uint32_t *order;
	uint32_t n;
	unsigned reps;
	int by_ext;        /* 0 int, 1 ext, 2 both */
	unsigned long miss;
};

static void *lookups(void *arg)
{
	struct lctx *c = arg;
	rcu_register_thread();
	unsigned long miss = 0;
	for (unsigned r = 0; r < c->reps; r++) {
		rcu_read_lock();
		for (uint32_t j = 0; j < c->n; j++) {
			const struct key *k = &c->keys[c->order[j]];
			if (c->by_ext != 1 && !table_lookup_int(c->t, k->sub, IPPROTO_TCP,
								 &k->int_addr, k->int_port))
				miss++;
			if (c->by_ext != 0 && !table_lookup_ext(c->t, IPPROTO_TCP, &k->ext_addr,
								 k->ext_port))
				miss++;
			/* leave the read-side section now and then so that
			 * grace periods (deferred frees, resizes) progress */
			if ((j & 1023) == 1023) {
				rcu_read_unlock();
				rcu_read_lock();
			}
		}
		rcu_read_unlock();
	}
	rcu_unregister_thread();
	c->miss = miss;
	return NULL;
}

static double run_lookups(struct lctx *tmpl, unsigned nthreads, const uint32_t **orders)
{
	pthread_t th[2];
	struct lctx c[2];
	double t0 = now_s();
	for (unsigned i = 0; i < nthreads; i++) {
		c[i] = *tmpl;
		c[i].order = orders[i];
		pthread_create(&th[i], NULL, lookups, &c[i]);
	}
	for (unsigned i = 0; i < nthreads; i++) {
		pthread_join(th[i], NULL);
		if (c[i].miss)
			fprintf(stderr, "bench: %lu lookups missed\n", c[i].miss);
	}
	double dt = now_s() - t0;
	unsigned per = tmpl->by_ext == 2 ? 2 : 1;
	return (double)nthreads * per * tmpl->n * tmpl->reps / dt;
}

static void shuffle(uint32_t *v, uint32_t n, uint32_t seed)
{
	for (uint32_t i = 0; i < n; i++)
		v[i] = i;
	for (uint32_t i = n - 1; i > 0; i--) {
		seed = seed * 1664525u + 1013904223u;
		uint32_t j = (uint32_t)(((uint64_t)seed * (i + 1)) >> 32);
		uint32_t x = v[i];
		v[i] = v[j];
		v[j] = x;
	}
}

int main(int argc, char **argv)
{
	uint32_t max_n = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 1000000;
	rcu_register_thread();
	printf("sizeof(struct binding) = %zu bytes, heap entry = 16 bytes, %ld CPUs\n",
	       sizeof(struct binding), sysconf(_SC_NPROCESSORS_ONLN));
	printf("%9s %12s %12s %12s %12s %13s %10s\n", "bindings", "insert/s", "lkp-int/s",
	       "lkp-ext/s", "lkp-both/s", "lkp-both/s*2T", "B/binding");

	for (uint32_t n = 1000; n <= max_n; n *= 10) {
		struct key *keys = malloc(n * sizeof(*keys));
		uint32_t *o1 = malloc(n * sizeof(*o1)), *o2 = malloc(n * sizeof(*o2));
		for (uint32_t i = 0; i < n; i++)
			make_key(&keys[i], i);
		shuffle(o1, n, 1);
		shuffle(o2, n, 2);
		unsigned reps = n >= 2000000 ? 1 : 2000000 / n;

		size_t m0 = heap_bytes();
		struct table *t = table_new();
		double t0 = now_s();
		for (uint32_t i = 0; i < n; i++) {
			struct binding *b = binding_new();
			b->sub = keys[i].sub;
			b->proto = IPPROTO_TCP;
			b->int_addr = keys[i].int_addr;
			b->int_port = keys[i].int_port;
			b->ext_addr = keys[i].ext_addr;
			b->ext_port = keys[i].ext_port;
			b->flags = BF_MAP;
			b->map_expires = b->expires = 120 + i % 3600;
			if (table_insert(t, b) != PERR_OK) {
				fprintf(stderr, "bench: insert %u failed\n", i);
				return 1;
			}
		}
		double ins = n / (now_s() - t0);
		usleep(200000);   /* let the resize worker settle the bucket tables */
		size_t m1 = heap_bytes();

		struct lctx c = { .t = t, .keys = keys, .n = n, .reps = reps };
		const uint32_t *ord[2] = { o1, o2 };
		c.by_ext = 0;
		double li = run_lookups(&c, 1, ord);
		c.by_ext = 1;
		double le = run_lookups(&c, 1, ord);
		c.by_ext = 2;
		double lb = run_lookups(&c, 1, ord);
		double lb2 = run_lookups(&c, 2, ord);

		printf("%9u %12.0f %12.0f %12.0f %12.0f %13.0f %10.1f\n", n, ins, li, le, lb, lb2,
		       (double)(m1 - m0) / n);
		fflush(stdout);
		table_free(t);
		free(keys);
		free(o1);
		free(o2);
	}
	rcu_barrier();
	rcu_unregister_thread();
	return 0;
}
