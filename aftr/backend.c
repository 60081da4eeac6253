/* Run-time choice of the kernel backend by its configured name, and the
 * conntrack mark id shared by every backend. */
#include <string.h>

#include "aftr/backend.h"
#include "common/addr.h"

static const struct kbackend_ops *const backends[] = {
	&kbackend_mem_ops,
	&kbackend_nft_ops,
};

const struct kbackend_ops *kbackend_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (strcmp(backends[i]->name, name) == 0)
			return backends[i];
	return NULL;
}

uint32_t kmark_id(const struct kbackend_conf *conf, const struct in6_addr *ext_addr,
		  uint8_t proto, uint16_t ext_port)
{
	const struct aftr_config *c = conf->aftr;
	uint32_t a = addr_to_v4(ext_addr), ord = 0;
	for (unsigned i = 0; c && i < c->npool; i++) {
		const struct aftr_pool_range *r = &c->pool[i];
		if (a >= r->first && a <= r->last) {
			ord += a - r->first;
			if (ord >= KMARK_MAX_POOL)
				return 0;
			return (ord + 1) << 17 | (proto == IPPROTO_UDP ? 1u << 16 : 0) | ext_port;
		}
		ord += r->last - r->first + 1;
	}
	return 0;
}

bool kmark_decode(const struct kbackend_conf *conf, uint32_t mark, struct in6_addr *ext_addr,
		  uint8_t *proto, uint16_t *ext_port)
{
	const struct aftr_config *c = conf->aftr;
	uint32_t ord = mark >> 17;
	if (!c || (mark & 0x80000000u) || ord == 0)
		return false;
	ord--;
	for (unsigned i = 0; i < c->npool; i++) {
		const struct aftr_pool_range *r = &c->pool[i];
		uint32_t n = r->last - r->first + 1;
		if (ord < n) {
			addr_from_v4(ext_addr, r->first + ord);
			*proto = (mark >> 16) & 1 ? IPPROTO_UDP : IPPROTO_TCP;
			*ext_port = (uint16_t)(mark & 0xffff);
			return true;
		}
		ord -= n;
	}
	return false;
}
