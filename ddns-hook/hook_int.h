/* Internals shared by hook.c (thread, scheduling) and hook_ctl.c
 * (control calls). Everything here is owned by the hook thread. */
#ifndef DDNS_HOOK_INT_H
#define DDNS_HOOK_INT_H

#include <ev.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "ddns-hook/backoff.h"
#include "ddns-hook/hook.h"
#include "ddns-hook/queue.h"
#include "ddns-hook/shash.h"
#include "ddns-hook/state.h"
#include "ddns-hook/store.h"

struct prov_stats {
	uint64_t sent, ok, transient, permanent, rate_waits;
};

struct prov {
	struct ddns_provider_conf conf;
	const struct ddns_provider_ops *ops;
	void *p;
	struct ddns_rate rate;
	bool stopped;                    /* a permanent error: until pcpctl ddns reset */
	char reason[512];
	struct prov_stats st;
};

struct bind {
	struct bind *prev, *next;
	struct ddns_binding_conf c;
	struct prov *prov;               /* NULL: its provider is not configured */
	bool warned;
};

enum tstate { T_IDLE, T_DUE, T_INFLIGHT, T_RETRY, T_STOPPED };

struct target {
	struct target *prev, *next;
	ev_timer timer;                  /* data = the hook */
	char name[DDNS_NAME_MAX + 1];
	char binding[DDNS_NAME_MAX + 1];
	char prov_name[DDNS_ID_MAX];
	struct bind *b;                  /* NULL: orphan, removes what it published */
	struct prov *prov;
	uint32_t sub_index;
	enum tstate st;
	bool stopped;                    /* permanent error for this name */
	uint64_t next_ms;                /* when the timer fires (loop ms) */
	uint32_t attempts;               /* consecutive failures */
	char *published;                 /* last value the provider accepted (heap, "" = none) */
	int64_t published_at;
	char *sending;                   /* the value in flight (heap) */
	uint64_t sending_seq;
	int64_t last_try, last_at;
	struct ddns_result last;
};

#define target_of_timer(w) ((struct target *)((char *)(w) - offsetof(struct target, timer)))

struct hook_call {
	struct hook_call *next;
	void (*fn)(struct ddns_hook *h, void *arg);
	void *arg;
	bool done;
};

struct hook_stats {
	uint64_t events, resyncs, sent, ok, transient, permanent;
};

struct ddns_hook {
	struct ddns_conf conf;           /* bindings pointer not kept */
	struct ddns_source src;
	struct ev_loop *loop;
	ev_async async;                  /* control calls */
	ev_timer poll;                   /* drains the event queue */
	pthread_t thread;
	bool running;
	struct ddns_queue *q;
	uint64_t which[DDNS_OVF_WORDS];
	struct prov prov[DDNS_MAX_PROVIDERS];
	unsigned nprov;
	struct bind *binds;
	unsigned nbinds;
	struct shash bind_by_name, bind_by_sub;
	struct target *targets;
	size_t ntargets;
	struct shash target_by_name;
	struct ddns_views views;
	struct ddns_store *store;
	uint64_t grace_until_ms;
	unsigned inflight;
	struct hook_stats st;
	pthread_mutex_t call_lock;
	pthread_cond_t call_cond;
	struct hook_call *calls;
};

struct prov *hook_prov_find(struct ddns_hook *h, const char *name);
struct bind *hook_bind_find(struct ddns_hook *h, const char *name);
struct bind *hook_bind_link(struct ddns_hook *h, const struct ddns_binding_conf *c);
void hook_bind_unlink(struct ddns_hook *h, struct bind *b);
struct target *hook_target_find(struct ddns_hook *h, const char *name);
void hook_target_forget(struct ddns_hook *h, struct target *t);
void hook_target_due(struct ddns_hook *h, struct target *t, uint64_t delay_ms);
/* A mapping of v changed: its names become due after the debounce. */
void h_subscriber_changed(struct ddns_hook *h, struct ddns_subview *v);
/* Does binding b give t's subscriber the name t? (true while no mapping of
 * the subscriber has been seen: nothing to decide on) */
bool hook_claims(struct ddns_hook *h, const struct bind *b, const struct target *t);
const char *hook_rclass_str(enum ddns_rclass c);
void hook_run_calls(struct ddns_hook *h);
/* Runs fn on the hook thread and waits (directly if not started). */
void hook_call(struct ddns_hook *h, void (*fn)(struct ddns_hook *h, void *arg), void *arg);

#endif
