#include "ddns-hook/shash.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static size_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;    /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (size_t)h;
}

static int grow(struct shash *h)
{
	size_t nb = h->nb ? h->nb * 2 : 64;
	struct shash_node **b = calloc(nb, sizeof(*b));
	if (!b)
		return -1;
	for (size_t i = 0; i < h->nb; i++)
		for (struct shash_node *n = h->b[i], *next; n; n = next) {
			next = n->next;
			size_t k = hash(n->key) & (nb - 1);
			n->next = b[k];
			b[k] = n;
		}
	free(h->b);
	h->b = b;
	h->nb = nb;
	return 0;
}

int shash_add(struct shash *h, const char *key, void *val)
{
	if (h->n >= h->nb && grow(h) < 0)
		return -1;
	struct shash_node *n = malloc(sizeof(*n));
	if (!n)
		return -1;
	size_t k = hash(key) & (h->nb - 1);
	n->key = key;
	n->val = val;
	n->next = h->b[k];
	h->b[k] = n;
	h->n++;
	return 0;
}

struct shash_node *shash_find(const struct shash *h, const char *key)
{
	if (!h->nb)
		return NULL;
	for (struct shash_node *n = h->b[hash(key) & (h->nb - 1)]; n; n = n->next)
		if (!strcmp(n->key, key))
			return n;
	return NULL;
}

struct shash_node *shash_next(const struct shash_node *n)
{
	for (struct shash_node *m = n->next; m; m = m->next)
		if (!strcmp(m->key, n->key))
			return m;
	return NULL;
}

void shash_del(struct shash *h, const char *key, const void *val)
{
	if (!h->nb)
		return;
	for (struct shash_node **pp = &h->b[hash(key) & (h->nb - 1)]; *pp; pp = &(*pp)->next)
		if ((*pp)->val == val && !strcmp((*pp)->key, key)) {
			struct shash_node *n = *pp;
			*pp = n->next;
			free(n);
			h->n--;
			return;
		}
}

void shash_free(struct shash *h)
{
	for (size_t i = 0; i < h->nb; i++)
		for (struct shash_node *n = h->b[i], *next; n; n = next) {
			next = n->next;
			free(n);
		}
	free(h->b);
	h->b = NULL;
	h->nb = h->n = 0;
}
