/* Control calls: status, stats, runtime bindings, reset. Each runs on the
 * hook thread (hook_call) and builds its answer there; secrets never
 * reach this file (providers keep them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "ddns-hook/hook_int.h"

static const char *const tstate_names[] = {
	[T_IDLE] = "idle", [T_DUE] = "due", [T_INFLIGHT] = "in-flight", [T_RETRY] = "retry",
	[T_STOPPED] = "stopped",
};

static void put_str(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, v ? json_object_new_string(v) : NULL);
}

static void put_int(json_object *o, const char *k, int64_t v)
{
	json_object_object_add(o, k, json_object_new_int64(v));
}

static json_object *provider_json(const struct prov *p)
{
	json_object *o = json_object_new_object();
	put_str(o, "name", p->conf.name);
	put_str(o, "type", ddns_ptype_str(p->conf.type));
	put_str(o, "state", p->stopped ? "stopped" : "active");
	put_str(o, "reason", p->stopped ? p->reason : NULL);
	put_int(o, "sent", (int64_t)p->st.sent);
	put_int(o, "ok", (int64_t)p->st.ok);
	put_int(o, "transient", (int64_t)p->st.transient);
	put_int(o, "permanent", (int64_t)p->st.permanent);
	put_int(o, "rate_waits", (int64_t)p->st.rate_waits);
	return o;
}

static json_object *target_json(struct ddns_hook *h, const struct target *t, uint64_t now_ms)
{
	json_object *o = json_object_new_object();
	put_str(o, "name", t->name);
	put_str(o, "binding", t->b ? t->b->c.name : NULL);
	put_str(o, "provider", t->prov_name);
	put_int(o, "subscriber_index", t->sub_index);
	const char *st = tstate_names[t->st];
	if (t->st != T_INFLIGHT && t->prov && t->prov->stopped)
		st = "stopped";
	put_str(o, "state", st);
	put_str(o, "published", t->published);
	put_int(o, "published_at", t->published_at);
	put_str(o, "last_result", t->last.code[0] ? t->last.code : NULL);
	put_str(o, "last_class", t->last.code[0] ? hook_rclass_str(t->last.cls) : NULL);
	put_str(o, "error", t->last.cls != DDNS_R_OK && t->last.msg[0] ? t->last.msg : NULL);
	put_int(o, "last_attempt", t->last_try);
	put_int(o, "attempts", t->attempts);
	if (ev_is_active(&t->timer) || ev_is_pending(&t->timer)) {
		/* seconds with one decimal, printed as such (not %.17g) */
		char d[32];
		snprintf(d, sizeof(d), "%.1f", (double)(t->next_ms > now_ms ? t->next_ms - now_ms : 0) / 1000.0);
		json_object_object_add(o, "next_attempt_in", json_object_new_double_s(atof(d), d));
	} else
		json_object_object_add(o, "next_attempt_in", NULL);
	(void)h;
	return o;
}

static json_object *binding_json(const struct bind *b)
{
	json_object *o = json_object_new_object(), *srv = json_object_new_array();
	char pfx[64];
	put_str(o, "name", b->c.name);
	put_str(o, "provider", b->c.provider);
	put_str(o, "subscriber", b->c.subscriber[0] ? b->c.subscriber : NULL);
	put_str(o, "subscribers", b->c.b4.plen ? prefix_str(&b->c.b4, pfx, sizeof(pfx)) : NULL);
	json_object_object_add(o, "a", json_object_new_boolean(b->c.a));
	for (unsigned i = 0; i < b->c.nsrv; i++) {
		char s[96];
		snprintf(s, sizeof(s), "%s=%u", b->c.srv[i].service, b->c.srv[i].int_port);
		json_object_array_add(srv, json_object_new_string(s));
	}
	json_object_object_add(o, "srv", srv);
	put_str(o, "txt", b->c.txt[0] ? b->c.txt : NULL);
	put_str(o, "source", b->c.runtime ? "runtime" : "config");
	return o;
}

struct status_call {
	const char *filter;
	const char *part;                /* one list only, or NULL for all */
	json_object *out;
};

static void status_call(struct ddns_hook *h, void *arg)
{
	struct status_call *c = arg;
	uint64_t now = (uint64_t)(ev_now(h->loop) * 1000.0);
	json_object *o = json_object_new_object();
	bool all = !c->part;
	if (all || !strcmp(c->part, "providers")) {
		json_object *provs = json_object_new_array();
		for (unsigned i = 0; i < h->nprov; i++)
			if (!c->filter || !strcmp(c->filter, h->prov[i].conf.name))
				json_object_array_add(provs, provider_json(&h->prov[i]));
		json_object_object_add(o, "providers", provs);
	}
	if (all || !strcmp(c->part, "names")) {
		json_object *names = json_object_new_array();
		for (const struct target *t = h->targets; t; t = t->next)
			if (!c->filter || !strcmp(c->filter, t->name) || !strcmp(c->filter, t->prov_name) ||
			    !strcmp(c->filter, t->binding))
				json_object_array_add(names, target_json(h, t, now));
		json_object_object_add(o, "names", names);
	}
	if (all || !strcmp(c->part, "bindings")) {
		json_object *binds = json_object_new_array();
		for (const struct bind *b = h->binds; b; b = b->next)
			if (!c->filter || !strcmp(c->filter, b->c.name) || !strcmp(c->filter, b->c.provider))
				json_object_array_add(binds, binding_json(b));
		json_object_object_add(o, "bindings", binds);
	}
	c->out = o;
}

json_object *ddns_hook_status_part(struct ddns_hook *h, const char *filter, const char *part)
{
	struct status_call c = { .filter = filter, .part = part };
	hook_call(h, status_call, &c);
	return c.out;
}

json_object *ddns_hook_status(struct ddns_hook *h, const char *filter)
{
	return ddns_hook_status_part(h, filter, NULL);
}

static void stats_call(struct ddns_hook *h, void *arg)
{
	json_object *o = json_object_new_object();
	struct ddns_queue_stats q;
	ddns_queue_stats(h->q, &q);
	put_int(o, "events", (int64_t)h->st.events);
	put_int(o, "events_coalesced", (int64_t)q.coalesced);
	put_int(o, "resyncs", (int64_t)h->st.resyncs);
	put_int(o, "queue_depth", (int64_t)q.depth);
	put_int(o, "queue_capacity", (int64_t)q.capacity);
	put_int(o, "queue_high_water", (int64_t)q.high_water);
	put_int(o, "updates_sent", (int64_t)h->st.sent);
	put_int(o, "updates_ok", (int64_t)h->st.ok);
	put_int(o, "updates_transient", (int64_t)h->st.transient);
	put_int(o, "updates_permanent", (int64_t)h->st.permanent);
	put_int(o, "in_flight", h->inflight);
	put_int(o, "names", (int64_t)h->ntargets);
	put_int(o, "bindings", h->nbinds);
	put_int(o, "subscribers_seen", (int64_t)h->views.nsubs);
	put_int(o, "mappings_seen", (int64_t)h->views.nmappings);
	unsigned stopped = 0;
	for (unsigned i = 0; i < h->nprov; i++)
		stopped += h->prov[i].stopped;
	put_int(o, "providers_stopped", stopped);
	*(json_object **)arg = o;
}

json_object *ddns_hook_stats(struct ddns_hook *h)
{
	json_object *o = NULL;
	hook_call(h, stats_call, &o);
	return o;
}

struct bind_call {
	const struct ddns_binding_conf *c;
	const char *name;
	bool replace;
	char *err;
	size_t errlen;
	int rc;
};

/* A changed binding is unlinked (its names become orphans that remove
 * their records) and linked anew; names it still produces are then
 * adopted back by the new binding, so an unchanged name sends nothing. */
static void add_call(struct ddns_hook *h, void *arg)
{
	struct bind_call *c = arg;
	c->rc = -1;
	const char *m = ddns_binding_check(c->c);
	if (m) {
		snprintf(c->err, c->errlen, "%s", m);
		return;
	}
	if (!hook_prov_find(h, c->c->provider)) {
		snprintf(c->err, c->errlen, "no provider named %s", c->c->provider);
		return;
	}
	struct bind *old = hook_bind_find(h, c->c->name);
	if (old && !old->c.runtime) {
		snprintf(c->err, c->errlen, "binding %s is defined in pcpd.conf; change it there", c->c->name);
		return;
	}
	if (old && !c->replace) {
		snprintf(c->err, c->errlen, "binding %s exists (use ddns set to change it)", c->c->name);
		return;
	}
	struct ddns_binding_conf nc = *c->c;
	nc.runtime = true;
	if (ddns_store_binding_put(h->store, &nc) < 0) {
		snprintf(c->err, c->errlen, "cannot persist the binding (see the log)");
		return;
	}
	if (old)
		hook_bind_unlink(h, old);
	struct bind *b = hook_bind_link(h, &nc);
	if (!b) {
		snprintf(c->err, c->errlen, "out of memory");
		return;
	}
	/* same provider: the old binding's names keep their published state */
	for (struct target *t = h->targets; t; t = t->next) {
		if (t->b || t->prov != b->prov || strcmp(t->binding, b->c.name) || !hook_claims(h, b, t))
			continue;
		t->b = b;
		t->stopped = false;
		if (t->st == T_STOPPED || t->st == T_RETRY)
			t->st = T_IDLE;
		hook_target_due(h, t, 0);    /* a changed binding applies now */
	}
	/* new names of the binding (after the debounce) */
	for (uint32_t i = 0; i < DDNS_SUB_MAX; i++) {
		struct ddns_subview *v = h->views.v[i];
		if (v && ddns_binding_matches(&b->c, v))
			h_subscriber_changed(h, v);
	}
	log_info("ddns: binding %s %s (provider %s)", b->c.name, old ? "changed" : "added", b->c.provider);
	c->rc = 0;
}

int ddns_hook_binding_add(struct ddns_hook *h, const struct ddns_binding_conf *b, bool replace,
			  char *err, size_t errlen)
{
	struct bind_call c = { .c = b, .replace = replace, .err = err, .errlen = errlen };
	hook_call(h, add_call, &c);
	return c.rc;
}

static void del_call(struct ddns_hook *h, void *arg)
{
	struct bind_call *c = arg;
	c->rc = -1;
	struct bind *b = hook_bind_find(h, c->name);
	if (!b) {
		snprintf(c->err, c->errlen, "no binding named %s", c->name);
		return;
	}
	if (!b->c.runtime) {
		snprintf(c->err, c->errlen, "binding %s is defined in pcpd.conf; remove it there", c->name);
		return;
	}
	if (ddns_store_binding_del(h->store, c->name) < 0) {
		snprintf(c->err, c->errlen, "cannot persist the removal (see the log)");
		return;
	}
	log_info("ddns: binding %s removed; its records are withdrawn", c->name);
	hook_bind_unlink(h, b);
	c->rc = 0;
}

int ddns_hook_binding_del(struct ddns_hook *h, const char *name, char *err, size_t errlen)
{
	struct bind_call c = { .name = name, .err = err, .errlen = errlen };
	hook_call(h, del_call, &c);
	return c.rc;
}

static void reset_call(struct ddns_hook *h, void *arg)
{
	struct bind_call *c = arg;
	int n = 0;
	bool all = !strcmp(c->name, "*");
	for (unsigned i = 0; i < h->nprov; i++)
		if ((all || !strcmp(c->name, h->prov[i].conf.name)) && h->prov[i].stopped) {
			h->prov[i].stopped = false;
			h->prov[i].reason[0] = '\0';
			n++;
		}
	for (struct target *t = h->targets, *next; t; t = next) {
		next = t->next;
		bool hit = all || !strcmp(c->name, t->name) || !strcmp(c->name, t->prov_name);
		if (!hit)
			continue;
		if (!t->prov && !t->b && t->st != T_INFLIGHT) {
			hook_target_forget(h, t);
			n++;
			continue;
		}
		if (t->stopped || t->st == T_STOPPED || t->st == T_RETRY)
			n++;
		t->stopped = false;
		t->attempts = 0;
		if (t->st == T_STOPPED || t->st == T_RETRY)
			t->st = T_IDLE;
		ev_timer_stop(h->loop, &t->timer);
		hook_target_due(h, t, 0);
	}
	if (!n && !all && !hook_prov_find(h, c->name) && !hook_target_find(h, c->name)) {
		snprintf(c->err, c->errlen, "no provider or name %s", c->name);
		c->rc = -1;
		return;
	}
	log_info("ddns: reset %s (%d cleared)", c->name, n);
	c->rc = n;
}

int ddns_hook_reset(struct ddns_hook *h, const char *what, char *err, size_t errlen)
{
	struct bind_call c = { .name = what, .err = err, .errlen = errlen };
	hook_call(h, reset_call, &c);
	return c.rc;
}
