/* Derived sizes of the AFTR configuration (64-bit arithmetic: a /8 pool
 * times a small block size overflows 32 bits). */
#include "aftr/aftr_config.h"

uint32_t aftr_pool_size(const struct aftr_config *c)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < c->npool && i < AFTR_MAX_POOL; i++)
		if (c->pool[i].last >= c->pool[i].first)
			n += (uint64_t)c->pool[i].last - c->pool[i].first + 1;
	return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

uint32_t aftr_capacity(const struct aftr_config *c)
{
	if (!c->ports_per_subscriber)
		return 0;
	uint64_t blocks = (65536u - c->port_min) / c->ports_per_subscriber;
	uint64_t n = (uint64_t)aftr_pool_size(c) * blocks;
	return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

uint64_t aftr_b4_range_size(const struct aftr_config *c, unsigned k)
{
	if (k >= c->nb4 || k >= AFTR_MAX_B4_PREFIXES)
		return 0;
	unsigned plen = c->b4_prefixes[k].plen;
	if (plen > c->subscriber_plen)
		return 0;
	unsigned bits = c->subscriber_plen - plen;
	return bits >= 32 ? (uint64_t)1 << 32 : (uint64_t)1 << bits;
}

uint64_t aftr_b4_range_base(const struct aftr_config *c, unsigned k)
{
	uint64_t base = 0;
	for (unsigned i = 0; i < k; i++)
		base += aftr_b4_range_size(c, i);
	return base;
}
