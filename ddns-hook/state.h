/* The hook's picture of the world, without I/O: each subscriber's inbound
 * mappings as the events told them, which bindings apply to a subscriber,
 * the name a binding gives it, and what should be published under that
 * name, written as one canonical string so "differs from what the
 * provider last accepted" is a string comparison. */
#ifndef DDNS_STATE_H
#define DDNS_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ddns-hook/event.h"
#include "ddns-hook/provider.h"

struct ddns_mapping {
	uint8_t proto;
	uint16_t int_port, ext_port;
	struct in_addr int_addr, ext_addr;
	uint32_t expires;                /* wall seconds; UINT32_MAX static */
};

struct ddns_subview {
	uint32_t index;
	char name[DDNS_ID_MAX];
	struct prefix b4;
	struct ddns_mapping *m;
	unsigned n, cap;
};

struct ddns_views {
	struct ddns_subview *v[DDNS_SUB_MAX];
	size_t nsubs, nmappings;
};

/* Applies one event; returns the subscriber's view (created on first up). */
struct ddns_subview *ddns_views_apply(struct ddns_views *vs, const struct ddns_event *ev);
/* Forgets a subscriber's mappings (before a re-read after overflow). */
void ddns_views_clear(struct ddns_views *vs, uint32_t index);
void ddns_views_free(struct ddns_views *vs);

bool ddns_binding_matches(const struct ddns_binding_conf *b, const struct ddns_subview *v);
/* The published name for v: the binding's name with {index} / {name}
 * filled in (a derived subscriber's {name} is its index). -1 if the result
 * is not a valid host name. */
int ddns_name_expand(const struct ddns_binding_conf *b, const struct ddns_subview *v, char *out, size_t len);

/* What should be published: the SRV records of the mappings that match
 * the binding's services, the address while any of them (or, for an
 * A-only binding, any mapping) exists. v may be NULL (nothing). */
void ddns_desired(const struct ddns_binding_conf *b, const struct ddns_subview *v, uint32_t now_wall,
		  struct ddns_update *u);
/* Canonical form of u's content: "" when nothing is to be published;
 * addr_only keeps the address alone (providers that cannot publish ports). */
void ddns_value_str(const struct ddns_update *u, bool addr_only, char *buf, size_t len);

#endif
