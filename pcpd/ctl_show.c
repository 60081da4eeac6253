/* Read-only control commands: status, stats, show-mappings and
 * show-subscribers, and the result objects they (and the mutating
 * commands) emit. Listings are streamed: the subscribers to visit are
 * noted as indexes, then one subscriber's bindings at a time are copied
 * under its lock and written out as the socket drains. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/addr.h"
#include "pcpd/ctl_cmd.h"

#define WALK_SUBS_PER_STEP 64      /* subscribers looked at per step */
#define WALK_ROWS_PER_STEP 256     /* result objects written per step */

/* ---- JSON helpers ---- */

/* NULL-safe on both sides: an allocation failure loses a field, not the
 * daemon (json_object_object_add asserts on a NULL object) */
static void jadd(json_object *o, const char *k, json_object *v)
{
	if (o)
		json_object_object_add(o, k, v);
	else
		json_object_put(v);
}

static json_object *jstr_or_null(const char *s)
{
	return s && s[0] ? json_object_new_string(s) : NULL;
}

static json_object *jaddr(const struct in6_addr *a)
{
	char buf[ADDR_STRLEN];
	return json_object_new_string(addr_str(a, buf));
}

static json_object *jprefix(const struct prefix *p)
{
	char buf[ADDR_STRLEN + 8];
	return p->plen ? json_object_new_string(prefix_str(p, buf, sizeof(buf))) : NULL;
}

static json_object *ju64(uint64_t v)
{
	return json_object_new_uint64(v);
}

const char *ctl_proto_str(uint8_t proto, char *buf, size_t len)
{
	if (proto == 6)
		return "tcp";
	if (proto == 17)
		return "udp";
	snprintf(buf, len, "%u", proto);
	return buf;
}

static uint32_t left(uint32_t deadline, uint32_t now)
{
	return deadline > now ? deadline - now : 0;
}

/* ---- subscribers ---- */

void ctl_subinfo_of(struct ctl_subinfo *si, const struct subscriber *sub)
{
	si->index = sub->index;
	memcpy(si->name, sub->name, sizeof(si->name));
	si->b4 = sub->b4;
	memcpy(si->ifname, sub->ifname, sizeof(si->ifname));
}

json_object *ctl_json_subscriber(struct subscriber *sub)
{
	json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	pthread_mutex_lock(&sub->lock);
	uint32_t nmap = sub->nmappings;
	pthread_mutex_unlock(&sub->lock);
	jadd(o, "index", ju64(sub->index));
	jadd(o, "name", jstr_or_null(sub->name));
	jadd(o, "b4", jprefix(&sub->b4));
	jadd(o, "interface", jstr_or_null(sub->ifname));
	jadd(o, "ifindex", sub->ifname[0] ? json_object_new_int(sub->ifindex) : NULL);
	jadd(o, "external_addr", jaddr(&sub->ext_addr));
	jadd(o, "block_lo", ju64(sub->block_lo));
	jadd(o, "block_hi", ju64((uint32_t)sub->block_lo + sub->block_n - 1u));
	jadd(o, "pcp_lo", ju64(sub->block_lo));
	jadd(o, "pcp_hi", ju64((uint32_t)sub->block_lo + sub->pcp_n - 1u));
	jadd(o, "mappings", ju64(nmap));
	jadd(o, "requests", ju64(sub->requests));
	jadd(o, "rate_limited", ju64(sub->rate_limited));
	jadd(o, "provisioned", json_object_new_boolean(sub->provisioned));
	return o;
}

/* ---- mappings ---- */

bool ctl_snap_take(struct ctl_snap *s, const struct binding *b)
{
	memset(s, 0, sizeof(*s));
	s->proto = b->proto;
	s->flags = b->flags;
	s->int_port = b->int_port;
	s->ext_port = b->ext_port;
	s->int_addr = b->int_addr;
	s->ext_addr = b->ext_addr;
	s->map_expires = b->map_expires;
	s->created = b->created;
	const struct filter_set *fs = rcu_dereference(b->filters);
	if (fs && fs->n) {
		s->filters = malloc(fs->n * sizeof(*s->filters));
		if (!s->filters)
			return false;
		memcpy(s->filters, fs->f, fs->n * sizeof(*s->filters));
		s->nfilters = fs->n;
	}
	const char *d = rcu_dereference(b->description);
	if (d && !(s->desc = strdup(d))) {
		ctl_snap_clear(s);
		return false;
	}
	unsigned np = 0;
	for (const struct peer_part *p = b->peers; p; p = p->next)
		np++;
	if (np) {
		s->peers = malloc(np * sizeof(*s->peers));
		if (!s->peers) {
			ctl_snap_clear(s);
			return false;
		}
		for (const struct peer_part *p = b->peers; p; p = p->next)
			s->peers[s->npeers++] = (struct ctl_snap_peer){ p->addr, p->port, p->expires };
	}
	return true;
}

void ctl_snap_clear(struct ctl_snap *s)
{
	free(s->filters);
	free(s->peers);
	free(s->desc);
	memset(s, 0, sizeof(*s));
}

static const char *map_type(uint8_t flags)
{
	if (flags & BF_STATIC)
		return "static";
	if (flags & BF_NATPMP)
		return "natpmp";
	if (flags & BF_MAP)
		return "map";
	return "peer";
}

json_object *ctl_json_mapping(const struct ctl_subinfo *si, const struct ctl_snap *m,
			      uint32_t now)
{
	json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	char pb[8];
	jadd(o, "subscriber", ju64(si->index));
	jadd(o, "name", jstr_or_null(si->name));
	jadd(o, "b4", jprefix(&si->b4));
	jadd(o, "interface", jstr_or_null(si->ifname));
	jadd(o, "proto", json_object_new_string(ctl_proto_str(m->proto, pb, sizeof(pb))));
	jadd(o, "internal_addr", jaddr(&m->int_addr));
	jadd(o, "internal_port", ju64(m->int_port));
	jadd(o, "external_addr", jaddr(&m->ext_addr));
	jadd(o, "external_port", ju64(m->ext_port));
	jadd(o, "type", json_object_new_string(map_type(m->flags)));
	/* the MAP part's remaining lifetime; null: static, or no MAP part */
	bool timed = (m->flags & BF_MAP) && !(m->flags & BF_STATIC);
	jadd(o, "lifetime", timed ? ju64(left(m->map_expires, now)) : NULL);
	jadd(o, "third_party", json_object_new_boolean(m->flags & BF_THIRD_PARTY));
	jadd(o, "prefer_failure", json_object_new_boolean(m->flags & BF_PREFER_FAILURE));
	jadd(o, "pending", json_object_new_boolean(m->flags & BF_PENDING));
	jadd(o, "age", ju64(left(now, m->created)));
	json_object *fa = json_object_new_array();
	for (unsigned i = 0; fa && i < m->nfilters; i++) {
		json_object *f = json_object_new_object();
		if (!f)
			break;
		struct prefix p = { m->filters[i].addr, m->filters[i].plen };
		char buf[ADDR_STRLEN + 8];
		jadd(f, "prefix", json_object_new_string(prefix_str(&p, buf, sizeof(buf))));
		jadd(f, "port", ju64(m->filters[i].port));
		json_object_array_add(fa, f);
	}
	jadd(o, "filters", fa);
	jadd(o, "description", m->desc ? json_object_new_string(m->desc) : NULL);
	json_object *pa = json_object_new_array();
	for (unsigned i = 0; pa && i < m->npeers; i++) {
		json_object *p = json_object_new_object();
		if (!p)
			break;
		jadd(p, "addr", jaddr(&m->peers[i].addr));
		jadd(p, "port", ju64(m->peers[i].port));
		jadd(p, "lifetime", ju64(left(m->peers[i].expires, now)));
		json_object_array_add(pa, p);
	}
	jadd(o, "peers", pa);
	return o;
}

bool ctl_mfilter_match(const struct ctl_mfilter *f, const struct binding *b)
{
	if (f->has_sub && b->sub != f->sub)
		return false;
	if (f->has_proto && b->proto != f->proto)
		return false;
	if (f->has_int && !addr_equal(&b->int_addr, &f->int_addr))
		return false;
	if (f->has_ext && !addr_equal(&b->ext_addr, &f->ext_addr))
		return false;
	if (f->has_port && b->int_port != f->port && b->ext_port != f->port)
		return false;
	return true;
}

/* ---- the subscriber walk shared by both listings ---- */

struct walk {
	uint32_t *idx;            /* subscribers to visit, ascending */
	size_t n, pos;
	/* show-mappings */
	struct ctl_mfilter f;
	struct ctl_subinfo si;    /* the subscriber whose bindings are in m */
	struct ctl_snap *m;
	size_t nm, mpos, mcap;
	bool oom;
};

struct collect {
	uint32_t *v;
	size_t n, cap;
	bool oom;
};

static int collect_one(void *arg, struct subscriber *sub)
{
	struct collect *k = arg;
	if (k->n == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 256;
		uint32_t *v = realloc(k->v, cap * sizeof(*v));
		if (!v) {
			k->oom = true;
			return 1;
		}
		k->v = v;
		k->cap = cap;
	}
	k->v[k->n++] = sub->index;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static void walk_free(struct ctl_call *c)
{
	struct walk *w = c->st;
	if (!w)
		return;
	for (size_t i = w->mpos; i < w->nm; i++)
		ctl_snap_clear(&w->m[i]);
	free(w->m);
	free(w->idx);
	free(w);
	c->st = NULL;
}

/* Notes which subscribers to visit: the one named by av (if set) or all.
 * Returns the walk, or NULL after ending the call with an error. */
static struct walk *walk_new(struct ctl_call *c, const struct ctl_aval *sub_arg)
{
	struct walk *w = calloc(1, sizeof(*w));
	struct collect k = { 0 };
	if (!w) {
		ctl_end_err(c, CE_INTERNAL, "out of memory");
		return NULL;
	}
	rcu_read_lock();
	if (sub_arg->set) {
		struct subscriber *sub = ctl_sub_resolve(c->cx, sub_arg);
		if (sub)
			collect_one(&k, sub);
		w->f.has_sub = true;
		w->f.sub = sub ? sub->index : 0;
		if (!sub) {
			rcu_read_unlock();
			char lbl[96];
			ctl_end_err(c, CE_NOT_FOUND, "no %s", ctl_sub_label(sub_arg, lbl, sizeof(lbl)));
			free(w);
			return NULL;
		}
	} else {
		subs_foreach(c->cx->srv->subs, collect_one, &k);
	}
	rcu_read_unlock();
	if (k.oom) {
		free(k.v);
		free(w);
		ctl_end_err(c, CE_INTERNAL, "out of memory");
		return NULL;
	}
	if (k.n > 1)
		qsort(k.v, k.n, sizeof(*k.v), cmp_u32);
	w->idx = k.v;
	w->n = k.n;
	return w;
}

/* ---- show-mappings ---- */

static int cmp_snap(const void *a, const void *b)
{
	const struct ctl_snap *x = a, *y = b;
	if (x->proto != y->proto)
		return x->proto < y->proto ? -1 : 1;
	int r = memcmp(&x->int_addr, &y->int_addr, sizeof(x->int_addr));
	if (r)
		return r;
	return x->int_port < y->int_port ? -1 : x->int_port > y->int_port;
}

/* Copies the matching bindings of subscriber idx into w->m. */
static void snap_sub(struct ctl_ctx *cx, struct walk *w, uint32_t idx)
{
	w->nm = w->mpos = 0;
	rcu_read_lock();
	struct subscriber *sub = subs_by_index(cx->srv->subs, idx);
	/* every binding of a subscriber is on its one public address */
	if (!sub || (w->f.has_ext && !addr_equal(&sub->ext_addr, &w->f.ext_addr))) {
		rcu_read_unlock();
		return;
	}
	ctl_subinfo_of(&w->si, sub);
	pthread_mutex_lock(&sub->lock);
	struct binding *b;
	cds_list_for_each_entry(b, &sub->bindings, sub_node) {
		if (!ctl_mfilter_match(&w->f, b))
			continue;
		if (w->nm == w->mcap) {
			size_t cap = w->mcap ? w->mcap * 2 : 64;
			struct ctl_snap *m = realloc(w->m, cap * sizeof(*m));
			if (!m) {
				w->oom = true;
				break;
			}
			w->m = m;
			w->mcap = cap;
		}
		if (!ctl_snap_take(&w->m[w->nm], b)) {
			w->oom = true;
			break;
		}
		w->nm++;
	}
	pthread_mutex_unlock(&sub->lock);
	rcu_read_unlock();
	if (w->nm > 1)
		qsort(w->m, w->nm, sizeof(*w->m), cmp_snap);
}

static void mappings_step(struct ctl_call *c)
{
	struct walk *w = c->st;
	if (w->mpos == w->nm) {
		for (unsigned i = 0; i < WALK_SUBS_PER_STEP && w->pos < w->n && w->nm == 0 && !w->oom;
		     i++)
			snap_sub(c->cx, w, w->idx[w->pos++]);
	}
	if (w->oom) {
		ctl_end_err(c, CE_INTERNAL, "out of memory");
		return;
	}
	uint32_t now = c->cx->clock();
	for (unsigned i = 0; i < WALK_ROWS_PER_STEP && w->mpos < w->nm; i++) {
		struct ctl_snap *m = &w->m[w->mpos++];
		ctl_emit(c, ctl_json_mapping(&w->si, m, now));
		ctl_snap_clear(m);
		if (c->out && ctl_out_pending(c->out) >= CTL_OUT_HIGH)
			break;
	}
	if (w->mpos == w->nm)
		w->nm = w->mpos = 0;
	if (w->nm == 0 && w->pos == w->n)
		ctl_end_ok(c);
}

enum { SM_SUB, SM_INT, SM_EXT, SM_PORT, SM_PROTO };

static void show_mappings(struct ctl_call *c, const struct ctl_aval *av)
{
	struct walk *w = walk_new(c, &av[SM_SUB]);
	if (!w)
		return;
	w->f.has_int = av[SM_INT].set;
	w->f.int_addr = av[SM_INT].addr;
	w->f.has_ext = av[SM_EXT].set;
	w->f.ext_addr = av[SM_EXT].addr;
	w->f.has_port = av[SM_PORT].set;
	w->f.port = (uint16_t)av[SM_PORT].u;
	w->f.has_proto = av[SM_PROTO].set;
	w->f.proto = av[SM_PROTO].proto;
	ctl_call_stream(c, mappings_step, walk_free, w);
}

static const struct ctl_aspec show_mappings_args[] = {
	[SM_SUB] = { "subscriber", CA_SUB, false },
	[SM_INT] = { "internal", CA_ADDR4, false },
	[SM_EXT] = { "external", CA_ADDR4, false },
	[SM_PORT] = { "port", CA_PORT, false },
	[SM_PROTO] = { "proto", CA_PROTO, false },
	{ NULL, CA_STR, false },
};

const struct ctl_cmd ctl_cmd_show_mappings = {
	"show-mappings", false, show_mappings_args, show_mappings,
};

/* ---- show-subscribers ---- */

static void subscribers_step(struct ctl_call *c)
{
	struct walk *w = c->st;
	rcu_read_lock();
	for (unsigned i = 0; i < WALK_ROWS_PER_STEP && w->pos < w->n; i++) {
		struct subscriber *sub = subs_by_index(c->cx->srv->subs, w->idx[w->pos++]);
		if (sub)        /* removed meanwhile: skipped */
			ctl_emit(c, ctl_json_subscriber(sub));
		if (c->out && ctl_out_pending(c->out) >= CTL_OUT_HIGH)
			break;
	}
	rcu_read_unlock();
	if (w->pos == w->n)
		ctl_end_ok(c);
}

static void show_subscribers(struct ctl_call *c, const struct ctl_aval *av)
{
	struct walk *w = walk_new(c, &av[0]);
	if (w)
		ctl_call_stream(c, subscribers_step, walk_free, w);
}

static const struct ctl_aspec show_subscribers_args[] = {
	{ "subscriber", CA_SUB, false },
	{ NULL, CA_STR, false },
};

const struct ctl_cmd ctl_cmd_show_subscribers = {
	"show-subscribers", false, show_subscribers_args, show_subscribers,
};

/* ---- status ---- */

static void status(struct ctl_call *c, const struct ctl_aval *av)
{
	(void)av;
	struct ctl_ctx *cx = c->cx;
	struct pcpd_server *s = cx->srv;
	uint32_t now = cx->clock();
	json_object *o = json_object_new_object();
	if (o) {
		jadd(o, "version", json_object_new_string(PCPD_VERSION));
		jadd(o, "protocol", json_object_new_int(CTL_PROTO_VERSION));
		jadd(o, "pid", json_object_new_int64(getpid()));
		jadd(o, "uptime", ju64(left(now, cx->start_sec)));
		jadd(o, "epoch", ju64(pcp_epoch(&s->handler, now)));
		jadd(o, "backend", json_object_new_string(s->kb->ops->name));
		jadd(o, "workers", ju64(cx->workers));
		jadd(o, "subscribers", ju64(subs_count(s->subs)));
		jadd(o, "mappings", ju64(table_count(s->table)));
		jadd(o, "config", jstr_or_null(cx->conf_path));
	}
	ctl_emit(c, o);
	ctl_end_ok(c);
}

static const struct ctl_aspec no_args[] = { { NULL, CA_STR, false } };

const struct ctl_cmd ctl_cmd_status = { "status", false, no_args, status };

/* ---- stats ---- */

static json_object *pcp_stats(const struct pcp_stats *st)
{
	static const char *const ops[STAT_OP__N] = {
		[STAT_OP_ANNOUNCE] = "announce", [STAT_OP_MAP] = "map", [STAT_OP_PEER] = "peer",
		[STAT_OP_NATPMP] = "natpmp", [STAT_OP_OTHER] = "other",
	};
	json_object *o = json_object_new_object();
	jadd(o, "received", ju64(st->received));
	jadd(o, "dropped", ju64(st->dropped));
	jadd(o, "rate_limited", ju64(st->rate_limited));
	jadd(o, "unknown_client", ju64(st->unknown_client));
	json_object *op = json_object_new_object();
	for (unsigned i = 0; i < STAT_OP__N; i++)
		jadd(op, ops[i], ju64(st->by_opcode[i]));
	jadd(o, "opcodes", op);
	/* every RFC 6887 result code by name; anything else only if seen */
	json_object *rs = json_object_new_object();
	for (unsigned i = 0; i < 256; i++) {
		uint64_t n = st->by_result[i];
		if (i <= PCP_EXCESSIVE_REMOTE_PEERS) {
			jadd(rs, pcp_result_str((uint8_t)i), ju64(n));
		} else if (n) {
			char k[16];
			snprintf(k, sizeof(k), "code_%u", i);
			jadd(rs, k, ju64(n));
		}
	}
	jadd(o, "results", rs);
	return o;
}

static json_object *engine_stats(const struct engine_stats *st)
{
	json_object *o = json_object_new_object();
	jadd(o, "created", ju64(st->created));
	jadd(o, "deleted", ju64(st->deleted));
	jadd(o, "expired", ju64(st->expired));
	jadd(o, "refreshed", ju64(st->refreshed));
	jadd(o, "kernel_failures", ju64(st->kernel_failures));
	return o;
}

static json_object *kernel_stats(struct kbackend *kb)
{
	static const char *const hist[KSTAT_HIST] = {
		"1", "2-3", "4-15", "16-63", "64-255", "256-1023", "1024-4095", "4096+",
	};
	struct kbackend_stats st;
	memset(&st, 0, sizeof(st));
	if (kb->ops->stats)
		kb->ops->stats(kb, &st);
	json_object *o = json_object_new_object();
	jadd(o, "backend", json_object_new_string(kb->ops->name));
	jadd(o, "commits", ju64(st.commits));
	jadd(o, "commit_failures", ju64(st.commit_failures));
	jadd(o, "changes", ju64(st.changes));
	jadd(o, "messages", ju64(st.messages));
	jadd(o, "enobufs", ju64(st.enobufs));
	jadd(o, "latency_us_mean", ju64(st.commits ? st.latency_us_sum / st.commits : 0));
	jadd(o, "latency_us_max", ju64(st.latency_us_max));
	jadd(o, "batch_max", ju64(st.batch_max));
	json_object *h = json_object_new_object();
	for (unsigned i = 0; i < KSTAT_HIST; i++)
		jadd(h, hist[i], ju64(st.batch_hist[i]));
	jadd(o, "batch_hist", h);
	jadd(o, "ct_flushes", ju64(st.ct_flushes));
	jadd(o, "ct_created", ju64(st.ct_created));
	jadd(o, "elements", ju64(st.elements));
	return o;
}

static void stats(struct ctl_call *c, const struct ctl_aval *av)
{
	(void)av;
	struct pcpd_server *s = c->cx->srv;
	json_object *o = json_object_new_object();
	if (o) {
		jadd(o, "pcp", pcp_stats(&s->handler.stats));
		jadd(o, "engine", engine_stats(&s->eng.stats));
		jadd(o, "kernel", kernel_stats(s->kb));
		if (c->cx->ddns)
			jadd(o, "ddns", ddns_hook_stats(c->cx->ddns));
	}
	ctl_emit(c, o);
	ctl_end_ok(c);
}

const struct ctl_cmd ctl_cmd_stats = { "stats", false, no_args, stats };
