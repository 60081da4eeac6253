/* The nftables backend (aftr/nft_backend.c) against the real kernel,
 * inside a network namespace of its own (never the host's ruleset).
 * Needs root (CAP_NET_ADMIN) and nf_tables; skips (exit 77) otherwise.
 * Everything is read back with the backend's own dump parser (nft_msg.c)
 * on a socket of the test. Prints commit timings (no assertions on
 * them). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <cmocka.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <libmnl/libmnl.h>

#include "aftr/backend.h"
#include "aftr/ct.h"
#include "aftr/nft_msg.h"
#include "common/addr.h"
#include "common/log.h"

static const struct kbackend_ops *ops = &kbackend_nft_ops;
static struct aftr_config ac;
static struct mnl_socket *nl;
static uint32_t seq = 1000;
static uint8_t rbuf[256 * 1024];
static bool have_nft;

#define TCP IPPROTO_TCP
#define UDP IPPROTO_UDP

static struct in6_addr a4(const char *s)
{
	struct in6_addr a;
	assert_true(addr_parse(s, &a));
	return a;
}

static uint32_t v4(const char *s)
{
	struct in6_addr a = a4(s);
	return addr_to_v4(&a);
}

static struct kbackend_conf conf(bool keep)
{
	struct kbackend_conf c = { "pcpd", keep, &ac };
	return c;
}

/* ---- the test's own view of the kernel ---- */

struct kel {
	struct nftm_elem e;
	uint8_t ud[NFTM_UDATA_MAX];
};

struct kset {
	struct kel *v;
	size_t n, cap;
};

static int kset_cb(const struct nftm_elem *e, void *arg)
{
	struct kset *s = arg;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		assert_non_null(s->v);
	}
	struct kel *k = &s->v[s->n++];
	k->e = *e;
	if (e->ulen)
		memcpy(k->ud, e->udata, e->ulen);
	k->e.udata = k->ud;
	return 0;
}

static int kdump_msg_cb(const struct nlmsghdr *nlh, void *arg)
{
	return nftm_parse_elems(nlh, kset_cb, arg) == 0 ? MNL_CB_OK : MNL_CB_ERROR;
}

/* Sends req and reads the answer; 0 or an errno. */
static int kreq(struct nlmsghdr *req, mnl_cb_t cb, void *arg)
{
	if (mnl_socket_sendto(nl, req, req->nlmsg_len) < 0)
		return errno;
	uint32_t portid = mnl_socket_get_portid(nl);
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl, rbuf, sizeof(rbuf));
		if (n < 0)
			return errno;
		int r = mnl_cb_run(rbuf, (size_t)n, req->nlmsg_seq, portid, cb, arg);
		if (r == MNL_CB_STOP)
			return 0;
		if (r < 0)
			return errno;
	}
}

static void kdump(enum nftm_set s, struct kset *out)
{
	uint8_t req[1024];
	out->n = 0;
	int e = kreq(nftm_req_dumpelems(req, "pcpd", s, ++seq), kdump_msg_cb, out);
	if (e)
		fail_msg("dump of %s: %s", nftm_set_name(s), strerror(e));
}

static size_t kcount(enum nftm_set s)
{
	struct kset k = { 0 };
	kdump(s, &k);
	free(k.v);
	return k.n;
}

static const struct kel *kfind(const struct kset *s, const struct nftm_elem *key)
{
	for (size_t i = 0; i < s->n; i++)
		if (nftm_elem_key_equal(&s->v[i].e, key))
			return &s->v[i];
	return NULL;
}

static bool table_exists(void)
{
	uint8_t req[1024];
	int e = kreq(nftm_req_gettable(req, "pcpd", ++seq), NULL, NULL);
	return e == 0;
}

/* Commits a batch built by the test; the first error (0 = ok). */
static int kbatch(struct nftm_batch *bt)
{
	if (mnl_socket_sendto(nl, bt->b.p, bt->b.len) < 0)
		return errno;
	int first = 0;
	unsigned got = 0;
	while (got < bt->nmsgs) {
		ssize_t n = mnl_socket_recvfrom(nl, rbuf, sizeof(rbuf));
		assert_true(n > 0);
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)rbuf;
		int rem = (int)n;
		for (; mnl_nlmsg_ok(nlh, rem); nlh = mnl_nlmsg_next(nlh, &rem)) {
			if (nlh->nlmsg_type != NLMSG_ERROR)
				continue;
			const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
			if (nlh->nlmsg_seq == bt->begin_seq)
				return -e->error;
			got++;
			if (e->error && !first)
				first = -e->error;
		}
	}
	return first;
}

/* Plants (or removes) elements behind the backend's back. */
static int kelems(enum nftm_op op, const struct nftm_elem *e, unsigned n)
{
	struct nftm_buf g;
	nftm_buf_init(&g);
	for (unsigned i = 0; i < n; i++)
		assert_true(nftm_elem_put(&g, &e[i]));
	struct nftm_batch bt;
	nftm_batch_init(&bt, ++seq);
	assert_true(nftm_batch_begin(&bt));
	assert_true(nftm_batch_elems(&bt, "pcpd", (enum nftm_set)e[0].set, op, true, g.p, g.len));
	assert_true(nftm_batch_end(&bt));
	seq = bt.seq;
	int r = kbatch(&bt);
	nftm_batch_free(&bt);
	nftm_buf_free(&g);
	return r;
}

static int reset_table(void **state)
{
	(void)state;
	struct nftm_batch bt;
	nftm_batch_init(&bt, ++seq);
	assert_true(nftm_batch_begin(&bt));
	assert_true(nftm_batch_deltable(&bt, "pcpd"));
	assert_true(nftm_batch_end(&bt));
	seq = bt.seq;
	int e = kbatch(&bt);
	nftm_batch_free(&bt);
	assert_true(e == 0 || e == ENOENT);
	assert_false(table_exists());
	return 0;
}

static bool nft_lists_it(void)
{
	int st = system("nft list table ip pcpd >/dev/null 2>&1");
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* ---- changes ---- */

struct done_slot {
	enum perr r;
	int calls;
};

static void done_cb(void *arg, enum perr r)
{
	struct done_slot *d = arg;
	d->r = r;
	d->calls++;
}

static struct kchange change(enum kop op, uint32_t sub, uint8_t proto, const char *in, uint16_t iport,
			     const char *ext, uint16_t eport, uint32_t timeout, uint32_t map_timeout,
			     uint8_t flags)
{
	struct kchange c;
	memset(&c, 0, sizeof(c));
	c.op = op;
	c.sub = sub;
	c.zone = kzone_of(sub);
	c.proto = proto;
	c.int_addr = a4(in);
	c.int_port = iport;
	c.ext_addr = a4(ext);
	c.ext_port = eport;
	c.timeout = timeout;
	c.map_timeout = map_timeout;
	c.flags = flags;
	for (int i = 0; i < BINDING_NONCE_LEN; i++)
		c.nonce[i] = (uint8_t)(sub + (unsigned)i);
	return c;
}

/* Submits and flushes one change; its answer. */
static enum perr apply(struct kbackend *kb, const struct kchange *c)
{
	struct done_slot d = { PERR__COUNT, 0 };
	ops->submit(kb, c, done_cb, &d);
	ops->flush(kb);
	assert_int_equal(d.calls, 1);
	return d.r;
}

/* The elements a binding must have, checked one by one. */
static void expect_binding(const struct kchange *c, bool present)
{
	struct kbackend_conf kc = conf(true);
	uint32_t mark = kmark_id(&kc, &c->ext_addr, c->proto, c->ext_port);
	uint32_t ext = addr_to_v4(&c->ext_addr), in = addr_to_v4(&c->int_addr);
	struct kset s = { 0 };
	struct nftm_elem k;
	const struct kel *e;

	kdump(NFTM_SNAT, &s);
	nftm_snat_elem(&k, c->zone, in, c->proto, c->int_port, ext, c->ext_port);
	e = kfind(&s, &k);
	if (!present) {
		assert_null(e);
	} else {
		assert_non_null(e);
		assert_memory_equal(e->e.data, k.data, 8);
		assert_int_equal(e->e.timeout_ms, (uint64_t)c->timeout * 1000);
		if (c->timeout)
			assert_true(e->e.expiration_ms <= (uint64_t)c->timeout * 1000 &&
				    e->e.expiration_ms + 5000 >= (uint64_t)c->timeout * 1000);
		struct nftm_ud ud;
		assert_true(nftm_ud_decode(e->e.udata, e->e.ulen, (uint32_t)time(NULL), &ud));
		assert_int_equal(ud.sub, c->sub);
		assert_int_equal(ud.flags, c->flags);
		assert_memory_equal(ud.nonce, c->nonce, BINDING_NONCE_LEN);
		if (!(ud.info & NFTM_UD_FILTERS_OMITTED)) {
			assert_int_equal(ud.nfilters, c->nfilters);
			for (unsigned i = 0; i < c->nfilters; i++)
				assert_memory_equal(&ud.filters[i], &c->filters[i], sizeof(c->filters[i]));
		}
	}
	kdump(NFTM_OMARK, &s);
	nftm_omark_elem(&k, c->zone, in, c->proto, c->int_port, mark);
	e = kfind(&s, &k);
	if (!present) {
		assert_null(e);
	} else {
		assert_non_null(e);
		assert_memory_equal(e->e.data, &mark, 4);
		assert_int_equal(e->e.timeout_ms, (uint64_t)c->timeout * 1000);
	}
	bool map = present && (c->flags & BF_MAP);
	uint64_t mt = (uint64_t)c->map_timeout * 1000;
	kdump(NFTM_DNAT, &s);
	nftm_dnat_elem(&k, ext, c->proto, c->ext_port, in, c->int_port);
	e = kfind(&s, &k);
	if (!map) {
		assert_null(e);
	} else {
		assert_non_null(e);
		assert_memory_equal(e->e.data, k.data, 8);
		assert_int_equal(e->e.timeout_ms, mt);
	}
	kdump(NFTM_IMARK, &s);
	nftm_imark_elem(&k, ext, c->proto, c->ext_port, mark);
	e = kfind(&s, &k);
	if (!map) {
		assert_null(e);
	} else {
		assert_non_null(e);
		assert_memory_equal(e->e.data, &mark, 4);
		assert_int_equal(e->e.timeout_ms, mt);
	}
	bool filt = map && c->nfilters;
	kdump(NFTM_FILTERED, &s);
	nftm_filtered_elem(&k, ext, c->proto, c->ext_port);
	e = kfind(&s, &k);
	if (!filt) {
		assert_null(e);
	} else {
		assert_non_null(e);
		assert_int_equal(e->e.timeout_ms, mt);
	}
	/* pcp_allow: exactly the ranges of the filters, for this binding */
	struct nftm_range want[256];
	size_t nw = filt ? nftm_filter_ranges(c->filters, c->nfilters, want, 256) : 0;
	assert_true(nw <= 256);
	kdump(NFTM_ALLOW, &s);
	size_t found = 0;
	for (size_t i = 0; i < s.n; i++) {
		uint32_t x;
		uint8_t p;
		uint16_t port;
		assert_true(nftm_ext_key_get(&s.v[i].e, &x, &p, &port));
		if (x != ext || p != c->proto || port != c->ext_port)
			continue;
		struct nftm_range r;
		assert_true(nftm_allow_range_get(&s.v[i].e, &r));
		bool ok = false;
		for (size_t j = 0; j < nw && !ok; j++)
			ok = memcmp(&r, &want[j], sizeof(r)) == 0;
		assert_true(ok);
		assert_int_equal(s.v[i].e.timeout_ms, mt);
		found++;
	}
	assert_int_equal(found, nw);
	free(s.v);
}

static void expect_empty(void)
{
	static const enum nftm_set b[] = { NFTM_SNAT, NFTM_OMARK, NFTM_DNAT, NFTM_IMARK,
					   NFTM_FILTERED, NFTM_ALLOW };
	for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++)
		if (kcount(b[i]) != 0)
			fail_msg("%s is not empty", nftm_set_name(b[i]));
}

static struct kbackend *open_kb(bool keep, bool expect_fresh)
{
	struct kbackend_conf kc = conf(keep);
	bool fresh = !expect_fresh;
	struct kbackend *kb = ops->open(&kc, &fresh);
	assert_non_null(kb);
	assert_int_equal(fresh, expect_fresh);
	return kb;
}

/* ---- tests ---- */

static void test_open_keep_close(void **state)
{
	(void)state;
	struct kbackend *kb = open_kb(true, true);
	assert_true(table_exists());
	for (int s = 0; s < NFTM_NSETS; s++)
		assert_int_equal(kcount((enum nftm_set)s), 0);
	if (have_nft)
		assert_true(nft_lists_it());
	bool destroy, upd;
	nftb_test_caps(kb, &destroy, &upd);
	printf("kernel: DESTROYSETELEM %s, in-place element timeout update %s\n",
	       destroy ? "yes" : "no", upd ? "yes" : "no");
	ops->close(kb);
	assert_true(table_exists());        /* keep_table */
	kb = open_kb(true, false);          /* ours: kept */
	ops->close(kb);
	kb = open_kb(false, false);
	ops->close(kb);
	assert_false(table_exists());       /* !keep_table: gone */
}

static void test_not_ours(void **state)
{
	(void)state;
	if (!have_nft)
		skip();
	/* a table of that name with something else in it */
	assert_int_equal(system("nft 'add table ip pcpd; add set ip pcpd pcp_snat { type ipv4_addr; }'"),
			 0);
	struct kbackend *kb = open_kb(true, true);
	assert_int_equal(kcount(NFTM_SNAT), 0);
	assert_true(nft_lists_it());
	ops->close(kb);
	/* conf/pcpd-reference.nft is the contract: loaded by nft, it is a
	 * table pcpd recognises as its own and keeps */
	reset_table(NULL);
	assert_int_equal(system("nft -f " SRCDIR "/conf/pcpd-reference.nft"), 0);
	kb = open_kb(true, false);
	ops->close(kb);
}

/* zone_keys: also check zone_block / zone_addr (keyed by the zone, so
 * they stay when the same zone gets new values) */
static void sub_expect_z(const struct ksub *s, bool present, bool zone_keys)
{
	uint32_t ext = addr_to_v4(&s->ext_addr);
	uint16_t hi = (uint16_t)(s->block_lo + s->block_n - 1);
	struct kset k = { 0 };
	struct nftm_elem e;
	const struct kel *f;
	if (s->ifname[0]) {
		kdump(NFTM_SW_ZONE, &k);
		nftm_sw_zone_elem(&e, s->ifname, s->zone);
		f = kfind(&k, &e);
		if (present) {
			assert_non_null(f);
			assert_memory_equal(f->e.data, e.data, 2);
		} else if (f) {
			uint16_t z;
			assert_true(nftm_zone_data_get(&f->e, &z));
			assert_int_not_equal(z, s->zone);
		}
	}
	kdump(NFTM_PUB_ZONE, &k);
	nftm_pub_zone_elem(&e, ext, s->block_lo, hi, s->zone);
	f = kfind(&k, &e);
	assert_true(present == (f != NULL));
	if (f)
		assert_memory_equal(f->e.data, e.data, 2);
	kdump(NFTM_PUB_MARK, &k);
	nftm_pub_mark_elem(&e, ext, s->block_lo, hi, s->mark);
	f = kfind(&k, &e);
	assert_true(present == (f != NULL));
	if (f)
		assert_memory_equal(f->e.data, e.data, 4);
	if (!zone_keys) {
		free(k.v);
		return;
	}
	kdump(NFTM_ZONE_BLOCK, &k);
	nftm_zone_block_elem(&e, s->zone, ext, (uint16_t)(s->block_lo + s->pcp_n), hi);
	f = kfind(&k, &e);
	assert_true((present && s->pcp_n < s->block_n) == (f != NULL));
	if (f)
		assert_memory_equal(f->e.data, e.data, 16);
	kdump(NFTM_ZONE_ADDR, &k);
	nftm_zone_addr_elem(&e, s->zone, ext);
	f = kfind(&k, &e);
	assert_true(present == (f != NULL));
	if (f)
		assert_memory_equal(f->e.data, e.data, 4);
	free(k.v);
}

static void sub_expect(const struct ksub *s, bool present)
{
	sub_expect_z(s, present, true);
}

static struct ksub mksub(uint32_t index, const char *ifname, const char *ext, uint16_t lo,
			 uint16_t n, uint16_t pcp)
{
	struct ksub s;
	memset(&s, 0, sizeof(s));
	s.index = index;
	s.zone = kzone_of(index);
	s.mark = kmark_of(index);
	snprintf(s.ifname, sizeof(s.ifname), "%s", ifname);
	s.ext_addr = a4(ext);
	s.block_lo = lo;
	s.block_n = n;
	s.pcp_n = pcp;
	return s;
}

static void test_subscribers(void **state)
{
	(void)state;
	struct kbackend *kb = open_kb(true, true);
	struct ksub a = mksub(4, "sw1", "203.0.113.10", 2000, 1000, 100);
	assert_int_equal(ops->sub_set(kb, &a), PERR_OK);
	sub_expect(&a, true);
	assert_int_equal(kcount(NFTM_SW_ZONE), 1);
	/* replaced: new block, new softwire, no NAPT part */
	struct ksub a2 = mksub(4, "sw2", "203.0.113.10", 3000, 500, 500);
	assert_int_equal(ops->sub_set(kb, &a2), PERR_OK);
	sub_expect_z(&a, false, false);
	sub_expect(&a2, true);
	assert_int_equal(kcount(NFTM_PUB_ZONE), 1);
	assert_int_equal(kcount(NFTM_ZONE_BLOCK), 0);
	/* another subscriber takes sw2 over, and a plain-mode one (no softwire) */
	struct ksub b = mksub(5, "sw2", "203.0.113.11", 2000, 1000, 100);
	struct ksub c = mksub(6, "", "203.0.113.11", 3000, 1000, 100);
	assert_int_equal(ops->sub_set(kb, &b), PERR_OK);
	assert_int_equal(ops->sub_set(kb, &c), PERR_OK);
	sub_expect(&b, true);
	sub_expect(&c, true);
	assert_int_equal(kcount(NFTM_SW_ZONE), 1);
	if (have_nft)
		assert_true(nft_lists_it());
	ops->close(kb);

	/* after a restart the old state is known: replacing works, also when
	 * the new block overlaps another subscriber's old one */
	kb = open_kb(true, false);
	struct ksub c2 = mksub(6, "", "203.0.113.11", 2500, 1000, 100);   /* overlaps b */
	assert_int_equal(ops->sub_set(kb, &c2), PERR_OK);
	sub_expect(&c2, true);
	sub_expect_z(&c, false, false);
	assert_int_equal(kcount(NFTM_PUB_ZONE), 2);   /* a2 and c2: b's block gave way */
	assert_int_equal(ops->sub_set(kb, &b), PERR_OK);   /* and back */
	assert_int_equal(ops->sub_del(kb, &c2), PERR_OK);
	assert_int_equal(ops->sub_del(kb, &b), PERR_OK);
	assert_int_equal(ops->sub_del(kb, &a2), PERR_OK);
	for (int s = NFTM_SW_ZONE; s <= NFTM_ZONE_ADDR; s++)
		assert_int_equal(kcount((enum nftm_set)s), 0);
	/* deleting what is not there is fine */
	assert_int_equal(ops->sub_del(kb, &a), PERR_OK);
	struct ksub bad = a;
	bad.zone = 0;
	assert_int_equal(ops->sub_set(kb, &bad), PERR_INVAL);
	ops->close(kb);
}

static void test_map_binding(void **state)
{
	(void)state;
	struct kbackend *kb = open_kb(true, true);
	struct aftr_filter f[3];
	memset(f, 0, sizeof(f));
	f[0].addr = a4("198.51.0.0");
	f[0].plen = 112;
	f[0].port = 443;
	f[1].addr = a4("198.51.100.0");    /* nested in f[0]'s /16: cut around 443 */
	f[1].plen = 120;
	f[2].addr = a4("192.0.2.7");
	f[2].plen = 128;
	f[2].port = 22;
	struct kchange c = change(KOP_ADD, 4, TCP, "192.168.1.2", 80, "203.0.113.10", 2001, 3600,
				  1800, BF_MAP);
	c.filters = f;
	c.nfilters = 3;
	assert_int_equal(apply(kb, &c), PERR_OK);
	expect_binding(&c, true);
	assert_int_equal(kcount(NFTM_ALLOW), 4);
	if (have_nft)
		assert_true(nft_lists_it());

	/* refresh: new lifetimes, updated in place (or replaced) */
	struct kbackend_stats st0, st1;
	ops->stats(kb, &st0);
	c.op = KOP_REFRESH;
	c.timeout = 7200;
	c.map_timeout = 5400;
	assert_int_equal(apply(kb, &c), PERR_OK);
	expect_binding(&c, true);
	ops->stats(kb, &st1);
	assert_int_equal(st1.commits, st0.commits + 1);
	/* the same again: nothing to write */
	assert_int_equal(apply(kb, &c), PERR_OK);
	ops->stats(kb, &st0);
	assert_int_equal(st0.commits, st1.commits);
	/* the inbound part goes, comes back with other filters */
	c.flags = 0;
	assert_int_equal(apply(kb, &c), PERR_OK);
	expect_binding(&c, true);
	c.flags = BF_MAP;
	c.nfilters = 1;
	c.filters = &f[2];
	assert_int_equal(apply(kb, &c), PERR_OK);
	expect_binding(&c, true);
	assert_int_equal(kcount(NFTM_ALLOW), 1);
	/* filters changed; then none at all */
	c.filters = f;
	c.nfilters = 2;
	assert_int_equal(apply(kb, &c), PERR_OK);
	expect_binding(&c, true);
	c.nfilters = 0;
	assert_int_equal(apply(kb, &c), PERR_OK);
	expect_binding(&c, true);
	/* a never-expiring (static) one and back */
	c.timeout = 0;
	c.map_timeout = 0;
	c.flags = BF_MAP | BF_STATIC;
	assert_int_equal(apply(kb, &c), PERR_OK);
	expect_binding(&c, true);
	c.timeout = 60;
	c.map_timeout = 60;
	c.flags = BF_MAP;
	assert_int_equal(apply(kb, &c), PERR_OK);
	expect_binding(&c, true);

	c.op = KOP_DEL;
	assert_int_equal(apply(kb, &c), PERR_OK);
	expect_binding(&c, false);
	expect_empty();
	struct kbackend_stats st;
	ops->stats(kb, &st);
	assert_int_equal(st.elements, 0);
	assert_true(st.ct_flushes >= 1);
	ops->close(kb);
}

static void test_refresh_in_place(void **state)
{
	(void)state;
	struct kbackend *kb = open_kb(true, true);
	bool destroy, upd;
	nftb_test_caps(kb, &destroy, &upd);
	if (!upd)
		skip();
	struct kchange c = change(KOP_ADD, 9, UDP, "192.168.7.7", 5000, "203.0.113.12", 3000, 100,
				  100, BF_MAP);
	struct aftr_filter f;
	memset(&f, 0, sizeof(f));
	f.addr = a4("198.51.100.1");
	f.plen = 128;
	c.filters = &f;
	c.nfilters = 1;
	assert_int_equal(apply(kb, &c), PERR_OK);
	sleep(2);
	c.op = KOP_REFRESH;
	c.timeout = 100;        /* same timeout: only the countdown restarts */
	c.map_timeout = 200;
	assert_int_equal(apply(kb, &c), PERR_OK);
	struct kset s = { 0 };
	kdump(NFTM_SNAT, &s);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.v[0].e.timeout_ms, 100000);
	assert_true(s.v[0].e.expiration_ms > 99000);    /* restarted, not 98 s left */
	kdump(NFTM_ALLOW, &s);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.v[0].e.timeout_ms, 200000);
	assert_true(s.v[0].e.expiration_ms > 199000);
	free(s.v);
	c.op = KOP_DEL;
	assert_int_equal(apply(kb, &c), PERR_OK);
	expect_empty();
	ops->close(kb);
}

static void expired_case(bool compat)
{
	struct kbackend *kb = open_kb(true, true);
	if (compat)
		nftb_test_compat(kb, true, true);
	struct aftr_filter f;
	memset(&f, 0, sizeof(f));
	f.addr = a4("198.51.100.0");
	f.plen = 120;
	struct kchange c = change(KOP_ADD, 3, UDP, "192.168.1.9", 53, "203.0.113.10", 2053, 1, 1,
				  BF_MAP);
	c.filters = &f;
	c.nfilters = 1;
	struct kchange d = change(KOP_ADD, 3, TCP, "192.168.1.9", 22, "203.0.113.10", 2022, 1, 0, 0);
	assert_int_equal(apply(kb, &c), PERR_OK);
	assert_int_equal(apply(kb, &d), PERR_OK);
	assert_int_equal(kcount(NFTM_SNAT), 2);
	usleep(2500 * 1000);
	expect_empty();                     /* the kernel expired them */
	c.op = KOP_DEL;
	d.op = KOP_REFRESH;                 /* refresh brings it back */
	d.timeout = 30;
	assert_int_equal(apply(kb, &c), PERR_OK);
	assert_int_equal(apply(kb, &d), PERR_OK);
	expect_binding(&d, true);
	d.op = KOP_DEL;
	assert_int_equal(apply(kb, &d), PERR_OK);
	expect_empty();
	ops->close(kb);
}

static void test_del_expired(void **state)
{
	(void)state;
	expired_case(false);
}

static void test_del_expired_compat(void **state)
{
	(void)state;
	expired_case(true);
}

static void test_bad_change_in_batch(void **state)
{
	(void)state;
	struct kbackend *kb = open_kb(true, true);
	struct kchange c[3];
	c[0] = change(KOP_ADD, 1, TCP, "192.168.1.1", 1000, "203.0.113.10", 4001, 300, 300, BF_MAP);
	c[1] = change(KOP_ADD, 1, TCP, "192.168.1.2", 1000, "203.0.113.10", 4002, 300, 300, BF_MAP);
	c[2] = change(KOP_ADD, 1, UDP, "192.168.1.3", 1000, "203.0.113.10", 4003, 300, 0, 0);
	/* someone else holds c[1]'s inbound key */
	struct nftm_elem planted;
	nftm_dnat_elem(&planted, v4("203.0.113.10"), TCP, 4002, v4("10.9.9.9"), 9);
	assert_int_equal(kelems(NFTM_OP_ADD, &planted, 1), 0);
	struct kbackend_stats st0, st1;
	ops->stats(kb, &st0);
	struct done_slot d[3] = { { PERR__COUNT, 0 }, { PERR__COUNT, 0 }, { PERR__COUNT, 0 } };
	for (int i = 0; i < 3; i++)
		ops->submit(kb, &c[i], done_cb, &d[i]);
	ops->flush(kb);
	for (int i = 0; i < 3; i++)
		assert_int_equal(d[i].calls, 1);
	assert_int_equal(d[0].r, PERR_OK);
	assert_int_equal(d[1].r, PERR_EXISTS);
	assert_int_equal(d[2].r, PERR_OK);
	ops->stats(kb, &st1);
	assert_true(st1.commit_failures >= st0.commit_failures + 1);
	assert_int_equal(st1.elements, 2);
	expect_binding(&c[0], true);
	expect_binding(&c[2], true);
	struct nftm_elem k;
	nftm_snat_elem(&k, c[1].zone, v4("192.168.1.2"), TCP, 1000, v4("203.0.113.10"), 4002);
	struct kset s = { 0 };
	kdump(NFTM_SNAT, &s);
	assert_null(kfind(&s, &k));        /* nothing of the refused change */
	free(s.v);

	/* answers without the kernel */
	assert_int_equal(apply(kb, &c[0]), PERR_EXISTS);
	struct kchange x = c[1];
	x.op = KOP_DEL;
	assert_int_equal(apply(kb, &x), PERR_NOT_FOUND);
	x.op = KOP_REFRESH;
	assert_int_equal(apply(kb, &x), PERR_NOT_FOUND);
	x = change(KOP_ADD, 1, TCP, "192.168.1.2", 1000, "198.18.0.1", 4002, 300, 0, 0);
	assert_int_equal(apply(kb, &x), PERR_INVAL);          /* not in the pool */

	/* a DEL and an ADD of the same port in one flush, then ADD + DEL */
	struct kchange del = c[0], add = c[0];
	del.op = KOP_DEL;
	add.int_port = 1001;
	add.int_addr = a4("192.168.1.4");
	struct done_slot d2[4] = { { PERR__COUNT, 0 }, { PERR__COUNT, 0 }, { PERR__COUNT, 0 },
				   { PERR__COUNT, 0 } };
	ops->submit(kb, &del, done_cb, &d2[0]);
	ops->submit(kb, &add, done_cb, &d2[1]);
	ops->flush(kb);
	assert_int_equal(d2[0].r, PERR_OK);
	assert_int_equal(d2[1].r, PERR_OK);
	expect_binding(&add, true);
	struct kchange del2 = add;
	del2.op = KOP_DEL;
	struct kchange add2 = c[0];
	ops->submit(kb, &del2, done_cb, &d2[2]);
	ops->submit(kb, &add2, done_cb, &d2[3]);
	ops->flush(kb);
	assert_int_equal(d2[2].r, PERR_OK);
	assert_int_equal(d2[3].r, PERR_OK);
	expect_binding(&c[0], true);

	c[0].op = c[2].op = KOP_DEL;
	assert_int_equal(apply(kb, &c[0]), PERR_OK);
	assert_int_equal(apply(kb, &c[2]), PERR_OK);
	assert_int_equal(kelems(NFTM_OP_DEL, &planted, 1), 0);
	expect_empty();
	ops->close(kb);
}

/* ---- restore ---- */

struct restored {
	struct kchange c[16];
	struct aftr_filter f[16][64];
	struct kpeer p[16][16];
	unsigned n;
};

static void restore_cb(void *arg, const struct kchange *c)
{
	struct restored *r = arg;
	assert_true(r->n < 16);
	unsigned i = r->n++;
	r->c[i] = *c;
	assert_true(c->nfilters <= 64 && c->npeers <= 16);
	if (c->nfilters)
		memcpy(r->f[i], c->filters, c->nfilters * sizeof(*c->filters));
	if (c->npeers)
		memcpy(r->p[i], c->peers, c->npeers * sizeof(*c->peers));
	r->c[i].filters = r->f[i];
	r->c[i].peers = r->p[i];
}

static const struct kchange *restored_find(const struct restored *r, const struct kchange *c)
{
	for (unsigned i = 0; i < r->n; i++)
		if (r->c[i].proto == c->proto && r->c[i].ext_port == c->ext_port &&
		    addr_equal(&r->c[i].ext_addr, &c->ext_addr))
			return &r->c[i];
	return NULL;
}

static void same_binding(const struct kchange *got, const struct kchange *want)
{
	assert_non_null(got);
	assert_int_equal(got->op, KOP_ADD);
	assert_int_equal(got->sub, want->sub);
	assert_int_equal(got->zone, want->zone);
	assert_int_equal(got->proto, want->proto);
	assert_true(addr_equal(&got->int_addr, &want->int_addr));
	assert_int_equal(got->int_port, want->int_port);
	assert_int_equal(got->flags, want->flags);
	assert_memory_equal(got->nonce, want->nonce, BINDING_NONCE_LEN);
	if (want->timeout)
		assert_true(got->timeout <= want->timeout && got->timeout + 5 >= want->timeout);
	else
		assert_int_equal(got->timeout, 0);
	if ((want->flags & BF_MAP) && want->map_timeout)
		assert_true(got->map_timeout <= want->map_timeout &&
			    got->map_timeout + 5 >= want->map_timeout);
	else
		assert_int_equal(got->map_timeout, 0);
}

static void test_restore(void **state)
{
	(void)state;
	struct kbackend *kb = open_kb(true, true);
	struct aftr_filter f2[2], f40[40];
	memset(f2, 0, sizeof(f2));
	f2[0].addr = a4("198.51.100.0");
	f2[0].plen = 120;
	f2[1].addr = a4("192.0.2.1");
	f2[1].plen = 128;
	f2[1].port = 8080;
	memset(f40, 0, sizeof(f40));
	for (unsigned i = 0; i < 40; i++) {
		char s[32];
		snprintf(s, sizeof(s), "100.64.%u.0", i);
		f40[i].addr = a4(s);
		f40[i].plen = 120;
		f40[i].port = (uint16_t)(i % 3 == 0 ? 0 : 1000 + i);
	}
	struct kpeer pk[2];
	memset(pk, 0, sizeof(pk));
	pk[0].addr = a4("192.0.2.50");
	pk[0].port = 443;
	pk[0].timeout = 500;
	memset(pk[0].nonce, 5, sizeof(pk[0].nonce));
	pk[1].addr = a4("192.0.2.51");
	pk[1].port = 444;
	pk[1].timeout = 600;

	struct kchange b[4];
	b[0] = change(KOP_ADD, 10, TCP, "192.168.1.2", 80, "203.0.113.20", 5001, 3600, 1800, BF_MAP);
	b[0].filters = f2;
	b[0].nfilters = 2;
	b[1] = change(KOP_ADD, 11, UDP, "192.168.1.3", 5060, "203.0.113.21", 5002, 700, 0, 0);
	b[1].peers = pk;
	b[1].npeers = 2;
	b[2] = change(KOP_ADD, 12, TCP, "192.168.1.4", 22, "203.0.113.22", 5003, 0, 0,
		      BF_MAP | BF_STATIC);
	b[3] = change(KOP_ADD, 13, TCP, "192.168.1.5", 25, "203.0.113.23", 5004, 900, 900,
		      BF_MAP | BF_THIRD_PARTY);
	b[3].filters = f40;          /* too many for the user data */
	b[3].nfilters = 40;
	for (int i = 0; i < 4; i++)
		assert_int_equal(apply(kb, &b[i]), PERR_OK);
	expect_binding(&b[3], true);
	ops->close(kb);

	/* inconsistencies planted behind its back */
	struct nftm_elem e;
	uint8_t garbage[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	nftm_snat_elem(&e, 20, v4("192.168.9.9"), TCP, 9, v4("203.0.113.30"), 6000);
	e.udata = garbage;
	e.ulen = sizeof(garbage);
	assert_int_equal(kelems(NFTM_OP_ADD, &e, 1), 0);
	nftm_dnat_elem(&e, v4("203.0.113.31"), TCP, 6001, v4("192.168.9.10"), 10);  /* no snat */
	assert_int_equal(kelems(NFTM_OP_ADD, &e, 1), 0);
	nftm_omark_elem(&e, 21, v4("192.168.9.11"), UDP, 11, 0x1234);      /* no snat */
	assert_int_equal(kelems(NFTM_OP_ADD, &e, 1), 0);
	nftm_imark_elem(&e, v4("203.0.113.20"), TCP, 5001, 0);            /* b[0], wrong mark */
	assert_int_equal(kelems(NFTM_OP_DEL, &e, 1), 0);
	e.data[0] = 0x77;
	assert_int_equal(kelems(NFTM_OP_ADD, &e, 1), 0);
	struct nftm_range rg = { v4("10.0.0.0"), v4("10.0.0.255"), 0, 65535 };
	nftm_allow_elem(&e, v4("203.0.113.21"), UDP, 5002, &rg);          /* b[1] has no MAP */
	assert_int_equal(kelems(NFTM_OP_ADD, &e, 1), 0);
	nftm_allow_elem(&e, v4("203.0.113.20"), TCP, 5001, &rg);          /* b[0]: extra range */
	assert_int_equal(kelems(NFTM_OP_ADD, &e, 1), 0);
	nftm_filtered_elem(&e, v4("203.0.113.32"), TCP, 6002);           /* orphan */
	assert_int_equal(kelems(NFTM_OP_ADD, &e, 1), 0);
	/* a dnat that does not match its snat: the binding loses the inbound part */
	struct kchange b4 = change(KOP_ADD, 14, TCP, "192.168.1.6", 26, "203.0.113.24", 5005, 900,
				   900, 0);
	kb = open_kb(true, false);
	assert_int_equal(apply(kb, &b4), PERR_OK);
	ops->close(kb);
	nftm_dnat_elem(&e, v4("203.0.113.24"), TCP, 5005, v4("192.168.1.99"), 26);
	assert_int_equal(kelems(NFTM_OP_ADD, &e, 1), 0);

	/* restart */
	kb = open_kb(true, false);
	struct restored *r = calloc(1, sizeof(*r));
	assert_int_equal(ops->restore(kb, restore_cb, r), PERR_OK);
	assert_int_equal(r->n, 5);
	for (int i = 0; i < 4; i++)
		same_binding(restored_find(r, &b[i]), &b[i]);
	same_binding(restored_find(r, &b4), &b4);
	const struct kchange *g = restored_find(r, &b[0]);
	assert_int_equal(g->nfilters, 2);
	assert_memory_equal(g->filters, f2, sizeof(f2));
	g = restored_find(r, &b[1]);
	assert_int_equal(g->npeers, 2);
	for (int i = 0; i < 2; i++) {
		assert_true(addr_equal(&g->peers[i].addr, &pk[i].addr));
		assert_int_equal(g->peers[i].port, pk[i].port);
		assert_memory_equal(g->peers[i].nonce, pk[i].nonce, BINDING_NONCE_LEN);
		assert_true(g->peers[i].timeout <= pk[i].timeout &&
			    g->peers[i].timeout + 5 >= pk[i].timeout);
	}
	g = restored_find(r, &b[3]);                /* rebuilt from pcp_allow */
	struct nftm_range w1[128], w2[128];
	size_t n1 = nftm_filter_ranges(f40, 40, w1, 128);
	size_t n2 = nftm_filter_ranges(g->filters, g->nfilters, w2, 128);
	assert_int_equal(n1, n2);
	assert_memory_equal(w1, w2, n1 * sizeof(w1[0]));

	/* the kernel now holds exactly those five bindings */
	for (int i = 0; i < 4; i++)
		expect_binding(&b[i], true);
	expect_binding(&b4, true);
	assert_int_equal(kcount(NFTM_SNAT), 5);
	assert_int_equal(kcount(NFTM_OMARK), 5);
	assert_int_equal(kcount(NFTM_DNAT), 3);
	assert_int_equal(kcount(NFTM_IMARK), 3);
	assert_int_equal(kcount(NFTM_FILTERED), 2);
	struct kbackend_stats st;
	ops->stats(kb, &st);
	assert_int_equal(st.elements, 5);

	/* and what it restored can be changed and deleted */
	b[0].op = KOP_REFRESH;
	b[0].timeout = 4000;
	assert_int_equal(apply(kb, &b[0]), PERR_OK);
	expect_binding(&b[0], true);
	b[1].op = KOP_REFRESH;
	b[1].flags = BF_MAP;
	b[1].map_timeout = 300;
	assert_int_equal(apply(kb, &b[1]), PERR_OK);
	expect_binding(&b[1], true);
	for (int i = 0; i < 4; i++) {
		b[i].op = KOP_DEL;
		assert_int_equal(apply(kb, &b[i]), PERR_OK);
	}
	b4.op = KOP_DEL;
	assert_int_equal(apply(kb, &b4), PERR_OK);
	expect_empty();
	free(r);
	ops->close(kb);
}

/* ---- volume ---- */

static const struct aftr_filter *bulk_filter;   /* one FILTER on MAP changes when set */

static struct kchange bulk(unsigned i, enum kop op, bool map)
{
	struct kchange c;
	memset(&c, 0, sizeof(c));
	c.op = op;
	c.sub = i % 5000;
	c.zone = kzone_of(c.sub);
	c.proto = i & 1 ? UDP : TCP;
	addr_from_v4(&c.int_addr, 0x0a000000u + i);
	c.int_port = (uint16_t)(1024 + i % 60000);
	addr_from_v4(&c.ext_addr, v4("203.0.113.0") + i / 50000);
	c.ext_port = (uint16_t)(1024 + i % 50000);
	c.timeout = 3600;
	c.map_timeout = map ? 3600 : 0;
	c.flags = map ? BF_MAP : 0;
	c.nonce[0] = (uint8_t)i;
	if (map && bulk_filter) {
		c.filters = bulk_filter;
		c.nfilters = 1;
	}
	return c;
}

static unsigned bulk_ok;

static void bulk_done(void *arg, enum perr r)
{
	(void)arg;
	if (r == PERR_OK)
		bulk_ok++;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* n changes, a flush every `every` (0 = one flush); seconds taken. */
static double run_bulk(struct kbackend *kb, unsigned n, unsigned every, enum kop op, bool map,
		       uint32_t timeout)
{
	bulk_ok = 0;
	double t0 = now_s();
	for (unsigned i = 0; i < n; i++) {
		struct kchange c = bulk(i, op, map);
		c.timeout = timeout;
		if (map)
			c.map_timeout = timeout;
		ops->submit(kb, &c, bulk_done, NULL);
		if (every && (i + 1) % every == 0)
			ops->flush(kb);
	}
	ops->flush(kb);
	double t = now_s() - t0;
	assert_int_equal(bulk_ok, n);
	return t;
}

static void test_large_batch(void **state)
{
	(void)state;
	struct kbackend *kb = open_kb(true, true);
	struct kbackend_stats st0, st1;
	ops->stats(kb, &st0);
	run_bulk(kb, 20000, 0, KOP_ADD, true, 3600);
	ops->stats(kb, &st1);
	assert_true(st1.commits - st0.commits >= 20000 / NFTB_MAX_TXN_CHANGES);
	assert_int_equal(st1.commit_failures, st0.commit_failures);
	assert_int_equal(st1.elements, 20000);
	assert_true(st1.batch_max >= 4096 && st1.batch_hist[KSTAT_HIST - 1] >= 1);
	assert_int_equal(kcount(NFTM_SNAT), 20000);
	assert_int_equal(kcount(NFTM_DNAT), 20000);
	printf("20000 MAP changes in one flush: %lu transactions, %lu messages\n",
	       (unsigned long)(st1.commits - st0.commits), (unsigned long)(st1.messages - st0.messages));
	run_bulk(kb, 20000, 0, KOP_REFRESH, true, 7200);
	struct kset s = { 0 };
	kdump(NFTM_DNAT, &s);
	for (size_t i = 0; i < s.n; i += 997)
		assert_int_equal(s.v[i].e.timeout_ms, 7200000);
	free(s.v);
	run_bulk(kb, 20000, 0, KOP_DEL, true, 7200);
	expect_empty();
	ops->close(kb);
}

static void test_lost_acks(void **state)
{
	(void)state;
	struct kbackend *kb = open_kb(true, true);
	struct kbackend_stats st0, st1;
	ops->stats(kb, &st0);
	nftb_test_lose_acks(kb, 1);
	run_bulk(kb, 300, 0, KOP_ADD, true, 600);
	ops->stats(kb, &st1);
	assert_true(st1.enobufs > st0.enobufs);
	assert_int_equal(kcount(NFTM_SNAT), 300);
	assert_int_equal(kcount(NFTM_IMARK), 300);
	nftb_test_lose_acks(kb, 2);       /* twice in a row */
	run_bulk(kb, 300, 0, KOP_DEL, true, 600);
	expect_empty();
	ops->close(kb);
}

static void test_small_transactions(void **state)
{
	(void)state;
	struct kbackend *kb = open_kb(true, true);
	nftb_test_txn_cap(kb, 7);
	struct kbackend_stats st0, st1;
	ops->stats(kb, &st0);
	run_bulk(kb, 100, 0, KOP_ADD, false, 600);
	ops->stats(kb, &st1);
	assert_int_equal(st1.commits - st0.commits, 15);   /* ceil(100 / 7) */
	assert_int_equal(kcount(NFTM_OMARK), 100);
	run_bulk(kb, 100, 0, KOP_DEL, false, 600);
	expect_empty();
	ops->close(kb);
}

/* ---- conntrack ---- */

static void test_conntrack(void **state)
{
	(void)state;
	struct kbackend *kb = open_kb(true, true);
	struct kpeer peer;
	memset(&peer, 0, sizeof(peer));
	peer.addr = a4("192.0.2.80");
	peer.port = 8080;
	peer.timeout = 120;
	struct kchange c = change(KOP_ADD, 30, TCP, "192.168.5.5", 40000, "203.0.113.40", 7000, 300,
				  0, 0);
	c.new_peer = &peer;
	c.peers = &peer;
	c.npeers = 1;
	assert_int_equal(apply(kb, &c), PERR_OK);
	struct in6_addr ea;
	uint16_t ep = 0;
	assert_int_equal(ops->peer_find(kb, c.zone, TCP, &c.int_addr, 40000, &peer.addr, 8080, &ea,
					&ep),
			 PERR_OK);
	assert_true(addr_equal(&ea, &c.ext_addr));
	assert_int_equal(ep, 7000);
	struct kbackend_stats st;
	ops->stats(kb, &st);
	assert_int_equal(st.ct_created, 1);
	/* refresh of an existing PEER flow: no second entry */
	c.op = KOP_REFRESH;
	peer.timeout = 240;
	assert_int_equal(apply(kb, &c), PERR_OK);
	ops->stats(kb, &st);
	assert_int_equal(st.ct_created, 1);
	/* delete: the flow carried the binding's mark and is flushed */
	c.op = KOP_DEL;
	c.new_peer = NULL;
	assert_int_equal(apply(kb, &c), PERR_OK);
	assert_int_equal(ops->peer_find(kb, c.zone, TCP, &c.int_addr, 40000, &peer.addr, 8080, &ea,
					&ep),
			 PERR_NOT_FOUND);

	/* a MAP binding whose inbound part goes: its flows go too */
	struct kchange m = change(KOP_ADD, 31, UDP, "192.168.5.6", 5353, "203.0.113.41", 7001, 300,
				  300, BF_MAP);
	peer.timeout = 60;
	m.new_peer = &peer;
	assert_int_equal(apply(kb, &m), PERR_OK);
	assert_int_equal(ops->peer_find(kb, m.zone, UDP, &m.int_addr, 5353, &peer.addr, 8080, &ea,
					&ep),
			 PERR_OK);
	assert_int_equal(ep, 7001);
	m.op = KOP_REFRESH;
	m.new_peer = NULL;
	assert_int_equal(apply(kb, &m), PERR_OK);     /* only timeouts: flows stay */
	assert_int_equal(ops->peer_find(kb, m.zone, UDP, &m.int_addr, 5353, &peer.addr, 8080, &ea,
					&ep),
			 PERR_OK);
	m.flags = 0;
	assert_int_equal(apply(kb, &m), PERR_OK);
	assert_int_equal(ops->peer_find(kb, m.zone, UDP, &m.int_addr, 5353, &peer.addr, 8080, &ea,
					&ep),
			 PERR_NOT_FOUND);
	ops->stats(kb, &st);
	assert_int_equal(st.ct_created, 2);
	assert_true(st.ct_flushes >= 2);
	m.op = KOP_DEL;
	assert_int_equal(apply(kb, &m), PERR_OK);
	expect_empty();
	ops->close(kb);
}

/* ---- concurrency: submits from threads, flushes from two ---- */

#include <pthread.h>

struct worker {
	struct kbackend *kb;
	unsigned base;
};

static unsigned conc_ok;
static pthread_mutex_t conc_lock = PTHREAD_MUTEX_INITIALIZER;

static void conc_done(void *arg, enum perr r)
{
	(void)arg;
	pthread_mutex_lock(&conc_lock);
	if (r == PERR_OK)
		conc_ok++;
	pthread_mutex_unlock(&conc_lock);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	for (unsigned i = 0; i < 2000; i++) {
		struct kchange c = bulk(w->base + i, KOP_ADD, i % 2);
		ops->submit(w->kb, &c, conc_done, NULL);
		if (i % 100 == 99)
			ops->flush(w->kb);
	}
	ops->flush(w->kb);
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	struct kbackend *kb = open_kb(true, true);
	pthread_t t[4];
	struct worker w[4];
	conc_ok = 0;
	for (unsigned i = 0; i < 4; i++) {
		w[i].kb = kb;
		w[i].base = i * 2000;
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	}
	for (unsigned i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	ops->flush(kb);
	assert_int_equal(conc_ok, 8000);
	assert_int_equal(kcount(NFTM_SNAT), 8000);
	assert_int_equal(kcount(NFTM_DNAT), 4000);
	run_bulk(kb, 8000, 0, KOP_DEL, false, 0);   /* kind of change is taken from the record */
	expect_empty();
	ops->close(kb);
}

/* ---- timings ---- */

static void test_perf(void **state)
{
	(void)state;
	static const unsigned sizes[] = { 1000, 10000, 100000 };
	printf("commit timings (MAP bindings: 4 elements each; a flush every 1000 changes):\n");
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		unsigned n = sizes[k];
		struct kbackend *kb = open_kb(true, true);
		struct kbackend_stats s0, s1;
		ops->stats(kb, &s0);
		double ta = run_bulk(kb, n, 1000, KOP_ADD, true, 3600);
		ops->stats(kb, &s1);
		double lat = s1.commits > s0.commits
				     ? (double)(s1.latency_us_sum - s0.latency_us_sum) /
					       (double)(s1.commits - s0.commits)
				     : 0;
		double tr = run_bulk(kb, n, 1000, KOP_REFRESH, true, 7200);
		double td = run_bulk(kb, n, 1000, KOP_DEL, true, 7200);
		printf("  %6u: add %.3f s (%.0f/s, %.2f ms per 1000-change transaction), "
		       "refresh %.3f s (%.0f/s), delete %.3f s (%.0f/s)\n",
		       n, ta, n / ta, lat / 1000.0, tr, n / tr, td, n / td);
		ops->close(kb);
		reset_table(NULL);
	}
	/* with a FILTER each: + pcp_filtered and a pcp_allow (pipapo) element */
	struct aftr_filter f;
	memset(&f, 0, sizeof(f));
	f.addr = a4("198.51.100.0");
	f.plen = 120;
	bulk_filter = &f;
	for (size_t k = 0; k < 2; k++) {
		unsigned n = sizes[k];
		struct kbackend *kb = open_kb(true, true);
		double ta = run_bulk(kb, n, 1000, KOP_ADD, true, 3600);
		double tr = run_bulk(kb, n, 1000, KOP_REFRESH, true, 7200);
		double td = run_bulk(kb, n, 1000, KOP_DEL, true, 7200);
		printf("  %6u with a FILTER each: add %.3f s (%.0f/s), refresh %.3f s (%.0f/s), "
		       "delete %.3f s (%.0f/s)\n", n, ta, n / ta, tr, n / tr, td, n / td);
		ops->close(kb);
		reset_table(NULL);
	}
	bulk_filter = NULL;
}

int main(void)
{
	if (geteuid() != 0) {
		printf("SKIP test_nft_kernel: needs root (CAP_NET_ADMIN) for a private network namespace\n");
		return 77;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		printf("SKIP test_nft_kernel: unshare(CLONE_NEWNET) failed: %s\n", strerror(errno));
		return 77;
	}
	nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		printf("SKIP test_nft_kernel: no netfilter netlink socket: %s\n", strerror(errno));
		return 77;
	}
	/* nf_tables present? */
	uint8_t req[1024];
	int e = kreq(nftm_req_gettable(req, "pcpd", ++seq), NULL, NULL);
	if (e != ENOENT && e != 0) {
		printf("SKIP test_nft_kernel: nf_tables not usable: %s\n", strerror(e));
		return 77;
	}
	log_setup(LOG_TO_STDERR, LOG_WARNING, "test_nft_kernel");
	have_nft = system("nft --version >/dev/null 2>&1") == 0;
	memset(&ac, 0, sizeof(ac));
	ac.npool = 1;
	ac.pool[0].first = v4("203.0.113.0");
	ac.pool[0].last = v4("203.0.113.255");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_open_keep_close, reset_table),
		cmocka_unit_test_setup(test_not_ours, reset_table),
		cmocka_unit_test_setup(test_subscribers, reset_table),
		cmocka_unit_test_setup(test_map_binding, reset_table),
		cmocka_unit_test_setup(test_refresh_in_place, reset_table),
		cmocka_unit_test_setup(test_del_expired, reset_table),
		cmocka_unit_test_setup(test_del_expired_compat, reset_table),
		cmocka_unit_test_setup(test_bad_change_in_batch, reset_table),
		cmocka_unit_test_setup(test_restore, reset_table),
		cmocka_unit_test_setup(test_large_batch, reset_table),
		cmocka_unit_test_setup(test_lost_acks, reset_table),
		cmocka_unit_test_setup(test_small_transactions, reset_table),
		cmocka_unit_test_setup(test_conntrack, reset_table),
		cmocka_unit_test_setup(test_threads, reset_table),
		cmocka_unit_test_setup(test_perf, reset_table),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	mnl_socket_close(nl);
	return r;
}
