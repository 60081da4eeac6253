#include "aftr/subscriber.h"

#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mtime.h"

struct subscribers {
	struct aftr_config cfg;            /* shallow copy; cfg.subs not used after init */
	struct cds_lfht *by_b4;            /* key: masked address + plen */
	struct cds_lfht *by_if;
	struct cds_lfht *by_index;
	uint8_t explicit_plens[129];       /* which prefix lengths explicit entries use */
	uint32_t seed;
	pthread_mutex_t create_lock;       /* serialises first-contact creation */
	_Atomic size_t count;
};

static uint32_t b4_hash(const struct in6_addr *a, uint8_t plen, uint32_t seed)
{
	return addr_hash(a, seed) ^ (uint32_t)plen * 0x9e3779b1u;
}

static int b4_match(struct cds_lfht_node *node, const void *key)
{
	const struct subscriber *sub = caa_container_of(node, struct subscriber, by_b4);
	const struct prefix *p = key;
	return sub->b4.plen == p->plen && addr_equal(&sub->b4.addr, &p->addr);
}

static int if_match(struct cds_lfht_node *node, const void *key)
{
	const struct subscriber *sub = caa_container_of(node, struct subscriber, by_if);
	return sub->ifindex == *(const int *)key;
}

static int index_match(struct cds_lfht_node *node, const void *key)
{
	const struct subscriber *sub = caa_container_of(node, struct subscriber, by_index);
	return sub->index == *(const uint32_t *)key;
}

static uint32_t u32_hash(uint32_t v, uint32_t seed)
{
	v ^= seed;
	v ^= v >> 16;
	v *= 0x7feb352du;
	v ^= v >> 15;
	v *= 0x846ca68bu;
	v ^= v >> 16;
	return v;
}

bool aftr_index_resources(const struct aftr_config *c, uint32_t index, struct in6_addr *ext,
			  uint16_t *block_lo)
{
	uint32_t pool = aftr_pool_size(c);
	if (pool == 0 || c->ports_per_subscriber == 0 || index >= aftr_capacity(c))
		return false;
	uint32_t nth = index % pool;
	uint32_t block = index / pool;
	for (unsigned i = 0; i < c->npool; i++) {
		uint32_t n = c->pool[i].last - c->pool[i].first + 1;
		if (nth < n) {
			addr_from_v4(ext, c->pool[i].first + nth);
			break;
		}
		nth -= n;
	}
	*block_lo = (uint16_t)(c->port_min + block * c->ports_per_subscriber);
	return true;
}

static struct subscriber *sub_create(struct subscribers *s, uint32_t index)
{
	struct subscriber *sub = calloc(1, sizeof(*sub));
	if (!sub)
		return NULL;
	sub->index = index;
	if (!aftr_index_resources(&s->cfg, index, &sub->ext_addr, &sub->block_lo)) {
		free(sub);
		return NULL;
	}
	sub->block_n = s->cfg.ports_per_subscriber;
	sub->pcp_n = s->cfg.pcp_ports < sub->block_n ? s->cfg.pcp_ports : sub->block_n;
	pthread_mutex_init(&sub->lock, NULL);
	CDS_INIT_LIST_HEAD(&sub->bindings);
	uint32_t seed = u32_hash(index, s->seed);
	bool ok = portalloc_init(&sub->pa[PA_TCP_MAP], 6, sub->block_lo, sub->pcp_n, seed) == PERR_OK &&
		  portalloc_init(&sub->pa[PA_UDP_MAP], 17, sub->block_lo, sub->pcp_n, seed) == PERR_OK &&
		  portalloc_init(&sub->pa[PA_TCP_NAPT], 6, (uint16_t)(sub->block_lo + sub->pcp_n),
				 (uint16_t)(sub->block_n - sub->pcp_n), seed) == PERR_OK &&
		  portalloc_init(&sub->pa[PA_UDP_NAPT], 17, (uint16_t)(sub->block_lo + sub->pcp_n),
				 (uint16_t)(sub->block_n - sub->pcp_n), seed) == PERR_OK;
	if (!ok) {
		for (int i = 0; i < PA__COUNT; i++)
			portalloc_fini(&sub->pa[i]);
		pthread_mutex_destroy(&sub->lock);
		free(sub);
		return NULL;
	}
	sub->rl_stamp_ms = 0;     /* a full bucket at the first request, on the caller's clock */
	return sub;
}

static void sub_destroy(struct subscriber *sub)
{
	for (int i = 0; i < PA__COUNT; i++)
		portalloc_fini(&sub->pa[i]);
	pthread_mutex_destroy(&sub->lock);
	free(sub);
}

static bool sub_publish(struct subscribers *s, struct subscriber *sub)
{
	struct cds_lfht_node *n;
	if (sub->b4.plen) {
		n = cds_lfht_add_unique(s->by_b4, b4_hash(&sub->b4.addr, sub->b4.plen, s->seed),
					b4_match, &sub->b4, &sub->by_b4);
		if (n != &sub->by_b4)
			return false;
	}
	n = cds_lfht_add_unique(s->by_index, u32_hash(sub->index, s->seed), index_match,
				&sub->index, &sub->by_index);
	if (n != &sub->by_index) {
		if (sub->b4.plen)
			cds_lfht_del(s->by_b4, &sub->by_b4);
		return false;
	}
	if (sub->ifindex)
		cds_lfht_add(s->by_if, u32_hash((uint32_t)sub->ifindex, s->seed), &sub->by_if);
	s->count++;
	return true;
}

struct subscribers *subs_new(const struct aftr_config *cfg)
{
	struct subscribers *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->cfg = *cfg;
	s->cfg.subs = NULL;
	s->cfg.nsubs = 0;
	s->seed = (uint32_t)mtime_ms() * 2654435761u;
	pthread_mutex_init(&s->create_lock, NULL);
	int flags = CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING;
	s->by_b4 = cds_lfht_new(64, 64, 0, flags, NULL);
	s->by_if = cds_lfht_new(64, 64, 0, flags, NULL);
	s->by_index = cds_lfht_new(64, 64, 0, flags, NULL);
	if (!s->by_b4 || !s->by_if || !s->by_index) {
		subs_free(s);
		return NULL;
	}
	for (unsigned i = 0; i < cfg->nsubs; i++) {
		enum perr err = subs_add(s, &cfg->subs[i], NULL);
		if (err != PERR_OK) {
			log_err("subscriber %s: %s", cfg->subs[i].name,
				err == PERR_EXISTS ? "duplicate name, index, B4 prefix or interface"
						   : "index has no resources in the pool");
			subs_free(s);
			return NULL;
		}
	}
	return s;
}

/* liburcu's for_each_entry macro computes container_of(NULL) at the end
 * of a walk (undefined behaviour); walk nodes instead. */
#define FOR_EACH_SUB(ht, it, sub)                                                        \
	for (cds_lfht_first((ht), (it));                                                 \
	     cds_lfht_iter_get_node(it) &&                                               \
	     ((sub) = caa_container_of(cds_lfht_iter_get_node(it), struct subscriber,    \
				       by_index), 1);                                    \
	     cds_lfht_next((ht), (it)))

void subs_free(struct subscribers *s)
{
	if (!s)
		return;
	/* cds_lfht_destroy() refuses non-empty tables: unlink everything first,
	 * free the subscribers after the tables are gone (no reader is left) */
	struct subscriber **v = NULL;
	size_t n = 0;
	if (s->by_index) {
		v = calloc(s->count ? s->count : 1, sizeof(*v));
		struct cds_lfht_iter it;
		struct subscriber *sub;
		rcu_read_lock();
		FOR_EACH_SUB(s->by_index, &it, sub) {
			cds_lfht_del(s->by_index, &sub->by_index);
			if (sub->b4.plen)
				cds_lfht_del(s->by_b4, &sub->by_b4);
			if (sub->ifindex)
				cds_lfht_del(s->by_if, &sub->by_if);
			if (v && n < s->count)
				v[n++] = sub;
		}
		rcu_read_unlock();
	}
	struct cds_lfht *tables[] = { s->by_b4, s->by_if, s->by_index };
	for (unsigned i = 0; i < 3; i++)
		if (tables[i] && cds_lfht_destroy(tables[i], NULL) != 0)
			log_err("subscriber table not empty at shutdown");
	for (size_t i = 0; i < n; i++)
		sub_destroy(v[i]);
	free(v);
	pthread_mutex_destroy(&s->create_lock);
	free(s);
}

static struct subscriber *lookup_b4(struct subscribers *s, const struct prefix *key);

static bool name_or_if_taken(struct subscribers *s, const struct aftr_sub_conf *c)
{
	struct cds_lfht_iter it;
	struct subscriber *sub;
	FOR_EACH_SUB(s->by_index, &it, sub) {
		if ((c->name[0] && strcmp(sub->name, c->name) == 0) ||
		    (c->ifname[0] && strcmp(sub->ifname, c->ifname) == 0))
			return true;
	}
	return false;
}

enum perr subs_add(struct subscribers *s, const struct aftr_sub_conf *c, struct subscriber **out)
{
	pthread_mutex_lock(&s->create_lock);
	rcu_read_lock();
	enum perr err = PERR_OK;
	struct subscriber *sub = NULL;
	if (name_or_if_taken(s, c) || subs_by_index(s, c->index) ||
	    (c->has_b4 && lookup_b4(s, &c->b4)))
		err = PERR_EXISTS;
	else if (!(sub = sub_create(s, c->index)))
		err = PERR_INVAL;
	if (sub) {
		snprintf(sub->name, sizeof(sub->name), "%s", c->name);
		if (c->has_b4)
			sub->b4 = c->b4;
		snprintf(sub->ifname, sizeof(sub->ifname), "%s", c->ifname);
		if (sub->ifname[0])
			sub->ifindex = (int)if_nametoindex(sub->ifname);
		if (!sub_publish(s, sub)) {
			sub_destroy(sub);
			sub = NULL;
			err = PERR_EXISTS;
		} else if (c->has_b4) {
			s->explicit_plens[c->b4.plen] = 1;
		}
	}
	rcu_read_unlock();
	pthread_mutex_unlock(&s->create_lock);
	if (out)
		*out = sub;
	return err;
}

static void sub_free_rcu(struct rcu_head *h)
{
	sub_destroy(caa_container_of(h, struct subscriber, rcu));
}

enum perr subs_remove(struct subscribers *s, struct subscriber *sub)
{
	pthread_mutex_lock(&s->create_lock);
	rcu_read_lock();
	enum perr err = PERR_NOT_FOUND;
	if (cds_lfht_del(s->by_index, &sub->by_index) == 0) {
		if (sub->b4.plen)
			cds_lfht_del(s->by_b4, &sub->by_b4);
		if (sub->ifindex)
			cds_lfht_del(s->by_if, &sub->by_if);
		s->count--;
		err = PERR_OK;
	}
	rcu_read_unlock();
	pthread_mutex_unlock(&s->create_lock);
	if (err == PERR_OK)
		call_rcu(&sub->rcu, sub_free_rcu);
	return err;
}

struct subscriber *subs_by_name(struct subscribers *s, const char *name)
{
	struct cds_lfht_iter it;
	struct subscriber *sub;
	if (!name || !name[0])
		return NULL;
	FOR_EACH_SUB(s->by_index, &it, sub) {
		if (strcmp(sub->name, name) == 0)
			return sub;
	}
	return NULL;
}

static struct subscriber *lookup_b4(struct subscribers *s, const struct prefix *key)
{
	struct cds_lfht_iter it;
	cds_lfht_lookup(s->by_b4, b4_hash(&key->addr, key->plen, s->seed), b4_match, key, &it);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
	return n ? caa_container_of(n, struct subscriber, by_b4) : NULL;
}

/* Index of a B4 inside prefix k: the address bits between the prefix
 * length and the subscriber prefix length (RFC 7422 style, no state). */
static uint64_t b4_offset(const struct in6_addr *a, unsigned from, unsigned to)
{
	uint64_t v = 0;
	for (unsigned bit = from; bit < to; bit++)
		v = v << 1 | ((a->s6_addr[bit / 8] >> (7 - bit % 8)) & 1u);
	return v;
}

struct subscriber *subs_by_b4(struct subscribers *s, const struct in6_addr *b4)
{
	struct prefix key;
	/* explicit entries first, longest prefix wins */
	for (int plen = 128; plen > 0; plen--) {
		if (!s->explicit_plens[plen])
			continue;
		key.addr = *b4;
		key.plen = (uint8_t)plen;
		addr_mask(&key.addr, key.plen);
		struct subscriber *sub = lookup_b4(s, &key);
		if (sub)
			return sub;
	}
	for (unsigned k = 0; k < s->cfg.nb4; k++) {
		const struct prefix *p = &s->cfg.b4_prefixes[k];
		if (!prefix_contains(p, b4))
			continue;
		key.addr = *b4;
		key.plen = s->cfg.subscriber_plen;
		addr_mask(&key.addr, key.plen);
		struct subscriber *sub = lookup_b4(s, &key);
		if (sub)
			return sub;
		uint64_t idx = aftr_b4_range_base(&s->cfg, k) +
			       b4_offset(b4, p->plen, s->cfg.subscriber_plen);
		if (idx > UINT32_MAX)
			return NULL;
		pthread_mutex_lock(&s->create_lock);
		sub = lookup_b4(s, &key);    /* another thread may have won */
		if (!sub) {
			sub = sub_create(s, (uint32_t)idx);
			if (sub) {
				sub->b4 = key;
				if (!sub_publish(s, sub)) {
					sub_destroy(sub);
					sub = NULL;
				}
			}
		}
		pthread_mutex_unlock(&s->create_lock);
		return sub;
	}
	return NULL;
}

struct subscriber *subs_by_ifindex(struct subscribers *s, int ifindex)
{
	if (ifindex <= 0)
		return NULL;
	struct cds_lfht_iter it;
	cds_lfht_lookup(s->by_if, u32_hash((uint32_t)ifindex, s->seed), if_match, &ifindex, &it);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
	return n ? caa_container_of(n, struct subscriber, by_if) : NULL;
}

struct subscriber *subs_by_index(struct subscribers *s, uint32_t index)
{
	struct cds_lfht_iter it;
	cds_lfht_lookup(s->by_index, u32_hash(index, s->seed), index_match, &index, &it);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
	return n ? caa_container_of(n, struct subscriber, by_index) : NULL;
}

struct subscriber *subs_by_index_or_derive(struct subscribers *s, uint32_t index)
{
	struct subscriber *sub = subs_by_index(s, index);
	if (sub)
		return sub;
	for (unsigned k = 0; k < s->cfg.nb4; k++) {
		uint64_t base = aftr_b4_range_base(&s->cfg, k), size = aftr_b4_range_size(&s->cfg, k);
		if (index < base || index >= base + size)
			continue;
		/* put the offset back into the bits between the two lengths */
		struct in6_addr a = s->cfg.b4_prefixes[k].addr;
		uint64_t off = index - base;
		unsigned from = s->cfg.b4_prefixes[k].plen, to = s->cfg.subscriber_plen;
		for (unsigned bit = to; bit-- > from; off >>= 1)
			if (off & 1)
				a.s6_addr[bit / 8] |= (uint8_t)(0x80u >> (bit % 8));
		return subs_by_b4(s, &a);
	}
	return NULL;
}

unsigned subs_refresh_ifindexes(struct subscribers *s)
{
	unsigned changed = 0;
	struct cds_lfht_iter it;
	struct subscriber *sub;
	pthread_mutex_lock(&s->create_lock);
	rcu_read_lock();
	FOR_EACH_SUB(s->by_index, &it, sub) {
		if (!sub->ifname[0])
			continue;
		int idx = (int)if_nametoindex(sub->ifname);
		if (idx == sub->ifindex)
			continue;
		/* Readers may still walk the old node: unlink, wait, relink. */
		if (sub->ifindex)
			cds_lfht_del(s->by_if, &sub->by_if);
		rcu_read_unlock();
		synchronize_rcu();
		rcu_read_lock();
		sub->ifindex = idx;
		if (idx)
			cds_lfht_add(s->by_if, u32_hash((uint32_t)idx, s->seed), &sub->by_if);
		changed++;
	}
	rcu_read_unlock();
	pthread_mutex_unlock(&s->create_lock);
	return changed;
}

bool subs_internal_allowed(const struct subscribers *s, const struct in6_addr *a)
{
	if (!addr_is_v4mapped(a))
		return false;
	for (unsigned i = 0; i < s->cfg.ninternal; i++)
		if (prefix_contains(&s->cfg.internal[i], a))
			return true;
	return false;
}

struct portalloc *sub_portalloc(struct subscriber *sub, uint8_t proto, bool map)
{
	if (proto == 6)
		return &sub->pa[map ? PA_TCP_MAP : PA_TCP_NAPT];
	if (proto == 17)
		return &sub->pa[map ? PA_UDP_MAP : PA_UDP_NAPT];
	return NULL;
}

bool sub_rate_ok(struct subscriber *sub, uint64_t now_ms, uint32_t rate, uint32_t burst)
{
	if (rate == 0)
		return true;
	uint64_t cap = (uint64_t)(burst ? burst : rate) * 1000u;
	bool ok;
	pthread_mutex_lock(&sub->lock);
	if (sub->rl_stamp_ms == 0) {
		sub->rl_stamp_ms = now_ms;
		sub->rl_tokens_milli = cap;
	}
	if (now_ms > sub->rl_stamp_ms) {
		sub->rl_tokens_milli += (now_ms - sub->rl_stamp_ms) * rate;
		if (sub->rl_tokens_milli > cap)
			sub->rl_tokens_milli = cap;
		sub->rl_stamp_ms = now_ms;
	}
	ok = sub->rl_tokens_milli >= 1000u;
	if (ok)
		sub->rl_tokens_milli -= 1000u;
	pthread_mutex_unlock(&sub->lock);
	if (!ok)
		sub->rate_limited++;
	return ok;
}

size_t subs_count(struct subscribers *s)
{
	return s->count;
}

void subs_foreach(struct subscribers *s, int (*cb)(void *arg, struct subscriber *sub), void *arg)
{
	struct cds_lfht_iter it;
	struct subscriber *sub;
	FOR_EACH_SUB(s->by_index, &it, sub) {
		if (cb(arg, sub))
			return;
	}
}
