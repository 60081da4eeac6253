/* HTTP client over one libcurl multi handle driven by libev (the
 * "multi socket" pattern of curl's evhiperfifo.c, with its pitfalls
 * avoided: fractional timeouts, no curl call from inside curl's own
 * callbacks, completion found by curl_multi_info_read only). */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ddns-hook/http.h"

struct http_sock {
	ev_io io;
	struct http_client *cl;
	curl_socket_t fd;
	struct http_sock *next, **pprev;
};

struct http_req {
	struct http_client *cl;
	CURL *easy;
	struct curl_slist *hdrs;
	bool in_multi;
	CURLcode setup_err;              /* reported from fail_w when set */
	ev_timer fail_w;
	http_done_fn done;
	void *arg;
	/* http_send / http_result_later: the outcome as a ddns_result */
	http_classify_fn classify;
	ddns_done_fn rdone;
	void *rarg;
	bool preset;                     /* res decided without a request */
	struct ddns_result res;
	char *buf;
	size_t len, cap;
	bool too_large;
	char errbuf[CURL_ERROR_SIZE];
	struct http_req *next, **pprev;
};

struct http_client {
	struct ev_loop *loop;
	CURLM *multi;
	ev_timer timer;                  /* curl's one timeout */
	struct http_req *reqs;
	struct http_sock *socks;
	unsigned busy;                   /* depth of done() calls under way */
	bool dead;                       /* freed from inside a done() */
	long timeout_ms;
	char ca_file[DDNS_PATH_MAX];
	char user_agent[160];
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- lists ---- */

static void req_link(struct http_client *cl, struct http_req *rq)
{
	rq->next = cl->reqs;
	if (rq->next)
		rq->next->pprev = &rq->next;
	rq->pprev = &cl->reqs;
	cl->reqs = rq;
}

static void req_unlink(struct http_req *rq)
{
	if (!rq->pprev)
		return;
	*rq->pprev = rq->next;
	if (rq->next)
		rq->next->pprev = rq->pprev;
	rq->next = NULL;
	rq->pprev = NULL;
}

/* Takes the request out of curl and the loop; frees it. */
static void req_destroy(struct http_req *rq)
{
	struct http_client *cl = rq->cl;

	req_unlink(rq);
	ev_timer_stop(cl->loop, &rq->fail_w);
	if (rq->in_multi)
		curl_multi_remove_handle(cl->multi, rq->easy);
	curl_easy_cleanup(rq->easy);
	curl_slist_free_all(rq->hdrs);
	free(rq->buf);
	free(rq);
}

static void client_destroy(struct http_client *cl)
{
	http_cancel_all(cl);
	/* curl may still report sockets as removed while cleaning up */
	curl_multi_cleanup(cl->multi);
	while (cl->socks) {
		struct http_sock *s = cl->socks;
		ev_io_stop(cl->loop, &s->io);
		cl->socks = s->next;
		free(s);
	}
	ev_timer_stop(cl->loop, &cl->timer);
	free(cl);
}

/* ---- completion ---- */

static void req_complete(struct http_req *rq, CURLcode res)
{
	struct http_client *cl = rq->cl;
	struct http_response resp = { .curl_code = res, .too_large = rq->too_large };
	curl_off_t ra = 0;

	if (rq->easy) {
		curl_easy_getinfo(rq->easy, CURLINFO_RESPONSE_CODE, &resp.status);
		if (curl_easy_getinfo(rq->easy, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
			resp.retry_after = ra > UINT32_MAX ? UINT32_MAX : (uint32_t)ra;
	}
	resp.body = rq->buf ? rq->buf : "";
	resp.body_len = rq->len;
	if (rq->too_large)
		resp.error = "answer larger than 64 KiB";
	else if (res != CURLE_OK)
		resp.error = rq->errbuf[0] ? rq->errbuf : curl_easy_strerror(res);
	else
		resp.error = "";

	/* out of the list first: done() may cancel everything or free cl */
	req_unlink(rq);
	if (rq->in_multi) {
		curl_multi_remove_handle(cl->multi, rq->easy);
		rq->in_multi = false;
	}
	cl->busy++;
	rq->done(rq->arg, &resp);
	cl->busy--;
	req_destroy(rq);
}

/* Ends a callback from the loop: a free() asked for meanwhile happens now. */
static void client_settle(struct http_client *cl)
{
	if (cl->dead && !cl->busy)
		client_destroy(cl);
}

static void drain(struct http_client *cl)
{
	CURLMsg *m;
	int left;

	while (!cl->dead && (m = curl_multi_info_read(cl->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		char *priv = NULL;
		CURLcode res = m->data.result;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
		if (priv)
			req_complete((struct http_req *)priv, res);
	}
}

/* ---- libev side ---- */

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct http_client *cl = w->data;
	int running;

	(void)loop;
	(void)revents;
	cl->busy++;
	curl_multi_socket_action(cl->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	drain(cl);
	cl->busy--;
	client_settle(cl);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct http_sock *s = w->data;
	struct http_client *cl = s->cl;
	int action = 0, running;

	(void)loop;
	if (revents & EV_READ)
		action |= CURL_CSELECT_IN;
	if (revents & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	cl->busy++;
	curl_multi_socket_action(cl->multi, s->fd, action, &running);
	drain(cl);
	cl->busy--;
	client_settle(cl);
}

static void fail_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct http_req *rq = w->data;
	struct http_client *cl = rq->cl;

	(void)loop;
	(void)revents;
	cl->busy++;
	req_complete(rq, rq->setup_err);
	cl->busy--;
	client_settle(cl);
}

/* ---- curl side: these only move watchers, never call curl ---- */

static void sock_forget(struct http_client *cl, struct http_sock *s)
{
	ev_io_stop(cl->loop, &s->io);
	*s->pprev = s->next;
	if (s->next)
		s->next->pprev = s->pprev;
	free(s);
}

static struct http_sock *sock_new(struct http_client *cl, curl_socket_t fd)
{
	struct http_sock *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->cl = cl;
	s->fd = fd;
	ev_io_init(&s->io, io_cb, fd, EV_READ);
	s->io.data = s;
	s->next = cl->socks;
	if (s->next)
		s->next->pprev = &s->next;
	s->pprev = &cl->socks;
	cl->socks = s;
	return s;
}

static int curl_sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct http_client *cl = userp;
	struct http_sock *s = socketp;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			curl_multi_assign(cl->multi, fd, NULL);
			sock_forget(cl, s);
		}
		return 0;
	}
	if (!s) {
		s = sock_new(cl, fd);
		if (!s)
			return -1;       /* curl fails the transfers using fd */
		curl_multi_assign(cl->multi, fd, s);
	}
	int ev = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
	ev_io_stop(cl->loop, &s->io);
	ev_io_set(&s->io, fd, ev);
	if (ev)
		ev_io_start(cl->loop, &s->io);
	return 0;
}

static int curl_timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct http_client *cl = userp;

	(void)m;
	ev_timer_stop(cl->loop, &cl->timer);
	if (timeout_ms >= 0) {
		/* 1000.0: an integer division would turn 500 ms into 0 */
		ev_timer_set(&cl->timer, (double)timeout_ms / 1000.0, 0.);
		ev_timer_start(cl->loop, &cl->timer);
	}
	return 0;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	struct http_req *rq = userp;
	size_t n = size * nmemb;

	if (rq->len + n > HTTP_BODY_MAX) {
		rq->too_large = true;
		return 0;                /* aborts with CURLE_WRITE_ERROR */
	}
	if (rq->len + n + 1 > rq->cap) {
		size_t cap = rq->cap ? rq->cap : 1024;
		while (cap < rq->len + n + 1)
			cap *= 2;
		char *b = realloc(rq->buf, cap);
		if (!b)
			return 0;
		rq->buf = b;
		rq->cap = cap;
	}
	memcpy(rq->buf + rq->len, data, n);
	rq->len += n;
	rq->buf[rq->len] = '\0';
	return n;
}

/* ---- client ---- */

struct http_client *http_client_new(struct ev_loop *loop, const struct ddns_provider_conf *c,
				    char *err, size_t errlen)
{
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK) {
		snprintf(err, errlen, "libcurl: %s", curl_easy_strerror(global_rc));
		return NULL;
	}
	/* a missing trust anchor is found now, not at the first update */
	if (c->ca_file[0] && access(c->ca_file, R_OK) < 0) {
		snprintf(err, errlen, "ca_file %s: %s", c->ca_file, strerror(errno));
		return NULL;
	}
	struct http_client *cl = calloc(1, sizeof(*cl));
	if (!cl || !(cl->multi = curl_multi_init())) {
		snprintf(err, errlen, "http client: out of memory");
		free(cl);
		return NULL;
	}
	cl->loop = loop;
	/* 0 would mean "wait forever" to curl and pin the name's one slot */
	cl->timeout_ms = c->timeout_ms ? c->timeout_ms : 5000;
	snprintf(cl->ca_file, sizeof(cl->ca_file), "%s", c->ca_file);
	if (c->user_agent[0])
		snprintf(cl->user_agent, sizeof(cl->user_agent), "%s", c->user_agent);
	else
		snprintf(cl->user_agent, sizeof(cl->user_agent), "pcpd/%s", PCPD_VERSION);
	ev_timer_init(&cl->timer, timer_cb, 0., 0.);
	cl->timer.data = cl;
	curl_multi_setopt(cl->multi, CURLMOPT_SOCKETFUNCTION, curl_sock_cb);
	curl_multi_setopt(cl->multi, CURLMOPT_SOCKETDATA, cl);
	curl_multi_setopt(cl->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
	curl_multi_setopt(cl->multi, CURLMOPT_TIMERDATA, cl);
	return cl;
}

void http_client_free(struct http_client *cl)
{
	if (!cl || cl->dead)
		return;
	if (cl->busy) {
		/* inside one of our callbacks: the caller frees on the way out */
		http_cancel_all(cl);
		cl->dead = true;
		return;
	}
	client_destroy(cl);
}

void http_cancel(struct http_client *cl, struct http_req *rq)
{
	(void)cl;
	if (rq)
		req_destroy(rq);
}

void http_cancel_all(struct http_client *cl)
{
	while (cl->reqs)
		req_destroy(cl->reqs);
}

/* ---- one request ---- */

static CURLcode add_headers(struct http_req *rq, enum http_method m, const char *const *headers)
{
	/* "Expect:" keeps curl from waiting for 100-continue on larger bodies */
	if (m == HTTP_POST && !(rq->hdrs = curl_slist_append(rq->hdrs, "Expect:")))
		return CURLE_OUT_OF_MEMORY;
	for (size_t i = 0; headers && headers[i]; i++) {
		struct curl_slist *l = curl_slist_append(rq->hdrs, headers[i]);
		if (!l)
			return CURLE_OUT_OF_MEMORY;
		rq->hdrs = l;
	}
	return rq->hdrs ? curl_easy_setopt(rq->easy, CURLOPT_HTTPHEADER, rq->hdrs) : CURLE_OK;
}

/* The fixed policy: what no provider configuration can loosen. */
static CURLcode set_policy(struct http_req *rq)
{
	struct http_client *cl = rq->cl;
	CURL *e = rq->easy;
	CURLcode rc = CURLE_OK;

#define SET(opt, val) do { if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, val); } while (0)
	SET(CURLOPT_PRIVATE, rq);
	SET(CURLOPT_ERRORBUFFER, rq->errbuf);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, "https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	/* the daemon's environment must not reroute DNS updates */
	SET(CURLOPT_PROXY, "");
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	if (cl->ca_file[0])
		SET(CURLOPT_CAINFO, cl->ca_file);
	SET(CURLOPT_USERAGENT, cl->user_agent);
	SET(CURLOPT_TIMEOUT_MS, cl->timeout_ms);
	SET(CURLOPT_WRITEFUNCTION, write_cb);
	SET(CURLOPT_WRITEDATA, rq);
#undef SET
	return rc;
}

static CURLcode set_request(struct http_req *rq, enum http_method m, const char *url,
			    const char *body, size_t body_len, const char *user, const char *password)
{
	CURL *e = rq->easy;
	CURLcode rc = curl_easy_setopt(e, CURLOPT_URL, url);

	if (rc == CURLE_OK && m == HTTP_POST) {
		rc = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
		if (rc == CURLE_OK)
			rc = curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body ? body : "");
	} else if (rc == CURLE_OK) {
		rc = curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	}
	if (rc == CURLE_OK && user) {
		rc = curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		if (rc == CURLE_OK)
			rc = curl_easy_setopt(e, CURLOPT_USERNAME, user);
		if (rc == CURLE_OK)
			rc = curl_easy_setopt(e, CURLOPT_PASSWORD, password ? password : "");
	}
	return rc;
}

static struct http_req *req_new(struct http_client *cl, http_done_fn done, void *arg)
{
	struct http_req *rq = calloc(1, sizeof(*rq));
	if (!rq)
		abort();         /* see http.h: done() could not be promised */
	rq->cl = cl;
	rq->done = done;
	rq->arg = arg;
	ev_timer_init(&rq->fail_w, fail_cb, 0., 0.);
	rq->fail_w.data = rq;
	req_link(cl, rq);
	return rq;
}

struct http_req *http_later(struct http_client *cl, http_done_fn done, void *arg)
{
	struct http_req *rq = req_new(cl, done, arg);

	rq->setup_err = CURLE_OK;
	ev_timer_start(cl->loop, &rq->fail_w);
	return rq;
}

static void req_start(struct http_req *rq, enum http_method m, const char *url,
		      const char *const *headers, const char *body, size_t body_len,
		      const char *user, const char *password)
{
	struct http_client *cl = rq->cl;
	CURLcode rc = CURLE_OUT_OF_MEMORY;
	if ((rq->easy = curl_easy_init()))
		rc = set_policy(rq);
	if (rc == CURLE_OK)
		rc = set_request(rq, m, url, body, body_len, user, password);
	if (rc == CURLE_OK)
		rc = add_headers(rq, m, headers);
	if (rc == CURLE_OK) {
		if (curl_multi_add_handle(cl->multi, rq->easy) == CURLM_OK)
			rq->in_multi = true;
		else
			rc = CURLE_FAILED_INIT;
	}
	if (rc != CURLE_OK) {
		/* reported from the loop like any other failure */
		rq->setup_err = rc;
		ev_timer_start(cl->loop, &rq->fail_w);
	}
}

struct http_req *http_request(struct http_client *cl, enum http_method m, const char *url,
			      const char *const *headers, const char *body, size_t body_len,
			      const char *user, const char *password,
			      http_done_fn done, void *arg)
{
	struct http_req *rq = req_new(cl, done, arg);
	req_start(rq, m, url, headers, body, body_len, user, password);
	return rq;
}

/* The provider-level completion: one ddns_result, the request freed by
 * the caller of done() right after (req_destroy). */
static void result_done(void *arg, const struct http_response *resp)
{
	struct http_req *rq = arg;
	struct ddns_result r;
	if (rq->preset)
		r = rq->res;
	else if (!http_classify_transport(resp, &r))
		rq->classify(resp->status, resp->retry_after, resp->body, resp->body_len, &r);
	rq->rdone(rq->rarg, &r);
}

static struct http_req *result_req(struct http_client *cl, ddns_done_fn done, void *arg)
{
	struct http_req *rq = req_new(cl, result_done, NULL);
	rq->arg = rq;
	rq->rdone = done;
	rq->rarg = arg;
	return rq;
}

void http_send(struct http_client *cl, enum http_method m, const char *url, const char *const *headers,
	       const char *body, size_t body_len, const char *user, const char *password,
	       http_classify_fn classify, ddns_done_fn done, void *arg)
{
	struct http_req *rq = result_req(cl, done, arg);
	rq->classify = classify;
	req_start(rq, m, url, headers, body, body_len, user, password);
}

void http_result_later(struct http_client *cl, enum ddns_rclass cls, const char *code, const char *msg,
		       ddns_done_fn done, void *arg)
{
	struct http_req *rq = result_req(cl, done, arg);
	rq->preset = true;
	rq->res.cls = cls;
	snprintf(rq->res.code, sizeof(rq->res.code), "%s", code);
	snprintf(rq->res.msg, sizeof(rq->res.msg), "%s", msg);
	rq->setup_err = CURLE_OK;
	ev_timer_start(cl->loop, &rq->fail_w);
}

/* ---- classification shared by the providers ---- */

bool http_url_ok(const char *url)
{
	return !strncasecmp(url, "https://", 8) || !strncasecmp(url, "http://", 7);
}

void http_sanitize(char *dst, size_t dstlen, const char *s, size_t n)
{
	size_t o = 0;

	if (!dstlen)
		return;
	while (n && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'))
		s++, n--;
	for (size_t i = 0; i < n && s[i] && s[i] != '\n' && s[i] != '\r' && o + 1 < dstlen; i++)
		dst[o++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	dst[o] = '\0';
}

static void set_result(struct ddns_result *r, enum ddns_rclass cls, const char *code)
{
	r->cls = cls;
	r->retry_after = 0;
	snprintf(r->code, sizeof(r->code), "%s", code);
}

static enum ddns_rclass status_class(long st, uint32_t retry_after)
{
	if (st >= 200 && st < 300)
		return DDNS_R_OK;
	if (st == 429)
		return retry_after ? DDNS_R_WAIT : DDNS_R_TRANSIENT;
	if (st == 408 || st >= 500 || st < 200)
		return DDNS_R_TRANSIENT;
	/* redirects are not followed: the configured url is wrong */
	if (st < 400 || st == 401 || st == 403)
		return DDNS_R_PERM_PROVIDER;
	return DDNS_R_PERM_NAME;
}

void http_classify_status(long status, uint32_t retry_after, const char *body, size_t len,
			  struct ddns_result *r)
{
	char code[sizeof(r->code)], line[96];

	snprintf(code, sizeof(code), "http-%ld", status);
	set_result(r, status_class(status, retry_after), code);
	if (r->cls == DDNS_R_WAIT)
		r->retry_after = retry_after > 3600 ? 3600 : retry_after;
	http_sanitize(line, sizeof(line), body, len);
	if (line[0])
		snprintf(r->msg, sizeof(r->msg), "HTTP %ld: %s", status, line);
	else
		snprintf(r->msg, sizeof(r->msg), "HTTP %ld", status);
}

bool http_classify_transport(const struct http_response *resp, struct ddns_result *r)
{
	if (resp->curl_code == CURLE_OK)
		return false;

	switch ((CURLcode)resp->curl_code) {
	case CURLE_OPERATION_TIMEDOUT:
		set_result(r, DDNS_R_TRANSIENT, "timeout");
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		/* the certificate will not verify by itself tomorrow */
		set_result(r, DDNS_R_PERM_PROVIDER, "tls-verify");
		break;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		set_result(r, DDNS_R_PERM_PROVIDER, "bad-url");
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
		set_result(r, DDNS_R_TRANSIENT, "resolve");
		break;
	case CURLE_COULDNT_CONNECT:
		set_result(r, DDNS_R_TRANSIENT, "connect");
		break;
	case CURLE_SSL_CONNECT_ERROR:
		set_result(r, DDNS_R_TRANSIENT, "tls");
		break;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
		set_result(r, DDNS_R_TRANSIENT, "network");
		break;
	default:
		if (resp->too_large) {
			set_result(r, DDNS_R_TRANSIENT, "too-large");
		} else {
			char code[sizeof(r->code)];
			snprintf(code, sizeof(code), "curl-%d", resp->curl_code);
			set_result(r, DDNS_R_TRANSIENT, code);
		}
		break;
	}
	http_sanitize(r->msg, sizeof(r->msg), resp->error, strlen(resp->error));
	return true;
}
