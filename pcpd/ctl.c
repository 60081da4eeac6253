/* The control sockets: listening, peer credentials, line framing and
 * streaming with back-pressure. Everything runs on the main loop.
 *
 * A connection handles one request at a time; while a reply is being
 * produced it reads nothing more, so a client that pipelines requests
 * without reading the replies only fills its own socket buffer. A
 * streaming reply is produced in bounded steps and only while less than
 * CTL_OUT_HIGH bytes wait to be sent: the write watcher stays active while
 * the producer has more, so a writable socket drives it one step per loop
 * iteration and a full one stops it. */
#include <errno.h>
#include <ev.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "pcpd/ctl_cmd.h"

#define CTL_MAX_CONN 32            /* per socket: the monitor cannot starve the admin one */
#define CTL_IDLE_SEC 120.0         /* no progress for that long: the peer is dropped */
#define CTL_STEPS 64               /* requests/producer steps per loop iteration */
#define CTL_BACKLOG 16

struct ctl;

struct ctl_listener {
	struct ctl *c;
	int fd;
	bool admin;
	unsigned nconn;
	ev_io io;
	ev_timer retry;            /* accept paused after EMFILE */
	char path[108];
};

struct ctl_conn {
	struct ctl *c;
	struct ctl_listener *l;
	struct ctl_conn *prev, *next;
	int fd;
	ev_io rio, wio;
	ev_timer idle;
	struct ctl_peer peer;
	char in[CTL_LINE_MAX + 1];
	size_t inlen;
	bool eof;                  /* the peer will send nothing more */
	bool discard;              /* skipping the rest of an over-long line */
	struct ctl_out out;
	struct ctl_call *call;
};

struct ctl {
	struct ctl_ctx cx;
	struct ev_loop *loop;
	gid_t admin_gid;
	struct ctl_listener lis[2];
	ev_async done;             /* kernel completions to drain */
	struct ctl_conn *conns;
};

/* ---- output queue ---- */

void ctl_out_init(struct ctl_out *o)
{
	memset(o, 0, sizeof(*o));
}

void ctl_out_free(struct ctl_out *o)
{
	free(o->buf);
	memset(o, 0, sizeof(*o));
}

size_t ctl_out_pending(const struct ctl_out *o)
{
	return o->len - o->off;
}

const char *ctl_out_data(const struct ctl_out *o)
{
	return o->buf + o->off;
}

bool ctl_out_put(struct ctl_out *o, const char *s, size_t n)
{
	if (o->failed)
		return false;
	if (o->off && o->len + n > o->cap) {
		/* reclaim what has been sent before growing */
		memmove(o->buf, o->buf + o->off, o->len - o->off);
		o->len -= o->off;
		o->off = 0;
	}
	if (o->len + n > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;
		while (cap < o->len + n)
			cap *= 2;
		char *b = realloc(o->buf, cap);
		if (!b) {
			o->failed = true;
			return false;
		}
		o->buf = b;
		o->cap = cap;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	if (o->len - o->off > o->peak)
		o->peak = o->len - o->off;
	return true;
}

void ctl_out_consume(struct ctl_out *o, size_t n)
{
	o->off += n;
	if (o->off == o->len)
		o->off = o->len = 0;
}

/* ---- framing ---- */

enum ctl_frame ctl_frame_next(const char *buf, size_t len, size_t max, size_t *line_len,
			      size_t *used)
{
	const char *nl = memchr(buf, '\n', len < max + 1 ? len : max + 1);
	if (!nl)
		return len > max ? CTL_FRAME_TOO_LONG : CTL_FRAME_NONE;
	size_t n = (size_t)(nl - buf);
	*used = n + 1;
	if (n && buf[n - 1] == '\r')
		n--;
	*line_len = n;
	return CTL_FRAME_LINE;
}

/* ---- peers ---- */

bool ctl_peer_is_admin(uid_t uid, gid_t gid, const gid_t *groups, size_t ngroups,
		       gid_t admin_gid, uid_t self)
{
	if (uid == 0 || uid == self)
		return true;
	if (admin_gid == (gid_t)-1)
		return false;
	if (gid == admin_gid)
		return true;
	for (size_t i = 0; i < ngroups; i++)
		if (groups[i] == admin_gid)
			return true;
	return false;
}

/* SO_PEERGROUPS (Linux >= 4.13) gives the groups the peer had when it
 * connected, without the pid-reuse race of reading /proc. */
static bool peer_admin(int fd, const struct ucred *uc, gid_t admin_gid)
{
	gid_t small[64], *groups = small;
	socklen_t len = sizeof(small);
	size_t n = 0;
	if (admin_gid != (gid_t)-1 && uc->uid != 0 && uc->gid != admin_gid) {
		int r = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len);
		if (r < 0 && errno == ERANGE && (groups = malloc(len)) != NULL)
			r = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len);
		if (r == 0)
			n = len / sizeof(gid_t);
		else
			log_debug("control: SO_PEERGROUPS: %s", strerror(errno));
	}
	bool ok = ctl_peer_is_admin(uc->uid, uc->gid, groups, n, admin_gid, geteuid());
	if (groups && groups != small)
		free(groups);
	return ok;
}

/* ---- connections ---- */

static void conn_run(struct ctl_conn *k);

static void conn_close(struct ctl_conn *k)
{
	struct ctl *c = k->c;
	ev_io_stop(c->loop, &k->rio);
	ev_io_stop(c->loop, &k->wio);
	ev_timer_stop(c->loop, &k->idle);
	close(k->fd);
	ctl_call_detach(k->call);
	ctl_out_free(&k->out);
	if (k->prev)
		k->prev->next = k->next;
	else
		c->conns = k->next;
	if (k->next)
		k->next->prev = k->prev;
	k->l->nconn--;
	free(k);
}

/* Sends what is queued; -1 if the peer is gone. */
static int conn_send(struct ctl_conn *k)
{
	while (ctl_out_pending(&k->out)) {
		ssize_t n = send(k->fd, ctl_out_data(&k->out), ctl_out_pending(&k->out),
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		}
		ctl_out_consume(&k->out, (size_t)n);
		ev_timer_again(k->c->loop, &k->idle);
	}
	return 0;
}

static void consume_in(struct ctl_conn *k, size_t n)
{
	memmove(k->in, k->in + n, k->inlen - n);
	k->inlen -= n;
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

/* Takes the next request from the input, if any: false if there is none. */
static bool next_request(struct ctl_conn *k)
{
	if (k->discard) {
		char *nl = memchr(k->in, '\n', k->inlen);
		if (!nl) {
			k->inlen = 0;
			return false;
		}
		consume_in(k, (size_t)(nl - k->in) + 1);
		k->discard = false;
	}
	size_t ll = 0, used = 0;
	switch (ctl_frame_next(k->in, k->inlen, CTL_LINE_MAX, &ll, &used)) {
	case CTL_FRAME_TOO_LONG:
		ctl_out_error(&k->out, CE_TOO_LONG, "request line longer than 65536 bytes");
		k->inlen = 0;
		k->discard = true;
		return true;
	case CTL_FRAME_NONE:
		if (!k->eof || k->inlen == 0)
			return false;
		/* the last request may come without its newline */
		ll = used = k->inlen;
		break;
	case CTL_FRAME_LINE:
		break;
	}
	if (!blank(k->in, ll)) {
		k->call = ctl_call_start(&k->c->cx, &k->out, &k->peer, k->in, ll);
		if (k->call)
			k->call->owner = k;
	}
	consume_in(k, used);
	return true;
}

/* Starts and stops the watchers for what the connection waits for; closes
 * it once the peer is done and everything is answered. */
static void conn_watch(struct ctl_conn *k, bool more)
{
	struct ev_loop *loop = k->c->loop;
	size_t pending = ctl_out_pending(&k->out);
	bool streaming = k->call && k->call->state == CS_STREAM;
	if (k->eof && !k->call && !pending && !more && (k->inlen == 0 || k->discard)) {
		conn_close(k);
		return;
	}
	bool want_write = pending || more || streaming;
	bool want_read = !k->eof && !k->call && pending < CTL_OUT_HIGH &&
			 k->inlen < sizeof(k->in);
	if (want_write)
		ev_io_start(loop, &k->wio);
	else
		ev_io_stop(loop, &k->wio);
	if (want_read)
		ev_io_start(loop, &k->rio);
	else
		ev_io_stop(loop, &k->rio);
}

static void conn_run(struct ctl_conn *k)
{
	bool more = false;
	for (unsigned budget = CTL_STEPS;; budget--) {
		if (k->out.failed) {
			log_warn("control: out of memory; dropping pid %ld", (long)k->peer.pid);
			conn_close(k);
			return;
		}
		if (budget == 0) {
			more = true;
			break;
		}
		if (k->call) {
			if (k->call->state == CS_DONE) {
				ctl_call_free(k->call);
				k->call = NULL;
				continue;
			}
			if (k->call->state == CS_WAIT || ctl_out_pending(&k->out) >= CTL_OUT_HIGH)
				break;
			ctl_call_step(k->call);
			continue;
		}
		if (ctl_out_pending(&k->out) >= CTL_OUT_HIGH || !next_request(k))
			break;
	}
	if (conn_send(k) < 0) {
		conn_close(k);
		return;
	}
	conn_watch(k, more);
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	struct ctl_conn *k = w->data;
	if (k->inlen == sizeof(k->in)) {      /* a full buffer is framed first */
		conn_run(k);
		return;
	}
	ssize_t n = recv(k->fd, k->in + k->inlen, sizeof(k->in) - k->inlen, MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		conn_close(k);
		return;
	}
	if (n == 0)
		k->eof = true;
	k->inlen += (size_t)n;
	ev_timer_again(k->c->loop, &k->idle);
	conn_run(k);
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	conn_run(w->data);
}

static void on_idle(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	struct ctl_conn *k = t->data;
	log_debug("control: pid %ld idle for %.0f s; closing", (long)k->peer.pid, CTL_IDLE_SEC);
	conn_close(k);
}

/* A waiting call went on (kernel answered): drive its connection. */
static void on_wake(void *owner)
{
	conn_run(owner);
}

static void on_done(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)loop;
	(void)revents;
	struct ctl *c = w->data;
	ctl_ctx_drain(&c->cx);
}

static void notify_done(void *arg)
{
	struct ctl *c = arg;
	ev_async_send(c->loop, &c->done);
}

/* Refuses a connection over the limit with an error line (best effort). */
static void refuse(int fd)
{
	struct ctl_out o;
	ctl_out_init(&o);
	ctl_out_error(&o, CE_OVERLOAD, "too many control connections");
	if (ctl_out_pending(&o) &&
	    send(fd, ctl_out_data(&o), ctl_out_pending(&o), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("control: refusing a connection: %s", strerror(errno));
	ctl_out_free(&o);
	close(fd);
}

static void on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)revents;
	struct ctl_listener *l = t->data;
	ev_io_start(loop, &l->io);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)revents;
	struct ctl_listener *l = w->data;
	struct ctl *c = l->c;
	int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* the listener would stay readable: pause instead of spinning */
			log_warn("control: accept on %s: %s; pausing 1 s", l->path, strerror(errno));
			ev_io_stop(loop, &l->io);
			ev_timer_set(&l->retry, 1.0, 0.0);
			ev_timer_start(loop, &l->retry);
		}
		return;
	}
	struct ucred uc;
	socklen_t len = sizeof(uc);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0) {
		log_warn("control: SO_PEERCRED: %s", strerror(errno));
		close(fd);
		return;
	}
	if (l->nconn >= CTL_MAX_CONN) {
		log_debug("control: %s: too many connections; refusing pid %ld", l->path,
			  (long)uc.pid);
		refuse(fd);
		return;
	}
	struct ctl_conn *k = calloc(1, sizeof(*k));
	if (!k) {
		close(fd);
		return;
	}
	k->c = c;
	k->l = l;
	k->fd = fd;
	k->peer.pid = uc.pid;
	k->peer.uid = uc.uid;
	k->peer.gid = uc.gid;
	k->peer.admin_socket = l->admin;
	k->peer.admin = l->admin && peer_admin(fd, &uc, c->admin_gid);
	ctl_out_init(&k->out);
	ev_io_init(&k->rio, on_read, fd, EV_READ);
	ev_io_init(&k->wio, on_write, fd, EV_WRITE);
	ev_init(&k->idle, on_idle);
	k->idle.repeat = CTL_IDLE_SEC;
	k->rio.data = k->wio.data = k->idle.data = k;
	k->next = c->conns;
	if (c->conns)
		c->conns->prev = k;
	c->conns = k;
	l->nconn++;
	ev_io_start(loop, &k->rio);
	ev_timer_again(loop, &k->idle);
	log_debug("control: connection from pid %ld uid %u on %s%s", (long)uc.pid,
		  (unsigned)uc.uid, l->path, k->peer.admin ? " (admin)" : "");
}

/* ---- listeners ---- */

/* A socket file left by a pcpd that died is removed; one that answers
 * belongs to a running daemon and is left alone; a non-socket is never
 * touched. */
static int clear_stale(const char *path, const struct sockaddr_un *sa)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(st.st_mode)) {
		log_err("control: %s exists and is not a socket", path);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	int e = errno;
	close(fd);
	if (r == 0) {
		log_err("control: %s is in use by a running process", path);
		return -1;
	}
	if (e != ECONNREFUSED && e != ENOENT) {
		log_err("control: %s: %s", path, strerror(e));
		return -1;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		log_err("control: cannot remove stale %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* The socket's directory (/run/pcpd) is created if missing; world-
 * searchable so the monitor socket is reachable. */
static void make_parent(const char *path)
{
	char dir[108];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return;
	*slash = '\0';
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		log_warn("control: cannot create %s: %s", dir, strerror(errno));
}

static int listen_at(struct ctl *c, struct ctl_listener *l, const char *path, bool admin)
{
	l->c = c;
	l->fd = -1;
	l->admin = admin;
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_err("control: socket path too long: %s", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path));
	make_parent(path);
	if (clear_stale(path, &sa) < 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_err("control: socket: %s", strerror(errno));
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		log_err("control: bind %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	snprintf(l->path, sizeof(l->path), "%s", path);    /* ours now: unlinked on free */
	l->fd = fd;
	ev_io_init(&l->io, on_accept, fd, EV_READ);
	l->io.data = l;
	ev_init(&l->retry, on_retry);
	l->retry.data = l;
	/* the socket is born with umask permissions (never wider), then set */
	mode_t mode = admin ? 0660 : 0666;
	if (chmod(path, mode) < 0 ||
	    (admin && c->admin_gid != (gid_t)-1 && chown(path, (uid_t)-1, c->admin_gid) < 0)) {
		log_err("control: %s: cannot set owner/mode: %s", path, strerror(errno));
		return -1;
	}
	if (listen(fd, CTL_BACKLOG) < 0) {
		log_err("control: listen %s: %s", path, strerror(errno));
		return -1;
	}
	ev_io_start(c->loop, &l->io);
	return 0;
}

static void listener_close(struct ctl *c, struct ctl_listener *l)
{
	if (l->fd < 0)
		return;
	ev_io_stop(c->loop, &l->io);
	ev_timer_stop(c->loop, &l->retry);
	close(l->fd);
	l->fd = -1;
	if (l->path[0] && unlink(l->path) < 0 && errno != ENOENT)
		log_warn("control: cannot remove %s: %s", l->path, strerror(errno));
}

struct ctl *ctl_new(struct pcpd_server *srv, struct ev_loop *loop, const struct ctl_conf *conf,
		    const struct ctl_info *info)
{
	struct ctl *c = calloc(1, sizeof(*c));
	if (!c) {
		log_err("control: out of memory");
		return NULL;
	}
	ctl_ctx_init(&c->cx, srv, info);
	c->loop = loop;
	c->admin_gid = conf->admin_gid;
	c->lis[0].fd = c->lis[1].fd = -1;
	c->cx.notify = notify_done;
	c->cx.notify_arg = c;
	c->cx.wake = on_wake;
	ev_async_init(&c->done, on_done);
	c->done.data = c;
	ev_async_start(loop, &c->done);
	if ((conf->admin_path[0] && listen_at(c, &c->lis[0], conf->admin_path, true) < 0) ||
	    (conf->monitor_path[0] && listen_at(c, &c->lis[1], conf->monitor_path, false) < 0)) {
		ctl_free(c);
		return NULL;
	}
	for (unsigned i = 0; i < 2; i++)
		if (c->lis[i].fd >= 0)
			log_info("control socket %s (%s)", c->lis[i].path,
				 c->lis[i].admin ? "admin" : "read-only");
	return c;
}

void ctl_free(struct ctl *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < 2; i++)
		listener_close(c, &c->lis[i]);
	c->cx.wake = NULL;
	while (c->conns)
		conn_close(c->conns);
	bool clean = ctl_ctx_destroy(&c->cx);
	ev_async_stop(c->loop, &c->done);
	/* a call still waiting for the kernel will complete into c->cx: keep it */
	if (clean)
		free(c);
}
