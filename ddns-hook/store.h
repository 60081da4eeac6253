/* The hook's durable state, one SQLite file in the state directory:
 * runtime bindings (pcpctl ddns add), the value each name's provider last
 * accepted, and the update sequence number. Used from the hook thread
 * only. Every write is its own transaction (synchronous=FULL): a value is
 * recorded as published only once the provider accepted it, so a crash
 * can at worst repeat an idempotent update, never lose one. */
#ifndef DDNS_STORE_H
#define DDNS_STORE_H

#include <stdint.h>

#include "ddns-hook/conf.h"

#define DDNS_VALUE_MAX 4096             /* 32 SRV records, A and a TXT fit */

struct ddns_pub {
	char name[DDNS_NAME_MAX + 1];
	char binding[DDNS_NAME_MAX + 1];  /* the binding's (template) name */
	char provider[DDNS_ID_MAX];
	uint32_t sub_index;
	char value[DDNS_VALUE_MAX];
	uint64_t seq;
	int64_t at;                        /* wall clock of acceptance */
};

struct ddns_store;

struct ddns_store *ddns_store_open(const char *path, char *err, size_t errlen);
void ddns_store_close(struct ddns_store *s);

int ddns_store_binding_put(struct ddns_store *s, const struct ddns_binding_conf *b);
int ddns_store_binding_del(struct ddns_store *s, const char *name);
int ddns_store_bindings_load(struct ddns_store *s,
			     void (*cb)(void *arg, const struct ddns_binding_conf *b), void *arg);

/* value "" removes the row (nothing published). */
int ddns_store_pub_put(struct ddns_store *s, const struct ddns_pub *p);
int ddns_store_pub_load(struct ddns_store *s, void (*cb)(void *arg, const struct ddns_pub *p), void *arg);

/* Next update sequence number (persisted before it is used). */
uint64_t ddns_store_next_seq(struct ddns_store *s);

#endif
