#include "pcpd/udp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mtime.h"

#define BATCH 32
#define MAX_SOCKS PCPD_MAX_LISTEN
/* One more than the largest valid request so over-long ones are seen
 * as such (§8.2 MALFORMED_REQUEST) instead of being cut to size. */
#define RXBUF (PCP_MAX_LEN + 4)

struct out_msg {
	struct sockaddr_in6 to6;
	struct sockaddr_in to4;
	bool v4;
	int fd;
	uint8_t buf[PCP_MAX_LEN];
	size_t len;
	char ctl[CMSG_SPACE(sizeof(struct in6_pktinfo))];
	size_t ctllen;
};

struct worker {
	struct udp_server *u;
	unsigned id;
	pthread_t thread;
	struct ev_loop *loop;
	ev_async stop;
	ev_io io[MAX_SOCKS];
	int fds[MAX_SOCKS];
	unsigned nfds;
	/* replies produced while handling one batch */
	struct out_msg out[BATCH];
	unsigned nout;
	uint8_t rx[BATCH][RXBUF];
};

struct udp_server {
	struct pcp_handler *h;
	const struct pcpd_config *cfg;
	unsigned nworkers;
	struct worker *w;
	bool started;
};

static int open_socket(const struct in6_addr *a, uint16_t port)
{
	bool v4 = addr_is_v4mapped(a);
	int fd = socket(v4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1, rcv = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	int rc;
	if (v4) {
		setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
		memcpy(&sa.sin_addr, &a->s6_addr[12], 4);
		rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	} else {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
		struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons(port),
					   .sin6_addr = *a };
		rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	}
	if (rc < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static void flush_out(struct worker *w)
{
	struct mmsghdr mm[BATCH];
	struct iovec iov[BATCH];
	unsigned i = 0;
	while (i < w->nout) {
		/* sendmmsg takes one fd: send runs of replies for the same socket */
		int fd = w->out[i].fd;
		unsigned n = 0;
		for (unsigned j = i; j < w->nout && w->out[j].fd == fd; j++, n++) {
			struct out_msg *o = &w->out[j];
			iov[n].iov_base = o->buf;
			iov[n].iov_len = o->len;
			memset(&mm[n], 0, sizeof(mm[n]));
			mm[n].msg_hdr.msg_name = o->v4 ? (void *)&o->to4 : (void *)&o->to6;
			mm[n].msg_hdr.msg_namelen = o->v4 ? sizeof(o->to4) : sizeof(o->to6);
			mm[n].msg_hdr.msg_iov = &iov[n];
			mm[n].msg_hdr.msg_iovlen = 1;
			mm[n].msg_hdr.msg_control = o->ctl;
			mm[n].msg_hdr.msg_controllen = o->ctllen;
		}
		unsigned sent = 0;
		while (sent < n) {
			int r = sendmmsg(fd, mm + sent, n - sent, 0);
			if (r <= 0) {
				if (r < 0 && errno == EINTR)
					continue;
				sent++;     /* skip the one that failed: UDP, the client retries */
				continue;
			}
			sent += (unsigned)r;
		}
		i += n;
	}
	w->nout = 0;
}

static void fill_out(struct out_msg *o, const struct pcp_meta *m, const uint8_t *buf, size_t len)
{
	memcpy(o->buf, buf, len);
	o->len = len;
	o->fd = m->fd;
	o->v4 = addr_is_v4mapped(&m->src);
	memset(o->ctl, 0, sizeof(o->ctl));
	struct msghdr mh = { .msg_control = o->ctl, .msg_controllen = sizeof(o->ctl) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	if (o->v4) {
		o->to4 = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(m->sport) };
		memcpy(&o->to4.sin_addr, &m->src.s6_addr[12], 4);
		c->cmsg_level = IPPROTO_IP;
		c->cmsg_type = IP_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
		/* back through the softwire it came from: every B4 uses the same
		 * private addresses, so the route alone cannot tell which one */
		struct in_pktinfo pi = { .ipi_ifindex = m->ifindex };
		memcpy(&pi.ipi_spec_dst, &m->dst.s6_addr[12], 4);
		memcpy(CMSG_DATA(c), &pi, sizeof(pi));
		o->ctllen = CMSG_SPACE(sizeof(struct in_pktinfo));
	} else {
		o->to6 = (struct sockaddr_in6){ .sin6_family = AF_INET6, .sin6_port = htons(m->sport),
						.sin6_addr = m->src };
		if (IN6_IS_ADDR_LINKLOCAL(&m->src))
			o->to6.sin6_scope_id = (uint32_t)m->ifindex;
		c->cmsg_level = IPPROTO_IPV6;
		c->cmsg_type = IPV6_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof(struct in6_pktinfo));
		struct in6_pktinfo pi = { .ipi6_addr = m->dst };
		memcpy(CMSG_DATA(c), &pi, sizeof(pi));
		o->ctllen = CMSG_SPACE(sizeof(struct in6_pktinfo));
	}
}

void udp_reply(const struct pcp_meta *m, const uint8_t *buf, size_t len)
{
	struct worker *w = m->io;
	if (len > PCP_MAX_LEN)
		return;
	if (w && pthread_equal(pthread_self(), w->thread) && w->nout < BATCH) {
		fill_out(&w->out[w->nout++], m, buf, len);
		return;
	}
	/* from another thread (a kernel completion) or a full batch: send now */
	struct out_msg o;
	fill_out(&o, m, buf, len);
	struct iovec iov = { o.buf, o.len };
	struct msghdr mh = {
		.msg_name = o.v4 ? (void *)&o.to4 : (void *)&o.to6,
		.msg_namelen = o.v4 ? sizeof(o.to4) : sizeof(o.to6),
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = o.ctl, .msg_controllen = o.ctllen,
	};
	while (sendmsg(m->fd, &mh, 0) < 0 && errno == EINTR)
		;
}

static void parse_meta(struct msghdr *mh, struct pcp_meta *m, int fd)
{
	memset(m, 0, sizeof(*m));
	m->fd = fd;
	struct sockaddr_storage *ss = mh->msg_name;
	if (ss->ss_family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		addr_from_v4(&m->src, ntohl(s4->sin_addr.s_addr));
		m->sport = ntohs(s4->sin_port);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		m->src = s6->sin6_addr;
		m->sport = ntohs(s6->sin6_port);
	}
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			addr_from_v4(&m->dst, ntohl(pi.ipi_addr.s_addr));
			m->ifindex = pi.ipi_ifindex;
		} else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			m->dst = pi.ipi6_addr;
			m->ifindex = (int)pi.ipi6_ifindex;
		}
	}
}

static void on_readable(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)loop;
	(void)revents;
	struct worker *w = io->data;
	struct mmsghdr mm[BATCH];
	struct iovec iov[BATCH];
	struct sockaddr_storage from[BATCH];
	char ctl[BATCH][CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo))];
	for (int i = 0; i < BATCH; i++) {
		iov[i].iov_base = w->rx[i];
		iov[i].iov_len = RXBUF;
		memset(&mm[i], 0, sizeof(mm[i]));
		mm[i].msg_hdr.msg_name = &from[i];
		mm[i].msg_hdr.msg_namelen = sizeof(from[i]);
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
		mm[i].msg_hdr.msg_control = ctl[i];
		mm[i].msg_hdr.msg_controllen = sizeof(ctl[i]);
	}
	int n = recvmmsg(io->fd, mm, BATCH, MSG_DONTWAIT, NULL);
	if (n <= 0)
		return;
	struct pcp_handler *h = w->u->h;
	uint64_t now_ms = mtime_ms();
	rcu_read_lock();
	for (int i = 0; i < n; i++) {
		struct pcp_meta m;
		parse_meta(&mm[i].msg_hdr, &m, io->fd);
		m.now_ms = now_ms;
		m.now = (uint32_t)(now_ms / 1000u);
		m.io = w;
		size_t len = mm[i].msg_len;
		if (mm[i].msg_hdr.msg_flags & MSG_TRUNC)
			len = RXBUF;        /* longer than 1100 anyway: MALFORMED_REQUEST */
		pcp_handle(h, &m, w->rx[i], len);
	}
	rcu_read_unlock();
	/* group commit point: one kernel transaction for the whole batch */
	h->eng->kb->ops->flush(h->eng->kb);
	flush_out(w);
}

static void on_stop(struct ev_loop *loop, ev_async *a, int revents)
{
	(void)a;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	rcu_register_thread();
	ev_run(w->loop, 0);
	rcu_unregister_thread();
	return NULL;
}

struct udp_server *udp_server_new(struct pcp_handler *h, const struct pcpd_config *cfg)
{
	struct udp_server *u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->h = h;
	u->cfg = cfg;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	u->nworkers = cfg->workers ? cfg->workers : (unsigned)(cores > 0 ? cores : 1);
	u->w = calloc(u->nworkers, sizeof(*u->w));
	if (!u->w) {
		free(u);
		return NULL;
	}
	for (unsigned i = 0; i < u->nworkers; i++) {
		struct worker *w = &u->w[i];
		w->u = u;
		w->id = i;
		w->loop = ev_loop_new(EVFLAG_AUTO);
		if (!w->loop)
			goto fail;
		ev_async_init(&w->stop, on_stop);
		ev_async_start(w->loop, &w->stop);
		for (unsigned k = 0; k < cfg->nlisten; k++) {
			int fd = open_socket(&cfg->listen[k], cfg->port);
			if (fd < 0) {
				char a[ADDR_STRLEN];
				log_err("cannot listen on %s port %u: %s", addr_str(&cfg->listen[k], a),
					cfg->port, strerror(errno));
				goto fail;
			}
			w->fds[w->nfds] = fd;
			ev_io_init(&w->io[w->nfds], on_readable, fd, EV_READ);
			w->io[w->nfds].data = w;
			ev_io_start(w->loop, &w->io[w->nfds]);
			w->nfds++;
		}
	}
	return u;
fail:
	udp_server_free(u);
	return NULL;
}

int udp_server_start(struct udp_server *u)
{
	for (unsigned i = 0; i < u->nworkers; i++) {
		if (pthread_create(&u->w[i].thread, NULL, worker_main, &u->w[i]) != 0) {
			log_err("cannot start worker %u", i);
			return -1;
		}
		u->started = true;
	}
	return 0;
}

void udp_server_stop(struct udp_server *u)
{
	if (!u || !u->started)
		return;
	for (unsigned i = 0; i < u->nworkers; i++) {
		if (u->w[i].thread) {
			ev_async_send(u->w[i].loop, &u->w[i].stop);
			pthread_join(u->w[i].thread, NULL);
		}
	}
	u->started = false;
}

void udp_server_free(struct udp_server *u)
{
	if (!u)
		return;
	udp_server_stop(u);
	for (unsigned i = 0; i < u->nworkers; i++) {
		struct worker *w = &u->w[i];
		for (unsigned k = 0; k < w->nfds; k++)
			close(w->fds[k]);
		if (w->loop)
			ev_loop_destroy(w->loop);
	}
	free(u->w);
	free(u);
}

unsigned udp_server_workers(const struct udp_server *u)
{
	return u->nworkers;
}

int udp_server_fd(const struct udp_server *u, const struct in6_addr *local)
{
	if (!u->nworkers)
		return -1;
	int wild = -1;
	bool v4 = addr_is_v4mapped(local);
	for (unsigned k = 0; k < u->w[0].nfds && k < u->cfg->nlisten; k++) {
		const struct in6_addr *a = &u->cfg->listen[k];
		if (addr_equal(a, local))
			return u->w[0].fds[k];
		if (addr_is_zero(a) && addr_is_v4mapped(a) == v4)
			wild = u->w[0].fds[k];
	}
	return wild;
}
