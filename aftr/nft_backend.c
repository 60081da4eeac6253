/* The nftables kernel backend: the table of nft_msg.h, kept in step with
 * the mapping table through libmnl + libnftnl (no nft binary).
 *
 * submit() copies the change into a queue (any thread). flush() takes the
 * commit lock, then everything queued, turns each change into element
 * operations against its record of what is installed (a hash keyed by
 * protocol, external address and port), and commits them in nf_tables
 * transactions: BEGIN, DESTROYSETELEM messages, NEWSETELEM (create)
 * messages, NEWSETELEM (update) messages, END, one sendmsg, every message
 * acked. Elements of one set and one kind from all the changes share
 * messages; a message is cut before its element list would pass the
 * 16-bit attribute length. A transaction holds at most txn_cap changes
 * and never two changes of the same binding (a second one starts the
 * next transaction, so the order of operations on a binding is kept).
 *
 * The kernel applies a transaction entirely or not at all. If it refuses
 * one, every change of it is committed again in its own transaction, so
 * each gets its own answer. If the acks are lost (ENOBUFS on the receive
 * queue) the transaction is sent again in an idempotent form (creates
 * without NLM_F_EXCL; deletes are DESTROYSETELEM, which does not fail on
 * absent elements), whose acks then tell. done() is called after the
 * commit lock is released: it may submit().
 *
 * Kernels before 6.3 (no DESTROYSETELEM) get DELSETELEM, and a delete of
 * an element the kernel already expired fails the transaction with
 * ENOENT; the change is then committed as single deletes that may fail
 * that way followed by the rest. Kernels before 6.10 cannot update an
 * element's timeout in place: a refresh deletes and re-creates it in one
 * transaction. Both are probed at open().
 *
 * Conntrack work that follows a commit (flush by the binding's ct mark on
 * delete or when the inbound part or the filters change; PEER flows) is
 * done before done(), under the commit lock so that a later commit of the
 * same binding cannot overtake it.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <libmnl/libmnl.h>

#include "aftr/backend.h"
#include "aftr/ct.h"
#include "aftr/nft_msg.h"
#include "common/addr.h"
#include "common/log.h"
#include "common/mtime.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif
#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif

#define RBUF_SIZE (256u * 1024u)
#define RCVBUF_SIZE (8 << 20)
#define TXN_BYTES_MAX ((size_t)16 << 20)
#define ACK_WAIT_MS 5000
#define TMO_SLACK_MS 1000          /* a refresh moving the expiry less than this writes nothing */
#define UD_SLACK_S 2               /* peer expiries within this are the same user data */
#define RESEND_MAX 3
#define CLEAN_TXN_ELEMS 20000

/* ---- records of what is installed ---- */

struct nb_rec {
	struct nb_rec *next;
	uint64_t key;
	uint32_t ext_v4, int_v4;
	uint16_t ext_port, int_port, zone;
	uint8_t proto, flags;        /* BF_MAP: the inbound part is installed */
	bool filtered;               /* pcp_filtered element (and ranges) installed */
	uint32_t sub, mark, txn;
	uint32_t timeout, map_timeout;       /* seconds as last written, 0 = none */
	uint64_t deadline, map_deadline;     /* monotonic ms, 0 = never */
	uint32_t nranges;
	struct nftm_range *ranges;
	uint16_t ulen;
	uint8_t udata[];
};

struct rec_table {
	struct nb_rec **b;
	size_t nb, n;                /* buckets (power of two), records */
};

static uint64_t ext_key64(uint32_t ext, uint8_t proto, uint16_t port)
{
	return (uint64_t)ext << 24 | (uint64_t)proto << 16 | port;
}

static size_t hash64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	return (size_t)k;
}

static struct nb_rec **rec_slot(struct rec_table *t, uint64_t key)
{
	struct nb_rec **pp = &t->b[hash64(key) & (t->nb - 1)];
	while (*pp && (*pp)->key != key)
		pp = &(*pp)->next;
	return pp;
}

static void rec_grow(struct rec_table *t)
{
	size_t nb = t->nb * 2;
	struct nb_rec **v = calloc(nb, sizeof(*v));
	if (!v)
		return;
	for (size_t i = 0; i < t->nb; i++) {
		struct nb_rec *r = t->b[i];
		while (r) {
			struct nb_rec *next = r->next;
			size_t h = hash64(r->key) & (nb - 1);
			r->next = v[h];
			v[h] = r;
			r = next;
		}
	}
	free(t->b);
	t->b = v;
	t->nb = nb;
}

static void rec_insert(struct rec_table *t, struct nb_rec *r)
{
	struct nb_rec **pp = rec_slot(t, r->key);
	r->next = NULL;
	*pp = r;
	if (++t->n > t->nb)
		rec_grow(t);
}

static struct nb_rec *rec_remove(struct rec_table *t, uint64_t key)
{
	struct nb_rec **pp = rec_slot(t, key);
	struct nb_rec *r = *pp;
	if (r) {
		*pp = r->next;
		r->next = NULL;
		t->n--;
	}
	return r;
}

static void rec_free(struct nb_rec *r)
{
	if (r) {
		free(r->ranges);
		free(r);
	}
}

static void rec_clear(struct rec_table *t)
{
	for (size_t i = 0; i < t->nb; i++) {
		struct nb_rec *r = t->b[i];
		while (r) {
			struct nb_rec *next = r->next;
			rec_free(r);
			r = next;
		}
		t->b[i] = NULL;
	}
	t->n = 0;
}

/* ---- subscribers' data-plane state ---- */

struct nb_pub {
	uint32_t addr;
	uint16_t lo, hi;
};

struct nb_if {
	struct nb_if *next;          /* ifname hash chain */
	struct nb_if *znext;         /* the zone's list */
	char name[IF_NAMESIZE];
	uint16_t zone;
};

struct nb_sub {
	struct nb_if *ifs;
	struct nb_pub *pz, *pm;      /* pub_zone / pub_mark ranges */
	unsigned npz, npm;
	bool block, addr;            /* zone_block / zone_addr element */
};

#define IFHASH 1024

/* ---- queued changes ---- */

enum { POST_FLUSH = 1, POST_PEER = 2 };

struct nb_pend {
	struct kchange c;            /* filters/peers/new_peer point into this allocation */
	kbackend_done_fn done;
	void *arg;
	enum perr res;
	bool planned;                /* its record changes are in the current transaction */
	uint8_t post;
	uint32_t flush_mark;
	struct nb_rec *old, *new;
	struct kpeer np;
	struct aftr_filter filt[];   /* then the peers */
};

struct nb_txn {
	struct nftm_buf grp[NFTM_NOPS][NFTM_NSETS];
	size_t bytes;
	unsigned nops;
	bool oom;
};

enum tx_status { TX_OK, TX_FAIL, TX_UNKNOWN, TX_SENDFAIL };

struct tx_result {
	enum tx_status st;
	int err;                     /* errno of the first refusal */
	struct nftm_msginfo bad;     /* the refused message */
};

struct nb {
	struct kbackend kb;          /* first: the generic handle */
	char *table;
	bool keep_table;
	const struct aftr_config *aftr;
	struct kbackend_conf conf;   /* for kmark_id() */

	pthread_mutex_t qlock;       /* the queue */
	struct nb_pend **q;
	size_t nq, qcap;

	pthread_mutex_t lock;        /* commits, records, socket */
	struct mnl_socket *nl;
	uint32_t portid;
	uint8_t *rbuf;
	int sndbuf;                  /* effective SO_SNDBUF */
	struct nftm_batch bt;
	struct nb_txn txn;
	uint32_t txn_id;
	unsigned txn_cap;
	size_t txn_bytes_max;
	struct rec_table recs;
	struct nb_sub *subs[65536];
	struct nb_if *ifh[IFHASH];
	bool destroy;                /* DESTROYSETELEM supported */
	bool tmo_update;             /* NEWSETELEM updates an existing element's timeout */
	unsigned lose_acks;          /* test hook */
	struct ct *ct;

	pthread_mutex_t ctlock;      /* the conntrack handle (after lock) */
	pthread_mutex_t slock;       /* stats */
	struct kbackend_stats st;
};

static struct nb *nbk(struct kbackend *kb)
{
	return (struct nb *)kb;
}

static uint32_t now_real(void)
{
	return (uint32_t)time(NULL);
}

/* ---- transactions being built ---- */

static void txn_reset(struct nb_txn *t)
{
	for (int o = 0; o < NFTM_NOPS; o++)
		for (int s = 0; s < NFTM_NSETS; s++)
			nftm_buf_reset(&t->grp[o][s]);
	t->bytes = 0;
	t->nops = 0;
	t->oom = false;
}

static void txn_free(struct nb_txn *t)
{
	for (int o = 0; o < NFTM_NOPS; o++)
		for (int s = 0; s < NFTM_NSETS; s++)
			nftm_buf_free(&t->grp[o][s]);
}

static void txn_put(struct nb_txn *t, enum nftm_op op, struct nftm_elem e)
{
	if (op == NFTM_OP_DEL) {
		/* the key (and end key) names the element */
		e.dlen = 0;
		e.timeout_ms = e.expiration_ms = 0;
		e.udata = NULL;
		e.ulen = 0;
	} else if (op == NFTM_OP_UPD) {
		e.expiration_ms = e.timeout_ms;     /* restart the countdown */
	}
	struct nftm_buf *b = &t->grp[op][e.set];
	size_t before = b->len;
	if (!nftm_elem_put(b, &e)) {
		t->oom = true;
		return;
	}
	t->bytes += b->len - before;
	t->nops++;
}

/* Assembles the transaction: deletes, creates, updates (only the kinds
 * in opmask). idempotent: creates without NLM_F_EXCL. */
static bool build_batch(struct nb *nb, const struct nb_txn *t, unsigned opmask, bool idempotent)
{
	if (!nftm_batch_begin(&nb->bt))
		return false;
	for (int o = 0; o < NFTM_NOPS; o++) {
		if (!(opmask & (1u << o)))
			continue;
		enum nftm_op op = (o == NFTM_OP_ADD && idempotent) ? NFTM_OP_UPD : (enum nftm_op)o;
		for (int s = 0; s < NFTM_NSETS; s++) {
			const struct nftm_buf *g = &t->grp[o][s];
			if (g->len && !nftm_batch_elems(&nb->bt, nb->table, (enum nftm_set)s, op,
							nb->destroy, g->p, g->len))
				return false;
		}
	}
	return nftm_batch_end(&nb->bt);
}

/* ---- talking to the kernel ---- */

static void stat_enobufs(struct nb *nb)
{
	pthread_mutex_lock(&nb->slock);
	nb->st.enobufs++;
	pthread_mutex_unlock(&nb->slock);
}

static bool ensure_sndbuf(struct nb *nb, size_t len)
{
	if ((size_t)nb->sndbuf >= len + 4096)
		return true;
	int fd = mnl_socket_get_fd(nb->nl);
	size_t want = len + (len >> 2) + 65536;
	if (want > INT32_MAX / 2)
		want = INT32_MAX / 2;
	int v = (int)want;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
	socklen_t sl = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, &sl) == 0)
		nb->sndbuf = v;
	return (size_t)nb->sndbuf >= len + 4096;
}

/* Reads one datagram; waits up to wait_ms for it (0 = only what is
 * already queued). -1 with errno (EAGAIN when nothing came). */
static ssize_t recv_some(struct nb *nb, int wait_ms)
{
	int fd = mnl_socket_get_fd(nb->nl);
	uint64_t end = mtime_ms() + (uint64_t)(wait_ms > 0 ? wait_ms : 0);
	for (;;) {
		ssize_t n = recv(fd, nb->rbuf, RBUF_SIZE, MSG_DONTWAIT);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -1;
		int64_t left = (int64_t)(end - mtime_ms());
		if (left <= 0) {
			errno = EAGAIN;
			return -1;
		}
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			return -1;
	}
}

/* Drops whatever is queued on the socket (stale answers). */
static void drain(struct nb *nb)
{
	while (recv_some(nb, 0) > 0)
		;
}

/* Sends nb->bt and reads an ack or error for every message. */
static struct tx_result send_batch(struct nb *nb)
{
	struct tx_result res = { TX_OK, 0, { 0 } };
	struct nftm_batch *bt = &nb->bt;
	unsigned n = bt->nmsgs;
	if (!ensure_sndbuf(nb, bt->b.len)) {
		res.st = TX_SENDFAIL;
		res.err = EMSGSIZE;
		return res;
	}
	uint8_t *seen = calloc(n ? n : 1, 1);
	if (!seen) {
		res.st = TX_SENDFAIL;
		res.err = ENOMEM;
		return res;
	}
	drain(nb);
	uint64_t t0 = mtime_ms();
	struct timespec ts0, ts1;
	clock_gettime(CLOCK_MONOTONIC, &ts0);
	ssize_t sent;
	do
		sent = mnl_socket_sendto(nb->nl, bt->b.p, bt->b.len);
	while (sent < 0 && errno == EINTR);
	if (sent < 0) {
		res.st = TX_SENDFAIL;
		res.err = errno;
		if (errno == ENOBUFS)
			stat_enobufs(nb);
		free(seen);
		return res;
	}
	bool lost = false;
	if (nb->lose_acks) {
		/* test hook: the answers vanish as on a receive queue overflow */
		nb->lose_acks--;
		drain(nb);
		stat_enobufs(nb);
		lost = true;
	}
	unsigned got = 0;
	bool begin_err = false;
	while (got < n && !begin_err) {
		/* everything was queued while the kernel ran the batch inside
		 * sendmsg(); after a loss only read what is there */
		int left = lost ? 0 : ACK_WAIT_MS - (int)(mtime_ms() - t0);
		ssize_t len = recv_some(nb, left > 0 ? left : 0);
		if (len < 0) {
			if (errno == ENOBUFS) {
				stat_enobufs(nb);
				lost = true;
				continue;
			}
			break;
		}
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)nb->rbuf;
		int rem = (int)len;
		for (; mnl_nlmsg_ok(nlh, rem); nlh = mnl_nlmsg_next(nlh, &rem)) {
			if (nlh->nlmsg_type != NLMSG_ERROR ||
			    nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(struct nlmsgerr))
				continue;
			const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
			if (nlh->nlmsg_seq == bt->begin_seq) {
				if (e->error) {
					res.err = -e->error;
					begin_err = true;
				}
				continue;
			}
			const struct nftm_msginfo *mi = nftm_batch_msg(bt, nlh->nlmsg_seq);
			if (!mi)
				continue;      /* not ours */
			size_t i = (size_t)(mi - bt->msgs);
			if (!seen[i]) {
				seen[i] = 1;
				got++;
			}
			if (e->error && !res.err) {
				res.err = -e->error;
				res.bad = *mi;
			}
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &ts1);
	int64_t dus = (int64_t)(ts1.tv_sec - ts0.tv_sec) * 1000000 +
		      (int64_t)(ts1.tv_nsec - ts0.tv_nsec) / 1000;
	uint64_t us = dus > 0 ? (uint64_t)dus : 0;
	free(seen);
	if (res.err)
		res.st = TX_FAIL;           /* any refusal aborts the whole transaction */
	else if (got < n || lost)
		res.st = TX_UNKNOWN;
	pthread_mutex_lock(&nb->slock);
	nb->st.messages += n + 2;
	if (res.st == TX_OK) {
		nb->st.commits++;
		nb->st.latency_us_sum += us;
		if (us > nb->st.latency_us_max)
			nb->st.latency_us_max = us;
	} else if (res.st == TX_FAIL) {
		nb->st.commit_failures++;
	}
	pthread_mutex_unlock(&nb->slock);
	return res;
}

/* Commits a transaction (the kinds in opmask); an unknown outcome is
 * resolved by sending it again idempotently. */
static struct tx_result commit(struct nb *nb, const struct nb_txn *t, unsigned opmask)
{
	struct tx_result r = { TX_SENDFAIL, ENOMEM, { 0 } };
	if (t->oom || !build_batch(nb, t, opmask, false))
		return r;
	r = send_batch(nb);
	for (int i = 0; i < RESEND_MAX && r.st == TX_UNKNOWN; i++) {
		log_warn("nft: acks of a transaction lost, sending it again");
		if (!build_batch(nb, t, opmask, true)) {
			r.st = TX_SENDFAIL;
			r.err = ENOMEM;
			break;
		}
		r = send_batch(nb);
	}
	return r;
}

#define OPS_ALL ((1u << NFTM_OP_DEL) | (1u << NFTM_OP_ADD) | (1u << NFTM_OP_UPD))

/* On kernels without DESTROYSETELEM a delete of an element the kernel
 * already expired fails with ENOENT: delete one by one, ignoring that,
 * then commit the rest. */
static struct tx_result commit_tolerant(struct nb *nb, const struct nb_txn *t)
{
	struct tx_result r = { TX_OK, 0, { 0 } };
	for (int s = 0; s < NFTM_NSETS; s++) {
		const struct nftm_buf *g = &t->grp[NFTM_OP_DEL][s];
		size_t off = 0;
		while (off < g->len) {
			const struct nlattr *a = (const struct nlattr *)(g->p + off);
			size_t alen = NLA_ALIGN(a->nla_len);
			if (!nftm_batch_begin(&nb->bt) ||
			    !nftm_batch_elems(&nb->bt, nb->table, (enum nftm_set)s, NFTM_OP_DEL,
					      nb->destroy, g->p + off, alen) ||
			    !nftm_batch_end(&nb->bt)) {
				r.st = TX_SENDFAIL;
				r.err = ENOMEM;
				return r;
			}
			r = send_batch(nb);
			if (r.st == TX_FAIL && r.err == ENOENT)
				r.st = TX_OK;
			if (r.st != TX_OK)
				return r;
			off += alen;
		}
	}
	return commit(nb, t, (1u << NFTM_OP_ADD) | (1u << NFTM_OP_UPD));
}

/* A synchronous request (GET or dump); cb sees each data message.
 * Returns 0, or an errno. */
static int request(struct nb *nb, struct nlmsghdr *req, int (*cb)(const struct nlmsghdr *, void *),
		   void *arg)
{
	uint32_t seq = req->nlmsg_seq;
	bool dump = req->nlmsg_flags & NLM_F_DUMP;
	drain(nb);
	ssize_t sent;
	do
		sent = mnl_socket_sendto(nb->nl, req, req->nlmsg_len);
	while (sent < 0 && errno == EINTR);
	if (sent < 0)
		return errno;
	int cberr = 0;
	for (;;) {
		ssize_t len = recv_some(nb, ACK_WAIT_MS);
		if (len < 0)
			return errno == EAGAIN ? ETIMEDOUT : errno;
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)nb->rbuf;
		int rem = (int)len;
		for (; mnl_nlmsg_ok(nlh, rem); nlh = mnl_nlmsg_next(nlh, &rem)) {
			if (nlh->nlmsg_seq != seq)
				continue;
			if (nlh->nlmsg_type == NLMSG_DONE)
				return cberr;
			if (nlh->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
				if (e->error)
					return -e->error;
				if (!dump)
					return cberr;
				continue;
			}
			if (!cberr && cb(nlh, arg) != 0)
				cberr = EPROTO;
		}
	}
}

static uint32_t next_seq(struct nb *nb)
{
	return nb->bt.seq++;
}

struct dump_ctx {
	nftm_elem_cb cb;
	void *arg;
};

static int dump_msg_cb(const struct nlmsghdr *nlh, void *arg)
{
	struct dump_ctx *d = arg;
	return nftm_parse_elems(nlh, d->cb, d->arg) ? -1 : 0;
}

static int dump_set(struct nb *nb, enum nftm_set s, nftm_elem_cb cb, void *arg)
{
	uint8_t req[1024];
	struct dump_ctx d = { cb, arg };
	return request(nb, nftm_req_dumpelems(req, nb->table, s, next_seq(nb)), dump_msg_cb, &d);
}

/* ---- open: table, probes ---- */

struct set_check {
	bool seen[NFTM_NSETS];
	bool bad;
};

static int set_check_cb(const struct nlmsghdr *nlh, void *arg)
{
	struct set_check *c = arg;
	struct nftm_set_info got, want;
	if (!nftm_parse_set(nlh, &got))
		return 0;
	int s = nftm_set_by_name(got.name);
	if (s < 0)
		return 0;           /* anonymous sets */
	nftm_set_expected((enum nftm_set)s, &want);
	/* the kernel may add flags of its own (e.g. EVAL); ours must be there */
	if ((got.flags & want.flags) != want.flags ||
	    (got.flags & (NFT_SET_INTERVAL | NFT_SET_MAP | NFT_SET_TIMEOUT)) !=
		    (want.flags & (NFT_SET_INTERVAL | NFT_SET_MAP | NFT_SET_TIMEOUT)) ||
	    got.key_len != want.key_len || got.key_type != want.key_type ||
	    ((want.flags & NFT_SET_MAP) && (got.data_len != want.data_len ||
					    got.data_type != want.data_type)))
		c->bad = true;
	c->seen[s] = true;
	return 0;
}

static const char *const chain_names[] = { "raw_pre", "filter_pre", "nat_pre", "nat_post" };

static int chain_check_cb(const struct nlmsghdr *nlh, void *arg)
{
	unsigned *mask = arg;
	char name[64];
	if (nftm_parse_chain_name(nlh, name))
		for (unsigned i = 0; i < 4; i++)
			if (strcmp(name, chain_names[i]) == 0)
				*mask |= 1u << i;
	return 0;
}

static int ignore_cb(const struct nlmsghdr *nlh, void *arg)
{
	(void)nlh;
	(void)arg;
	return 0;
}

/* 0 = absent, 1 = ours, 2 = something else under that name, <0 = -errno */
static int table_state(struct nb *nb)
{
	uint8_t req[1024];
	int e = request(nb, nftm_req_gettable(req, nb->table, next_seq(nb)), ignore_cb, NULL);
	if (e == ENOENT)
		return 0;
	if (e)
		return -e;
	struct set_check sc = { { false }, false };
	e = request(nb, nftm_req_getsets(req, nb->table, next_seq(nb)), set_check_cb, &sc);
	if (e)
		return -e;
	unsigned chains = 0;
	e = request(nb, nftm_req_getchains(req, nb->table, next_seq(nb)), chain_check_cb, &chains);
	if (e)
		return -e;
	if (sc.bad || chains != 0xf)
		return 2;
	for (int s = 0; s < NFTM_NSETS; s++)
		if (!sc.seen[s])
			return 2;
	return 1;
}

static struct tx_result commit_objects(struct nb *nb, bool del, bool create)
{
	struct tx_result r = { TX_SENDFAIL, ENOMEM, { 0 } };
	if (!nftm_batch_begin(&nb->bt) || (del && !nftm_batch_deltable(&nb->bt, nb->table)) ||
	    (create && !nftm_batch_skeleton(&nb->bt, nb->table)) || !nftm_batch_end(&nb->bt))
		return r;
	return send_batch(nb);
}

/* One element in a one-message transaction of its own. */
static struct tx_result commit_one(struct nb *nb, enum nftm_op op, struct nftm_elem e)
{
	txn_reset(&nb->txn);
	txn_put(&nb->txn, op, e);
	return commit(nb, &nb->txn, OPS_ALL);
}

struct get_ctx {
	bool found;
	struct nftm_elem e;
};

static int get_cb(const struct nftm_elem *e, void *arg)
{
	struct get_ctx *g = arg;
	g->found = true;
	g->e = *e;
	g->e.udata = NULL;
	return 0;
}

static int get_msg_cb(const struct nlmsghdr *nlh, void *arg)
{
	return nftm_parse_elems(nlh, get_cb, arg) ? -1 : 0;
}

/* What this kernel can do: DESTROYSETELEM (6.3), timeout update of an
 * existing element by NEWSETELEM without NLM_F_EXCL (6.10). Uses a
 * scratch element of pcp_filtered (0.0.0.0, protocol 0, port 0: never a
 * real binding). */
static void probe(struct nb *nb)
{
	struct nftm_elem e;
	nftm_filtered_elem(&e, 0, 0, 0);
	nb->destroy = true;
	struct tx_result r = commit_one(nb, NFTM_OP_DEL, e);
	if (r.st != TX_OK) {
		nb->destroy = false;
		commit_one(nb, NFTM_OP_DEL, e);   /* may fail with ENOENT: fine */
	}
	nb->tmo_update = false;
	e.timeout_ms = 60000;
	r = commit_one(nb, NFTM_OP_ADD, e);
	if (r.st == TX_OK) {
		e.timeout_ms = 120000;
		r = commit_one(nb, NFTM_OP_UPD, e);
		if (r.st == TX_OK) {
			uint8_t req[1024];
			struct get_ctx g = { false, { 0 } };
			if (request(nb, nftm_req_getelem(req, nb->table, &e, next_seq(nb)), get_msg_cb,
				    &g) == 0 &&
			    g.found && g.e.timeout_ms == 120000)
				nb->tmo_update = true;
		}
		commit_one(nb, NFTM_OP_DEL, e);
	}
	log_info("nft: kernel %s DESTROYSETELEM, %s element timeout update",
		 nb->destroy ? "has" : "lacks", nb->tmo_update ? "has" : "lacks");
}

/* ---- subscribers: state read back at open ---- */

static size_t if_hash(const char *name)
{
	size_t h = 5381;
	for (size_t i = 0; i < IF_NAMESIZE && name[i]; i++)
		h = h * 33 + (unsigned char)name[i];
	return h & (IFHASH - 1);
}

static struct nb_if **if_slot(struct nb *nb, const char *name)
{
	struct nb_if **pp = &nb->ifh[if_hash(name)];
	while (*pp && strncmp((*pp)->name, name, IF_NAMESIZE) != 0)
		pp = &(*pp)->next;
	return pp;
}

static struct nb_sub *sub_get(struct nb *nb, uint16_t zone, bool create)
{
	if (!nb->subs[zone] && create)
		nb->subs[zone] = calloc(1, sizeof(struct nb_sub));
	return nb->subs[zone];
}

/* Unlinks an ifname entry from the hash and its zone, frees it. */
static void if_forget(struct nb *nb, struct nb_if *f)
{
	struct nb_if **pp = if_slot(nb, f->name);
	if (*pp == f)
		*pp = f->next;
	struct nb_sub *s = nb->subs[f->zone];
	for (struct nb_if **zp = s ? &s->ifs : NULL; zp && *zp; zp = &(*zp)->znext) {
		if (*zp == f) {
			*zp = f->znext;
			break;
		}
	}
	free(f);
}

static bool if_add(struct nb *nb, const char *name, uint16_t zone)
{
	struct nb_sub *s = sub_get(nb, zone, true);
	struct nb_if *f = calloc(1, sizeof(*f));
	if (!s || !f) {
		free(f);
		return false;
	}
	strncpy(f->name, name, IF_NAMESIZE - 1);
	f->zone = zone;
	struct nb_if **pp = if_slot(nb, name);
	if (*pp)
		if_forget(nb, *pp);
	pp = if_slot(nb, name);
	*pp = f;
	f->znext = s->ifs;
	s->ifs = f;
	return true;
}

static bool pub_push(struct nb_pub **v, unsigned *n, uint32_t addr, uint16_t lo, uint16_t hi)
{
	struct nb_pub *p = realloc(*v, (*n + 1) * sizeof(**v));
	if (!p)
		return false;
	p[*n] = (struct nb_pub){ addr, lo, hi };
	*v = p;
	(*n)++;
	return true;
}

static void sub_free(struct nb *nb, uint16_t zone)
{
	struct nb_sub *s = nb->subs[zone];
	if (!s)
		return;
	while (s->ifs)
		if_forget(nb, s->ifs);
	free(s->pz);
	free(s->pm);
	free(s);
	nb->subs[zone] = NULL;
}

struct sub_load {
	struct nb *nb;
	struct nb_txn *clean;        /* elements to delete */
};

static int sub_load_cb(const struct nftm_elem *e, void *arg)
{
	struct sub_load *l = arg;
	struct nb *nb = l->nb;
	uint16_t zone;
	uint32_t addr, mark;
	uint16_t lo, hi;
	char ifname[IF_NAMESIZE];
	struct nb_sub *s;
	switch (e->set) {
	case NFTM_SW_ZONE:
		if (nftm_ifname_get(e, ifname) && nftm_zone_data_get(e, &zone) && zone &&
		    if_add(nb, ifname, zone))
			return 0;
		break;
	case NFTM_PUB_ZONE:
		if (nftm_pub_key_get(e, &addr, &lo, &hi) && nftm_zone_data_get(e, &zone) && zone &&
		    (s = sub_get(nb, zone, true)) && pub_push(&s->pz, &s->npz, addr, lo, hi))
			return 0;
		break;
	case NFTM_PUB_MARK:
		/* mark and zone of a subscriber are the same number (backend.h) */
		if (nftm_pub_key_get(e, &addr, &lo, &hi) && nftm_mark_get(e, &mark) && mark &&
		    mark <= UINT16_MAX && (s = sub_get(nb, (uint16_t)mark, true)) &&
		    pub_push(&s->pm, &s->npm, addr, lo, hi))
			return 0;
		break;
	case NFTM_ZONE_BLOCK:
		if (nftm_zone_key_get(e, &zone) && zone && (s = sub_get(nb, zone, true))) {
			s->block = true;
			return 0;
		}
		break;
	case NFTM_ZONE_ADDR:
		if (nftm_zone_key_get(e, &zone) && zone && (s = sub_get(nb, zone, true))) {
			s->addr = true;
			return 0;
		}
		break;
	default:
		break;
	}
	txn_put(l->clean, NFTM_OP_DEL, *e);
	return 0;
}

static void subs_load(struct nb *nb)
{
	struct nb_txn clean;
	memset(&clean, 0, sizeof(clean));
	struct sub_load l = { nb, &clean };
	static const enum nftm_set which[] = { NFTM_SW_ZONE, NFTM_PUB_ZONE, NFTM_PUB_MARK,
					       NFTM_ZONE_BLOCK, NFTM_ZONE_ADDR };
	for (size_t i = 0; i < sizeof(which) / sizeof(which[0]); i++) {
		int e = dump_set(nb, which[i], sub_load_cb, &l);
		if (e)
			log_warn("nft: reading %s: %s", nftm_set_name(which[i]), strerror(e));
	}
	if (clean.nops) {
		struct tx_result r = nb->destroy ? commit(nb, &clean, OPS_ALL)
						 : commit_tolerant(nb, &clean);
		if (r.st != TX_OK)
			log_warn("nft: removing %u unusable subscriber element(s): %s", clean.nops,
				 strerror(r.err));
	}
	txn_free(&clean);
}

/* ---- open / close ---- */

static void nb_destroy(struct nb *nb)
{
	if (!nb)
		return;
	rec_clear(&nb->recs);
	free(nb->recs.b);
	for (unsigned z = 0; z < 65536; z++)
		sub_free(nb, (uint16_t)z);
	for (size_t i = 0; i < nb->nq; i++)
		free(nb->q[i]);
	free(nb->q);
	txn_free(&nb->txn);
	nftm_batch_free(&nb->bt);
	if (nb->ct)
		ct_close(nb->ct);
	if (nb->nl)
		mnl_socket_close(nb->nl);
	free(nb->rbuf);
	free(nb->table);
	pthread_mutex_destroy(&nb->qlock);
	pthread_mutex_destroy(&nb->lock);
	pthread_mutex_destroy(&nb->slock);
	pthread_mutex_destroy(&nb->ctlock);
	free(nb);
}

static struct kbackend *nft_open(const struct kbackend_conf *conf, bool *fresh)
{
	if (!conf || !conf->table || !conf->table[0]) {
		errno = EINVAL;
		return NULL;
	}
	struct nb *nb = calloc(1, sizeof(*nb));
	if (!nb)
		return NULL;
	pthread_mutex_init(&nb->qlock, NULL);
	pthread_mutex_init(&nb->lock, NULL);
	pthread_mutex_init(&nb->slock, NULL);
	pthread_mutex_init(&nb->ctlock, NULL);
	nb->kb.ops = &kbackend_nft_ops;
	nb->table = strdup(conf->table);
	nb->keep_table = conf->keep_table;
	nb->aftr = conf->aftr;
	nb->conf = *conf;
	nb->conf.table = nb->table;
	nb->txn_cap = NFTB_MAX_TXN_CHANGES;
	nb->txn_bytes_max = TXN_BYTES_MAX;
	nb->recs.nb = 1024;
	nb->recs.b = calloc(nb->recs.nb, sizeof(*nb->recs.b));
	nb->rbuf = malloc(RBUF_SIZE);
	nftm_batch_init(&nb->bt, (uint32_t)time(NULL));
	nb->nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!nb->table || !nb->recs.b || !nb->rbuf || !nb->nl ||
	    mnl_socket_bind(nb->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int e = errno;
		log_err("nft: netlink socket: %s", strerror(e));
		nb_destroy(nb);
		errno = e;
		return NULL;
	}
	nb->portid = mnl_socket_get_portid(nb->nl);
	int fd = mnl_socket_get_fd(nb->nl), one = 1, rcv = RCVBUF_SIZE;
	setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	ensure_sndbuf(nb, 1 << 20);

	int st = table_state(nb);
	bool created = false;
	struct tx_result r = { TX_OK, 0, { 0 } };
	if (st < 0) {
		log_err("nft: reading table ip %s: %s", nb->table, strerror(-st));
		nb_destroy(nb);
		errno = -st;
		return NULL;
	}
	if (st == 0 || st == 2) {
		if (st == 2)
			log_warn("nft: table ip %s is not pcpd's: replacing it", nb->table);
		r = commit_objects(nb, st == 2, true);
		created = true;
	}
	if (r.st != TX_OK) {
		log_err("nft: creating table ip %s: %s", nb->table, strerror(r.err));
		nb_destroy(nb);
		errno = r.err ? r.err : EIO;
		return NULL;
	}
	probe(nb);
	if (!created)
		subs_load(nb);
	nb->ct = ct_open();
	if (!nb->ct)
		log_warn("nft: no conntrack handle (%s): flows of deleted mappings stay",
			 strerror(errno));
	if (fresh)
		*fresh = created;
	return &nb->kb;
}

/* Changes still queued are dropped without done(): the owner frees its
 * side before closing (pcpd/server.c) and flushes before that. */
static void nft_close(struct kbackend *kb)
{
	if (!kb)
		return;
	struct nb *nb = nbk(kb);
	if (!nb->keep_table) {
		pthread_mutex_lock(&nb->lock);
		struct tx_result r = commit_objects(nb, true, false);
		if (r.st != TX_OK)
			log_warn("nft: deleting table ip %s: %s", nb->table, strerror(r.err));
		pthread_mutex_unlock(&nb->lock);
	}
	nb_destroy(nb);
}

/* ---- submit ---- */

static void nft_submit(struct kbackend *kb, const struct kchange *c, kbackend_done_fn done,
		       void *arg)
{
	struct nb *nb = nbk(kb);
	unsigned nf = c->filters ? c->nfilters : 0, np = c->peers ? c->npeers : 0;
	struct nb_pend *p = malloc(sizeof(*p) + nf * sizeof(struct aftr_filter) +
				   np * sizeof(struct kpeer));
	pthread_mutex_lock(&nb->slock);
	nb->st.changes++;
	pthread_mutex_unlock(&nb->slock);
	if (!p) {
		if (done)
			done(arg, PERR_NO_RESOURCES);
		return;
	}
	memset(p, 0, sizeof(*p));
	p->c = *c;
	p->done = done;
	p->arg = arg;
	struct kpeer *peers = (struct kpeer *)(void *)&p->filt[nf];
	if (nf)
		memcpy(p->filt, c->filters, nf * sizeof(struct aftr_filter));
	if (np)
		memcpy(peers, c->peers, np * sizeof(struct kpeer));
	p->c.filters = nf ? p->filt : NULL;
	p->c.nfilters = nf;
	p->c.peers = np ? peers : NULL;
	p->c.npeers = np;
	if (c->new_peer) {
		p->np = *c->new_peer;
		p->c.new_peer = &p->np;
	}
	pthread_mutex_lock(&nb->qlock);
	if (nb->nq == nb->qcap) {
		size_t cap = nb->qcap ? nb->qcap * 2 : 256;
		struct nb_pend **q = realloc(nb->q, cap * sizeof(*q));
		if (!q) {
			pthread_mutex_unlock(&nb->qlock);
			free(p);
			if (done)
				done(arg, PERR_NO_RESOURCES);
			return;
		}
		nb->q = q;
		nb->qcap = cap;
	}
	nb->q[nb->nq++] = p;
	pthread_mutex_unlock(&nb->qlock);
}

/* ---- planning: a change against the records ---- */

static uint64_t deadline_of(uint64_t now, uint32_t timeout)
{
	return timeout ? now + (uint64_t)timeout * 1000u : 0;
}

static bool dl_differs(uint64_t a, uint64_t b)
{
	return (a > b ? a - b : b - a) > TMO_SLACK_MS;
}

/* The record a change describes (not yet installed). */
static struct nb_rec *rec_build(const struct kchange *c, uint32_t mark, uint64_t now)
{
	uint8_t ud[NFTM_UDATA_MAX];
	size_t ulen = nftm_ud_encode(ud, c, now_real());
	struct nb_rec *r = calloc(1, sizeof(*r) + ulen);
	if (!r)
		return NULL;
	r->ext_v4 = addr_to_v4(&c->ext_addr);
	r->int_v4 = addr_to_v4(&c->int_addr);
	r->ext_port = c->ext_port;
	r->int_port = c->int_port;
	r->zone = c->zone;
	r->proto = c->proto;
	r->flags = c->flags & (uint8_t)~BF_PENDING;
	r->sub = c->sub;
	r->mark = mark;
	r->key = ext_key64(r->ext_v4, r->proto, r->ext_port);
	r->timeout = c->timeout;
	r->deadline = deadline_of(now, c->timeout);
	r->ulen = (uint16_t)ulen;
	memcpy(r->udata, ud, ulen);
	if (r->flags & BF_MAP) {
		r->map_timeout = c->map_timeout;
		r->map_deadline = deadline_of(now, c->map_timeout);
		unsigned nf = c->filters ? c->nfilters : 0;
		if (nf) {
			r->filtered = true;
			struct nftm_range tmp[32];
			size_t n = nftm_filter_ranges(c->filters, nf, tmp, 32);
			if (n == SIZE_MAX)
				goto oom;
			if (n) {
				r->ranges = malloc(n * sizeof(*r->ranges));
				if (!r->ranges)
					goto oom;
				if (n <= 32)
					memcpy(r->ranges, tmp, n * sizeof(*tmp));
				else
					nftm_filter_ranges(c->filters, nf, r->ranges, n);
				r->nranges = (uint32_t)n;
			}
		}
	}
	return r;
oom:
	rec_free(r);
	return NULL;
}

static struct nftm_elem el_snat(const struct nb_rec *r)
{
	struct nftm_elem e;
	nftm_snat_elem(&e, r->zone, r->int_v4, r->proto, r->int_port, r->ext_v4, r->ext_port);
	e.timeout_ms = (uint64_t)r->timeout * 1000u;
	e.udata = r->udata;
	e.ulen = r->ulen;
	return e;
}

static struct nftm_elem el_omark(const struct nb_rec *r)
{
	struct nftm_elem e;
	nftm_omark_elem(&e, r->zone, r->int_v4, r->proto, r->int_port, r->mark);
	e.timeout_ms = (uint64_t)r->timeout * 1000u;
	return e;
}

static struct nftm_elem el_dnat(const struct nb_rec *r)
{
	struct nftm_elem e;
	nftm_dnat_elem(&e, r->ext_v4, r->proto, r->ext_port, r->int_v4, r->int_port);
	e.timeout_ms = (uint64_t)r->map_timeout * 1000u;
	return e;
}

static struct nftm_elem el_imark(const struct nb_rec *r)
{
	struct nftm_elem e;
	nftm_imark_elem(&e, r->ext_v4, r->proto, r->ext_port, r->mark);
	e.timeout_ms = (uint64_t)r->map_timeout * 1000u;
	return e;
}

static struct nftm_elem el_filtered(const struct nb_rec *r)
{
	struct nftm_elem e;
	nftm_filtered_elem(&e, r->ext_v4, r->proto, r->ext_port);
	e.timeout_ms = (uint64_t)r->map_timeout * 1000u;
	return e;
}

static struct nftm_elem el_allow(const struct nb_rec *r, uint32_t i)
{
	struct nftm_elem e;
	nftm_allow_elem(&e, r->ext_v4, r->proto, r->ext_port, &r->ranges[i]);
	e.timeout_ms = (uint64_t)r->map_timeout * 1000u;
	return e;
}

static void emit_out(struct nb_txn *t, enum nftm_op op, const struct nb_rec *r)
{
	txn_put(t, op, el_snat(r));
	txn_put(t, op, el_omark(r));
}

static void emit_filters(struct nb_txn *t, enum nftm_op op, const struct nb_rec *r)
{
	if (!r->filtered)
		return;
	txn_put(t, op, el_filtered(r));
	for (uint32_t i = 0; i < r->nranges; i++)
		txn_put(t, op, el_allow(r, i));
}

static void emit_in(struct nb_txn *t, enum nftm_op op, const struct nb_rec *r)
{
	if (!(r->flags & BF_MAP))
		return;
	txn_put(t, op, el_dnat(r));
	txn_put(t, op, el_imark(r));
	emit_filters(t, op, r);
}

/* Writes element n (old version o) with a new timeout: in place where the
 * kernel can, else delete + create. */
static void rewrite(struct nb *nb, struct nb_txn *t, struct nftm_elem o, struct nftm_elem n,
		    bool in_place)
{
	if (in_place && nb->tmo_update) {
		txn_put(t, NFTM_OP_UPD, n);
	} else {
		txn_put(t, NFTM_OP_DEL, o);
		txn_put(t, NFTM_OP_ADD, n);
	}
}

static bool same_ranges(const struct nb_rec *a, const struct nb_rec *b)
{
	return a->filtered == b->filtered && a->nranges == b->nranges &&
	       (a->nranges == 0 ||
		memcmp(a->ranges, b->ranges, a->nranges * sizeof(*a->ranges)) == 0);
}

/* KOP_REFRESH: the element operations that turn o into n. Where nothing
 * is written, n takes o's installed values so that it stays the truth. */
static bool diff(struct nb *nb, struct nb_txn *t, const struct nb_rec *o, struct nb_rec *n)
{
	bool flush = false;
	bool int_chg = o->zone != n->zone || o->int_v4 != n->int_v4 || o->int_port != n->int_port;

	/* outbound: snat + omark */
	if (int_chg) {
		emit_out(t, NFTM_OP_DEL, o);
		emit_out(t, NFTM_OP_ADD, n);
		flush = true;
	} else {
		bool ud_chg = !nftm_ud_equivalent(o->udata, o->ulen, n->udata, n->ulen, UD_SLACK_S);
		bool zero_chg = (o->timeout == 0) != (n->timeout == 0);
		bool tmo_chg = n->timeout && (zero_chg || dl_differs(o->deadline, n->deadline));
		if (!ud_chg && !zero_chg && !tmo_chg) {
			n->timeout = o->timeout;
			n->deadline = o->deadline;
			memcpy(n->udata, o->udata, o->ulen);  /* equivalent: same length */
		} else {
			bool in_place = o->timeout && n->timeout;
			if (!ud_chg)
				memcpy(n->udata, o->udata, o->ulen);
			if (ud_chg) {
				txn_put(t, NFTM_OP_DEL, el_snat(o));
				txn_put(t, NFTM_OP_ADD, el_snat(n));
			} else {
				rewrite(nb, t, el_snat(o), el_snat(n), in_place);
			}
			if (zero_chg || tmo_chg || n->timeout)
				rewrite(nb, t, el_omark(o), el_omark(n), in_place);
		}
	}

	/* inbound: dnat, imark, filters */
	bool om = o->flags & BF_MAP, nm = n->flags & BF_MAP;
	if (om && !nm) {
		emit_in(t, NFTM_OP_DEL, o);
		flush = true;
	} else if (!om && nm) {
		emit_in(t, NFTM_OP_ADD, n);
	} else if (om && nm) {
		bool f_chg = !same_ranges(o, n);
		bool mzero = (o->map_timeout == 0) != (n->map_timeout == 0);
		bool mtmo = n->map_timeout && (mzero || dl_differs(o->map_deadline, n->map_deadline));
		if (!int_chg && !f_chg && !mzero && !mtmo) {
			n->map_timeout = o->map_timeout;
			n->map_deadline = o->map_deadline;
		} else {
			bool wr = mzero || mtmo || n->map_timeout;   /* everything gets n's expiry */
			bool in_place = o->map_timeout && n->map_timeout;
			if (int_chg) {
				txn_put(t, NFTM_OP_DEL, el_dnat(o));
				txn_put(t, NFTM_OP_ADD, el_dnat(n));
			} else if (wr) {
				rewrite(nb, t, el_dnat(o), el_dnat(n), in_place);
			}
			if (wr)
				rewrite(nb, t, el_imark(o), el_imark(n), in_place);
			if (f_chg) {
				emit_filters(t, NFTM_OP_DEL, o);
				emit_filters(t, NFTM_OP_ADD, n);
				flush = true;
			} else if (wr && n->filtered) {
				rewrite(nb, t, el_filtered(o), el_filtered(n), in_place);
				for (uint32_t i = 0; i < n->nranges; i++)
					rewrite(nb, t, el_allow(o, i), el_allow(n, i), in_place);
			}
			if (!wr) {
				n->map_timeout = o->map_timeout;
				n->map_deadline = o->map_deadline;
			}
			if (int_chg)
				flush = true;
		}
	}
	return flush;
}

static bool v4_ok(const struct in6_addr *a)
{
	return addr_is_v4mapped(a);
}

/* Turns p into element operations of t and updates the records; the
 * change stays undoable (p->old/p->new) until its transaction is done.
 * Anything but PERR_OK is p's final answer (nothing sent). */
static enum perr plan(struct nb *nb, struct nb_txn *t, struct nb_pend *p, uint32_t id)
{
	const struct kchange *c = &p->c;
	p->old = p->new = NULL;
	p->post = 0;
	p->planned = false;
	if (!v4_ok(&c->ext_addr))
		return PERR_INVAL;
	uint64_t key = ext_key64(addr_to_v4(&c->ext_addr), c->proto, c->ext_port);
	struct nb_rec *rec = *rec_slot(&nb->recs, key);
	uint64_t now = mtime_ms();

	switch (c->op) {
	case KOP_ADD:
	case KOP_REFRESH: {
		if (c->op == KOP_ADD && rec)
			return PERR_EXISTS;
		if (c->op == KOP_REFRESH && !rec)
			return PERR_NOT_FOUND;
		if (!v4_ok(&c->int_addr) || c->zone == 0)
			return PERR_INVAL;
		uint32_t mark = kmark_id(&nb->conf, &c->ext_addr, c->proto, c->ext_port);
		if (!mark)
			return PERR_INVAL;    /* not in the pool: no ct mark, no binding */
		struct nb_rec *n = rec_build(c, mark, now);
		if (!n)
			return PERR_NO_RESOURCES;
		if (c->op == KOP_ADD) {
			emit_out(t, NFTM_OP_ADD, n);
			emit_in(t, NFTM_OP_ADD, n);
		} else {
			if (diff(nb, t, rec, n)) {
				p->post |= POST_FLUSH;
				p->flush_mark = rec->mark;
			}
			p->old = rec_remove(&nb->recs, key);
		}
		n->txn = id;
		rec_insert(&nb->recs, n);
		p->new = n;
		if (c->new_peer)
			p->post |= POST_PEER;
		break;
	}
	case KOP_DEL:
		if (!rec)
			return PERR_NOT_FOUND;
		emit_out(t, NFTM_OP_DEL, rec);
		emit_in(t, NFTM_OP_DEL, rec);
		p->old = rec_remove(&nb->recs, key);
		p->post |= POST_FLUSH;
		p->flush_mark = rec->mark;
		break;
	default:
		return PERR_INVAL;
	}
	p->planned = true;
	return PERR_OK;
}

static void unplan(struct nb *nb, struct nb_pend *p)
{
	if (!p->planned)
		return;
	if (p->new) {
		rec_remove(&nb->recs, p->new->key);
		rec_free(p->new);
	}
	if (p->old)
		rec_insert(&nb->recs, p->old);
	p->old = p->new = NULL;
	p->post = 0;
	p->planned = false;
}

/* After the kernel took p: drop the old record, do the conntrack work. */
static void finish(struct nb *nb, struct nb_pend *p)
{
	const struct kchange *c = &p->c;
	rec_free(p->old);
	p->old = p->new = NULL;
	p->planned = false;
	p->res = PERR_OK;
	if (!nb->ct || !p->post)
		return;
	pthread_mutex_lock(&nb->ctlock);
	if ((p->post & POST_FLUSH) && p->flush_mark) {
		unsigned removed = 0;
		enum perr e = ct_flush_mark(nb->ct, p->flush_mark, &removed);
		if (e != PERR_OK && e != PERR_NOT_FOUND)
			log_warn("nft: conntrack flush of mark 0x%x: %s", p->flush_mark, perr_str(e));
		pthread_mutex_lock(&nb->slock);
		nb->st.ct_flushes++;
		pthread_mutex_unlock(&nb->slock);
	}
	if ((p->post & POST_PEER) && c->new_peer) {
		const struct kpeer *k = c->new_peer;
		struct in6_addr ea;
		uint16_t ep;
		enum perr e = ct_find(nb->ct, c->zone, c->proto, &c->int_addr, c->int_port, &k->addr,
				      k->port, &ea, &ep);
		if (e == PERR_OK) {
			if (c->op == KOP_REFRESH)
				e = ct_set_timeout(nb->ct, c->zone, c->proto, &c->int_addr, c->int_port,
						   &k->addr, k->port, k->timeout);
		} else if (e == PERR_NOT_FOUND) {
			uint32_t mark = kmark_id(&nb->conf, &c->ext_addr, c->proto, c->ext_port);
			e = ct_create(nb->ct, c->zone, c->proto, &c->int_addr, c->int_port, &k->addr,
				      k->port, &c->ext_addr, c->ext_port, mark, k->timeout);
			if (e == PERR_OK) {
				pthread_mutex_lock(&nb->slock);
				nb->st.ct_created++;
				pthread_mutex_unlock(&nb->slock);
			}
		}
		if (e != PERR_OK)
			log_warn("nft: PEER conntrack entry in zone %u: %s", c->zone, perr_str(e));
	}
	pthread_mutex_unlock(&nb->ctlock);
}

static void hist(struct nb *nb, size_t n)
{
	static const size_t lim[KSTAT_HIST - 1] = { 1, 3, 15, 63, 255, 1023, 4095 };
	unsigned b = 0;
	while (b < KSTAT_HIST - 1 && n > lim[b])
		b++;
	pthread_mutex_lock(&nb->slock);
	nb->st.batch_hist[b]++;
	if (n > nb->st.batch_max)
		nb->st.batch_max = n;
	pthread_mutex_unlock(&nb->slock);
}

/* One change in its own transaction: its own, honest answer. */
static void single(struct nb *nb, struct nb_pend *p)
{
	for (int attempt = 0;; attempt++) {
		txn_reset(&nb->txn);
		p->res = plan(nb, &nb->txn, p, ++nb->txn_id);
		if (p->res != PERR_OK)
			return;
		if (nb->txn.nops == 0) {
			finish(nb, p);
			return;
		}
		struct tx_result r = commit(nb, &nb->txn, OPS_ALL);
		if (r.st == TX_FAIL && r.err == ENOENT && !nb->destroy &&
		    r.bad.op == NFTM_OP_DEL)
			r = commit_tolerant(nb, &nb->txn);
		if (r.st == TX_OK) {
			hist(nb, 1);
			finish(nb, p);
			return;
		}
		unplan(nb, p);
		if (r.st == TX_SENDFAIL && attempt < 3) {
			usleep(1000);
			continue;
		}
		if (r.st == TX_UNKNOWN)
			log_err("nft: outcome of a change unknown after %d tries", RESEND_MAX + 1);
		p->res = r.st == TX_UNKNOWN ? PERR_KERNEL : nftm_errno_perr(r.err ? r.err : EIO);
		return;
	}
}

static void update_elements(struct nb *nb)
{
	pthread_mutex_lock(&nb->slock);
	nb->st.elements = nb->recs.n;
	pthread_mutex_unlock(&nb->slock);
}

/* Commits v[0..n) in as few transactions as the limits allow. */
static void process(struct nb *nb, struct nb_pend **v, size_t n)
{
	size_t i = 0;
	unsigned cap = nb->txn_cap ? nb->txn_cap : 1;
	while (i < n) {
		uint32_t id = ++nb->txn_id;
		txn_reset(&nb->txn);
		size_t start = i, planned = 0;
		while (i < n && planned < cap && nb->txn.bytes < nb->txn_bytes_max) {
			struct nb_pend *p = v[i];
			if (planned && v4_ok(&p->c.ext_addr)) {
				/* a second change of one binding goes in the next one */
				struct nb_rec *r = *rec_slot(&nb->recs,
							     ext_key64(addr_to_v4(&p->c.ext_addr),
								       p->c.proto, p->c.ext_port));
				if (r && r->txn == id)
					break;
			}
			p->res = plan(nb, &nb->txn, p, id);
			if (p->res == PERR_OK)
				planned++;
			i++;
		}
		if (planned == 0)
			continue;
		struct tx_result r = { TX_OK, 0, { 0 } };
		if (nb->txn.nops)
			r = commit(nb, &nb->txn, OPS_ALL);
		if (r.st == TX_OK) {
			if (nb->txn.nops)
				hist(nb, planned);
			for (size_t k = start; k < i; k++)
				if (v[k]->planned)
					finish(nb, v[k]);
			continue;
		}
		for (size_t k = i; k-- > start;)
			unplan(nb, v[k]);
		if (r.st == TX_SENDFAIL && planned > 1) {
			/* too big to send: smaller transactions */
			cap = (unsigned)(planned / 2);
			i = start;
			continue;
		}
		if (r.st == TX_FAIL)
			log_debug("nft: transaction of %zu change(s) refused (%s): one by one", planned,
				  strerror(r.err));
		for (size_t k = start; k < i; k++)
			if (v[k]->res == PERR_OK)
				single(nb, v[k]);
	}
	update_elements(nb);
}

static void nft_flush(struct kbackend *kb)
{
	struct nb *nb = nbk(kb);
	pthread_mutex_lock(&nb->lock);
	pthread_mutex_lock(&nb->qlock);
	struct nb_pend **v = nb->q;
	size_t n = nb->nq;
	nb->q = NULL;
	nb->nq = nb->qcap = 0;
	pthread_mutex_unlock(&nb->qlock);
	if (n)
		process(nb, v, n);
	pthread_mutex_unlock(&nb->lock);
	/* no lock held: done() may submit again */
	for (size_t i = 0; i < n; i++) {
		if (v[i]->done)
			v[i]->done(v[i]->arg, v[i]->res);
		free(v[i]);
	}
	free(v);
}

/* ---- subscribers ---- */

static void sub_emit_del(struct nb_txn *t, uint16_t zone, const struct nb_sub *s)
{
	struct nftm_elem e;
	for (const struct nb_if *f = s->ifs; f; f = f->znext) {
		nftm_sw_zone_elem(&e, f->name, zone);
		txn_put(t, NFTM_OP_DEL, e);
	}
	for (unsigned i = 0; i < s->npz; i++) {
		nftm_pub_zone_elem(&e, s->pz[i].addr, s->pz[i].lo, s->pz[i].hi, zone);
		txn_put(t, NFTM_OP_DEL, e);
	}
	for (unsigned i = 0; i < s->npm; i++) {
		nftm_pub_mark_elem(&e, s->pm[i].addr, s->pm[i].lo, s->pm[i].hi, 0);
		txn_put(t, NFTM_OP_DEL, e);
	}
	if (s->block) {
		nftm_zone_block_elem(&e, zone, 0, 0, 0);
		txn_put(t, NFTM_OP_DEL, e);
	}
	if (s->addr) {
		nftm_zone_addr_elem(&e, zone, 0);
		txn_put(t, NFTM_OP_DEL, e);
	}
}

static bool overlaps(const struct nb_pub *p, uint32_t addr, uint16_t lo, uint16_t hi)
{
	return p->addr == addr && p->lo <= hi && lo <= p->hi;
}

/* Port ranges of other subscribers that overlap [lo, hi] on addr: their
 * deletes go into t; with apply, they are also forgotten. */
static unsigned pub_overlaps(struct nb *nb, struct nb_txn *t, uint16_t self, uint32_t addr,
			     uint16_t lo, uint16_t hi, bool apply)
{
	unsigned found = 0;
	for (unsigned z = 1; z < 65536; z++) {
		struct nb_sub *s = nb->subs[z];
		if (!s || z == self)
			continue;
		for (int which = 0; which < 2; which++) {
			struct nb_pub *v = which ? s->pm : s->pz;
			unsigned *n = which ? &s->npm : &s->npz;
			for (unsigned i = 0; i < *n;) {
				if (!overlaps(&v[i], addr, lo, hi)) {
					i++;
					continue;
				}
				found++;
				if (t) {
					struct nftm_elem e;
					if (which)
						nftm_pub_mark_elem(&e, v[i].addr, v[i].lo, v[i].hi, 0);
					else
						nftm_pub_zone_elem(&e, v[i].addr, v[i].lo, v[i].hi, 0);
					txn_put(t, NFTM_OP_DEL, e);
				}
				if (apply)
					v[i] = v[--*n];
				else
					i++;
			}
		}
	}
	return found;
}

static struct tx_result commit_any(struct nb *nb, struct nb_txn *t)
{
	struct tx_result r = commit(nb, t, OPS_ALL);
	if (r.st == TX_FAIL && r.err == ENOENT && !nb->destroy && r.bad.op == NFTM_OP_DEL)
		r = commit_tolerant(nb, t);
	return r;
}

static bool ksub_ok(const struct ksub *s)
{
	return s->zone != 0 && addr_is_v4mapped(&s->ext_addr) && s->block_n > 0 &&
	       (uint32_t)s->block_lo + s->block_n - 1 <= UINT16_MAX && s->pcp_n <= s->block_n;
}

static enum perr nft_sub_set(struct kbackend *kb, const struct ksub *s)
{
	struct nb *nb = nbk(kb);
	if (!ksub_ok(s))
		return PERR_INVAL;
	char ifname[IF_NAMESIZE];
	memcpy(ifname, s->ifname, IF_NAMESIZE - 1);
	ifname[IF_NAMESIZE - 1] = 0;
	uint32_t ext = addr_to_v4(&s->ext_addr);
	uint16_t lo = s->block_lo, hi = (uint16_t)(s->block_lo + s->block_n - 1);
	bool napt = s->pcp_n < s->block_n;
	pthread_mutex_lock(&nb->lock);
	struct tx_result r = { TX_OK, 0, { 0 } };
	bool overl = false;
	for (int attempt = 0; attempt < 2; attempt++) {
		struct nb_txn *t = &nb->txn;
		struct nftm_elem e;
		txn_reset(t);
		struct nb_sub *old = nb->subs[s->zone];
		if (old)
			sub_emit_del(t, s->zone, old);
		struct nb_if *owner = ifname[0] ? *if_slot(nb, ifname) : NULL;
		if (owner && owner->zone != s->zone) {
			nftm_sw_zone_elem(&e, ifname, 0);
			txn_put(t, NFTM_OP_DEL, e);
		}
		if (overl)
			pub_overlaps(nb, t, s->zone, ext, lo, hi, false);
		if (ifname[0]) {
			nftm_sw_zone_elem(&e, ifname, s->zone);
			txn_put(t, NFTM_OP_ADD, e);
		}
		nftm_pub_zone_elem(&e, ext, lo, hi, s->zone);
		txn_put(t, NFTM_OP_ADD, e);
		nftm_pub_mark_elem(&e, ext, lo, hi, s->mark);
		txn_put(t, NFTM_OP_ADD, e);
		if (napt) {
			nftm_zone_block_elem(&e, s->zone, ext, (uint16_t)(lo + s->pcp_n), hi);
			txn_put(t, NFTM_OP_ADD, e);
		}
		nftm_zone_addr_elem(&e, s->zone, ext);
		txn_put(t, NFTM_OP_ADD, e);
		r = commit_any(nb, t);
		if (r.st == TX_FAIL && r.err == EEXIST && !overl &&
		    pub_overlaps(nb, NULL, s->zone, ext, lo, hi, false)) {
			overl = true;      /* another subscriber's old block: replace it */
			continue;
		}
		break;
	}
	enum perr res = PERR_OK;
	if (r.st == TX_OK) {
		if (overl)
			pub_overlaps(nb, NULL, s->zone, ext, lo, hi, true);
		struct nb_if *owner = ifname[0] ? *if_slot(nb, ifname) : NULL;
		if (owner && owner->zone != s->zone)
			if_forget(nb, owner);
		sub_free(nb, s->zone);
		struct nb_sub *ns = sub_get(nb, s->zone, true);
		if (!ns || (ifname[0] && !if_add(nb, ifname, s->zone)) ||
		    !pub_push(&ns->pz, &ns->npz, ext, lo, hi) ||
		    !pub_push(&ns->pm, &ns->npm, ext, lo, hi)) {
			log_err("nft: out of memory recording subscriber %u", s->index);
		} else {
			ns->block = napt;
			ns->addr = true;
		}
	} else {
		res = r.st == TX_FAIL ? nftm_errno_perr(r.err) : PERR_KERNEL;
		if (res == PERR_NOT_FOUND)
			res = PERR_KERNEL;
		log_warn("nft: subscriber %u: %s", s->index, strerror(r.err ? r.err : EIO));
	}
	pthread_mutex_unlock(&nb->lock);
	return res;
}

static enum perr nft_sub_del(struct kbackend *kb, const struct ksub *s)
{
	struct nb *nb = nbk(kb);
	if (s->zone == 0)
		return PERR_INVAL;
	pthread_mutex_lock(&nb->lock);
	struct nb_txn *t = &nb->txn;
	txn_reset(t);
	struct nb_sub *old = nb->subs[s->zone];
	if (old) {
		sub_emit_del(t, s->zone, old);
	} else if (ksub_ok(s) && nb->destroy) {
		/* not known: what it would have installed */
		struct nftm_elem e;
		uint32_t ext = addr_to_v4(&s->ext_addr);
		uint16_t lo = s->block_lo, hi = (uint16_t)(s->block_lo + s->block_n - 1);
		struct nb_if *owner = s->ifname[0] ? *if_slot(nb, s->ifname) : NULL;
		if (s->ifname[0] && !owner) {
			nftm_sw_zone_elem(&e, s->ifname, 0);
			txn_put(t, NFTM_OP_DEL, e);
		}
		nftm_pub_zone_elem(&e, ext, lo, hi, 0);
		txn_put(t, NFTM_OP_DEL, e);
		nftm_pub_mark_elem(&e, ext, lo, hi, 0);
		txn_put(t, NFTM_OP_DEL, e);
		nftm_zone_block_elem(&e, s->zone, 0, 0, 0);
		txn_put(t, NFTM_OP_DEL, e);
		nftm_zone_addr_elem(&e, s->zone, 0);
		txn_put(t, NFTM_OP_DEL, e);
	}
	enum perr res = PERR_OK;
	if (t->nops) {
		struct tx_result r = commit_any(nb, t);
		if (r.st != TX_OK) {
			res = PERR_KERNEL;
			log_warn("nft: removing subscriber %u: %s", s->index,
				 strerror(r.err ? r.err : EIO));
		}
	}
	if (res == PERR_OK)
		sub_free(nb, s->zone);
	pthread_mutex_unlock(&nb->lock);
	return res;
}

/* ---- restore ---- */

struct rs_elem {
	struct nftm_elem e;
	uint8_t *ud;                 /* owned copy of the user data */
	bool claimed;
};

struct rs_set {
	struct rs_elem *v;
	size_t n, cap;
	uint32_t *slot;              /* hash of the key: index + 1, 0 = empty */
	size_t mask;
	bool oom;
};

static int rs_push(const struct nftm_elem *e, void *arg)
{
	struct rs_set *s = arg;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		struct rs_elem *v = realloc(s->v, cap * sizeof(*v));
		if (!v) {
			s->oom = true;
			return -1;
		}
		s->v = v;
		s->cap = cap;
	}
	struct rs_elem *r = &s->v[s->n];
	r->e = *e;
	r->ud = NULL;
	r->claimed = false;
	if (e->ulen && e->udata) {
		r->ud = malloc(e->ulen);
		if (!r->ud) {
			s->oom = true;
			return -1;
		}
		memcpy(r->ud, e->udata, e->ulen);
	}
	r->e.udata = r->ud;
	s->n++;
	return 0;
}

static size_t key_hash(const uint8_t *k, size_t len)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < len; i++)
		h = (h ^ k[i]) * 1099511628211ULL;
	return hash64(h);
}

static bool rs_index(struct rs_set *s, size_t klen)
{
	size_t nsl = 16;
	while (nsl < s->n * 2)
		nsl *= 2;
	s->slot = calloc(nsl, sizeof(*s->slot));
	if (!s->slot)
		return false;
	s->mask = nsl - 1;
	for (size_t i = 0; i < s->n; i++) {
		size_t h = key_hash(s->v[i].e.key, klen) & s->mask;
		while (s->slot[h])
			h = (h + 1) & s->mask;
		s->slot[h] = (uint32_t)(i + 1);
	}
	return true;
}

/* The first element whose first klen key bytes are key; -1 if none. Use
 * rs_next for the others (allow: many elements per binding). */
static long rs_find(const struct rs_set *s, const uint8_t *key, size_t klen, long after)
{
	if (!s->slot)
		return -1;
	size_t h = key_hash(key, klen) & s->mask;
	bool passed = after < 0;
	for (; s->slot[h]; h = (h + 1) & s->mask) {
		long i = (long)s->slot[h] - 1;
		if (memcmp(s->v[i].e.key, key, klen) != 0)
			continue;
		if (passed)
			return i;
		if (i == after)
			passed = true;
	}
	return -1;
}

static void rs_free(struct rs_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].ud);
	free(s->v);
	free(s->slot);
	memset(s, 0, sizeof(*s));
}

struct rs_out {
	struct kchange c;
	struct aftr_filter *f;
	struct kpeer *pk;
};

static uint32_t ms_to_s_up(uint64_t ms)
{
	uint64_t s = (ms + 999) / 1000;
	return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

/* Time left of an element as a timeout for a repair element. */
static uint64_t left_ms(const struct nftm_elem *e)
{
	if (!e->timeout_ms)
		return 0;
	return e->expiration_ms > 1000 ? e->expiration_ms : 1000;
}

/* A repair element expires with the element it belongs to: same
 * timeout, the same time left. */
static void repair_tmo(struct nftm_elem *e, const struct nftm_elem *ref)
{
	e->timeout_ms = ref->timeout_ms;
	e->expiration_ms = ref->timeout_ms ? left_ms(ref) : 0;
}

static bool range_cmp_eq(const struct nftm_range *a, const struct nftm_range *b, size_t n)
{
	return n == 0 || memcmp(a, b, n * sizeof(*a)) == 0;
}

enum { RS_SNAT, RS_OMARK, RS_DNAT, RS_IMARK, RS_FILT, RS_ALLOW, RS_N };
static const enum nftm_set rs_sets[RS_N] = { NFTM_SNAT, NFTM_OMARK, NFTM_DNAT, NFTM_IMARK,
					     NFTM_FILTERED, NFTM_ALLOW };

struct rs_run {
	struct nb *nb;
	struct rs_set s[RS_N];
	struct nb_txn fix;
	struct rs_out *out;
	size_t nout;
	unsigned fixed, dropped;
	bool fix_failed;
};

static void rs_fix_commit(struct rs_run *run, bool force)
{
	struct nb *nb = run->nb;
	if (!run->fix.nops || (!force && run->fix.nops < CLEAN_TXN_ELEMS))
		return;
	struct tx_result r = commit_any(nb, &run->fix);
	if (r.st != TX_OK) {
		run->fix_failed = true;
		log_warn("nft: restore: repairing %u element(s) failed: %s", run->fix.nops,
			 strerror(r.err ? r.err : EIO));
	}
	txn_reset(&run->fix);
}

/* The remote ranges of a binding's pcp_allow elements (sorted). */
static size_t rs_allow_ranges(struct rs_run *run, const uint8_t *ekey, struct nftm_range **out,
			      bool claim)
{
	struct rs_set *al = &run->s[RS_ALLOW];
	size_t n = 0, cap = 0;
	struct nftm_range *v = NULL;
	for (long i = rs_find(al, ekey, 12, -1); i >= 0; i = rs_find(al, ekey, 12, i)) {
		struct nftm_range rg;
		if (!nftm_allow_range_get(&al->v[i].e, &rg))
			continue;     /* stays unclaimed: removed */
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			struct nftm_range *nv = realloc(v, cap * sizeof(*v));
			if (!nv)
				break;
			v = nv;
		}
		v[n++] = rg;
		if (claim)
			al->v[i].claimed = true;
	}
	if (n)
		qsort(v, n, sizeof(*v), nftm_range_cmp);
	*out = v;
	return n;
}

/* One pcp_snat element: a binding to report, repaired, or dropped. */
static void rs_binding(struct rs_run *run, struct rs_elem *se, uint64_t now, uint32_t real)
{
	struct nb *nb = run->nb;
	struct nb_txn *fx = &run->fix;
	uint16_t zone, iport, eport;
	uint32_t iv4, ev4;
	uint8_t proto;
	struct nftm_ud *ud = malloc(sizeof(*ud));
	struct nftm_range *have = NULL, *want = NULL;
	struct aftr_filter *fl = NULL;
	if (!ud)
		return;
	if (!nftm_snat_key_get(&se->e, &zone, &iv4, &proto, &iport) ||
	    !nftm_nat_data_get(&se->e, &ev4, &eport) ||
	    !nftm_ud_decode(se->e.udata, se->e.ulen, real, ud) || kzone_of(ud->sub) != zone)
		goto drop;
	struct in6_addr ext, in;
	addr_from_v4(&ext, ev4);
	addr_from_v4(&in, iv4);
	uint32_t mark = kmark_id(&nb->conf, &ext, proto, eport);
	uint64_t key = ext_key64(ev4, proto, eport);
	if (!mark || *rec_slot(&nb->recs, key))
		goto drop;     /* not in the pool, or a second binding of that port */
	se->claimed = true;

	/* omark */
	struct nftm_elem e;
	nftm_omark_elem(&e, zone, iv4, proto, iport, mark);
	repair_tmo(&e, &se->e);
	long oi = rs_find(&run->s[RS_OMARK], se->e.key, 16, -1);
	uint32_t m;
	if (oi >= 0 && nftm_mark_get(&run->s[RS_OMARK].v[oi].e, &m) && m == mark) {
		run->s[RS_OMARK].v[oi].claimed = true;
	} else {
		if (oi >= 0) {
			run->s[RS_OMARK].v[oi].claimed = true;
			txn_put(fx, NFTM_OP_DEL, run->s[RS_OMARK].v[oi].e);
		}
		txn_put(fx, NFTM_OP_ADD, e);
		run->fixed++;
	}

	/* the inbound part */
	uint8_t ekey[12];
	nftm_filtered_elem(&e, ev4, proto, eport);
	memcpy(ekey, e.key, 12);
	long di = rs_find(&run->s[RS_DNAT], ekey, 12, -1);
	const struct nftm_elem *de = di >= 0 ? &run->s[RS_DNAT].v[di].e : NULL;
	uint32_t dv4;
	uint16_t dport;
	bool map = (ud->flags & BF_MAP) && de && nftm_nat_data_get(de, &dv4, &dport) && dv4 == iv4 &&
		   dport == iport;
	unsigned nf = 0;
	size_t nwant = 0, nhave = 0;
	bool filtered = false;
	if (map) {
		bool omitted = ud->info & NFTM_UD_FILTERS_OMITTED;
		nhave = rs_allow_ranges(run, ekey, &have, false);
		if (omitted) {
			long k = nhave ? nftm_filters_from_ranges(have, nhave, NULL, 0) : -1;
			fl = k > 0 ? calloc((size_t)k, sizeof(*fl)) : NULL;
			if (!fl || nftm_filters_from_ranges(have, nhave, fl, (size_t)k) != k)
				map = false;    /* the filters are lost: do not open the port */
			else
				nf = (unsigned)k;
		} else if (ud->nfilters) {
			nf = ud->nfilters;
			fl = calloc(nf, sizeof(*fl));
			if (!fl)
				map = false;
			else
				memcpy(fl, ud->filters, nf * sizeof(*fl));
		}
		if (map && nf) {
			filtered = true;
			size_t cnt = nftm_filter_ranges(fl, nf, NULL, 0);
			want = cnt && cnt != SIZE_MAX ? calloc(cnt, sizeof(*want)) : NULL;
			if (cnt == SIZE_MAX || (cnt && !want))
				map = false;
			else if (cnt)
				nwant = nftm_filter_ranges(fl, nf, want, cnt);
		}
	}
	struct nb_rec *r = NULL;
	if (map) {
		run->s[RS_DNAT].v[di].claimed = true;
		long ii = rs_find(&run->s[RS_IMARK], ekey, 12, -1);
		if (ii >= 0 && nftm_mark_get(&run->s[RS_IMARK].v[ii].e, &m) && m == mark) {
			run->s[RS_IMARK].v[ii].claimed = true;
		} else {
			if (ii >= 0) {
				run->s[RS_IMARK].v[ii].claimed = true;
				txn_put(fx, NFTM_OP_DEL, run->s[RS_IMARK].v[ii].e);
			}
			nftm_imark_elem(&e, ev4, proto, eport, mark);
			repair_tmo(&e, de);
			txn_put(fx, NFTM_OP_ADD, e);
			run->fixed++;
		}
		long fi = rs_find(&run->s[RS_FILT], ekey, 12, -1);
		bool same = (fi >= 0) == filtered && nhave == nwant && range_cmp_eq(have, want, nwant);
		free(have);
		nhave = rs_allow_ranges(run, ekey, &have, true);    /* claim them */
		if (fi >= 0)
			run->s[RS_FILT].v[fi].claimed = true;
		if (!same) {
			if (fi >= 0)
				txn_put(fx, NFTM_OP_DEL, run->s[RS_FILT].v[fi].e);
			for (size_t k = 0; k < nhave; k++) {
				nftm_allow_elem(&e, ev4, proto, eport, &have[k]);
				txn_put(fx, NFTM_OP_DEL, e);
			}
			if (filtered) {
				nftm_filtered_elem(&e, ev4, proto, eport);
				repair_tmo(&e, de);
				txn_put(fx, NFTM_OP_ADD, e);
				for (size_t k = 0; k < nwant; k++) {
					nftm_allow_elem(&e, ev4, proto, eport, &want[k]);
					repair_tmo(&e, de);
					txn_put(fx, NFTM_OP_ADD, e);
				}
			}
			run->fixed++;
		}
	} else {
		nf = 0;
		filtered = false;
		nwant = 0;
	}

	/* the record: what the kernel has now */
	r = calloc(1, sizeof(*r) + se->e.ulen);
	struct rs_out *o = &run->out[run->nout];
	if (!r)
		goto drop_claimed;
	r->key = key;
	r->ext_v4 = ev4;
	r->int_v4 = iv4;
	r->ext_port = eport;
	r->int_port = iport;
	r->zone = zone;
	r->proto = proto;
	r->flags = map ? ud->flags : (uint8_t)(ud->flags & ~BF_MAP);
	r->sub = ud->sub;
	r->mark = mark;
	r->timeout = ms_to_s_up(se->e.timeout_ms);
	r->deadline = se->e.timeout_ms ? now + left_ms(&se->e) : 0;
	if (map) {
		r->map_timeout = ms_to_s_up(de->timeout_ms);
		r->map_deadline = de->timeout_ms ? now + left_ms(de) : 0;
		r->filtered = filtered;
		r->ranges = want;
		r->nranges = (uint32_t)nwant;
		want = NULL;
	}
	r->ulen = se->e.ulen;
	memcpy(r->udata, se->e.udata, se->e.ulen);
	rec_insert(&nb->recs, r);

	memset(o, 0, sizeof(*o));
	struct kchange *c = &o->c;
	c->op = KOP_ADD;
	c->sub = ud->sub;
	c->zone = zone;
	c->proto = proto;
	c->int_addr = in;
	c->int_port = iport;
	c->ext_addr = ext;
	c->ext_port = eport;
	c->timeout = se->e.timeout_ms ? ms_to_s_up(left_ms(&se->e)) : 0;
	c->map_timeout = map && de->timeout_ms ? ms_to_s_up(left_ms(de)) : 0;
	c->flags = r->flags;
	memcpy(c->nonce, ud->nonce, sizeof(c->nonce));
	o->f = fl;
	fl = NULL;
	c->filters = o->f;
	c->nfilters = o->f ? nf : 0;
	unsigned np = 0;
	if (ud->npeers) {
		o->pk = calloc(ud->npeers, sizeof(*o->pk));
		for (unsigned k = 0; o->pk && k < ud->npeers; k++)
			if (ud->peers[k].timeout)
				o->pk[np++] = ud->peers[k];
	}
	c->peers = o->pk;
	c->npeers = np;
	run->nout++;
	goto out;
drop_claimed:
	se->claimed = false;
drop:
	txn_put(fx, NFTM_OP_DEL, se->e);
	run->dropped++;
out:
	free(have);
	free(want);
	free(fl);
	free(ud);
	rs_fix_commit(run, false);
}

/* Flows whose binding expired while pcpd was down still carry its mark:
 * the kernel removed the elements on time, but only pcpd removes flows.
 * One dump at start finds the marks no restored binding owns. */
struct orphans {
	struct nb *nb;
	uint32_t *v;
	size_t n, cap;
};

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

static void orphan_mark(void *arg, uint32_t mark)
{
	struct orphans *o = arg;
	struct in6_addr ext;
	uint8_t proto;
	uint16_t port;
	if (!kmark_decode(&o->nb->conf, mark, &ext, &proto, &port) ||
	    *rec_slot(&o->nb->recs, ext_key64(addr_to_v4(&ext), proto, port)))
		return;
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 64;
		uint32_t *v = realloc(o->v, cap * sizeof(*v));
		if (!v)
			return;
		o->v = v;
		o->cap = cap;
	}
	o->v[o->n++] = mark;
}

static void flush_orphan_flows(struct nb *nb)
{
	struct orphans o = { .nb = nb };
	pthread_mutex_lock(&nb->ctlock);
	size_t n = 0;
	if (nb->ct && ct_marks(nb->ct, orphan_mark, &o) == PERR_OK) {
		if (o.n)
			qsort(o.v, o.n, sizeof(*o.v), cmp_u32);   /* one flush per mark */
		for (size_t i = 0; i < o.n; i++) {
			if (i && o.v[i] == o.v[i - 1])
				continue;
			ct_flush_mark(nb->ct, o.v[i], NULL);
			n++;
		}
	}
	pthread_mutex_unlock(&nb->ctlock);
	if (n)
		log_info("nft: restore: flows of %zu binding(s) that ended while pcpd was down "
			 "removed", n);
	free(o.v);
}

static enum perr nft_restore(struct kbackend *kb, kbackend_restore_fn cb, void *arg)
{
	struct nb *nb = nbk(kb);
	struct rs_run *run = calloc(1, sizeof(*run));
	if (!run)
		return PERR_NO_RESOURCES;
	run->nb = nb;
	enum perr res = PERR_OK;
	pthread_mutex_lock(&nb->lock);
	rec_clear(&nb->recs);
	for (int i = 0; i < RS_N; i++) {
		int e = dump_set(nb, rs_sets[i], rs_push, &run->s[i]);
		if (e || run->s[i].oom) {
			log_err("nft: restore: reading %s: %s", nftm_set_name(rs_sets[i]),
				strerror(e ? e : ENOMEM));
			res = e ? PERR_KERNEL : PERR_NO_RESOURCES;
			goto out;
		}
	}
	static const size_t klen[RS_N] = { 16, 16, 12, 12, 12, 12 };
	for (int i = 1; i < RS_N; i++) {
		if (!rs_index(&run->s[i], klen[i])) {
			res = PERR_NO_RESOURCES;
			goto out;
		}
	}
	run->out = calloc(run->s[RS_SNAT].n + 1, sizeof(*run->out));
	if (!run->out) {
		res = PERR_NO_RESOURCES;
		goto out;
	}
	uint64_t now = mtime_ms();
	uint32_t real = now_real();
	for (size_t i = 0; i < run->s[RS_SNAT].n; i++)
		rs_binding(run, &run->s[RS_SNAT].v[i], now, real);
	/* what no binding claimed */
	for (int k = 1; k < RS_N; k++) {
		for (size_t i = 0; i < run->s[k].n; i++) {
			if (run->s[k].v[i].claimed)
				continue;
			txn_put(&run->fix, NFTM_OP_DEL, run->s[k].v[i].e);
			run->dropped++;
			rs_fix_commit(run, false);
		}
	}
	rs_fix_commit(run, true);
	update_elements(nb);
	flush_orphan_flows(nb);
	if (run->dropped || run->fixed)
		log_info("nft: restore: %zu binding(s), %u inconsistent element(s) removed, "
			 "%u repaired", run->nout, run->dropped, run->fixed);
out:
	pthread_mutex_unlock(&nb->lock);
	for (size_t i = 0; i < run->nout; i++) {
		if (res == PERR_OK && cb)
			cb(arg, &run->out[i].c);
		free(run->out[i].f);
		free(run->out[i].pk);
	}
	free(run->out);
	for (int i = 0; i < RS_N; i++)
		rs_free(&run->s[i]);
	txn_free(&run->fix);
	free(run);
	return res;
}

/* ---- the rest of the ops ---- */

static enum perr nft_peer_find(struct kbackend *kb, uint16_t zone, uint8_t proto,
			       const struct in6_addr *int_addr, uint16_t int_port,
			       const struct in6_addr *peer_addr, uint16_t peer_port,
			       struct in6_addr *ext_addr, uint16_t *ext_port)
{
	struct nb *nb = nbk(kb);
	if (!nb->ct)
		return PERR_KERNEL;
	pthread_mutex_lock(&nb->ctlock);
	enum perr e = ct_find(nb->ct, zone, proto, int_addr, int_port, peer_addr, peer_port,
			      ext_addr, ext_port);
	pthread_mutex_unlock(&nb->ctlock);
	return e;
}

static void nft_stats(struct kbackend *kb, struct kbackend_stats *out)
{
	struct nb *nb = nbk(kb);
	pthread_mutex_lock(&nb->slock);
	*out = nb->st;
	pthread_mutex_unlock(&nb->slock);
}

const struct kbackend_ops kbackend_nft_ops = {
	.name = "nftables",
	.open = nft_open,
	.submit = nft_submit,
	.flush = nft_flush,
	.sub_set = nft_sub_set,
	.sub_del = nft_sub_del,
	.restore = nft_restore,
	.peer_find = nft_peer_find,
	.stats = nft_stats,
	.close = nft_close,
};

/* ---- test hooks ---- */

void nftb_test_compat(struct kbackend *kb, bool no_destroy, bool no_timeout_update)
{
	struct nb *nb = nbk(kb);
	pthread_mutex_lock(&nb->lock);
	if (no_destroy)
		nb->destroy = false;
	if (no_timeout_update)
		nb->tmo_update = false;
	pthread_mutex_unlock(&nb->lock);
}

void nftb_test_caps(struct kbackend *kb, bool *destroy, bool *timeout_update)
{
	struct nb *nb = nbk(kb);
	pthread_mutex_lock(&nb->lock);
	*destroy = nb->destroy;
	*timeout_update = nb->tmo_update;
	pthread_mutex_unlock(&nb->lock);
}

void nftb_test_lose_acks(struct kbackend *kb, unsigned n)
{
	struct nb *nb = nbk(kb);
	pthread_mutex_lock(&nb->lock);
	nb->lose_acks = n;
	pthread_mutex_unlock(&nb->lock);
}

void nftb_test_txn_cap(struct kbackend *kb, unsigned n)
{
	struct nb *nb = nbk(kb);
	pthread_mutex_lock(&nb->lock);
	nb->txn_cap = n ? n : NFTB_MAX_TXN_CHANGES;
	pthread_mutex_unlock(&nb->lock);
}
