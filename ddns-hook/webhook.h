/* JSON webhook: POST <url>, Content-Type application/json, one object per
 * update. Exported for tests.
 *
 * Body (compact JSON, keys in this order):
 *   {"event":"created"|"changed"|"deleted",
 *    "seq":<uint64, grows with every update, across restarts>,
 *    "subscriber":"<configured name or #index>",
 *    "name":"<FQDN, no trailing dot>",
 *    "address":"203.0.113.10" | null (nothing published any more),
 *    "ttl":<seconds>,
 *    "txt":"<text>" | null,
 *    "time":<unix seconds when sent>,
 *    "mappings":[{"service":"_http._tcp","protocol":"tcp"|"udp",
 *                 "internal_port":80,"port":1024,
 *                 "lifetime":<seconds left> | null (static)}, ...]}
 * Headers: "Authorization: Bearer <token>" when credentials_file is set;
 * "X-PCPD-Signature: sha256=<lowercase hex HMAC-SHA256(key, body)>" when
 * hmac_key_file is set (the key is the file's bytes, trailing whitespace
 * cut). A receiver should check the signature over the raw body and use
 * seq to drop replays and reordered deliveries. */
#ifndef DDNS_WEBHOOK_H
#define DDNS_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "ddns-hook/provider.h"

#define WEBHOOK_SIG_HEADER "X-PCPD-Signature"

/* The body above; malloc'd, NULL when out of memory. */
char *webhook_body(const struct ddns_update *u, int64_t now);

/* Lowercase hex HMAC-SHA256 of body under key into hex (65 bytes). */
void webhook_signature(const void *key, size_t keylen, const char *body, size_t len, char hex[65]);

/* 2xx OK; 408, 5xx TRANSIENT; 429 WAIT Retry-After (at most 3600 s) or
 * TRANSIENT without it; 401, 403 and 3xx PERM_PROVIDER; other 4xx
 * PERM_NAME. Code "http-<status>". */
void webhook_classify(long http_status, uint32_t retry_after, const char *body, size_t len,
		      struct ddns_result *r);

#endif
