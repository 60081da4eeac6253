#include "common/addr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

bool addr_is_v4mapped(const struct in6_addr *a)
{
	return memcmp(a->s6_addr, v4mapped_prefix, 12) == 0;
}

void addr_from_v4(struct in6_addr *a, uint32_t v4)
{
	memcpy(a->s6_addr, v4mapped_prefix, 12);
	a->s6_addr[12] = (uint8_t)(v4 >> 24);
	a->s6_addr[13] = (uint8_t)(v4 >> 16);
	a->s6_addr[14] = (uint8_t)(v4 >> 8);
	a->s6_addr[15] = (uint8_t)v4;
}

uint32_t addr_to_v4(const struct in6_addr *a)
{
	return (uint32_t)a->s6_addr[12] << 24 | (uint32_t)a->s6_addr[13] << 16 |
	       (uint32_t)a->s6_addr[14] << 8 | a->s6_addr[15];
}

bool addr_is_zero(const struct in6_addr *a)
{
	static const struct in6_addr zero;
	if (memcmp(a, &zero, sizeof(zero)) == 0)
		return true;
	return addr_is_v4mapped(a) && addr_to_v4(a) == 0;
}

bool addr_equal(const struct in6_addr *a, const struct in6_addr *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

const char *addr_str(const struct in6_addr *a, char *buf)
{
	if (addr_is_v4mapped(a))
		inet_ntop(AF_INET, &a->s6_addr[12], buf, ADDR_STRLEN);
	else
		inet_ntop(AF_INET6, a, buf, ADDR_STRLEN);
	return buf;
}

bool addr_parse(const char *s, struct in6_addr *a)
{
	struct in_addr v4;
	if (inet_pton(AF_INET, s, &v4) == 1) {
		addr_from_v4(a, ntohl(v4.s_addr));
		return true;
	}
	return inet_pton(AF_INET6, s, a) == 1;
}

void addr_mask(struct in6_addr *a, unsigned plen)
{
	for (unsigned i = 0; i < 16; i++) {
		unsigned bits = plen > i * 8 ? plen - i * 8 : 0;
		if (bits >= 8)
			continue;
		a->s6_addr[i] &= (uint8_t)(0xff00 >> bits);
	}
}

bool prefix_parse(const char *s, struct prefix *p)
{
	char tmp[ADDR_STRLEN + 8];
	size_t n = strlen(s);
	if (n >= sizeof(tmp))
		return false;
	memcpy(tmp, s, n + 1);
	char *slash = strchr(tmp, '/');
	long len = -1;
	if (slash) {
		char *end;
		*slash = '\0';
		if (!slash[1])
			return false;
		len = strtol(slash + 1, &end, 10);
		if (*end || len < 0)
			return false;
	}
	if (!addr_parse(tmp, &p->addr))
		return false;
	bool v4 = strchr(tmp, ':') == NULL;
	if (len < 0)
		len = v4 ? 32 : 128;
	if (len > (v4 ? 32 : 128))
		return false;
	p->plen = (uint8_t)(v4 ? len + 96 : len);
	addr_mask(&p->addr, p->plen);
	return true;
}

const char *prefix_str(const struct prefix *p, char *buf, size_t len)
{
	char a[ADDR_STRLEN];
	bool v4 = addr_is_v4mapped(&p->addr) && p->plen >= 96;
	snprintf(buf, len, "%s/%u", addr_str(&p->addr, a), v4 ? p->plen - 96u : p->plen);
	return buf;
}

bool prefix_contains(const struct prefix *p, const struct in6_addr *a)
{
	struct in6_addr m = *a;
	addr_mask(&m, p->plen);
	return addr_equal(&m, &p->addr);
}

uint32_t addr_hash(const struct in6_addr *a, uint32_t seed)
{
	/* FNV-1a over the 16 octets, seeded: cheap and good enough for lfht buckets */
	uint32_t h = 2166136261u ^ seed;
	for (int i = 0; i < 16; i++) {
		h ^= a->s6_addr[i];
		h *= 16777619u;
	}
	return h;
}
