/* pcpd.conf: strict parse (libconfuse) into a fresh struct; any error
 * rejects the whole file with file:line; print normalised (-nv). */
#ifndef PCPD_CONFIG_H
#define PCPD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "aftr/aftr_config.h"
#include "common/addr.h"
#include "common/log.h"
#include "ddns-hook/conf.h"

#define PCPD_MAX_LISTEN 16

struct pcpd_config {
	/* server { } */
	struct in6_addr listen[PCPD_MAX_LISTEN];  /* IPv4 as mapped */
	unsigned nlisten;
	uint16_t port;                   /* 5351 */
	unsigned workers;                /* 0 = one per online core */
	bool enable_map;
	bool enable_peer;
	bool enable_natpmp;
	bool enable_third_party;
	uint32_t min_lifetime;           /* default 120 */
	uint32_t max_lifetime;           /* default 86400 */
	uint32_t max_filters;            /* FILTERs per mapping, >= 1 */
	char backend[16];                /* "nftables" or "memory" (tests) */
	char nft_table[33];              /* the nft table pcpd owns */
	bool keep_table;                 /* leave it in the kernel on exit (restart without loss) */
	char state_dir[256];
	enum log_target log_target;
	int log_level;                   /* syslog level */
	/* control { } */
	char ctl_socket[108];
	char ctl_monitor[108];
	char ctl_admin_group[33];        /* "" = root only */
	/* aftr { } */
	struct aftr_config aftr;
	/* ddns { } */
	struct ddns_conf ddns;
};

/* Parses path. On error returns NULL and has written "file:line: message"
 * lines to err (which may be NULL). Semantic checks (ranges, overlaps,
 * capacity) are errors too. */
struct pcpd_config *pcpd_config_load(const char *path, FILE *err);
/* Same, from a memory buffer; name is used in messages. For fuzzing/tests. */
struct pcpd_config *pcpd_config_load_buf(const char *buf, const char *name, FILE *err);
/* Writes the normalised form: every key, canonical values; parses again
 * to an equal config. */
void pcpd_config_print(const struct pcpd_config *c, FILE *out);
void pcpd_config_free(struct pcpd_config *c);

#endif
