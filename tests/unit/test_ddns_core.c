/* The core of the DDNS hook without any network: configuration checks,
 * the event queue, backoff and rate limits on a fake clock, the state
 * views and desired records, the SQLite store, and then the whole hook
 * thread end to end with a fake provider (records every update, answers
 * what the test scripts, asynchronously on the hook's loop) and a fake
 * mapping source (an array the test controls).
 *
 * Nothing here depends on the machine being fast: the hook is observed by
 * counts and states, waits are polls with a generous upper bound, and
 * where a burst must land in one drain the hook thread is parked on a
 * gate first (an ev_async of the fake provider) so it cannot run in the
 * middle of the burst. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <ftw.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/log.h"
#include "ddns-hook/backoff.h"
#include "ddns-hook/conf.h"
#include "ddns-hook/event.h"
#include "ddns-hook/hook.h"
#include "ddns-hook/provider.h"
#include "ddns-hook/queue.h"
#include "ddns-hook/shash.h"
#include "ddns-hook/state.h"
#include "ddns-hook/store.h"

#define WAIT_MS 15000          /* upper bound for anything the hook must do */

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void nap(void)
{
	struct timespec ts = { 0, 2 * 1000 * 1000 };
	nanosleep(&ts, NULL);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* buf = n times c */
static char *rep_char(char *buf, char c, size_t n)
{
	memset(buf, c, n);
	buf[n] = 0;
	return buf;
}

/* ------------------------------------------------------------------ */
/* temp dirs                                                           */

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static char cur_dir[64];              /* removed by the teardown if a test fails */

static void tmpdir_make(char *buf, size_t len)
{
	snprintf(buf, len, "/tmp/ddns-core-XXXXXX");
	assert_non_null(mkdtemp(buf));
	snprintf(cur_dir, sizeof(cur_dir), "%s", buf);
}

static void tmpdir_rm(const char *d)
{
	nftw(d, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	if (!strcmp(d, cur_dir))
		cur_dir[0] = 0;
}

static int teardown(void **state)
{
	(void)state;
	if (cur_dir[0])
		tmpdir_rm(cur_dir);
	return 0;
}

/* ------------------------------------------------------------------ */
/* events                                                              */

#define EXT_ADDR "203.0.113.1"
#define INT_ADDR "192.168.1.2"

static struct ddns_event mk_ev(bool up, uint32_t sub, const char *name, uint8_t proto, uint16_t int_port,
			       uint16_t ext_port)
{
	struct ddns_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.up = up;
	ev.proto = proto;
	ev.int_port = int_port;
	ev.ext_port = ext_port;
	ev.sub_index = sub;
	inet_pton(AF_INET, INT_ADDR, &ev.int_addr);
	inet_pton(AF_INET, EXT_ADDR, &ev.ext_addr);
	ev.expires = UINT32_MAX;
	snprintf(ev.sub_name, sizeof(ev.sub_name), "%s", name ? name : "");
	/* B4 2001:db8:<sub>::/56 */
	ev.b4.addr.s6_addr[0] = 0x20;
	ev.b4.addr.s6_addr[1] = 0x01;
	ev.b4.addr.s6_addr[2] = 0x0d;
	ev.b4.addr.s6_addr[3] = 0xb8;
	ev.b4.addr.s6_addr[4] = (uint8_t)(sub >> 8);
	ev.b4.addr.s6_addr[5] = (uint8_t)sub;
	ev.b4.plen = 56;
	return ev;
}

/* ------------------------------------------------------------------ */
/* the fake source: an array of current mappings                       */

#define SRC_MAX 512

static struct {
	pthread_mutex_t lock;
	struct ddns_event m[SRC_MAX];
	unsigned n;
	unsigned snapshots, partial_snapshots;
} S = { .lock = PTHREAD_MUTEX_INITIALIZER };

static bool same_key(const struct ddns_event *a, const struct ddns_event *b)
{
	return a->sub_index == b->sub_index && a->proto == b->proto && a->int_port == b->int_port &&
	       a->int_addr.s_addr == b->int_addr.s_addr;
}

static void src_reset(void)
{
	pthread_mutex_lock(&S.lock);
	S.n = 0;
	S.snapshots = S.partial_snapshots = 0;
	pthread_mutex_unlock(&S.lock);
}

/* up: replace by key or add; down: remove */
static void src_apply(const struct ddns_event *ev)
{
	pthread_mutex_lock(&S.lock);
	unsigned k = 0;
	while (k < S.n && !same_key(&S.m[k], ev))
		k++;
	if (ev->up) {
		if (k == S.n) {
			assert_true(S.n < SRC_MAX);
			S.n++;
		}
		S.m[k] = *ev;
	} else if (k < S.n) {
		S.m[k] = S.m[--S.n];
	}
	pthread_mutex_unlock(&S.lock);
}

static void src_snapshot(void *ctx, const uint64_t *which, ddns_emit_fn emit, void *arg)
{
	(void)ctx;
	pthread_mutex_lock(&S.lock);
	S.snapshots++;
	if (which)
		S.partial_snapshots++;
	for (unsigned i = 0; i < S.n; i++) {
		uint32_t x = S.m[i].sub_index % DDNS_SUB_MAX;
		if (!which || (which[x / 64] >> (x % 64) & 1))
			emit(arg, &S.m[i]);
	}
	pthread_mutex_unlock(&S.lock);
}

static const struct ddns_source fake_source = { .snapshot = src_snapshot };

/* the source changes, then pcpd pushes the event (as the real one does) */
static bool change(struct ddns_hook *h, const struct ddns_event *ev)
{
	src_apply(ev);
	return ddns_hook_push(h, ev);
}

/* ------------------------------------------------------------------ */
/* the fake provider                                                   */

struct rec {
	char prov[DDNS_ID_MAX];
	char name[DDNS_NAME_MAX + 1];
	char subscriber[DDNS_ID_MAX + 16];
	uint32_t sub_index;
	enum ddns_event_kind event;
	uint64_t seq;
	bool has_addr;
	struct in_addr addr;
	unsigned nservices;
	struct {
		char service[64];
		uint8_t proto;
		uint16_t int_port, port;
		uint32_t lifetime;
	} srv[DDNS_MAX_SRV_RECS];
	unsigned nsrv;
	bool a;
	bool has_txt;
	char txt[DDNS_TXT_MAX + 1];
	uint32_t ttl;
	uint64_t at_ms;                  /* monotonic, when send() was called */
};

#define MAX_RECS 1024
#define MAX_SCRIPTS 16

struct script {
	char name[DDNS_NAME_MAX + 1];
	struct ddns_result res[8];
	unsigned n, pos;
};

struct fake_prov;

struct pending {
	struct pending *next;
	struct fake_prov *fp;
	ev_timer t;
	ddns_done_fn done;
	void *arg;
	struct ddns_result r;
	bool held;
};

struct fake_prov {
	unsigned gen;
	struct ev_loop *loop;
	char name[DDNS_ID_MAX];
	struct pending *pend;
	ev_async pause;                  /* parks the hook thread on the gate */
	ev_async kick;                   /* starts held completions */
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct rec r[MAX_RECS];
	unsigned n;
	struct script sc[MAX_SCRIPTS];
	unsigned nsc;
	bool hold;                       /* completions wait for release_held() */
	unsigned opens, closes;
	struct fake_prov *last;          /* the latest opened (any: they share the loop) */
	struct fake_prov *open[DDNS_MAX_PROVIDERS];
	int gate;                        /* 0 open, 1 requested, 2 hook parked */
	unsigned gen;                    /* a hook left over by a failed test records nothing */
} F = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void fake_reset(void)
{
	pthread_mutex_lock(&F.lock);
	F.gen++;
	F.n = 0;
	F.nsc = 0;
	F.hold = false;
	F.opens = F.closes = 0;
	F.last = NULL;
	memset(F.open, 0, sizeof(F.open));
	F.gate = 0;
	pthread_cond_broadcast(&F.cond);
	pthread_mutex_unlock(&F.lock);
}

static struct ddns_result result(enum ddns_rclass cls, const char *code, const char *msg)
{
	struct ddns_result r;
	memset(&r, 0, sizeof(r));
	r.cls = cls;
	snprintf(r.code, sizeof(r.code), "%s", code);
	snprintf(r.msg, sizeof(r.msg), "%s", msg);
	return r;
}

/* the next answers for name, in order; afterwards NOERROR */
static void script(const char *name, struct ddns_result r)
{
	pthread_mutex_lock(&F.lock);
	struct script *s = NULL;
	for (unsigned i = 0; i < F.nsc; i++)
		if (!strcmp(F.sc[i].name, name))
			s = &F.sc[i];
	if (!s) {
		assert_true(F.nsc < MAX_SCRIPTS);
		s = &F.sc[F.nsc++];
		memset(s, 0, sizeof(*s));
		snprintf(s->name, sizeof(s->name), "%s", name);
	}
	assert_true(s->n < 8);
	s->res[s->n++] = r;
	pthread_mutex_unlock(&F.lock);
}

static void on_complete(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct pending *pd = (struct pending *)((char *)w - offsetof(struct pending, t));
	struct fake_prov *fp = pd->fp;
	for (struct pending **pp = &fp->pend; *pp; pp = &(*pp)->next)
		if (*pp == pd) {
			*pp = pd->next;
			break;
		}
	pd->done(pd->arg, &pd->r);
	free(pd);
}

static void on_pause(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	pthread_mutex_lock(&F.lock);
	if (F.gate == 1) {
		F.gate = 2;
		pthread_cond_broadcast(&F.cond);
		while (F.gate == 2)
			pthread_cond_wait(&F.cond, &F.lock);
	}
	pthread_mutex_unlock(&F.lock);
}

static void on_kick(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)revents;
	struct fake_prov *fp = w->data;
	for (struct pending *pd = fp->pend; pd; pd = pd->next)
		if (pd->held) {
			pd->held = false;
			ev_timer_start(loop, &pd->t);
		}
}

static void *fake_open(const struct ddns_provider_conf *c, struct ev_loop *loop, char *err, size_t errlen)
{
	if (!strcmp(c->name, "broken")) {
		snprintf(err, errlen, "cannot read key");
		return NULL;
	}
	struct fake_prov *fp = calloc(1, sizeof(*fp));
	assert_non_null(fp);
	fp->loop = loop;
	snprintf(fp->name, sizeof(fp->name), "%s", c->name);
	ev_async_init(&fp->pause, on_pause);
	/* lowest priority: parked means every other callback of the loop
	 * iteration (timers, the hook's own async) has run */
	ev_set_priority(&fp->pause, EV_MINPRI);
	ev_async_start(loop, &fp->pause);
	ev_async_init(&fp->kick, on_kick);
	fp->kick.data = fp;
	ev_async_start(loop, &fp->kick);
	pthread_mutex_lock(&F.lock);
	fp->gen = F.gen;
	F.opens++;
	F.last = fp;
	for (unsigned i = 0; i < DDNS_MAX_PROVIDERS; i++)
		if (!F.open[i]) {
			F.open[i] = fp;
			break;
		}
	pthread_mutex_unlock(&F.lock);
	return fp;
}

static void fake_send(void *p, const struct ddns_update *u, ddns_done_fn done, void *arg)
{
	struct fake_prov *fp = p;
	struct pending *pd = calloc(1, sizeof(*pd));
	pthread_mutex_lock(&F.lock);
	if (!pd || F.n >= MAX_RECS) {           /* the hook thread: cmocka cannot fail here */
		fprintf(stderr, "fake provider: out of records\n");
		abort();
	}
	bool cur = fp->gen == F.gen;
	struct rec scratch, *r = cur ? &F.r[F.n++] : &scratch;
	memset(r, 0, sizeof(*r));
	snprintf(r->prov, sizeof(r->prov), "%s", fp->name);
	snprintf(r->name, sizeof(r->name), "%s", u->name);
	snprintf(r->subscriber, sizeof(r->subscriber), "%s", u->subscriber ? u->subscriber : "(null)");
	r->sub_index = u->sub_index;
	r->event = u->event;
	r->seq = u->seq;
	r->has_addr = u->has_addr;
	r->addr = u->addr;
	r->nservices = u->nservices;
	r->nsrv = u->nsrv;
	for (unsigned i = 0; i < u->nsrv && i < DDNS_MAX_SRV_RECS; i++) {
		snprintf(r->srv[i].service, sizeof(r->srv[i].service), "%s", u->srv[i].conf->service);
		r->srv[i].proto = u->srv[i].conf->proto;
		r->srv[i].int_port = u->srv[i].conf->int_port;
		r->srv[i].port = u->srv[i].port;
		r->srv[i].lifetime = u->srv[i].lifetime;
	}
	r->a = u->a;
	r->has_txt = u->txt != NULL;
	if (u->txt)
		snprintf(r->txt, sizeof(r->txt), "%s", u->txt);
	r->ttl = u->ttl;
	r->at_ms = mono_ms();
	pd->r = result(DDNS_R_OK, "NOERROR", "");
	for (unsigned i = 0; cur && i < F.nsc; i++)
		if (!strcmp(F.sc[i].name, u->name) && F.sc[i].pos < F.sc[i].n)
			pd->r = F.sc[i].res[F.sc[i].pos++];
	pd->held = F.hold && cur;
	pthread_mutex_unlock(&F.lock);
	pd->fp = fp;
	pd->done = done;
	pd->arg = arg;
	pd->next = fp->pend;
	fp->pend = pd;
	/* done() must come from the loop, never from inside send() */
	ev_timer_init(&pd->t, on_complete, 0, 0);
	if (!pd->held)
		ev_timer_start(fp->loop, &pd->t);
}

static void fake_close(void *p)
{
	struct fake_prov *fp = p;
	while (fp->pend) {
		struct pending *pd = fp->pend;
		fp->pend = pd->next;
		ev_timer_stop(fp->loop, &pd->t);
		free(pd);
	}
	ev_async_stop(fp->loop, &fp->pause);
	ev_async_stop(fp->loop, &fp->kick);
	pthread_mutex_lock(&F.lock);
	F.closes += fp->gen == F.gen;
	if (F.last == fp)
		F.last = NULL;
	for (unsigned i = 0; i < DDNS_MAX_PROVIDERS; i++)
		if (F.open[i] == fp)
			F.open[i] = NULL;
	pthread_mutex_unlock(&F.lock);
	free(fp);
}

static const struct ddns_provider_ops fake_ops = {
	.type = DDNS_EXEC, .open = fake_open, .send = fake_send, .close = fake_close,
};

static const struct ddns_provider_ops fake_ops_addr_only = {
	.type = DDNS_DYNDNS2, .flags = DDNS_PF_ADDR_ONLY, .open = fake_open, .send = fake_send, .close = fake_close,
};

/* Parks the hook thread (it must be running and idle enough to take an
 * async): nothing the hook does can interleave until resume_hook(). */
static void wait_parked(void)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += WAIT_MS / 1000;
	pthread_mutex_lock(&F.lock);
	int rc = 0;
	while (F.gate != 2 && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&F.cond, &F.lock, &until);
	bool parked = F.gate == 2;
	pthread_mutex_unlock(&F.lock);
	if (!parked)
		fail_msg("the hook thread did not park within %u ms", WAIT_MS);
}

static void pause_hook(void)
{
	pthread_mutex_lock(&F.lock);
	struct fake_prov *fp = F.last;
	assert_non_null(fp);
	F.gate = 1;
	pthread_mutex_unlock(&F.lock);
	ev_async_send(fp->loop, &fp->pause);
	wait_parked();
}

/* The hook is parked: let it run exactly one more loop iteration (what
 * was pushed meanwhile, expired timers) and park again at its end. */
static void step_hook(void)
{
	pthread_mutex_lock(&F.lock);
	struct fake_prov *fp = F.last;
	assert_int_equal(F.gate, 2);
	F.gate = 1;                      /* releases the parked callback ... */
	pthread_cond_broadcast(&F.cond);
	pthread_mutex_unlock(&F.lock);
	ev_async_send(fp->loop, &fp->pause);   /* ... and parks the next iteration */
	wait_parked();
}

static void resume_hook(void)
{
	pthread_mutex_lock(&F.lock);
	F.gate = 0;
	pthread_cond_broadcast(&F.cond);
	pthread_mutex_unlock(&F.lock);
}

static void release_held(void)
{
	pthread_mutex_lock(&F.lock);
	F.hold = false;
	for (unsigned i = 0; i < DDNS_MAX_PROVIDERS; i++)
		if (F.open[i])
			ev_async_send(F.open[i]->loop, &F.open[i]->kick);
	pthread_mutex_unlock(&F.lock);
}

static unsigned nrecs(const char *name)
{
	unsigned n = 0;
	pthread_mutex_lock(&F.lock);
	for (unsigned i = 0; i < F.n; i++)
		if (!name || !strcmp(F.r[i].name, name))
			n++;
	pthread_mutex_unlock(&F.lock);
	return n;
}

/* the k-th (0-based) update sent for name; k < 0 counts from the end */
static struct rec rec_of(const char *name, int k)
{
	struct rec out;
	memset(&out, 0, sizeof(out));
	pthread_mutex_lock(&F.lock);
	unsigned n = 0;
	for (unsigned i = 0; i < F.n; i++)
		if (!strcmp(F.r[i].name, name))
			n++;
	int want = k < 0 ? (int)n + k : k;
	bool found = false;
	for (unsigned i = 0, j = 0; i < F.n; i++)
		if (!strcmp(F.r[i].name, name) && (int)j++ == want) {
			out = F.r[i];
			found = true;
		}
	pthread_mutex_unlock(&F.lock);
	assert_true(found);
	return out;
}

/* ------------------------------------------------------------------ */
/* hook status, read back from its JSON                                */

static int64_t jint(json_object *o, const char *k)
{
	json_object *v;
	assert_true(json_object_object_get_ex(o, k, &v));
	return json_object_get_int64(v);
}

static const char *jstr(json_object *o, const char *k)   /* NULL for null */
{
	json_object *v;
	assert_true(json_object_object_get_ex(o, k, &v));
	return v ? json_object_get_string(v) : NULL;
}

static int64_t stat_of(struct ddns_hook *h, const char *k)
{
	json_object *s = ddns_hook_stats(h);
	assert_non_null(s);
	int64_t v = jint(s, k);
	json_object_put(s);
	return v;
}

struct nst {
	bool found;
	char state[16], published[DDNS_VALUE_MAX], last_class[32], last_result[32], error[192];
	char binding[DDNS_NAME_MAX + 1], provider[DDNS_ID_MAX];
	int64_t attempts, sub_index;
	bool timer;
};

static void cp(char *dst, size_t len, const char *v)
{
	snprintf(dst, len, "%s", v ? v : "");
}

static struct nst name_st(struct ddns_hook *h, const char *name)
{
	struct nst r;
	memset(&r, 0, sizeof(r));
	json_object *s = ddns_hook_status(h, name), *names;
	assert_non_null(s);
	assert_true(json_object_object_get_ex(s, "names", &names));
	for (size_t i = 0; i < json_object_array_length(names); i++) {
		json_object *o = json_object_array_get_idx(names, i), *na;
		if (strcmp(jstr(o, "name"), name))
			continue;
		r.found = true;
		cp(r.state, sizeof(r.state), jstr(o, "state"));
		cp(r.published, sizeof(r.published), jstr(o, "published"));
		cp(r.last_class, sizeof(r.last_class), jstr(o, "last_class"));
		cp(r.last_result, sizeof(r.last_result), jstr(o, "last_result"));
		cp(r.error, sizeof(r.error), jstr(o, "error"));
		cp(r.binding, sizeof(r.binding), jstr(o, "binding"));
		cp(r.provider, sizeof(r.provider), jstr(o, "provider"));
		r.attempts = jint(o, "attempts");
		r.sub_index = jint(o, "subscriber_index");
		assert_true(json_object_object_get_ex(o, "next_attempt_in", &na));
		r.timer = na != NULL;
	}
	json_object_put(s);
	return r;
}

struct pst {
	bool found;
	char state[16], reason[512];
	int64_t sent, ok, transient, permanent, rate_waits;
};

static struct pst prov_st(struct ddns_hook *h, const char *prov)
{
	struct pst r;
	memset(&r, 0, sizeof(r));
	json_object *s = ddns_hook_status(h, prov), *ps;
	assert_non_null(s);
	assert_true(json_object_object_get_ex(s, "providers", &ps));
	for (size_t i = 0; i < json_object_array_length(ps); i++) {
		json_object *o = json_object_array_get_idx(ps, i);
		if (strcmp(jstr(o, "name"), prov))
			continue;
		r.found = true;
		cp(r.state, sizeof(r.state), jstr(o, "state"));
		cp(r.reason, sizeof(r.reason), jstr(o, "reason"));
		r.sent = jint(o, "sent");
		r.ok = jint(o, "ok");
		r.transient = jint(o, "transient");
		r.permanent = jint(o, "permanent");
		r.rate_waits = jint(o, "rate_waits");
	}
	json_object_put(s);
	return r;
}

/* the binding's JSON (a new reference), or NULL */
static json_object *binding_js(struct ddns_hook *h, const char *name)
{
	json_object *s = ddns_hook_status(h, NULL), *bs, *out = NULL;
	assert_true(json_object_object_get_ex(s, "bindings", &bs));
	for (size_t i = 0; i < json_object_array_length(bs); i++) {
		json_object *o = json_object_array_get_idx(bs, i);
		if (!strcmp(jstr(o, "name"), name))
			out = json_object_get(o);
	}
	json_object_put(s);
	return out;
}

/* Nothing queued, nothing in flight, no name waiting on a timer. The
 * stats call runs (on the hook thread) before the drain of the same
 * wake-up, the status call after it, so this pair cannot miss an event
 * pushed before it. */
static bool is_settled(struct ddns_hook *h)
{
	json_object *s = ddns_hook_stats(h);
	bool ok = jint(s, "queue_depth") == 0 && jint(s, "in_flight") == 0;
	json_object_put(s);
	if (!ok)
		return false;
	json_object *st = ddns_hook_status(h, NULL), *names;
	assert_true(json_object_object_get_ex(st, "names", &names));
	for (size_t i = 0; ok && i < json_object_array_length(names); i++) {
		json_object *o = json_object_array_get_idx(names, i), *na;
		const char *state = jstr(o, "state");
		assert_true(json_object_object_get_ex(o, "next_attempt_in", &na));
		if (na || (strcmp(state, "idle") && strcmp(state, "stopped")))
			ok = false;
	}
	json_object_put(st);
	return ok;
}

static void settle(struct ddns_hook *h)
{
	uint64_t t0 = mono_ms();
	while (!is_settled(h)) {
		if (mono_ms() - t0 > WAIT_MS)
			fail_msg("the hook did not settle within %u ms", WAIT_MS);
		nap();
	}
}

/* ------------------------------------------------------------------ */
/* configuration helpers                                               */

static void bconf(struct ddns_binding_conf *b, const char *name, const char *prov, const char *sub,
		  const char *b4)
{
	memset(b, 0, sizeof(*b));
	snprintf(b->name, sizeof(b->name), "%s", name);
	snprintf(b->provider, sizeof(b->provider), "%s", prov);
	if (sub)
		snprintf(b->subscriber, sizeof(b->subscriber), "%s", sub);
	if (b4)
		assert_true(prefix_parse(b4, &b->b4));
	b->a = true;
}

static void bsrv(struct ddns_binding_conf *b, const char *srv)
{
	assert_true(b->nsrv < DDNS_MAX_SRV);
	assert_null(ddns_srv_parse(srv, &b->srv[b->nsrv]));
	b->nsrv++;
}

struct env {
	char dir[64];
	struct ddns_conf c;
	struct ddns_binding_conf b[16];
	const struct ddns_provider_ops *ops;
};

static void env_init(struct env *e)
{
	memset(e, 0, sizeof(*e));
	tmpdir_make(e->dir, sizeof(e->dir));
	ddns_conf_defaults(&e->c);
	e->c.enabled = true;
	e->c.debounce_ms = 50;
	e->c.queue_size = 1024;
	const char *names[] = { "p1", "p2" };
	for (unsigned i = 0; i < 2; i++) {
		struct ddns_provider_conf *p = &e->c.providers[i];
		ddns_provider_defaults(p);
		snprintf(p->name, sizeof(p->name), "%s", names[i]);
		p->type = DDNS_EXEC;
		p->backoff_min_ms = 20;
		p->backoff_max_ms = 80;
	}
	e->c.nproviders = 2;
	e->c.bindings = e->b;
	e->ops = &fake_ops;
	src_reset();
	fake_reset();
}

static struct ddns_binding_conf *env_bind(struct env *e, const char *name, const char *prov, const char *sub,
					  const char *b4)
{
	assert_true(e->c.nbindings < 16);
	struct ddns_binding_conf *b = &e->b[e->c.nbindings++];
	bconf(b, name, prov, sub, b4);
	return b;
}

static struct ddns_hook *env_hook(struct env *e)
{
	struct ddns_hook_opts o = { .state_dir = e->dir, .source = &fake_source, .ops_override = e->ops };
	char err[256] = "";
	struct ddns_hook *h = ddns_hook_new(&e->c, &o, err, sizeof(err));
	if (!h)
		fail_msg("ddns_hook_new: %s", err);
	return h;
}

static struct ddns_hook *env_start(struct env *e, bool state_lost)
{
	struct ddns_hook *h = env_hook(e);
	assert_int_equal(ddns_hook_start(h, state_lost), 0);
	return h;
}

static void env_done(struct env *e)
{
	tmpdir_rm(e->dir);
}

/* ================================================================== */
/* 1. conf                                                             */

static void test_ptype(void **state)
{
	(void)state;
	static const char *const n[] = { "rfc2136", "dyndns2", "webhook", "exec" };
	static const enum ddns_ptype t[] = { DDNS_RFC2136, DDNS_DYNDNS2, DDNS_WEBHOOK, DDNS_EXEC };
	for (unsigned i = 0; i < 4; i++) {
		enum ddns_ptype x = (enum ddns_ptype)99;
		assert_true(ddns_ptype_parse(n[i], &x));
		assert_int_equal(x, t[i]);
		assert_string_equal(ddns_ptype_str(t[i]), n[i]);
	}
	enum ddns_ptype x = DDNS_EXEC;
	assert_false(ddns_ptype_parse("RFC2136", &x));
	assert_false(ddns_ptype_parse("", &x));
	assert_false(ddns_ptype_parse("rfc2136 ", &x));
	assert_false(ddns_ptype_parse("dyndns", &x));
	assert_int_equal(x, DDNS_EXEC);                /* untouched on failure */
	assert_string_equal(ddns_ptype_str((enum ddns_ptype)42), "?");
}

static void test_defaults(void **state)
{
	(void)state;
	struct ddns_conf c;
	memset(&c, 0xa5, sizeof(c));
	ddns_conf_defaults(&c);
	assert_false(c.enabled);
	assert_int_equal(c.debounce_ms, 1000);
	assert_int_equal(c.queue_size, 65536);
	assert_int_equal(c.startup_grace, 30);
	assert_int_equal(c.nproviders, 0);
	assert_null(c.bindings);
	struct ddns_provider_conf p;
	memset(&p, 0xa5, sizeof(p));
	ddns_provider_defaults(&p);
	assert_int_equal(p.port, 53);
	assert_string_equal(p.key_algorithm, "hmac-sha256");
	assert_int_equal(p.ttl, 60);
	assert_int_equal(p.timeout_ms, 5000);
	assert_int_equal(p.backoff_min_ms, 1000);
	assert_int_equal(p.backoff_max_ms, 300000);
	assert_int_equal(p.rate_per_sec, 0);
	assert_int_equal(p.rate_per_hour, 0);
	assert_false(p.tcp);
	assert_string_equal(p.name, "");
}

static void test_srv_parse_good(void **state)
{
	(void)state;
	struct ddns_srv_conf s;
	assert_null(ddns_srv_parse("_http._tcp=80", &s));
	assert_string_equal(s.service, "_http._tcp");
	assert_int_equal(s.proto, 6);
	assert_int_equal(s.int_port, 80);
	assert_null(ddns_srv_parse("_sip._udp=5060", &s));
	assert_string_equal(s.service, "_sip._udp");
	assert_int_equal(s.proto, 17);
	assert_int_equal(s.int_port, 5060);
	assert_null(ddns_srv_parse("_Minecraft-2._TCP=65535", &s));   /* protocol label case-insensitive */
	assert_int_equal(s.proto, 6);
	assert_int_equal(s.int_port, 65535);
	assert_null(ddns_srv_parse("_x._udp=1", &s));
	assert_int_equal(s.int_port, 1);
	/* the longest service that fits: 63 characters */
	char buf[128], as[80];
	snprintf(buf, sizeof(buf), "_%s._tcp=22", rep_char(as, 'a', 57));
	assert_int_equal(strchr(buf, '=') - buf, 63);
	assert_null(ddns_srv_parse(buf, &s));
	assert_int_equal(strlen(s.service), 63);
}

static void test_srv_parse_bad(void **state)
{
	(void)state;
	static const char form[] = "srv is \"_service._tcp=<internal port>\" or \"_service._udp=<port>\"";
	static const struct {
		const char *in, *msg;
	} bad[] = {
		{ "", form },
		{ "_http._tcp", form },                       /* no '=' */
		{ "http._tcp=80", form },                     /* no leading '_' */
		{ "=80", form },
		{ "_http=80", form },                         /* no protocol label */
		{ "_._tcp=80", form },                        /* empty service name */
		{ "_ht_tp._tcp=80", "srv service name characters are letters, digits and '-'" },
		{ "_ht.tp._tcp=80", "srv protocol label must be _tcp or _udp" },
		{ "_http._sctp=80", "srv protocol label must be _tcp or _udp" },
		{ "_http.tcp=80", "srv protocol label must be _tcp or _udp" },
		{ "_http._tcp.=80", "srv protocol label must be _tcp or _udp" },
		{ "_http._tcp=", "srv internal port must be 1..65535" },
		{ "_http._tcp=0", "srv internal port must be 1..65535" },
		{ "_http._tcp=65536", "srv internal port must be 1..65535" },
		{ "_http._tcp=-1", "srv internal port must be 1..65535" },
		{ "_http._tcp=80x", "srv internal port must be 1..65535" },
		{ "_http._tcp=99999999999999999999999", "srv internal port must be 1..65535" },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ddns_srv_conf s;
		const char *m = ddns_srv_parse(bad[i].in, &s);
		if (!m || strcmp(m, bad[i].msg))
			fail_msg("srv \"%s\": got \"%s\", want \"%s\"", bad[i].in, m ? m : "(ok)", bad[i].msg);
	}
	char buf[128], as[80];
	snprintf(buf, sizeof(buf), "_%s._tcp=22", rep_char(as, 'a', 58));      /* 64 */
	struct ddns_srv_conf s;
	assert_string_equal(ddns_srv_parse(buf, &s), "srv service label too long");
}

static void test_binding_check(void **state)
{
	(void)state;
	struct ddns_binding_conf b;
	bconf(&b, "alice.example.com", "p1", "alice", NULL);
	assert_null(ddns_binding_check(&b));
	bsrv(&b, "_http._tcp=80");
	bsrv(&b, "_http._tcp=8080");                    /* same service, another port: fine */
	bsrv(&b, "_ssh._tcp=80");                       /* another service, same port: fine */
	snprintf(b.txt, sizeof(b.txt), "v=1 hello");
	assert_null(ddns_binding_check(&b));
	bconf(&b, "{index}.dyn.example.com", "p1", NULL, "2001:db8::/32");
	assert_null(ddns_binding_check(&b));
	bconf(&b, "h-{name}-{index}.example.com", "p1", NULL, "2001:db8::/32");
	assert_null(ddns_binding_check(&b));
	bconf(&b, "{name}", "p1", NULL, "2001:db8::/32");
	assert_null(ddns_binding_check(&b));
	bconf(&b, "x", "p1", "alice", NULL);
	b.a = false;
	bsrv(&b, "_http._tcp=80");                      /* SRV only */
	assert_null(ddns_binding_check(&b));

	char n63[64], n64[65], n61[62], n62[63], long_name[300];
	rep_char(n63, 'a', 63);
	rep_char(n64, 'a', 64);
	rep_char(n61, 'b', 61);
	rep_char(n62, 'b', 62);
	bconf(&b, n63, "p1", "alice", NULL);
	assert_null(ddns_binding_check(&b));
	/* 253 characters exactly is the longest name */
	snprintf(long_name, sizeof(long_name), "%s.%s.%s.%s", n63, n63, n63, n61);
	assert_int_equal(strlen(long_name), 253);
	bconf(&b, long_name, "p1", "alice", NULL);
	assert_null(ddns_binding_check(&b));

	static const char chars[] = "name characters are letters, digits, '-' and '.' (and {index}, {name})";
	static const struct {
		const char *name;
		const char *msg;
	} names[] = {
		{ "", "empty name" },
		{ "a.example.com.", "name must not end with a dot" },
		{ ".example.com", "empty label in name" },
		{ "a..example.com", "empty label in name" },
		{ "a_b.example.com", chars },
		{ "a b.example.com", chars },
		{ "{idx}.example.com", chars },
		{ "{Index}.example.com", chars },
		{ "*.example.com", chars },
	};
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		bconf(&b, "x", "p1", "alice", NULL);
		snprintf(b.name, sizeof(b.name), "%s", names[i].name);
		const char *m = ddns_binding_check(&b);
		if (!m || strcmp(m, names[i].msg))
			fail_msg("name \"%s\": got \"%s\", want \"%s\"", names[i].name, m ? m : "(ok)", names[i].msg);
	}
	snprintf(long_name, sizeof(long_name), "%s.example.com", n64);
	bconf(&b, long_name, "p1", "alice", NULL);
	assert_string_equal(ddns_binding_check(&b), "label longer than 63 characters");
	snprintf(long_name, sizeof(long_name), "%s.%s.%s.%s", n63, n63, n63, n62);
	assert_int_equal(strlen(long_name), 254);
	bconf(&b, long_name, "p1", "alice", NULL);
	assert_string_equal(ddns_binding_check(&b), "name longer than 253 characters");

	bconf(&b, "a.example.com", "", "alice", NULL);
	assert_string_equal(ddns_binding_check(&b), "binding needs a provider");
	bconf(&b, "a.example.com", "p1", NULL, NULL);
	assert_string_equal(ddns_binding_check(&b), "binding needs a subscriber or a subscriber prefix");
	bconf(&b, "{index}.example.com", "p1", "alice", "2001:db8::/32");
	assert_string_equal(ddns_binding_check(&b), "binding has both a subscriber and a subscriber prefix");
	bconf(&b, "all.example.com", "p1", NULL, "2001:db8::/32");
	assert_string_equal(ddns_binding_check(&b),
			    "a binding for a subscriber prefix needs {index} or {name} in its name");
	bconf(&b, "a.example.com", "p1", "alice", NULL);
	b.a = false;
	assert_string_equal(ddns_binding_check(&b), "binding publishes nothing (a false and no srv)");
	bconf(&b, "a.example.com", "p1", "alice", NULL);
	bsrv(&b, "_http._tcp=80");
	bsrv(&b, "_ssh._tcp=22");
	bsrv(&b, "_HTTP._tcp=80");                      /* service labels compare case-insensitively */
	assert_string_equal(ddns_binding_check(&b), "the same srv is listed twice");
	bconf(&b, "a.example.com", "p1", "alice", NULL);
	snprintf(b.txt, sizeof(b.txt), "line\nbreak");
	assert_string_equal(ddns_binding_check(&b), "txt must be printable");
	snprintf(b.txt, sizeof(b.txt), "del\x7f");
	assert_string_equal(ddns_binding_check(&b), "txt must be printable");
}

/* ================================================================== */
/* 2. queue                                                            */

static struct ddns_event qev(uint32_t sub, uint16_t port)
{
	return mk_ev(true, sub, "", 6, port, port);
}

static void test_queue_fifo(void **state)
{
	(void)state;
	struct ddns_queue *q = ddns_queue_new(4);
	assert_non_null(q);
	struct ddns_event out[8];
	assert_int_equal(ddns_queue_pop(q, out, 8), 0);
	/* wrap around the ring several times, order kept */
	uint16_t next_in = 1, next_out = 1;
	for (int round = 0; round < 10; round++) {
		for (int i = 0; i < 3; i++) {
			struct ddns_event e = qev(7, next_in++);
			assert_true(ddns_queue_push(q, &e));
		}
		size_t n = ddns_queue_pop(q, out, 2);            /* partial pops */
		assert_int_equal(n, 2);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(out[i].int_port, next_out++);
		n = ddns_queue_pop(q, out, 8);
		assert_int_equal(n, 1);
		assert_int_equal(out[0].int_port, next_out++);
	}
	struct ddns_queue_stats st;
	ddns_queue_stats(q, &st);
	assert_int_equal(st.pushed, 30);
	assert_int_equal(st.coalesced, 0);
	assert_int_equal(st.depth, 0);
	assert_int_equal(st.capacity, 4);
	assert_int_equal(st.high_water, 3);
	/* the whole event is carried */
	struct ddns_event e = mk_ev(false, 1234, "bob", 17, 53, 5353);
	e.expires = 77;
	assert_true(ddns_queue_push(q, &e));
	assert_int_equal(ddns_queue_pop(q, out, 8), 1);
	assert_memory_equal(&out[0], &e, sizeof(e));
	ddns_queue_free(q);
	ddns_queue_free(NULL);
}

static void test_queue_overflow(void **state)
{
	(void)state;
	struct ddns_queue *q = ddns_queue_new(4);
	uint64_t *which = calloc(DDNS_OVF_WORDS, sizeof(uint64_t));
	assert_non_null(which);
	assert_int_equal(ddns_queue_take_overflow(q, which), 0);
	for (uint16_t i = 0; i < 4; i++) {
		struct ddns_event e = qev(1, i);
		assert_true(ddns_queue_push(q, &e));
	}
	/* full: these are coalesced into their subscribers' bits */
	static const uint32_t subs[] = { 3, 3, 70, 63, 64, 65535, 3, DDNS_SUB_MAX + 5 };
	for (unsigned i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		struct ddns_event e = qev(subs[i], 9);
		assert_false(ddns_queue_push(q, &e));
	}
	struct ddns_queue_stats st;
	ddns_queue_stats(q, &st);
	assert_int_equal(st.pushed, 12);
	assert_int_equal(st.coalesced, 8);
	assert_int_equal(st.depth, 4);
	assert_int_equal(st.high_water, 4);
	memset(which, 0xff, DDNS_OVF_WORDS * sizeof(uint64_t));
	assert_int_equal(ddns_queue_take_overflow(q, which), 6);   /* 3, 5, 63, 64, 70, 65535 */
	for (uint32_t i = 0; i < DDNS_SUB_MAX; i++) {
		bool set = which[i / 64] >> (i % 64) & 1;
		bool want = i == 3 || i == 5 || i == 63 || i == 64 || i == 70 || i == 65535;
		if (set != want)
			fail_msg("subscriber %u: bit %d", i, set);
	}
	/* taken once: the set is clear now */
	assert_int_equal(ddns_queue_take_overflow(q, which), 0);
	for (unsigned w = 0; w < DDNS_OVF_WORDS; w++)
		assert_int_equal(which[w], 0);
	/* queued events were not disturbed */
	struct ddns_event out[8];
	assert_int_equal(ddns_queue_pop(q, out, 8), 4);
	for (uint16_t i = 0; i < 4; i++)
		assert_int_equal(out[i].int_port, i);
	/* room again: no more coalescing */
	struct ddns_event e = qev(3, 1);
	assert_true(ddns_queue_push(q, &e));
	assert_int_equal(ddns_queue_take_overflow(q, which), 0);
	ddns_queue_free(q);

	/* a zero capacity still holds one */
	q = ddns_queue_new(0);
	assert_true(ddns_queue_push(q, &e));
	assert_false(ddns_queue_push(q, &e));
	ddns_queue_stats(q, &st);
	assert_int_equal(st.capacity, 1);
	ddns_queue_free(q);
	free(which);
}

struct qthr {
	struct ddns_queue *q;
	uint32_t sub;
	unsigned ok, coalesced;
	atomic_bool done;
};

static void *pusher(void *arg)
{
	struct qthr *t = arg;
	for (uint16_t i = 0; i < 5000; i++) {
		struct ddns_event e = qev(t->sub, i);
		if (ddns_queue_push(t->q, &e))
			t->ok++;
		else
			t->coalesced++;
	}
	atomic_store(&t->done, true);
	return NULL;
}

/* several producers, one consumer: nothing lost, per-producer order kept,
 * every producer that coalesced is in the set */
static void test_queue_threads(void **state)
{
	(void)state;
	struct ddns_queue *q = ddns_queue_new(64);
	struct qthr t[4];
	pthread_t th[4];
	for (unsigned i = 0; i < 4; i++) {
		t[i].q = q;
		t[i].sub = 100 + i;
		t[i].ok = t[i].coalesced = 0;
		atomic_init(&t[i].done, false);
		assert_int_equal(pthread_create(&th[i], NULL, pusher, &t[i]), 0);
	}
	uint64_t *which = calloc(DDNS_OVF_WORDS, sizeof(uint64_t)), *all = calloc(DDNS_OVF_WORDS, sizeof(uint64_t));
	int last[4] = { -1, -1, -1, -1 };
	unsigned got[4] = { 0 };
	for (bool finished = false;;) {
		struct ddns_event out[16];
		size_t n = ddns_queue_pop(q, out, 16);
		for (size_t i = 0; i < n; i++) {
			unsigned k = out[i].sub_index - 100;
			assert_true(k < 4);
			assert_true((int)out[i].int_port > last[k]);
			last[k] = out[i].int_port;
			got[k]++;
		}
		ddns_queue_take_overflow(q, which);
		for (unsigned w = 0; w < DDNS_OVF_WORDS; w++)
			all[w] |= which[w];
		if (n)
			continue;
		if (finished)
			break;               /* one more empty pass after every producer ended */
		finished = true;
		for (unsigned i = 0; i < 4; i++)
			if (!atomic_load(&t[i].done))
				finished = false;
	}
	for (unsigned i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	struct ddns_queue_stats st;
	ddns_queue_stats(q, &st);
	assert_int_equal(st.pushed, 20000);
	assert_int_equal(st.depth, 0);
	uint64_t coal = 0;
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(got[i] + t[i].coalesced, 5000);
		assert_int_equal(got[i], t[i].ok);
		coal += t[i].coalesced;
		bool bit = all[(100 + i) / 64] >> ((100 + i) % 64) & 1;
		assert_int_equal(bit, t[i].coalesced > 0);
	}
	assert_int_equal(st.coalesced, coal);
	free(which);
	free(all);
	ddns_queue_free(q);
}

/* ================================================================== */
/* 3. backoff and rate limits                                          */

static void test_backoff(void **state)
{
	(void)state;
	/* rnd = 0 gives the lower edge d/2, rnd = d - d/2 the upper edge d */
	static const uint64_t want[] = { 1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000, 300000 };
	for (uint32_t a = 1; a <= 11; a++) {
		uint64_t d = want[a - 1];
		assert_int_equal(ddns_backoff_ms(1000, 300000, a, 0), d / 2);
		assert_int_equal(ddns_backoff_ms(1000, 300000, a, (uint32_t)(d - d / 2)), d);
		assert_int_equal(ddns_backoff_ms(1000, 300000, a, (uint32_t)(d - d / 2 + 1)), d / 2);  /* wraps */
		static const uint32_t rs[] = { 1, 7, 12345, 999999, 0x7fffffff, UINT32_MAX, UINT32_MAX - 1 };
		for (unsigned i = 0; i < sizeof(rs) / sizeof(rs[0]); i++) {
			uint64_t v = ddns_backoff_ms(1000, 300000, a, rs[i]);
			assert_in_range(v, d / 2, d);
		}
	}
	/* attempt 0 is treated like the first; huge attempts stay capped */
	assert_int_equal(ddns_backoff_ms(1000, 300000, 0, 500), 1000);
	assert_int_equal(ddns_backoff_ms(1000, 300000, UINT32_MAX, 150000), 300000);
	assert_int_equal(ddns_backoff_ms(1000, 300000, 1000000, 0), 150000);
	/* odd values: d/2 rounds down, d is reachable */
	assert_int_equal(ddns_backoff_ms(3, 100, 1, 0), 1);
	assert_int_equal(ddns_backoff_ms(3, 100, 1, 2), 3);
	assert_int_equal(ddns_backoff_ms(3, 100, 3, 6), 12);
	/* degenerate limits */
	assert_int_equal(ddns_backoff_ms(0, 0, 5, 1), 1);             /* min 0 -> 1, max < min -> min */
	assert_int_equal(ddns_backoff_ms(500, 100, 9, 250), 500);
	assert_int_equal(ddns_backoff_ms(UINT32_MAX, UINT32_MAX, 40, 0), UINT32_MAX / 2);
	assert_in_range(ddns_backoff_ms(UINT32_MAX, UINT32_MAX, 40, UINT32_MAX), UINT32_MAX / 2, UINT32_MAX);
}

static void test_rate_per_sec(void **state)
{
	(void)state;
	struct ddns_rate r;
	uint64_t t = 1000000;
	ddns_rate_init(&r, 3, 0, t);
	/* a burst of 3, then a wait of one third of a second */
	for (int i = 0; i < 3; i++)
		assert_int_equal(ddns_rate_take(&r, t), 0);
	uint64_t w = ddns_rate_take(&r, t);
	assert_in_range(w, 334, 335);                   /* ceil(1000/3), at most 1 ms over */
	assert_int_equal(ddns_rate_take(&r, t), w);     /* a refused take consumes nothing */
	assert_int_not_equal(ddns_rate_take(&r, t + 200), 0);
	w = ddns_rate_take(&r, t + 200);
	assert_in_range(w, 134, 135);                   /* the wait shrinks with time */
	assert_int_equal(ddns_rate_take(&r, t + 200 + w), 0);
	assert_int_not_equal(ddns_rate_take(&r, t + 200 + w), 0);
	/* a long pause refills to the burst, never beyond */
	t += 3600 * 1000;
	for (int i = 0; i < 3; i++)
		assert_int_equal(ddns_rate_take(&r, t), 0);
	assert_int_not_equal(ddns_rate_take(&r, t), 0);
	/* a steady 3 per second goes through at exactly the rate */
	unsigned sent = 0;
	for (uint64_t now = t; now < t + 10000; now += 10)
		while (ddns_rate_take(&r, now) == 0)
			sent++;
	assert_in_range(sent, 29, 30);
	/* a clock going backwards refills nothing and breaks nothing */
	assert_int_not_equal(ddns_rate_take(&r, t), 0);
}

static void test_rate_per_hour(void **state)
{
	(void)state;
	struct ddns_rate r;
	uint64_t t = 5000;
	ddns_rate_init(&r, 0, 2, t);
	assert_int_equal(ddns_rate_take(&r, t), 0);
	assert_int_equal(ddns_rate_take(&r, t), 0);
	uint64_t w = ddns_rate_take(&r, t);
	assert_in_range(w, 1800000, 1800001);           /* an hour / 2 */
	assert_int_not_equal(ddns_rate_take(&r, t + w - 1000), 0);
	assert_int_equal(ddns_rate_take(&r, t + w), 0);
	assert_int_not_equal(ddns_rate_take(&r, t + w), 0);

	/* both: the per-hour bucket governs once it is empty, and a take
	 * refused by one bucket takes nothing from the other */
	t = 0;
	ddns_rate_init(&r, 2, 3, t);
	assert_int_equal(ddns_rate_take(&r, t), 0);
	assert_int_equal(ddns_rate_take(&r, t), 0);
	w = ddns_rate_take(&r, t);
	assert_in_range(w, 500, 501);
	assert_int_equal(ddns_rate_take(&r, t + w), 0);     /* hour bucket: 0 + a little */
	w = ddns_rate_take(&r, t + 5000);                   /* second bucket full again, hour empty */
	assert_in_range(w, 1200000 - 6000, 1200001);
	assert_int_equal(ddns_rate_take(&r, t + 5000 + w), 0);
	/* per-second bucket still full (refusals took nothing): one more at once fails only on the hour */
	assert_true(ddns_rate_take(&r, t + 5000 + w) > 1000);

	/* unlimited */
	ddns_rate_init(&r, 0, 0, 0);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(ddns_rate_take(&r, 0), 0);
}

/* ================================================================== */
/* 4. state                                                            */

static struct ddns_views *views_new(void)
{
	struct ddns_views *vs = calloc(1, sizeof(*vs));
	assert_non_null(vs);
	return vs;
}

static void test_views_apply(void **state)
{
	(void)state;
	struct ddns_views *vs = views_new();
	struct ddns_event e = mk_ev(false, 5, "alice", 6, 80, 1000);
	assert_null(ddns_views_apply(vs, &e));          /* down for an unknown subscriber */
	assert_int_equal(vs->nsubs, 0);
	e.up = true;
	struct ddns_subview *v = ddns_views_apply(vs, &e);
	assert_non_null(v);
	assert_ptr_equal(vs->v[5], v);
	assert_int_equal(v->index, 5);
	assert_string_equal(v->name, "alice");
	assert_int_equal(v->b4.plen, 56);
	assert_int_equal(v->n, 1);
	assert_int_equal(v->m[0].ext_port, 1000);
	/* same key (proto, internal address and port): replaced */
	e.ext_port = 2000;
	assert_ptr_equal(ddns_views_apply(vs, &e), v);
	assert_int_equal(v->n, 1);
	assert_int_equal(v->m[0].ext_port, 2000);
	assert_int_equal(vs->nmappings, 1);
	/* another protocol, port or internal host: separate mappings */
	struct ddns_event e2 = mk_ev(true, 5, "alice", 17, 80, 3000);
	struct ddns_event e3 = mk_ev(true, 5, "alice", 6, 81, 3001);
	struct ddns_event e4 = mk_ev(true, 5, "alice", 6, 80, 3002);
	inet_pton(AF_INET, "192.168.1.3", &e4.int_addr);
	ddns_views_apply(vs, &e2);
	ddns_views_apply(vs, &e3);
	ddns_views_apply(vs, &e4);
	assert_int_equal(v->n, 4);
	/* growth beyond the first allocation */
	for (uint16_t p = 100; p < 120; p++) {
		struct ddns_event x = mk_ev(true, 5, "alice", 6, p, p);
		ddns_views_apply(vs, &x);
	}
	assert_int_equal(v->n, 24);
	assert_int_equal(vs->nmappings, 24);
	for (uint16_t p = 100; p < 120; p++) {
		struct ddns_event x = mk_ev(false, 5, "alice", 6, p, 0);
		ddns_views_apply(vs, &x);
	}
	assert_int_equal(v->n, 4);
	/* removal by key; the ext port of a down event does not matter */
	e.up = false;
	e.ext_port = 0;
	ddns_views_apply(vs, &e);
	assert_int_equal(v->n, 3);
	assert_int_equal(vs->nmappings, 3);
	for (unsigned k = 0; k < v->n; k++)
		assert_false(v->m[k].proto == 6 && v->m[k].int_port == 80 && v->m[k].ext_port == 2000);
	ddns_views_apply(vs, &e);                       /* again: nothing to remove */
	assert_int_equal(v->n, 3);
	assert_int_equal(vs->nmappings, 3);
	/* a renamed subscriber takes the new name */
	struct ddns_event r = mk_ev(true, 5, "alicia", 6, 81, 3001);
	ddns_views_apply(vs, &r);
	assert_string_equal(v->name, "alicia");
	assert_int_equal(v->n, 3);
	/* second subscriber; indexes wrap into the table */
	struct ddns_event o = mk_ev(true, DDNS_SUB_MAX + 9, "", 6, 22, 22);
	struct ddns_subview *v9 = ddns_views_apply(vs, &o);
	assert_ptr_equal(vs->v[9], v9);
	assert_int_equal(v9->index, 9);
	assert_int_equal(vs->nsubs, 2);
	assert_int_equal(vs->nmappings, 4);
	ddns_views_clear(vs, 5);
	assert_int_equal(v->n, 0);
	assert_int_equal(vs->nmappings, 1);
	assert_ptr_equal(vs->v[5], v);                  /* the view stays, empty */
	ddns_views_clear(vs, 77);                       /* unknown: nothing */
	ddns_views_free(vs);
	assert_int_equal(vs->nsubs, 0);
	assert_int_equal(vs->nmappings, 0);
	assert_null(vs->v[5]);
	free(vs);
}

static void test_desired(void **state)
{
	(void)state;
	struct ddns_views *vs = views_new();
	struct ddns_binding_conf b;
	bconf(&b, "alice.example.com", "p1", "alice", NULL);
	bsrv(&b, "_http._tcp=80");
	bsrv(&b, "_dns._udp=53");
	struct ddns_update u;
	char val[DDNS_VALUE_MAX];

	/* nothing at all */
	memset(&u, 0x5a, sizeof(u));
	ddns_desired(&b, NULL, 1000, &u);
	assert_false(u.has_addr);
	assert_int_equal(u.nsrv, 0);
	assert_ptr_equal(u.services, b.srv);
	assert_int_equal(u.nservices, 2);
	assert_true(u.a);
	assert_null(u.txt);
	ddns_value_str(&u, false, val, sizeof(val));
	assert_string_equal(val, "");

	/* a mapping no service describes (tcp 53, udp 80, tcp 8080) keeps nothing alive */
	struct ddns_event e1 = mk_ev(true, 5, "alice", 6, 53, 4000);
	struct ddns_event e2 = mk_ev(true, 5, "alice", 17, 80, 4001);
	struct ddns_event e3 = mk_ev(true, 5, "alice", 6, 8080, 4002);
	ddns_views_apply(vs, &e1);
	ddns_views_apply(vs, &e2);
	struct ddns_subview *v = ddns_views_apply(vs, &e3);
	ddns_desired(&b, v, 1000, &u);
	assert_false(u.has_addr);
	assert_int_equal(u.nsrv, 0);
	ddns_value_str(&u, false, val, sizeof(val));
	assert_string_equal(val, "");

	/* tcp 80 from two internal hosts: two SRV for one service, sorted by port */
	struct ddns_event h1 = mk_ev(true, 5, "alice", 6, 80, 9000);
	struct ddns_event h2 = mk_ev(true, 5, "alice", 6, 80, 8000);
	inet_pton(AF_INET, "192.168.1.3", &h2.int_addr);
	h2.expires = 1300;
	ddns_views_apply(vs, &h1);
	ddns_views_apply(vs, &h2);
	ddns_desired(&b, v, 1000, &u);
	assert_true(u.has_addr);
	char a[INET_ADDRSTRLEN];
	assert_string_equal(inet_ntop(AF_INET, &u.addr, a, sizeof(a)), EXT_ADDR);
	assert_int_equal(u.nsrv, 2);
	assert_string_equal(u.srv[0].conf->service, "_http._tcp");
	assert_ptr_equal(u.srv[0].conf, &b.srv[0]);
	assert_int_equal(u.srv[0].port, 8000);
	assert_int_equal(u.srv[0].lifetime, 300);
	assert_int_equal(u.srv[1].port, 9000);
	assert_int_equal(u.srv[1].lifetime, UINT32_MAX);
	ddns_value_str(&u, false, val, sizeof(val));
	assert_string_equal(val, "A 203.0.113.1; SRV _http._tcp 8000; SRV _http._tcp 9000");
	ddns_value_str(&u, true, val, sizeof(val));
	assert_string_equal(val, "A 203.0.113.1");
	/* an expired mapping still listed: lifetime 0, not negative */
	ddns_desired(&b, v, 2000, &u);
	assert_int_equal(u.srv[0].lifetime, 0);

	/* udp 53 joins under its own service; order is by service then port */
	struct ddns_event d = mk_ev(true, 5, "alice", 17, 53, 5353);
	ddns_views_apply(vs, &d);
	snprintf(b.txt, sizeof(b.txt), "hello");
	ddns_desired(&b, v, 1000, &u);
	assert_int_equal(u.nsrv, 3);
	assert_string_equal(u.txt, "hello");
	ddns_value_str(&u, false, val, sizeof(val));
	assert_string_equal(val, "A 203.0.113.1; SRV _dns._udp 5353; SRV _http._tcp 8000; SRV _http._tcp 9000; TXT hello");
	/* the value does not depend on the order the mappings came in */
	struct ddns_views *vs2 = views_new();
	struct ddns_event order[] = { d, h2, e3, h1, e1, e2 };
	struct ddns_subview *v2 = NULL;
	for (unsigned i = 0; i < 6; i++)
		v2 = ddns_views_apply(vs2, &order[i]);
	struct ddns_update u2;
	char val2[DDNS_VALUE_MAX];
	ddns_desired(&b, v2, 1000, &u2);
	ddns_value_str(&u2, false, val2, sizeof(val2));
	assert_string_equal(val, val2);
	ddns_views_free(vs2);
	free(vs2);

	/* a = false: the address is still carried, marked as no A record */
	b.a = false;
	b.txt[0] = 0;
	ddns_desired(&b, v, 1000, &u);
	assert_false(u.a);
	ddns_value_str(&u, false, val, sizeof(val));
	assert_string_equal(val, "addr 203.0.113.1; SRV _dns._udp 5353; SRV _http._tcp 8000; SRV _http._tcp 9000");
	ddns_value_str(&u, true, val, sizeof(val));
	assert_string_equal(val, "A 203.0.113.1");
	b.a = true;

	/* the last matching mapping goes: nothing, even though others remain */
	struct ddns_event gone[] = { h1, h2, d };
	for (unsigned i = 0; i < 3; i++) {
		gone[i].up = false;
		ddns_views_apply(vs, &gone[i]);
	}
	assert_int_equal(v->n, 3);
	ddns_desired(&b, v, 1000, &u);
	assert_false(u.has_addr);
	assert_int_equal(u.nsrv, 0);

	/* an A-only binding lives while any mapping exists (any protocol) */
	struct ddns_binding_conf ao;
	bconf(&ao, "alice.example.com", "p1", "alice", NULL);
	ddns_desired(&ao, v, 1000, &u);
	assert_true(u.has_addr);
	assert_int_equal(u.nsrv, 0);
	ddns_value_str(&u, false, val, sizeof(val));
	assert_string_equal(val, "A 203.0.113.1");
	/* the lowest external address wins, whatever the order */
	struct ddns_event lo = mk_ev(true, 5, "alice", 0, 0, 0);
	inet_pton(AF_INET, "198.51.100.200", &lo.ext_addr);
	ddns_views_apply(vs, &lo);
	ddns_desired(&ao, v, 1000, &u);
	ddns_value_str(&u, false, val, sizeof(val));
	assert_string_equal(val, "A 198.51.100.200");
	struct ddns_event all_gone[] = { e1, e2, e3, lo };
	for (unsigned i = 0; i < 4; i++) {
		all_gone[i].up = false;
		ddns_views_apply(vs, &all_gone[i]);
	}
	assert_int_equal(v->n, 0);
	ddns_desired(&ao, v, 1000, &u);
	assert_false(u.has_addr);
	ddns_value_str(&u, false, val, sizeof(val));
	assert_string_equal(val, "");
	ddns_views_free(vs);
	free(vs);
}

static void test_name_expand(void **state)
{
	(void)state;
	struct ddns_subview v;
	memset(&v, 0, sizeof(v));
	v.index = 42;
	snprintf(v.name, sizeof(v.name), "alice");
	struct ddns_binding_conf b;
	char out[DDNS_NAME_MAX + 1];
	bconf(&b, "{name}.example.com", "p1", NULL, "2001:db8::/32");
	assert_int_equal(ddns_name_expand(&b, &v, out, sizeof(out)), 0);
	assert_string_equal(out, "alice.example.com");
	bconf(&b, "h{index}-{name}.{index}.example.com", "p1", NULL, "2001:db8::/32");
	assert_int_equal(ddns_name_expand(&b, &v, out, sizeof(out)), 0);
	assert_string_equal(out, "h42-alice.42.example.com");
	bconf(&b, "static.example.com", "p1", "alice", NULL);
	assert_int_equal(ddns_name_expand(&b, &v, out, sizeof(out)), 0);
	assert_string_equal(out, "static.example.com");
	/* a derived subscriber (no name): {name} is its index */
	v.name[0] = 0;
	v.index = 0;
	bconf(&b, "{name}.{index}.example.com", "p1", NULL, "2001:db8::/32");
	assert_int_equal(ddns_name_expand(&b, &v, out, sizeof(out)), 0);
	assert_string_equal(out, "0.0.example.com");
	v.index = 65535;
	assert_int_equal(ddns_name_expand(&b, &v, out, sizeof(out)), 0);
	assert_string_equal(out, "65535.65535.example.com");
	/* a name that is not a label */
	static const char *const bad[] = { "a.b", "a_b", "a b", "ä" };
	bconf(&b, "{name}.example.com", "p1", NULL, "2001:db8::/32");
	for (unsigned i = 0; i < 4; i++) {
		snprintf(v.name, sizeof(v.name), "%s", bad[i]);
		assert_int_equal(ddns_name_expand(&b, &v, out, sizeof(out)), -1);
	}
	/* ... only matters where {name} is used */
	bconf(&b, "{index}.example.com", "p1", NULL, "2001:db8::/32");
	assert_int_equal(ddns_name_expand(&b, &v, out, sizeof(out)), 0);
	assert_string_equal(out, "65535.example.com");
	/* a buffer too small */
	snprintf(v.name, sizeof(v.name), "alice");
	bconf(&b, "{name}.example.com", "p1", NULL, "2001:db8::/32");
	assert_int_equal(ddns_name_expand(&b, &v, out, 17), -1);
	assert_int_equal(ddns_name_expand(&b, &v, out, 18), 0);
	assert_string_equal(out, "alice.example.com");
	/* a label longer than 63 after expansion is not a host name */
	char n63[64], as[64];
	rep_char(n63, 'n', 63);
	snprintf(v.name, sizeof(v.name), "%s", n63);
	assert_int_equal(ddns_name_expand(&b, &v, out, sizeof(out)), 0);     /* exactly 63 */
	bconf(&b, "x{name}.example.com", "p1", NULL, "2001:db8::/32");
	assert_null(ddns_binding_check(&b));
	assert_int_equal(ddns_name_expand(&b, &v, out, sizeof(out)), -1);
	/* neither a name longer than 253 */
	char tmpl[DDNS_NAME_MAX + 1];
	snprintf(tmpl, sizeof(tmpl), "{name}.{name}.{name}.%s", rep_char(as, 'a', 61));
	bconf(&b, tmpl, "p1", NULL, "2001:db8::/32");
	assert_int_equal(ddns_name_expand(&b, &v, out, sizeof(out)), 0);      /* 63*3 + 3 + 61 = 253 */
	assert_int_equal(strlen(out), 253);
	snprintf(tmpl, sizeof(tmpl), "{name}.{name}.{name}.%s", rep_char(as, 'a', 62));
	bconf(&b, tmpl, "p1", NULL, "2001:db8::/32");
	assert_int_equal(ddns_name_expand(&b, &v, out, sizeof(out)), -1);
}

static void test_binding_match(void **state)
{
	(void)state;
	struct ddns_subview v;
	memset(&v, 0, sizeof(v));
	snprintf(v.name, sizeof(v.name), "alice");
	assert_true(prefix_parse("2001:db8:5::/56", &v.b4));
	struct ddns_binding_conf b;
	bconf(&b, "a.example.com", "p1", "alice", NULL);
	assert_true(ddns_binding_matches(&b, &v));
	bconf(&b, "a.example.com", "p1", "bob", NULL);
	assert_false(ddns_binding_matches(&b, &v));
	bconf(&b, "a.example.com", "p1", "Alice", NULL);
	assert_false(ddns_binding_matches(&b, &v));
	bconf(&b, "{index}.example.com", "p1", NULL, "2001:db8::/32");
	assert_true(ddns_binding_matches(&b, &v));
	bconf(&b, "{index}.example.com", "p1", NULL, "2001:db8:5::/56");
	assert_true(ddns_binding_matches(&b, &v));
	bconf(&b, "{index}.example.com", "p1", NULL, "2001:db9::/32");
	assert_false(ddns_binding_matches(&b, &v));
	bconf(&b, "{index}.example.com", "p1", NULL, "2001:db8:5::/64");     /* the B4 is wider than the binding */
	assert_false(ddns_binding_matches(&b, &v));
	/* a named subscriber is matched by prefix too; a subscriber binding ignores prefixes */
	bconf(&b, "{name}.example.com", "p1", NULL, "2001:db8::/32");
	assert_true(ddns_binding_matches(&b, &v));
	/* an encapsulated-mode subscriber (no B4 prefix) is never in a prefix */
	memset(&v.b4, 0, sizeof(v.b4));
	assert_false(ddns_binding_matches(&b, &v));
	bconf(&b, "a.example.com", "p1", "alice", NULL);
	assert_true(ddns_binding_matches(&b, &v));
}

/* ================================================================== */
/* shash                                                               */

struct item {
	char key[16];
	int v;
};

static void test_shash(void **state)
{
	(void)state;
	struct shash h = { 0 };
	assert_null(shash_find(&h, "x"));
	shash_del(&h, "x", NULL);
	static struct item it[300];
	for (int i = 0; i < 300; i++) {
		snprintf(it[i].key, sizeof(it[i].key), "k%d", i % 100);   /* three per key */
		it[i].v = i;
		assert_int_equal(shash_add(&h, it[i].key, &it[i]), 0);
	}
	assert_int_equal(h.n, 300);
	for (int k = 0; k < 100; k++) {
		char key[16];
		snprintf(key, sizeof(key), "k%d", k);
		int seen = 0;
		for (struct shash_node *n = shash_find(&h, key); n; n = shash_next(n)) {
			struct item *x = n->val;
			assert_string_equal(x->key, key);
			seen |= 1 << (x->v / 100);
		}
		assert_int_equal(seen, 7);
	}
	/* remove exactly the (key, value) given */
	shash_del(&h, "k7", &it[107]);
	shash_del(&h, "k7", &it[108]);                  /* wrong key for that value: nothing */
	assert_int_equal(h.n, 299);
	int seen = 0;
	for (struct shash_node *n = shash_find(&h, "k7"); n; n = shash_next(n))
		seen |= 1 << (((struct item *)n->val)->v / 100);
	assert_int_equal(seen, 5);
	assert_null(shash_find(&h, "k100"));
	shash_free(&h);
	assert_int_equal(h.n, 0);
	assert_null(shash_find(&h, "k1"));
}

/* ================================================================== */
/* 5. store                                                            */

struct loaded {
	struct ddns_binding_conf b[8];
	unsigned nb;
	struct ddns_pub p[8];
	unsigned np;
};

static void load_b(void *arg, const struct ddns_binding_conf *b)
{
	struct loaded *l = arg;
	assert_true(l->nb < 8);
	l->b[l->nb++] = *b;
}

static void load_p(void *arg, const struct ddns_pub *p)
{
	struct loaded *l = arg;
	assert_true(l->np < 8);
	l->p[l->np++] = *p;
}

static void pub_equal(const struct ddns_pub *a, const struct ddns_pub *b)
{
	assert_string_equal(a->name, b->name);
	assert_string_equal(a->binding, b->binding);
	assert_string_equal(a->provider, b->provider);
	assert_int_equal(a->sub_index, b->sub_index);
	assert_string_equal(a->value, b->value);
	assert_int_equal(a->seq, b->seq);
	assert_int_equal(a->at, b->at);
}

static void test_store(void **state)
{
	(void)state;
	char dir[64], path[128], err[256] = "";
	tmpdir_make(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/ddns.db", dir);
	struct ddns_store *s = ddns_store_open(path, err, sizeof(err));
	assert_non_null(s);

	struct ddns_binding_conf b1, b2;
	bconf(&b1, "alice.example.com", "p1", "alice", NULL);
	bconf(&b2, "{index}.dyn.example.com", "p2", NULL, "2001:db8::/32");
	b2.a = false;
	bsrv(&b2, "_http._tcp=80");
	bsrv(&b2, "_sip._udp=5060");
	snprintf(b2.txt, sizeof(b2.txt), "v=1; owner=isp");
	assert_int_equal(ddns_store_binding_put(s, &b1), 0);
	assert_int_equal(ddns_store_binding_put(s, &b2), 0);
	struct loaded l = { 0 };
	assert_int_equal(ddns_store_bindings_load(s, load_b, &l), 0);
	assert_int_equal(l.nb, 2);
	/* ordered by name: "{" sorts after letters */
	assert_string_equal(l.b[0].name, "alice.example.com");
	assert_string_equal(l.b[0].provider, "p1");
	assert_string_equal(l.b[0].subscriber, "alice");
	assert_int_equal(l.b[0].b4.plen, 0);
	assert_true(l.b[0].a);
	assert_int_equal(l.b[0].nsrv, 0);
	assert_string_equal(l.b[0].txt, "");
	assert_true(l.b[0].runtime);
	/* every field back as it was */
	assert_string_equal(l.b[1].name, b2.name);
	assert_string_equal(l.b[1].provider, "p2");
	assert_string_equal(l.b[1].subscriber, "");
	assert_int_equal(l.b[1].b4.plen, 32);
	assert_memory_equal(&l.b[1].b4.addr, &b2.b4.addr, sizeof(b2.b4.addr));
	assert_false(l.b[1].a);
	assert_int_equal(l.b[1].nsrv, 2);
	for (unsigned i = 0; i < 2; i++) {
		assert_string_equal(l.b[1].srv[i].service, b2.srv[i].service);
		assert_int_equal(l.b[1].srv[i].proto, b2.srv[i].proto);
		assert_int_equal(l.b[1].srv[i].int_port, b2.srv[i].int_port);
	}
	assert_string_equal(l.b[1].txt, "v=1; owner=isp");
	assert_true(l.b[1].runtime);
	/* replace, delete */
	b1.a = false;
	bsrv(&b1, "_ssh._tcp=22");
	assert_int_equal(ddns_store_binding_put(s, &b1), 0);
	assert_int_equal(ddns_store_binding_del(s, "{index}.dyn.example.com"), 0);
	assert_int_equal(ddns_store_binding_del(s, "nonexistent"), 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(ddns_store_bindings_load(s, load_b, &l), 0);
	assert_int_equal(l.nb, 1);
	assert_false(l.b[0].a);
	assert_int_equal(l.b[0].nsrv, 1);
	assert_string_equal(l.b[0].srv[0].service, "_ssh._tcp");
	assert_int_equal(l.b[0].srv[0].int_port, 22);
	assert_int_equal(l.b[0].srv[0].proto, 6);

	/* published values */
	struct ddns_pub p1 = { .sub_index = 5, .seq = 10, .at = 1700000000 }, p2 = { .sub_index = 65535, .seq = 11, .at = -1 };
	snprintf(p1.name, sizeof(p1.name), "alice.example.com");
	snprintf(p1.binding, sizeof(p1.binding), "alice.example.com");
	snprintf(p1.provider, sizeof(p1.provider), "p1");
	snprintf(p1.value, sizeof(p1.value), "A 203.0.113.1; SRV _ssh._tcp 2222");
	snprintf(p2.name, sizeof(p2.name), "65535.dyn.example.com");
	snprintf(p2.binding, sizeof(p2.binding), "{index}.dyn.example.com");
	snprintf(p2.provider, sizeof(p2.provider), "p2");
	snprintf(p2.value, sizeof(p2.value), "addr 203.0.113.9");
	assert_int_equal(ddns_store_pub_put(s, &p1), 0);
	assert_int_equal(ddns_store_pub_put(s, &p2), 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(ddns_store_pub_load(s, load_p, &l), 0);
	assert_int_equal(l.np, 2);
	pub_equal(&l.p[0], &p2);                         /* "6" < "a" */
	pub_equal(&l.p[1], &p1);
	/* a new value replaces; "" deletes */
	snprintf(p1.value, sizeof(p1.value), "A 203.0.113.1");
	p1.seq = 12;
	assert_int_equal(ddns_store_pub_put(s, &p1), 0);
	p2.value[0] = 0;
	assert_int_equal(ddns_store_pub_put(s, &p2), 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(ddns_store_pub_load(s, load_p, &l), 0);
	assert_int_equal(l.np, 1);
	assert_string_equal(l.p[0].value, "A 203.0.113.1");
	assert_int_equal(l.p[0].seq, 12);

	/* sequence numbers persist across close/open */
	assert_int_equal(ddns_store_next_seq(s), 1);
	assert_int_equal(ddns_store_next_seq(s), 2);
	assert_int_equal(ddns_store_next_seq(s), 3);
	ddns_store_close(s);
	s = ddns_store_open(path, err, sizeof(err));
	assert_non_null(s);
	assert_int_equal(ddns_store_next_seq(s), 4);
	memset(&l, 0, sizeof(l));
	assert_int_equal(ddns_store_bindings_load(s, load_b, &l), 0);
	assert_int_equal(ddns_store_pub_load(s, load_p, &l), 0);
	assert_int_equal(l.nb, 1);
	assert_int_equal(l.np, 1);
	ddns_store_close(s);

	/* a row edited by hand into nonsense is skipped, the rest loads */
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "INSERT INTO bindings VALUES('bad1','p1','alice','',1,'_http._xyz=80','');"
				      "INSERT INTO bindings VALUES('bad2','p1','','nonsense/99',1,'','');"
				      "INSERT INTO bindings VALUES('bad3.example.com','p1','','',1,'','');",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	s = ddns_store_open(path, err, sizeof(err));
	assert_non_null(s);
	memset(&l, 0, sizeof(l));
	assert_int_equal(ddns_store_bindings_load(s, load_b, &l), 0);
	assert_int_equal(l.nb, 1);
	assert_string_equal(l.b[0].name, "alice.example.com");
	ddns_store_close(s);
	ddns_store_close(NULL);

	/* cannot open: a message naming the file */
	snprintf(path, sizeof(path), "%s/missing/ddns.db", dir);
	err[0] = 0;
	assert_null(ddns_store_open(path, err, sizeof(err)));
	assert_non_null(strstr(err, path));
	tmpdir_rm(dir);
}

/* ================================================================== */
/* 6. the hook end to end                                              */

static const char *const A = "alice.example.com";

/* a provider that cannot open: the hook refuses to start, naming it */
static void test_hook_open_fails(void **state)
{
	(void)state;
	struct env e;
	env_init(&e);
	snprintf(e.c.providers[1].name, sizeof(e.c.providers[1].name), "broken");
	struct ddns_hook_opts o = { .state_dir = e.dir, .source = &fake_source, .ops_override = &fake_ops };
	char err[256] = "";
	assert_null(ddns_hook_new(&e.c, &o, err, sizeof(err)));
	assert_string_equal(err, "ddns provider broken: cannot read key");
	assert_int_equal(F.opens, 1);
	assert_int_equal(F.closes, 1);                  /* the one opened is closed again */
	/* a state directory that does not exist */
	snprintf(e.c.providers[1].name, sizeof(e.c.providers[1].name), "p2");
	o.state_dir = "/nonexistent/ddns-core";
	assert_null(ddns_hook_new(&e.c, &o, err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/ddns-core/ddns.db"));
	assert_int_equal(F.opens, 3);
	assert_int_equal(F.closes, 3);
	env_done(&e);
}

/* (a) + (c): a burst for one mapping gives one update with the final
 * state; the mapping going gives one DELETED */
static void test_hook_burst_then_delete(void **state)
{
	(void)state;
	struct env e;
	env_init(&e);
	struct ddns_binding_conf *b = env_bind(&e, A, "p1", "alice", NULL);
	bsrv(b, "_http._tcp=80");
	env_bind(&e, "other.example.com", "p1", "bob", NULL);
	struct ddns_hook *h = env_start(&e, false);
	settle(h);
	assert_int_equal(nrecs(NULL), 0);

	pause_hook();
	for (int k = 0; k < 100; k++) {
		bool up = k % 2 == 0 || k == 99;
		struct ddns_event ev = mk_ev(up, 5, "alice", 6, 80, (uint16_t)(k == 99 ? 5555 : 30000 + k));
		assert_true(change(h, &ev));
	}
	resume_hook();
	settle(h);
	assert_int_equal(nrecs(NULL), 1);
	struct rec r = rec_of(A, 0);
	assert_string_equal(r.prov, "p1");
	assert_int_equal(r.event, DDNS_CREATED);
	assert_true(r.has_addr);
	char a[INET_ADDRSTRLEN];
	assert_string_equal(inet_ntop(AF_INET, &r.addr, a, sizeof(a)), EXT_ADDR);
	assert_true(r.a);
	assert_int_equal(r.nservices, 1);
	assert_int_equal(r.nsrv, 1);
	assert_string_equal(r.srv[0].service, "_http._tcp");
	assert_int_equal(r.srv[0].proto, 6);
	assert_int_equal(r.srv[0].int_port, 80);
	assert_int_equal(r.srv[0].port, 5555);
	assert_int_equal(r.srv[0].lifetime, UINT32_MAX);
	assert_string_equal(r.subscriber, "alice");
	assert_int_equal(r.sub_index, 5);
	assert_int_equal(r.ttl, 60);
	assert_false(r.has_txt);
	assert_int_equal(stat_of(h, "events"), 100);
	assert_int_equal(stat_of(h, "updates_sent"), 1);
	assert_int_equal(stat_of(h, "updates_ok"), 1);
	assert_int_equal(stat_of(h, "mappings_seen"), 1);
	struct nst n = name_st(h, A);
	assert_true(n.found);
	assert_string_equal(n.state, "idle");
	assert_string_equal(n.published, "A 203.0.113.1; SRV _http._tcp 5555");
	assert_string_equal(n.last_result, "NOERROR");
	assert_string_equal(n.last_class, "ok");
	assert_string_equal(n.binding, A);
	assert_string_equal(n.provider, "p1");
	assert_int_equal(n.attempts, 0);

	/* an event that changes nothing published (another protocol) sends nothing */
	struct ddns_event udp = mk_ev(true, 5, "alice", 17, 80, 6000);
	change(h, &udp);
	settle(h);
	assert_int_equal(nrecs(NULL), 1);

	/* (c) the mapping goes */
	struct ddns_event down = mk_ev(false, 5, "alice", 6, 80, 0);
	change(h, &down);
	settle(h);
	assert_int_equal(nrecs(NULL), 2);
	struct rec d = rec_of(A, 1);
	assert_int_equal(d.event, DDNS_DELETED);
	assert_false(d.has_addr);
	assert_int_equal(d.nsrv, 0);
	assert_true(d.seq > r.seq);
	n = name_st(h, A);
	assert_string_equal(n.published, "");
	assert_string_equal(n.state, "idle");
	/* and when it comes back, it is created again */
	struct ddns_event again = mk_ev(true, 5, "alice", 6, 80, 7777);
	change(h, &again);
	settle(h);
	assert_int_equal(nrecs(NULL), 3);
	assert_int_equal(rec_of(A, 2).event, DDNS_CREATED);
	assert_int_equal(rec_of(A, 2).srv[0].port, 7777);
	ddns_hook_free(h);
	assert_int_equal(F.closes, 2);
	env_done(&e);
}

/* (b) restart over the same state: same value -> nothing; another -> one CHANGED */
static void test_hook_restart(void **state)
{
	(void)state;
	struct env e;
	env_init(&e);
	struct ddns_binding_conf *b = env_bind(&e, A, "p1", "alice", NULL);
	bsrv(b, "_http._tcp=80");
	struct ddns_event m = mk_ev(true, 5, "alice", 6, 80, 1000);
	src_apply(&m);
	struct ddns_hook *h = env_start(&e, false);
	settle(h);
	assert_int_equal(nrecs(A), 1);
	struct rec r1 = rec_of(A, 0);
	assert_int_equal(r1.event, DDNS_CREATED);
	assert_int_equal(r1.srv[0].port, 1000);
	ddns_hook_free(h);

	h = env_hook(&e);
	/* before the start: the name is known from the state, nothing due */
	struct nst n = name_st(h, A);
	assert_true(n.found);
	assert_string_equal(n.published, "A 203.0.113.1; SRV _http._tcp 1000");
	assert_int_equal(ddns_hook_start(h, false), 0);
	settle(h);
	assert_int_equal(nrecs(A), 1);
	assert_int_equal(stat_of(h, "updates_sent"), 0);
	assert_int_equal(stat_of(h, "names"), 1);
	ddns_hook_free(h);

	m.ext_port = 2000;
	src_apply(&m);
	h = env_start(&e, false);
	settle(h);
	assert_int_equal(nrecs(A), 2);
	struct rec r2 = rec_of(A, 1);
	assert_int_equal(r2.event, DDNS_CHANGED);
	assert_int_equal(r2.srv[0].port, 2000);
	assert_true(r2.seq > r1.seq);                   /* across restarts */
	ddns_hook_free(h);

	/* gone while the hook was down: withdrawn at the next start (no state loss, no grace) */
	src_reset();
	h = env_start(&e, false);
	settle(h);
	assert_int_equal(nrecs(A), 3);
	assert_int_equal(rec_of(A, 2).event, DDNS_DELETED);
	ddns_hook_free(h);
	env_done(&e);
}

/* (d) transient twice, then OK */
static void test_hook_transient(void **state)
{
	(void)state;
	struct env e;
	env_init(&e);
	env_bind(&e, A, "p1", "alice", NULL);
	script(A, result(DDNS_R_TRANSIENT, "timeout", "no answer"));
	script(A, result(DDNS_R_TRANSIENT, "SERVFAIL", "try later"));
	struct ddns_event m = mk_ev(true, 5, "alice", 6, 80, 1000);
	src_apply(&m);
	struct ddns_hook *h = env_start(&e, false);
	settle(h);
	assert_int_equal(nrecs(A), 3);
	struct rec r[3] = { rec_of(A, 0), rec_of(A, 1), rec_of(A, 2) };
	for (int i = 0; i < 3; i++) {
		assert_int_equal(r[i].event, DDNS_CREATED);   /* nothing was accepted before */
		assert_true(r[i].has_addr);
		if (i)
			assert_true(r[i].seq > r[i - 1].seq);
	}
	struct nst n = name_st(h, A);
	assert_int_equal(n.attempts, 0);
	assert_string_equal(n.state, "idle");
	assert_string_equal(n.published, "A 203.0.113.1");
	assert_string_equal(n.last_class, "ok");
	assert_int_equal(stat_of(h, "updates_sent"), 3);
	assert_int_equal(stat_of(h, "updates_transient"), 2);
	assert_int_equal(stat_of(h, "updates_ok"), 1);
	struct pst p = prov_st(h, "p1");
	assert_int_equal(p.sent, 3);
	assert_int_equal(p.transient, 2);
	assert_int_equal(p.ok, 1);
	assert_string_equal(p.state, "active");
	ddns_hook_free(h);

	/* the accepted value was persisted */
	h = env_start(&e, false);
	settle(h);
	assert_int_equal(nrecs(A), 3);
	ddns_hook_free(h);
	env_done(&e);
}

/* a WAIT answer is a transient error too */
static void test_hook_wait(void **state)
{
	(void)state;
	struct env e;
	env_init(&e);
	env_bind(&e, A, "p1", "alice", NULL);
	struct ddns_result w = result(DDNS_R_WAIT, "911", "maintenance");
	w.retry_after = 1;
	script(A, w);
	struct ddns_event m = mk_ev(true, 5, "alice", 6, 80, 1000);
	src_apply(&m);
	uint64_t t0 = mono_ms();          /* before the start: a sound lower bound */
	struct ddns_hook *h = env_start(&e, false);
	settle(h);
	assert_int_equal(nrecs(A), 2);
	/* retry_after is a lower bound: never earlier (noise only delays) */
	assert_true(rec_of(A, 1).at_ms - rec_of(A, 0).at_ms >= 990);
	assert_true(mono_ms() - t0 >= 990);
	assert_string_equal(name_st(h, A).published, "A 203.0.113.1");
	assert_int_equal(stat_of(h, "updates_transient"), 1);
	ddns_hook_free(h);
	env_done(&e);
}

/* (e) a permanent error for a name */
static void test_hook_perm_name(void **state)
{
	(void)state;
	struct env e;
	env_init(&e);
	env_bind(&e, A, "p1", "alice", NULL);
	env_bind(&e, "bob.example.com", "p1", "bob", NULL);
	script(A, result(DDNS_R_PERM_NAME, "REFUSED", "zone says no"));
	struct ddns_event m = mk_ev(true, 5, "alice", 6, 80, 1000);
	struct ddns_event mb = mk_ev(true, 6, "bob", 6, 80, 1001);
	src_apply(&m);
	src_apply(&mb);
	struct ddns_hook *h = env_start(&e, false);
	settle(h);
	assert_int_equal(nrecs(A), 1);
	assert_int_equal(nrecs("bob.example.com"), 1);
	struct nst n = name_st(h, A);
	assert_string_equal(n.state, "stopped");
	assert_string_equal(n.last_class, "permanent");
	assert_string_equal(n.last_result, "REFUSED");
	assert_string_equal(n.error, "zone says no");
	assert_string_equal(n.published, "");
	assert_int_equal(stat_of(h, "updates_permanent"), 1);
	assert_string_equal(prov_st(h, "p1").state, "active");   /* only the name stops */

	/* more events: still nothing for this name; other names go on */
	struct ddns_event m2 = mk_ev(true, 5, "alice", 6, 81, 2000);
	struct ddns_event mb2 = mk_ev(true, 6, "bob", 6, 80, 1002);
	inet_pton(AF_INET, "203.0.113.2", &mb2.ext_addr);
	change(h, &m2);
	change(h, &mb2);
	settle(h);
	assert_int_equal(nrecs(A), 1);
	assert_int_equal(nrecs("bob.example.com"), 2);
	assert_string_equal(name_st(h, A).state, "stopped");

	/* a reset of something that does not exist */
	char err[128] = "";
	assert_int_equal(ddns_hook_reset(h, "nope.example.com", err, sizeof(err)), -1);
	assert_string_equal(err, "no provider or name nope.example.com");
	/* a reset of a name that is fine clears nothing */
	assert_int_equal(ddns_hook_reset(h, "bob.example.com", err, sizeof(err)), 0);
	settle(h);
	assert_int_equal(nrecs("bob.example.com"), 2);
	/* the reset sends the current state again */
	assert_int_equal(ddns_hook_reset(h, A, err, sizeof(err)), 1);
	settle(h);
	assert_int_equal(nrecs(A), 2);
	struct rec r = rec_of(A, 1);
	assert_int_equal(r.event, DDNS_CREATED);
	assert_true(r.has_addr);
	n = name_st(h, A);
	assert_string_equal(n.state, "idle");
	assert_string_equal(n.published, "A 203.0.113.1");
	assert_string_equal(n.last_class, "ok");
	ddns_hook_free(h);
	env_done(&e);
}

/* (f) a permanent error for the provider */
static void test_hook_perm_provider(void **state)
{
	(void)state;
	struct env e;
	env_init(&e);
	env_bind(&e, A, "p1", "alice", NULL);
	env_bind(&e, "bob.example.com", "p1", "bob", NULL);
	env_bind(&e, "carol.example.com", "p2", "carol", NULL);
	script(A, result(DDNS_R_PERM_PROVIDER, "BADKEY", "key rejected"));
	struct ddns_event ma = mk_ev(true, 5, "alice", 6, 80, 1000);
	src_apply(&ma);
	struct ddns_hook *h = env_start(&e, false);
	settle(h);
	assert_int_equal(nrecs(NULL), 1);
	struct pst p = prov_st(h, "p1");
	assert_string_equal(p.state, "stopped");
	assert_non_null(strstr(p.reason, "BADKEY"));
	assert_non_null(strstr(p.reason, "key rejected"));
	assert_non_null(strstr(p.reason, A));
	assert_int_equal(p.permanent, 1);
	assert_int_equal(stat_of(h, "providers_stopped"), 1);
	assert_string_equal(prov_st(h, "p2").state, "active");
	assert_string_equal(prov_st(h, "p2").reason, "");

	/* new names of that provider are not sent; the other provider goes on */
	struct ddns_event mb = mk_ev(true, 6, "bob", 6, 80, 1001);
	struct ddns_event mc = mk_ev(true, 7, "carol", 6, 80, 1002);
	struct ddns_event ma2 = mk_ev(true, 5, "alice", 17, 53, 1003);
	inet_pton(AF_INET, "203.0.113.0", &ma2.ext_addr);    /* alice's value changes */
	change(h, &mb);
	change(h, &mc);
	change(h, &ma2);
	settle(h);
	assert_int_equal(nrecs(A), 1);
	assert_int_equal(nrecs("bob.example.com"), 0);
	assert_int_equal(nrecs("carol.example.com"), 1);
	assert_string_equal(name_st(h, A).state, "stopped");
	assert_string_equal(name_st(h, "bob.example.com").state, "stopped");
	assert_string_equal(name_st(h, "carol.example.com").state, "idle");
	assert_string_equal(prov_st(h, "p1").state, "stopped");

	/* reset by provider resumes all of its names */
	char err[128] = "";
	int rc = ddns_hook_reset(h, "p1", err, sizeof(err));
	assert_true(rc >= 1);
	settle(h);
	assert_int_equal(nrecs(A), 2);
	assert_int_equal(nrecs("bob.example.com"), 1);
	assert_int_equal(nrecs("carol.example.com"), 1);
	char a[INET_ADDRSTRLEN];
	struct rec r = rec_of(A, 1);
	assert_string_equal(inet_ntop(AF_INET, &r.addr, a, sizeof(a)), "203.0.113.0");
	assert_string_equal(prov_st(h, "p1").state, "active");
	assert_string_equal(prov_st(h, "p1").reason, "");
	assert_int_equal(stat_of(h, "providers_stopped"), 0);
	assert_string_equal(name_st(h, A).published, "A 203.0.113.0");
	assert_string_equal(name_st(h, "bob.example.com").published, "A 203.0.113.1");
	/* a second reset finds nothing to clear */
	assert_int_equal(ddns_hook_reset(h, "p1", err, sizeof(err)), 0);
	assert_int_equal(ddns_hook_reset(h, "*", err, sizeof(err)), 0);
	settle(h);
	assert_int_equal(nrecs(NULL), 4);
	ddns_hook_free(h);
	env_done(&e);
}

/* (g) queue overflow: coalesced subscribers are re-read whole */
static void test_hook_coalesce(void **state)
{
	(void)state;
	struct env e;
	env_init(&e);
	e.c.queue_size = 4;
	struct ddns_binding_conf *b = env_bind(&e, "s{index}.example.com", "p1", NULL, "2001:db8::/32");
	bsrv(b, "_http._tcp=80");
	/* phase 1: ten subscribers published */
	for (uint32_t i = 10; i < 20; i++) {
		struct ddns_event ev = mk_ev(true, i, "", 6, 80, (uint16_t)(1000 + i));
		src_apply(&ev);
	}
	struct ddns_hook *h = env_start(&e, false);
	settle(h);
	assert_int_equal(nrecs(NULL), 10);
	char name[64];
	for (uint32_t i = 10; i < 20; i++) {
		snprintf(name, sizeof(name), "s%u.example.com", i);
		assert_int_equal(nrecs(name), 1);
		assert_int_equal(rec_of(name, 0).srv[0].port, 1000 + i);
		char sub[16];
		snprintf(sub, sizeof(sub), "#%u", i);          /* a derived subscriber */
		assert_string_equal(rec_of(name, 0).subscriber, sub);
		assert_int_equal(rec_of(name, 0).sub_index, i);
	}
	/* phase 2: 200 events while the hook is parked; the final state:
	 * 10-13 back where they were, 14-16 on new ports, 17-19 gone */
	pause_hook();
	unsigned refused = 0;
	for (int round = 0; round < 20; round++)
		for (uint32_t i = 10; i < 20; i++) {
			struct ddns_event ev;
			if (round < 19)
				ev = mk_ev(round % 3 != 2, i, "", 6, 80, (uint16_t)(20000 + round * 100 + i));
			else if (i < 14)
				ev = mk_ev(true, i, "", 6, 80, (uint16_t)(1000 + i));
			else if (i < 17)
				ev = mk_ev(true, i, "", 6, 80, (uint16_t)(3000 + i));
			else
				ev = mk_ev(false, i, "", 6, 80, 0);
			if (!change(h, &ev))
				refused++;
		}
	resume_hook();
	assert_int_equal(refused, 196);                 /* four fit in the ring */
	settle(h);
	assert_int_equal(stat_of(h, "events_coalesced"), 196);
	assert_true(stat_of(h, "resyncs") >= 1);
	assert_int_equal(stat_of(h, "queue_high_water"), 4);
	pthread_mutex_lock(&S.lock);
	assert_true(S.partial_snapshots >= 1);
	pthread_mutex_unlock(&S.lock);
	for (uint32_t i = 10; i < 20; i++) {
		snprintf(name, sizeof(name), "s%u.example.com", i);
		struct nst n = name_st(h, name);
		char want[128];
		if (i < 14) {
			assert_int_equal(nrecs(name), 1);   /* unchanged in the end: nothing sent */
			snprintf(want, sizeof(want), "A 203.0.113.1; SRV _http._tcp %u", 1000 + i);
		} else if (i < 17) {
			assert_int_equal(nrecs(name), 2);
			struct rec r = rec_of(name, 1);
			assert_int_equal(r.event, DDNS_CHANGED);
			assert_int_equal(r.nsrv, 1);
			assert_int_equal(r.srv[0].port, 3000 + i);
			snprintf(want, sizeof(want), "#%u", i);
			assert_string_equal(r.subscriber, want);
			snprintf(want, sizeof(want), "A 203.0.113.1; SRV _http._tcp %u", 3000 + i);
		} else {
			assert_int_equal(nrecs(name), 2);
			assert_int_equal(rec_of(name, 1).event, DDNS_DELETED);
			assert_false(rec_of(name, 1).has_addr);
			want[0] = 0;
		}
		assert_string_equal(n.published, want);
		assert_string_equal(n.state, "idle");
	}
	assert_int_equal(stat_of(h, "mappings_seen"), 7);
	ddns_hook_free(h);
	env_done(&e);
}

/* (h) runtime bindings */
static void test_hook_runtime_bindings(void **state)
{
	(void)state;
	struct env e;
	env_init(&e);
	env_bind(&e, "cfg.example.com", "p1", "alice", NULL);
	struct ddns_event ma = mk_ev(true, 5, "alice", 6, 80, 1000);
	struct ddns_event mb = mk_ev(true, 6, "bob", 6, 80, 2000);
	src_apply(&ma);
	src_apply(&mb);
	struct ddns_hook *h = env_start(&e, false);
	settle(h);
	assert_int_equal(nrecs("cfg.example.com"), 1);
	const char *RT = "rt.example.com";

	struct ddns_binding_conf rt;
	bconf(&rt, RT, "p1", "bob", NULL);
	char err[256] = "";
	assert_int_equal(ddns_hook_binding_add(h, &rt, false, err, sizeof(err)), 0);
	settle(h);
	assert_int_equal(nrecs(RT), 1);
	struct rec r = rec_of(RT, 0);
	assert_int_equal(r.event, DDNS_CREATED);
	assert_true(r.has_addr);
	assert_int_equal(r.nsrv, 0);
	assert_string_equal(r.subscriber, "bob");
	/* add again: refused */
	assert_int_equal(ddns_hook_binding_add(h, &rt, false, err, sizeof(err)), -1);
	assert_string_equal(err, "binding rt.example.com exists (use ddns set to change it)");
	/* set: changed in place, one CHANGED with the SRV */
	bsrv(&rt, "_http._tcp=80");
	assert_int_equal(ddns_hook_binding_add(h, &rt, true, err, sizeof(err)), 0);
	settle(h);
	assert_int_equal(nrecs(RT), 2);
	r = rec_of(RT, 1);
	assert_int_equal(r.event, DDNS_CHANGED);
	assert_int_equal(r.nsrv, 1);
	assert_int_equal(r.srv[0].port, 2000);
	/* set with nothing changed: nothing sent */
	assert_int_equal(ddns_hook_binding_add(h, &rt, true, err, sizeof(err)), 0);
	settle(h);
	assert_int_equal(nrecs(RT), 2);
	assert_string_equal(name_st(h, RT).published, "A 203.0.113.1; SRV _http._tcp 2000");

	/* refusals */
	struct ddns_binding_conf x;
	bconf(&x, "cfg.example.com", "p1", "bob", NULL);
	assert_int_equal(ddns_hook_binding_add(h, &x, false, err, sizeof(err)), -1);
	assert_string_equal(err, "binding cfg.example.com is defined in pcpd.conf; change it there");
	assert_int_equal(ddns_hook_binding_add(h, &x, true, err, sizeof(err)), -1);
	assert_string_equal(err, "binding cfg.example.com is defined in pcpd.conf; change it there");
	bconf(&x, "new.example.com", "nope", "bob", NULL);
	assert_int_equal(ddns_hook_binding_add(h, &x, false, err, sizeof(err)), -1);
	assert_string_equal(err, "no provider named nope");
	bconf(&x, "new.example.com", "p1", NULL, NULL);
	assert_int_equal(ddns_hook_binding_add(h, &x, false, err, sizeof(err)), -1);
	assert_string_equal(err, "binding needs a subscriber or a subscriber prefix");
	assert_int_equal(ddns_hook_binding_del(h, "cfg.example.com", err, sizeof(err)), -1);
	assert_string_equal(err, "binding cfg.example.com is defined in pcpd.conf; remove it there");
	assert_int_equal(ddns_hook_binding_del(h, "nope.example.com", err, sizeof(err)), -1);
	assert_string_equal(err, "no binding named nope.example.com");
	assert_null(binding_js(h, "new.example.com"));
	settle(h);
	assert_int_equal(nrecs(NULL), 3);
	ddns_hook_free(h);

	/* persisted: a new hook over the same state directory has it */
	h = env_hook(&e);
	json_object *bj = binding_js(h, RT);
	assert_non_null(bj);
	assert_string_equal(jstr(bj, "source"), "runtime");
	assert_string_equal(jstr(bj, "provider"), "p1");
	assert_string_equal(jstr(bj, "subscriber"), "bob");
	json_object *srv;
	assert_true(json_object_object_get_ex(bj, "srv", &srv));
	assert_int_equal(json_object_array_length(srv), 1);
	assert_string_equal(json_object_get_string(json_object_array_get_idx(srv, 0)), "_http._tcp=80");
	json_object_put(bj);
	bj = binding_js(h, "cfg.example.com");
	assert_string_equal(jstr(bj, "source"), "config");
	json_object_put(bj);
	assert_int_equal(ddns_hook_start(h, false), 0);
	settle(h);
	assert_int_equal(nrecs(NULL), 3);               /* all as published */
	assert_int_equal(stat_of(h, "bindings"), 2);

	/* del withdraws the records, then forgets the name */
	assert_int_equal(ddns_hook_binding_del(h, RT, err, sizeof(err)), 0);
	settle(h);
	assert_int_equal(nrecs(RT), 3);
	r = rec_of(RT, 2);
	assert_int_equal(r.event, DDNS_DELETED);
	assert_false(r.has_addr);
	assert_false(name_st(h, RT).found);
	assert_null(binding_js(h, RT));
	assert_int_equal(stat_of(h, "bindings"), 1);
	assert_int_equal(stat_of(h, "names"), 1);
	/* bob's mapping changes: nothing for the removed binding */
	mb.ext_port = 2001;
	change(h, &mb);
	settle(h);
	assert_int_equal(nrecs(NULL), 4);
	ddns_hook_free(h);

	h = env_start(&e, false);
	assert_null(binding_js(h, RT));
	settle(h);
	assert_int_equal(nrecs(NULL), 4);
	ddns_hook_free(h);
	env_done(&e);
}

/* A runtime binding whose provider left the configuration is kept, but
 * inactive: its names say why they do not publish. */
static void test_hook_binding_inactive(void **state)
{
	(void)state;
	struct env e;
	env_init(&e);
	struct ddns_hook *h = env_start(&e, false);
	struct ddns_binding_conf rt;
	bconf(&rt, "carol.example.com", "p2", "carol", NULL);
	char err[256] = "";
	assert_int_equal(ddns_hook_binding_add(h, &rt, false, err, sizeof(err)), 0);
	settle(h);
	ddns_hook_free(h);
	e.c.nproviders = 1;                             /* p2 is gone */
	struct ddns_event mc = mk_ev(true, 7, "carol", 6, 80, 1000);
	src_apply(&mc);
	h = env_start(&e, false);
	settle(h);
	assert_int_equal(nrecs(NULL), 0);
	json_object *bj = binding_js(h, "carol.example.com");
	assert_non_null(bj);
	assert_string_equal(jstr(bj, "provider"), "p2");
	json_object_put(bj);
	struct nst n = name_st(h, "carol.example.com");
	assert_true(n.found);
	assert_string_equal(n.state, "stopped");
	assert_string_equal(n.provider, "p2");
	assert_string_equal(n.last_result, "no-provider");
	assert_string_equal(n.last_class, "permanent");
	assert_string_equal(n.error, "provider p2 is not configured");
	/* and it cannot be changed to point at a missing provider either */
	bconf(&rt, "carol.example.com", "p3", "carol", NULL);
	assert_int_equal(ddns_hook_binding_add(h, &rt, true, err, sizeof(err)), -1);
	assert_string_equal(err, "no provider named p3");
	ddns_hook_free(h);
	env_done(&e);
}

/* A binding moved to another provider: the old records are withdrawn
 * through the old provider, then the name is created through the new. */
static void test_hook_binding_moves(void **state)
{
	(void)state;
	struct env e;
	env_init(&e);
	struct ddns_event mb = mk_ev(true, 6, "bob", 6, 80, 2000);
	src_apply(&mb);
	struct ddns_hook *h = env_start(&e, false);
	settle(h);
	const char *RT = "rt.example.com";
	struct ddns_binding_conf rt;
	bconf(&rt, RT, "p1", "bob", NULL);
	char err[256] = "";
	assert_int_equal(ddns_hook_binding_add(h, &rt, false, err, sizeof(err)), 0);
	settle(h);
	assert_int_equal(nrecs(RT), 1);
	snprintf(rt.provider, sizeof(rt.provider), "p2");
	assert_int_equal(ddns_hook_binding_add(h, &rt, true, err, sizeof(err)), 0);
	settle(h);
	assert_int_equal(nrecs(RT), 3);
	struct rec d = rec_of(RT, 1), c = rec_of(RT, 2);
	assert_string_equal(d.prov, "p1");
	assert_int_equal(d.event, DDNS_DELETED);
	assert_string_equal(c.prov, "p2");
	assert_int_equal(c.event, DDNS_CREATED);
	struct nst n = name_st(h, RT);
	assert_string_equal(n.provider, "p2");
	assert_string_equal(n.published, "A 203.0.113.1");
	ddns_hook_free(h);
	env_done(&e);

	/* the same move across a restart (config edited while down) */
	env_init(&e);
	env_bind(&e, A, "p1", "alice", NULL);
	struct ddns_event ma = mk_ev(true, 5, "alice", 6, 80, 1000);
	src_apply(&ma);
	h = env_start(&e, false);
	settle(h);
	assert_int_equal(nrecs(A), 1);
	ddns_hook_free(h);
	snprintf(e.b[0].provider, sizeof(e.b[0].provider), "p2");
	h = env_start(&e, false);
	settle(h);
	assert_int_equal(nrecs(A), 3);
	assert_string_equal(rec_of(A, 1).prov, "p1");
	assert_int_equal(rec_of(A, 1).event, DDNS_DELETED);
	assert_string_equal(rec_of(A, 2).prov, "p2");
	assert_int_equal(rec_of(A, 2).event, DDNS_CREATED);
	assert_string_equal(name_st(h, A).provider, "p2");
	ddns_hook_free(h);
	env_done(&e);

	/* a name that published nothing at the moment of the move is taken
	 * over at once; it then belongs to the new provider */
	env_init(&e);
	src_apply(&mb);
	h = env_start(&e, false);
	settle(h);
	bconf(&rt, RT, "p1", "bob", NULL);
	assert_int_equal(ddns_hook_binding_add(h, &rt, false, err, sizeof(err)), 0);
	settle(h);
	assert_int_equal(nrecs(RT), 1);
	struct ddns_event mb_down = mb;
	mb_down.up = false;
	change(h, &mb_down);
	settle(h);
	assert_int_equal(nrecs(RT), 2);
	assert_int_equal(rec_of(RT, 1).event, DDNS_DELETED);
	snprintf(rt.provider, sizeof(rt.provider), "p2");
	assert_int_equal(ddns_hook_binding_add(h, &rt, true, err, sizeof(err)), 0);
	settle(h);
	assert_int_equal(nrecs(RT), 2);
	n = name_st(h, RT);
	assert_true(n.found);
	assert_string_equal(n.provider, "p2");
	assert_string_equal(n.binding, RT);
	change(h, &mb);
	settle(h);
	assert_int_equal(nrecs(RT), 3);
	assert_string_equal(rec_of(RT, 2).prov, "p2");
	assert_int_equal(rec_of(RT, 2).event, DDNS_CREATED);
	ddns_hook_free(h);
	env_done(&e);
}

/* A binding removed while its first update is in flight and re-added on
 * another provider: the first provider's records are withdrawn once the
 * update completes, and the new provider gets its own create. */
static void test_hook_move_while_in_flight(void **state)
{
	(void)state;
	struct env e;
	env_init(&e);
	struct ddns_event mb = mk_ev(true, 6, "bob", 6, 80, 2000);
	src_apply(&mb);
	struct ddns_hook *h = env_start(&e, false);
	settle(h);
	const char *RT = "rt.example.com";
	struct ddns_binding_conf rt;
	bconf(&rt, RT, "p1", "bob", NULL);
	char err[256] = "";
	pthread_mutex_lock(&F.lock);
	F.hold = true;
	pthread_mutex_unlock(&F.lock);
	assert_int_equal(ddns_hook_binding_add(h, &rt, false, err, sizeof(err)), 0);
	uint64_t t0 = mono_ms();
	while (nrecs(RT) < 1) {
		assert_true(mono_ms() - t0 < WAIT_MS);
		nap();
	}
	assert_string_equal(name_st(h, RT).state, "in-flight");
	assert_int_equal(ddns_hook_binding_del(h, RT, err, sizeof(err)), 0);
	snprintf(rt.provider, sizeof(rt.provider), "p2");
	assert_int_equal(ddns_hook_binding_add(h, &rt, false, err, sizeof(err)), 0);
	release_held();
	settle(h);
	/* p1 accepted the create, so p1 must be told to delete; p2 creates */
	unsigned p1_create = 0, p1_delete = 0, p2_create = 0;
	pthread_mutex_lock(&F.lock);
	for (unsigned i = 0; i < F.n; i++) {
		if (strcmp(F.r[i].name, RT))
			continue;
		if (!strcmp(F.r[i].prov, "p1"))
			F.r[i].event == DDNS_DELETED ? p1_delete++ : p1_create++;
		else
			p2_create += F.r[i].event != DDNS_DELETED;
	}
	pthread_mutex_unlock(&F.lock);
	assert_int_equal(p1_create, 1);
	assert_int_equal(p1_delete, 1);
	assert_int_equal(p2_create, 1);
	struct nst n = name_st(h, RT);
	assert_string_equal(n.provider, "p2");
	assert_string_equal(n.published, "A 203.0.113.1");
	ddns_hook_free(h);
	env_done(&e);
}

/* A name whose debounce timer has fired keeps its turn when an event is
 * drained in the same loop iteration (libev runs the async callback
 * before the expired timer's): the name is sent then, not pushed back by
 * another debounce, so a steady stream of events cannot starve it. The
 * timer's expiry is made certain by parking the hook past it. */
static void test_hook_debounce_keeps_turn(void **state)
{
	(void)state;
	struct env e;
	env_init(&e);
	struct ddns_binding_conf *b = env_bind(&e, A, "p1", "alice", NULL);
	bsrv(b, "_http._tcp=80");
	struct ddns_hook *h = env_start(&e, false);
	settle(h);
	struct ddns_event m = mk_ev(true, 5, "alice", 6, 80, 1001);
	pause_hook();
	change(h, &m);
	sleep_ms(3 * DDNS_POLL_MS);     /* the hook reads its queue on a timer */
	step_hook();                    /* drained: due in 50 ms, parked again */
	assert_int_equal(nrecs(A), 0);
	sleep_ms(3 * e.c.debounce_ms);  /* the timer expires while the hook is parked */
	m.ext_port = 1002;
	change(h, &m);
	step_hook();                    /* one iteration: the event, then the expired timer */
	unsigned n = nrecs(A);
	resume_hook();
	assert_int_equal(n, 1);
	settle(h);
	assert_int_equal(nrecs(A), 1);
	assert_int_equal(rec_of(A, 0).srv[0].port, 1002);
	ddns_hook_free(h);
	env_done(&e);
}

/* (i) after a state loss, removals wait for the startup grace */
static void test_hook_grace(void **state)
{
	(void)state;
	struct env e;
	env_init(&e);
	env_bind(&e, A, "p1", "alice", NULL);
	env_bind(&e, "bob.example.com", "p1", "bob", NULL);
	struct ddns_event ma = mk_ev(true, 5, "alice", 6, 80, 1000);
	struct ddns_event mb = mk_ev(true, 6, "bob", 6, 80, 2000);
	src_apply(&ma);
	src_apply(&mb);
	struct ddns_hook *h = env_start(&e, false);
	settle(h);
	assert_int_equal(nrecs(NULL), 2);
	ddns_hook_free(h);

	/* pcpd lost its mappings: alice's is gone, bob re-created his on
	 * another address */
	src_reset();
	mb.ext_addr.s_addr = htonl(ntohl(mb.ext_addr.s_addr) + 1);
	src_apply(&mb);
	e.c.startup_grace = 3;
	uint64_t t0 = mono_ms();
	h = env_start(&e, true);
	/* right after the start, well inside the grace: alice's name waits.
	 * (Only if the answer really came within the grace, which a stalled
	 * test thread could miss; then the check below still holds.) */
	struct nst n = name_st(h, A);
	unsigned early = nrecs(A);
	if (mono_ms() - t0 < 2900) {
		assert_string_equal(n.published, "A 203.0.113.1");
		assert_string_equal(n.state, "due");
		assert_true(n.timer);
		assert_int_equal(early, 1);
	} else {
		fprintf(stderr, "test_hook_grace: the machine is too slow to look inside the grace\n");
	}
	settle(h);
	/* bob's change did not wait; alice's removal went after the grace */
	assert_int_equal(nrecs("bob.example.com"), 2);
	assert_int_equal(rec_of("bob.example.com", 1).event, DDNS_CHANGED);
	assert_int_equal(nrecs(A), 2);
	struct rec d = rec_of(A, 1);
	assert_int_equal(d.event, DDNS_DELETED);
	assert_true(d.at_ms - t0 >= 2900);
	assert_true(rec_of("bob.example.com", 1).at_ms <= d.at_ms);
	assert_string_equal(name_st(h, A).published, "");
	ddns_hook_free(h);

	/* without a state loss the same removal goes at once (grace unused) */
	struct ddns_event ma2 = ma;
	src_apply(&ma2);
	h = env_start(&e, false);
	settle(h);
	assert_int_equal(nrecs(A), 3);
	ddns_hook_free(h);
	src_reset();
	src_apply(&mb);
	h = env_start(&e, false);
	settle(h);
	assert_int_equal(nrecs(A), 4);
	assert_int_equal(rec_of(A, 3).event, DDNS_DELETED);
	ddns_hook_free(h);
	env_done(&e);
}

/* (j) the per-second rate limit spreads six due names */
static void test_hook_rate_limit(void **state)
{
	(void)state;
	struct env e;
	env_init(&e);
	e.c.providers[0].rate_per_sec = 2;
	env_bind(&e, "s{index}.example.com", "p1", NULL, "2001:db8::/32");
	for (uint32_t i = 1; i <= 6; i++) {
		struct ddns_event ev = mk_ev(true, i, "", 6, 80, (uint16_t)(1000 + i));
		src_apply(&ev);
	}
	uint64_t t0 = mono_ms();
	struct ddns_hook *h = env_start(&e, false);
	settle(h);
	assert_int_equal(nrecs(NULL), 6);
	char name[64];
	uint64_t last = 0;
	for (uint32_t i = 1; i <= 6; i++) {
		snprintf(name, sizeof(name), "s%u.example.com", i);
		assert_int_equal(nrecs(name), 1);
		assert_string_equal(name_st(h, name).published, "A 203.0.113.1");
		struct rec r = rec_of(name, 0);
		last = r.at_ms > last ? r.at_ms : last;
	}
	struct pst p = prov_st(h, "p1");
	assert_true(p.rate_waits > 0);
	assert_int_equal(p.sent, 6);
	/* a burst of two from the start, then one every 500 ms: the sixth no
	 * earlier than 2 s after the start (a lower bound against a time taken
	 * before the start: a loaded machine only makes it later) */
	assert_true(last - t0 >= 1900);
	ddns_hook_free(h);
	env_done(&e);
}

/* dyndns2-like providers publish the address only: ports never trigger them */
static void test_hook_addr_only(void **state)
{
	(void)state;
	struct env e;
	env_init(&e);
	e.ops = &fake_ops_addr_only;
	struct ddns_binding_conf *b = env_bind(&e, A, "p1", "alice", NULL);
	bsrv(b, "_http._tcp=80");
	struct ddns_event ma = mk_ev(true, 5, "alice", 6, 80, 1000);
	src_apply(&ma);
	struct ddns_hook *h = env_start(&e, false);
	settle(h);
	assert_int_equal(nrecs(A), 1);
	assert_string_equal(name_st(h, A).published, "A 203.0.113.1");
	ma.ext_port = 1001;
	change(h, &ma);
	settle(h);
	assert_int_equal(nrecs(A), 1);
	inet_pton(AF_INET, "203.0.113.7", &ma.ext_addr);
	change(h, &ma);
	settle(h);
	assert_int_equal(nrecs(A), 2);
	assert_int_equal(rec_of(A, 1).event, DDNS_CHANGED);
	ddns_hook_free(h);
	env_done(&e);
}

/* the status filter and a subscriber name no binding can expand */
static void test_hook_status_filter(void **state)
{
	(void)state;
	struct env e;
	env_init(&e);
	env_bind(&e, "{name}.example.com", "p1", NULL, "2001:db8::/32");
	env_bind(&e, "bob.example.com", "p2", "bob", NULL);
	struct ddns_event ma = mk_ev(true, 5, "alice", 6, 80, 1000);
	struct ddns_event mb = mk_ev(true, 6, "bob", 6, 80, 1001);
	struct ddns_event mx = mk_ev(true, 7, "x_y", 6, 80, 1002);   /* not a label */
	src_apply(&ma);
	src_apply(&mb);
	src_apply(&mx);
	struct ddns_hook *h = env_start(&e, false);
	settle(h);
	/* bob matches both bindings: bob.example.com is claimed by the first only */
	assert_int_equal(nrecs("alice.example.com"), 1);
	assert_int_equal(nrecs("bob.example.com"), 1);
	assert_int_equal(nrecs(NULL), 2);
	assert_int_equal(stat_of(h, "names"), 2);
	assert_int_equal(stat_of(h, "subscribers_seen"), 3);
	json_object *s = ddns_hook_status(h, "p2"), *a;
	assert_true(json_object_object_get_ex(s, "providers", &a));
	assert_int_equal(json_object_array_length(a), 1);
	assert_true(json_object_object_get_ex(s, "bindings", &a));
	assert_int_equal(json_object_array_length(a), 1);
	json_object_put(s);
	s = ddns_hook_status(h, "alice.example.com");
	assert_true(json_object_object_get_ex(s, "names", &a));
	assert_int_equal(json_object_array_length(a), 1);
	assert_true(json_object_object_get_ex(s, "providers", &a));
	assert_int_equal(json_object_array_length(a), 0);
	json_object_put(s);
	s = ddns_hook_status(h, NULL);
	assert_true(json_object_object_get_ex(s, "names", &a));
	assert_int_equal(json_object_array_length(a), 2);
	json_object_put(s);
	ddns_hook_free(h);
	env_done(&e);
}

/* the hook can be freed without ever being started, and with updates in flight */
static void test_hook_lifecycle(void **state)
{
	(void)state;
	struct env e;
	env_init(&e);
	env_bind(&e, A, "p1", "alice", NULL);
	struct ddns_hook *h = env_hook(&e);
	ddns_hook_free(h);
	assert_int_equal(F.closes, 2);
	struct ddns_event ma = mk_ev(true, 5, "alice", 6, 80, 1000);
	src_apply(&ma);
	pthread_mutex_lock(&F.lock);
	F.hold = true;
	pthread_mutex_unlock(&F.lock);
	h = env_start(&e, false);
	uint64_t t0 = mono_ms();
	while (nrecs(A) < 1) {
		assert_true(mono_ms() - t0 < WAIT_MS);
		nap();
	}
	assert_int_equal(stat_of(h, "in_flight"), 1);
	ddns_hook_free(h);                              /* abandoned: stays due */
	fake_reset();
	h = env_start(&e, false);
	settle(h);
	assert_int_equal(nrecs(A), 1);
	assert_int_equal(rec_of(A, 0).event, DDNS_CREATED);
	ddns_hook_free(h);
	env_done(&e);
}

int main(void)
{
	if (!getenv("DDNS_TEST_LOG"))
		log_setup(LOG_TO_STDERR, LOG_CRIT, "test");
	else
		log_setup(LOG_TO_STDERR, LOG_DEBUG, "test");
	if (getenv("DDNS_TEST_FILTER"))
		cmocka_set_test_filter(getenv("DDNS_TEST_FILTER"));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_ptype, teardown),
		cmocka_unit_test_teardown(test_defaults, teardown),
		cmocka_unit_test_teardown(test_srv_parse_good, teardown),
		cmocka_unit_test_teardown(test_srv_parse_bad, teardown),
		cmocka_unit_test_teardown(test_binding_check, teardown),
		cmocka_unit_test_teardown(test_queue_fifo, teardown),
		cmocka_unit_test_teardown(test_queue_overflow, teardown),
		cmocka_unit_test_teardown(test_queue_threads, teardown),
		cmocka_unit_test_teardown(test_backoff, teardown),
		cmocka_unit_test_teardown(test_rate_per_sec, teardown),
		cmocka_unit_test_teardown(test_rate_per_hour, teardown),
		cmocka_unit_test_teardown(test_views_apply, teardown),
		cmocka_unit_test_teardown(test_desired, teardown),
		cmocka_unit_test_teardown(test_name_expand, teardown),
		cmocka_unit_test_teardown(test_binding_match, teardown),
		cmocka_unit_test_teardown(test_shash, teardown),
		cmocka_unit_test_teardown(test_store, teardown),
		cmocka_unit_test_teardown(test_hook_open_fails, teardown),
		cmocka_unit_test_teardown(test_hook_burst_then_delete, teardown),
		cmocka_unit_test_teardown(test_hook_restart, teardown),
		cmocka_unit_test_teardown(test_hook_transient, teardown),
		cmocka_unit_test_teardown(test_hook_wait, teardown),
		cmocka_unit_test_teardown(test_hook_perm_name, teardown),
		cmocka_unit_test_teardown(test_hook_perm_provider, teardown),
		cmocka_unit_test_teardown(test_hook_coalesce, teardown),
		cmocka_unit_test_teardown(test_hook_runtime_bindings, teardown),
		cmocka_unit_test_teardown(test_hook_binding_inactive, teardown),
		cmocka_unit_test_teardown(test_hook_binding_moves, teardown),
		cmocka_unit_test_teardown(test_hook_move_while_in_flight, teardown),
		cmocka_unit_test_teardown(test_hook_debounce_keeps_turn, teardown),
		cmocka_unit_test_teardown(test_hook_grace, teardown),
		cmocka_unit_test_teardown(test_hook_rate_limit, teardown),
		cmocka_unit_test_teardown(test_hook_addr_only, teardown),
		cmocka_unit_test_teardown(test_hook_status_filter, teardown),
		cmocka_unit_test_teardown(test_hook_lifecycle, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
