#include "pcpd/engine.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"

/* A change waiting for the kernel. What is applied on success is kept
 * here, so that a failure leaves the table exactly as it was. */
enum tx_kind { TX_CREATE, TX_UPDATE, TX_DELETE };

struct etxn {
	struct engine *e;
	struct subscriber *sub;
	struct binding *b;
	enum tx_kind kind;
	uint32_t now;
	/* TX_UPDATE: the new state */
	uint8_t flags;
	uint8_t nonce[BINDING_NONCE_LEN];
	uint32_t map_expires;
	bool set_filters;
	struct filter_set *filters;
	bool set_desc;
	char *desc;
	struct peer_part *peer;          /* peer part to refresh, or new one to link */
	bool peer_new;
	bool peer_flow;                  /* PEER: the kernel must have this peer's flow */
	uint32_t peer_expires;
	int parts_delta;                 /* change of sub->nmappings on success */
	struct in6_addr client_addr;
	uint16_t client_port;
	engine_done_fn done;
	void *arg;
	struct engine_result res;
};

void engine_init(struct engine *e, const struct engine_limits *lim, struct subscribers *subs,
		 struct table *t, struct kbackend *kb)
{
	memset(e, 0, sizeof(*e));
	pthread_mutex_init(&e->prov_lock, NULL);
	e->lim = *lim;
	e->subs = subs;
	e->table = t;
	e->kb = kb;
}

uint16_t utf8_truncate(const char *s, uint16_t len, uint16_t max)
{
	if (len <= max)
		return len;
	uint16_t n = max;
	/* step back over continuation bytes so no sequence is cut */
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}

static uint32_t clamp_lifetime(const struct engine *e, uint32_t l)
{
	if (l < e->lim.min_lifetime)
		return e->lim.min_lifetime;
	if (l > e->lim.max_lifetime)
		return e->lim.max_lifetime;
	return l;
}

static uint32_t left(uint32_t deadline, uint32_t now)
{
	if (deadline == UINT32_MAX)
		return UINT32_MAX;
	return deadline > now ? deadline - now : 0;
}

static void finish(engine_done_fn done, void *arg, enum perr err, uint32_t lifetime, bool set)
{
	struct engine_result r;
	memset(&r, 0, sizeof(r));
	r.err = err;
	r.lifetime = lifetime;
	r.lifetime_set = set;
	done(arg, &r);
}

static void owner_of(const struct binding *b, struct port_owner *o)
{
	o->int_addr = b->int_addr;
	o->int_port = b->int_port;
	memcpy(o->nonce, b->nonce, sizeof(o->nonce));
}

static struct portalloc *alloc_of(struct subscriber *sub, const struct binding *b)
{
	struct portalloc *pa = sub_portalloc(sub, b->proto, true);
	if (pa && portalloc_in_range(pa, b->ext_port))
		return pa;
	return sub_portalloc(sub, b->proto, false);
}

/* Peer parts handed to the kernel (kept there for a restart): a bounded
 * copy on the caller's stack. */
#define KPEERS_MAX 8

static unsigned kpeers_of(const struct binding *b, uint32_t now, struct kpeer *v)
{
	unsigned n = 0;
	for (const struct peer_part *p = b->peers; p && n < KPEERS_MAX; p = p->next) {
		v[n].addr = p->addr;
		v[n].port = p->port;
		memcpy(v[n].nonce, p->nonce, sizeof(v[n].nonce));
		v[n].timeout = left(p->expires, now);
		n++;
	}
	return n;
}

static void kchange_of(const struct binding *b, enum kop op, uint32_t now, struct kchange *c)
{
	memset(c, 0, sizeof(*c));
	c->op = op;
	c->sub = b->sub;
	c->zone = kzone_of(b->sub);
	c->proto = b->proto;
	c->int_addr = b->int_addr;
	c->int_port = b->int_port;
	c->ext_addr = b->ext_addr;
	c->ext_port = b->ext_port;
	c->timeout = b->expires == UINT32_MAX ? 0 : left(b->expires, now);
	c->map_timeout = b->map_expires == UINT32_MAX ? 0 : left(b->map_expires, now);
	c->flags = b->flags & (uint8_t)~BF_PENDING;
	memcpy(c->nonce, b->nonce, sizeof(c->nonce));
	struct filter_set *fs = b->filters;
	if (fs) {
		c->nfilters = fs->n;
		c->filters = fs->f;
	}
}

static bool sugg_addr_ok(const struct engine_req *rq)
{
	return addr_is_zero(&rq->sugg_addr) || addr_equal(&rq->sugg_addr, &rq->sub->ext_addr);
}

/* The filter set after applying the request's FILTERs (RFC 6887 §13.3):
 * prefix length 0 clears everything before it, others are added unless
 * already present. *out = NULL means "no filter". */
static enum perr merge_filters(const struct engine *e, const struct filter_set *cur,
			       const struct engine_req *rq, struct filter_set **out)
{
	struct aftr_filter tmp[PCP_MAX_FILTERS + 64];
	unsigned n = 0;
	if (cur) {
		for (unsigned i = 0; i < cur->n && n < PCP_MAX_FILTERS; i++)
			tmp[n++] = cur->f[i];
	}
	for (unsigned i = 0; i < rq->nfilters; i++) {
		const struct pcp_filter *pf = &rq->filters[i];
		if (pf->plen == 0) {
			n = 0;
			continue;
		}
		struct aftr_filter f = { .plen = pf->plen, .port = pf->port, .addr = pf->addr };
		addr_mask(&f.addr, f.plen);
		bool dup = false;
		for (unsigned j = 0; j < n && !dup; j++)
			dup = tmp[j].plen == f.plen && tmp[j].port == f.port &&
			      addr_equal(&tmp[j].addr, &f.addr);
		if (dup)
			continue;
		if (n >= e->lim.max_filters || n >= PCP_MAX_FILTERS + 63)
			return PERR_EXCESSIVE_REMOTE_PEERS;
		tmp[n++] = f;
	}
	*out = NULL;
	if (n == 0)
		return PERR_OK;
	struct filter_set *fs = filter_set_new(n);
	if (!fs)
		return PERR_NOMEM;
	memcpy(fs->f, tmp, n * sizeof(tmp[0]));
	*out = fs;
	return PERR_OK;
}

static void fill_desc(struct engine_result *r, const char *desc)
{
	r->has_desc = desc != NULL;
	if (desc) {
		r->desc_len = (uint16_t)strlen(desc);
		memcpy(r->desc, desc, r->desc_len + 1u);
	}
}

static void log_binding(const char *what, const struct subscriber *sub, const struct binding *b)
{
	if (log_level() < LOG_INFO)
		return;
	char b4[ADDR_STRLEN], in[ADDR_STRLEN], ex[ADDR_STRLEN];
	/* RFC 6888 REQ-12: no destinations logged */
	log_info("mapping %s sub=%u b4=%s proto=%u internal=%s:%u external=%s:%u", what,
		 sub->index, sub->b4.plen ? addr_str(&sub->b4.addr, b4) : sub->ifname, b->proto,
		 addr_str(&b->int_addr, in), b->int_port, addr_str(&b->ext_addr, ex), b->ext_port);
}

/* Tells the observer (the DDNS hook) that an inbound mapping appeared or
 * went. Sub lock held: per subscriber, events leave in the order the
 * changes happened. */
static void notify(const struct engine *e, const struct subscriber *sub, const struct binding *b, bool up,
		   uint32_t now)
{
	if (e->obs)
		e->obs->mapping(e->obs->ctx, sub, b, up, now);
}

/* Unlinks b from its subscriber's list and the table (sub lock held). */
static void unlink_binding(struct engine *e, struct binding *b)
{
	cds_list_del(&b->sub_node);
	table_remove(e->table, b);
}

/* ---- completion of kernel changes ---- */

static void tx_free(struct etxn *t)
{
	if (t->filters)
		free(t->filters);           /* never published */
	free(t->desc);
	if (t->peer_new)
		free(t->peer);
	free(t);
}

static void tx_done(void *arg, enum perr kerr)
{
	struct etxn *t = arg;
	struct engine *e = t->e;
	struct subscriber *sub = t->sub;
	struct binding *b = t->b;

	if (t->kind == TX_DELETE && kerr == PERR_NOT_FOUND)
		kerr = PERR_OK;               /* the kernel already expired it */
	pthread_mutex_lock(&sub->lock);
	b->flags &= (uint8_t)~BF_PENDING;
	if (kerr != PERR_OK) {
		e->stats.kernel_failures++;
		t->res.err = kerr == PERR_NO_RESOURCES ? PERR_NO_RESOURCES : PERR_NETWORK_FAILURE;
		t->res.lifetime = 0;
		if (t->kind == TX_CREATE) {
			struct portalloc *pa = alloc_of(sub, b);
			if (pa)
				portalloc_release(pa, b->ext_port, t->now, 0, NULL);
			sub->nmappings -= (uint32_t)t->parts_delta;
			/* a snapshot may have seen it while it was pending */
			if (b->flags & (BF_MAP | BF_STATIC))
				notify(e, sub, b, false, t->now);
			unlink_binding(e, b);
		}
	} else if (t->kind == TX_CREATE) {
		e->stats.created++;
		log_binding("created", sub, b);
		if (b->flags & (BF_MAP | BF_STATIC))
			notify(e, sub, b, true, t->now);
	} else if (t->kind == TX_DELETE) {
		struct port_owner o;
		owner_of(b, &o);
		struct portalloc *pa = alloc_of(sub, b);
		if (pa)
			portalloc_release(pa, b->ext_port, t->now, e->lim.hold_down, &o);
		sub->nmappings -= (uint32_t)-t->parts_delta;
		e->stats.deleted++;
		log_binding("deleted", sub, b);
		if (b->flags & (BF_MAP | BF_STATIC))
			notify(e, sub, b, false, t->now);
		unlink_binding(e, b);
	} else {
		/* TX_UPDATE: apply the new state */
		bool had_map = b->flags & BF_MAP;
		b->flags = t->flags;
		memcpy(b->nonce, t->nonce, sizeof(b->nonce));
		b->map_expires = t->map_expires;
		if (t->set_filters) {
			binding_set_filters(b, t->filters);
			t->filters = NULL;
		}
		if (t->set_desc) {
			binding_set_description(b, t->desc);
			t->desc = NULL;
		}
		if (t->peer_new) {
			t->peer->next = b->peers;
			b->peers = t->peer;
			t->peer_new = false;
		}
		if (t->peer)
			t->peer->expires = t->peer_expires;
		b->client_addr = t->client_addr;
		b->client_port = t->client_port;
		binding_update_expires(b);
		table_requeue(e->table, b);
		sub->nmappings = (uint32_t)((int64_t)sub->nmappings + t->parts_delta);
		if (had_map && !(b->flags & BF_MAP)) {
			e->stats.deleted++;
			log_binding("deleted", sub, b);
			notify(e, sub, b, false, t->now);
		} else if (!had_map && (b->flags & BF_MAP)) {
			e->stats.created++;
			log_binding("created", sub, b);
			notify(e, sub, b, true, t->now);
		} else {
			e->stats.refreshed++;
		}
		if (t->res.err == PERR_OK && (b->flags & BF_MAP))
			fill_desc(&t->res, b->description);
	}
	pthread_mutex_unlock(&sub->lock);
	t->done(t->arg, &t->res);
	tx_free(t);
}

static void tx_submit(struct etxn *t, enum kop op)
{
	struct kchange c;
	struct kpeer peers[KPEERS_MAX + 1], np;
	struct binding *b = t->b;
	kchange_of(b, op, t->now, &c);
	/* the binding is BF_PENDING: nobody else changes its parts meanwhile */
	c.npeers = kpeers_of(b, t->now, peers);
	if (t->peer_new && c.npeers < KPEERS_MAX + 1) {
		struct kpeer *k = &peers[c.npeers++];
		k->addr = t->peer->addr;
		k->port = t->peer->port;
		memcpy(k->nonce, t->peer->nonce, sizeof(k->nonce));
		k->timeout = left(t->peer_expires, t->now);
	}
	for (unsigned i = 0; t->peer && !t->peer_new && i < c.npeers; i++)
		if (peers[i].port == t->peer->port && addr_equal(&peers[i].addr, &t->peer->addr))
			peers[i].timeout = left(t->peer_expires, t->now);
	c.peers = peers;
	if (t->peer_flow) {
		const struct peer_part *p = t->peer ? t->peer : b->peers;
		np.addr = p->addr;
		np.port = p->port;
		memcpy(np.nonce, p->nonce, sizeof(np.nonce));
		np.timeout = left(t->peer ? t->peer_expires : p->expires, t->now);
		c.new_peer = &np;
	}
	if (t->kind == TX_UPDATE) {
		/* describe the state the kernel must have after the change */
		uint32_t exp = b->expires;
		if (t->flags & (BF_MAP | BF_STATIC))
			exp = t->map_expires;
		else
			exp = 0;
		for (struct peer_part *p = b->peers; p; p = p->next) {
			uint32_t pe = p == t->peer ? t->peer_expires : p->expires;
			if (pe > exp)
				exp = pe;
		}
		if (t->peer_new && t->peer_expires > exp)
			exp = t->peer_expires;
		c.timeout = exp == UINT32_MAX ? 0 : left(exp, t->now);
		c.map_timeout = !(t->flags & BF_MAP) || t->map_expires == UINT32_MAX
					? 0 : left(t->map_expires, t->now);
		c.flags = t->flags;
		if (t->set_filters) {
			c.nfilters = t->filters ? t->filters->n : 0;
			c.filters = t->filters ? t->filters->f : NULL;
		}
	}
	t->e->kb->ops->submit(t->e->kb, &c, tx_done, t);
}

static struct etxn *tx_new(struct engine *e, const struct engine_req *rq, struct binding *b,
			   enum tx_kind kind, engine_done_fn done, void *arg)
{
	struct etxn *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->e = e;
	t->sub = rq->sub;
	t->b = b;
	t->kind = kind;
	t->now = rq->now;
	t->done = done;
	t->arg = arg;
	t->flags = b->flags & (uint8_t)~BF_PENDING;
	memcpy(t->nonce, b->nonce, sizeof(t->nonce));
	t->map_expires = b->map_expires;
	t->client_addr = rq->client_addr;
	t->client_port = rq->client_port;
	t->res.ext_addr = b->ext_addr;
	t->res.ext_port = b->ext_port;
	return t;
}

/* A new binding for rq's internal endpoint on the subscriber's address. */
static struct binding *binding_for(const struct engine_req *rq, uint16_t port, uint8_t flags)
{
	struct binding *b = binding_new();
	if (!b)
		return NULL;
	b->sub = rq->sub->index;
	b->proto = rq->proto;
	b->int_addr = rq->int_addr;
	b->int_port = rq->int_port;
	b->ext_addr = rq->sub->ext_addr;
	b->ext_port = port;
	b->flags = (uint8_t)(flags | BF_PENDING);
	memcpy(b->nonce, rq->nonce, sizeof(b->nonce));
	b->created = rq->now;
	b->client_addr = rq->client_addr;
	b->client_port = rq->client_port;
	return b;
}

/* Links a new binding (its key and port reserved while the kernel works)
 * and submits it; on any failure everything is given back. Called with
 * the subscriber lock held; returns with it released. */
static void create_commit(struct engine *e, const struct engine_req *rq, struct binding *b,
			  struct portalloc *pa, int parts, uint32_t lifetime, bool peer_flow,
			  engine_done_fn done, void *arg)
{
	struct subscriber *sub = rq->sub;
	binding_update_expires(b);
	struct etxn *t = tx_new(e, rq, b, TX_CREATE, done, arg);
	if (!t || table_insert(e->table, b) != PERR_OK) {
		free(t);
		portalloc_release(pa, b->ext_port, rq->now, 0, NULL);
		binding_free(b);
		pthread_mutex_unlock(&sub->lock);
		finish(done, arg, PERR_NO_RESOURCES, 0, false);
		return;
	}
	cds_list_add(&b->sub_node, &sub->bindings);
	t->parts_delta = parts;
	t->peer_flow = peer_flow;
	sub->nmappings += (uint32_t)parts;
	t->res.lifetime = lifetime;
	fill_desc(&t->res, b->description);
	pthread_mutex_unlock(&sub->lock);
	tx_submit(t, KOP_ADD);
}

/* ---- MAP ---- */

static void map_delete(struct engine *e, const struct engine_req *rq, engine_done_fn done,
		       void *arg)
{
	struct subscriber *sub = rq->sub;
	if (rq->int_port == 0 || !sub_portalloc(sub, rq->proto, true)) {
		/* all-ports / DMZ / unsupported protocol: we never create those,
		 * so the mapping does not exist (§15.1: SUCCESS) */
		finish(done, arg, PERR_OK, 0, false);
		return;
	}
	pthread_mutex_lock(&sub->lock);
	struct binding *b = table_lookup_int(e->table, sub->index, rq->proto, &rq->int_addr,
					     rq->int_port);
	if (!b) {
		pthread_mutex_unlock(&sub->lock);
		finish(done, arg, PERR_OK, 0, false);
		return;
	}
	if (b->flags & BF_PENDING) {
		pthread_mutex_unlock(&sub->lock);
		finish(done, arg, PERR_DROP, 0, false);
		return;
	}
	if (b->flags & BF_STATIC || !(b->flags & BF_MAP)) {
		/* §15.1: MAP cannot delete static or outbound mappings */
		pthread_mutex_unlock(&sub->lock);
		finish(done, arg, PERR_NOT_AUTHORIZED, 0, false);
		return;
	}
	if (memcmp(b->nonce, rq->nonce, PCP_NONCE_LEN) != 0) {
		uint32_t l = left(b->map_expires, rq->now);
		pthread_mutex_unlock(&sub->lock);
		finish(done, arg, PERR_NOT_AUTHORIZED, l, true);
		return;
	}
	enum tx_kind kind = b->peers ? TX_UPDATE : TX_DELETE;
	struct etxn *t = tx_new(e, rq, b, kind, done, arg);
	if (!t) {
		pthread_mutex_unlock(&sub->lock);
		finish(done, arg, PERR_NO_RESOURCES, 0, false);
		return;
	}
	t->parts_delta = -1;
	t->flags &= (uint8_t)~(BF_MAP | BF_THIRD_PARTY | BF_PREFER_FAILURE | BF_NATPMP);
	t->map_expires = 0;
	t->set_filters = true;
	t->set_desc = true;
	t->res.lifetime = 0;
	b->flags |= BF_PENDING;
	pthread_mutex_unlock(&sub->lock);
	tx_submit(t, kind == TX_DELETE ? KOP_DEL : KOP_REFRESH);
}

static void map_create(struct engine *e, const struct engine_req *rq, uint32_t lifetime,
		       engine_done_fn done, void *arg)
{
	struct subscriber *sub = rq->sub;
	bool is_static = rq->flags & BF_STATIC;
	bool pf = rq->flags & BF_PREFER_FAILURE;
	struct portalloc *pa = sub_portalloc(sub, rq->proto, true);
	enum perr err = PERR_OK;
	struct filter_set *fs = NULL;
	uint16_t port = 0;

	if (!is_static && sub->nmappings >= e->lim.max_mappings)
		err = PERR_USER_EX_QUOTA;
	else if (!sugg_addr_ok(rq) && pf)
		err = PERR_CANNOT_PROVIDE_EXTERNAL;
	if (err == PERR_OK)
		err = merge_filters(e, NULL, rq, &fs);
	if (err == PERR_OK) {
		struct port_owner o = { .int_addr = rq->int_addr, .int_port = rq->int_port };
		memcpy(o.nonce, rq->nonce, sizeof(o.nonce));
		if (rq->sugg_port &&
		    portalloc_take(pa, rq->sugg_port, rq->now, &o) == PERR_OK)
			port = rq->sugg_port;
		else if (pf)
			err = PERR_CANNOT_PROVIDE_EXTERNAL;
		else if (portalloc_any(pa, rq->now, &o, &port) != PERR_OK)
			err = PERR_NO_RESOURCES;
	}
	struct binding *b = NULL;
	uint8_t flags = (uint8_t)(BF_MAP | (rq->flags & (BF_STATIC | BF_THIRD_PARTY |
							  BF_PREFER_FAILURE | BF_NATPMP)));
	if (err == PERR_OK && !(b = binding_for(rq, port, flags))) {
		portalloc_release(pa, port, rq->now, 0, NULL);
		err = PERR_NO_RESOURCES;
	}
	if (err != PERR_OK) {
		pthread_mutex_unlock(&sub->lock);
		free(fs);
		finish(done, arg, err, 0, false);
		return;
	}
	b->map_expires = is_static ? UINT32_MAX : rq->now + lifetime;
	b->filters = fs;
	if (rq->has_desc && rq->desc_len) {
		uint16_t n = utf8_truncate(rq->desc, rq->desc_len, ENGINE_DESC_MAX);
		b->description = strndup(rq->desc, n);
	}
	create_commit(e, rq, b, pa, is_static ? 0 : 1,
		      is_static ? ENGINE_STATIC_LIFETIME : lifetime, false, done, arg);   /* unlocks */
}

/* The MAP part is added to or refreshed on an existing binding. */
static void map_update(struct engine *e, const struct engine_req *rq, struct binding *b,
		       uint32_t lifetime, engine_done_fn done, void *arg)
{
	struct subscriber *sub = rq->sub;
	bool add = !(b->flags & BF_MAP);
	enum perr err = PERR_OK;
	struct filter_set *fs = NULL;

	if (add && sub->nmappings >= e->lim.max_mappings)
		err = PERR_USER_EX_QUOTA;
	if (err == PERR_OK && rq->nfilters)
		err = merge_filters(e, add ? NULL : b->filters, rq, &fs);
	if (err != PERR_OK) {
		pthread_mutex_unlock(&sub->lock);
		finish(done, arg, err, 0, false);
		return;
	}
	struct etxn *t = tx_new(e, rq, b, TX_UPDATE, done, arg);
	if (!t) {
		pthread_mutex_unlock(&sub->lock);
		free(fs);
		finish(done, arg, PERR_NO_RESOURCES, 0, false);
		return;
	}
	t->flags = (uint8_t)((t->flags & ~(BF_THIRD_PARTY | BF_PREFER_FAILURE | BF_NATPMP)) |
			     BF_MAP |
			     (rq->flags & (BF_THIRD_PARTY | BF_PREFER_FAILURE | BF_NATPMP)));
	memcpy(t->nonce, rq->nonce, sizeof(t->nonce));
	t->map_expires = rq->now + lifetime;
	t->parts_delta = add ? 1 : 0;
	if (rq->nfilters || add) {
		t->set_filters = true;
		t->filters = fs;
	}
	if (rq->has_desc) {
		t->set_desc = true;
		uint16_t n = utf8_truncate(rq->desc, rq->desc_len, ENGINE_DESC_MAX);
		t->desc = n ? strndup(rq->desc, n) : NULL;
	} else if (add) {
		t->set_desc = true;       /* a new MAP part starts without description */
	}
	t->res.lifetime = lifetime;
	b->flags |= BF_PENDING;
	pthread_mutex_unlock(&sub->lock);
	tx_submit(t, KOP_REFRESH);
}

/* Subscribers derived from a B4 prefix appear on first contact: their data
 * plane is installed then. */
static bool provisioned(struct engine *e, struct subscriber *sub)
{
	return sub->provisioned || engine_sub_provision(e, sub) == PERR_OK;
}

/* A subscriber the operator is removing gets no new state. */
static bool removing(struct subscriber *sub, engine_done_fn done, void *arg)
{
	if (!sub->removing)
		return false;
	finish(done, arg, PERR_NOT_AUTHORIZED, 0, false);
	return true;
}

void engine_map(struct engine *e, const struct engine_req *rq, engine_done_fn done, void *arg)
{
	struct subscriber *sub = rq->sub;
	if (rq->lifetime && removing(sub, done, arg))
		return;
	if (rq->lifetime && !provisioned(e, sub)) {
		finish(done, arg, PERR_NETWORK_FAILURE, 0, false);
		return;
	}
	if (rq->lifetime == 0 && !(rq->flags & BF_STATIC)) {
		map_delete(e, rq, done, arg);
		return;
	}
	/* §11.3: all-ports (port 0) and DMZ (protocol 0) cannot be fulfilled
	 * on a shared-address CGN; only TCP and UDP are mapped. */
	if (rq->proto == 0 || rq->int_port == 0 || !sub_portalloc(sub, rq->proto, true)) {
		finish(done, arg, PERR_UNSUPP_PROTOCOL, 0, false);
		return;
	}
	uint32_t lifetime = clamp_lifetime(e, rq->lifetime);
	/* RFC 6886 §3.3: NAT-PMP SHOULD NOT get more than it asked for */
	if ((rq->flags & BF_NATPMP) && rq->lifetime < lifetime)
		lifetime = rq->lifetime;
	bool pf = rq->flags & BF_PREFER_FAILURE;

	pthread_mutex_lock(&sub->lock);
	struct binding *b = table_lookup_int(e->table, sub->index, rq->proto, &rq->int_addr,
					     rq->int_port);
	if (!b) {
		map_create(e, rq, lifetime, done, arg);   /* unlocks */
		return;
	}
	if (b->flags & BF_PENDING) {
		pthread_mutex_unlock(&sub->lock);
		finish(done, arg, PERR_DROP, 0, false);
		return;
	}
	bool differs = (rq->sugg_port && rq->sugg_port != b->ext_port) ||
		       (!addr_is_zero(&rq->sugg_addr) && !addr_equal(&rq->sugg_addr, &b->ext_addr));
	enum perr err = PERR_OK;
	uint32_t elife = 0;
	bool eset = false;
	if (b->flags & BF_STATIC) {
		/* §11.3 item 2: return the static mapping, nonce not recorded */
		if (pf && differs) {
			err = PERR_CANNOT_PROVIDE_EXTERNAL;
		} else {
			struct engine_result r;
			memset(&r, 0, sizeof(r));
			r.lifetime = ENGINE_STATIC_LIFETIME;
			r.ext_addr = b->ext_addr;
			r.ext_port = b->ext_port;
			pthread_mutex_unlock(&sub->lock);
			done(arg, &r);
			return;
		}
	} else if ((b->flags & BF_MAP) && memcmp(b->nonce, rq->nonce, PCP_NONCE_LEN) != 0) {
		err = PERR_NOT_AUTHORIZED;        /* §11.3: another client's mapping */
		elife = left(b->map_expires, rq->now);
		eset = true;
	} else if (pf && differs) {
		err = PERR_CANNOT_PROVIDE_EXTERNAL;   /* §11.3 item 1 */
	}
	if (err != PERR_OK) {
		pthread_mutex_unlock(&sub->lock);
		finish(done, arg, err, elife, eset);
		return;
	}
	map_update(e, rq, b, lifetime, done, arg);   /* unlocks */
}

/* ---- PEER ---- */

static struct peer_part *find_peer(struct binding *b, const struct in6_addr *a, uint16_t port)
{
	for (struct peer_part *p = b->peers; p; p = p->next)
		if (p->port == port && addr_equal(&p->addr, a))
			return p;
	return NULL;
}

static void peer_create(struct engine *e, const struct engine_req *rq, uint32_t lifetime,
			engine_done_fn done, void *arg)
{
	struct subscriber *sub = rq->sub;
	struct portalloc *pa = sub_portalloc(sub, rq->proto, false);
	enum perr err = PERR_OK;
	uint16_t port = 0;
	struct port_owner o = { .int_addr = rq->int_addr, .int_port = rq->int_port };
	memcpy(o.nonce, rq->nonce, sizeof(o.nonce));

	/* §12.3: an existing flow already has its implicit mapping: return it */
	struct in6_addr kext;
	uint16_t kport = 0;
	if (e->kb->ops->peer_find(e->kb, kzone_of(sub->index), rq->proto, &rq->int_addr,
				  rq->int_port, &rq->peer_addr, rq->peer_port, &kext,
				  &kport) != PERR_OK ||
	    !addr_equal(&kext, &sub->ext_addr) || !portalloc_in_range(pa, kport))
		kport = 0;

	if (sub->nmappings >= e->lim.max_mappings)
		err = PERR_USER_EX_QUOTA;
	else if (kport && portalloc_take(pa, kport, rq->now, &o) == PERR_OK)
		port = kport;
	else if (!sugg_addr_ok(rq))
		err = PERR_CANNOT_PROVIDE_EXTERNAL;     /* §12.3: MUST, no state */
	else if (rq->sugg_port) {
		if (portalloc_take(pa, rq->sugg_port, rq->now, &o) == PERR_OK)
			port = rq->sugg_port;
		else
			err = PERR_CANNOT_PROVIDE_EXTERNAL;
	} else if (portalloc_any(pa, rq->now, &o, &port) != PERR_OK) {
		err = PERR_NO_RESOURCES;
	}
	struct binding *b = NULL;
	struct peer_part *p = NULL;
	if (err == PERR_OK && (!(b = binding_for(rq, port, rq->flags & BF_THIRD_PARTY)) ||
			       !(p = calloc(1, sizeof(*p))))) {
		portalloc_release(pa, port, rq->now, 0, NULL);
		binding_free(b);
		err = PERR_NO_RESOURCES;
	}
	if (err != PERR_OK) {
		pthread_mutex_unlock(&sub->lock);
		finish(done, arg, err, 0, false);
		return;
	}
	p->addr = rq->peer_addr;
	p->port = rq->peer_port;
	memcpy(p->nonce, rq->nonce, sizeof(p->nonce));
	p->expires = rq->now + lifetime;
	b->peers = p;
	create_commit(e, rq, b, pa, 1, lifetime, true, done, arg);   /* unlocks */
}

void engine_peer(struct engine *e, const struct engine_req *rq, engine_done_fn done, void *arg)
{
	struct subscriber *sub = rq->sub;
	if (!sub_portalloc(sub, rq->proto, false)) {
		finish(done, arg, PERR_UNSUPP_PROTOCOL, 0, false);
		return;
	}
	if (removing(sub, done, arg))
		return;
	if (!provisioned(e, sub)) {
		finish(done, arg, PERR_NETWORK_FAILURE, 0, false);
		return;
	}
	/* §12.1: PEER cannot delete or shorten; lifetime 0 is just a short ask */
	uint32_t lifetime = clamp_lifetime(e, rq->lifetime);
	pthread_mutex_lock(&sub->lock);
	struct binding *b = table_lookup_int(e->table, sub->index, rq->proto, &rq->int_addr,
					     rq->int_port);
	if (!b) {
		peer_create(e, rq, lifetime, done, arg);    /* unlocks */
		return;
	}
	enum perr err = PERR_OK;
	uint32_t elife = 0;
	bool eset = false;
	struct peer_part *p = find_peer(b, &rq->peer_addr, rq->peer_port);
	if (b->flags & BF_PENDING) {
		err = PERR_DROP;
	} else if (p && memcmp(p->nonce, rq->nonce, PCP_NONCE_LEN) != 0) {
		err = PERR_NOT_AUTHORIZED;          /* §12.3 */
		elife = left(p->expires, rq->now);
		eset = true;
	} else if (!p && ((rq->sugg_port && rq->sugg_port != b->ext_port) ||
			  (!addr_is_zero(&rq->sugg_addr) && !addr_equal(&rq->sugg_addr, &b->ext_addr)))) {
		/* endpoint-independent mapping fixes the external port */
		err = PERR_CANNOT_PROVIDE_EXTERNAL;
	} else if (!p && sub->nmappings >= e->lim.max_mappings) {
		err = PERR_USER_EX_QUOTA;
	}
	struct etxn *t = NULL;
	if (err == PERR_OK && !(t = tx_new(e, rq, b, TX_UPDATE, done, arg)))
		err = PERR_NO_RESOURCES;
	bool is_new = !p;
	if (err == PERR_OK && is_new && !(p = calloc(1, sizeof(*p)))) {
		free(t);
		err = PERR_NO_RESOURCES;
	}
	if (err != PERR_OK) {
		pthread_mutex_unlock(&sub->lock);
		finish(done, arg, err, elife, eset);
		return;
	}
	if (is_new) {
		p->addr = rq->peer_addr;
		p->port = rq->peer_port;
		memcpy(p->nonce, rq->nonce, sizeof(p->nonce));
		t->peer_new = true;
		t->parts_delta = 1;
	}
	uint32_t want = rq->now + lifetime;
	t->peer = p;
	t->peer_flow = true;
	t->peer_expires = is_new || want > p->expires ? want : p->expires;
	t->res.lifetime = left(t->peer_expires, rq->now);
	b->flags |= BF_PENDING;
	pthread_mutex_unlock(&sub->lock);
	tx_submit(t, KOP_REFRESH);
}

/* ---- NAT-PMP delete-all and expiry ---- */

static void natpmp_del_done(void *arg, const struct engine_result *r)
{
	(void)arg;
	(void)r;
}

void engine_delete_all_natpmp(struct engine *e, struct subscriber *sub, uint8_t proto,
			      const struct in6_addr *int_addr, uint32_t now)
{
	/* collect under the lock (bounded by the subscriber's quota), then
	 * delete each through the normal path, which takes the lock itself */
	pthread_mutex_lock(&sub->lock);
	unsigned n = 0, cap = sub->nmappings;
	uint16_t *ports = cap ? malloc(cap * sizeof(*ports)) : NULL;
	uint8_t nonce[PCP_NONCE_LEN] = { 0 };   /* NAT-PMP bindings all share one */
	struct binding *b;
	if (ports) {
		cds_list_for_each_entry(b, &sub->bindings, sub_node) {
			if (b->proto == proto && (b->flags & BF_NATPMP) &&
			    addr_equal(&b->int_addr, int_addr) && n < cap) {
				ports[n++] = b->int_port;
				memcpy(nonce, b->nonce, sizeof(nonce));
			}
		}
	}
	pthread_mutex_unlock(&sub->lock);
	for (unsigned i = 0; i < n; i++) {
		struct engine_req rq = { .sub = sub, .proto = proto, .int_addr = *int_addr,
					 .int_port = ports[i], .now = now };
		memcpy(rq.nonce, nonce, sizeof(nonce));
		map_delete(e, &rq, natpmp_del_done, NULL);
	}
	free(ports);
}

static void expire_done(void *arg, enum perr err)
{
	(void)arg;
	if (err != PERR_OK && err != PERR_NOT_FOUND)
		log_warn("kernel change for an expired mapping failed: %s", perr_str(err));
}

struct expiry_run {
	struct engine *e;
	uint32_t now;
};

static void expire_one(void *arg, struct binding *b)
{
	struct expiry_run *run = arg;
	struct engine *e = run->e;
	uint32_t now = run->now;
	struct subscriber *sub = subs_by_index(e->subs, b->sub);
	if (!sub) {
		table_remove(e->table, b);
		return;
	}
	pthread_mutex_lock(&sub->lock);
	if (b->flags & BF_PENDING) {
		b->expires = now + 1;       /* decided when the kernel answers */
		table_requeue(e->table, b);
		pthread_mutex_unlock(&sub->lock);
		return;
	}
	unsigned gone = 0;
	struct peer_part **pp = &b->peers;
	while (*pp) {
		struct peer_part *p = *pp;
		if (p->expires <= now) {
			*pp = p->next;
			free(p);           /* peer parts are read only under the sub lock */
			gone++;
		} else {
			pp = &p->next;
		}
	}
	if ((b->flags & BF_MAP) && !(b->flags & BF_STATIC) && b->map_expires <= now) {
		b->flags &= (uint8_t)~(BF_MAP | BF_THIRD_PARTY | BF_PREFER_FAILURE | BF_NATPMP);
		binding_set_filters(b, NULL);
		binding_set_description(b, NULL);
		gone++;
		if (b->peers)
			log_binding("expired (inbound part; outbound stays)", sub, b);
		notify(e, sub, b, false, now);
	}
	sub->nmappings -= gone;
	e->stats.expired += gone;
	struct kchange c;
	if (!(b->flags & (BF_MAP | BF_STATIC)) && !b->peers) {
		struct port_owner o;
		owner_of(b, &o);
		struct portalloc *pa = alloc_of(sub, b);
		if (pa)
			portalloc_release(pa, b->ext_port, now, e->lim.hold_down, &o);
		kchange_of(b, KOP_DEL, now, &c);
		log_binding("expired", sub, b);
		unlink_binding(e, b);
	} else {
		binding_update_expires(b);
		table_requeue(e->table, b);
		kchange_of(b, KOP_REFRESH, now, &c);
	}
	pthread_mutex_unlock(&sub->lock);
	/* the kernel expires its elements on its own timeout as well */
	e->kb->ops->submit(e->kb, &c, expire_done, NULL);
}

size_t engine_expire(struct engine *e, uint32_t now)
{
	struct expiry_run run = { e, now };
	/* the read lock keeps removed bindings alive until their change is submitted */
	rcu_read_lock();
	size_t n = table_expire(e->table, now, expire_one, &run);
	rcu_read_unlock();
	return n;
}

/* ---- subscribers' data plane ---- */

static void ksub_of(const struct subscriber *sub, struct ksub *k)
{
	memset(k, 0, sizeof(*k));
	k->index = sub->index;
	k->zone = kzone_of(sub->index);
	k->mark = kmark_of(sub->index);
	memcpy(k->ifname, sub->ifname, sizeof(k->ifname));
	k->ext_addr = sub->ext_addr;
	k->block_lo = sub->block_lo;
	k->block_n = sub->block_n;
	k->pcp_n = sub->pcp_n;
}

enum perr engine_sub_provision(struct engine *e, struct subscriber *sub)
{
	if (sub->index > KZONE_MAX_INDEX) {
		log_err("subscriber index %u: beyond the %u conntrack zones", sub->index,
			KZONE_MAX_INDEX + 1);
		return PERR_NO_RESOURCES;
	}
	struct ksub k;
	ksub_of(sub, &k);
	pthread_mutex_lock(&e->prov_lock);
	enum perr err = PERR_OK;
	if (!sub->provisioned) {
		err = e->kb->ops->sub_set(e->kb, &k);
		if (err == PERR_OK)
			sub->provisioned = true;
	}
	pthread_mutex_unlock(&e->prov_lock);
	if (err != PERR_OK)
		log_err("subscriber %u: data plane not installed: %s", sub->index, perr_str(err));
	return err;
}

enum perr engine_sub_unprovision(struct engine *e, struct subscriber *sub)
{
	struct ksub k;
	ksub_of(sub, &k);
	pthread_mutex_lock(&e->prov_lock);
	enum perr err = PERR_OK;
	if (sub->provisioned) {
		err = e->kb->ops->sub_del(e->kb, &k);
		if (err == PERR_OK || err == PERR_NOT_FOUND) {
			sub->provisioned = false;
			err = PERR_OK;
		}
	}
	pthread_mutex_unlock(&e->prov_lock);
	return err;
}

/* ---- control socket: static delete, flush ---- */

/* What a binding counts against its subscriber's quota: the MAP part
 * (static ones are free) and each PEER part. */
static unsigned binding_parts(const struct binding *b)
{
	unsigned n = (b->flags & BF_MAP) && !(b->flags & BF_STATIC) ? 1 : 0;
	for (const struct peer_part *p = b->peers; p; p = p->next)
		n++;
	return n;
}

/* Removes a binding whatever its parts (static included). Subscriber lock
 * held; returns with it released. */
static void force_delete(struct engine *e, const struct engine_req *rq, struct binding *b,
			 engine_done_fn done, void *arg)
{
	struct subscriber *sub = rq->sub;
	if (b->flags & BF_PENDING) {
		pthread_mutex_unlock(&sub->lock);
		finish(done, arg, PERR_DROP, 0, false);
		return;
	}
	struct etxn *t = tx_new(e, rq, b, TX_DELETE, done, arg);
	if (!t) {
		pthread_mutex_unlock(&sub->lock);
		finish(done, arg, PERR_NO_RESOURCES, 0, false);
		return;
	}
	t->parts_delta = -(int)binding_parts(b);
	t->res.lifetime = 0;
	b->flags |= BF_PENDING;
	pthread_mutex_unlock(&sub->lock);
	tx_submit(t, KOP_DEL);
}

void engine_static_delete(struct engine *e, const struct engine_req *rq, engine_done_fn done,
			  void *arg)
{
	struct subscriber *sub = rq->sub;
	pthread_mutex_lock(&sub->lock);
	struct binding *b = table_lookup_int(e->table, sub->index, rq->proto, &rq->int_addr,
					     rq->int_port);
	if (!b || !(b->flags & BF_STATIC)) {
		pthread_mutex_unlock(&sub->lock);
		finish(done, arg, PERR_NOT_FOUND, 0, false);
		return;
	}
	force_delete(e, rq, b, done, arg);   /* unlocks */
}

struct flush_run {
	unsigned left;               /* outstanding deletes + 1 while submitting */
	unsigned deleted;
	enum perr err;
	pthread_mutex_t lock;
	void (*done)(void *arg, enum perr err, unsigned deleted);
	void *arg;
};

/* One outstanding part ends; deleted says whether it removed a binding. */
static void flush_put(struct flush_run *f, enum perr err, bool deleted)
{
	pthread_mutex_lock(&f->lock);
	if (err == PERR_OK && deleted)
		f->deleted++;
	else if (f->err == PERR_OK)
		f->err = err;
	bool last = --f->left == 0;
	pthread_mutex_unlock(&f->lock);
	if (last) {
		f->done(f->arg, f->err, f->deleted);
		pthread_mutex_destroy(&f->lock);
		free(f);
	}
}

static void flush_one_done(void *arg, const struct engine_result *r)
{
	flush_put(arg, r->err, true);
}

struct bkey {
	uint8_t proto;
	uint16_t port;
	struct in6_addr addr;
};

void engine_flush_sub(struct engine *e, struct subscriber *sub, uint32_t now,
		      void (*done)(void *arg, enum perr err, unsigned deleted), void *arg)
{
	struct flush_run *f = calloc(1, sizeof(*f));
	if (!f) {
		done(arg, PERR_NO_RESOURCES, 0);
		return;
	}
	pthread_mutex_init(&f->lock, NULL);
	f->done = done;
	f->arg = arg;
	f->left = 1;
	/* collect the keys under the lock, delete each through the normal path */
	pthread_mutex_lock(&sub->lock);
	size_t n = 0, cap = 0;
	struct binding *b;
	cds_list_for_each_entry(b, &sub->bindings, sub_node)
		cap++;
	struct bkey *keys = cap ? malloc(cap * sizeof(*keys)) : NULL;
	if (keys) {
		cds_list_for_each_entry(b, &sub->bindings, sub_node)
			keys[n++] = (struct bkey){ b->proto, b->int_port, b->int_addr };
	} else if (cap) {
		f->err = PERR_NO_RESOURCES;
	}
	pthread_mutex_unlock(&sub->lock);
	f->left += (unsigned)n;
	for (size_t i = 0; i < n; i++) {
		struct engine_req rq = { .sub = sub, .proto = keys[i].proto,
					 .int_addr = keys[i].addr, .int_port = keys[i].port,
					 .now = now };
		pthread_mutex_lock(&sub->lock);
		b = table_lookup_int(e->table, sub->index, rq.proto, &rq.int_addr, rq.int_port);
		if (!b) {
			pthread_mutex_unlock(&sub->lock);
			flush_put(f, PERR_OK, false);   /* gone meanwhile */
			continue;
		}
		force_delete(e, &rq, b, flush_one_done, f);   /* unlocks */
	}
	free(keys);
	flush_put(f, PERR_OK, false);     /* the submitting part */
}

/* ---- restart: rebuild the table from the kernel ---- */

struct restore_run {
	struct engine *e;
	uint32_t now;
	size_t restored, dropped;
};

static void restore_drop(struct restore_run *run, const struct kchange *c, const char *why)
{
	char a[ADDR_STRLEN], x[ADDR_STRLEN];
	log_warn("restart: dropping kernel binding %s:%u -> %s:%u proto %u of subscriber %u: %s",
		 addr_str(&c->ext_addr, x), c->ext_port, addr_str(&c->int_addr, a), c->int_port,
		 c->proto, c->sub, why);
	struct kchange d = *c;
	d.op = KOP_DEL;
	d.new_peer = NULL;
	run->e->kb->ops->submit(run->e->kb, &d, expire_done, NULL);
	run->dropped++;
}

static void restore_one(void *arg, const struct kchange *c)
{
	struct restore_run *run = arg;
	struct engine *e = run->e;
	uint32_t now = run->now;
	struct subscriber *sub = subs_by_index_or_derive(e->subs, c->sub);
	if (!sub) {
		restore_drop(run, c, "no such subscriber");
		return;
	}
	if (!sub->provisioned && engine_sub_provision(e, sub) != PERR_OK) {
		restore_drop(run, c, "its subscriber cannot be provisioned");
		return;
	}
	if (!addr_equal(&c->ext_addr, &sub->ext_addr) || c->zone != kzone_of(sub->index)) {
		restore_drop(run, c, "not the subscriber's address or zone");
		return;
	}
	bool is_map = c->flags & (BF_MAP | BF_STATIC);
	struct portalloc *pa = sub_portalloc(sub, c->proto, true);
	if (!pa || !portalloc_in_range(pa, c->ext_port))
		pa = sub_portalloc(sub, c->proto, false);
	if (!pa || !portalloc_in_range(pa, c->ext_port)) {
		restore_drop(run, c, "port outside the subscriber's block");
		return;
	}
	struct binding *b = binding_new();
	struct filter_set *fs = c->nfilters ? filter_set_new(c->nfilters) : NULL;
	if (!b || (c->nfilters && !fs)) {
		binding_free(b);
		free(fs);
		restore_drop(run, c, "out of memory");
		return;
	}
	b->sub = sub->index;
	b->proto = c->proto;
	b->int_addr = c->int_addr;
	b->int_port = c->int_port;
	b->ext_addr = c->ext_addr;
	b->ext_port = c->ext_port;
	b->flags = c->flags & (uint8_t)~BF_PENDING;
	memcpy(b->nonce, c->nonce, sizeof(b->nonce));
	b->created = now;
	if (c->flags & BF_STATIC)
		b->map_expires = UINT32_MAX;
	else if (c->flags & BF_MAP)
		b->map_expires = now + c->map_timeout;
	if (fs) {
		memcpy(fs->f, c->filters, c->nfilters * sizeof(fs->f[0]));
		b->filters = fs;
	}
	for (unsigned i = 0; i < c->npeers; i++) {
		struct peer_part *p = calloc(1, sizeof(*p));
		if (!p)
			break;
		p->addr = c->peers[i].addr;
		p->port = c->peers[i].port;
		memcpy(p->nonce, c->peers[i].nonce, sizeof(p->nonce));
		p->expires = now + c->peers[i].timeout;
		p->next = b->peers;
		b->peers = p;
	}
	if (!is_map && !b->peers) {
		/* an outbound binding whose peers did not fit the element's user
		 * data: keep it alive as long as the kernel does */
		struct peer_part *p = calloc(1, sizeof(*p));
		if (p) {
			p->expires = now + c->timeout;
			b->peers = p;
		}
	}
	binding_update_expires(b);
	struct port_owner o;
	owner_of(b, &o);
	pthread_mutex_lock(&sub->lock);
	if (portalloc_take(pa, b->ext_port, now, &o) != PERR_OK ||
	    table_insert(e->table, b) != PERR_OK) {
		pthread_mutex_unlock(&sub->lock);
		binding_free(b);          /* never published: frees its parts too */
		restore_drop(run, c, "port or internal endpoint already taken");
		return;
	}
	cds_list_add(&b->sub_node, &sub->bindings);
	sub->nmappings += binding_parts(b);
	pthread_mutex_unlock(&sub->lock);
	run->restored++;
}

size_t engine_restore(struct engine *e, uint32_t now)
{
	struct restore_run run = { .e = e, .now = now };
	rcu_read_lock();
	enum perr err = e->kb->ops->restore(e->kb, restore_one, &run);
	rcu_read_unlock();
	e->kb->ops->flush(e->kb);
	if (err != PERR_OK)
		log_err("restart: reading the kernel's bindings failed: %s", perr_str(err));
	log_info("restart: %zu binding(s) restored from the kernel, %zu dropped", run.restored,
		 run.dropped);
	return run.restored;
}
