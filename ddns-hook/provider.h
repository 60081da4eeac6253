/* A provider publishes one name's desired state somewhere (a DNS server,
 * an HTTP API, a program). The hook owns scheduling: debounce, one request
 * in flight per name, rate limits, backoff. A provider only sends and
 * classifies the answer.
 *
 * Every provider runs on the hook's libev loop and must never block it:
 * sockets are non-blocking and watched by ev_io, programs by a pidfd. */
#ifndef DDNS_PROVIDER_H
#define DDNS_PROVIDER_H

#include <ev.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "ddns-hook/conf.h"

enum ddns_event_kind { DDNS_CREATED, DDNS_CHANGED, DDNS_DELETED };

/* One record set to publish under a name. All fields are values: the
 * provider may keep nothing past send() except what it copies. */
struct ddns_srv_rec {
	const struct ddns_srv_conf *conf;  /* service label, protocol, internal port */
	uint16_t port;                   /* external port */
	uint32_t lifetime;               /* seconds the mapping had left when seen; UINT32_MAX static */
};

#define DDNS_MAX_SRV_RECS 32

struct ddns_update {
	const char *name;                /* FQDN, no trailing dot */
	const char *subscriber;          /* configured name, or "#<index>" */
	uint32_t sub_index;
	enum ddns_event_kind event;
	uint64_t seq;                    /* increases with every update sent, across restarts */
	bool has_addr;                   /* false: remove everything published under name */
	struct in_addr addr;             /* external IPv4 */
	const struct ddns_srv_conf *services; /* every configured service of the binding */
	unsigned nservices;
	struct ddns_srv_rec srv[DDNS_MAX_SRV_RECS]; /* current mappings (several per service possible) */
	unsigned nsrv;
	bool a;                          /* the name's A records are ours (publish or remove) */
	const char *txt;                 /* NULL: TXT is not ours; "": remove ours; else publish */
	uint32_t ttl;
};

enum ddns_rclass {
	DDNS_R_OK,                       /* accepted (including "no change") */
	DDNS_R_TRANSIENT,                /* retry with backoff */
	DDNS_R_WAIT,                     /* retry after retry_after seconds (dyndns2 911) */
	DDNS_R_PERM_NAME,                /* this name stops until reset or changed */
	DDNS_R_PERM_PROVIDER,            /* the whole provider stops until reset */
};

struct ddns_result {
	enum ddns_rclass cls;
	uint32_t retry_after;            /* seconds, for DDNS_R_WAIT */
	char code[32];                   /* short machine word: "NOERROR", "BADKEY", "good", "http-503", "exit-3", "timeout" */
	char msg[192];                   /* human text; never contains a secret */
};

typedef void (*ddns_done_fn)(void *arg, const struct ddns_result *r);

#define DDNS_PF_ADDR_ONLY 1u           /* publishes the address only (dyndns2): ports never trigger it */

struct ddns_provider_ops {
	enum ddns_ptype type;
	unsigned flags;                  /* DDNS_PF_* */
	/* Reads secrets (ddns_secret_read), prepares. Returns NULL and writes
	 * err on failure: the daemon refuses to start. */
	void *(*open)(const struct ddns_provider_conf *c, struct ev_loop *loop, char *err, size_t errlen);
	/* Starts one attempt. done() is called exactly once, from the loop,
	 * never from inside send(). u is valid only during the call. */
	void (*send)(void *p, const struct ddns_update *u, ddns_done_fn done, void *arg);
	/* Aborts everything in flight (no done() calls afterwards), frees. */
	void (*close)(void *p);
};

extern const struct ddns_provider_ops ddns_rfc2136_ops;
extern const struct ddns_provider_ops ddns_dyndns2_ops;
extern const struct ddns_provider_ops ddns_webhook_ops;
extern const struct ddns_provider_ops ddns_exec_ops;

const struct ddns_provider_ops *ddns_provider_ops(enum ddns_ptype t);

/* Reads a secret file into buf (NUL-terminated, trailing whitespace cut).
 * Refuses files that group or others may read or write, non-regular
 * files and empty ones. Returns length, or -1 with err written (the
 * message names the file, never its content). */
int ddns_secret_read(const char *path, char *buf, size_t len, char *err, size_t errlen);

#endif
