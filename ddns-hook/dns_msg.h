/* RFC 2136 UPDATE messages signed with TSIG (RFC 8945): build one request
 * that replaces everything published under a name, and judge the answer.
 * A pure codec over ldns: no sockets, no clocks except ldns's signing time
 * and the `now` the caller passes in. */
#ifndef DDNS_DNS_MSG_H
#define DDNS_DNS_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ddns-hook/conf.h"
#include "ddns-hook/provider.h"

#define DNS_UDP_MAX 512             /* larger requests go over TCP (RFC 1035 §4.2.1) */
#define DNS_TSIG_FUDGE 300          /* seconds, RFC 8945 §10 */
#define DNS_MAC_MAX 64              /* HMAC-SHA512 output */
#define DNS_SECRET_B64_MAX 512

struct dns_key {
	char name[DDNS_NAME_MAX + 2];        /* key name, presentation form */
	char algorithm[16];                  /* "hmac-sha256" or "hmac-sha512" */
	char secret_b64[DNS_SECRET_B64_MAX]; /* base64 secret, as in the key file */
};

/* Build results; the provider maps them to result classes. */
enum dns_err {
	DNS_OK = 0,
	DNS_E_NAME = -1,                 /* bad name, or name outside the zone: PERM_NAME */
	DNS_E_KEY = -2,                  /* key unusable: PERM_PROVIDER */
	DNS_E_NOMEM = -3,                /* allocation or encoding failure: TRANSIENT */
};

/* One signed request and what verifying its answer needs. The key is
 * referenced, not copied: it must outlive the request. */
struct dns_request {
	const struct dns_key *key;
	uint16_t id;
	uint8_t *wire;                   /* malloc'd; the whole signed message */
	size_t len;
	uint8_t mac[DNS_MAC_MAX];        /* request MAC, digested into the answer's MAC */
	uint16_t maclen;
	uint64_t time_signed;
};

enum dns_answer {
	DNS_ANS_IGNORE,                  /* not an answer to this request (id, QR, garbage): keep waiting */
	DNS_ANS_TRUNCATED,               /* TC set: send the request again over TCP */
	DNS_ANS_BOGUS,                   /* claims to answer but is not authenticated: res is
	                                  * TRANSIENT "BADSIG-REPLY"; over UDP keep waiting */
	DNS_ANS_FINAL,                   /* authenticated (or an allowed unsigned TSIG error): res */
};

/* Checks algorithm (sha256/sha512 only), key name syntax and the secret's
 * base64. err never quotes the secret. */
int dns_key_check(const struct dns_key *k, char *err, size_t errlen);

/* Checks a zone or owner name: letters, digits, '-', '_', '.', no empty
 * label, at most 253 characters. A trailing dot is accepted. */
bool dns_name_ok(const char *name);

/* Builds and signs the UPDATE for u in zone. On failure req is zeroed. */
int dns_update_build(const struct ddns_update *u, const char *zone, const struct dns_key *key,
		     struct dns_request *req, char *err, size_t errlen);

void dns_request_free(struct dns_request *req);

/* Judges one received message against req. now: our clock, for the
 * BADTIME skew figure. res is written for BOGUS and FINAL only. */
enum dns_answer dns_answer_classify(const struct dns_request *req, const uint8_t *wire, size_t len,
				    time_t now, struct ddns_result *res);

/* Mnemonics: RCODE 0-10 ("NOERROR".."NOTZONE") and TSIG errors 16-22
 * ("BADSIG".."BADTRUNC"); NULL for anything else. */
const char *dns_rcode_str(unsigned rcode);

#endif
