#include "pcpd/ddns_glue.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <urcu.h>

#include "common/mtime.h"

struct pcpd_ddns {
	struct pcpd_server *srv;
	struct ddns_hook *hook;
	struct engine_observer obs;
	struct ddns_source src;
};

static void event_of(const struct subscriber *sub, const struct binding *b, bool up, uint32_t now,
		     struct ddns_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->up = up;
	ev->proto = b->proto;
	ev->int_port = b->int_port;
	ev->ext_port = b->ext_port;
	ev->sub_index = sub->index;
	ev->int_addr.s_addr = htonl(addr_to_v4(&b->int_addr));
	ev->ext_addr.s_addr = htonl(addr_to_v4(&b->ext_addr));
	if (b->flags & BF_STATIC)
		ev->expires = UINT32_MAX;
	else
		ev->expires = (uint32_t)time(NULL) + (b->map_expires > now ? b->map_expires - now : 0);
	snprintf(ev->sub_name, sizeof(ev->sub_name), "%s", sub->name);
	if (sub->b4.plen)
		ev->b4 = sub->b4;
}

/* On the PCP path, sub lock held: copy and queue, nothing else. */
static void on_mapping(void *ctx, const struct subscriber *sub, const struct binding *b, bool up, uint32_t now)
{
	struct pcpd_ddns *d = ctx;
	struct ddns_event ev;
	event_of(sub, b, up, now, &ev);
	ddns_hook_push(d->hook, &ev);
}

struct snap {
	struct pcpd_ddns *d;
	const uint64_t *which;
	ddns_emit_fn emit;
	void *arg;
	uint32_t now;
};

/* Under the subscriber's lock so a pending change's outcome is ordered
 * after what the snapshot reports (its event is queued later). */
static int snap_one(void *arg, struct binding *b)
{
	struct snap *s = arg;
	if (s->which && !(s->which[(b->sub % DDNS_SUB_MAX) / 64] & (1ull << (b->sub % 64))))
		return 0;
	struct subscriber *sub = subs_by_index(s->d->srv->subs, b->sub);
	if (!sub)
		return 0;
	struct ddns_event ev;
	bool have = false;
	pthread_mutex_lock(&sub->lock);
	if (b->flags & (BF_MAP | BF_STATIC)) {
		event_of(sub, b, true, s->now, &ev);
		have = true;
	}
	pthread_mutex_unlock(&sub->lock);
	if (have)
		s->emit(s->arg, &ev);
	return 0;
}

static void snapshot(void *ctx, const uint64_t *which, ddns_emit_fn emit, void *arg)
{
	struct snap s = { ctx, which, emit, arg, mtime_sec() };
	rcu_read_lock();
	table_foreach(s.d->srv->table, snap_one, &s);
	rcu_read_unlock();
}

static void thread_init(void *ctx)
{
	(void)ctx;
	rcu_register_thread();
}

static void thread_exit(void *ctx)
{
	(void)ctx;
	rcu_unregister_thread();
}

struct pcpd_ddns *pcpd_ddns_new(struct pcpd_server *srv, char *err, size_t errlen)
{
	err[0] = '\0';
	if (!srv->cfg->ddns.enabled)
		return NULL;
	struct pcpd_ddns *d = calloc(1, sizeof(*d));
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->srv = srv;
	d->src = (struct ddns_source){ d, thread_init, thread_exit, snapshot };
	d->obs = (struct engine_observer){ d, on_mapping };
	struct ddns_hook_opts o = { .state_dir = srv->cfg->state_dir, .source = &d->src };
	d->hook = ddns_hook_new(&srv->cfg->ddns, &o, err, errlen);
	if (!d->hook) {
		free(d);
		return NULL;
	}
	return d;
}

int pcpd_ddns_start(struct pcpd_ddns *d, bool state_lost)
{
	/* events before the thread runs queue up; the start snapshot covers
	 * everything restored before this point */
	d->srv->eng.obs = &d->obs;
	return ddns_hook_start(d->hook, state_lost);
}

struct ddns_hook *pcpd_ddns_hook(struct pcpd_ddns *d)
{
	return d ? d->hook : NULL;
}

void pcpd_ddns_free(struct pcpd_ddns *d)
{
	if (!d)
		return;
	d->srv->eng.obs = NULL;
	synchronize_rcu();
	ddns_hook_free(d->hook);
	free(d);
}
