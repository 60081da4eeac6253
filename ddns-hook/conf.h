/* The hook's configuration: providers (where and how to publish) and
 * bindings (which names describe which mappings). Parsed by pcpd's config
 * loader, or added at run time (pcpctl ddns add), consumed here. Plain
 * values: a binding can be copied, compared and stored as it is. */
#ifndef DDNS_CONF_H
#define DDNS_CONF_H

#include <stdbool.h>
#include <stdint.h>

#include "common/addr.h"

#define DDNS_MAX_PROVIDERS 16
#define DDNS_MAX_SRV 8
#define DDNS_MAX_ARGS 8
#define DDNS_NAME_MAX 254           /* presentation form, no trailing dot */
#define DDNS_ID_MAX 64              /* provider / subscriber identifiers */
#define DDNS_PATH_MAX 256
#define DDNS_URL_MAX 512
#define DDNS_TXT_MAX 255

enum ddns_ptype { DDNS_RFC2136, DDNS_DYNDNS2, DDNS_WEBHOOK, DDNS_EXEC };

struct ddns_provider_conf {
	char name[DDNS_ID_MAX];
	enum ddns_ptype type;
	/* where: rfc2136 server (address) and zone; http url; exec program */
	struct in6_addr server;          /* IPv4 as mapped */
	uint16_t port;                   /* rfc2136: 53 */
	char zone[DDNS_NAME_MAX + 1];
	char key_name[DDNS_NAME_MAX + 1];
	char key_algorithm[16];          /* "hmac-sha256" | "hmac-sha512" */
	bool tcp;                        /* rfc2136: always TCP (default: UDP, TCP on TC) */
	char url[DDNS_URL_MAX];          /* dyndns2: base URL (…/nic/update); webhook: POST target */
	char ca_file[DDNS_PATH_MAX];     /* extra trust anchor ("" = system store) */
	char user_agent[128];
	char command[DDNS_PATH_MAX];     /* exec: absolute path, no shell */
	char args[DDNS_MAX_ARGS][128];
	unsigned nargs;
	/* secrets: files, mode must not allow group/other (checked at start) */
	char key_file[DDNS_PATH_MAX];    /* rfc2136: base64 TSIG secret */
	char credentials_file[DDNS_PATH_MAX]; /* dyndns2: "user:password"; webhook: bearer token */
	char hmac_key_file[DDNS_PATH_MAX];    /* webhook: HMAC-SHA256 key for X-PCPD-Signature */
	/* behaviour */
	uint32_t ttl;                    /* record TTL, seconds (default 60) */
	uint32_t timeout_ms;             /* per attempt (default 5000) */
	uint32_t rate_per_sec;           /* requests per second, 0 = unlimited */
	uint32_t rate_per_hour;          /* requests per hour, 0 = unlimited */
	uint32_t backoff_min_ms;         /* first retry after a transient error (default 1000) */
	uint32_t backoff_max_ms;         /* cap (default 300000) */
};

struct ddns_srv_conf {
	char service[64];                /* "_http._tcp": the owner's first two labels */
	uint8_t proto;                   /* 6 or 17, from the second label */
	uint16_t int_port;               /* internal port of the mapping it describes */
};

struct ddns_binding_conf {
	/* The published name. With a subscriber prefix it is a template:
	 * "{index}" and "{name}" are replaced per subscriber. */
	char name[DDNS_NAME_MAX + 1];
	char provider[DDNS_ID_MAX];
	char subscriber[DDNS_ID_MAX];    /* one subscriber by name, or "" */
	struct prefix b4;                /* or every subscriber whose B4 is in it (plen > 0) */
	bool a;                          /* publish the external address (default true) */
	struct ddns_srv_conf srv[DDNS_MAX_SRV];
	unsigned nsrv;
	char txt[DDNS_TXT_MAX + 1];      /* optional TXT ("" = none) */
	bool runtime;                    /* added by pcpctl: persisted in the state directory */
};

struct ddns_conf {
	bool enabled;
	uint32_t debounce_ms;            /* per name (default 1000) */
	uint32_t queue_size;             /* events (default 65536) */
	uint32_t startup_grace;          /* seconds before removals after a state loss (default 30) */
	struct ddns_provider_conf providers[DDNS_MAX_PROVIDERS];
	unsigned nproviders;
	struct ddns_binding_conf *bindings; /* owned by the config */
	unsigned nbindings;
};

const char *ddns_ptype_str(enum ddns_ptype t);
bool ddns_ptype_parse(const char *s, enum ddns_ptype *t);
/* Checks one binding on its own (name syntax, template use, SRV labels).
 * Returns NULL or a static message. */
const char *ddns_binding_check(const struct ddns_binding_conf *b);
/* "_http._tcp=80" -> srv; NULL or a static message. */
const char *ddns_srv_parse(const char *s, struct ddns_srv_conf *srv);
void ddns_conf_defaults(struct ddns_conf *c);
void ddns_provider_defaults(struct ddns_provider_conf *p);

#endif
