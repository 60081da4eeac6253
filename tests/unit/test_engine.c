/* The PCP handler and mapping engine over the in-memory backend, with a
 * controlled clock: expiry, hold-down, kernel failure rollback, quotas,
 * rate limit, port exhaustion, NAT-PMP, and concurrent workers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/addr.h"
#include "pcpd/restart.h"
#include "pcpd/server.h"

struct capture {
	uint8_t buf[PCP_MAX_LEN];
	size_t len;
	unsigned n;
};

static struct capture cap;   /* single-threaded tests only */

static void capture_reply(const struct pcp_meta *m, const uint8_t *buf, size_t len)
{
	struct capture *c = m->io ? m->io : &cap;
	memcpy(c->buf, buf, len);
	c->len = len;
	c->n++;
}

/* Parsed by the real config loader, so tests see what pcpd would run. */
static const char test_conf[] =
	"server {\n"
	"  max-filters = 4\n"
	"}\n"
	"aftr {\n"
	"  pool = {\"203.0.113.0/28\"}\n"
	"  ports-per-subscriber = 2048\n"
	"  pcp-ports = 16\n"
	"  subscriber-prefix-length = 64\n"
	"  b4-prefixes = {\"2001:db8:100::/56\"}\n"
	"  internal-prefixes = {\"192.168.0.0/16\"}\n"
	"  max-mappings = 8\n"
	"  rate-limit = 0\n"
	"  subscriber \"enc\" { interface = \"lo\"  index = 300 }\n"
	"}\n";

static struct pcpd_config *mkcfg(void)
{
	struct pcpd_config *c = pcpd_config_load_buf(test_conf, "test_engine.conf", stderr);
	assert_non_null(c);
	return c;
}

struct world {
	struct pcpd_server *s;
	uint32_t now;
};

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	w->s = pcpd_server_new(mkcfg(), 1000, capture_reply);
	assert_non_null(w->s);
	w->now = 1000;
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;
	pcpd_server_free(w->s);
	free(w);
	return 0;
}

struct rq {
	const char *src;                 /* transport source */
	int ifindex;
	uint8_t op;
	uint8_t proto;
	uint16_t port, sugg;
	uint32_t lifetime;
	char nonce;
	const char *tp;                  /* THIRD_PARTY */
	const char *peer;
	uint16_t peer_port;
};

/* Sends one request; returns the result code (or -1 for no reply). */
static int send_rq(struct world *w, const struct rq *r, struct pcp_response *out)
{
	struct pcp_request req;
	memset(&req, 0, sizeof(req));
	req.version = 2;
	req.opcode = r->op;
	req.lifetime = r->lifetime;
	assert_true(addr_parse(r->src, &req.client_addr));
	memset(req.nonce, r->nonce, sizeof(req.nonce));
	req.proto = r->proto;
	req.int_port = r->port;
	req.sugg_port = r->sugg;
	addr_from_v4(&req.sugg_addr, 0);
	if (r->tp) {
		req.has_third_party = true;
		assert_true(addr_parse(r->tp, &req.third_party));
	}
	if (r->peer) {
		assert_true(addr_parse(r->peer, &req.peer_addr));
		req.peer_port = r->peer_port;
	}
	uint8_t pkt[PCP_MAX_LEN];
	size_t n = pcp_encode_request(&req, pkt, sizeof(pkt));
	assert_true(n > 0);
	struct pcp_meta m;
	memset(&m, 0, sizeof(m));
	m.src = req.client_addr;
	m.sport = 5350;
	m.ifindex = r->ifindex;
	m.now = w->now;
	m.now_ms = (uint64_t)w->now * 1000u;
	unsigned before = cap.n;
	rcu_read_lock();
	pcp_handle(&w->s->handler, &m, pkt, n);
	rcu_read_unlock();
	if (cap.n == before)
		return -1;
	struct pcp_response rsp;
	assert_int_equal(pcp_decode_response(cap.buf, cap.len, &rsp), PERR_OK);
	if (out)
		*out = rsp;
	return rsp.result;
}

#define B4A "2001:db8:100:a::1"
#define B4B "2001:db8:100:b::1"
#define HOST "192.168.1.2"

static struct rq map_rq(const char *b4, uint16_t port, uint32_t lifetime, char nonce)
{
	struct rq r = { .src = b4, .op = PCP_OP_MAP, .proto = 6, .port = port,
			.lifetime = lifetime, .nonce = nonce, .tp = HOST };
	return r;
}

static void test_map_installs_kernel_element(void **state)
{
	struct world *w = *state;
	struct pcp_response rsp;
	struct rq r = map_rq(B4A, 80, 3600, 'a');
	assert_int_equal(send_rq(w, &r, &rsp), PCP_SUCCESS);
	assert_int_equal(rsp.lifetime, 3600);
	assert_int_equal(rsp.epoch, 0);
	struct kchange k;
	assert_true(kbackend_mem_lookup(w->s->kb, 6, &rsp.ext_addr, rsp.ext_port, &k));
	char a[ADDR_STRLEN];
	assert_string_equal(addr_str(&k.int_addr, a), HOST);
	assert_int_equal(k.int_port, 80);
	assert_int_equal(k.timeout, 3600);
	assert_int_equal(kbackend_mem_count(w->s->kb), 1);
}

static void test_overlap_independent(void **state)
{
	struct world *w = *state;
	struct pcp_response ra, rb;
	struct rq a = map_rq(B4A, 80, 3600, 'a'), b = map_rq(B4B, 80, 3600, 'a');
	assert_int_equal(send_rq(w, &a, &ra), PCP_SUCCESS);
	assert_int_equal(send_rq(w, &b, &rb), PCP_SUCCESS);
	assert_false(addr_equal(&ra.ext_addr, &rb.ext_addr) && ra.ext_port == rb.ext_port);
	assert_int_equal(table_count(w->s->table), 2);
	/* b4b deleting "its" 192.168.1.2:80 leaves b4a's untouched */
	b.lifetime = 0;
	assert_int_equal(send_rq(w, &b, NULL), PCP_SUCCESS);
	assert_int_equal(table_count(w->s->table), 1);
	assert_true(kbackend_mem_lookup(w->s->kb, 6, &ra.ext_addr, ra.ext_port, NULL));
}

static void test_expiry_and_hold_down(void **state)
{
	struct world *w = *state;
	struct pcp_response r1, r2;
	struct rq r = map_rq(B4A, 80, 120, 'a');
	assert_int_equal(send_rq(w, &r, &r1), PCP_SUCCESS);
	assert_int_equal(engine_expire(&w->s->eng, 1119), 0);
	assert_int_equal(table_count(w->s->table), 1);
	assert_int_equal(engine_expire(&w->s->eng, 1120), 1);
	assert_int_equal(table_count(w->s->table), 0);
	assert_int_equal(kbackend_mem_count(w->s->kb), 0);
	/* held down: another client suggesting the port gets another one */
	w->now = 1130;
	struct rq o = map_rq(B4A, 81, 600, 'b');
	o.sugg = r1.ext_port;
	assert_int_equal(send_rq(w, &o, &r2), PCP_SUCCESS);
	assert_int_not_equal(r2.ext_port, r1.ext_port);
	/* ...but the same client and nonce reclaims it (RFC 6887 §15) */
	assert_int_equal(send_rq(w, &r, &r2), PCP_SUCCESS);
	assert_int_equal(r2.ext_port, r1.ext_port);
}

static void test_hold_down_ends(void **state)
{
	struct world *w = *state;
	struct pcp_response r1, r2;
	struct rq r = map_rq(B4A, 80, 600, 'a');
	assert_int_equal(send_rq(w, &r, &r1), PCP_SUCCESS);
	r.lifetime = 0;
	assert_int_equal(send_rq(w, &r, NULL), PCP_SUCCESS);
	struct rq o = map_rq(B4A, 81, 600, 'b');
	o.sugg = r1.ext_port;
	w->now = 1000 + 119;
	assert_int_equal(send_rq(w, &o, &r2), PCP_SUCCESS);
	assert_int_not_equal(r2.ext_port, r1.ext_port);
	o.lifetime = 0;
	assert_int_equal(send_rq(w, &o, NULL), PCP_SUCCESS);
	w->now = 1000 + 121;
	o.lifetime = 600;
	o.nonce = 'c';
	o.port = 82;
	assert_int_equal(send_rq(w, &o, &r2), PCP_SUCCESS);
	assert_int_equal(r2.ext_port, r1.ext_port);
}

static void test_kernel_failure_rolls_back(void **state)
{
	struct world *w = *state;
	struct pcp_response rsp;
	struct rq r = map_rq(B4A, 80, 3600, 'a');
	kbackend_mem_fail_next(w->s->kb, 1, PERR_KERNEL);
	assert_int_equal(send_rq(w, &r, &rsp), PCP_NETWORK_FAILURE);
	assert_int_equal(rsp.lifetime, 30);
	assert_int_equal(table_count(w->s->table), 0);
	assert_int_equal(kbackend_mem_count(w->s->kb), 0);
	/* the port and quota were given back: the retry succeeds */
	assert_int_equal(send_rq(w, &r, &rsp), PCP_SUCCESS);
	uint16_t port = rsp.ext_port;
	/* a failed refresh keeps the old lifetime in the table */
	w->now = 1100;
	r.lifetime = 7200;
	kbackend_mem_fail_next(w->s->kb, 1, PERR_NO_RESOURCES);
	assert_int_equal(send_rq(w, &r, &rsp), PCP_NO_RESOURCES);
	assert_int_equal(engine_expire(&w->s->eng, 1000 + 3600), 1);
	(void)port;
}

static void test_quota_and_exhaustion(void **state)
{
	struct world *w = *state;
	struct pcp_response rsp;
	for (uint16_t p = 1; p <= 8; p++) {
		struct rq r = map_rq(B4A, p, 600, 'q');
		assert_int_equal(send_rq(w, &r, &rsp), PCP_SUCCESS);
	}
	struct rq r = map_rq(B4A, 9, 600, 'q');
	assert_int_equal(send_rq(w, &r, &rsp), PCP_USER_EX_QUOTA);
	assert_int_equal(rsp.lifetime, 30);
	/* other subscribers keep their quota */
	struct rq o = map_rq(B4B, 9, 600, 'q');
	assert_int_equal(send_rq(w, &o, &rsp), PCP_SUCCESS);
}

static void test_ports_exhausted(void **state)
{
	struct world *w = *state;
	w->s->eng.lim.max_mappings = 100;
	struct pcp_response rsp;
	unsigned ok = 0;
	int last = 0;
	for (uint16_t p = 1; p <= 20; p++) {
		struct rq r = map_rq(B4A, p, 600, 'x');
		last = send_rq(w, &r, &rsp);
		if (last != PCP_SUCCESS)
			break;
		ok++;
	}
	assert_int_equal(ok, 16);          /* pcp-ports = 16 */
	assert_int_equal(last, PCP_NO_RESOURCES);
}

static void test_rate_limit(void **state)
{
	struct world *w = *state;
	struct pcpd_config *c = w->s->cfg;
	c->aftr.rate_limit = 1;
	c->aftr.rate_burst = 2;
	struct rq r = { .src = B4A, .op = PCP_OP_ANNOUNCE };
	assert_int_equal(send_rq(w, &r, NULL), PCP_SUCCESS);
	assert_int_equal(send_rq(w, &r, NULL), PCP_SUCCESS);
	assert_int_equal(send_rq(w, &r, NULL), PCP_NO_RESOURCES);
	struct rq o = { .src = B4B, .op = PCP_OP_ANNOUNCE };
	assert_int_equal(send_rq(w, &o, NULL), PCP_SUCCESS);   /* per subscriber */
	w->now += 1;
	assert_int_equal(send_rq(w, &r, NULL), PCP_SUCCESS);
}

static void test_peer_then_map_lifetimes(void **state)
{
	struct world *w = *state;
	struct pcp_response rp, rm;
	struct rq p = { .src = B4A, .op = PCP_OP_PEER, .proto = 17, .port = 5000,
			.lifetime = 300, .nonce = 'p', .tp = HOST, .peer = "198.51.100.7",
			.peer_port = 443 };
	assert_int_equal(send_rq(w, &p, &rp), PCP_SUCCESS);
	struct rq m = map_rq(B4A, 5000, 1000, 'p');
	m.proto = 17;
	assert_int_equal(send_rq(w, &m, &rm), PCP_SUCCESS);
	assert_int_equal(rm.ext_port, rp.ext_port);
	/* the PEER part expires, the MAP part keeps the binding */
	engine_expire(&w->s->eng, 1300);
	assert_int_equal(table_count(w->s->table), 1);
	assert_true(kbackend_mem_lookup(w->s->kb, 17, &rm.ext_addr, rm.ext_port, NULL));
	engine_expire(&w->s->eng, 2000);
	assert_int_equal(table_count(w->s->table), 0);
	assert_int_equal(kbackend_mem_count(w->s->kb), 0);
}

static void test_encapsulated_unknown_interface(void **state)
{
	struct world *w = *state;
	struct rq r = { .src = HOST, .ifindex = 9999, .op = PCP_OP_ANNOUNCE };
	assert_int_equal(send_rq(w, &r, NULL), -1);        /* silently ignored */
	struct rq ok = { .src = HOST, .ifindex = 1, .op = PCP_OP_MAP, .proto = 6, .port = 80,
			 .lifetime = 600, .nonce = 'e' };
	assert_int_equal(send_rq(w, &ok, NULL), PCP_SUCCESS);   /* lo = subscriber "enc" */
}

static void natpmp(struct world *w, const uint8_t *pkt, size_t len)
{
	struct pcp_meta m;
	memset(&m, 0, sizeof(m));
	addr_parse(HOST, &m.src);
	m.ifindex = 1;
	m.now = w->now;
	rcu_read_lock();
	pcp_handle(&w->s->handler, &m, pkt, len);
	rcu_read_unlock();
}

static void test_natpmp(void **state)
{
	struct world *w = *state;
	const uint8_t map[12] = { 0, 2, 0, 0, 0, 80, 0, 0, 0, 0, 0x1c, 0x20 };
	natpmp(w, map, sizeof(map));
	assert_int_equal(cap.len, 16);
	assert_int_equal(cap.buf[1], 130);
	assert_int_equal(cap.buf[2] << 8 | cap.buf[3], 0);
	assert_int_equal(cap.buf[12] << 24 | cap.buf[13] << 16 | cap.buf[14] << 8 | cap.buf[15], 7200);
	assert_int_equal(table_count(w->s->table), 1);
	/* a PCP client with its own nonce cannot take the NAT-PMP mapping */
	struct rq r = { .src = HOST, .ifindex = 1, .op = PCP_OP_MAP, .proto = 6, .port = 80,
			.lifetime = 600, .nonce = 'z' };
	assert_int_equal(send_rq(w, &r, NULL), PCP_NOT_AUTHORIZED);
	/* delete-all removes this client's NAT-PMP TCP mappings and nothing else */
	for (uint8_t port = 81; port <= 83; port++) {
		const uint8_t more[12] = { 0, 2, 0, 0, 0, port, 0, 0, 0, 0, 0x1c, 0x20 };
		natpmp(w, more, sizeof(more));
	}
	const uint8_t udp[12] = { 0, 1, 0, 0, 0, 80, 0, 0, 0, 0, 0x1c, 0x20 };
	natpmp(w, udp, sizeof(udp));
	struct rq pcp = { .src = HOST, .ifindex = 1, .op = PCP_OP_MAP, .proto = 6, .port = 90,
			  .lifetime = 600, .nonce = 'z' };
	assert_int_equal(send_rq(w, &pcp, NULL), PCP_SUCCESS);
	assert_int_equal(table_count(w->s->table), 6);
	const uint8_t delall[12] = { 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
	natpmp(w, delall, sizeof(delall));
	assert_int_equal(cap.buf[2] << 8 | cap.buf[3], 0);
	assert_int_equal(table_count(w->s->table), 2);          /* the UDP one and the PCP one */
	assert_int_equal(kbackend_mem_count(w->s->kb), 2);
	const uint8_t badop[2] = { 0, 7 };
	natpmp(w, badop, sizeof(badop));
	assert_int_equal(cap.buf[2] << 8 | cap.buf[3], 5);
}

static void save_result(void *arg, const struct engine_result *r)
{
	*(struct engine_result *)arg = *r;
}

static void test_static_mapping(void **state)
{
	struct world *w = *state;
	struct engine_req rq;
	memset(&rq, 0, sizeof(rq));
	struct in6_addr b4;
	addr_parse(B4A, &b4);
	rcu_read_lock();
	rq.sub = subs_by_b4(w->s->subs, &b4);
	rcu_read_unlock();
	assert_non_null(rq.sub);
	rq.proto = 6;
	addr_parse(HOST, &rq.int_addr);
	rq.int_port = 443;
	rq.flags = BF_STATIC;
	rq.now = w->now;
	struct engine_result r;
	rcu_read_lock();
	engine_map(&w->s->eng, &rq, save_result, &r);
	rcu_read_unlock();
	assert_int_equal(r.err, PERR_OK);
	/* §11.3 item 2: a MAP for it returns it, lifetime 2^32-1, any nonce */
	struct pcp_response rsp;
	struct rq m = map_rq(B4A, 443, 600, 'k');
	assert_int_equal(send_rq(w, &m, &rsp), PCP_SUCCESS);
	assert_int_equal(rsp.lifetime, UINT32_MAX);
	assert_int_equal(rsp.ext_port, r.ext_port);
	/* §15.1: MAP cannot delete it */
	m.lifetime = 0;
	assert_int_equal(send_rq(w, &m, NULL), PCP_NOT_AUTHORIZED);
	/* static mappings never expire and do not count against the quota */
	assert_int_equal(engine_expire(&w->s->eng, UINT32_MAX - 1), 0);
	assert_int_equal(table_count(w->s->table), 1);
}

static void test_static_delete(void **state)
{
	struct world *w = *state;
	struct in6_addr b4;
	addr_parse(B4A, &b4);
	struct engine_req rq;
	memset(&rq, 0, sizeof(rq));
	rcu_read_lock();
	rq.sub = subs_by_b4(w->s->subs, &b4);
	rq.proto = 17;
	addr_parse(HOST, &rq.int_addr);
	rq.int_port = 5060;
	rq.flags = BF_STATIC;
	rq.lifetime = 1;
	rq.now = w->now;
	struct engine_result r;
	engine_map(&w->s->eng, &rq, save_result, &r);
	assert_int_equal(r.err, PERR_OK);
	assert_int_equal(kbackend_mem_count(w->s->kb), 1);
	/* a PCP mapping is not static: static-delete refuses it */
	struct rq m = map_rq(B4A, 80, 600, 'q');
	rcu_read_unlock();
	assert_int_equal(send_rq(w, &m, NULL), PCP_SUCCESS);
	rcu_read_lock();
	struct engine_req other = rq;
	other.proto = 6;
	other.int_port = 80;
	engine_static_delete(&w->s->eng, &other, save_result, &r);
	assert_int_equal(r.err, PERR_NOT_FOUND);
	engine_static_delete(&w->s->eng, &rq, save_result, &r);
	assert_int_equal(r.err, PERR_OK);
	rcu_read_unlock();
	assert_int_equal(kbackend_mem_count(w->s->kb), 1);   /* the PCP one stays */
	assert_int_equal(table_count(w->s->table), 1);
}

struct flush_res {
	enum perr err;
	unsigned deleted;
	int calls;
};

static void flush_done(void *arg, enum perr err, unsigned deleted)
{
	struct flush_res *f = arg;
	f->err = err;
	f->deleted = deleted;
	f->calls++;
}

static void test_flush_subscriber(void **state)
{
	struct world *w = *state;
	for (uint16_t p = 1; p <= 5; p++) {
		struct rq a = map_rq(B4A, p, 600, 'a'), b = map_rq(B4B, p, 600, 'b');
		assert_int_equal(send_rq(w, &a, NULL), PCP_SUCCESS);
		assert_int_equal(send_rq(w, &b, NULL), PCP_SUCCESS);
	}
	struct in6_addr b4;
	addr_parse(B4A, &b4);
	rcu_read_lock();
	struct subscriber *sub = subs_by_b4(w->s->subs, &b4);
	struct flush_res f = { 0 };
	engine_flush_sub(&w->s->eng, sub, w->now, flush_done, &f);
	rcu_read_unlock();
	assert_int_equal(f.calls, 1);
	assert_int_equal(f.err, PERR_OK);
	assert_int_equal(f.deleted, 5);
	assert_int_equal(sub->nmappings, 0);
	assert_int_equal(table_count(w->s->table), 5);      /* B4B's are untouched */
	assert_int_equal(kbackend_mem_count(w->s->kb), 5);
	/* the freed ports are held down, but the same client gets them back */
	struct rq again = map_rq(B4A, 1, 600, 'a');
	assert_int_equal(send_rq(w, &again, NULL), PCP_SUCCESS);
}

static void test_runtime_subscribers(void **state)
{
	struct world *w = *state;
	struct aftr_sub_conf c;
	memset(&c, 0, sizeof(c));
	snprintf(c.name, sizeof(c.name), "rt");
	c.has_b4 = true;
	assert_true(prefix_parse("2001:db8:999::/48", &c.b4));
	c.index = 200;
	struct subscriber *sub = NULL;
	rcu_read_lock();
	assert_int_equal(subs_add(w->s->subs, &c, &sub), PERR_OK);
	assert_non_null(sub);
	assert_ptr_equal(subs_by_name(w->s->subs, "rt"), sub);
	/* name, index and prefix must be unique */
	assert_int_equal(subs_add(w->s->subs, &c, NULL), PERR_EXISTS);
	snprintf(c.name, sizeof(c.name), "rt2");
	assert_int_equal(subs_add(w->s->subs, &c, NULL), PERR_EXISTS);     /* same index */
	c.index = 100000;
	c.has_b4 = false;
	assert_int_equal(subs_add(w->s->subs, &c, NULL), PERR_INVAL);      /* no resources */
	rcu_read_unlock();
	struct rq m = map_rq("2001:db8:999::7", 8080, 600, 'r');
	struct pcp_response rsp;
	assert_int_equal(send_rq(w, &m, &rsp), PCP_SUCCESS);
	assert_true(sub->provisioned);
	rcu_read_lock();
	struct flush_res f = { 0 };
	engine_flush_sub(&w->s->eng, sub, w->now, flush_done, &f);
	assert_int_equal(f.deleted, 1);
	assert_int_equal(engine_sub_unprovision(&w->s->eng, sub), PERR_OK);
	assert_int_equal(subs_remove(w->s->subs, sub), PERR_OK);
	assert_null(subs_by_name(w->s->subs, "rt"));
	rcu_read_unlock();
	/* gone: its B4 is unknown again (THIRD_PARTY from an unknown host, §13.1) */
	assert_int_equal(send_rq(w, &m, NULL), PCP_UNSUPP_OPTION);
}

static void test_epoch_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/pcpd-epoch-XXXXXX";
	assert_non_null(mkdtemp(dir));
	bool cont = true;
	/* first start: nothing recorded */
	assert_int_equal(restart_epoch(dir, false, 5000, &cont), 5000);
	assert_false(cont);
	/* restart with the kernel state kept: the epoch runs on */
	assert_int_equal(restart_epoch(dir, false, 5100, &cont), 5000);
	assert_true(cont);
	/* the kernel lost our table: a new epoch */
	assert_int_equal(restart_epoch(dir, true, 5200, &cont), 5200);
	assert_false(cont);
	/* a base in the future (clock from another boot) is not trusted */
	assert_int_equal(restart_epoch(dir, false, 100, &cont), 100);
	assert_false(cont);
	char path[128];
	snprintf(path, sizeof(path), "%s/epoch", dir);
	FILE *f = fopen(path, "w");
	fputs("garbage\n", f);
	fclose(f);
	assert_int_equal(restart_epoch(dir, false, 300, &cont), 300);
	assert_false(cont);
	unlink(path);
	rmdir(dir);
}

/* Several workers on the same and on different subscribers at once. */
struct worker_arg {
	struct world *w;
	int id;
	struct capture cap;
	unsigned ok;
};

static void *worker(void *p)
{
	struct worker_arg *a = p;
	rcu_register_thread();
	char b4[64];
	for (int i = 0; i < 2000; i++) {
		snprintf(b4, sizeof(b4), "2001:db8:100:%x::1", (a->id * 7 + i) % 24);
		struct pcp_request req;
		memset(&req, 0, sizeof(req));
		req.version = 2;
		req.opcode = PCP_OP_MAP;
		req.lifetime = (i % 3 == 2) ? 0 : 600;
		addr_parse(b4, &req.client_addr);
		memset(req.nonce, 'n', sizeof(req.nonce));
		req.proto = 6;
		req.int_port = (uint16_t)(1 + i % 5);
		req.has_third_party = true;
		addr_parse(HOST, &req.third_party);
		uint8_t pkt[PCP_MAX_LEN];
		size_t n = pcp_encode_request(&req, pkt, sizeof(pkt));
		struct pcp_meta m;
		memset(&m, 0, sizeof(m));
		m.src = req.client_addr;
		m.now = a->w->now;
		m.io = &a->cap;
		unsigned before = a->cap.n;
		rcu_read_lock();
		pcp_handle(&a->w->s->handler, &m, pkt, n);
		rcu_read_unlock();
		struct pcp_response rsp;
		if (a->cap.n != before && pcp_decode_response(a->cap.buf, a->cap.len, &rsp) == PERR_OK &&
		    rsp.result == PCP_SUCCESS)
			a->ok++;
	}
	rcu_unregister_thread();
	return NULL;
}

static int count_kernel(void *arg, struct binding *b)
{
	(void)b;
	(*(size_t *)arg)++;
	return 0;
}

static void test_concurrent_workers(void **state)
{
	struct world *w = *state;
	w->s->eng.lim.max_mappings = 1000;
	pthread_t t[4];
	struct worker_arg a[4];
	for (int i = 0; i < 4; i++) {
		memset(&a[i], 0, sizeof(a[i]));
		a[i].w = w;
		a[i].id = i;
		pthread_create(&t[i], NULL, worker, &a[i]);
	}
	unsigned ok = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ok += a[i].ok;
	}
	assert_true(ok > 0);
	/* table and kernel agree, and every subscriber's count matches */
	size_t n = 0;
	rcu_read_lock();
	table_foreach(w->s->table, count_kernel, &n);
	rcu_read_unlock();
	assert_int_equal(n, table_count(w->s->table));
	assert_int_equal(n, kbackend_mem_count(w->s->kb));
	assert_true(n <= 24 * 5);
}

int main(void)
{
	rcu_register_thread();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_map_installs_kernel_element, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlap_independent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_and_hold_down, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hold_down_ends, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kernel_failure_rolls_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quota_and_exhaustion, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ports_exhausted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_then_map_lifetimes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_encapsulated_unknown_interface, setup, teardown),
		cmocka_unit_test_setup_teardown(test_natpmp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_static_mapping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_workers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_static_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_subscriber, setup, teardown),
		cmocka_unit_test_setup_teardown(test_runtime_subscribers, setup, teardown),
		cmocka_unit_test(test_epoch_file),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	rcu_unregister_thread();
	return rc;
}
