/* The DDNS hook: its own thread and libev loop. pcpd pushes mapping
 * events (any thread, never blocks); the hook debounces per name,
 * publishes what differs from the last accepted value through the
 * binding's provider, retries, rate-limits, and keeps its state in
 * <state-dir>/ddns.db. Control calls run on the hook thread and wait for
 * it; they never touch the PCP path. */
#ifndef DDNS_HOOK_H
#define DDNS_HOOK_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "ddns-hook/conf.h"
#include "ddns-hook/event.h"
#include "ddns-hook/provider.h"

struct ddns_hook;

/* How often the hook reads its event queue (ms). Producers never wake it:
 * pushing costs a short mutex and a copy, no system call. */
#define DDNS_POLL_MS 20

struct ddns_hook_opts {
	const char *state_dir;           /* ddns.db lives here */
	const struct ddns_source *source;
	/* tests: every provider uses these ops instead of its type's */
	const struct ddns_provider_ops *ops_override;
};

/* Opens providers (secret files checked: a bad mode refuses the start),
 * the state database, loads runtime bindings. NULL + err on failure. */
struct ddns_hook *ddns_hook_new(const struct ddns_conf *c, const struct ddns_hook_opts *o,
				char *err, size_t errlen);
/* Starts the thread: reads the current mappings from the source and
 * reconciles them with what was published. state_lost: pcpd's mappings
 * were lost (new epoch): removals wait startup-grace seconds so clients
 * can re-create their mappings first. */
int ddns_hook_start(struct ddns_hook *h, bool state_lost);
/* Stops the thread (in-flight requests are abandoned, their names stay
 * due and go out after the next start) and frees everything. */
void ddns_hook_free(struct ddns_hook *h);

/* Any thread. false: the queue was full and the event was coalesced. */
bool ddns_hook_push(struct ddns_hook *h, const struct ddns_event *ev);

/* ---- control (any thread except the hook's; waits for the hook) ---- */

/* {"providers":[...],"names":[...],"bindings":[...]} ; filter: a name, or NULL */
json_object *ddns_hook_status(struct ddns_hook *h, const char *filter);
/* The same with one list only: "providers", "names" or "bindings". */
json_object *ddns_hook_status_part(struct ddns_hook *h, const char *filter, const char *part);
json_object *ddns_hook_stats(struct ddns_hook *h);
/* Adds or (replace) changes a runtime binding; persisted. 0 or -1 + err. */
int ddns_hook_binding_add(struct ddns_hook *h, const struct ddns_binding_conf *b, bool replace,
			  char *err, size_t errlen);
int ddns_hook_binding_del(struct ddns_hook *h, const char *name, char *err, size_t errlen);
/* Clears a permanent stop of a name, a provider, or everything ("*");
 * the names are tried again at once. Returns how many were reset. */
int ddns_hook_reset(struct ddns_hook *h, const char *what, char *err, size_t errlen);

#endif
