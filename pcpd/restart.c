#include "pcpd/restart.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mtime.h"
#include "pcpd/codec.h"

#define ANNOUNCE_TIMES 10            /* §14.1.3: up to ten times */
#define ANNOUNCE_FIRST 0.25          /* §14.1.3: at least 250 ms, then doubling */
#define BOOT_ID_LEN 36

static void boot_id(char out[BOOT_ID_LEN + 1])
{
	snprintf(out, BOOT_ID_LEN + 1, "unknown");
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
	if (!f)
		return;
	char buf[64];
	if (fgets(buf, sizeof(buf), f)) {
		buf[strcspn(buf, "\n")] = '\0';
		snprintf(out, BOOT_ID_LEN + 1, "%.36s", buf);
	}
	fclose(f);
}

/* Writes path atomically: a crash leaves the old file or the new one. */
static int write_atomic(const char *path, const char *text, size_t len)
{
	char tmp[512];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	bool ok = write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
	close(fd);
	if (!ok || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

uint32_t restart_epoch(const char *state_dir, bool kernel_fresh, uint32_t now, bool *continued)
{
	char path[512], id[BOOT_ID_LEN + 1], old_id[BOOT_ID_LEN + 1] = "";
	snprintf(path, sizeof(path), "%s/epoch", state_dir);
	boot_id(id);
	uint32_t base = now;
	*continued = false;
	FILE *f = fopen(path, "r");
	if (f) {
		unsigned long b;
		/* the monotonic clock only means something within one boot */
		if (fscanf(f, "%36s %lu", old_id, &b) == 2 && strcmp(old_id, id) == 0 && b <= now &&
		    !kernel_fresh) {
			base = (uint32_t)b;
			*continued = true;
		}
		fclose(f);
	}
	char text[96];
	int n = snprintf(text, sizeof(text), "%s %u\n", id, base);
	if (write_atomic(path, text, (size_t)n) != 0)
		log_warn("%s: cannot record the epoch: %s", path, strerror(errno));
	return base;
}

struct save_run {
	char *buf;
	size_t len, cap;
	int n;
};

static int save_one(void *arg, struct subscriber *sub)
{
	struct save_run *r = arg;
	char c[ADDR_STRLEN], s[ADDR_STRLEN], line[160];
	pthread_mutex_lock(&sub->lock);
	uint16_t port = sub->client_port;
	struct in6_addr ca = sub->client_addr, sa = sub->client_server;
	pthread_mutex_unlock(&sub->lock);
	if (!port)
		return 0;
	int n = snprintf(line, sizeof(line), "%u %s %u %s\n", sub->index, addr_str(&ca, c), port,
			 addr_str(&sa, s));
	if (r->len + (size_t)n > r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 4096;
		char *nb = realloc(r->buf, cap);
		if (!nb)
			return 1;
		r->buf = nb;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, line, (size_t)n);
	r->len += (size_t)n;
	r->n++;
	return 0;
}

int restart_save_clients(const char *state_dir, struct subscribers *subs)
{
	struct save_run r = { 0 };
	rcu_read_lock();
	subs_foreach(subs, save_one, &r);
	rcu_read_unlock();
	char path[512];
	snprintf(path, sizeof(path), "%s/clients", state_dir);
	int rc = write_atomic(path, r.buf ? r.buf : "", r.len);
	free(r.buf);
	if (rc != 0) {
		log_warn("%s: cannot record the PCP clients: %s", path, strerror(errno));
		return -1;
	}
	return r.n;
}

struct target {
	uint32_t sub;
	struct in6_addr client, server;
	uint16_t port;
};

struct announcer {
	ev_timer timer;
	struct ev_loop *loop;
	struct pcpd_server *srv;
	struct udp_server *udp;
	struct target *t;
	size_t n;
	unsigned round;
	double interval;
	unsigned sent;
};

static void announce_round(struct announcer *a)
{
	struct pcp_response rsp;
	memset(&rsp, 0, sizeof(rsp));
	rsp.opcode = PCP_OP_ANNOUNCE;
	rsp.result = PCP_SUCCESS;
	uint32_t now = mtime_sec();
	rsp.epoch = pcp_epoch(&a->srv->handler, now);
	uint8_t buf[PCP_MAX_LEN];
	size_t len = pcp_encode_response(&rsp, buf, sizeof(buf));
	rcu_read_lock();
	for (size_t i = 0; i < a->n && len; i++) {
		const struct target *t = &a->t[i];
		int fd = udp_server_fd(a->udp, &t->server);
		struct subscriber *sub = subs_by_index(a->srv->subs, t->sub);
		if (fd < 0)
			continue;
		/* IPv4 clients sit behind a softwire: leave through it */
		struct pcp_meta m = { .src = t->client, .sport = t->port, .dst = t->server,
				      .dport = a->srv->cfg->port, .fd = fd,
				      .ifindex = sub && addr_is_v4mapped(&t->client) ? sub->ifindex : 0,
				      .now = now };
		udp_reply(&m, buf, len);
		a->sent++;
	}
	rcu_read_unlock();
}

static void on_announce(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)revents;
	struct announcer *a = w->data;
	announce_round(a);
	if (++a->round >= ANNOUNCE_TIMES) {
		log_info("restart: unsolicited ANNOUNCE sent %u times to %zu client(s)", a->round,
			 a->n);
		return;
	}
	a->interval *= 2;
	ev_timer_set(&a->timer, a->interval, 0);
	ev_timer_start(loop, &a->timer);
}

int restart_load_clients(const char *state_dir, struct subscribers *subs)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/clients", state_dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	int n = 0;
	char line[256];
	rcu_read_lock();
	while (fgets(line, sizeof(line), f)) {
		char c[ADDR_STRLEN], s[ADDR_STRLEN];
		unsigned idx, port;
		struct in6_addr ca, sa;
		if (sscanf(line, "%u %45s %u %45s", &idx, c, &port, s) != 4 || port == 0 ||
		    port > 65535 || !addr_parse(c, &ca) || !addr_parse(s, &sa))
			continue;     /* a torn or foreign line: skip it */
		struct subscriber *sub = subs_by_index_or_derive(subs, idx);
		if (!sub)
			continue;     /* no longer configured */
		pthread_mutex_lock(&sub->lock);
		if (!sub->client_port) {      /* a client seen since start wins */
			sub->client_addr = ca;
			sub->client_server = sa;
			sub->client_port = (uint16_t)port;
			n++;
		}
		pthread_mutex_unlock(&sub->lock);
	}
	rcu_read_unlock();
	fclose(f);
	return n;
}

struct collect {
	struct announcer *a;
	size_t cap;
};

static int collect_one(void *arg, struct subscriber *sub)
{
	struct collect *c = arg;
	struct announcer *a = c->a;
	struct target t = { .sub = sub->index };
	pthread_mutex_lock(&sub->lock);
	t.client = sub->client_addr;
	t.server = sub->client_server;
	t.port = sub->client_port;
	pthread_mutex_unlock(&sub->lock);
	if (!t.port)
		return 0;
	if (a->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct target *nt = realloc(a->t, cap * sizeof(*nt));
		if (!nt)
			return 1;
		a->t = nt;
		c->cap = cap;
	}
	a->t[a->n++] = t;
	return 0;
}

struct announcer *announcer_start(struct ev_loop *loop, struct pcpd_server *srv,
				  struct udp_server *udp)
{
	struct announcer *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	struct collect c = { .a = a };
	rcu_read_lock();
	subs_foreach(srv->subs, collect_one, &c);
	rcu_read_unlock();
	if (a->n == 0) {
		announcer_free(a);
		return NULL;
	}
	a->srv = srv;
	a->udp = udp;
	a->loop = loop;
	a->interval = ANNOUNCE_FIRST;
	log_warn("restart: mapping state was lost; telling %zu known client(s) (RFC 6887 §14.1.3)",
		 a->n);
	announce_round(a);        /* the first one at once */
	a->round = 1;
	ev_timer_init(&a->timer, on_announce, a->interval, 0);
	a->timer.data = a;
	ev_timer_start(loop, &a->timer);
	return a;
}

unsigned announcer_sent(const struct announcer *a)
{
	return a ? a->sent : 0;
}

void announcer_free(struct announcer *a)
{
	if (!a)
		return;
	if (a->loop)
		ev_timer_stop(a->loop, &a->timer);
	free(a->t);
	free(a);
}
