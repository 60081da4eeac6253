/* A small chained string hash for the hook thread's indexes (names ->
 * targets, subscriber -> bindings). Several entries may share a key.
 * Not thread-safe: one thread owns it. */
#ifndef DDNS_SHASH_H
#define DDNS_SHASH_H

#include <stddef.h>

struct shash_node {
	struct shash_node *next;
	const char *key;                 /* owned by the value */
	void *val;
};

struct shash {
	struct shash_node **b;
	size_t nb, n;
};

int shash_add(struct shash *h, const char *key, void *val);
/* First entry with key (then shash_next for more), or NULL. */
struct shash_node *shash_find(const struct shash *h, const char *key);
struct shash_node *shash_next(const struct shash_node *n);
/* Removes the entry (key, val). */
void shash_del(struct shash *h, const char *key, const void *val);
void shash_free(struct shash *h);

#endif
