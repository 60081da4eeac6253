/* Port allocator. pa->bits holds two bitmaps of nwords each: the first is
 * "in use" (forbidden ports and the padding past n are set there too, so
 * a full word can be skipped at once), the second "held down", so that
 * the free-port scan never has to walk the hold list. */
#include <stdlib.h>
#include <string.h>

#include "aftr/portalloc.h"

static uint32_t nwords(const struct portalloc *pa)
{
	return ((uint32_t)pa->n + 63) / 64;
}

static uint64_t *held_bits(const struct portalloc *pa)
{
	return pa->bits + nwords(pa);
}

static bool bit_get(const uint64_t *v, uint32_t i)
{
	return (v[i / 64] >> (i % 64)) & 1;
}

static void bit_set(uint64_t *v, uint32_t i)
{
	v[i / 64] |= 1ULL << (i % 64);
}

static void bit_clr(uint64_t *v, uint32_t i)
{
	v[i / 64] &= ~(1ULL << (i % 64));
}

bool port_forbidden(uint8_t proto, uint16_t port)
{
	return port < 1024 || (proto == IPPROTO_UDP && (port == 5350 || port == 5351));
}

enum perr portalloc_init(struct portalloc *pa, uint8_t proto, uint16_t lo, uint16_t n,
			 uint32_t seed)
{
	memset(pa, 0, sizeof(*pa));
	if (n == 0 || (uint32_t)lo + n > 65536)
		return PERR_INVAL;
	pa->proto = proto;
	pa->lo = lo;
	pa->n = n;
	uint32_t w = nwords(pa);
	pa->bits = calloc(2 * (size_t)w, sizeof(uint64_t));
	if (!pa->bits)
		return PERR_NOMEM;
	for (uint32_t i = 0; i < n; i++)
		if (port_forbidden(proto, (uint16_t)(lo + i)))
			bit_set(pa->bits, i);
	for (uint32_t i = n; i < w * 64; i++)
		bit_set(pa->bits, i);
	pa->cursor = seed % n;
	return PERR_OK;
}

void portalloc_fini(struct portalloc *pa)
{
	free(pa->bits);
	free(pa->holds);
	memset(pa, 0, sizeof(*pa));
}

bool portalloc_in_range(const struct portalloc *pa, uint16_t port)
{
	return port >= pa->lo && (uint32_t)port - pa->lo < pa->n;
}

static bool owner_eq(const struct port_owner *a, const struct port_owner *b)
{
	return a->int_port == b->int_port && memcmp(&a->int_addr, &b->int_addr, 16) == 0 &&
	       memcmp(a->nonce, b->nonce, sizeof(a->nonce)) == 0;
}

/* Drops holds whose time is up (a hold lasts while now < until). */
static void holds_expire(struct portalloc *pa, uint32_t now)
{
	unsigned j = 0;
	for (unsigned i = 0; i < pa->nholds; i++) {
		struct port_hold *h = &pa->holds[i];
		if (h->until <= now) {
			bit_clr(held_bits(pa), h->port - pa->lo);
			continue;
		}
		if (j != i)
			pa->holds[j] = *h;
		j++;
	}
	pa->nholds = j;
}

static void hold_drop(struct portalloc *pa, unsigned i)
{
	bit_clr(held_bits(pa), pa->holds[i].port - pa->lo);
	pa->holds[i] = pa->holds[--pa->nholds];
}

static int hold_find_port(const struct portalloc *pa, uint16_t port)
{
	for (unsigned i = 0; i < pa->nholds; i++)
		if (pa->holds[i].port == port)
			return (int)i;
	return -1;
}

static void mark_used(struct portalloc *pa, uint32_t idx)
{
	bit_set(pa->bits, idx);
	pa->used++;
}

enum perr portalloc_take(struct portalloc *pa, uint16_t port, uint32_t now,
			 const struct port_owner *owner)
{
	if (!pa->bits || !portalloc_in_range(pa, port) || port_forbidden(pa->proto, port))
		return PERR_EXISTS;
	uint32_t idx = port - pa->lo;
	if (bit_get(pa->bits, idx))
		return PERR_EXISTS;
	holds_expire(pa, now);
	if (bit_get(held_bits(pa), idx)) {
		int h = hold_find_port(pa, port);
		if (h < 0 || !owner || !owner_eq(&pa->holds[h].owner, owner))
			return PERR_EXISTS;
		hold_drop(pa, (unsigned)h);
	}
	mark_used(pa, idx);
	return PERR_OK;
}

enum perr portalloc_any(struct portalloc *pa, uint32_t now, const struct port_owner *owner,
			uint16_t *port)
{
	if (!pa->bits)
		return PERR_PORTS_EXHAUSTED;
	holds_expire(pa, now);
	if (owner) {
		for (unsigned i = 0; i < pa->nholds; i++) {
			struct port_hold *h = &pa->holds[i];
			uint32_t idx = h->port - pa->lo;
			if (owner_eq(&h->owner, owner) && !bit_get(pa->bits, idx)) {
				*port = h->port;
				hold_drop(pa, i);
				mark_used(pa, idx);
				return PERR_OK;
			}
		}
	}

	/* Next-fit from the cursor, one word at a time; the start word is
	 * visited twice (upper bits first, lower bits after wrapping). */
	const uint64_t *held = held_bits(pa);
	uint32_t w = nwords(pa);
	uint32_t sw = pa->cursor / 64, sb = pa->cursor % 64;
	for (uint32_t k = 0; k <= w; k++) {
		uint32_t wi = (sw + k) % w;
		uint64_t avail = ~(pa->bits[wi] | held[wi]);
		if (k == 0)
			avail &= ~0ULL << sb;
		else if (k == w)
			avail &= sb ? ~(~0ULL << sb) : 0;
		if (!avail)
			continue;
		uint32_t idx = wi * 64 + (uint32_t)__builtin_ctzll(avail);
		mark_used(pa, idx);
		*port = (uint16_t)(pa->lo + idx);
		pa->cursor = (idx + 1) % pa->n;
		return PERR_OK;
	}
	return PERR_PORTS_EXHAUSTED;
}

void portalloc_release(struct portalloc *pa, uint16_t port, uint32_t now, uint32_t hold_down,
		       const struct port_owner *owner)
{
	if (!pa->bits || !portalloc_in_range(pa, port) || port_forbidden(pa->proto, port))
		return;
	uint32_t idx = port - pa->lo;
	if (!bit_get(pa->bits, idx))
		return;
	bit_clr(pa->bits, idx);
	pa->used--;
	if (!hold_down || !owner)
		return;
	holds_expire(pa, now);
	if (pa->nholds == pa->capholds) {
		unsigned ncap = pa->capholds ? pa->capholds * 2 : 8;
		struct port_hold *nh = realloc(pa->holds, ncap * sizeof(*nh));
		if (!nh)
			return;  /* out of memory: release without hold-down */
		pa->holds = nh;
		pa->capholds = ncap;
	}
	pa->holds[pa->nholds++] = (struct port_hold){
		.port = port,
		.until = now + hold_down < now ? UINT32_MAX : now + hold_down,
		.owner = *owner,
	};
	bit_set(held_bits(pa), idx);
}

unsigned portalloc_held(struct portalloc *pa, uint32_t now)
{
	holds_expire(pa, now);
	return pa->nholds;
}
