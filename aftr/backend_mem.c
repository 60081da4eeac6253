/* In-memory kernel backend for tests: a chained hash of elements keyed
 * like the kernel DNAT map (proto, ext_addr, ext_port). done() runs
 * synchronously from submit(), after the lock is dropped so that it may
 * submit again. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "aftr/backend.h"
#include "common/addr.h"

struct mem_elem {
	struct mem_elem *next;
	struct kchange c;            /* c.filters points at owned memory */
};

struct mem_backend {
	struct kbackend kb;          /* first: the generic handle */
	pthread_mutex_t lock;
	struct mem_elem **buckets;
	size_t nbuckets;             /* power of two */
	size_t count;
	size_t nsubs;                /* provisioned subscribers */
	uint64_t changes;
	unsigned fail_n;
	enum perr fail_err;
};

static struct mem_backend *mem(struct kbackend *kb)
{
	return (struct mem_backend *)kb;
}

static size_t key_hash(uint8_t proto, const struct in6_addr *a, uint16_t port)
{
	uint64_t h = addr_hash(a, 0x9e3779b9u);
	h = (h << 24) ^ ((uint64_t)proto << 16) ^ port;
	h *= 0x9e3779b97f4a7c15ULL;
	return (size_t)(h ^ (h >> 29));
}

static struct mem_elem **find_slot(struct mem_backend *m, uint8_t proto,
				   const struct in6_addr *a, uint16_t port)
{
	struct mem_elem **pp = &m->buckets[key_hash(proto, a, port) & (m->nbuckets - 1)];
	for (; *pp; pp = &(*pp)->next) {
		const struct kchange *c = &(*pp)->c;
		if (c->proto == proto && c->ext_port == port && addr_equal(&c->ext_addr, a))
			break;
	}
	return pp;
}

static void grow(struct mem_backend *m)
{
	size_t nb = m->nbuckets * 2;
	struct mem_elem **v = calloc(nb, sizeof(*v));
	if (!v)
		return;  /* keep working with longer chains */
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct mem_elem *e = m->buckets[i];
		while (e) {
			struct mem_elem *next = e->next;
			size_t h = key_hash(e->c.proto, &e->c.ext_addr, e->c.ext_port) & (nb - 1);
			e->next = v[h];
			v[h] = e;
			e = next;
		}
	}
	free(m->buckets);
	m->buckets = v;
	m->nbuckets = nb;
}

/* Copies the filters into owned memory; false if out of memory. */
static bool copy_filters(struct kchange *dst, const struct kchange *src)
{
	struct aftr_filter *f = NULL;
	if (src->nfilters && src->filters) {
		f = malloc(src->nfilters * sizeof(*f));
		if (!f)
			return false;
		memcpy(f, src->filters, src->nfilters * sizeof(*f));
	}
	dst->filters = f;
	dst->nfilters = f ? src->nfilters : 0;
	return true;
}

static struct kbackend *mem_open(const struct kbackend_conf *conf, bool *fresh)
{
	(void)conf;
	if (fresh)
		*fresh = true;     /* nothing survives the process */
	struct mem_backend *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->nbuckets = 64;
	m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
	if (!m->buckets || pthread_mutex_init(&m->lock, NULL) != 0) {
		free(m->buckets);
		free(m);
		return NULL;
	}
	m->kb.ops = &kbackend_mem_ops;
	return &m->kb;
}

static enum perr apply(struct mem_backend *m, const struct kchange *c)
{
	struct mem_elem **pp = find_slot(m, c->proto, &c->ext_addr, c->ext_port);
	struct mem_elem *e = *pp;
	struct kchange tmp;

	switch (c->op) {
	case KOP_ADD:
		if (e)
			return PERR_EXISTS;
		e = malloc(sizeof(*e));
		if (!e)
			return PERR_NO_RESOURCES;
		e->c = *c;
		if (!copy_filters(&e->c, c)) {
			free(e);
			return PERR_NO_RESOURCES;
		}
		e->next = NULL;
		*pp = e;
		if (++m->count > m->nbuckets)
			grow(m);
		return PERR_OK;
	case KOP_DEL:
		if (!e)
			return PERR_NOT_FOUND;
		*pp = e->next;
		free((void *)e->c.filters);
		free(e);
		m->count--;
		return PERR_OK;
	case KOP_REFRESH:
		if (!e)
			return PERR_NOT_FOUND;
		if (!copy_filters(&tmp, c))
			return PERR_NO_RESOURCES;
		free((void *)e->c.filters);
		e->c.filters = tmp.filters;
		e->c.nfilters = tmp.nfilters;
		e->c.timeout = c->timeout;
		e->c.flags = c->flags;
		return PERR_OK;
	}
	return PERR_INVAL;
}

static void mem_submit(struct kbackend *kb, const struct kchange *c, kbackend_done_fn done,
		       void *arg)
{
	struct mem_backend *m = mem(kb);
	enum perr r;
	pthread_mutex_lock(&m->lock);
	if (m->fail_n) {
		m->fail_n--;
		r = m->fail_err;
	} else {
		r = apply(m, c);
	}
	m->changes++;
	pthread_mutex_unlock(&m->lock);
	if (done)
		done(arg, r);
}

static void mem_flush(struct kbackend *kb)
{
	(void)kb;  /* everything completed in submit() */
}

static void mem_close(struct kbackend *kb)
{
	if (!kb)
		return;
	struct mem_backend *m = mem(kb);
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct mem_elem *e = m->buckets[i];
		while (e) {
			struct mem_elem *next = e->next;
			free((void *)e->c.filters);
			free(e);
			e = next;
		}
	}
	free(m->buckets);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static enum perr mem_sub_set(struct kbackend *kb, const struct ksub *s)
{
	(void)s;
	struct mem_backend *m = mem(kb);
	pthread_mutex_lock(&m->lock);
	m->nsubs++;
	pthread_mutex_unlock(&m->lock);
	return PERR_OK;
}

static enum perr mem_sub_del(struct kbackend *kb, const struct ksub *s)
{
	(void)s;
	struct mem_backend *m = mem(kb);
	pthread_mutex_lock(&m->lock);
	if (m->nsubs)
		m->nsubs--;
	pthread_mutex_unlock(&m->lock);
	return PERR_OK;
}

static enum perr mem_restore(struct kbackend *kb, kbackend_restore_fn cb, void *arg)
{
	(void)kb;
	(void)cb;
	(void)arg;
	return PERR_OK;     /* a fresh process has nothing to restore */
}

static enum perr mem_peer_find(struct kbackend *kb, uint16_t zone, uint8_t proto,
			       const struct in6_addr *int_addr, uint16_t int_port,
			       const struct in6_addr *peer_addr, uint16_t peer_port,
			       struct in6_addr *ext_addr, uint16_t *ext_port)
{
	(void)kb, (void)zone, (void)proto, (void)int_addr, (void)int_port;
	(void)peer_addr, (void)peer_port, (void)ext_addr, (void)ext_port;
	return PERR_NOT_FOUND;   /* no traffic, so no implicit mappings */
}

static void mem_stats(struct kbackend *kb, struct kbackend_stats *out)
{
	struct mem_backend *m = mem(kb);
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&m->lock);
	out->changes = m->changes;
	out->commits = m->changes;
	out->elements = m->count;
	pthread_mutex_unlock(&m->lock);
}

const struct kbackend_ops kbackend_mem_ops = {
	.name = "memory",
	.open = mem_open,
	.submit = mem_submit,
	.flush = mem_flush,
	.sub_set = mem_sub_set,
	.sub_del = mem_sub_del,
	.restore = mem_restore,
	.peer_find = mem_peer_find,
	.stats = mem_stats,
	.close = mem_close,
};

size_t kbackend_mem_count(struct kbackend *kb)
{
	struct mem_backend *m = mem(kb);
	pthread_mutex_lock(&m->lock);
	size_t n = m->count;
	pthread_mutex_unlock(&m->lock);
	return n;
}

bool kbackend_mem_lookup(struct kbackend *kb, uint8_t proto, const struct in6_addr *ext_addr,
			 uint16_t ext_port, struct kchange *out)
{
	struct mem_backend *m = mem(kb);
	pthread_mutex_lock(&m->lock);
	struct mem_elem *e = *find_slot(m, proto, ext_addr, ext_port);
	if (e && out)
		*out = e->c;  /* out->filters stays valid until the element changes */
	pthread_mutex_unlock(&m->lock);
	return e != NULL;
}

void kbackend_mem_fail_next(struct kbackend *kb, unsigned n, enum perr err)
{
	struct mem_backend *m = mem(kb);
	pthread_mutex_lock(&m->lock);
	m->fail_n = n;
	m->fail_err = err;
	pthread_mutex_unlock(&m->lock);
}
