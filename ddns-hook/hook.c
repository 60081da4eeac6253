/* The hook thread: events in, debounced and rate-limited updates out.
 *
 * One "target" per published name. A target is due when what should be
 * published (computed from the subscriber's mappings) may differ from what
 * its provider last accepted; its one timer fires after the debounce, the
 * backoff, or the rate limiter's wait, and then compares and sends. At
 * most one request per name is in flight; changes meanwhile are picked up
 * when it completes. */
#include "ddns-hook/hook.h"

#include <errno.h>
#include <ev.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "common/log.h"
#include "ddns-hook/backoff.h"
#include "ddns-hook/hook_int.h"
#include "ddns-hook/queue.h"

static uint64_t now_ms(struct ddns_hook *h)
{
	return (uint64_t)(ev_now(h->loop) * 1000.0);
}

static uint32_t wall(void)
{
	return (uint32_t)time(NULL);
}

static uint32_t rnd32(void)
{
	uint32_t r = 0;
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (uint32_t)rand();
	return r;
}

/* ---- providers ---- */

struct prov *hook_prov_find(struct ddns_hook *h, const char *name)
{
	for (unsigned i = 0; i < h->nprov; i++)
		if (!strcmp(h->prov[i].conf.name, name))
			return &h->prov[i];
	return NULL;
}

/* ---- bindings ---- */

static const char *sub_key(const struct bind *b)
{
	return b->c.subscriber[0] ? b->c.subscriber : "";
}

struct bind *hook_bind_find(struct ddns_hook *h, const char *name)
{
	struct shash_node *n = shash_find(&h->bind_by_name, name);
	return n ? n->val : NULL;
}

/* Links a checked binding; its provider must exist. */
struct bind *hook_bind_link(struct ddns_hook *h, const struct ddns_binding_conf *c)
{
	struct bind *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->c = *c;
	b->prov = hook_prov_find(h, c->provider);
	if (shash_add(&h->bind_by_name, b->c.name, b) < 0 || shash_add(&h->bind_by_sub, sub_key(b), b) < 0) {
		shash_del(&h->bind_by_name, b->c.name, b);
		free(b);
		return NULL;
	}
	b->prev = NULL;
	b->next = h->binds;
	if (h->binds)
		h->binds->prev = b;
	h->binds = b;
	h->nbinds++;
	return b;
}

/* Unlinks a binding: its names become orphans that remove what was
 * published, then go away. */
void hook_bind_unlink(struct ddns_hook *h, struct bind *b)
{
	for (struct target *t = h->targets; t; t = t->next)
		if (t->b == b) {
			t->b = NULL;
			hook_target_due(h, t, 0);
		}
	shash_del(&h->bind_by_name, b->c.name, b);
	shash_del(&h->bind_by_sub, sub_key(b), b);
	if (b->prev)
		b->prev->next = b->next;
	else
		h->binds = b->next;
	if (b->next)
		b->next->prev = b->prev;
	h->nbinds--;
	free(b);
}

/* ---- targets ---- */

static void on_target_timer(struct ev_loop *loop, ev_timer *w, int revents);
static void drain(struct ddns_hook *h);

struct target *hook_target_find(struct ddns_hook *h, const char *name)
{
	struct shash_node *n = shash_find(&h->target_by_name, name);
	return n ? n->val : NULL;
}

/* Values live on the heap at their own size: a carrier has 100k names. */
static void set_value(char **dst, const char *v)
{
	char *n = strdup(v);
	if (!n)
		return;                  /* keeps the old value: compared again later */
	free(*dst);
	*dst = n;
}

static struct target *target_new(struct ddns_hook *h, const char *name, struct bind *b, struct prov *p,
				 uint32_t sub_index)
{
	struct target *t = calloc(1, sizeof(*t));
	if (!t || !(t->published = strdup("")) || !(t->sending = strdup(""))) {
		if (t)
			free(t->published);
		free(t);
		return NULL;
	}
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->b = b;
	t->prov = p;
	t->sub_index = sub_index;
	if (b)
		snprintf(t->binding, sizeof(t->binding), "%s", b->c.name);
	if (p || b)
		snprintf(t->prov_name, sizeof(t->prov_name), "%s", p ? p->conf.name : b->c.provider);
	if (shash_add(&h->target_by_name, t->name, t) < 0) {
		free(t->published);
		free(t->sending);
		free(t);
		return NULL;
	}
	ev_timer_init(&t->timer, on_target_timer, 0, 0);
	t->timer.data = h;
	t->next = h->targets;
	if (h->targets)
		h->targets->prev = t;
	h->targets = t;
	h->ntargets++;
	return t;
}

static void target_free(struct ddns_hook *h, struct target *t)
{
	ev_timer_stop(h->loop, &t->timer);
	shash_del(&h->target_by_name, t->name, t);
	if (t->prev)
		t->prev->next = t->next;
	else
		h->targets = t->next;
	if (t->next)
		t->next->prev = t->prev;
	h->ntargets--;
	free(t->published);
	free(t->sending);
	free(t);
}

/* An orphan whose provider is gone from the configuration cannot remove
 * its records: the operator's reset forgets them (they stay in DNS). */
void hook_target_forget(struct ddns_hook *h, struct target *t)
{
	struct ddns_pub pub = { .sub_index = t->sub_index };
	snprintf(pub.name, sizeof(pub.name), "%s", t->name);
	ddns_store_pub_put(h->store, &pub);
	log_warn("ddns: %s forgotten; what provider %s published for it stays", t->name, t->prov_name);
	uint32_t sub = t->sub_index;
	target_free(h, t);
	struct ddns_subview *v = h->views.v[sub % DDNS_SUB_MAX];
	if (v)
		h_subscriber_changed(h, v);
}

/* Makes the target due in delay_ms, unless it already is sooner or a
 * request is in flight (its completion re-checks). */
void hook_target_due(struct ddns_hook *h, struct target *t, uint64_t delay_ms)
{
	if (t->st == T_INFLIGHT)
		return;                  /* its completion compares again */
	uint64_t at = now_ms(h) + delay_ms;
	/* pending: expired, its callback runs later in this loop iteration */
	if ((ev_is_active(&t->timer) || ev_is_pending(&t->timer)) && t->next_ms <= at)
		return;
	ev_timer_stop(h->loop, &t->timer);
	ev_timer_set(&t->timer, (double)delay_ms / 1000.0, 0);
	ev_timer_start(h->loop, &t->timer);
	t->next_ms = at;
	if (t->st == T_IDLE)
		t->st = T_DUE;
}

/* A mapping of v changed: every name that describes v becomes due after
 * the debounce (a name already waiting keeps its earlier time, so a
 * steady stream of changes still publishes). */
void h_subscriber_changed(struct ddns_hook *h, struct ddns_subview *v)
{
	const char *keys[2] = { v->name, "" };
	for (unsigned k = 0; k < 2; k++) {
		if (k == 0 && !v->name[0])
			continue;
		for (struct shash_node *n = shash_find(&h->bind_by_sub, keys[k]); n; n = shash_next(n)) {
			struct bind *b = n->val;
			if (!ddns_binding_matches(&b->c, v))
				continue;
			char name[DDNS_NAME_MAX + 1];
			if (ddns_name_expand(&b->c, v, name, sizeof(name)) < 0) {
				if (!b->warned)
					log_warn("ddns: binding %s: subscriber %u gives no valid name", b->c.name, v->index);
				b->warned = true;
				continue;
			}
			struct target *t = hook_target_find(h, name);
			if (t && t->b != b) {
				if (t->b || (t->prov != b->prov && (t->published[0] || t->st == T_INFLIGHT))) {
					if (t->b && !b->warned)
						log_warn("ddns: name %s is claimed by bindings %s and %s; the first wins",
							 name, t->b->c.name, b->c.name);
					b->warned = t->b != NULL;
					continue;     /* an orphan first removes its old records */
				}
				t->b = b;             /* an orphan from the state file finds its binding again */
				t->prov = b->prov;
				snprintf(t->binding, sizeof(t->binding), "%s", b->c.name);
				snprintf(t->prov_name, sizeof(t->prov_name), "%s", b->c.provider);
			}
			if (!t && !(t = target_new(h, name, b, b->prov, v->index)))
				continue;
			t->sub_index = v->index;
			/* a name waiting out a backoff or stopped keeps waiting: its
			 * next attempt reads the latest state anyway */
			if (t->st != T_RETRY && t->st != T_STOPPED)
				hook_target_due(h, t, h->conf.debounce_ms);
		}
	}
}

/* An orphan has removed what it published: it goes, and a binding that
 * now claims its name (say, one moved to another provider) gets its turn. */
static void orphan_done(struct ddns_hook *h, struct target *t)
{
	uint32_t sub = t->sub_index;
	target_free(h, t);
	struct ddns_subview *v = h->views.v[sub % DDNS_SUB_MAX];
	if (v)
		h_subscriber_changed(h, v);
}

/* SRV owners the published value names ("SRV _http._tcp 1024") that the
 * binding no longer has: a removed binding, or one changed to drop a
 * service. They go into the update so its deletes cover them. */
static void add_published_services(struct target *t, struct ddns_update *u, struct ddns_srv_conf *svc)
{
	unsigned n = 0;
	for (unsigned i = 0; i < u->nservices && n < 2 * DDNS_MAX_SRV; i++)
		svc[n++] = u->services[i];
	for (const char *p = strstr(t->published, "SRV "); p && n < 2 * DDNS_MAX_SRV; p = strstr(p, "; SRV ")) {
		p += p[0] == ';' ? 6 : 4;
		size_t len = strcspn(p, " ;");
		if (!len || len >= sizeof(svc[0].service))
			continue;
		bool known = false;
		for (unsigned i = 0; i < n; i++)
			known |= strlen(svc[i].service) == len && !strncasecmp(svc[i].service, p, len);
		if (known)
			continue;
		struct ddns_srv_conf *s = &svc[n++];
		memset(s, 0, sizeof(*s));
		memcpy(s->service, p, len);
		s->proto = len > 5 && !strncasecmp(p + len - 5, "._udp", 5) ? 17 : 6;
	}
	u->services = svc;
	u->nservices = n;
	/* what was published is ours to remove even if the binding changed */
	if (!strncmp(t->published, "A ", 2))
		u->a = true;
	if (!u->txt && strstr(t->published, "; TXT "))
		u->txt = "";
}

bool hook_claims(struct ddns_hook *h, const struct bind *b, const struct target *t)
{
	struct ddns_subview *v = h->views.v[t->sub_index % DDNS_SUB_MAX];
	char name[DDNS_NAME_MAX + 1];
	if (!v)
		return true;
	return ddns_binding_matches(&b->c, v) && ddns_name_expand(&b->c, v, name, sizeof(name)) == 0 &&
	       !strcmp(name, t->name);
}

/* Fills u with what t should publish now; svc (2 * DDNS_MAX_SRV entries)
 * holds the services the update covers. */
static void target_desired(struct ddns_hook *h, struct target *t, struct ddns_update *u,
			   struct ddns_srv_conf *svc)
{
	memset(u, 0, sizeof(*u));
	u->name = t->name;
	/* not after a subscriber was renamed or left the binding's prefix (a
	 * config edit across a restart): the name is orphaned, its records go */
	if (t->b && !hook_claims(h, t->b, t)) {
		log_info("ddns: %s no longer belongs to binding %s: withdrawn", t->name, t->b->c.name);
		t->b = NULL;
	}
	if (t->b) {
		struct ddns_subview *v = h->views.v[t->sub_index % DDNS_SUB_MAX];
		ddns_desired(&t->b->c, v, wall(), u);
	}
	add_published_services(t, u, svc);
}

static bool addr_only(const struct target *t)
{
	return t->prov && (t->prov->ops->flags & DDNS_PF_ADDR_ONLY);
}

static void on_done(void *arg, const struct ddns_result *r);

static void target_send(struct ddns_hook *h, struct target *t, struct ddns_update *u, const char *value)
{
	struct prov *p = t->prov;
	struct ddns_subview *v = h->views.v[t->sub_index % DDNS_SUB_MAX];
	char subname[DDNS_ID_MAX + 16];
	if (v && v->name[0])
		snprintf(subname, sizeof(subname), "%s", v->name);
	else
		snprintf(subname, sizeof(subname), "#%u", t->sub_index);
	u->subscriber = subname;
	u->sub_index = t->sub_index;
	u->event = !value[0] ? DDNS_DELETED : t->published[0] ? DDNS_CHANGED : DDNS_CREATED;
	u->ttl = p->conf.ttl;
	u->seq = ddns_store_next_seq(h->store);
	set_value(&t->sending, value);
	t->sending_seq = u->seq;
	t->st = T_INFLIGHT;
	t->last_try = wall();
	p->st.sent++;
	h->st.sent++;
	h->inflight++;
	log_debug("ddns: %s -> %s: %s", t->name, p->conf.name, value[0] ? value : "(remove)");
	p->ops->send(p->p, u, on_done, t);
}

/* The timer: compare, then send, or wait for the rate limiter. */
static void target_run(struct ddns_hook *h, struct target *t)
{
	if (t->st == T_INFLIGHT)
		return;                  /* its completion compares again */
	t->st = T_IDLE;
	struct ddns_update u;
	struct ddns_srv_conf svc[2 * DDNS_MAX_SRV];
	char value[DDNS_VALUE_MAX];
	target_desired(h, t, &u, svc);
	ddns_value_str(&u, addr_only(t), value, sizeof(value));
	if (!strcmp(value, t->published)) {
		t->attempts = 0;
		if (!t->b && !t->published[0])
			orphan_done(h, t);
		return;
	}
	if (!t->prov) {
		t->st = T_STOPPED;
		t->last.cls = DDNS_R_PERM_NAME;
		snprintf(t->last.code, sizeof(t->last.code), "no-provider");
		snprintf(t->last.msg, sizeof(t->last.msg), "provider %s is not configured", t->prov_name);
		return;
	}
	if (t->stopped || t->prov->stopped) {
		t->st = T_STOPPED;
		return;
	}
	/* after a state loss, give clients time to re-create what they had */
	uint64_t now = now_ms(h);
	if (!value[0] && now < h->grace_until_ms) {
		hook_target_due(h, t, h->grace_until_ms - now);
		return;
	}
	uint64_t w = ddns_rate_take(&t->prov->rate, now);
	if (w) {
		t->prov->st.rate_waits++;
		hook_target_due(h, t, w);
		return;
	}
	target_send(h, t, &u, value);
}

static void on_target_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)revents;
	struct ddns_hook *h = w->data;
	struct target *t = target_of_timer(w);
	drain(h);                        /* publish the latest state, not one a poll old */
	ev_timer_stop(loop, &t->timer);  /* the drain may have armed it again */
	target_run(h, t);
}

static const char *const rclass_names[] = {
	[DDNS_R_OK] = "ok",
	[DDNS_R_TRANSIENT] = "transient",
	[DDNS_R_WAIT] = "wait",
	[DDNS_R_PERM_NAME] = "permanent",
	[DDNS_R_PERM_PROVIDER] = "permanent-provider",
};

const char *hook_rclass_str(enum ddns_rclass c)
{
	return (unsigned)c < sizeof(rclass_names) / sizeof(rclass_names[0]) ? rclass_names[c] : "?";
}

static void on_done(void *arg, const struct ddns_result *r)
{
	struct target *t = arg;
	struct ddns_hook *h = t->timer.data;
	struct prov *p = t->prov;
	h->inflight--;
	t->last = *r;
	t->last_at = wall();
	t->st = T_IDLE;
	switch (r->cls) {
	case DDNS_R_OK: {
		p->st.ok++;
		h->st.ok++;
		struct ddns_pub pub = { .sub_index = t->sub_index, .seq = t->sending_seq, .at = t->last_at };
		snprintf(pub.name, sizeof(pub.name), "%s", t->name);
		snprintf(pub.binding, sizeof(pub.binding), "%s", t->binding);
		snprintf(pub.provider, sizeof(pub.provider), "%s", p->conf.name);
		snprintf(pub.value, sizeof(pub.value), "%s", t->sending);
		ddns_store_pub_put(h->store, &pub);
		set_value(&t->published, t->sending);
		t->published_at = t->last_at;
		t->attempts = 0;
		log_info("ddns: %s published via %s (%s, seq %llu): %s", t->name, p->conf.name, r->code,
			 (unsigned long long)t->sending_seq, t->sending[0] ? t->sending : "removed");
		hook_target_due(h, t, 0);       /* changed meanwhile? compare again */
		break;
	}
	case DDNS_R_TRANSIENT:
	case DDNS_R_WAIT: {
		p->st.transient++;
		h->st.transient++;
		t->attempts++;
		uint64_t d = r->cls == DDNS_R_WAIT ? (uint64_t)r->retry_after * 1000
			     : ddns_backoff_ms(p->conf.backoff_min_ms, p->conf.backoff_max_ms, t->attempts, rnd32());
		if (d < p->conf.backoff_min_ms)
			d = p->conf.backoff_min_ms;   /* "wait 0" must not spin */
		log_warn("ddns: %s via %s failed (%s: %s), retry %u in %.1f s", t->name, p->conf.name, r->code,
			 r->msg, t->attempts, (double)d / 1000.0);
		hook_target_due(h, t, d);
		t->st = T_RETRY;
		break;
	}
	case DDNS_R_PERM_NAME:
		p->st.permanent++;
		h->st.permanent++;
		t->stopped = true;
		t->st = T_STOPPED;
		log_err("ddns: %s via %s refused (%s: %s); stopped until reset or changed", t->name,
			p->conf.name, r->code, r->msg);
		break;
	case DDNS_R_PERM_PROVIDER:
		p->st.permanent++;
		h->st.permanent++;
		p->stopped = true;
		snprintf(p->reason, sizeof(p->reason), "%s: %s (name %s)", r->code, r->msg, t->name);
		t->st = T_STOPPED;
		log_err("ddns: provider %s stopped (%s: %s, for %s); fix it, then pcpctl ddns reset %s",
			p->conf.name, r->code, r->msg, t->name, p->conf.name);
		break;
	}
}

/* ---- events ---- */

static void apply_event(void *arg, const struct ddns_event *ev)
{
	struct ddns_hook *h = arg;
	h->st.events++;
	struct ddns_subview *v = ddns_views_apply(&h->views, ev);
	if (v)
		h_subscriber_changed(h, v);
}

static void drain(struct ddns_hook *h)
{
	struct ddns_event ev[64];   /* short lock holds: producers wait on the same mutex */
	size_t n;
	while ((n = ddns_queue_pop(h->q, ev, 64)) > 0)
		for (size_t i = 0; i < n; i++)
			apply_event(h, &ev[i]);
	/* coalesced subscribers: read them whole */
	uint64_t *which = h->which;
	if (ddns_queue_take_overflow(h->q, which)) {
		for (uint32_t w = 0; w < DDNS_OVF_WORDS; w++)
			for (uint64_t bits = which[w]; bits; bits &= bits - 1) {
				uint32_t i = w * 64 + (uint32_t)__builtin_ctzll(bits);
				ddns_views_clear(&h->views, i);
				if (h->views.v[i])
					h_subscriber_changed(h, h->views.v[i]);
			}
		h->st.resyncs++;
		if (h->src.snapshot)
			h->src.snapshot(h->src.ctx, which, apply_event, h);
	}
}

static void on_async(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)loop;
	(void)revents;
	struct ddns_hook *h = w->data;
	hook_run_calls(h);
	drain(h);
}

/* No wake-up: a write() to the hook's eventfd per event, under the
 * subscriber lock, doubled the PCP path's latency (bench/README.md). The
 * hook drains the queue on its own every DDNS_POLL_MS instead; against a
 * debounce of a second that costs nothing. */
bool ddns_hook_push(struct ddns_hook *h, const struct ddns_event *ev)
{
	return ddns_queue_push(h->q, ev);
}

static void on_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	drain(w->data);
}

/* ---- life cycle ---- */

static void load_binding(void *arg, const struct ddns_binding_conf *c)
{
	struct ddns_hook *h = arg;
	if (hook_bind_find(h, c->name)) {
		log_warn("ddns: runtime binding %s is also in pcpd.conf; the file's wins", c->name);
		return;
	}
	if (!hook_prov_find(h, c->provider)) {
		log_warn("ddns: runtime binding %s names provider %s, which is not configured; kept, inactive",
			 c->name, c->provider);
	}
	hook_bind_link(h, c);
}

static void load_pub(void *arg, const struct ddns_pub *p)
{
	struct ddns_hook *h = arg;
	struct bind *b = hook_bind_find(h, p->binding);
	struct prov *pr = hook_prov_find(h, p->provider);
	struct target *t = target_new(h, p->name, b, pr, p->sub_index);
	if (!t)
		return;
	/* what this name was published with; if the binding now uses
	 * another provider, the old records are removed first (orphan) */
	if (b && b->prov != pr)
		t->b = NULL;
	snprintf(t->binding, sizeof(t->binding), "%s", p->binding);
	snprintf(t->prov_name, sizeof(t->prov_name), "%s", p->provider);
	set_value(&t->published, p->value);
	t->published_at = p->at;
}

struct ddns_hook *ddns_hook_new(const struct ddns_conf *c, const struct ddns_hook_opts *o,
				char *err, size_t errlen)
{
	struct ddns_hook *h = calloc(1, sizeof(*h));
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->conf = *c;
	h->conf.bindings = NULL;
	if (o->source)
		h->src = *o->source;
	h->loop = ev_loop_new(EVFLAG_AUTO);
	h->q = ddns_queue_new(c->queue_size);
	pthread_mutex_init(&h->call_lock, NULL);
	pthread_cond_init(&h->call_cond, NULL);
	if (!h->loop || !h->q) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	ev_async_init(&h->async, on_async);
	h->async.data = h;
	ev_async_start(h->loop, &h->async);
	ev_timer_init(&h->poll, on_poll, DDNS_POLL_MS / 1000.0, DDNS_POLL_MS / 1000.0);
	h->poll.data = h;
	ev_timer_start(h->loop, &h->poll);
	for (unsigned i = 0; i < c->nproviders; i++) {
		struct prov *p = &h->prov[h->nprov];
		p->conf = c->providers[i];
		p->ops = o->ops_override ? o->ops_override : ddns_provider_ops(p->conf.type);
		char e[256] = "";
		p->p = p->ops ? p->ops->open(&p->conf, h->loop, e, sizeof(e)) : NULL;
		if (!p->p) {
			snprintf(err, errlen, "ddns provider %s: %s", p->conf.name, e[0] ? e : "cannot open");
			goto fail;
		}
		ddns_rate_init(&p->rate, p->conf.rate_per_sec, p->conf.rate_per_hour, 0);
		h->nprov++;
	}
	for (unsigned i = 0; i < c->nbindings; i++)
		if (!hook_bind_link(h, &c->bindings[i])) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	char path[512];
	snprintf(path, sizeof(path), "%s/ddns.db", o->state_dir);
	if (!(h->store = ddns_store_open(path, err, errlen)))
		goto fail;
	ddns_store_bindings_load(h->store, load_binding, h);
	ddns_store_pub_load(h->store, load_pub, h);
	return h;
fail:
	ddns_hook_free(h);
	return NULL;
}

static void *hook_thread(void *arg)
{
	struct ddns_hook *h = arg;
	if (h->src.thread_init)
		h->src.thread_init(h->src.ctx);
	ev_run(h->loop, 0);
	if (h->src.thread_exit)
		h->src.thread_exit(h->src.ctx);
	return NULL;
}

/* First thing on the thread: read every mapping, then compare every
 * name with what was published (reconcile after a restart). */
static void start_call(struct ddns_hook *h, void *arg)
{
	bool state_lost = *(bool *)arg;
	ev_now_update(h->loop);
	for (unsigned i = 0; i < h->nprov; i++)
		ddns_rate_init(&h->prov[i].rate, h->prov[i].conf.rate_per_sec, h->prov[i].conf.rate_per_hour,
			       now_ms(h));
	if (state_lost)
		h->grace_until_ms = now_ms(h) + (uint64_t)h->conf.startup_grace * 1000;
	if (h->src.snapshot)
		h->src.snapshot(h->src.ctx, NULL, apply_event, h);
	for (struct target *t = h->targets; t; t = t->next)
		hook_target_due(h, t, 0);
}

int ddns_hook_start(struct ddns_hook *h, bool state_lost)
{
	if (pthread_create(&h->thread, NULL, hook_thread, h) != 0)
		return -1;
	h->running = true;
	hook_call(h, start_call, &state_lost);
	return 0;
}

static void stop_call(struct ddns_hook *h, void *arg)
{
	(void)arg;
	ev_break(h->loop, EVBREAK_ALL);
}

void ddns_hook_free(struct ddns_hook *h)
{
	if (!h)
		return;
	if (h->running) {
		hook_call(h, stop_call, NULL);
		pthread_join(h->thread, NULL);
		h->running = false;
	}
	for (unsigned i = 0; i < h->nprov; i++)
		h->prov[i].ops->close(h->prov[i].p);
	while (h->targets)
		target_free(h, h->targets);
	while (h->binds) {
		struct bind *b = h->binds;
		h->binds = b->next;
		free(b);
	}
	shash_free(&h->bind_by_name);
	shash_free(&h->bind_by_sub);
	shash_free(&h->target_by_name);
	ddns_views_free(&h->views);
	ddns_store_close(h->store);
	ddns_queue_free(h->q);
	if (h->loop)
		ev_loop_destroy(h->loop);
	pthread_mutex_destroy(&h->call_lock);
	pthread_cond_destroy(&h->call_cond);
	free(h);
}

/* ---- calls from other threads ---- */

void hook_run_calls(struct ddns_hook *h)
{
	pthread_mutex_lock(&h->call_lock);
	struct hook_call *c;
	while ((c = h->calls) != NULL) {
		h->calls = c->next;
		pthread_mutex_unlock(&h->call_lock);
		c->fn(h, c->arg);
		pthread_mutex_lock(&h->call_lock);
		c->done = true;
		pthread_cond_broadcast(&h->call_cond);
	}
	pthread_mutex_unlock(&h->call_lock);
}

void hook_call(struct ddns_hook *h, void (*fn)(struct ddns_hook *, void *), void *arg)
{
	if (!h->running) {              /* no thread (yet): the caller owns the state */
		fn(h, arg);
		return;
	}
	struct hook_call c = { .fn = fn, .arg = arg };
	pthread_mutex_lock(&h->call_lock);
	struct hook_call **pp = &h->calls;
	while (*pp)
		pp = &(*pp)->next;
	*pp = &c;
	ev_async_send(h->loop, &h->async);
	while (!c.done)
		pthread_cond_wait(&h->call_cond, &h->call_lock);
	pthread_mutex_unlock(&h->call_lock);
}
