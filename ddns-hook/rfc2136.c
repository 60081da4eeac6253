/* RFC 2136 provider: one TSIG-signed UPDATE per attempt, sent over UDP
 * (retransmitted within the timeout) or TCP, entirely on the hook's loop.
 * dns_msg.c builds and judges the messages; this file moves bytes. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "ddns-hook/dns_msg.h"
#include "ddns-hook/provider.h"

#define R2_RETX 2                /* UDP retransmissions within one timeout */
#define R2_OOM_MAX 16            /* sends that could not even allocate their state */

struct r2_prov;

struct r2_req {
	struct r2_prov *p;
	struct r2_req *prev, *next;
	struct dns_request dr;
	ddns_done_fn done;
	void *arg;
	int fd;
	bool tcp;
	unsigned retx;
	ev_io io;
	ev_timer deadline, retx_timer, fail;
	bool have_bogus;             /* an unauthenticated answer came: report it on timeout */
	struct ddns_result res;      /* failure to report from fail, or the bogus answer */
	uint8_t *frame;              /* TCP: 2-byte length + message */
	size_t flen, woff;
	uint8_t lenbuf[2];
	uint8_t *rbuf;
	size_t rlen, roff;
};

struct r2_prov {
	struct ev_loop *loop;
	char name[DDNS_ID_MAX];
	char zone[DDNS_NAME_MAX + 1];
	struct dns_key key;
	struct sockaddr_storage sa;
	socklen_t salen;
	char server[64];             /* for messages */
	bool tcp;
	uint32_t timeout_ms;
	struct r2_req *reqs;
	struct {
		ddns_done_fn done;
		void *arg;
	} oom[R2_OOM_MAX];
	unsigned noom;
	ev_timer oom_timer;
	uint8_t udpbuf[65536];
};

/* ---- request lifetime ---- */

static void req_free(struct r2_req *r)
{
	struct r2_prov *p = r->p;
	ev_io_stop(p->loop, &r->io);
	ev_timer_stop(p->loop, &r->deadline);
	ev_timer_stop(p->loop, &r->retx_timer);
	ev_timer_stop(p->loop, &r->fail);
	if (r->fd >= 0)
		close(r->fd);
	if (r->prev)
		r->prev->next = r->next;
	else
		p->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	free(r->frame);
	free(r->rbuf);
	dns_request_free(&r->dr);
	free(r);
}

/* The only place done() is called for a started request: r is gone
 * before the callback runs, so it may send again or close the provider. */
static void finish(struct r2_req *r, const struct ddns_result *res)
{
	struct ddns_result out = *res;
	ddns_done_fn done = r->done;
	void *arg = r->arg;
	req_free(r);
	done(arg, &out);
}

static void set_result(struct ddns_result *res, enum ddns_rclass cls, const char *code, const char *msg)
{
	memset(res, 0, sizeof(*res));
	res->cls = cls;
	snprintf(res->code, sizeof(res->code), "%s", code);
	snprintf(res->msg, sizeof(res->msg), "%s", msg);
}

static void finish_errno(struct r2_req *r, int err, const char *what)
{
	struct ddns_result res;
	const char *name = strerrorname_np(err);
	char msg[160];
	snprintf(msg, sizeof(msg), "%s %s: %s", what, r->p->server, strerror(err));
	set_result(&res, DDNS_R_TRANSIENT, name ? name : "net-error", msg);
	finish(r, &res);
}

static void fail_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct r2_req *r = w->data;
	finish(r, &r->res);
}

/* send() must not call done(): failures found there are reported from a
 * zero timer instead. */
static void fail_later(struct r2_req *r, enum ddns_rclass cls, const char *code, const char *msg)
{
	set_result(&r->res, cls, code, msg);
	ev_io_stop(r->p->loop, &r->io);
	ev_timer_stop(r->p->loop, &r->deadline);
	ev_timer_stop(r->p->loop, &r->retx_timer);
	ev_timer_set(&r->fail, 0., 0.);
	ev_timer_start(r->p->loop, &r->fail);
}

/* Without memory for a request there is no watcher to defer done() with:
 * the provider keeps a few such calls itself and reports one per timer
 * run, so a close() from inside done() stops the rest. */
static void oom_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)revents;
	struct r2_prov *p = w->data;
	if (!p->noom)
		return;
	ddns_done_fn done = p->oom[0].done;
	void *arg = p->oom[0].arg;
	p->noom--;
	memmove(&p->oom[0], &p->oom[1], p->noom * sizeof(p->oom[0]));
	if (p->noom)
		ev_timer_start(loop, &p->oom_timer);
	struct ddns_result res;
	set_result(&res, DDNS_R_TRANSIENT, "nomem", "out of memory starting the update");
	done(arg, &res);
}

static void oom_defer(struct r2_prov *p, ddns_done_fn done, void *arg)
{
	if (p->noom == R2_OOM_MAX) {
		log_err("rfc2136 %s: out of memory, cannot report it either", p->name);
		abort();
	}
	p->oom[p->noom].done = done;
	p->oom[p->noom].arg = arg;
	p->noom++;
	if (!ev_is_active(&p->oom_timer))
		ev_timer_start(p->loop, &p->oom_timer);
}

/* ---- UDP ---- */

static void start_tcp(struct r2_req *r);

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct r2_req *r = w->data;
	if (r->have_bogus) {
		finish(r, &r->res);
		return;
	}
	struct ddns_result res;
	char msg[160];
	snprintf(msg, sizeof(msg), "no answer from %s over %s within %u ms", r->p->server,
		 r->tcp ? "TCP" : "UDP", r->p->timeout_ms);
	set_result(&res, DDNS_R_TRANSIENT, "timeout", msg);
	finish(r, &res);
}

static int udp_transmit(struct r2_req *r)
{
	ssize_t n = send(r->fd, r->dr.wire, r->dr.len, MSG_NOSIGNAL);
	if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		return -errno;
	return 0;
}

static void retx_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)revents;
	struct r2_req *r = w->data;
	if (r->retx++ >= R2_RETX) {
		ev_timer_stop(loop, w);
		return;
	}
	int rc = udp_transmit(r);
	if (rc < 0)
		finish_errno(r, -rc, "sending to");
}

/* Handles one datagram; true when r is finished or moved to TCP. */
static bool udp_answer(struct r2_req *r, size_t n)
{
	struct ddns_result res;
	switch (dns_answer_classify(&r->dr, r->p->udpbuf, n, time(NULL), &res)) {
	case DNS_ANS_IGNORE:
		log_debug("rfc2136 %s: ignored a %zu-byte datagram that does not answer id %u", r->p->name,
			  n, r->dr.id);
		return false;
	case DNS_ANS_BOGUS:
		/* RFC 8945 §5.4: keep waiting for a signed answer */
		r->res = res;
		r->have_bogus = true;
		return false;
	case DNS_ANS_TRUNCATED:
		start_tcp(r);
		return true;
	case DNS_ANS_FINAL:
		finish(r, &res);
		return true;
	}
	return false;
}

static void udp_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	struct r2_req *r = w->data;
	for (;;) {
		/* connected socket: the kernel drops datagrams from other sources */
		ssize_t n = recv(r->fd, r->p->udpbuf, sizeof(r->p->udpbuf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			/* ICMP errors (port unreachable ...) surface here */
			finish_errno(r, errno, "UDP to");
			return;
		}
		if (udp_answer(r, (size_t)n))
			return;
	}
}

static int open_socket(struct r2_req *r, int type)
{
	int fd = socket(r->p->sa.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)&r->p->sa, r->p->salen) < 0 && errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		return -e;
	}
	r->fd = fd;
	return 0;
}

static void arm_deadline(struct r2_req *r)
{
	ev_timer_stop(r->p->loop, &r->deadline);
	ev_timer_set(&r->deadline, r->p->timeout_ms / 1000., 0.);
	ev_timer_start(r->p->loop, &r->deadline);
}

static int start_udp(struct r2_req *r)
{
	int rc = open_socket(r, SOCK_DGRAM);
	if (rc < 0)
		return rc;
	ev_io_init(&r->io, udp_read_cb, r->fd, EV_READ);
	r->io.data = r;
	ev_io_start(r->p->loop, &r->io);
	rc = udp_transmit(r);
	if (rc < 0)
		return rc;
	double every = r->p->timeout_ms / 1000. / (R2_RETX + 1);
	ev_timer_set(&r->retx_timer, every, every);
	ev_timer_start(r->p->loop, &r->retx_timer);
	arm_deadline(r);
	return 0;
}

/* ---- TCP (RFC 1035 §4.2.2: 2-byte length, then the message) ---- */

/* Returns true when r is finished (and freed). */
static bool tcp_answer(struct r2_req *r)
{
	struct ddns_result res;
	switch (dns_answer_classify(&r->dr, r->rbuf, r->rlen, time(NULL), &res)) {
	case DNS_ANS_IGNORE:
		/* not ours: drop it and read on until the deadline */
		free(r->rbuf);
		r->rbuf = NULL;
		r->roff = 0;
		return false;
	case DNS_ANS_TRUNCATED:
		set_result(&res, DDNS_R_TRANSIENT, "truncated", "answer over TCP has TC set");
		break;
	case DNS_ANS_BOGUS:
		/* RFC 8945 §5.3.1: a verification failure closes the connection */
	case DNS_ANS_FINAL:
		break;
	}
	finish(r, &res);
	return true;
}

/* Reads what is available; returns false once r is finished. */
static bool tcp_read(struct r2_req *r)
{
	for (;;) {
		uint8_t *dst = r->roff < 2 ? r->lenbuf + r->roff : r->rbuf + (r->roff - 2);
		size_t want = r->roff < 2 ? 2 - r->roff : r->rlen - (r->roff - 2);
		ssize_t n = recv(r->fd, dst, want, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		if (n < 0) {
			finish_errno(r, errno, "TCP to");
			return false;
		}
		if (n == 0) {
			struct ddns_result res;
			set_result(&res, DDNS_R_TRANSIENT, "tcp-eof", "server closed the TCP connection before answering");
			finish(r, &res);
			return false;
		}
		r->roff += (size_t)n;
		if (r->roff == 2) {
			r->rlen = (size_t)(r->lenbuf[0] << 8 | r->lenbuf[1]);
			r->rbuf = malloc(r->rlen ? r->rlen : 1);
			if (!r->rbuf) {
				finish_errno(r, ENOMEM, "reading from");
				return false;
			}
		}
		if (r->roff >= 2 && r->roff - 2 == r->rlen) {
			if (tcp_answer(r))
				return false;
		}
	}
}

static bool tcp_write(struct r2_req *r)
{
	if (!r->woff) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			finish_errno(r, err, "connecting to");
			return false;
		}
	}
	while (r->woff < r->flen) {
		ssize_t n = send(r->fd, r->frame + r->woff, r->flen - r->woff, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		if (n < 0) {
			finish_errno(r, errno, "TCP to");
			return false;
		}
		r->woff += (size_t)n;
	}
	ev_io_stop(r->p->loop, &r->io);
	ev_io_set(&r->io, r->fd, EV_READ);
	ev_io_start(r->p->loop, &r->io);
	return true;
}

static void tcp_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	struct r2_req *r = w->data;
	if ((revents & EV_WRITE) && !tcp_write(r))
		return;
	if (revents & EV_READ)
		tcp_read(r);
}

static int tcp_open(struct r2_req *r)
{
	r->flen = r->dr.len + 2;
	r->frame = malloc(r->flen);
	if (!r->frame)
		return -ENOMEM;
	r->frame[0] = (uint8_t)(r->dr.len >> 8);
	r->frame[1] = (uint8_t)r->dr.len;
	memcpy(r->frame + 2, r->dr.wire, r->dr.len);
	int rc = open_socket(r, SOCK_STREAM);
	if (rc < 0)
		return rc;
	ev_io_init(&r->io, tcp_cb, r->fd, EV_WRITE);
	r->io.data = r;
	ev_io_start(r->p->loop, &r->io);
	/* a TC answer proves the server is there: TCP gets a full timeout */
	arm_deadline(r);
	return 0;
}

/* UDP answer had TC set: same signed message again over TCP. */
static void start_tcp(struct r2_req *r)
{
	ev_io_stop(r->p->loop, &r->io);
	ev_timer_stop(r->p->loop, &r->retx_timer);
	close(r->fd);
	r->fd = -1;
	r->tcp = true;
	r->have_bogus = false;
	int rc = tcp_open(r);
	if (rc < 0)
		finish_errno(r, -rc, "TCP to");
}

/* ---- provider ops ---- */

static void r2_send(void *pv, const struct ddns_update *u, ddns_done_fn done, void *arg)
{
	struct r2_prov *p = pv;
	struct r2_req *r = calloc(1, sizeof(*r));
	if (!r) {
		oom_defer(p, done, arg);
		return;
	}
	r->p = p;
	r->done = done;
	r->arg = arg;
	r->fd = -1;
	ev_init(&r->io, udp_read_cb);
	ev_init(&r->deadline, deadline_cb);
	ev_init(&r->retx_timer, retx_cb);
	ev_init(&r->fail, fail_cb);
	r->io.data = r->deadline.data = r->retx_timer.data = r->fail.data = r;
	r->next = p->reqs;
	if (p->reqs)
		p->reqs->prev = r;
	p->reqs = r;

	char err[160];
	int rc = dns_update_build(u, p->zone, &p->key, &r->dr, err, sizeof(err));
	if (rc) {
		if (rc == DNS_E_NAME)
			fail_later(r, DDNS_R_PERM_NAME, "bad-name", err);
		else if (rc == DNS_E_KEY)
			fail_later(r, DDNS_R_PERM_PROVIDER, "bad-key", err);
		else
			fail_later(r, DDNS_R_TRANSIENT, "nomem", err);
		return;
	}
	r->tcp = p->tcp || r->dr.len > DNS_UDP_MAX;
	rc = r->tcp ? tcp_open(r) : start_udp(r);
	if (rc < 0) {
		const char *name = strerrorname_np(-rc);
		snprintf(err, sizeof(err), "%s %s: %s", r->tcp ? "TCP to" : "UDP to", p->server, strerror(-rc));
		fail_later(r, DDNS_R_TRANSIENT, name ? name : "net-error", err);
	}
}

static void r2_close(void *pv)
{
	struct r2_prov *p = pv;
	if (!p)
		return;
	while (p->reqs)
		req_free(p->reqs);
	ev_timer_stop(p->loop, &p->oom_timer);
	explicit_bzero(p, sizeof(*p));   /* the secret */
	free(p);
}

static void set_server(struct r2_prov *p, const struct in6_addr *a, uint16_t port)
{
	memset(&p->sa, 0, sizeof(p->sa));
	if (IN6_IS_ADDR_V4MAPPED(a)) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&p->sa;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, &a->s6_addr[12], 4);
		p->salen = sizeof(*sin);
		inet_ntop(AF_INET, &sin->sin_addr, p->server, sizeof(p->server));
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&p->sa;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		sin6->sin6_addr = *a;
		p->salen = sizeof(*sin6);
		inet_ntop(AF_INET6, a, p->server, sizeof(p->server));
	}
	size_t n = strlen(p->server);
	snprintf(p->server + n, sizeof(p->server) - n, " port %u", port);
}

static bool r2_setup(struct r2_prov *p, const struct ddns_provider_conf *c, char *err, size_t errlen)
{
	if (IN6_IS_ADDR_UNSPECIFIED(&c->server)) {
		snprintf(err, errlen, "no server address");
		return false;
	}
	if (!dns_name_ok(c->zone)) {
		snprintf(err, errlen, "zone \"%.64s\" is not a valid DNS name", c->zone);
		return false;
	}
	snprintf(p->zone, sizeof(p->zone), "%s", c->zone);
	snprintf(p->key.name, sizeof(p->key.name), "%s", c->key_name);
	snprintf(p->key.algorithm, sizeof(p->key.algorithm), "%s", c->key_algorithm);
	/* algorithm and key name are judged before the secret is read */
	struct dns_key probe = p->key;
	snprintf(probe.secret_b64, sizeof(probe.secret_b64), "AAAA");
	if (dns_key_check(&probe, err, errlen))
		return false;
	if (ddns_secret_read(c->key_file, p->key.secret_b64, sizeof(p->key.secret_b64), err, errlen) < 0)
		return false;
	if (dns_key_check(&p->key, err, errlen))
		return false;
	set_server(p, &c->server, c->port ? c->port : 53);
	p->tcp = c->tcp;
	p->timeout_ms = c->timeout_ms ? c->timeout_ms : 5000;
	return true;
}

static void *r2_open(const struct ddns_provider_conf *c, struct ev_loop *loop, char *err, size_t errlen)
{
	struct r2_prov *p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "rfc2136 provider %s: out of memory", c->name);
		return NULL;
	}
	p->loop = loop;
	snprintf(p->name, sizeof(p->name), "%s", c->name);
	ev_timer_init(&p->oom_timer, oom_cb, 0., 0.);
	p->oom_timer.data = p;
	char why[256] = "";
	if (!r2_setup(p, c, why, sizeof(why))) {
		snprintf(err, errlen, "rfc2136 provider %s: %s", c->name, why);
		r2_close(p);
		return NULL;
	}
	return p;
}

const struct ddns_provider_ops ddns_rfc2136_ops = {
	.type = DDNS_RFC2136,
	.flags = 0,
	.open = r2_open,
	.send = r2_send,
	.close = r2_close,
};
