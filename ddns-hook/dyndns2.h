/* dyndns2 ("Dyn remote access API"): GET <url>?hostname=&myip= with Basic
 * auth; the answer is one word per host. Exported for tests. */
#ifndef DDNS_DYNDNS2_H
#define DDNS_DYNDNS2_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "ddns-hook/provider.h"

#define DYNDNS2_WAIT_SECS 1800           /* "retry no sooner than 30 minutes" */

/* Classifies one answer that arrived (transport errors are classified
 * by http_classify_transport). On 2xx the first word of the body decides:
 *   good, nochg                    OK (code "good" / "nochg")
 *   badauth, !donator, badagent    PERM_PROVIDER
 *   notfqdn, nohost, numhost, abuse PERM_NAME
 *   911, dnserr                    WAIT 1800 s
 *   wNNN[s|m|h]                    WAIT that long (No-IP), at most a day
 *   empty or anything else         TRANSIENT ("empty" / "unknown", the
 *                                  word quoted, printable only, in msg)
 * Otherwise a known error word in the body still decides; failing that
 * the status does (http_classify_status: 401/403 and 3xx PERM_PROVIDER,
 * 408/5xx TRANSIENT, 429 WAIT retry_after or TRANSIENT, other 4xx
 * PERM_NAME). */
void dyndns2_classify(long http_status, uint32_t retry_after, const char *body, size_t len,
		      struct ddns_result *r);

/* "<base>?hostname=<name, URL-escaped>&myip=<addr>" ('&' instead of '?'
 * when base has a query already). malloc'd; NULL when out of memory. */
char *dyndns2_url(const char *base, const char *name, struct in_addr addr);

#endif
