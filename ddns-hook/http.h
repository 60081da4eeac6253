/* A small HTTP(S) client for the DDNS providers: one libcurl multi handle
 * per provider, driven by the hook's libev loop, never blocking it.
 *
 * Every request is TLS-verified (peer and host, no switch to turn that
 * off), follows no redirects, speaks http or https only, ignores proxy
 * environment variables and gives up after the provider's timeout_ms.
 * Nothing here logs a header, a password or a body. */
#ifndef DDNS_HTTP_H
#define DDNS_HTTP_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ddns-hook/conf.h"
#include "ddns-hook/provider.h"

#define HTTP_BODY_MAX (64 * 1024)       /* larger answers fail the request */

enum http_method { HTTP_GET, HTTP_POST };

struct http_response {
	long status;                     /* HTTP status; 0 when none arrived */
	const char *body;                /* NUL-terminated; "" when empty */
	size_t body_len;
	uint32_t retry_after;            /* Retry-After in seconds, 0 = absent */
	int curl_code;                   /* CURLcode; 0 = an answer arrived */
	bool too_large;                  /* the body passed HTTP_BODY_MAX */
	const char *error;               /* curl's text for curl_code, "" if 0 */
};

/* Called exactly once per request, from the loop, never from inside
 * http_request(). resp is valid only during the call. The callback may
 * start requests, cancel others or free the client. */
typedef void (*http_done_fn)(void *arg, const struct http_response *resp);

struct http_client;
struct http_req;

/* Takes ca_file (must be readable; it adds to the system store, curl's
 * CA path), user_agent ("" = "pcpd/<version>") and timeout_ms (0 = 5000)
 * from c, copied. Returns NULL with err written on failure. */
struct http_client *http_client_new(struct ev_loop *loop, const struct ddns_provider_conf *c,
				    char *err, size_t errlen);

/* Starts one request. headers: NULL-terminated "Name: value" list or
 * NULL. body (POST only) is copied. user/password: Basic auth, or NULL.
 * Everything is copied: the caller may free its strings on return.
 * Failures to set up are reported through done() as well, so the result
 * is never NULL (out of memory for the request itself aborts: the
 * exactly-once promise could not be kept otherwise). The handle is
 * valid until done() is called or the request is cancelled. */
struct http_req *http_request(struct http_client *cl, enum http_method m, const char *url,
			      const char *const *headers, const char *body, size_t body_len,
			      const char *user, const char *password,
			      http_done_fn done, void *arg);

/* Calls done() from the loop with an empty response (status 0,
 * curl_code 0) and sends nothing: lets a provider answer without a request
 * yet never from inside its send(). Cancelled like any request. */
struct http_req *http_later(struct http_client *cl, http_done_fn done, void *arg);

/* Provider level: the outcome arrives as one ddns_result, transport
 * failures classified by http_classify_transport(), answers by classify.
 * The client owns the request state: http_client_free() drops whatever
 * is in flight (no done() afterwards) and the provider keeps no list. */
typedef void (*http_classify_fn)(long status, uint32_t retry_after, const char *body, size_t len,
				 struct ddns_result *r);
void http_send(struct http_client *cl, enum http_method m, const char *url, const char *const *headers,
	       const char *body, size_t body_len, const char *user, const char *password,
	       http_classify_fn classify, ddns_done_fn done, void *arg);
/* done() from the loop with a result decided without a request. */
void http_result_later(struct http_client *cl, enum ddns_rclass cls, const char *code, const char *msg,
		       ddns_done_fn done, void *arg);

/* Drops one request (or all): their done() is never called. */
void http_cancel(struct http_client *cl, struct http_req *rq);
void http_cancel_all(struct http_client *cl);

/* Cancels everything and frees. NULL is fine. */
void http_client_free(struct http_client *cl);

/* When the transfer failed before an answer (curl_code != 0), fills r and
 * returns true: timeouts, refused connections and resets are transient;
 * a certificate that does not verify and a bad URL are configuration
 * problems, so the provider stops (DDNS_R_PERM_PROVIDER). */
bool http_classify_transport(const struct http_response *resp, struct ddns_result *r);

/* Classifies an HTTP answer by its status alone: 2xx OK; 3xx (redirects
 * are not followed), 401 and 403 stop the provider; 408 and 5xx are
 * transient; 429 waits Retry-After (capped at one hour) or is transient
 * without it; any other 4xx stops the name. msg quotes the body's first
 * line. */
void http_classify_status(long status, uint32_t retry_after, const char *body, size_t len,
			  struct ddns_result *r);

/* An http:// or https:// URL (curl refuses every other scheme anyway;
 * this lets open() say so before the daemon starts). */
bool http_url_ok(const char *url);

/* Copies at most n bytes of s into dst (size dstlen): leading blanks cut,
 * printable ASCII only (others become '?'), stopping at the first line
 * end. Safe for result messages. */
void http_sanitize(char *dst, size_t dstlen, const char *s, size_t n);

#endif
