/* Mapping table (both indexes, expiry heap, concurrency), bindings, the
 * in-memory kernel backend and the derived config sizes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <urcu.h>

#include "aftr/aftr_config.h"
#include "aftr/backend.h"
#include "aftr/binding.h"
#include "aftr/table.h"
#include "common/addr.h"

#define TCP 6
#define UDP 17

static struct binding *mk(uint32_t sub, uint8_t proto, uint32_t int_v4, uint16_t int_port,
			  uint32_t ext_v4, uint16_t ext_port, uint32_t expires)
{
	struct binding *b = binding_new();
	assert_non_null(b);
	b->sub = sub;
	b->proto = proto;
	addr_from_v4(&b->int_addr, int_v4);
	b->int_port = int_port;
	addr_from_v4(&b->ext_addr, ext_v4);
	b->ext_port = ext_port;
	b->flags = BF_MAP;
	b->map_expires = expires;
	binding_update_expires(b);
	return b;
}

static struct binding *lookup_int(struct table *t, uint32_t sub, uint8_t proto, uint32_t v4,
				  uint16_t port)
{
	struct in6_addr a;
	addr_from_v4(&a, v4);
	rcu_read_lock();
	struct binding *b = table_lookup_int(t, sub, proto, &a, port);
	rcu_read_unlock();
	return b;  /* safe to compare: the test thread is the only writer */
}

static struct binding *lookup_ext(struct table *t, uint8_t proto, uint32_t v4, uint16_t port)
{
	struct in6_addr a;
	addr_from_v4(&a, v4);
	rcu_read_lock();
	struct binding *b = table_lookup_ext(t, proto, &a, port);
	rcu_read_unlock();
	return b;
}

#define PRIV 0xc0a80102u   /* 192.168.1.2 */
#define PUB 0xcb00710au    /* 203.0.113.10 */

static void test_insert_lookup(void **state)
{
	(void)state;
	struct table *t = table_new();
	assert_non_null(t);
	assert_int_equal(table_count(t), 0);
	assert_int_equal(table_next_expiry(t), UINT32_MAX);

	struct binding *b1 = mk(1, TCP, PRIV, 80, PUB, 2000, 100);
	struct binding *b2 = mk(2, TCP, PRIV, 80, PUB, 2001, 100);  /* same private tuple, other B4 */
	struct binding *b3 = mk(1, UDP, PRIV, 80, PUB, 2000, 100);  /* same ports, other proto */
	assert_int_equal(table_insert(t, b1), PERR_OK);
	assert_int_equal(table_insert(t, b2), PERR_OK);
	assert_int_equal(table_insert(t, b3), PERR_OK);
	assert_int_equal(table_count(t), 3);

	assert_ptr_equal(lookup_int(t, 1, TCP, PRIV, 80), b1);
	assert_ptr_equal(lookup_int(t, 2, TCP, PRIV, 80), b2);
	assert_ptr_equal(lookup_int(t, 1, UDP, PRIV, 80), b3);
	assert_ptr_equal(lookup_ext(t, TCP, PUB, 2000), b1);
	assert_ptr_equal(lookup_ext(t, TCP, PUB, 2001), b2);
	assert_ptr_equal(lookup_ext(t, UDP, PUB, 2000), b3);

	assert_null(lookup_int(t, 3, TCP, PRIV, 80));
	assert_null(lookup_int(t, 1, TCP, PRIV, 81));
	assert_null(lookup_int(t, 1, TCP, PRIV + 1, 80));
	assert_null(lookup_ext(t, TCP, PUB, 2002));
	assert_null(lookup_ext(t, TCP, PUB + 1, 2000));
	assert_null(lookup_ext(t, UDP, PUB, 2001));
	table_free(t);
}

static void test_duplicates(void **state)
{
	(void)state;
	struct table *t = table_new();
	struct binding *b1 = mk(1, TCP, PRIV, 80, PUB, 2000, 100);
	assert_int_equal(table_insert(t, b1), PERR_OK);

	/* same internal key, new external port: nothing of it is linked */
	struct binding *d1 = mk(1, TCP, PRIV, 80, PUB, 3000, 50);
	assert_int_equal(table_insert(t, d1), PERR_EXISTS);
	assert_null(lookup_ext(t, TCP, PUB, 3000));
	assert_ptr_equal(lookup_int(t, 1, TCP, PRIV, 80), b1);
	assert_int_equal(d1->heap_idx, UINT32_MAX);
	binding_free(d1);

	/* same external key, new internal key */
	struct binding *d2 = mk(2, TCP, PRIV, 81, PUB, 2000, 50);
	assert_int_equal(table_insert(t, d2), PERR_EXISTS);
	assert_null(lookup_int(t, 2, TCP, PRIV, 81));
	assert_ptr_equal(lookup_ext(t, TCP, PUB, 2000), b1);
	assert_int_equal(d2->heap_idx, UINT32_MAX);
	binding_free(d2);

	assert_int_equal(table_count(t), 1);
	assert_int_equal(table_next_expiry(t), 100);  /* refused ones never reached the heap */
	table_free(t);
}

static void test_remove(void **state)
{
	(void)state;
	struct table *t = table_new();
	struct binding *b1 = mk(1, TCP, PRIV, 80, PUB, 2000, 10);
	struct binding *b2 = mk(1, TCP, PRIV, 81, PUB, 2001, 20);
	assert_int_equal(table_insert(t, b1), PERR_OK);
	assert_int_equal(table_insert(t, b2), PERR_OK);
	table_remove(t, b1);
	assert_int_equal(table_count(t), 1);
	assert_null(lookup_int(t, 1, TCP, PRIV, 80));
	assert_null(lookup_ext(t, TCP, PUB, 2000));
	assert_ptr_equal(lookup_ext(t, TCP, PUB, 2001), b2);
	assert_int_equal(table_next_expiry(t), 20);

	/* the keys are free again */
	struct binding *b3 = mk(1, TCP, PRIV, 80, PUB, 2000, 30);
	assert_int_equal(table_insert(t, b3), PERR_OK);
	assert_ptr_equal(lookup_int(t, 1, TCP, PRIV, 80), b3);
	table_remove(t, b2);
	table_remove(t, b3);
	assert_int_equal(table_count(t), 0);
	assert_int_equal(table_next_expiry(t), UINT32_MAX);
	table_free(t);
}

struct exp_log {
	struct table *t;
	uint16_t order[16];
	uint32_t at[16];
	unsigned n;
};

/* int_port 1xx: remove; 2xx: extend by 25 s and requeue once
 * (client_port marks "already extended"). */
static void expire_cb(void *arg, struct binding *b)
{
	struct exp_log *l = arg;
	assert_true(l->n < 16);
	l->order[l->n] = b->int_port;
	l->at[l->n++] = b->expires;
	assert_int_equal(b->heap_idx, UINT32_MAX);
	if (b->int_port >= 200 && b->client_port == 0) {
		b->client_port = 1;
		b->map_expires = b->expires + 25;
		binding_update_expires(b);
		table_requeue(l->t, b);
	} else {
		table_remove(l->t, b);
	}
}

static void test_expiry_order(void **state)
{
	(void)state;
	struct table *t = table_new();
	const uint32_t dl[] = { 50, 10, 30, 20, 40, 10, 60 };
	const uint16_t ip[] = { 101, 102, 103, 204, 105, 106, 107 };
	struct binding *bs[7];
	for (unsigned i = 0; i < 7; i++) {
		bs[i] = mk(1, TCP, PRIV + i, ip[i], PUB, (uint16_t)(2000 + i), dl[i]);
		assert_int_equal(table_insert(t, bs[i]), PERR_OK);
	}
	assert_int_equal(table_next_expiry(t), 10);
	/* move 107 from 60 to 15, and 101 from 50 to 70 */
	bs[6]->map_expires = 15;
	binding_update_expires(bs[6]);
	table_requeue(t, bs[6]);
	bs[0]->map_expires = 70;
	binding_update_expires(bs[0]);
	table_requeue(t, bs[0]);

	struct exp_log l = { .t = t };
	assert_int_equal(table_expire(t, 9, expire_cb, &l), 0);
	assert_int_equal(table_expire(t, 25, expire_cb, &l), 4);
	assert_int_equal(l.at[0], 10);
	assert_int_equal(l.at[1], 10);
	assert_true((l.order[0] == 102 && l.order[1] == 106) ||
		    (l.order[0] == 106 && l.order[1] == 102));
	assert_int_equal(l.order[2], 107);
	assert_int_equal(l.order[3], 204);   /* requeued at 45 */
	assert_int_equal(table_count(t), 4);
	assert_int_equal(table_next_expiry(t), 30);

	l.n = 0;
	assert_int_equal(table_expire(t, 100, expire_cb, &l), 4);
	const uint16_t want[] = { 103, 105, 204, 101 };
	const uint32_t want_at[] = { 30, 40, 45, 70 };
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(l.order[i], want[i]);
		assert_int_equal(l.at[i], want_at[i]);
	}
	assert_int_equal(table_count(t), 0);
	assert_int_equal(table_next_expiry(t), UINT32_MAX);
	table_free(t);
}

/* A larger heap against a sorted reference, with removals in the middle. */
static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

struct seq_log {
	struct table *t;
	uint32_t *got;
	unsigned n;
};

static void seq_cb(void *arg, struct binding *b)
{
	struct seq_log *l = arg;
	l->got[l->n++] = b->expires;
	table_remove(l->t, b);
}

static void test_expiry_heap_large(void **state)
{
	(void)state;
	enum { N = 5000 };
	struct table *t = table_new();
	struct binding **bs = calloc(N, sizeof(*bs));
	uint32_t *ref = calloc(N, sizeof(*ref)), *got = calloc(N, sizeof(*got));
	unsigned nref = 0;
	uint32_t x = 12345;
	for (unsigned i = 0; i < N; i++) {
		x = x * 1103515245u + 12345u;
		bs[i] = mk(i / 100, UDP, PRIV + i, 4000, PUB + i / 1000, (uint16_t)(1024 + i),
			   (x >> 8) % 100000);
		assert_int_equal(table_insert(t, bs[i]), PERR_OK);
	}
	for (unsigned i = 0; i < N; i++) {
		if (i % 3 == 0) {
			table_remove(t, bs[i]);
		} else {
			if (i % 3 == 1) {
				bs[i]->map_expires = (bs[i]->expires * 7) % 100000;
				binding_update_expires(bs[i]);
				table_requeue(t, bs[i]);
			}
			ref[nref++] = bs[i]->expires;
		}
	}
	qsort(ref, nref, sizeof(*ref), cmp_u32);
	assert_int_equal(table_count(t), nref);
	assert_int_equal(table_next_expiry(t), ref[0]);
	struct seq_log l = { .t = t, .got = got };
	assert_int_equal(table_expire(t, 100000, seq_cb, &l), nref);
	for (unsigned i = 0; i < nref; i++)
		assert_int_equal(got[i], ref[i]);
	assert_int_equal(table_count(t), 0);
	table_free(t);
	free(bs);
	free(ref);
	free(got);
}

struct fe {
	unsigned seen;
	unsigned stop_after;
	uint64_t port_sum;
};

static int foreach_cb(void *arg, struct binding *b)
{
	struct fe *f = arg;
	f->seen++;
	f->port_sum += b->ext_port;
	return f->stop_after && f->seen == f->stop_after;
}

static void test_foreach_count(void **state)
{
	(void)state;
	struct table *t = table_new();
	uint64_t sum = 0;
	for (unsigned i = 0; i < 3000; i++) {
		struct binding *b = mk(i % 7, TCP, PRIV + i, 80, PUB, (uint16_t)(1024 + i), 1000);
		assert_int_equal(table_insert(t, b), PERR_OK);
		sum += 1024 + i;
	}
	assert_int_equal(table_count(t), 3000);
	struct fe f = { 0 };
	rcu_read_lock();
	table_foreach(t, foreach_cb, &f);
	rcu_read_unlock();
	assert_int_equal(f.seen, 3000);
	assert_int_equal(f.port_sum, sum);

	struct fe g = { .stop_after = 10 };
	rcu_read_lock();
	table_foreach(t, foreach_cb, &g);
	rcu_read_unlock();
	assert_int_equal(g.seen, 10);
	table_free(t);  /* frees the 3000 linked bindings */
}

static void test_binding_parts(void **state)
{
	(void)state;
	struct binding *b = binding_new();
	assert_non_null(b);
	assert_int_equal(b->heap_idx, UINT32_MAX);
	assert_int_equal(b->expires, 0);

	struct peer_part *p1 = calloc(1, sizeof(*p1)), *p2 = calloc(1, sizeof(*p2));
	p1->expires = 300;
	p2->expires = 200;
	p1->next = p2;
	b->peers = p1;
	b->map_expires = 250;
	binding_update_expires(b);
	assert_int_equal(b->expires, 300);   /* MAP flag unset: map_expires ignored */
	b->flags = BF_MAP;
	b->map_expires = 400;
	binding_update_expires(b);
	assert_int_equal(b->expires, 400);
	b->flags = BF_STATIC;
	b->map_expires = UINT32_MAX;
	binding_update_expires(b);
	assert_int_equal(b->expires, UINT32_MAX);
	b->flags = 0;
	b->peers = p2;
	free(p1);
	binding_update_expires(b);
	assert_int_equal(b->expires, 200);

	struct filter_set *fs = filter_set_new(3);
	assert_non_null(fs);
	assert_int_equal(fs->n, 3);
	fs->f[2].port = 443;
	binding_set_filters(b, fs);
	assert_ptr_equal(b->filters, fs);
	binding_set_filters(b, filter_set_new(1));  /* old one freed after a grace period */
	assert_int_equal(b->filters->n, 1);
	binding_set_description(b, strdup("web"));
	binding_set_description(b, strdup("web server"));
	assert_string_equal(b->description, "web server");
	binding_set_filters(b, NULL);
	assert_null(b->filters);
	binding_free(b);  /* frees description and peers */
	binding_free(NULL);
	rcu_barrier();
}

/* ---- concurrency ---- */

enum { WRITERS = 4, READERS = 2, PER_WRITER = 20000 };

struct conc {
	struct table *t;
	int writers_done;          /* atomic */
	unsigned long errors;      /* atomic */
	unsigned long lookups;     /* atomic */
	unsigned long hits;        /* atomic */
};

struct wctx {
	struct conc *c;
	unsigned w;
};

static uint32_t key_int_v4(unsigned w, unsigned i)
{
	return 0x0a000000u | (w << 16) | i;   /* 10.w.x.y */
}

static uint32_t key_ext_v4(unsigned w)
{
	return 0xc6120000u | w;                /* 198.18.0.w */
}

static void *writer(void *arg)
{
	struct wctx *x = arg;
	struct table *t = x->c->t;
	unsigned long err = 0;
	struct binding **bs = calloc(PER_WRITER, sizeof(*bs));
	rcu_register_thread();
	for (int round = 0; round < 2; round++) {
		for (unsigned i = 0; i < PER_WRITER; i++) {
			struct binding *b = binding_new();
			b->sub = x->w;
			b->proto = TCP;
			addr_from_v4(&b->int_addr, key_int_v4(x->w, i));
			b->int_port = (uint16_t)(i % 1000);
			addr_from_v4(&b->ext_addr, key_ext_v4(x->w));
			b->ext_port = (uint16_t)(1024 + i);
			b->expires = i;
			if (table_insert(t, b) != PERR_OK) {
				err++;
				binding_free(b);
				b = NULL;
			}
			bs[i] = b;
		}
		for (unsigned i = 0; i < PER_WRITER; i++) {
			struct in6_addr ia, ea;
			addr_from_v4(&ia, key_int_v4(x->w, i));
			addr_from_v4(&ea, key_ext_v4(x->w));
			rcu_read_lock();
			if (table_lookup_int(t, x->w, TCP, &ia, (uint16_t)(i % 1000)) != bs[i])
				err++;
			if (table_lookup_ext(t, TCP, &ea, (uint16_t)(1024 + i)) != bs[i])
				err++;
			rcu_read_unlock();
		}
		for (unsigned i = 0; i < PER_WRITER; i++) {
			if (bs[i])
				table_remove(t, bs[i]);
			struct in6_addr ia;
			addr_from_v4(&ia, key_int_v4(x->w, i));
			rcu_read_lock();
			if (table_lookup_int(t, x->w, TCP, &ia, (uint16_t)(i % 1000)))
				err++;
			rcu_read_unlock();
		}
	}
	rcu_unregister_thread();
	free(bs);
	uatomic_add(&x->c->errors, err);
	uatomic_inc(&x->c->writers_done);
	return NULL;
}

static void *reader(void *arg)
{
	struct conc *c = arg;
	unsigned long err = 0, n = 0, hits = 0;
	uint32_t r = (uint32_t)(uintptr_t)&r;
	rcu_register_thread();
	do {
		for (int k = 0; k < 256; k++) {
			r = r * 1664525u + 1013904223u;
			unsigned w = (r >> 8) % WRITERS, i = (r >> 12) % PER_WRITER;
			struct in6_addr ia, ea, want_i, want_e;
			addr_from_v4(&ia, key_int_v4(w, i));
			addr_from_v4(&ea, key_ext_v4(w));
			want_i = ia;
			want_e = ea;
			rcu_read_lock();
			struct binding *b = table_lookup_int(c->t, w, TCP, &ia, (uint16_t)(i % 1000));
			if (b) {
				hits++;
				if (b->sub != w || b->proto != TCP || b->int_port != i % 1000 ||
				    !addr_equal(&b->int_addr, &want_i) ||
				    b->ext_port != 1024 + i || !addr_equal(&b->ext_addr, &want_e))
					err++;
			}
			b = table_lookup_ext(c->t, TCP, &ea, (uint16_t)(1024 + i));
			if (b) {
				hits++;
				if (b->sub != w || b->proto != TCP || b->ext_port != 1024 + i ||
				    !addr_equal(&b->ext_addr, &want_e) ||
				    !addr_equal(&b->int_addr, &want_i))
					err++;
			}
			rcu_read_unlock();
			n += 2;
		}
	} while (uatomic_read(&c->writers_done) < WRITERS);
	rcu_unregister_thread();
	uatomic_add(&c->errors, err);
	uatomic_add(&c->lookups, n);
	uatomic_add(&c->hits, hits);
	return NULL;
}

static void test_concurrency(void **state)
{
	(void)state;
	struct conc c = { .t = table_new() };
	assert_non_null(c.t);
	pthread_t wt[WRITERS], rt[READERS];
	struct wctx wx[WRITERS];
	for (unsigned i = 0; i < READERS; i++)
		assert_int_equal(pthread_create(&rt[i], NULL, reader, &c), 0);
	for (unsigned i = 0; i < WRITERS; i++) {
		wx[i] = (struct wctx){ .c = &c, .w = i };
		assert_int_equal(pthread_create(&wt[i], NULL, writer, &wx[i]), 0);
	}
	for (unsigned i = 0; i < WRITERS; i++)
		pthread_join(wt[i], NULL);
	for (unsigned i = 0; i < READERS; i++)
		pthread_join(rt[i], NULL);
	print_message("concurrency: %lu reader lookups, %lu hits\n", c.lookups, c.hits);
	assert_int_equal(c.errors, 0);
	assert_true(c.lookups >= 2 * 256 * READERS);
	assert_int_equal(table_count(c.t), 0);
	assert_int_equal(table_next_expiry(c.t), UINT32_MAX);
	table_free(c.t);
	rcu_barrier();
}

/* ---- in-memory backend ---- */

struct done_rec {
	unsigned calls;
	enum perr last;
};

static void done_cb(void *arg, enum perr r)
{
	struct done_rec *d = arg;
	d->calls++;
	d->last = r;
}

static struct kchange kc(enum kop op, uint8_t proto, uint16_t ext_port, uint32_t timeout)
{
	struct kchange c;
	memset(&c, 0, sizeof(c));
	c.op = op;
	c.sub = 9;
	c.proto = proto;
	addr_from_v4(&c.int_addr, PRIV);
	c.int_port = 80;
	addr_from_v4(&c.ext_addr, PUB);
	c.ext_port = ext_port;
	c.timeout = timeout;
	memset(c.nonce, 0x5a, sizeof(c.nonce));
	return c;
}

static void test_backend_mem(void **state)
{
	(void)state;
	assert_ptr_equal(kbackend_find("memory"), &kbackend_mem_ops);
	assert_null(kbackend_find("nope"));
	assert_null(kbackend_find(NULL));

	struct kbackend *kb = kbackend_mem_ops.open(NULL, NULL);
	assert_non_null(kb);
	assert_ptr_equal(kb->ops, &kbackend_mem_ops);
	struct done_rec d = { 0 };
	struct in6_addr pub;
	addr_from_v4(&pub, PUB);

	struct aftr_filter f[2] = { { .plen = 128, .port = 443 }, { .plen = 120, .port = 0 } };
	struct kchange c = kc(KOP_ADD, TCP, 2000, 120);
	c.nfilters = 2;
	c.filters = f;
	kb->ops->submit(kb, &c, done_cb, &d);
	assert_int_equal(d.calls, 1);               /* synchronous */
	assert_int_equal(d.last, PERR_OK);
	f[0].port = 1;                              /* the backend made its own copy */
	kb->ops->submit(kb, &c, done_cb, &d);
	assert_int_equal(d.last, PERR_EXISTS);
	c = kc(KOP_ADD, UDP, 2000, 60);
	kb->ops->submit(kb, &c, done_cb, &d);
	assert_int_equal(d.last, PERR_OK);
	assert_int_equal(kbackend_mem_count(kb), 2);

	struct kchange out;
	assert_true(kbackend_mem_lookup(kb, TCP, &pub, 2000, &out));
	assert_int_equal(out.timeout, 120);
	assert_int_equal(out.sub, 9);
	assert_int_equal(out.int_port, 80);
	assert_int_equal(out.nfilters, 2);
	assert_int_equal(out.filters[0].port, 443);
	assert_int_equal(out.filters[1].plen, 120);
	assert_false(kbackend_mem_lookup(kb, TCP, &pub, 2001, &out));

	c = kc(KOP_REFRESH, TCP, 2000, 3600);
	c.flags = BF_MAP | BF_PREFER_FAILURE;
	kb->ops->submit(kb, &c, done_cb, &d);
	assert_int_equal(d.last, PERR_OK);
	assert_true(kbackend_mem_lookup(kb, TCP, &pub, 2000, &out));
	assert_int_equal(out.timeout, 3600);
	assert_int_equal(out.flags, BF_MAP | BF_PREFER_FAILURE);
	assert_int_equal(out.nfilters, 0);
	c = kc(KOP_REFRESH, TCP, 2999, 10);
	kb->ops->submit(kb, &c, done_cb, &d);
	assert_int_equal(d.last, PERR_NOT_FOUND);

	/* fault injection: n failures, nothing changes, then normal again */
	kbackend_mem_fail_next(kb, 2, PERR_KERNEL);
	c = kc(KOP_DEL, TCP, 2000, 0);
	kb->ops->submit(kb, &c, done_cb, &d);
	assert_int_equal(d.last, PERR_KERNEL);
	c = kc(KOP_ADD, TCP, 5000, 0);
	kb->ops->submit(kb, &c, done_cb, &d);
	assert_int_equal(d.last, PERR_KERNEL);
	assert_int_equal(kbackend_mem_count(kb), 2);
	assert_false(kbackend_mem_lookup(kb, TCP, &pub, 5000, NULL));
	kbackend_mem_fail_next(kb, 1, PERR_NO_RESOURCES);
	kb->ops->submit(kb, &c, done_cb, &d);
	assert_int_equal(d.last, PERR_NO_RESOURCES);
	kb->ops->submit(kb, &c, done_cb, &d);
	assert_int_equal(d.last, PERR_OK);
	assert_int_equal(kbackend_mem_count(kb), 3);

	c = kc(KOP_DEL, TCP, 2000, 0);
	kb->ops->submit(kb, &c, done_cb, &d);
	assert_int_equal(d.last, PERR_OK);
	kb->ops->submit(kb, &c, done_cb, &d);
	assert_int_equal(d.last, PERR_NOT_FOUND);
	assert_false(kbackend_mem_lookup(kb, TCP, &pub, 2000, NULL));
	assert_true(kbackend_mem_lookup(kb, UDP, &pub, 2000, NULL));
	assert_int_equal(kbackend_mem_count(kb), 2);

	/* enough elements to grow the hash several times */
	for (unsigned i = 0; i < 1000; i++) {
		c = kc(KOP_ADD, UDP, (uint16_t)(10000 + i), 0);
		kb->ops->submit(kb, &c, done_cb, &d);
		assert_int_equal(d.last, PERR_OK);
	}
	assert_int_equal(kbackend_mem_count(kb), 1002);
	for (unsigned i = 0; i < 1000; i++)
		assert_true(kbackend_mem_lookup(kb, UDP, &pub, (uint16_t)(10000 + i), NULL));
	kb->ops->flush(kb);
	assert_int_equal(d.calls, 1011);
	kb->ops->close(kb);   /* frees the remaining elements */
}

/* ---- derived config sizes ---- */

static void test_config_sizes(void **state)
{
	(void)state;
	static struct aftr_config c;
	memset(&c, 0, sizeof(c));
	c.pool[0] = (struct aftr_pool_range){ 0xcb007100, 0xcb0071ff };   /* 256 */
	c.pool[1] = (struct aftr_pool_range){ 0xc6336405, 0xc6336405 };   /* 1 */
	c.npool = 2;
	assert_int_equal(aftr_pool_size(&c), 257);
	c.port_min = 1024;
	c.ports_per_subscriber = 2048;
	assert_int_equal(aftr_capacity(&c), 257 * 31);
	c.ports_per_subscriber = 0;
	assert_int_equal(aftr_capacity(&c), 0);
	c.pool[0] = (struct aftr_pool_range){ 0x0a000000, 0x0affffff };   /* a /8 */
	c.npool = 1;
	c.ports_per_subscriber = 1;
	assert_int_equal(aftr_capacity(&c), UINT32_MAX);                  /* saturates */

	c.subscriber_plen = 56;
	c.b4_prefixes[0].plen = 48;     /* 256 */
	c.b4_prefixes[1].plen = 56;     /* 1 */
	c.b4_prefixes[2].plen = 64;     /* longer than the mask: 0 */
	c.b4_prefixes[3].plen = 20;     /* 2^36, capped */
	c.b4_prefixes[4].plen = 40;     /* 65536 */
	c.nb4 = 5;
	assert_int_equal(aftr_b4_range_size(&c, 0), 256);
	assert_int_equal(aftr_b4_range_size(&c, 1), 1);
	assert_int_equal(aftr_b4_range_size(&c, 2), 0);
	assert_true(aftr_b4_range_size(&c, 3) == (uint64_t)1 << 32);
	assert_int_equal(aftr_b4_range_size(&c, 4), 65536);
	assert_int_equal(aftr_b4_range_size(&c, 5), 0);
	assert_int_equal(aftr_b4_range_base(&c, 0), 0);
	assert_int_equal(aftr_b4_range_base(&c, 1), 256);
	assert_int_equal(aftr_b4_range_base(&c, 2), 257);
	assert_int_equal(aftr_b4_range_base(&c, 3), 257);
	assert_true(aftr_b4_range_base(&c, 4) == 257 + ((uint64_t)1 << 32));
}

int main(void)
{
	rcu_register_thread();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_insert_lookup),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_remove),
		cmocka_unit_test(test_expiry_order),
		cmocka_unit_test(test_expiry_heap_large),
		cmocka_unit_test(test_foreach_count),
		cmocka_unit_test(test_binding_parts),
		cmocka_unit_test(test_concurrency),
		cmocka_unit_test(test_backend_mem),
		cmocka_unit_test(test_config_sizes),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	rcu_barrier();   /* run pending deferred frees before exit (leak checkers) */
	rcu_unregister_thread();
	return r;
}
