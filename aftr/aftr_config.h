/* The AFTR side of the configuration: public pool, port blocks, B4
 * prefixes, explicit subscribers. Parsed by pcpd/config.c, consumed by
 * aftr/ (which never includes pcpd headers). Plain values, no pointers
 * except the subscriber array. */
#ifndef AFTR_CONFIG_H
#define AFTR_CONFIG_H

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/addr.h"

#define AFTR_MAX_POOL 64
#define AFTR_MAX_B4_PREFIXES 64
#define AFTR_MAX_INTERNAL 32
#define AFTR_SUB_NAME_MAX 64

struct aftr_pool_range {
	uint32_t first;   /* IPv4, host order, inclusive */
	uint32_t last;
};

struct aftr_sub_conf {
	char name[AFTR_SUB_NAME_MAX];    /* section title */
	struct prefix b4;                /* B4 IPv6 address or prefix (plain mode) */
	bool has_b4;
	char ifname[IF_NAMESIZE];        /* softwire interface (encapsulated mode) */
	uint32_t index;                  /* deterministic allocation index (RFC 7422) */
};

struct aftr_config {
	struct aftr_pool_range pool[AFTR_MAX_POOL];
	unsigned npool;
	uint16_t port_min;               /* first port of block 0; >= 1024 */
	uint16_t ports_per_subscriber;   /* block size */
	uint16_t pcp_ports;              /* first pcp_ports of each block are for PCP */
	uint8_t subscriber_plen;         /* B4 address mask (RFC 8513 subscriber-mask-v6) */
	struct prefix b4_prefixes[AFTR_MAX_B4_PREFIXES];
	unsigned nb4;
	struct prefix internal[AFTR_MAX_INTERNAL];  /* THIRD_PARTY/encapsulated source ranges */
	unsigned ninternal;
	uint32_t max_mappings;           /* per-subscriber quota (USER_EX_QUOTA) */
	uint32_t rate_limit;             /* requests per second per subscriber, 0 = off */
	uint32_t rate_burst;
	uint32_t hold_down;              /* seconds a released port is held (RFC 6888 REQ-8) */
	struct aftr_sub_conf *subs;      /* owned by the config */
	unsigned nsubs;
};

/* Number of public addresses in the pool and subscriber capacity. */
uint32_t aftr_pool_size(const struct aftr_config *c);
uint32_t aftr_capacity(const struct aftr_config *c);
/* Start of the index range of B4 prefix k and its size (2^(plen_sub - plen)). */
uint64_t aftr_b4_range_base(const struct aftr_config *c, unsigned k);
uint64_t aftr_b4_range_size(const struct aftr_config *c, unsigned k);

#endif
