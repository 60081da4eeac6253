/* What the hook learns from pcpd: one inbound mapping (MAP or static)
 * appeared or went. Values only, so an event can be copied into the
 * queue and outlive everything it came from. */
#ifndef DDNS_EVENT_H
#define DDNS_EVENT_H

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>

#include "common/addr.h"
#include "ddns-hook/conf.h"

#define DDNS_SUB_MAX 65536u          /* subscriber indexes 0..65535 (the zone limit) */

struct ddns_event {
	bool up;                         /* true: exists now; false: gone */
	uint8_t proto;                   /* 6, 17 (0: all protocols, never published as SRV) */
	uint16_t int_port;
	uint16_t ext_port;
	uint32_t sub_index;
	struct in_addr int_addr;
	struct in_addr ext_addr;
	uint32_t expires;                /* wall-clock seconds when it ends; UINT32_MAX: static */
	char sub_name[DDNS_ID_MAX];      /* "" for derived subscribers */
	struct prefix b4;                /* plen 0: encapsulated-mode subscriber */
};

typedef void (*ddns_emit_fn)(void *arg, const struct ddns_event *ev);

/* pcpd's side: the hook asks for the current mappings when it starts and
 * after a queue overflow. Called on the hook thread. */
struct ddns_source {
	void *ctx;
	void (*thread_init)(void *ctx);  /* e.g. rcu_register_thread */
	void (*thread_exit)(void *ctx);
	/* Emits an up event for every inbound mapping of each subscriber whose
	 * bit is set in which[] (NULL: all subscribers). */
	void (*snapshot)(void *ctx, const uint64_t *which, ddns_emit_fn emit, void *arg);
};

#endif
