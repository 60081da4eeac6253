/* Webhook provider: the whole update as one JSON object, POSTed over
 * HTTPS, optionally with a bearer token and an HMAC signature. The body is
 * built with json-c so that names and TXT are always escaped. */
#include <arpa/inet.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ddns-hook/http.h"
#include "ddns-hook/webhook.h"

/* ---- body ---- */

static const char *event_str(enum ddns_event_kind e)
{
	switch (e) {
	case DDNS_CREATED:
		return "created";
	case DDNS_CHANGED:
		return "changed";
	case DDNS_DELETED:
		return "deleted";
	}
	return "changed";
}

/* json-c's string constructor must not see NULL: that is JSON null. */
static json_object *str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static json_object *mapping_json(const struct ddns_srv_rec *m)
{
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	json_object_object_add(o, "service", json_object_new_string(m->conf->service));
	if (m->conf->proto == IPPROTO_TCP || m->conf->proto == IPPROTO_UDP)
		json_object_object_add(o, "protocol",
				       json_object_new_string(m->conf->proto == IPPROTO_TCP ? "tcp" : "udp"));
	else
		json_object_object_add(o, "protocol", json_object_new_int(m->conf->proto));
	json_object_object_add(o, "internal_port", json_object_new_int(m->conf->int_port));
	json_object_object_add(o, "port", json_object_new_int(m->port));
	json_object_object_add(o, "lifetime",
			       m->lifetime == UINT32_MAX ? NULL : json_object_new_int64(m->lifetime));
	return o;
}

static json_object *mappings_json(const struct ddns_update *u)
{
	json_object *a = json_object_new_array();

	for (unsigned i = 0; a && i < u->nsrv && i < DDNS_MAX_SRV_RECS; i++)
		if (u->srv[i].conf)
			json_object_array_add(a, mapping_json(&u->srv[i]));
	return a;
}

static json_object *address_json(const struct ddns_update *u)
{
	char ip[INET_ADDRSTRLEN];

	if (!u->has_addr || !inet_ntop(AF_INET, &u->addr, ip, sizeof(ip)))
		return NULL;
	return json_object_new_string(ip);
}

char *webhook_body(const struct ddns_update *u, int64_t now)
{
	json_object *o = json_object_new_object();
	char *out = NULL;

	if (!o)
		return NULL;
	json_object_object_add(o, "event", json_object_new_string(event_str(u->event)));
	json_object_object_add(o, "seq", json_object_new_uint64(u->seq));
	json_object_object_add(o, "subscriber", str_or_null(u->subscriber));
	json_object_object_add(o, "name", str_or_null(u->name));
	json_object_object_add(o, "address", address_json(u));
	json_object_object_add(o, "ttl", json_object_new_int64(u->ttl));
	json_object_object_add(o, "txt", str_or_null(u->txt && u->txt[0] ? u->txt : NULL));
	json_object_object_add(o, "time", json_object_new_int64(now));
	json_object_object_add(o, "mappings", mappings_json(u));
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
						       JSON_C_TO_STRING_NOSLASHESCAPE);
	if (s)
		out = strdup(s);
	json_object_put(o);
	return out;
}

void webhook_signature(const void *key, size_t keylen, const char *body, size_t len, char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)body, len, md, &mdlen))
		mdlen = 0;
	for (unsigned i = 0; i < mdlen && i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	hex[mdlen ? 64 : 0] = '\0';
}

void webhook_classify(long http_status, uint32_t retry_after, const char *body, size_t len,
		      struct ddns_result *r)
{
	memset(r, 0, sizeof(*r));
	http_classify_status(http_status, retry_after, body, len, r);
}

/* ---- provider ---- */

struct wh {
	struct http_client *http;
	char url[DDNS_URL_MAX];
	char auth[600];                  /* "Authorization: Bearer …" or "" */
	unsigned char key[512];
	size_t keylen;                   /* 0 = no signature */
};

/* RFC 6750 token68 characters only: the token goes into a header line. */
static bool token_ok(const char *t)
{
	for (; *t; t++)
		if (!(*t >= 'A' && *t <= 'Z') && !(*t >= 'a' && *t <= 'z') &&
		    !(*t >= '0' && *t <= '9') && !strchr("-._~+/=", *t))
			return false;
	return true;
}

static bool read_token(struct wh *p, const char *path, char *err, size_t errlen)
{
	char tok[512];
	bool ok;

	if (ddns_secret_read(path, tok, sizeof(tok), err, errlen) < 0)
		return false;
	ok = token_ok(tok);
	if (ok)
		snprintf(p->auth, sizeof(p->auth), "Authorization: Bearer %s", tok);
	else
		snprintf(err, errlen, "secret file %s: a bearer token is one word of "
			 "letters, digits and -._~+/=", path);
	explicit_bzero(tok, sizeof(tok));
	return ok;
}

static bool read_key(struct wh *p, const char *path, char *err, size_t errlen)
{
	char buf[sizeof(p->key) + 1];
	int n = ddns_secret_read(path, buf, sizeof(buf), err, errlen);

	if (n < 0)
		return false;
	memcpy(p->key, buf, (size_t)n);
	p->keylen = (size_t)n;
	explicit_bzero(buf, sizeof(buf));
	return true;
}

static void wh_close(void *pv);

static void *wh_open(const struct ddns_provider_conf *c, struct ev_loop *loop, char *err, size_t errlen)
{
	struct wh *p;

	if (!http_url_ok(c->url)) {
		snprintf(err, errlen, "webhook provider %s: url must be https:// (or http://)", c->name);
		return NULL;
	}
	if (!(p = calloc(1, sizeof(*p)))) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(p->url, sizeof(p->url), "%s", c->url);
	if ((c->credentials_file[0] && !read_token(p, c->credentials_file, err, errlen)) ||
	    (c->hmac_key_file[0] && !read_key(p, c->hmac_key_file, err, errlen)) ||
	    !(p->http = http_client_new(loop, c, err, errlen))) {
		wh_close(p);
		return NULL;
	}
	return p;
}

static void wh_send(void *pv, const struct ddns_update *u, ddns_done_fn done, void *arg)
{
	struct wh *p = pv;
	char *body = webhook_body(u, (int64_t)time(NULL));
	char sig[sizeof(WEBHOOK_SIG_HEADER) + 8 + 65], hex[65];
	const char *hdrs[4];
	unsigned n = 0;

	if (!body) {
		http_result_later(p->http, DDNS_R_TRANSIENT, "internal", "out of memory", done, arg);
		return;
	}
	hdrs[n++] = "Content-Type: application/json";
	if (p->auth[0])
		hdrs[n++] = p->auth;
	if (p->keylen) {
		webhook_signature(p->key, p->keylen, body, strlen(body), hex);
		snprintf(sig, sizeof(sig), WEBHOOK_SIG_HEADER ": sha256=%s", hex);
		hdrs[n++] = sig;
	}
	hdrs[n] = NULL;
	http_send(p->http, HTTP_POST, p->url, hdrs, body, strlen(body), NULL, NULL, webhook_classify, done, arg);
	free(body);
}

static void wh_close(void *pv)
{
	struct wh *p = pv;

	if (!p)
		return;
	http_client_free(p->http);       /* drops what is in flight: no callbacks after this */
	explicit_bzero(p->auth, sizeof(p->auth));
	explicit_bzero(p->key, sizeof(p->key));
	free(p);
}

const struct ddns_provider_ops ddns_webhook_ops = {
	.type = DDNS_WEBHOOK,
	.flags = 0,
	.open = wh_open,
	.send = wh_send,
	.close = wh_close,
};
