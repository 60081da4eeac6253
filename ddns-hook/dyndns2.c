/* dyndns2 provider: the address of a name, over HTTPS with Basic auth.
 * Ports, SRV and TXT cannot be expressed, and neither can a removal. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddns-hook/dyndns2.h"
#include "ddns-hook/http.h"

/* ---- answers ---- */

struct answer {
	const char *word;
	enum ddns_rclass cls;
	const char *text;
};

/* dnserr and 911: "retry the update no sooner than 30 minutes" (No-IP);
 * abuse, nohost, notfqdn and numhost concern the one name we sent. */
static const struct answer answers[] = {
	{ "good", DDNS_R_OK, "updated" },
	{ "nochg", DDNS_R_OK, "no change (repeated nochg answers can get a client blocked)" },
	{ "badauth", DDNS_R_PERM_PROVIDER, "user name or password refused" },
	{ "!donator", DDNS_R_PERM_PROVIDER, "needs a feature of a paid account" },
	{ "badagent", DDNS_R_PERM_PROVIDER, "user agent refused; set user_agent" },
	{ "notfqdn", DDNS_R_PERM_NAME, "not a fully-qualified domain name" },
	{ "nohost", DDNS_R_PERM_NAME, "host name not in this account" },
	{ "numhost", DDNS_R_PERM_NAME, "too many hosts, or a round-robin name" },
	{ "abuse", DDNS_R_PERM_NAME, "name blocked for abuse" },
	{ "dnserr", DDNS_R_WAIT, "provider DNS error; retrying in 30 minutes" },
	{ "911", DDNS_R_WAIT, "provider problem or maintenance; retrying in 30 minutes" },
};

static void first_word(const char *body, size_t len, char *w, size_t wlen)
{
	size_t i = 0, o = 0;

	while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
		i++;
	while (i < len && body[i] && body[i] != ' ' && body[i] != '\t' &&
	       body[i] != '\r' && body[i] != '\n' && o + 1 < wlen)
		w[o++] = body[i++];
	w[o] = '\0';
}

static const struct answer *answer_find(const char *word)
{
	for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++)
		if (!strcmp(answers[i].word, word))
			return &answers[i];
	return NULL;
}

/* No-IP's "wNNN", "wNNNs", "wNNNm", "wNNNh": wait that long. */
static bool wait_word(const char *w, uint32_t *secs)
{
	uint32_t n = 0, unit = 1;
	size_t i = 1;

	if (w[0] != 'w' || w[1] < '0' || w[1] > '9')
		return false;
	for (; w[i] >= '0' && w[i] <= '9'; i++)
		if ((n = n * 10 + (uint32_t)(w[i] - '0')) > 86400)
			n = 86400;
	if (w[i] == 'm' || w[i] == 'h') {
		unit = w[i] == 'm' ? 60 : 3600;
		i++;
	} else if (w[i] == 's') {
		i++;
	}
	if (w[i])
		return false;
	*secs = n * unit > 86400 ? 86400 : n * unit;
	return true;
}

static void set_answer(struct ddns_result *r, const struct answer *a, const char *line)
{
	r->cls = a->cls;
	r->retry_after = a->cls == DDNS_R_WAIT ? DYNDNS2_WAIT_SECS : 0;
	snprintf(r->code, sizeof(r->code), "%s", a->word);
	snprintf(r->msg, sizeof(r->msg), "%s: %s", line, a->text);
}

void dyndns2_classify(long http_status, uint32_t retry_after, const char *body, size_t len,
		      struct ddns_result *r)
{
	char word[32], line[96];
	const struct answer *a;
	uint32_t secs;

	memset(r, 0, sizeof(*r));
	first_word(body, len, word, sizeof(word));
	http_sanitize(line, sizeof(line), body, len);
	a = answer_find(word);
	if (http_status >= 200 && http_status < 300) {
		if (a) {
			set_answer(r, a, line);
		} else if (wait_word(word, &secs)) {
			r->cls = DDNS_R_WAIT;
			r->retry_after = secs;
			snprintf(r->code, sizeof(r->code), "wait");
			snprintf(r->msg, sizeof(r->msg), "%s: provider asks to wait %u s", line, secs);
		} else {
			r->cls = DDNS_R_TRANSIENT;
			snprintf(r->code, sizeof(r->code), "%s", word[0] ? "unknown" : "empty");
			snprintf(r->msg, sizeof(r->msg), "unexpected answer '%s'", line);
		}
		return;
	}
	/* an error word says more than the status carrying it */
	if (a && a->cls != DDNS_R_OK)
		set_answer(r, a, line);
	else
		http_classify_status(http_status, retry_after, body, len, r);
}

char *dyndns2_url(const char *base, const char *name, struct in_addr addr)
{
	char ip[INET_ADDRSTRLEN], *url = NULL;
	/* the handle argument is ignored since curl 7.82 */
	char *esc = curl_easy_escape(NULL, name, 0);

	if (!esc || !inet_ntop(AF_INET, &addr, ip, sizeof(ip)))
		goto out;
	if (asprintf(&url, "%s%chostname=%s&myip=%s", base, strchr(base, '?') ? '&' : '?',
		     esc, ip) < 0)
		url = NULL;
out:
	curl_free(esc);
	return url;
}

/* ---- provider ---- */

struct dd2 {
	struct http_client *http;
	char url[DDNS_URL_MAX];
	char user[256];
	char pass[256];
};

/* "user:password", both non-empty, printable: anything else is refused
 * rather than guessed at. */
static bool split_credentials(struct dd2 *p, const char *buf)
{
	const char *colon = strchr(buf, ':');

	for (const char *c = buf; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return false;
	if (!colon || colon == buf || !colon[1])
		return false;
	if ((size_t)(colon - buf) >= sizeof(p->user) || strlen(colon + 1) >= sizeof(p->pass))
		return false;
	memcpy(p->user, buf, (size_t)(colon - buf));
	p->user[colon - buf] = '\0';
	strcpy(p->pass, colon + 1);
	return true;
}

static bool read_credentials(struct dd2 *p, const char *path, char *err, size_t errlen)
{
	char buf[512];
	bool ok;

	if (!path[0]) {
		snprintf(err, errlen, "dyndns2 needs credentials_file (\"user:password\")");
		return false;
	}
	if (ddns_secret_read(path, buf, sizeof(buf), err, errlen) < 0)
		return false;
	ok = split_credentials(p, buf);
	explicit_bzero(buf, sizeof(buf));
	if (!ok)
		snprintf(err, errlen, "secret file %s: expected one line \"user:password\"", path);
	return ok;
}

static void dd2_close(void *pv);

static void *dd2_open(const struct ddns_provider_conf *c, struct ev_loop *loop, char *err, size_t errlen)
{
	struct dd2 *p;

	if (!http_url_ok(c->url)) {
		snprintf(err, errlen, "dyndns2 provider %s: url must be https:// (or http://)", c->name);
		return NULL;
	}
	if (!(p = calloc(1, sizeof(*p)))) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(p->url, sizeof(p->url), "%s", c->url);
	if (!read_credentials(p, c->credentials_file, err, errlen) ||
	    !(p->http = http_client_new(loop, c, err, errlen))) {
		dd2_close(p);
		return NULL;
	}
	return p;
}

static void dd2_send(void *pv, const struct ddns_update *u, ddns_done_fn done, void *arg)
{
	struct dd2 *p = pv;
	char *url;

	if (!u->has_addr) {
		http_result_later(p->http, DDNS_R_OK, "skipped", "dyndns2 cannot remove a name; left as it is",
				  done, arg);
		return;
	}
	if (!u->a) {
		http_result_later(p->http, DDNS_R_OK, "skipped",
				  "binding publishes no address; dyndns2 has nothing else", done, arg);
		return;
	}
	if (!(url = dyndns2_url(p->url, u->name, u->addr))) {
		http_result_later(p->http, DDNS_R_TRANSIENT, "internal", "out of memory", done, arg);
		return;
	}
	http_send(p->http, HTTP_GET, url, NULL, NULL, 0, p->user, p->pass, dyndns2_classify, done, arg);
	free(url);
}

static void dd2_close(void *pv)
{
	struct dd2 *p = pv;

	if (!p)
		return;
	http_client_free(p->http);       /* drops what is in flight: no callbacks after this */
	explicit_bzero(p->user, sizeof(p->user));
	explicit_bzero(p->pass, sizeof(p->pass));
	free(p);
}

const struct ddns_provider_ops ddns_dyndns2_ops = {
	.type = DDNS_DYNDNS2,
	.flags = DDNS_PF_ADDR_ONLY,
	.open = dd2_open,
	.send = dd2_send,
	.close = dd2_close,
};
