/* Binding objects: allocation, RCU-deferred freeing, part bookkeeping. */
#include <stdlib.h>
#include <urcu.h>

#include "aftr/binding.h"

struct binding *binding_new(void)
{
	struct binding *b = calloc(1, sizeof(*b));
	if (b)
		b->heap_idx = UINT32_MAX;
	return b;
}

static void peers_free(struct peer_part *p)
{
	while (p) {
		struct peer_part *next = p->next;
		free(p);
		p = next;
	}
}

void binding_free(struct binding *b)
{
	if (!b)
		return;
	free(b->filters);
	free(b->description);
	peers_free(b->peers);
	free(b);
}

static void binding_free_cb(struct rcu_head *h)
{
	binding_free(caa_container_of(h, struct binding, rcu));
}

void binding_free_rcu(struct binding *b)
{
	if (b)
		call_rcu(&b->rcu, binding_free_cb);
}

struct filter_set *filter_set_new(unsigned n)
{
	struct filter_set *fs = calloc(1, sizeof(*fs) + (size_t)n * sizeof(fs->f[0]));
	if (fs)
		fs->n = n;
	return fs;
}

static void filter_set_free_cb(struct rcu_head *h)
{
	free(caa_container_of(h, struct filter_set, rcu));
}

void filter_set_free_rcu(struct filter_set *fs)
{
	if (fs)
		call_rcu(&fs->rcu, filter_set_free_cb);
}

void binding_set_filters(struct binding *b, struct filter_set *fs)
{
	struct filter_set *old = b->filters;
	rcu_assign_pointer(b->filters, fs);
	filter_set_free_rcu(old);
}

/* A plain string has no rcu_head, so the deferred free carries its own. */
struct str_free {
	struct rcu_head rcu;
	char *s;
};

static void str_free_cb(struct rcu_head *h)
{
	struct str_free *sf = caa_container_of(h, struct str_free, rcu);
	free(sf->s);
	free(sf);
}

void binding_set_description(struct binding *b, char *desc)
{
	char *old = b->description;
	rcu_assign_pointer(b->description, desc);
	if (!old)
		return;
	struct str_free *sf = malloc(sizeof(*sf));
	if (!sf)
		return;  /* out of memory: leaking a few bytes beats both a
			  * use-after-free and a synchronize_rcu() under the
			  * subscriber lock (the expiry callback may wait on it
			  * inside a read-side section) */
	sf->s = old;
	call_rcu(&sf->rcu, str_free_cb);
}

void binding_update_expires(struct binding *b)
{
	uint32_t e = 0;
	if (b->flags & (BF_MAP | BF_STATIC))
		e = b->map_expires;
	for (const struct peer_part *p = b->peers; p; p = p->next)
		if (p->expires > e)
			e = p->expires;
	b->expires = e;
}
