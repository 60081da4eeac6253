/* Codec tests: packets are built byte by byte here, independently of the
 * encoder, so a symmetric encoder/decoder bug cannot hide. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "common/addr.h"
#include "pcpd/codec.h"

struct pkt {
	uint8_t b[1300];
	size_t n;
};

static void put8(struct pkt *p, uint8_t v)
{
	p->b[p->n++] = v;
}

static void put16(struct pkt *p, uint16_t v)
{
	put8(p, (uint8_t)(v >> 8));
	put8(p, (uint8_t)v);
}

static void put32(struct pkt *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p, (uint16_t)v);
}

static void putmem(struct pkt *p, const void *d, size_t n)
{
	memcpy(p->b + p->n, d, n);
	p->n += n;
}

static void putzero(struct pkt *p, size_t n)
{
	memset(p->b + p->n, 0, n);
	p->n += n;
}

static struct in6_addr A(const char *s)
{
	struct in6_addr a;
	assert_true(addr_parse(s, &a));
	return a;
}

static const uint8_t NONCE[PCP_NONCE_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };

static void hdr(struct pkt *p, uint8_t ver, uint8_t op, uint32_t life)
{
	struct in6_addr c = A("2001:db8::1:2:3:4");
	p->n = 0;
	put8(p, ver);
	put8(p, op);
	put16(p, 0);
	put32(p, life);
	putmem(p, &c, 16);
}

static void map_data(struct pkt *p, uint8_t proto, uint16_t iport, uint16_t sport)
{
	struct in6_addr s = A("198.51.100.7");
	putmem(p, NONCE, PCP_NONCE_LEN);
	put8(p, proto);
	putzero(p, 3);
	put16(p, iport);
	put16(p, sport);
	putmem(p, &s, 16);
}

/* Request of opcode op with lifetime: TCP 80, suggested 8080. */
static struct pkt mk(uint8_t op, uint32_t life)
{
	struct pkt p;
	hdr(&p, 2, op, life);
	if (op == PCP_OP_MAP || op == PCP_OP_PEER)
		map_data(&p, 6, 80, 8080);
	if (op == PCP_OP_PEER) {
		struct in6_addr r = A("203.0.113.9");
		put16(&p, 443);
		putzero(&p, 2);
		putmem(&p, &r, 16);
	}
	return p;
}

static void opt(struct pkt *p, uint8_t code, uint16_t len, const void *data)
{
	put8(p, code);
	put8(p, 0);
	put16(p, len);
	if (data)
		putmem(p, data, len);
	else
		putzero(p, len);
	putzero(p, (4 - len % 4) % 4);
}

static void opt_filter(struct pkt *p, uint8_t plen, uint16_t port, const char *addr)
{
	uint8_t d[20] = { 0 };
	struct in6_addr a = A(addr);
	d[1] = plen;
	d[2] = (uint8_t)(port >> 8);
	d[3] = (uint8_t)port;
	memcpy(d + 4, &a, 16);
	opt(p, PCP_OPT_FILTER, 20, d);
}

static void opt_port_set(struct pkt *p, uint16_t size, uint16_t first, uint8_t flags)
{
	uint8_t d[5] = { (uint8_t)(size >> 8), (uint8_t)size, (uint8_t)(first >> 8),
			 (uint8_t)first, flags };
	opt(p, PCP_OPT_PORT_SET, 5, d);
}

static struct pcp_request rq;
static struct pcp_request rq2;
static struct pcp_response rs;
static struct pcp_response rs2;

static enum perr dec(const struct pkt *p)
{
	bool parsed = false;
	enum perr e = pcp_decode_request(p->b, p->n, &rq, &parsed);
	/* parsed is true exactly when the §8.2 header checks passed */
	if (e == PERR_OK || e == PERR_UNSUPP_OPTION || e == PERR_MALFORMED_OPTION)
		assert_true(parsed);
	return e;
}

static enum perr dec_parsed(const uint8_t *b, size_t n, bool *parsed)
{
	*parsed = true;
	return pcp_decode_request(b, n, &rq, parsed);
}

/* ---- round trips ---- */

static void assert_req_equal(const struct pcp_request *a, const struct pcp_request *b)
{
	assert_int_equal(a->version, b->version);
	assert_int_equal(a->opcode, b->opcode);
	assert_int_equal(a->lifetime, b->lifetime);
	assert_memory_equal(&a->client_addr, &b->client_addr, 16);
	assert_memory_equal(a->nonce, b->nonce, PCP_NONCE_LEN);
	assert_int_equal(a->proto, b->proto);
	assert_int_equal(a->int_port, b->int_port);
	assert_int_equal(a->sugg_port, b->sugg_port);
	assert_memory_equal(&a->sugg_addr, &b->sugg_addr, 16);
	assert_int_equal(a->peer_port, b->peer_port);
	assert_memory_equal(&a->peer_addr, &b->peer_addr, 16);
	assert_int_equal(a->has_third_party, b->has_third_party);
	assert_memory_equal(&a->third_party, &b->third_party, 16);
	assert_int_equal(a->prefer_failure, b->prefer_failure);
	assert_int_equal(a->nfilters, b->nfilters);
	for (unsigned i = 0; i < a->nfilters; i++) {
		assert_int_equal(a->filters[i].plen, b->filters[i].plen);
		assert_int_equal(a->filters[i].port, b->filters[i].port);
		assert_memory_equal(&a->filters[i].addr, &b->filters[i].addr, 16);
	}
	assert_int_equal(a->has_description, b->has_description);
	assert_int_equal(a->desc_len, b->desc_len);
	assert_string_equal(a->description, b->description);
	assert_int_equal(a->has_port_set, b->has_port_set);
	assert_int_equal(a->ps_size, b->ps_size);
	assert_int_equal(a->ps_first, b->ps_first);
	assert_int_equal(a->ps_parity, b->ps_parity);
}

static void assert_rsp_equal(const struct pcp_response *a, const struct pcp_response *b)
{
	assert_int_equal(a->opcode, b->opcode);
	assert_int_equal(a->result, b->result);
	assert_int_equal(a->lifetime, b->lifetime);
	assert_int_equal(a->epoch, b->epoch);
	assert_memory_equal(a->nonce, b->nonce, PCP_NONCE_LEN);
	assert_int_equal(a->proto, b->proto);
	assert_int_equal(a->int_port, b->int_port);
	assert_int_equal(a->ext_port, b->ext_port);
	assert_memory_equal(&a->ext_addr, &b->ext_addr, 16);
	assert_int_equal(a->peer_port, b->peer_port);
	assert_memory_equal(&a->peer_addr, &b->peer_addr, 16);
	assert_int_equal(a->has_third_party, b->has_third_party);
	assert_memory_equal(&a->third_party, &b->third_party, 16);
	assert_int_equal(a->prefer_failure, b->prefer_failure);
	assert_int_equal(a->nfilters, b->nfilters);
	for (unsigned i = 0; i < a->nfilters; i++) {
		assert_int_equal(a->filters[i].plen, b->filters[i].plen);
		assert_int_equal(a->filters[i].port, b->filters[i].port);
		assert_memory_equal(&a->filters[i].addr, &b->filters[i].addr, 16);
	}
	assert_int_equal(a->has_description, b->has_description);
	assert_int_equal(a->desc_len, b->desc_len);
	assert_string_equal(a->description, b->description);
	assert_int_equal(a->has_port_set, b->has_port_set);
	assert_int_equal(a->ps_size, b->ps_size);
	assert_int_equal(a->ps_first, b->ps_first);
	assert_int_equal(a->ps_parity, b->ps_parity);
}

/* request struct -> bytes (must equal the hand-built ones) -> struct */
static void req_roundtrip(const struct pcp_request *in, const struct pkt *expect)
{
	uint8_t buf[PCP_MAX_LEN];
	bool parsed = false;
	size_t n = pcp_encode_request(in, buf, sizeof(buf));
	assert_int_equal(n, expect->n);
	assert_memory_equal(buf, expect->b, n);
	assert_int_equal(pcp_decode_request(buf, n, &rq2, &parsed), PERR_OK);
	assert_true(parsed);
	assert_req_equal(in, &rq2);
}

static void rsp_roundtrip(const struct pcp_response *in, size_t expect_len)
{
	uint8_t buf[PCP_MAX_LEN];
	size_t n = pcp_encode_response(in, buf, sizeof(buf));
	assert_int_equal(n, expect_len);
	assert_int_equal(buf[0], 2);
	assert_int_equal(buf[1], 0x80 | in->opcode);
	assert_int_equal(buf[2], 0);
	assert_int_equal(buf[3], in->result);
	for (int i = 12; i < 24; i++)
		assert_int_equal(buf[i], 0);
	assert_int_equal(pcp_decode_response(buf, n, &rs2), PERR_OK);
	assert_rsp_equal(in, &rs2);
}

static void base_req(struct pcp_request *r, uint8_t op, uint32_t life)
{
	memset(r, 0, sizeof(*r));
	r->version = 2;
	r->opcode = op;
	r->lifetime = life;
	r->client_addr = A("2001:db8::1:2:3:4");
	if (op == PCP_OP_ANNOUNCE)
		return;
	memcpy(r->nonce, NONCE, PCP_NONCE_LEN);
	r->proto = 6;
	r->int_port = 80;
	r->sugg_port = 8080;
	r->sugg_addr = A("198.51.100.7");
	if (op == PCP_OP_PEER) {
		r->peer_port = 443;
		r->peer_addr = A("203.0.113.9");
	}
}

static void base_rsp(struct pcp_response *r, uint8_t op)
{
	memset(r, 0, sizeof(*r));
	r->opcode = op;
	r->result = PCP_SUCCESS;
	r->lifetime = 7200;
	r->epoch = 123456;
	if (op == PCP_OP_ANNOUNCE)
		return;
	memcpy(r->nonce, NONCE, PCP_NONCE_LEN);
	r->proto = 17;
	r->int_port = 5000;
	r->ext_port = 40000;
	r->ext_addr = A("192.0.2.33");
	if (op == PCP_OP_PEER) {
		r->peer_port = 3478;
		r->peer_addr = A("2001:db8:ffff::5");
	}
}

static void test_announce_roundtrip(void **state)
{
	(void)state;
	struct pcp_request r;
	base_req(&r, PCP_OP_ANNOUNCE, 0);
	struct pkt p = mk(PCP_OP_ANNOUNCE, 0);
	req_roundtrip(&r, &p);

	struct pcp_response s;
	base_rsp(&s, PCP_OP_ANNOUNCE);
	s.lifetime = 0;
	rsp_roundtrip(&s, 24);
	uint8_t buf[64];
	assert_int_equal(pcp_encode_response(&s, buf, sizeof(buf)), 24);
	const uint8_t want[12] = { 2, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xe2, 0x40 };
	assert_memory_equal(buf, want, 12);
}

static void test_map_roundtrip_plain(void **state)
{
	(void)state;
	struct pcp_request r;
	base_req(&r, PCP_OP_MAP, 3600);
	struct pkt p = mk(PCP_OP_MAP, 3600);
	assert_int_equal(p.n, 60);
	req_roundtrip(&r, &p);
	assert_int_equal(dec(&p), PERR_OK);
	assert_int_equal(rq.proto, 6);
	assert_int_equal(rq.int_port, 80);
	assert_int_equal(rq.sugg_port, 8080);
	assert_true(addr_equal(&rq.sugg_addr, &r.sugg_addr));

	struct pcp_response s;
	base_rsp(&s, PCP_OP_MAP);
	rsp_roundtrip(&s, 60);
	uint8_t buf[64];
	assert_int_equal(pcp_encode_response(&s, buf, sizeof(buf)), 60);
	assert_memory_equal(buf + 24, NONCE, 12);
	const uint8_t tail[8] = { 17, 0, 0, 0, 0x13, 0x88, 0x9c, 0x40 };
	assert_memory_equal(buf + 36, tail, 8);
	assert_memory_equal(buf + 44, &s.ext_addr, 16);
}

static void test_map_roundtrip_options(void **state)
{
	(void)state;
	struct pcp_request r;
	base_req(&r, PCP_OP_MAP, 3600);
	r.has_third_party = true;
	r.third_party = A("192.168.1.2");
	r.prefer_failure = true;
	r.nfilters = 2;
	r.filters[0] = (struct pcp_filter){ .plen = 0, .port = 0, .addr = A("::") };
	r.filters[1] = (struct pcp_filter){ .plen = 120, .port = 22, .addr = A("198.51.100.0") };
	r.has_description = true;
	strcpy(r.description, "web server");
	r.desc_len = 10;

	struct pkt p = mk(PCP_OP_MAP, 3600);
	opt(&p, PCP_OPT_THIRD_PARTY, 16, &r.third_party);
	opt(&p, PCP_OPT_PREFER_FAILURE, 0, NULL);
	opt_filter(&p, 0, 0, "::");
	opt_filter(&p, 120, 22, "198.51.100.0");
	opt(&p, PCP_OPT_DESCRIPTION, 10, "web server");
	assert_int_equal(p.n, 60 + 20 + 4 + 48 + 16);
	req_roundtrip(&r, &p);

	struct pcp_response s;
	base_rsp(&s, PCP_OP_MAP);
	s.has_third_party = true;
	s.third_party = r.third_party;
	s.prefer_failure = true;
	s.nfilters = 2;
	memcpy(s.filters, r.filters, sizeof(r.filters[0]) * 2);
	s.has_description = true;
	memcpy(s.description, "caf\xc3\xa9", 6);
	s.desc_len = 5;
	rsp_roundtrip(&s, 60 + 20 + 4 + 48 + 12);
}

static void test_map_roundtrip_port_set(void **state)
{
	(void)state;
	struct pcp_request r;
	base_req(&r, PCP_OP_MAP, 600);
	r.has_port_set = true;
	r.ps_size = 100;
	r.ps_first = 80;
	r.ps_parity = true;
	struct pkt p = mk(PCP_OP_MAP, 600);
	opt_port_set(&p, 100, 80, 1);
	assert_int_equal(p.n, 72);
	req_roundtrip(&r, &p);

	/* RFC 7753 §4: response carries size granted and first internal port */
	struct pcp_response s;
	base_rsp(&s, PCP_OP_MAP);
	s.has_port_set = true;
	s.ps_size = 64;
	s.ps_first = 5000;
	s.ps_parity = false;
	rsp_roundtrip(&s, 72);
	uint8_t buf[80];
	assert_int_equal(pcp_encode_response(&s, buf, sizeof(buf)), 72);
	const uint8_t want[12] = { 130, 0, 0, 5, 0, 64, 0x13, 0x88, 0, 0, 0, 0 };
	assert_memory_equal(buf + 60, want, 12);
}

static void test_peer_roundtrip(void **state)
{
	(void)state;
	struct pcp_request r;
	base_req(&r, PCP_OP_PEER, 300);
	struct pkt p = mk(PCP_OP_PEER, 300);
	assert_int_equal(p.n, 80);
	req_roundtrip(&r, &p);

	r.has_third_party = true;
	r.third_party = A("10.0.0.7");
	r.has_description = true;
	strcpy(r.description, "voip \xe2\x82\xac");
	r.desc_len = (uint16_t)strlen(r.description);
	opt(&p, PCP_OPT_THIRD_PARTY, 16, &r.third_party);
	opt(&p, PCP_OPT_DESCRIPTION, r.desc_len, r.description);
	req_roundtrip(&r, &p);
	assert_int_equal(dec(&p), PERR_OK);
	assert_int_equal(rq.peer_port, 443);
	assert_true(addr_equal(&rq.peer_addr, &r.peer_addr));

	struct pcp_response s;
	base_rsp(&s, PCP_OP_PEER);
	s.has_third_party = true;
	s.third_party = r.third_party;
	rsp_roundtrip(&s, 80 + 20);
	uint8_t buf[128];
	assert_int_equal(pcp_encode_response(&s, buf, sizeof(buf)), 100);
	const uint8_t peer[4] = { 0x0d, 0x96, 0, 0 };
	assert_memory_equal(buf + 60, peer, 4);
	assert_memory_equal(buf + 64, &s.peer_addr, 16);
	const uint8_t tp[4] = { 1, 0, 0, 16 };
	assert_memory_equal(buf + 80, tp, 4);
}

/* ---- §8.2 verdicts ---- */

static void test_drop_short(void **state)
{
	(void)state;
	bool parsed;
	uint8_t b[4] = { 2, 1, 0, 0 };
	assert_int_equal(dec_parsed(b, 0, &parsed), PERR_DROP);
	assert_int_equal(dec_parsed(b, 1, &parsed), PERR_DROP);
	assert_false(parsed);
	/* version 2 but shorter than 24: drop, not MALFORMED_REQUEST */
	assert_int_equal(dec_parsed(b, 2, &parsed), PERR_DROP);
	struct pkt p = mk(PCP_OP_ANNOUNCE, 0);
	assert_int_equal(dec_parsed(p.b, 23, &parsed), PERR_DROP);
	assert_false(parsed);
	assert_int_equal(dec_parsed(p.b, 24, &parsed), PERR_OK);
	assert_true(parsed);
}

static void test_drop_r_bit(void **state)
{
	(void)state;
	bool parsed;
	struct pkt p = mk(PCP_OP_MAP, 3600);
	p.b[1] |= 0x80;
	assert_int_equal(dec_parsed(p.b, p.n, &parsed), PERR_DROP);
	assert_false(parsed);
	/* R is checked before the version */
	p.b[0] = 1;
	assert_int_equal(dec_parsed(p.b, p.n, &parsed), PERR_DROP);
	uint8_t two[2] = { 0, 0x80 };
	assert_int_equal(dec_parsed(two, 2, &parsed), PERR_DROP);
}

static void test_unsupp_version(void **state)
{
	(void)state;
	bool parsed;
	static const uint8_t versions[] = { 0, 1, 3, 255 };
	for (size_t i = 0; i < sizeof(versions); i++) {
		uint8_t two[2] = { versions[i], 0 };
		assert_int_equal(dec_parsed(two, 2, &parsed), PERR_UNSUPP_VERSION);
		assert_false(parsed);
		struct pkt p = mk(PCP_OP_MAP, 3600);
		p.b[0] = versions[i];
		assert_int_equal(dec_parsed(p.b, p.n, &parsed), PERR_UNSUPP_VERSION);
		assert_false(parsed);
	}
	/* version comes before the length checks */
	struct pkt p;
	hdr(&p, 3, PCP_OP_ANNOUNCE, 0);
	putzero(&p, 1104 - 24);
	assert_int_equal(dec_parsed(p.b, 1104, &parsed), PERR_UNSUPP_VERSION);
	assert_int_equal(dec_parsed(p.b, 23, &parsed), PERR_UNSUPP_VERSION);
}

static void test_malformed_length(void **state)
{
	(void)state;
	bool parsed;
	struct pkt p;
	hdr(&p, 2, PCP_OP_ANNOUNCE, 0);
	/* an optional unknown option fills the rest so 1100 is valid */
	opt(&p, 200, 1100 - 28, NULL);
	assert_int_equal(p.n, 1100);
	assert_int_equal(dec_parsed(p.b, 1100, &parsed), PERR_OK);
	putzero(&p, 4);
	assert_int_equal(dec_parsed(p.b, 1104, &parsed), PERR_MALFORMED_REQUEST);
	assert_false(parsed);
	assert_int_equal(dec_parsed(p.b, 1102, &parsed), PERR_MALFORMED_REQUEST);
	assert_false(parsed);
	assert_int_equal(dec_parsed(p.b, 1101, &parsed), PERR_MALFORMED_REQUEST);
	assert_int_equal(dec_parsed(p.b, 26, &parsed), PERR_MALFORMED_REQUEST);
	assert_int_equal(dec_parsed(p.b, 25, &parsed), PERR_MALFORMED_REQUEST);
	/* length is checked before the opcode */
	p.b[1] = 5;
	assert_int_equal(dec_parsed(p.b, 26, &parsed), PERR_MALFORMED_REQUEST);
}

static void test_short_for_opcode(void **state)
{
	(void)state;
	bool parsed;
	struct pkt p = mk(PCP_OP_MAP, 3600);
	assert_int_equal(dec_parsed(p.b, 56, &parsed), PERR_MALFORMED_REQUEST);
	assert_false(parsed);
	assert_int_equal(dec_parsed(p.b, 59, &parsed), PERR_MALFORMED_REQUEST);
	assert_int_equal(dec_parsed(p.b, 24, &parsed), PERR_MALFORMED_REQUEST);
	assert_int_equal(dec_parsed(p.b, 60, &parsed), PERR_OK);
	assert_true(parsed);

	p = mk(PCP_OP_PEER, 3600);
	assert_int_equal(dec_parsed(p.b, 76, &parsed), PERR_MALFORMED_REQUEST);
	assert_false(parsed);
	assert_int_equal(dec_parsed(p.b, 60, &parsed), PERR_MALFORMED_REQUEST);
	assert_int_equal(dec_parsed(p.b, 80, &parsed), PERR_OK);
	assert_true(parsed);
}

static void test_unsupp_opcode(void **state)
{
	(void)state;
	bool parsed;
	static const uint8_t ops[] = { 3, 5, 127 };
	for (size_t i = 0; i < sizeof(ops); i++) {
		struct pkt p = mk(PCP_OP_MAP, 3600);
		p.b[1] = ops[i];
		assert_int_equal(dec_parsed(p.b, p.n, &parsed), PERR_UNSUPP_OPCODE);
		assert_false(parsed);
		assert_int_equal(dec_parsed(p.b, 24, &parsed), PERR_UNSUPP_OPCODE);
	}
}

/* ---- options ---- */

static void test_option_past_end(void **state)
{
	(void)state;
	struct pkt p = mk(PCP_OP_MAP, 3600);
	opt(&p, PCP_OPT_THIRD_PARTY, 16, NULL);
	p.n -= 4;               /* data runs past the end */
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);

	p = mk(PCP_OP_MAP, 3600);
	opt(&p, 200, 5, NULL);  /* padded length 8, only 4 present */
	p.n -= 4;
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);

	p = mk(PCP_OP_ANNOUNCE, 0);
	put8(&p, 200);
	put8(&p, 0);
	put16(&p, 0xffff);
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);

	/* padding counts: length 1 needs 4 data octets */
	p = mk(PCP_OP_MAP, 3600);
	opt(&p, 200, 1, NULL);
	assert_int_equal(p.n, 68);
	assert_int_equal(dec(&p), PERR_OK);
}

static void test_third_party(void **state)
{
	(void)state;
	struct in6_addr tp = A("192.168.1.2");
	struct pkt p = mk(PCP_OP_MAP, 3600);
	opt(&p, PCP_OPT_THIRD_PARTY, 16, &tp);
	assert_int_equal(dec(&p), PERR_OK);
	assert_true(rq.has_third_party);
	assert_true(addr_equal(&rq.third_party, &tp));

	opt(&p, PCP_OPT_THIRD_PARTY, 16, &tp);
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);

	p = mk(PCP_OP_MAP, 3600);
	opt(&p, PCP_OPT_THIRD_PARTY, 12, &tp);
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);
	p = mk(PCP_OP_MAP, 3600);
	opt(&p, PCP_OPT_THIRD_PARTY, 20, NULL);
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);

	p = mk(PCP_OP_PEER, 3600);
	opt(&p, PCP_OPT_THIRD_PARTY, 16, &tp);
	assert_int_equal(dec(&p), PERR_OK);
	assert_true(rq.has_third_party);

	p = mk(PCP_OP_ANNOUNCE, 0);
	opt(&p, PCP_OPT_THIRD_PARTY, 16, &tp);
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);
}

static void test_prefer_failure(void **state)
{
	(void)state;
	struct pkt p = mk(PCP_OP_MAP, 3600);
	opt(&p, PCP_OPT_PREFER_FAILURE, 0, NULL);
	assert_int_equal(dec(&p), PERR_OK);
	assert_true(rq.prefer_failure);

	opt(&p, PCP_OPT_PREFER_FAILURE, 0, NULL);
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);

	p = mk(PCP_OP_MAP, 3600);
	opt(&p, PCP_OPT_PREFER_FAILURE, 4, NULL);
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);

	p = mk(PCP_OP_PEER, 3600);
	opt(&p, PCP_OPT_PREFER_FAILURE, 0, NULL);
	assert_int_equal(dec(&p), PERR_MALFORMED_REQUEST);   /* §12.1 */

	p = mk(PCP_OP_ANNOUNCE, 0);
	opt(&p, PCP_OPT_PREFER_FAILURE, 0, NULL);
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);

	p = mk(PCP_OP_MAP, 0);                              /* §11.3 */
	opt(&p, PCP_OPT_PREFER_FAILURE, 0, NULL);
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);

	p = mk(PCP_OP_MAP, 3600);                           /* §13.2 */
	p.b[24 + 18] = 0;
	p.b[24 + 19] = 0;
	opt(&p, PCP_OPT_PREFER_FAILURE, 0, NULL);
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);
}

static void test_filter(void **state)
{
	(void)state;
	struct pkt p = mk(PCP_OP_MAP, 3600);
	opt_filter(&p, 0, 0, "198.51.100.1");       /* 0 = clear, allowed */
	opt_filter(&p, 96, 0, "0.0.0.0");
	opt_filter(&p, 128, 8443, "203.0.113.5");
	opt_filter(&p, 0, 0, "2001:db8::");
	opt_filter(&p, 1, 0, "8000::");
	opt_filter(&p, 128, 1, "2001:db8::99");
	/* ::ffff:0:0 with a non-zero word before it is not IPv4-mapped */
	opt_filter(&p, 50, 2, "0:0:0:1:0:ffff:c000:201");
	assert_int_equal(dec(&p), PERR_OK);
	assert_int_equal(rq.nfilters, 7);
	assert_int_equal(rq.filters[0].plen, 0);
	assert_int_equal(rq.filters[1].plen, 96);
	assert_int_equal(rq.filters[2].plen, 128);
	assert_int_equal(rq.filters[2].port, 8443);
	struct in6_addr f2 = A("203.0.113.5");
	assert_true(addr_equal(&rq.filters[2].addr, &f2));
	assert_int_equal(rq.filters[5].port, 1);
	assert_int_equal(rq.filters[6].plen, 50);

	static const struct { uint8_t plen; const char *addr; } bad[] = {
		{ 95, "192.0.2.0" }, { 1, "192.0.2.0" }, { 129, "192.0.2.0" },
		{ 129, "2001:db8::" }, { 255, "2001:db8::" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p = mk(PCP_OP_MAP, 3600);
		opt_filter(&p, bad[i].plen, 0, bad[i].addr);
		assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);
	}

	p = mk(PCP_OP_MAP, 3600);
	opt(&p, PCP_OPT_FILTER, 16, NULL);
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);
	p = mk(PCP_OP_MAP, 0);                              /* §13.3 */
	opt_filter(&p, 128, 0, "203.0.113.5");
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);
	p = mk(PCP_OP_PEER, 3600);
	opt_filter(&p, 128, 0, "203.0.113.5");
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);
	p = mk(PCP_OP_ANNOUNCE, 0);
	opt_filter(&p, 128, 0, "203.0.113.5");
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);
}

static void test_filter_many(void **state)
{
	(void)state;
	struct pkt p = mk(PCP_OP_MAP, 3600);
	unsigned n = 0;
	while (p.n + 24 <= PCP_MAX_LEN) {
		char a[32];
		snprintf(a, sizeof(a), "203.0.113.%u", n);
		opt_filter(&p, 128, (uint16_t)n, a);
		n++;
	}
	assert_int_equal(n, (PCP_MAX_LEN - 60) / 24);
	assert_int_equal(dec(&p), PERR_OK);
	assert_int_equal(rq.nfilters, n);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(rq.filters[i].port, i);
}

static void test_description(void **state)
{
	(void)state;
	struct pkt p = mk(PCP_OP_MAP, 3600);
	opt(&p, PCP_OPT_DESCRIPTION, 3, "abc");
	assert_int_equal(dec(&p), PERR_OK);
	assert_true(rq.has_description);
	assert_int_equal(rq.desc_len, 3);
	assert_string_equal(rq.description, "abc");

	opt(&p, PCP_OPT_DESCRIPTION, 1, "x");
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);

	p = mk(PCP_OP_PEER, 3600);
	const char *utf = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
	opt(&p, PCP_OPT_DESCRIPTION, (uint16_t)strlen(utf), utf);
	assert_int_equal(dec(&p), PERR_OK);
	assert_true(rq.has_description);
	assert_string_equal(rq.description, utf);

	/* empty erases the description (RFC 7220 §3): present, length 0 */
	p = mk(PCP_OP_MAP, 3600);
	opt(&p, PCP_OPT_DESCRIPTION, 0, NULL);
	assert_int_equal(dec(&p), PERR_OK);
	assert_true(rq.has_description);
	assert_int_equal(rq.desc_len, 0);
	assert_string_equal(rq.description, "");

	/* ANNOUNCE: ignored silently, duplicates included */
	p = mk(PCP_OP_ANNOUNCE, 0);
	opt(&p, PCP_OPT_DESCRIPTION, 3, "abc");
	opt(&p, PCP_OPT_DESCRIPTION, 3, "abc");
	assert_int_equal(dec(&p), PERR_OK);
	assert_false(rq.has_description);
}

static void test_description_length(void **state)
{
	(void)state;
	static char text[PCP_DESC_MAX + 2];
	memset(text, 'd', sizeof(text) - 1);
	struct pkt p = mk(PCP_OP_MAP, 3600);
	opt(&p, PCP_OPT_DESCRIPTION, PCP_DESC_MAX, text);
	assert_int_equal(dec(&p), PERR_OK);
	assert_int_equal(rq.desc_len, PCP_DESC_MAX);
	assert_int_equal(strlen(rq.description), PCP_DESC_MAX);

	p = mk(PCP_OP_MAP, 3600);
	opt(&p, PCP_OPT_DESCRIPTION, PCP_DESC_MAX + 1, text);
	assert_int_equal(p.n, 60 + 4 + 1020);
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);
}

static void test_description_invalid_utf8(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"\xff", "a\xc0\x80", "\xed\xa0\x80", "\xe2\x82", "\xf4\x90\x80\x80",
		"\xe0\x80\xaf", "\x80", "ab\xc3",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct pkt p = mk(PCP_OP_MAP, 3600);
		opt(&p, PCP_OPT_DESCRIPTION, (uint16_t)strlen(bad[i]), bad[i]);
		assert_int_equal(dec(&p), PERR_OK);
		assert_false(rq.has_description);
		assert_int_equal(rq.desc_len, 0);
	}
	struct pkt p = mk(PCP_OP_MAP, 3600);
	opt(&p, PCP_OPT_DESCRIPTION, 3, "a\0b");
	assert_int_equal(dec(&p), PERR_OK);
	assert_false(rq.has_description);
	/* an ignored occurrence still counts for the duplicate rule */
	opt(&p, PCP_OPT_DESCRIPTION, 1, "x");
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);
}

static void test_port_set(void **state)
{
	(void)state;
	struct pkt p = mk(PCP_OP_MAP, 3600);
	opt_port_set(&p, 0xffff, 80, 0xff);     /* reserved bits ignored */
	assert_int_equal(dec(&p), PERR_OK);
	assert_true(rq.has_port_set);
	assert_int_equal(rq.ps_size, 0xffff);
	assert_int_equal(rq.ps_first, 80);
	assert_true(rq.ps_parity);

	p = mk(PCP_OP_MAP, 3600);
	opt_port_set(&p, 16, 80, 0xfe);
	assert_int_equal(dec(&p), PERR_OK);
	assert_false(rq.ps_parity);

	opt_port_set(&p, 16, 80, 0);
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);

	p = mk(PCP_OP_MAP, 3600);
	opt_port_set(&p, 0, 80, 0);
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);
	p = mk(PCP_OP_MAP, 0);                  /* delete: size 0 tolerated */
	opt_port_set(&p, 0, 80, 0);
	assert_int_equal(dec(&p), PERR_OK);
	assert_true(rq.has_port_set);

	p = mk(PCP_OP_MAP, 3600);
	opt(&p, PCP_OPT_PORT_SET, 4, "\0\x10\0\x50");
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);
	p = mk(PCP_OP_PEER, 3600);
	opt_port_set(&p, 16, 80, 0);
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);
	p = mk(PCP_OP_ANNOUNCE, 0);
	opt_port_set(&p, 16, 80, 0);
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);

	/* with PREFER_FAILURE, in either order */
	p = mk(PCP_OP_MAP, 3600);
	opt_port_set(&p, 16, 80, 0);
	opt(&p, PCP_OPT_PREFER_FAILURE, 0, NULL);
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);
	p = mk(PCP_OP_MAP, 3600);
	opt(&p, PCP_OPT_PREFER_FAILURE, 0, NULL);
	opt_port_set(&p, 16, 80, 0);
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);
}

static void test_unknown_options(void **state)
{
	(void)state;
	static const uint8_t mandatory[] = { 0, 4, 96, 127 };
	for (size_t i = 0; i < sizeof(mandatory); i++) {
		struct pkt p = mk(PCP_OP_MAP, 3600);
		opt(&p, mandatory[i], 4, NULL);
		assert_int_equal(dec(&p), PERR_UNSUPP_OPTION);
	}
	struct pkt p = mk(PCP_OP_PEER, 3600);
	opt(&p, 129, 3, "xyz");
	opt(&p, 255, 0, NULL);
	opt(&p, 131, 8, NULL);
	assert_int_equal(dec(&p), PERR_OK);
	assert_false(rq.has_description);
	assert_false(rq.has_port_set);

	p = mk(PCP_OP_ANNOUNCE, 0);
	opt(&p, 4, 0, NULL);
	assert_int_equal(dec(&p), PERR_UNSUPP_OPTION);
}

static void test_first_error_wins(void **state)
{
	(void)state;
	struct in6_addr tp = A("10.0.0.1");
	struct pkt p = mk(PCP_OP_MAP, 3600);
	opt(&p, 5, 0, NULL);
	opt(&p, PCP_OPT_THIRD_PARTY, 3, NULL);
	assert_int_equal(dec(&p), PERR_UNSUPP_OPTION);

	p = mk(PCP_OP_MAP, 3600);
	opt(&p, PCP_OPT_THIRD_PARTY, 3, NULL);
	opt(&p, 5, 0, NULL);
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);

	p = mk(PCP_OP_PEER, 3600);
	opt(&p, PCP_OPT_PREFER_FAILURE, 0, NULL);
	opt(&p, 5, 0, NULL);
	assert_int_equal(dec(&p), PERR_MALFORMED_REQUEST);
	p = mk(PCP_OP_PEER, 3600);
	opt(&p, 5, 0, NULL);
	opt(&p, PCP_OPT_PREFER_FAILURE, 0, NULL);
	assert_int_equal(dec(&p), PERR_UNSUPP_OPTION);

	/* the PORT_SET/PREFER_FAILURE clash is checked after the loop */
	p = mk(PCP_OP_MAP, 3600);
	opt_port_set(&p, 16, 80, 0);
	opt(&p, PCP_OPT_PREFER_FAILURE, 0, NULL);
	opt(&p, 5, 0, NULL);
	assert_int_equal(dec(&p), PERR_UNSUPP_OPTION);

	/* unknown mandatory before a structural error */
	p = mk(PCP_OP_MAP, 3600);
	opt(&p, PCP_OPT_THIRD_PARTY, 16, &tp);
	opt(&p, 6, 0, NULL);
	put8(&p, 200);
	put8(&p, 0);
	put16(&p, 400);
	assert_int_equal(dec(&p), PERR_UNSUPP_OPTION);

	p = mk(PCP_OP_MAP, 3600);
	opt_filter(&p, 129, 0, "2001:db8::");
	opt(&p, PCP_OPT_PREFER_FAILURE, 0, NULL);
	opt(&p, PCP_OPT_PREFER_FAILURE, 0, NULL);
	opt(&p, 7, 0, NULL);
	assert_int_equal(dec(&p), PERR_MALFORMED_OPTION);
	assert_int_equal(rq.nfilters, 0);
}

/* ---- error responses ---- */

static void test_error_short_request(void **state)
{
	(void)state;
	uint8_t out[PCP_MAX_LEN];
	memset(out, 0xaa, sizeof(out));
	const uint8_t req[2] = { 0, 0 };        /* NAT-PMP external address request */
	size_t n = pcp_encode_error(req, 2, false, PCP_UNSUPP_VERSION, 1800, 77, out, sizeof(out));
	assert_int_equal(n, 24);
	const uint8_t want[24] = { 2, 0x80, 0, 1, 0, 0, 0x07, 0x08, 0, 0, 0, 77 };
	assert_memory_equal(out, want, 24);
	assert_int_equal(out[24], 0xaa);

	const uint8_t v1[4] = { 1, 0x81, 0, 0 };
	assert_int_equal(pcp_encode_error(v1, 4, false, PCP_UNSUPP_VERSION, 0, 0, out, 24), 24);
	assert_int_equal(out[0], 2);
	assert_int_equal(out[1], 0x81);
	assert_int_equal(pcp_encode_error(v1, 4, false, 1, 0, 0, out, 23), 0);
}

static void test_error_parsed_vs_unparsed(void **state)
{
	(void)state;
	uint8_t out[PCP_MAX_LEN];
	struct pkt p = mk(PCP_OP_MAP, 3600);
	opt(&p, 9, 0, NULL);
	assert_int_equal(dec(&p), PERR_UNSUPP_OPTION);

	size_t n = pcp_encode_error(p.b, p.n, true, PCP_UNSUPP_OPTION, 1800, 5, out, sizeof(out));
	assert_int_equal(n, 64);
	const uint8_t head[12] = { 2, 0x81, 0, 5, 0, 0, 0x07, 0x08, 0, 0, 0, 5 };
	assert_memory_equal(out, head, 12);
	for (int i = 12; i < 24; i++)
		assert_int_equal(out[i], 0);
	assert_memory_equal(out + 24, p.b + 24, 40);     /* opcode data and options echoed */

	n = pcp_encode_error(p.b, p.n, false, PCP_MALFORMED_REQUEST, 1800, 5, out, sizeof(out));
	assert_int_equal(n, 64);
	assert_int_equal(out[3], PCP_MALFORMED_REQUEST);
	assert_memory_equal(out + 12, p.b + 12, 12);     /* §7.2 */
	assert_memory_equal(out + 24, p.b + 24, 40);
	assert_int_equal(n, pcp_encode_error(p.b, p.n, false, 3, 0, 0, out, 64));
	assert_int_equal(pcp_encode_error(p.b, p.n, false, 3, 0, 0, out, 63), 0);
}

static void test_error_padding_and_truncation(void **state)
{
	(void)state;
	uint8_t out[PCP_MAX_LEN + 64];
	struct pkt p = mk(PCP_OP_MAP, 3600);
	p.b[57] = 0x11;
	p.b[58] = 0x22;
	memset(out, 0xaa, sizeof(out));
	size_t n = pcp_encode_error(p.b, 59, false, PCP_MALFORMED_REQUEST, 0, 0, out, sizeof(out));
	assert_int_equal(n, 60);
	assert_int_equal(out[57], 0x11);
	assert_int_equal(out[58], 0x22);
	assert_int_equal(out[59], 0);

	/* 26 bytes: copy padded to 28 */
	n = pcp_encode_error(p.b, 26, false, PCP_MALFORMED_REQUEST, 0, 0, out, sizeof(out));
	assert_int_equal(n, 28);
	assert_int_equal(out[26], 0);
	assert_int_equal(out[27], 0);

	static uint8_t big[1200];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7 + 1);
	big[0] = 2;
	big[1] = PCP_OP_MAP;
	static const size_t sizes[] = { 1101, 1102, 1104, 1200 };
	for (size_t i = 0; i < 4; i++) {
		bool parsed = true;
		assert_int_equal(pcp_decode_request(big, sizes[i], &rq, &parsed),
				 PERR_MALFORMED_REQUEST);
		memset(out, 0xaa, sizeof(out));
		n = pcp_encode_error(big, sizes[i], parsed, PCP_MALFORMED_REQUEST, 1800, 9,
				     out, sizeof(out));
		assert_int_equal(n, PCP_MAX_LEN);
		assert_int_equal(out[1], 0x81);
		assert_memory_equal(out + 12, big + 12, PCP_MAX_LEN - 12);
		assert_int_equal(out[PCP_MAX_LEN], 0xaa);
	}
	assert_int_equal(pcp_encode_error(big, 1104, false, 3, 0, 0, out, 1099), 0);
}

static void test_error_unsupp_opcode_copy(void **state)
{
	(void)state;
	uint8_t out[128];
	struct pkt p;
	hdr(&p, 2, 0x55, 99);
	for (int i = 0; i < 20; i++)
		put8(&p, (uint8_t)(0xf0 + i));
	bool parsed = true;
	assert_int_equal(pcp_decode_request(p.b, p.n, &rq, &parsed), PERR_UNSUPP_OPCODE);
	size_t n = pcp_encode_error(p.b, p.n, parsed, PCP_UNSUPP_OPCODE, 1800, 1, out,
				    sizeof(out));
	assert_int_equal(n, 44);
	assert_int_equal(out[1], 0x80 | 0x55);
	assert_int_equal(out[3], PCP_UNSUPP_OPCODE);
	assert_memory_equal(out + 12, p.b + 12, 32);
}

/* ---- response encoder limits and response decoder ---- */

static void test_response_too_big(void **state)
{
	(void)state;
	uint8_t out[2048];
	struct pcp_response s;
	base_rsp(&s, PCP_OP_MAP);
	s.has_description = true;
	s.desc_len = 1012;
	memset(s.description, 'x', 1012);
	s.nfilters = 1;
	s.filters[0].plen = 128;
	s.filters[0].addr = A("192.0.2.1");
	assert_int_equal(pcp_encode_response(&s, out, sizeof(out)), PCP_MAX_LEN);
	assert_int_equal(pcp_encode_response(&s, out, PCP_MAX_LEN - 1), 0);
	s.desc_len = 1013;
	assert_int_equal(pcp_encode_response(&s, out, sizeof(out)), 0);
	s.desc_len = 10;
	s.nfilters = 44;                        /* 60 + 16 + 44 * 24 = 1132 */
	assert_int_equal(pcp_encode_response(&s, out, sizeof(out)), 0);
	s.nfilters = PCP_MAX_FILTERS + 1;
	assert_int_equal(pcp_encode_response(&s, out, sizeof(out)), 0);
	s.nfilters = 0;
	s.desc_len = PCP_DESC_MAX + 1;
	assert_int_equal(pcp_encode_response(&s, out, sizeof(out)), 0);

	struct pcp_request r;
	base_req(&r, PCP_OP_MAP, 60);
	r.nfilters = 44;
	assert_int_equal(pcp_encode_request(&r, out, sizeof(out)), 0);
	r.nfilters = 43;
	assert_int_equal(pcp_encode_request(&r, out, sizeof(out)), 60 + 43 * 24);
	assert_int_equal(pcp_encode_request(&r, out, 100), 0);
}

static void test_decode_response_checks(void **state)
{
	(void)state;
	uint8_t buf[PCP_MAX_LEN + 4];
	struct pcp_response s;
	base_rsp(&s, PCP_OP_PEER);
	size_t n = pcp_encode_response(&s, buf, sizeof(buf));
	assert_int_equal(n, 80);
	assert_int_equal(pcp_decode_response(buf, n, &rs), PERR_OK);

	buf[1] &= 0x7f;
	assert_int_equal(pcp_decode_response(buf, n, &rs), PERR_MALFORMED_REQUEST);
	buf[1] |= 0x80;
	buf[0] = 1;
	assert_int_equal(pcp_decode_response(buf, n, &rs), PERR_MALFORMED_REQUEST);
	buf[0] = 2;
	assert_int_equal(pcp_decode_response(buf, 20, &rs), PERR_MALFORMED_REQUEST);
	assert_int_equal(pcp_decode_response(buf, 78, &rs), PERR_MALFORMED_REQUEST);
	/* success too short for its opcode is invalid */
	assert_int_equal(pcp_decode_response(buf, 60, &rs), PERR_MALFORMED_REQUEST);

	/* an error answer to a short request has only the header */
	const uint8_t req2[2] = { 1, 1 };
	n = pcp_encode_error(req2, 2, false, PCP_UNSUPP_VERSION, 1800, 42, buf, sizeof(buf));
	assert_int_equal(pcp_decode_response(buf, n, &rs), PERR_OK);
	assert_int_equal(rs.result, PCP_UNSUPP_VERSION);
	assert_int_equal(rs.opcode, PCP_OP_MAP);
	assert_int_equal(rs.lifetime, 1800);
	assert_int_equal(rs.epoch, 42);

	/* an error echoing a malformed option still yields the result */
	struct pkt p = mk(PCP_OP_MAP, 3600);
	opt(&p, PCP_OPT_THIRD_PARTY, 3, NULL);
	n = pcp_encode_error(p.b, p.n, true, PCP_MALFORMED_OPTION, 1800, 1, buf, sizeof(buf));
	assert_int_equal(pcp_decode_response(buf, n, &rs), PERR_OK);
	assert_int_equal(rs.result, PCP_MALFORMED_OPTION);
	assert_int_equal(rs.ext_port, 8080);
	assert_false(rs.has_third_party);
	/* the same options in a success response are rejected */
	buf[3] = PCP_SUCCESS;
	assert_int_equal(pcp_decode_response(buf, n, &rs), PERR_MALFORMED_OPTION);
	assert_int_equal(n, 68);
	buf[63] = 40;                           /* option length past the end */
	assert_int_equal(pcp_decode_response(buf, n, &rs), PERR_MALFORMED_OPTION);

	/* unknown options, even mandatory ones, are ignored by clients (§7.3) */
	base_rsp(&s, PCP_OP_MAP);
	n = pcp_encode_response(&s, buf, sizeof(buf));
	struct pkt q;
	memcpy(q.b, buf, n);
	q.n = n;
	opt(&q, 77, 4, NULL);
	opt(&q, 200, 2, NULL);
	assert_int_equal(pcp_decode_response(q.b, q.n, &rs), PERR_OK);
	assert_int_equal(rs.ext_port, 40000);

	/* UNSUPP_OPCODE echo: header only */
	struct pkt u;
	hdr(&u, 2, 0x80 | 9, 0);
	u.b[3] = PCP_UNSUPP_OPCODE;
	putzero(&u, 8);
	assert_int_equal(pcp_decode_response(u.b, u.n, &rs), PERR_OK);
	assert_int_equal(rs.opcode, 9);
	assert_int_equal(rs.result, PCP_UNSUPP_OPCODE);
}

static void test_strings(void **state)
{
	(void)state;
	assert_string_equal(pcp_result_str(PCP_SUCCESS), "SUCCESS");
	assert_string_equal(pcp_result_str(PCP_UNSUPP_VERSION), "UNSUPP_VERSION");
	assert_string_equal(pcp_result_str(PCP_MALFORMED_OPTION), "MALFORMED_OPTION");
	assert_string_equal(pcp_result_str(PCP_CANNOT_PROVIDE_EXTERNAL), "CANNOT_PROVIDE_EXTERNAL");
	assert_string_equal(pcp_result_str(PCP_EXCESSIVE_REMOTE_PEERS), "EXCESSIVE_REMOTE_PEERS");
	assert_string_equal(pcp_result_str(14), "UNKNOWN");
	assert_string_equal(pcp_result_str(255), "UNKNOWN");
	assert_string_equal(pcp_opcode_str(PCP_OP_ANNOUNCE), "ANNOUNCE");
	assert_string_equal(pcp_opcode_str(PCP_OP_MAP), "MAP");
	assert_string_equal(pcp_opcode_str(PCP_OP_PEER), "PEER");
	assert_string_equal(pcp_opcode_str(3), "UNKNOWN");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_announce_roundtrip),
		cmocka_unit_test(test_map_roundtrip_plain),
		cmocka_unit_test(test_map_roundtrip_options),
		cmocka_unit_test(test_map_roundtrip_port_set),
		cmocka_unit_test(test_peer_roundtrip),
		cmocka_unit_test(test_drop_short),
		cmocka_unit_test(test_drop_r_bit),
		cmocka_unit_test(test_unsupp_version),
		cmocka_unit_test(test_malformed_length),
		cmocka_unit_test(test_short_for_opcode),
		cmocka_unit_test(test_unsupp_opcode),
		cmocka_unit_test(test_option_past_end),
		cmocka_unit_test(test_third_party),
		cmocka_unit_test(test_prefer_failure),
		cmocka_unit_test(test_filter),
		cmocka_unit_test(test_filter_many),
		cmocka_unit_test(test_description),
		cmocka_unit_test(test_description_length),
		cmocka_unit_test(test_description_invalid_utf8),
		cmocka_unit_test(test_port_set),
		cmocka_unit_test(test_unknown_options),
		cmocka_unit_test(test_first_error_wins),
		cmocka_unit_test(test_error_short_request),
		cmocka_unit_test(test_error_parsed_vs_unparsed),
		cmocka_unit_test(test_error_padding_and_truncation),
		cmocka_unit_test(test_error_unsupp_opcode_copy),
		cmocka_unit_test(test_response_too_big),
		cmocka_unit_test(test_decode_response_checks),
		cmocka_unit_test(test_strings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
