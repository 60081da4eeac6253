/* Addresses travel as in6_addr; IPv4 as IPv4-mapped (::ffff:a.b.c.d). */
#ifndef PCP_COMMON_ADDR_H
#define PCP_COMMON_ADDR_H

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>

#define ADDR_STRLEN INET6_ADDRSTRLEN

struct prefix {
	struct in6_addr addr;  /* IPv4 prefixes as mapped, plen counted on 128 bits */
	uint8_t plen;
};

/* RFC 6887 §5: all 96 leading bits are checked, not only 81-96. */
bool addr_is_v4mapped(const struct in6_addr *a);
void addr_from_v4(struct in6_addr *a, uint32_t v4_host_order);
uint32_t addr_to_v4(const struct in6_addr *a);  /* host order */
bool addr_is_zero(const struct in6_addr *a);     /* :: or ::ffff:0.0.0.0 */
bool addr_equal(const struct in6_addr *a, const struct in6_addr *b);
/* Formats IPv4-mapped as dotted quad. buf must hold ADDR_STRLEN. */
const char *addr_str(const struct in6_addr *a, char *buf);
/* Parses "192.0.2.1" (as mapped) or "2001:db8::1". */
bool addr_parse(const char *s, struct in6_addr *a);
/* Parses "a/len" (v4 len 0..32 stored +96, v6 0..128); bare address = host prefix. */
bool prefix_parse(const char *s, struct prefix *p);
const char *prefix_str(const struct prefix *p, char *buf, size_t len);
void addr_mask(struct in6_addr *a, unsigned plen);
bool prefix_contains(const struct prefix *p, const struct in6_addr *a);
uint32_t addr_hash(const struct in6_addr *a, uint32_t seed);

#endif
