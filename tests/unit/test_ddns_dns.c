/* RFC 2136 provider: message building, TSIG known answers recomputed with
 * OpenSSL, answer classification, the provider against an in-process fake
 * server, and against a real knotd when the knot package is installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <ldns/ldns.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ddns-hook/dns_msg.h"
#include "ddns-hook/provider.h"

#define ZONE "dyn.example.test"
#define KEYNAME "pcpd-key"
#define SECRET256 "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
#define SECRET512 "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/QA=="
#define SECRET_OTHER "ZWZnaGlqa2xtbm9wcXJzdHV2d3h5ent8fX5/gIGCg4Q="

static const struct dns_key key256 = { KEYNAME, "hmac-sha256", SECRET256 };
static const struct dns_key key512 = { KEYNAME, "hmac-sha512", SECRET512 };

static struct ddns_srv_conf svcs[3] = {
	{ "_http._tcp", 6, 80 },
	{ "_ssh._tcp", 6, 22 },
	{ "_http._tcp", 6, 8000 },   /* same label as [0]: one owner */
};

static void upd_init(struct ddns_update *u, const char *name, bool has_addr)
{
	memset(u, 0, sizeof(*u));
	u->name = name;
	u->subscriber = "#1";
	u->sub_index = 1;
	u->event = has_addr ? DDNS_CREATED : DDNS_DELETED;
	u->seq = 7;
	u->has_addr = has_addr;
	inet_pton(AF_INET, "192.0.2.10", &u->addr);
	u->services = svcs;
	u->nservices = 2;
	u->srv[0] = (struct ddns_srv_rec){ &svcs[0], 8080, 3600 };
	u->srv[1] = (struct ddns_srv_rec){ &svcs[1], 2222, 3600 };
	u->nsrv = 2;
	u->a = true;
	u->txt = "pcpd subscriber 1";
	u->ttl = 60;
}

/* ---- wire helpers (independent of the code under test) ---- */

static uint16_t g16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void p16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void p48(uint8_t *p, uint64_t v)
{
	for (int i = 5; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t g48(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 6; i++)
		v = v << 8 | p[i];
	return v;
}

static size_t skip_name(const uint8_t *w, size_t pos)
{
	for (;;) {
		uint8_t l = w[pos];
		if ((l & 0xc0) == 0xc0)
			return pos + 2;
		pos += 1u + l;
		if (!l)
			return pos;
	}
}

/* Canonical wire form (RFC 4034 §6.2): lower case, uncompressed. */
static size_t name_wire(const char *name, uint8_t *out)
{
	size_t n = 0;
	const char *s = name;
	while (*s) {
		const char *dot = strchr(s, '.');
		size_t l = dot ? (size_t)(dot - s) : strlen(s);
		out[n++] = (uint8_t)l;
		for (size_t i = 0; i < l; i++)
			out[n++] = (uint8_t)tolower((unsigned char)s[i]);
		s += l;
		if (*s == '.')
			s++;
	}
	out[n++] = 0;
	return n;
}

struct tsig_view {
	size_t start;                /* offset of the TSIG RR */
	const uint8_t *owner;
	const uint8_t *alg;          /* uncompressed wire name */
	size_t alglen;
	uint64_t time;
	uint16_t fudge, maclen, orig_id, error, olen;
	const uint8_t *mac, *other;
};

/* Finds the TSIG, which must be the last RR. */
static bool parse_tsig(const uint8_t *w, size_t len, struct tsig_view *tv)
{
	unsigned qd = g16(w + 4), rrs = (unsigned)g16(w + 6) + g16(w + 8) + g16(w + 10);
	size_t pos = 12;
	for (unsigned i = 0; i < qd; i++)
		pos = skip_name(w, pos) + 4;
	size_t start = 0;
	uint16_t type = 0;
	for (unsigned i = 0; i < rrs; i++) {
		start = pos;
		pos = skip_name(w, pos);
		type = g16(w + pos);
		pos += 10u + g16(w + pos + 8);
	}
	if (!rrs || type != 250 || pos != len)
		return false;
	memset(tv, 0, sizeof(*tv));
	tv->start = start;
	tv->owner = w + start;
	size_t r = skip_name(w, start) + 10;
	tv->alg = w + r;
	tv->alglen = skip_name(w, r) - r;
	r += tv->alglen;
	tv->time = g48(w + r);
	tv->fudge = g16(w + r + 6);
	tv->maclen = g16(w + r + 8);
	tv->mac = w + r + 10;
	r += 10u + tv->maclen;
	tv->orig_id = g16(w + r);
	tv->error = g16(w + r + 2);
	tv->olen = g16(w + r + 4);
	tv->other = w + r + 6;
	return true;
}

static size_t b64_decode(const char *b64, uint8_t *out)
{
	size_t n = strlen(b64);
	int len = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);
	assert_true(len > 0);
	while (n && b64[n - 1] == '=') {
		n--;
		len--;
	}
	return (size_t)len;
}

/* RFC 8945 §4.3: [request MAC size + MAC] + message + TSIG variables. */
static unsigned tsig_hmac(const struct dns_key *k, const uint8_t *reqmac, uint16_t reqmaclen,
			  const uint8_t *msg, size_t msglen, uint64_t tsig_time, uint16_t fudge,
			  uint16_t error, const uint8_t *other, uint16_t olen, uint8_t *out)
{
	uint8_t *buf = malloc(msglen + 1024);
	assert_non_null(buf);
	size_t n = 0;
	if (reqmac) {
		p16(buf, reqmaclen);
		memcpy(buf + 2, reqmac, reqmaclen);
		n = 2u + reqmaclen;
	}
	memcpy(buf + n, msg, msglen);
	n += msglen;
	n += name_wire(k->name, buf + n);
	p16(buf + n, 255);                   /* CLASS ANY */
	memset(buf + n + 2, 0, 4);           /* TTL 0 */
	n += 6;
	n += name_wire(k->algorithm, buf + n);
	p48(buf + n, tsig_time);
	p16(buf + n + 6, fudge);
	p16(buf + n + 8, error);
	p16(buf + n + 10, olen);
	n += 12;
	if (olen)
		memcpy(buf + n, other, olen);
	n += olen;
	uint8_t secret[128];
	size_t slen = b64_decode(k->secret_b64, secret);
	const EVP_MD *md = strstr(k->algorithm, "512") ? EVP_sha512() : EVP_sha256();
	unsigned mlen = 0;
	assert_non_null(HMAC(md, secret, (int)slen, buf, n, out, &mlen));
	free(buf);
	return mlen;
}

/* What a server remembers about a request: from its wire alone. */
struct rq {
	uint16_t id;
	uint8_t mac[64];
	uint16_t maclen;
	uint64_t time;
};

static void rq_from_wire(const uint8_t *w, size_t len, struct rq *q)
{
	struct tsig_view tv;
	assert_true(parse_tsig(w, len, &tv));
	q->id = g16(w);
	q->maclen = tv.maclen;
	memcpy(q->mac, tv.mac, tv.maclen);
	q->time = tv.time;
}

enum tsig_mode { T_NONE, T_UNSIGNED, T_SIGNED };

struct reply_spec {
	unsigned rcode;
	enum tsig_mode tsig;
	uint16_t error;
	bool have_other;
	uint64_t other_time;
	bool corrupt;
	int id_delta;
	bool no_qr, tc;
	const struct dns_key *key;   /* NULL: key256 */
	uint64_t time;               /* 0: now */
	bool two_tsigs;
};

static size_t put_tsig(uint8_t *out, const struct dns_key *k, uint64_t t, const uint8_t *mac,
		       uint16_t maclen, uint16_t orig_id, uint16_t error, const uint8_t *other, uint16_t olen)
{
	size_t n = name_wire(k->name, out);
	p16(out + n, 250);
	p16(out + n + 2, 255);
	memset(out + n + 4, 0, 4);
	size_t rdl = n + 8;
	n += 10;
	size_t r0 = n;
	n += name_wire(k->algorithm, out + n);
	p48(out + n, t);
	p16(out + n + 6, DNS_TSIG_FUDGE);
	p16(out + n + 8, maclen);
	n += 10;
	memcpy(out + n, mac, maclen);
	n += maclen;
	p16(out + n, orig_id);
	p16(out + n + 2, error);
	p16(out + n + 4, olen);
	n += 6;
	if (olen)
		memcpy(out + n, other, olen);
	n += olen;
	p16(out + rdl, (unsigned)(n - r0));
	return n;
}

/* An answer as a server would build it: header, zone section, TSIG. */
static size_t make_reply(const struct rq *q, const struct reply_spec *s, uint8_t *out)
{
	const struct dns_key *k = s->key ? s->key : &key256;
	uint16_t id = (uint16_t)(q->id + s->id_delta);
	p16(out, id);
	out[2] = (uint8_t)((s->no_qr ? 0 : 0x80) | 5 << 3 | (s->tc ? 0x02 : 0));
	out[3] = (uint8_t)(s->rcode & 0x0f);
	p16(out + 4, 1);
	memset(out + 6, 0, 6);
	size_t n = 12 + name_wire(ZONE, out + 12);
	p16(out + n, 6);
	p16(out + n + 2, 1);
	n += 4;
	if (s->tsig == T_NONE)
		return n;
	uint8_t other[6];
	uint16_t olen = 0;
	if (s->have_other) {
		p48(other, s->other_time);
		olen = 6;
	}
	uint64_t t = s->time ? s->time : (uint64_t)time(NULL);
	uint8_t mac[64];
	uint16_t maclen = 0;
	if (s->tsig == T_SIGNED) {
		maclen = (uint16_t)tsig_hmac(k, q->mac, q->maclen, out, n, t, DNS_TSIG_FUDGE, s->error, other, olen, mac);
		if (s->corrupt)
			mac[0] ^= 1;
	}
	unsigned count = s->two_tsigs ? 2 : 1;
	for (unsigned i = 0; i < count; i++)
		n += put_tsig(out + n, k, t, mac, maclen, q->id, s->error, other, olen);
	p16(out + 10, count);
	return n;
}

/* ---- message building ---- */

static ldns_pkt *parse_built(const struct dns_request *req)
{
	ldns_pkt *pkt = NULL;
	assert_int_equal(ldns_wire2pkt(&pkt, req->wire, req->len), LDNS_STATUS_OK);
	return pkt;
}

static void check_rr(const ldns_rr *rr, const char *owner, ldns_rr_type type, ldns_rr_class cls, uint32_t ttl,
		     size_t rdcount)
{
	char *o = ldns_rdf2str(ldns_rr_owner(rr));
	assert_string_equal(o, owner);
	free(o);
	assert_int_equal(ldns_rr_get_type(rr), type);
	assert_int_equal(ldns_rr_get_class(rr), cls);
	assert_int_equal(ldns_rr_ttl(rr), ttl);
	assert_int_equal(ldns_rr_rd_count(rr), rdcount);
}

static void check_srv(const ldns_rr *rr, const char *owner, uint16_t port, const char *target)
{
	check_rr(rr, owner, LDNS_RR_TYPE_SRV, LDNS_RR_CLASS_IN, 60, 4);
	assert_int_equal(ldns_rdf2native_int16(ldns_rr_rdf(rr, 0)), 0);
	assert_int_equal(ldns_rdf2native_int16(ldns_rr_rdf(rr, 1)), 0);
	assert_int_equal(ldns_rdf2native_int16(ldns_rr_rdf(rr, 2)), port);
	char *t = ldns_rdf2str(ldns_rr_rdf(rr, 3));
	assert_string_equal(t, target);
	free(t);
}

static void test_build_sections(void **state)
{
	(void)state;
	struct ddns_update u;
	upd_init(&u, "h1." ZONE, true);
	u.nservices = 3;             /* _http._tcp twice: one delete, both adds */
	u.srv[2] = (struct ddns_srv_rec){ &svcs[2], 8081, 3600 };
	u.nsrv = 3;
	struct dns_request req;
	char err[160];
	assert_int_equal(dns_update_build(&u, ZONE, &key256, &req, err, sizeof(err)), DNS_OK);
	assert_true(req.len > 12);
	/* header straight from the wire: opcode 5, QR and RD clear */
	assert_int_equal(g16(req.wire), req.id);
	assert_int_equal(req.wire[2], 5 << 3);
	assert_int_equal(req.wire[3] & 0x0f, 0);

	ldns_pkt *pkt = parse_built(&req);
	assert_int_equal(ldns_pkt_get_opcode(pkt), LDNS_PACKET_UPDATE);
	assert_false(ldns_pkt_rd(pkt));
	assert_false(ldns_pkt_qr(pkt));
	/* zone section */
	assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_question(pkt)), 1);
	const ldns_rr *z = ldns_rr_list_rr(ldns_pkt_question(pkt), 0);
	char *zs = ldns_rdf2str(ldns_rr_owner(z));
	assert_string_equal(zs, ZONE ".");
	free(zs);
	assert_int_equal(ldns_rr_get_type(z), LDNS_RR_TYPE_SOA);
	assert_int_equal(ldns_rr_get_class(z), LDNS_RR_CLASS_IN);
	/* no prerequisites, no additional records besides TSIG */
	assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(pkt)), 0);
	assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_additional(pkt)), 0);
	assert_non_null(ldns_pkt_tsig(pkt));

	const ldns_rr_list *up = ldns_pkt_authority(pkt);
	assert_int_equal(ldns_rr_list_rr_count(up), 9);
	check_rr(ldns_rr_list_rr(up, 0), "h1." ZONE ".", LDNS_RR_TYPE_A, LDNS_RR_CLASS_ANY, 0, 0);
	const ldns_rr *a = ldns_rr_list_rr(up, 1);
	check_rr(a, "h1." ZONE ".", LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, 60, 1);
	char *as = ldns_rdf2str(ldns_rr_rdf(a, 0));
	assert_string_equal(as, "192.0.2.10");
	free(as);
	check_rr(ldns_rr_list_rr(up, 2), "_http._tcp.h1." ZONE ".", LDNS_RR_TYPE_SRV, LDNS_RR_CLASS_ANY, 0, 0);
	check_srv(ldns_rr_list_rr(up, 3), "_http._tcp.h1." ZONE ".", 8080, "h1." ZONE ".");
	check_srv(ldns_rr_list_rr(up, 4), "_http._tcp.h1." ZONE ".", 8081, "h1." ZONE ".");
	check_rr(ldns_rr_list_rr(up, 5), "_ssh._tcp.h1." ZONE ".", LDNS_RR_TYPE_SRV, LDNS_RR_CLASS_ANY, 0, 0);
	check_srv(ldns_rr_list_rr(up, 6), "_ssh._tcp.h1." ZONE ".", 2222, "h1." ZONE ".");
	check_rr(ldns_rr_list_rr(up, 7), "h1." ZONE ".", LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_ANY, 0, 0);
	const ldns_rr *t = ldns_rr_list_rr(up, 8);
	check_rr(t, "h1." ZONE ".", LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_IN, 60, 1);
	const ldns_rdf *ts = ldns_rr_rdf(t, 0);
	assert_int_equal(ldns_rdf_size(ts), 1 + strlen(u.txt));
	assert_int_equal(ldns_rdf_data(ts)[0], strlen(u.txt));
	assert_memory_equal(ldns_rdf_data(ts) + 1, u.txt, strlen(u.txt));
	ldns_pkt_free(pkt);
	dns_request_free(&req);
}

static void test_build_delete_only(void **state)
{
	(void)state;
	struct ddns_update u;
	upd_init(&u, "h2." ZONE, false);
	struct dns_request req;
	char err[160];
	assert_int_equal(dns_update_build(&u, ZONE, &key256, &req, err, sizeof(err)), DNS_OK);
	ldns_pkt *pkt = parse_built(&req);
	const ldns_rr_list *up = ldns_pkt_authority(pkt);
	assert_int_equal(ldns_rr_list_rr_count(up), 4);
	check_rr(ldns_rr_list_rr(up, 0), "h2." ZONE ".", LDNS_RR_TYPE_A, LDNS_RR_CLASS_ANY, 0, 0);
	check_rr(ldns_rr_list_rr(up, 1), "_http._tcp.h2." ZONE ".", LDNS_RR_TYPE_SRV, LDNS_RR_CLASS_ANY, 0, 0);
	check_rr(ldns_rr_list_rr(up, 2), "_ssh._tcp.h2." ZONE ".", LDNS_RR_TYPE_SRV, LDNS_RR_CLASS_ANY, 0, 0);
	check_rr(ldns_rr_list_rr(up, 3), "h2." ZONE ".", LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_ANY, 0, 0);
	ldns_pkt_free(pkt);
	dns_request_free(&req);
}

static unsigned build_count(const struct ddns_update *u)
{
	struct dns_request req;
	char err[160];
	assert_int_equal(dns_update_build(u, ZONE, &key256, &req, err, sizeof(err)), DNS_OK);
	ldns_pkt *pkt = parse_built(&req);
	unsigned n = (unsigned)ldns_rr_list_rr_count(ldns_pkt_authority(pkt));
	ldns_pkt_free(pkt);
	dns_request_free(&req);
	return n;
}

static void test_build_variants(void **state)
{
	(void)state;
	struct ddns_update u;
	/* A not ours (a false): neither deleted nor added */
	upd_init(&u, "h3." ZONE, true);
	u.a = false;
	assert_int_equal(build_count(&u), 6);
	/* TXT: NULL is not ours (untouched), "" removes ours */
	upd_init(&u, "h3." ZONE, true);
	u.txt = NULL;
	assert_int_equal(build_count(&u), 6);
	u.txt = "";
	assert_int_equal(build_count(&u), 7);
	/* a mapping of a service that is not configured is not published */
	upd_init(&u, "h3." ZONE, true);
	static const struct ddns_srv_conf stray = { "_ftp._tcp", 6, 21 };
	u.srv[2] = (struct ddns_srv_rec){ &stray, 2121, 60 };
	u.nsrv = 3;
	assert_int_equal(build_count(&u), 8);
	/* the apex itself is in the zone, and case does not matter */
	upd_init(&u, ZONE, true);
	assert_int_equal(build_count(&u), 8);
	upd_init(&u, "H3.Dyn.EXAMPLE.test", true);
	assert_int_equal(build_count(&u), 8);

	/* long TXT: split into 255-octet strings */
	char txt[301];
	memset(txt, 'x', 300);
	txt[300] = '\0';
	upd_init(&u, "h3." ZONE, true);
	u.txt = txt;
	struct dns_request req;
	char err[160];
	assert_int_equal(dns_update_build(&u, ZONE, &key256, &req, err, sizeof(err)), DNS_OK);
	ldns_pkt *pkt = parse_built(&req);
	const ldns_rr *t = ldns_rr_list_rr(ldns_pkt_authority(pkt), 7);
	assert_int_equal(ldns_rr_rd_count(t), 2);
	assert_int_equal(ldns_rdf_size(ldns_rr_rdf(t, 0)), 256);
	assert_int_equal(ldns_rdf_size(ldns_rr_rdf(t, 1)), 46);
	ldns_pkt_free(pkt);
	dns_request_free(&req);

	/* ids are random */
	upd_init(&u, "h3." ZONE, true);
	unsigned same = 0;
	uint16_t first = 0;
	for (int i = 0; i < 8; i++) {
		assert_int_equal(dns_update_build(&u, ZONE, &key256, &req, err, sizeof(err)), DNS_OK);
		if (i == 0)
			first = req.id;
		else if (req.id == first)
			same++;
		dns_request_free(&req);
	}
	assert_true(same < 7);
}

static void expect_name_error(const char *name, const char *zone)
{
	struct ddns_update u;
	upd_init(&u, name, true);
	struct dns_request req;
	char err[160] = "";
	assert_int_equal(dns_update_build(&u, zone, &key256, &req, err, sizeof(err)), DNS_E_NAME);
	assert_true(err[0]);
	assert_null(req.wire);
}

static void test_build_names(void **state)
{
	(void)state;
	expect_name_error("host.example.org", ZONE);
	expect_name_error("xdyn.example.test", ZONE);        /* suffix of the string, not of labels */
	expect_name_error("example.test", ZONE);             /* parent of the zone */
	expect_name_error("a..b." ZONE, ZONE);
	expect_name_error("a b." ZONE, ZONE);
	expect_name_error("a\\046b." ZONE, ZONE);            /* no presentation escapes */
	expect_name_error("", ZONE);
	expect_name_error("h." ZONE, "bad zone");
	char label[96];
	memset(label, 'a', 64);
	strcpy(label + 64, "." ZONE);
	expect_name_error(label, ZONE);
	/* service owner over 255 octets */
	char longname[260];
	size_t n = 0;
	for (int i = 0; i < 4; i++) {           /* 4 * 57 + 16 = 244 characters */
		memset(longname + n, 'b', 56);
		longname[n + 56] = '.';
		n += 57;
	}
	strcpy(longname + n, ZONE);
	assert_true(dns_name_ok(longname));
	expect_name_error(longname, ZONE);

	assert_true(dns_name_ok("a.b."));
	assert_true(dns_name_ok("_http._tcp.a-b.c"));
	assert_false(dns_name_ok("."));
	assert_false(dns_name_ok("a;b"));
}

static void test_key_check(void **state)
{
	(void)state;
	char err[160];
	assert_int_equal(dns_key_check(&key256, err, sizeof(err)), DNS_OK);
	assert_int_equal(dns_key_check(&key512, err, sizeof(err)), DNS_OK);
	struct dns_key k = key256;
	snprintf(k.algorithm, sizeof(k.algorithm), "HMAC-SHA256.");
	assert_int_equal(dns_key_check(&k, err, sizeof(err)), DNS_OK);
	static const char *const refused[] = { "hmac-md5", "hmac-md5.sig-alg.reg.int", "hmac-sha1",
					       "hmac-sha224", "hmac-sha384", "", "sha256" };
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		k = key256;
		snprintf(k.algorithm, sizeof(k.algorithm), "%s", refused[i]);
		assert_int_equal(dns_key_check(&k, err, sizeof(err)), DNS_E_KEY);
		assert_non_null(strstr(err, "refused"));
		struct ddns_update u;
		upd_init(&u, "h." ZONE, true);
		struct dns_request req;
		assert_int_equal(dns_update_build(&u, ZONE, &k, &req, err, sizeof(err)), DNS_E_KEY);
	}
	k = key256;
	snprintf(k.secret_b64, sizeof(k.secret_b64), "not base64 !!");
	assert_int_equal(dns_key_check(&k, err, sizeof(err)), DNS_E_KEY);
	assert_null(strstr(err, "not base64 !!"));
	k.secret_b64[0] = '\0';
	assert_int_equal(dns_key_check(&k, err, sizeof(err)), DNS_E_KEY);
	k = key256;
	snprintf(k.name, sizeof(k.name), "bad key");
	assert_int_equal(dns_key_check(&k, err, sizeof(err)), DNS_E_KEY);
	/* messages never carry the secret */
	k = key256;
	snprintf(k.algorithm, sizeof(k.algorithm), "hmac-md5");
	dns_key_check(&k, err, sizeof(err));
	assert_null(strstr(err, SECRET256));
}

/* ---- TSIG known answers ---- */

static void tsig_kat(const struct dns_key *k, unsigned maclen)
{
	struct ddns_update u;
	upd_init(&u, "kat." ZONE, true);
	struct dns_request req;
	char err[160];
	assert_int_equal(dns_update_build(&u, ZONE, k, &req, err, sizeof(err)), DNS_OK);
	struct tsig_view tv;
	assert_true(parse_tsig(req.wire, req.len, &tv));
	/* TSIG fields as RFC 8945 §4.2 and §5.1 want them on a request */
	uint8_t kn[64], an[64];
	size_t knl = name_wire(k->name, kn), anl = name_wire(k->algorithm, an);
	assert_memory_equal(tv.owner, kn, knl);
	assert_int_equal(g16(tv.owner + knl), 250);
	assert_int_equal(g16(tv.owner + knl + 2), 255);
	assert_int_equal(g48(tv.owner + knl + 4) >> 16, 0);
	assert_int_equal(tv.alglen, anl);
	assert_memory_equal(tv.alg, an, anl);
	assert_int_equal(tv.fudge, 300);
	assert_int_equal(tv.orig_id, req.id);
	assert_int_equal(tv.error, 0);
	assert_int_equal(tv.olen, 0);
	assert_int_equal(tv.maclen, maclen);
	long long now = (long long)time(NULL);
	assert_true(llabs((long long)tv.time - now) <= 2);
	assert_int_equal(req.time_signed, tv.time);
	assert_int_equal(req.maclen, maclen);
	assert_memory_equal(req.mac, tv.mac, maclen);

	/* the message as it was before the TSIG: ARCOUNT back to 0 */
	uint8_t *msg = malloc(tv.start);
	assert_non_null(msg);
	memcpy(msg, req.wire, tv.start);
	assert_int_equal(g16(msg + 10), 1);
	p16(msg + 10, 0);
	uint8_t mac[64];
	unsigned n = tsig_hmac(k, NULL, 0, msg, tv.start, tv.time, tv.fudge, 0, NULL, 0, mac);
	assert_int_equal(n, maclen);
	assert_memory_equal(mac, tv.mac, maclen);
	/* and a different secret would not give it */
	struct dns_key other = *k;
	snprintf(other.secret_b64, sizeof(other.secret_b64), "%s", SECRET_OTHER);
	tsig_hmac(&other, NULL, 0, msg, tv.start, tv.time, tv.fudge, 0, NULL, 0, mac);
	assert_memory_not_equal(mac, tv.mac, maclen);
	free(msg);
	dns_request_free(&req);
}

static void test_tsig_kat_sha256(void **state)
{
	(void)state;
	tsig_kat(&key256, 32);
}

static void test_tsig_kat_sha512(void **state)
{
	(void)state;
	tsig_kat(&key512, 64);
}

/* RFC 4231 test case 2 checks the reference HMAC used above. */
static void test_rfc4231_case2(void **state)
{
	(void)state;
	static const uint8_t want[32] = {
		0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
		0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43,
	};
	const char *data = "what do ya want for nothing?";
	uint8_t out[64];
	unsigned n = 0;
	assert_non_null(HMAC(EVP_sha256(), "Jefe", 4, (const uint8_t *)data, strlen(data), out, &n));
	assert_int_equal(n, 32);
	assert_memory_equal(out, want, 32);
}

/* ---- classification ---- */

struct cls_case {
	unsigned rcode;
	enum ddns_rclass cls;
	const char *code;
};

static enum dns_answer classify(const struct dns_request *req, const struct reply_spec *s,
				struct ddns_result *res)
{
	struct rq q;
	rq_from_wire(req->wire, req->len, &q);
	uint8_t buf[1024];
	size_t n = make_reply(&q, s, buf);
	memset(res, 0xa5, sizeof(*res));
	return dns_answer_classify(req, buf, n, time(NULL), res);
}

static void build_req(struct dns_request *req, const struct dns_key *k)
{
	struct ddns_update u;
	upd_init(&u, "c." ZONE, true);
	char err[160];
	assert_int_equal(dns_update_build(&u, ZONE, k, req, err, sizeof(err)), DNS_OK);
}

static void test_classify_rcodes(void **state)
{
	(void)state;
	static const struct cls_case cases[] = {
		{ 0, DDNS_R_OK, "NOERROR" },
		{ 1, DDNS_R_PERM_NAME, "FORMERR" },
		{ 2, DDNS_R_TRANSIENT, "SERVFAIL" },
		{ 3, DDNS_R_PERM_NAME, "NXDOMAIN" },
		{ 4, DDNS_R_PERM_NAME, "NOTIMP" },
		{ 5, DDNS_R_PERM_PROVIDER, "REFUSED" },
		{ 6, DDNS_R_PERM_NAME, "YXDOMAIN" },
		{ 7, DDNS_R_PERM_NAME, "YXRRSET" },
		{ 8, DDNS_R_PERM_NAME, "NXRRSET" },
		{ 9, DDNS_R_PERM_PROVIDER, "NOTAUTH" },
		{ 10, DDNS_R_PERM_NAME, "NOTZONE" },
		{ 11, DDNS_R_PERM_NAME, "RCODE11" },
		{ 15, DDNS_R_PERM_NAME, "RCODE15" },
	};
	const struct dns_key *keys[] = { &key256, &key512 };
	for (size_t kk = 0; kk < 2; kk++) {
		struct dns_request req;
		build_req(&req, keys[kk]);
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			struct reply_spec s = { .rcode = cases[i].rcode, .tsig = T_SIGNED, .key = keys[kk] };
			struct ddns_result res;
			assert_int_equal(classify(&req, &s, &res), DNS_ANS_FINAL);
			assert_int_equal(res.cls, cases[i].cls);
			assert_string_equal(res.code, cases[i].code);
			assert_true(res.msg[0]);
			assert_null(strstr(res.msg, keys[kk]->secret_b64));
			/* the same answer unsigned is not believed, except a bare
			 * NOTAUTH (what Knot sends for a zone it does not serve) */
			bool notauth = cases[i].rcode == 9;
			enum dns_answer want = notauth ? DNS_ANS_FINAL : DNS_ANS_BOGUS;
			s.tsig = T_NONE;
			assert_int_equal(classify(&req, &s, &res), want);
			assert_int_equal(res.cls, notauth ? DDNS_R_PERM_PROVIDER : DDNS_R_TRANSIENT);
			assert_string_equal(res.code, notauth ? "NOTAUTH" : "BADSIG-REPLY");
			/* nor with an empty MAC */
			s.tsig = T_UNSIGNED;
			assert_int_equal(classify(&req, &s, &res), want);
			assert_string_equal(res.code, notauth ? "NOTAUTH" : "BADSIG-REPLY");
			/* nor with a wrong MAC, whatever the RCODE */
			s.tsig = T_SIGNED;
			s.corrupt = true;
			assert_int_equal(classify(&req, &s, &res), DNS_ANS_BOGUS);
			assert_int_equal(res.cls, DDNS_R_TRANSIENT);
			assert_string_equal(res.code, "BADSIG-REPLY");
		}
		dns_request_free(&req);
	}
}

static void test_classify_tsig_errors(void **state)
{
	(void)state;
	struct dns_request req;
	build_req(&req, &key256);
	struct ddns_result res;
	/* BADSIG, BADKEY: unsigned NOTAUTH (RFC 8945 §5.2.1, §5.2.2) */
	struct reply_spec s = { .rcode = 9, .tsig = T_UNSIGNED, .error = 16 };
	assert_int_equal(classify(&req, &s, &res), DNS_ANS_FINAL);
	assert_int_equal(res.cls, DDNS_R_PERM_PROVIDER);
	assert_string_equal(res.code, "BADSIG");
	s.error = 17;
	assert_int_equal(classify(&req, &s, &res), DNS_ANS_FINAL);
	assert_int_equal(res.cls, DDNS_R_PERM_PROVIDER);
	assert_string_equal(res.code, "BADKEY");
	assert_non_null(strstr(res.msg, KEYNAME));
	/* unsigned BADKEY with another RCODE is no TSIG error answer */
	s.rcode = 0;
	assert_int_equal(classify(&req, &s, &res), DNS_ANS_BOGUS);
	/* BADTIME: signed, server time in Other Data, client time in Time Signed (§5.2.3) */
	uint64_t now = (uint64_t)time(NULL);
	s = (struct reply_spec){ .rcode = 9, .tsig = T_SIGNED, .error = 18, .have_other = true,
				 .other_time = now + 1234, .time = req.time_signed };
	struct rq q;
	rq_from_wire(req.wire, req.len, &q);
	uint8_t buf[1024];
	size_t n = make_reply(&q, &s, buf);
	assert_int_equal(dns_answer_classify(&req, buf, n, (time_t)now, &res), DNS_ANS_FINAL);
	assert_int_equal(res.cls, DDNS_R_PERM_PROVIDER);
	assert_string_equal(res.code, "BADTIME");
	assert_non_null(strstr(res.msg, "skew +1234 s"));
	s.other_time = now - 400;
	n = make_reply(&q, &s, buf);
	assert_int_equal(dns_answer_classify(&req, buf, n, (time_t)now, &res), DNS_ANS_FINAL);
	assert_non_null(strstr(res.msg, "skew -400 s"));
	/* BADTIME unsigned: may be spoofed */
	s.tsig = T_UNSIGNED;
	assert_int_equal(classify(&req, &s, &res), DNS_ANS_BOGUS);
	/* BADTIME signed but without Other Data */
	s.tsig = T_SIGNED;
	s.have_other = false;
	assert_int_equal(classify(&req, &s, &res), DNS_ANS_FINAL);
	assert_string_equal(res.code, "BADTIME");
	/* BADTRUNC: signed (§5.3.2) */
	s = (struct reply_spec){ .rcode = 9, .tsig = T_SIGNED, .error = 22 };
	assert_int_equal(classify(&req, &s, &res), DNS_ANS_FINAL);
	assert_int_equal(res.cls, DDNS_R_PERM_PROVIDER);
	assert_string_equal(res.code, "BADTRUNC");
	s.tsig = T_UNSIGNED;
	assert_int_equal(classify(&req, &s, &res), DNS_ANS_BOGUS);
	/* a signed BADKEY (servers must not sign it, but if it verifies, it is still BADKEY) */
	s = (struct reply_spec){ .rcode = 9, .tsig = T_SIGNED, .error = 17 };
	assert_int_equal(classify(&req, &s, &res), DNS_ANS_FINAL);
	assert_string_equal(res.code, "BADKEY");
	/* unknown TSIG error */
	s.error = 23;
	assert_int_equal(classify(&req, &s, &res), DNS_ANS_FINAL);
	assert_int_equal(res.cls, DDNS_R_PERM_PROVIDER);
	assert_string_equal(res.code, "TSIGERR23");
	dns_request_free(&req);
}

static void test_classify_not_ours(void **state)
{
	(void)state;
	struct dns_request req;
	build_req(&req, &key256);
	struct ddns_result res;
	struct reply_spec s = { .rcode = 0, .tsig = T_SIGNED, .id_delta = 1 };
	assert_int_equal(classify(&req, &s, &res), DNS_ANS_IGNORE);
	s = (struct reply_spec){ .rcode = 0, .tsig = T_SIGNED, .no_qr = true };
	assert_int_equal(classify(&req, &s, &res), DNS_ANS_IGNORE);
	s = (struct reply_spec){ .rcode = 0, .tsig = T_NONE, .tc = true };
	assert_int_equal(classify(&req, &s, &res), DNS_ANS_TRUNCATED);
	/* wrong-id TC is not ours either */
	s.id_delta = 7;
	assert_int_equal(classify(&req, &s, &res), DNS_ANS_IGNORE);
	/* signed with another secret */
	struct dns_key other = key256;
	snprintf(other.secret_b64, sizeof(other.secret_b64), "%s", SECRET_OTHER);
	s = (struct reply_spec){ .rcode = 0, .tsig = T_SIGNED, .key = &other };
	assert_int_equal(classify(&req, &s, &res), DNS_ANS_BOGUS);
	/* signed with the right secret under another key name or algorithm */
	other = key256;
	snprintf(other.name, sizeof(other.name), "other-key");
	s.key = &other;
	assert_int_equal(classify(&req, &s, &res), DNS_ANS_BOGUS);
	other = key256;
	snprintf(other.algorithm, sizeof(other.algorithm), "hmac-sha512");
	assert_int_equal(classify(&req, &s, &res), DNS_ANS_BOGUS);
	/* two TSIG records */
	s = (struct reply_spec){ .rcode = 0, .tsig = T_SIGNED, .two_tsigs = true };
	assert_int_equal(classify(&req, &s, &res), DNS_ANS_IGNORE);
	/* garbage */
	uint8_t junk[40] = { 0 };
	p16(junk, req.id);
	junk[2] = 0x80;
	p16(junk + 4, 3);
	assert_int_equal(dns_answer_classify(&req, junk, 14, time(NULL), &res), DNS_ANS_IGNORE);
	assert_int_equal(dns_answer_classify(&req, junk, 5, time(NULL), &res), DNS_ANS_IGNORE);

	/* an answer signed for one request does not verify for another
	 * request that happens to have the same id (replay) */
	struct dns_request req2;
	build_req(&req2, &key256);
	s = (struct reply_spec){ .rcode = 0, .tsig = T_SIGNED };
	struct rq q;
	rq_from_wire(req.wire, req.len, &q);
	uint8_t buf[1024];
	size_t n = make_reply(&q, &s, buf);
	req2.id = req.id;
	assert_int_equal(dns_answer_classify(&req2, buf, n, time(NULL), &res), DNS_ANS_BOGUS);
	assert_int_equal(dns_answer_classify(&req, buf, n, time(NULL), &res), DNS_ANS_FINAL);
	assert_int_equal(res.cls, DDNS_R_OK);
	dns_request_free(&req2);
	dns_request_free(&req);
}

/* ---- the provider on a loop ---- */

struct done_rec {
	int calls;
	struct ddns_result res;
	double at;
};

static bool g_in_send;
static struct ev_loop *g_loop;

static void on_done(void *arg, const struct ddns_result *r)
{
	struct done_rec *d = arg;
	assert_false(g_in_send);
	d->calls++;
	d->res = *r;
	d->at = ev_now(g_loop);
}

static void do_send(void *p, const struct ddns_update *u, struct done_rec *d)
{
	memset(d, 0, sizeof(*d));
	g_in_send = true;
	ddns_rfc2136_ops.send(p, u, on_done, d);
	g_in_send = false;
	assert_int_equal(d->calls, 0);
}

static void stop_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	*(bool *)w->data = true;
}

/* Runs the loop until all n records got their call, or max seconds. */
static void run_until(struct done_rec **d, unsigned n, double max)
{
	bool expired = false;
	ev_timer t;
	ev_timer_init(&t, stop_cb, max, 0.);
	t.data = &expired;
	ev_timer_start(g_loop, &t);
	for (;;) {
		unsigned got = 0;
		for (unsigned i = 0; i < n; i++)
			got += d[i]->calls > 0;
		if (got == n || expired)
			break;
		ev_run(g_loop, EVRUN_ONCE);
	}
	ev_timer_stop(g_loop, &t);
}

static void run_for(double secs)
{
	bool expired = false;
	ev_timer t;
	ev_timer_init(&t, stop_cb, secs, 0.);
	t.data = &expired;
	ev_timer_start(g_loop, &t);
	while (!expired)
		ev_run(g_loop, EVRUN_ONCE);
}

static char g_tmp[64];

static void write_secret(const char *path, const char *b64, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, b64, strlen(b64)), (ssize_t)strlen(b64));
	assert_int_equal(write(fd, "\n", 1), 1);
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static void conf_init(struct ddns_provider_conf *c, uint16_t port, const char *secret_b64,
		      const char *alg)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "test");
	c->type = DDNS_RFC2136;
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &c->server);
	c->port = port;
	snprintf(c->zone, sizeof(c->zone), ZONE);
	snprintf(c->key_name, sizeof(c->key_name), KEYNAME);
	snprintf(c->key_algorithm, sizeof(c->key_algorithm), "%s", alg);
	snprintf(c->key_file, sizeof(c->key_file), "%s/key-%s", g_tmp, alg);
	write_secret(c->key_file, secret_b64, 0600);
	c->ttl = 60;
	c->timeout_ms = 600;
}

static void *open_ok(const struct ddns_provider_conf *c)
{
	char err[256] = "";
	void *p = ddns_rfc2136_ops.open(c, g_loop, err, sizeof(err));
	if (!p)
		fail_msg("open: %s", err);
	return p;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tree(const char *dir)
{
	if (dir[0])
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- an in-process fake server on the same loop ---- */

enum fake_mode {
	F_ANSWER,            /* signed NOERROR */
	F_NOISE_THEN_GOOD,   /* wrong id, bad MAC, wrong source (REFUSED), then NOERROR */
	F_BOGUS_ONLY,        /* only a reply with a bad MAC */
	F_SILENT,            /* never answers */
	F_TC,                /* TC over UDP, NOERROR over TCP in pieces */
};

struct fake {
	enum fake_mode mode;
	int ufd, lfd, cfd, other_fd;
	uint16_t port;
	ev_io uio, lio, cio;
	unsigned udp_got, tcp_got;
	uint8_t udp_req[2048], tcp_req[2048];
	size_t udp_len, tcp_len, tcp_off;
	uint8_t tcp_out[1024];
	size_t tcp_out_len, tcp_out_off;
	ev_timer dribble;
};

static struct fake g_fake;

static void fake_reply(struct fake *f, const uint8_t *req, size_t len, struct sockaddr *peer,
		       socklen_t plen)
{
	struct rq q;
	rq_from_wire(req, len, &q);
	uint8_t buf[1024];
	size_t n;
	struct reply_spec s = { .rcode = 0, .tsig = T_SIGNED };
	switch (f->mode) {
	case F_SILENT:
		return;
	case F_TC:
		s = (struct reply_spec){ .tsig = T_NONE, .tc = true };
		break;
	case F_BOGUS_ONLY:
		s.corrupt = true;
		break;
	case F_NOISE_THEN_GOOD: {
		struct reply_spec noise[2] = { { .tsig = T_SIGNED, .id_delta = 1 }, { .tsig = T_SIGNED, .corrupt = true } };
		for (int i = 0; i < 2; i++) {
			n = make_reply(&q, &noise[i], buf);
			sendto(f->ufd, buf, n, 0, peer, plen);
		}
		struct reply_spec refused = { .rcode = 5, .tsig = T_SIGNED };
		n = make_reply(&q, &refused, buf);
		sendto(f->other_fd, buf, n, 0, peer, plen);
		break;
	}
	case F_ANSWER:
		break;
	}
	n = make_reply(&q, &s, buf);
	sendto(f->ufd, buf, n, 0, peer, plen);
}

static void fake_udp_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	struct fake *f = w->data;
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	ssize_t n = recvfrom(f->ufd, f->udp_req, sizeof(f->udp_req), 0, (struct sockaddr *)&peer, &plen);
	if (n <= 0)
		return;
	f->udp_got++;
	f->udp_len = (size_t)n;
	fake_reply(f, f->udp_req, f->udp_len, (struct sockaddr *)&peer, plen);
}

/* Writes the TCP answer one byte, then the rest a little later: the
 * client must put the pieces together. */
static void fake_dribble_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct fake *f = w->data;
	size_t chunk = f->tcp_out_off == 0 ? 1 : f->tcp_out_len - f->tcp_out_off;
	ssize_t n = write(f->cfd, f->tcp_out + f->tcp_out_off, chunk);
	if (n > 0)
		f->tcp_out_off += (size_t)n;
	if (f->tcp_out_off < f->tcp_out_len)
		ev_timer_again(g_loop, w);
}

static void fake_tcp_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)revents;
	struct fake *f = w->data;
	ssize_t n = read(f->cfd, f->tcp_req + f->tcp_off, sizeof(f->tcp_req) - f->tcp_off);
	if (n <= 0) {
		ev_io_stop(loop, w);
		return;
	}
	f->tcp_off += (size_t)n;
	if (f->tcp_off < 2 || f->tcp_off < 2u + g16(f->tcp_req))
		return;
	f->tcp_got++;
	f->tcp_len = g16(f->tcp_req);
	struct rq q;
	rq_from_wire(f->tcp_req + 2, f->tcp_len, &q);
	struct reply_spec s = { .rcode = 0, .tsig = T_SIGNED };
	size_t m = make_reply(&q, &s, f->tcp_out + 2);
	p16(f->tcp_out, (unsigned)m);
	f->tcp_out_len = m + 2;
	f->tcp_out_off = 0;
	ev_timer_init(&f->dribble, fake_dribble_cb, 0.05, 0.05);
	f->dribble.data = f;
	ev_timer_start(loop, &f->dribble);
}

static void fake_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)revents;
	struct fake *f = w->data;
	int fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (f->cfd >= 0) {
		ev_io_stop(loop, &f->cio);
		close(f->cfd);
	}
	f->cfd = fd;
	f->tcp_off = 0;
	ev_io_init(&f->cio, fake_tcp_read_cb, fd, EV_READ);
	f->cio.data = f;
	ev_io_start(loop, &f->cio);
}

static int bind_lo(int type, uint16_t port)
{
	int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static uint16_t local_port(int fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

/* A port free for both UDP and TCP on 127.0.0.1 right now. */
static uint16_t free_port(void)
{
	for (int i = 0; i < 50; i++) {
		int t = bind_lo(SOCK_STREAM, 0);
		uint16_t port = local_port(t);
		int u = bind_lo(SOCK_DGRAM, port);
		close(t);
		if (u >= 0) {
			close(u);
			return port;
		}
	}
	fail_msg("no free port");
	return 0;
}

static void fake_start(struct fake *f, enum fake_mode mode)
{
	memset(f, 0, sizeof(*f));
	f->mode = mode;
	f->cfd = -1;
	for (int i = 0; i < 50; i++) {
		f->lfd = bind_lo(SOCK_STREAM, 0);
		f->port = local_port(f->lfd);
		f->ufd = bind_lo(SOCK_DGRAM, f->port);
		if (f->ufd >= 0)
			break;
		close(f->lfd);
	}
	assert_true(f->ufd >= 0);
	assert_int_equal(listen(f->lfd, 4), 0);
	f->other_fd = bind_lo(SOCK_DGRAM, 0);
	ev_io_init(&f->uio, fake_udp_cb, f->ufd, EV_READ);
	f->uio.data = f;
	ev_io_start(g_loop, &f->uio);
	ev_io_init(&f->lio, fake_accept_cb, f->lfd, EV_READ);
	f->lio.data = f;
	ev_io_start(g_loop, &f->lio);
	ev_init(&f->dribble, fake_dribble_cb);
}

static void fake_stop(struct fake *f)
{
	if (f->ufd <= 0)
		return;
	ev_io_stop(g_loop, &f->uio);
	ev_io_stop(g_loop, &f->lio);
	ev_io_stop(g_loop, &f->cio);
	ev_timer_stop(g_loop, &f->dribble);
	close(f->ufd);
	close(f->lfd);
	close(f->other_fd);
	if (f->cfd >= 0)
		close(f->cfd);
	f->cfd = -1;
	f->ufd = -1;
}

static int prov_setup(void **state)
{
	(void)state;
	snprintf(g_tmp, sizeof(g_tmp), "/tmp/pcpd-ddns-dns-XXXXXX");
	if (!mkdtemp(g_tmp))
		return -1;
	g_loop = ev_loop_new(EVFLAG_AUTO);
	return g_loop ? 0 : -1;
}

static int prov_teardown(void **state)
{
	(void)state;
	if (g_loop)
		ev_loop_destroy(g_loop);
	g_loop = NULL;
	rm_tree(g_tmp);
	return 0;
}

static int fake_teardown(void **state)
{
	(void)state;
	fake_stop(&g_fake);
	memset(&g_fake, 0, sizeof(g_fake));
	return 0;
}

static void *fake_provider(enum fake_mode mode, bool tcp)
{
	fake_start(&g_fake, mode);
	struct ddns_provider_conf c;
	conf_init(&c, g_fake.port, SECRET256, "hmac-sha256");
	c.tcp = tcp;
	return open_ok(&c);
}

static void test_prov_udp_noise(void **state)
{
	(void)state;
	void *p = fake_provider(F_NOISE_THEN_GOOD, false);
	struct ddns_update u;
	upd_init(&u, "n." ZONE, true);
	struct done_rec d, *dp = &d;
	do_send(p, &u, &d);
	run_until(&dp, 1, 3);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.res.cls, DDNS_R_OK);
	assert_string_equal(d.res.code, "NOERROR");
	run_for(0.8);                /* later datagrams and timers call nothing */
	assert_int_equal(d.calls, 1);
	assert_int_equal(g_fake.udp_got, 1);
	ddns_rfc2136_ops.close(p);
}

static void test_prov_bogus_only(void **state)
{
	(void)state;
	void *p = fake_provider(F_BOGUS_ONLY, false);
	struct ddns_update u;
	upd_init(&u, "b." ZONE, true);
	struct done_rec d, *dp = &d;
	double t0 = ev_time();
	do_send(p, &u, &d);
	run_until(&dp, 1, 3);
	assert_int_equal(d.calls, 1);
	/* not completed by the bad answer: waited for the timeout */
	assert_true(ev_time() - t0 >= 0.55);
	assert_int_equal(d.res.cls, DDNS_R_TRANSIENT);
	assert_string_equal(d.res.code, "BADSIG-REPLY");
	ddns_rfc2136_ops.close(p);
}

static void test_prov_timeout_retransmit(void **state)
{
	(void)state;
	void *p = fake_provider(F_SILENT, false);
	struct ddns_update u;
	upd_init(&u, "t." ZONE, true);
	struct done_rec d, *dp = &d;
	double t0 = ev_time();
	do_send(p, &u, &d);
	run_until(&dp, 1, 3);
	assert_int_equal(d.calls, 1);
	double took = ev_time() - t0;
	assert_true(took >= 0.55 && took < 1.5);
	assert_int_equal(d.res.cls, DDNS_R_TRANSIENT);
	assert_string_equal(d.res.code, "timeout");
	assert_int_equal(g_fake.udp_got, 3);       /* first send + 2 retransmissions */
	ddns_rfc2136_ops.close(p);
}

static void test_prov_tc_to_tcp(void **state)
{
	(void)state;
	void *p = fake_provider(F_TC, false);
	struct ddns_update u;
	upd_init(&u, "tc." ZONE, true);
	struct done_rec d, *dp = &d;
	do_send(p, &u, &d);
	run_until(&dp, 1, 3);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.res.cls, DDNS_R_OK);
	assert_int_equal(g_fake.udp_got, 1);
	assert_int_equal(g_fake.tcp_got, 1);
	/* the very same signed message went over TCP */
	assert_int_equal(g_fake.tcp_len, g_fake.udp_len);
	assert_memory_equal(g_fake.tcp_req + 2, g_fake.udp_req, g_fake.udp_len);
	ddns_rfc2136_ops.close(p);
}

static void test_prov_tcp_forced_and_large(void **state)
{
	(void)state;
	void *p = fake_provider(F_ANSWER, true);
	struct ddns_update u;
	upd_init(&u, "tcp." ZONE, true);
	struct done_rec d, *dp = &d;
	do_send(p, &u, &d);
	run_until(&dp, 1, 3);
	assert_int_equal(d.res.cls, DDNS_R_OK);
	assert_int_equal(g_fake.udp_got, 0);
	assert_int_equal(g_fake.tcp_got, 1);
	ddns_rfc2136_ops.close(p);
	fake_stop(&g_fake);

	/* over 512 bytes: TCP even when UDP is configured */
	p = fake_provider(F_ANSWER, false);
	for (unsigned i = 0; i < 20; i++)
		u.srv[i] = (struct ddns_srv_rec){ &svcs[i % 2], (uint16_t)(10000 + i), 3600 };
	u.nsrv = 20;
	do_send(p, &u, &d);
	run_until(&dp, 1, 3);
	assert_int_equal(d.res.cls, DDNS_R_OK);
	assert_int_equal(g_fake.udp_got, 0);
	assert_int_equal(g_fake.tcp_got, 1);
	assert_true(g_fake.tcp_len > DNS_UDP_MAX);
	ddns_rfc2136_ops.close(p);
}

static void test_prov_several_in_flight(void **state)
{
	(void)state;
	void *p = fake_provider(F_ANSWER, false);
	struct ddns_update u;
	struct done_rec d[4], *dp[4];
	char names[4][32];
	for (int i = 0; i < 4; i++) {
		snprintf(names[i], sizeof(names[i]), "m%d." ZONE, i);
		upd_init(&u, names[i], true);
		do_send(p, &u, &d[i]);
		dp[i] = &d[i];
	}
	run_until(dp, 4, 3);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(d[i].calls, 1);
		assert_int_equal(d[i].res.cls, DDNS_R_OK);
	}
	assert_int_equal(g_fake.udp_got, 4);
	ddns_rfc2136_ops.close(p);
}

static void test_prov_sync_failure_deferred(void **state)
{
	(void)state;
	void *p = fake_provider(F_ANSWER, false);
	struct ddns_update u;
	upd_init(&u, "host.elsewhere.test", true);
	struct done_rec d, *dp = &d;
	do_send(p, &u, &d);             /* asserts no call inside send() */
	run_until(&dp, 1, 1);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.res.cls, DDNS_R_PERM_NAME);
	assert_int_equal(g_fake.udp_got, 0);
	ddns_rfc2136_ops.close(p);
}

static void test_prov_close_in_flight(void **state)
{
	(void)state;
	void *p = fake_provider(F_SILENT, false);
	struct ddns_update u;
	struct done_rec d[3];
	upd_init(&u, "c1." ZONE, true);
	do_send(p, &u, &d[0]);
	upd_init(&u, "outside.test", true);   /* pending deferred failure */
	do_send(p, &u, &d[1]);
	ddns_rfc2136_ops.close(p);
	run_for(1.0);
	assert_int_equal(d[0].calls, 0);
	assert_int_equal(d[1].calls, 0);
}

static void test_prov_refused_port(void **state)
{
	(void)state;
	uint16_t port = free_port();
	for (int tcp = 0; tcp < 2; tcp++) {
		struct ddns_provider_conf c;
		conf_init(&c, port, SECRET256, "hmac-sha256");
		c.tcp = tcp;
		c.timeout_ms = 1500;
		void *p = open_ok(&c);
		struct ddns_update u;
		upd_init(&u, "r." ZONE, true);
		struct done_rec d, *dp = &d;
		double t0 = ev_time();
		do_send(p, &u, &d);
		run_until(&dp, 1, 3);
		assert_int_equal(d.calls, 1);
		assert_int_equal(d.res.cls, DDNS_R_TRANSIENT);
		/* loopback reports the closed port at once (ICMP / RST) */
		assert_string_equal(d.res.code, "ECONNREFUSED");
		assert_true(ev_time() - t0 < 1.5);
		ddns_rfc2136_ops.close(p);
	}
}

static void test_prov_open_checks(void **state)
{
	(void)state;
	struct ddns_provider_conf c;
	char err[256];
	conf_init(&c, 53, SECRET256, "hmac-sha256");
	assert_int_equal(chmod(c.key_file, 0640), 0);
	assert_null(ddns_rfc2136_ops.open(&c, g_loop, err, sizeof(err)));
	assert_non_null(strstr(err, "mode"));
	assert_null(strstr(err, SECRET256));
	assert_int_equal(chmod(c.key_file, 0600), 0);
	void *p = open_ok(&c);
	ddns_rfc2136_ops.close(p);

	static const char *const algs[] = { "hmac-md5", "hmac-sha1" };
	for (int i = 0; i < 2; i++) {
		conf_init(&c, 53, SECRET256, algs[i]);
		assert_null(ddns_rfc2136_ops.open(&c, g_loop, err, sizeof(err)));
		assert_non_null(strstr(err, "refused"));
	}
	conf_init(&c, 53, SECRET256, "hmac-sha256");
	snprintf(c.zone, sizeof(c.zone), "bad zone");
	assert_null(ddns_rfc2136_ops.open(&c, g_loop, err, sizeof(err)));
	conf_init(&c, 53, SECRET256, "hmac-sha256");
	snprintf(c.key_name, sizeof(c.key_name), "bad key");
	assert_null(ddns_rfc2136_ops.open(&c, g_loop, err, sizeof(err)));
	conf_init(&c, 53, "%%% not base64", "hmac-sha256");
	assert_null(ddns_rfc2136_ops.open(&c, g_loop, err, sizeof(err)));
	assert_null(strstr(err, "%%% not base64"));
	conf_init(&c, 53, SECRET256, "hmac-sha256");
	memset(&c.server, 0, sizeof(c.server));
	assert_null(ddns_rfc2136_ops.open(&c, g_loop, err, sizeof(err)));
	assert_int_equal(ddns_rfc2136_ops.type, DDNS_RFC2136);
	assert_int_equal(ddns_rfc2136_ops.flags, 0);
}

/* ---- a real server: knotd ---- */

#define KNOTD "/usr/sbin/knotd"

static struct {
	bool up;
	pid_t pid;
	uint16_t port;
	char dir[64];
	char secret[64];
} g_knot;

static void knot_kill(void)
{
	if (g_knot.pid > 0) {
		kill(g_knot.pid, SIGTERM);
		for (int i = 0; i < 50; i++) {
			if (waitpid(g_knot.pid, NULL, WNOHANG) == g_knot.pid) {
				g_knot.pid = 0;
				break;
			}
			usleep(100000);
		}
		if (g_knot.pid > 0) {
			kill(g_knot.pid, SIGKILL);
			waitpid(g_knot.pid, NULL, 0);
		}
		g_knot.pid = 0;
	}
	rm_tree(g_knot.dir);
	g_knot.dir[0] = '\0';
	g_knot.up = false;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static bool read_full(int fd, uint8_t *buf, size_t len)
{
	for (size_t off = 0; off < len;) {
		ssize_t n = read(fd, buf + off, len - off);
		if (n <= 0)
			return false;
		off += (size_t)n;
	}
	return true;
}

/* Sends one query with a plain blocking socket, UDP or TCP (RFC 1035
 * §4.2.2 framing); NULL on no answer. */
static ldns_pkt *query_via(const char *name, ldns_rr_type type, bool tcp)
{
	ldns_rdf *qn = ldns_dname_new_frm_str(name);
	ldns_pkt *q = ldns_pkt_query_new(qn, type, LDNS_RR_CLASS_IN, 0);
	ldns_pkt_set_random_id(q);
	uint8_t *wire = NULL;
	size_t len = 0;
	assert_int_equal(ldns_pkt2wire(&wire, q, &len), LDNS_STATUS_OK);
	int fd = socket(AF_INET, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
	struct timeval tv = { .tv_sec = 0, .tv_usec = 300000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(g_knot.port) };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	uint8_t buf[8192];
	size_t n = 0;
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0) {
		uint8_t hdr[2];
		p16(hdr, (unsigned)len);
		if (tcp && write(fd, hdr, 2) == 2 && write(fd, wire, len) == (ssize_t)len &&
		    read_full(fd, hdr, 2) && g16(hdr) <= sizeof(buf) && read_full(fd, buf, g16(hdr)))
			n = g16(hdr);
		if (!tcp && send(fd, wire, len, 0) == (ssize_t)len) {
			ssize_t r = recv(fd, buf, sizeof(buf), 0);
			n = r > 0 ? (size_t)r : 0;
		}
	}
	close(fd);
	free(wire);
	ldns_pkt *a = NULL;
	if (n && ldns_wire2pkt(&a, buf, n) != LDNS_STATUS_OK)
		a = NULL;
	if (a && ldns_pkt_id(a) != ldns_pkt_id(q)) {
		ldns_pkt_free(a);
		a = NULL;
	}
	ldns_pkt_free(q);
	return a;
}

/* UDP first, TCP when truncated (32 SRV records do not fit 512 bytes). */
static ldns_pkt *knot_query(const char *name, ldns_rr_type type)
{
	ldns_pkt *a = query_via(name, type, false);
	if (a && ldns_pkt_tc(a)) {
		ldns_pkt_free(a);
		a = query_via(name, type, true);
	}
	return a;
}

static void knot_config(void)
{
	char path[128], text[2048];
	snprintf(path, sizeof(path), "%s/zones/" ZONE ".zone", g_knot.dir);
	write_file(path, "$TTL 300\n"
			 "@ SOA ns." ZONE ". hostmaster." ZONE ". 1 3600 900 604800 60\n"
			 "@ NS ns." ZONE ".\n"
			 "ns A 127.0.0.1\n");
	snprintf(text, sizeof(text),
		 "server:\n    rundir: \"%s/run\"\n    listen: 127.0.0.1@%u\n"
		 "database:\n    storage: \"%s/db\"\n"
		 "key:\n  - id: " KEYNAME "\n    algorithm: hmac-sha256\n    secret: %s\n"
		 "acl:\n  - id: upd\n    key: " KEYNAME "\n    action: update\n"
		 "template:\n  - id: default\n    storage: \"%s/zones\"\n    zonefile-sync: -1\n"
		 "zone:\n  - domain: " ZONE ".\n    file: " ZONE ".zone\n    acl: upd\n"
		 "log:\n  - target: stderr\n    any: info\n",
		 g_knot.dir, g_knot.port, g_knot.dir, g_knot.secret, g_knot.dir);
	snprintf(path, sizeof(path), "%s/knot.conf", g_knot.dir);
	write_file(path, text);
}

static void knot_spawn(const char *knotd)
{
	char conf[128], logf[128];
	snprintf(conf, sizeof(conf), "%s/knot.conf", g_knot.dir);
	snprintf(logf, sizeof(logf), "%s/knotd.log", g_knot.dir);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(knotd, "knotd", "-c", conf, (char *)NULL);
		_exit(127);
	}
	g_knot.pid = pid;
}

static int knot_teardown(void **state);

static int knot_setup(void **state)
{
	if (prov_setup(state))
		return -1;
	/* PCPD_TEST_KNOTD overrides the path (e.g. to exercise the skip) */
	const char *knotd = getenv("PCPD_TEST_KNOTD") ? getenv("PCPD_TEST_KNOTD") : KNOTD;
	if (access(knotd, X_OK) != 0) {
		printf("# %s not found (Debian package knot): real-server tests skipped\n", knotd);
		return 0;
	}
	snprintf(g_knot.dir, sizeof(g_knot.dir), "/tmp/pcpd-knot-XXXXXX");
	if (!mkdtemp(g_knot.dir)) {
		g_knot.dir[0] = '\0';
		knot_teardown(state);
		return -1;
	}
	atexit(knot_kill);
	char sub[128];
	static const char *const subs[] = { "run", "db", "zones" };
	for (int i = 0; i < 3; i++) {
		snprintf(sub, sizeof(sub), "%s/%s", g_knot.dir, subs[i]);
		mkdir(sub, 0700);
	}
	uint8_t raw[32];
	int fd = open("/dev/urandom", O_RDONLY);
	bool got = fd >= 0 && read(fd, raw, sizeof(raw)) == (ssize_t)sizeof(raw);
	if (fd >= 0)
		close(fd);
	if (!got) {
		knot_teardown(state);
		return -1;
	}
	EVP_EncodeBlock((unsigned char *)g_knot.secret, raw, sizeof(raw));
	g_knot.port = free_port();
	knot_config();
	knot_spawn(knotd);
	for (int i = 0; i < 100 && !g_knot.up; i++) {
		ldns_pkt *a = knot_query(ZONE, LDNS_RR_TYPE_SOA);
		if (a && ldns_pkt_get_rcode(a) == LDNS_RCODE_NOERROR && ldns_pkt_ancount(a) == 1)
			g_knot.up = true;
		ldns_pkt_free(a);
		if (waitpid(g_knot.pid, NULL, WNOHANG) == g_knot.pid) {
			g_knot.pid = 0;
			break;
		}
		if (!g_knot.up)
			usleep(50000);
	}
	if (!g_knot.up) {
		printf("# knotd did not come up; its log:\n");
		snprintf(sub, sizeof(sub), "%s/knotd.log", g_knot.dir);
		FILE *f = fopen(sub, "r");
		char line[256];
		while (f && fgets(line, sizeof(line), f))
			printf("#   %s", line);
		if (f)
			fclose(f);
		knot_teardown(state);    /* cmocka skips the group teardown when setup fails */
		return -1;
	}
	return 0;
}

static int knot_teardown(void **state)
{
	knot_kill();
	return prov_teardown(state);
}

static void need_knot(void)
{
	if (!g_knot.up) {
		printf("# skipped: knotd not available\n");
		skip();
	}
}

static void *knot_provider(const char *secret, const char *keyname, bool tcp)
{
	struct ddns_provider_conf c;
	conf_init(&c, g_knot.port, secret ? secret : g_knot.secret, "hmac-sha256");
	if (keyname)
		snprintf(c.key_name, sizeof(c.key_name), "%s", keyname);
	c.tcp = tcp;
	c.timeout_ms = 3000;
	return open_ok(&c);
}

static struct ddns_result knot_send(void *p, const struct ddns_update *u)
{
	struct done_rec d, *dp = &d;
	do_send(p, u, &d);
	run_until(&dp, 1, 5);
	assert_int_equal(d.calls, 1);
	return d.res;
}

static unsigned answers(const char *name, ldns_rr_type type, ldns_pkt_rcode *rc)
{
	ldns_pkt *a = knot_query(name, type);
	assert_non_null(a);
	*rc = ldns_pkt_get_rcode(a);
	unsigned n = 0;
	for (size_t i = 0; i < ldns_rr_list_rr_count(ldns_pkt_answer(a)); i++)
		n += ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_answer(a), i)) == type;
	ldns_pkt_free(a);
	return n;
}

static char *first_rdata(const char *name, ldns_rr_type type)
{
	ldns_pkt *a = knot_query(name, type);
	assert_non_null(a);
	char *s = NULL;
	for (size_t i = 0; i < ldns_rr_list_rr_count(ldns_pkt_answer(a)) && !s; i++) {
		const ldns_rr *rr = ldns_rr_list_rr(ldns_pkt_answer(a), i);
		if (ldns_rr_get_type(rr) != type)
			continue;
		ldns_buffer *b = ldns_buffer_new(256);
		for (size_t j = 0; j < ldns_rr_rd_count(rr); j++) {
			if (j)
				ldns_buffer_printf(b, " ");
			ldns_rdf2buffer_str(b, ldns_rr_rdf(rr, j));
		}
		s = ldns_buffer_export2str(b);
		ldns_buffer_free(b);
	}
	ldns_pkt_free(a);
	return s;
}

static void expect_rdata(const char *name, ldns_rr_type type, const char *want)
{
	char *s = first_rdata(name, type);
	assert_non_null(s);
	assert_string_equal(s, want);
	free(s);
}

static void publish_and_check(bool tcp, const char *name)
{
	void *p = knot_provider(NULL, NULL, tcp);
	struct ddns_update u;
	upd_init(&u, name, true);
	u.nservices = 3;
	u.srv[2] = (struct ddns_srv_rec){ &svcs[2], 8081, 3600 };
	u.nsrv = 3;
	struct ddns_result r = knot_send(p, &u);
	assert_int_equal(r.cls, DDNS_R_OK);
	assert_string_equal(r.code, "NOERROR");

	char owner[128], target[128];
	ldns_pkt_rcode rc;
	expect_rdata(name, LDNS_RR_TYPE_A, "192.0.2.10");
	snprintf(owner, sizeof(owner), "_http._tcp.%s", name);
	snprintf(target, sizeof(target), "%s.", name);
	assert_int_equal(answers(owner, LDNS_RR_TYPE_SRV, &rc), 2);
	snprintf(owner, sizeof(owner), "_ssh._tcp.%s", name);
	char want[160];
	snprintf(want, sizeof(want), "0 0 2222 %s", target);
	expect_rdata(owner, LDNS_RR_TYPE_SRV, want);
	expect_rdata(name, LDNS_RR_TYPE_TXT, "\"pcpd subscriber 1\"");

	/* a changed state replaces the old one: no leftovers */
	u.addr.s_addr = htonl(0xc0000263);        /* 192.0.2.99 */
	u.nsrv = 1;
	u.txt = "";                               /* ours, now removed */
	r = knot_send(p, &u);
	assert_int_equal(r.cls, DDNS_R_OK);
	expect_rdata(name, LDNS_RR_TYPE_A, "192.0.2.99");
	snprintf(owner, sizeof(owner), "_http._tcp.%s", name);
	assert_int_equal(answers(owner, LDNS_RR_TYPE_SRV, &rc), 1);
	snprintf(owner, sizeof(owner), "_ssh._tcp.%s", name);
	assert_int_equal(answers(owner, LDNS_RR_TYPE_SRV, &rc), 0);
	assert_int_equal(answers(name, LDNS_RR_TYPE_TXT, &rc), 0);

	/* the deleting update removes everything */
	upd_init(&u, name, false);
	r = knot_send(p, &u);
	assert_int_equal(r.cls, DDNS_R_OK);
	assert_int_equal(answers(name, LDNS_RR_TYPE_A, &rc), 0);
	assert_int_equal(rc, LDNS_RCODE_NXDOMAIN);
	snprintf(owner, sizeof(owner), "_http._tcp.%s", name);
	assert_int_equal(answers(owner, LDNS_RR_TYPE_SRV, &rc), 0);
	assert_int_equal(answers(name, LDNS_RR_TYPE_TXT, &rc), 0);
	ddns_rfc2136_ops.close(p);
}

static void test_knot_udp(void **state)
{
	(void)state;
	need_knot();
	publish_and_check(false, "udp1." ZONE);
}

static void test_knot_tcp(void **state)
{
	(void)state;
	need_knot();
	publish_and_check(true, "tcp1." ZONE);
}

static void test_knot_large_and_parallel(void **state)
{
	(void)state;
	need_knot();
	void *p = knot_provider(NULL, NULL, false);
	struct ddns_update u[3];
	struct done_rec d[3], *dp[3];
	char names[3][32];
	for (int i = 0; i < 3; i++) {
		snprintf(names[i], sizeof(names[i]), "par%d." ZONE, i);
		upd_init(&u[i], names[i], true);
	}
	/* 32 SRV records: over 512 bytes, goes over TCP */
	for (unsigned i = 0; i < DDNS_MAX_SRV_RECS; i++)
		u[0].srv[i] = (struct ddns_srv_rec){ &svcs[0], (uint16_t)(20000 + i), 3600 };
	u[0].nsrv = DDNS_MAX_SRV_RECS;
	for (int i = 0; i < 3; i++) {
		do_send(p, &u[i], &d[i]);
		dp[i] = &d[i];
	}
	run_until(dp, 3, 5);
	for (int i = 0; i < 3; i++)
		assert_int_equal(d[i].res.cls, DDNS_R_OK);
	ldns_pkt_rcode rc;
	assert_int_equal(answers("_http._tcp.par0." ZONE, LDNS_RR_TYPE_SRV, &rc), DDNS_MAX_SRV_RECS);
	expect_rdata("par2." ZONE, LDNS_RR_TYPE_A, "192.0.2.10");
	ddns_rfc2136_ops.close(p);
}

static void test_knot_wrong_secret(void **state)
{
	(void)state;
	need_knot();
	for (int tcp = 0; tcp < 2; tcp++) {
		void *p = knot_provider(SECRET_OTHER, NULL, tcp);
		struct ddns_update u;
		upd_init(&u, "ws." ZONE, true);
		struct ddns_result r = knot_send(p, &u);
		/* knot: NOTAUTH, TSIG error BADSIG, unsigned (MAC size 0) */
		assert_int_equal(r.cls, DDNS_R_PERM_PROVIDER);
		assert_string_equal(r.code, "BADSIG");
		assert_null(strstr(r.msg, SECRET_OTHER));
		ddns_rfc2136_ops.close(p);
	}
	ldns_pkt_rcode rc;
	assert_int_equal(answers("ws." ZONE, LDNS_RR_TYPE_A, &rc), 0);
}

static void test_knot_unknown_key(void **state)
{
	(void)state;
	need_knot();
	void *p = knot_provider(NULL, "unknown-key", false);
	struct ddns_update u;
	upd_init(&u, "uk." ZONE, true);
	struct ddns_result r = knot_send(p, &u);
	/* knot: NOTAUTH, TSIG error BADKEY, unsigned */
	assert_int_equal(r.cls, DDNS_R_PERM_PROVIDER);
	assert_string_equal(r.code, "BADKEY");
	ddns_rfc2136_ops.close(p);
}

static void test_knot_outside_zone(void **state)
{
	(void)state;
	need_knot();
	void *p = knot_provider(NULL, NULL, false);
	struct ddns_update u;
	upd_init(&u, "host.example.org", true);
	struct ddns_result r = knot_send(p, &u);
	assert_int_equal(r.cls, DDNS_R_PERM_NAME);
	assert_string_equal(r.code, "bad-name");
	ddns_rfc2136_ops.close(p);

	/* a zone the server does not serve: knot answers NOTAUTH */
	struct ddns_provider_conf c;
	conf_init(&c, g_knot.port, g_knot.secret, "hmac-sha256");
	snprintf(c.zone, sizeof(c.zone), "other.test");
	c.timeout_ms = 3000;
	p = open_ok(&c);
	upd_init(&u, "h.other.test", true);
	r = knot_send(p, &u);
	assert_int_equal(r.cls, DDNS_R_PERM_PROVIDER);
	assert_string_equal(r.code, "NOTAUTH");
	ddns_rfc2136_ops.close(p);
}

static void test_knot_nothing_listens(void **state)
{
	(void)state;
	need_knot();
	uint16_t port = free_port();
	for (int tcp = 0; tcp < 2; tcp++) {
		struct ddns_provider_conf c;
		conf_init(&c, port, g_knot.secret, "hmac-sha256");
		c.tcp = tcp;
		c.timeout_ms = 1000;
		void *p = open_ok(&c);
		struct ddns_update u;
		upd_init(&u, "down." ZONE, true);
		double t0 = ev_time();
		struct ddns_result r = knot_send(p, &u);
		assert_int_equal(r.cls, DDNS_R_TRANSIENT);
		assert_true(ev_time() - t0 <= 1.2);
		ddns_rfc2136_ops.close(p);
	}
}

/* A request signed 1000 s in the past, built by hand: knot must answer
 * NOTAUTH/BADTIME, signed, with its clock in Other Data. */
static void test_knot_badtime(void **state)
{
	(void)state;
	need_knot();
	struct dns_key k = { KEYNAME, "hmac-sha256", "" };
	snprintf(k.secret_b64, sizeof(k.secret_b64), "%s", g_knot.secret);
	struct ddns_update u;
	upd_init(&u, "bt." ZONE, true);
	struct dns_request req;
	char err[160];
	assert_int_equal(dns_update_build(&u, ZONE, &k, &req, err, sizeof(err)), DNS_OK);
	struct tsig_view tv;
	assert_true(parse_tsig(req.wire, req.len, &tv));
	uint8_t msg[2048];
	memcpy(msg, req.wire, tv.start);
	p16(msg + 10, 0);
	uint64_t stale = (uint64_t)time(NULL) - 1000;
	uint8_t mac[64];
	unsigned ml = tsig_hmac(&k, NULL, 0, msg, tv.start, stale, 300, 0, NULL, 0, mac);
	size_t len = tv.start + put_tsig(msg + tv.start, &k, stale, mac, (uint16_t)ml, req.id, 0, NULL, 0);
	p16(msg + 10, 1);
	memcpy(req.mac, mac, ml);
	req.time_signed = stale;

	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct timeval to = { .tv_sec = 2 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &to, sizeof(to));
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(g_knot.port) };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(sendto(fd, msg, len, 0, (struct sockaddr *)&sin, sizeof(sin)), (ssize_t)len);
	uint8_t buf[2048];
	ssize_t n = recv(fd, buf, sizeof(buf), 0);
	close(fd);
	assert_true(n > 0);
	struct tsig_view rv;
	assert_true(parse_tsig(buf, (size_t)n, &rv));
	assert_int_equal(buf[3] & 0x0f, 9);
	assert_int_equal(rv.error, 18);
	assert_int_equal(rv.olen, 6);
	assert_true(rv.maclen > 0);
	struct ddns_result res;
	assert_int_equal(dns_answer_classify(&req, buf, (size_t)n, time(NULL), &res), DNS_ANS_FINAL);
	assert_int_equal(res.cls, DDNS_R_PERM_PROVIDER);
	assert_string_equal(res.code, "BADTIME");
	/* same host, same clock: the skew the server reports is about 0 */
	long long skew = 99;
	const char *s = strstr(res.msg, "skew ");
	assert_non_null(s);
	assert_int_equal(sscanf(s, "skew %lld", &skew), 1);
	assert_true(llabs(skew) <= 2);
	dns_request_free(&req);
}

int main(void)
{
	const struct CMUnitTest codec[] = {
		cmocka_unit_test(test_build_sections),
		cmocka_unit_test(test_build_delete_only),
		cmocka_unit_test(test_build_variants),
		cmocka_unit_test(test_build_names),
		cmocka_unit_test(test_key_check),
		cmocka_unit_test(test_tsig_kat_sha256),
		cmocka_unit_test(test_tsig_kat_sha512),
		cmocka_unit_test(test_rfc4231_case2),
		cmocka_unit_test(test_classify_rcodes),
		cmocka_unit_test(test_classify_tsig_errors),
		cmocka_unit_test(test_classify_not_ours),
	};
	const struct CMUnitTest provider[] = {
		cmocka_unit_test_teardown(test_prov_udp_noise, fake_teardown),
		cmocka_unit_test_teardown(test_prov_bogus_only, fake_teardown),
		cmocka_unit_test_teardown(test_prov_timeout_retransmit, fake_teardown),
		cmocka_unit_test_teardown(test_prov_tc_to_tcp, fake_teardown),
		cmocka_unit_test_teardown(test_prov_tcp_forced_and_large, fake_teardown),
		cmocka_unit_test_teardown(test_prov_several_in_flight, fake_teardown),
		cmocka_unit_test_teardown(test_prov_sync_failure_deferred, fake_teardown),
		cmocka_unit_test_teardown(test_prov_close_in_flight, fake_teardown),
		cmocka_unit_test(test_prov_refused_port),
		cmocka_unit_test(test_prov_open_checks),
	};
	const struct CMUnitTest knot[] = {
		cmocka_unit_test(test_knot_udp),
		cmocka_unit_test(test_knot_tcp),
		cmocka_unit_test(test_knot_large_and_parallel),
		cmocka_unit_test(test_knot_wrong_secret),
		cmocka_unit_test(test_knot_unknown_key),
		cmocka_unit_test(test_knot_outside_zone),
		cmocka_unit_test(test_knot_nothing_listens),
		cmocka_unit_test(test_knot_badtime),
	};
	int fails = cmocka_run_group_tests_name("ddns_dns_codec", codec, NULL, NULL);
	fails += cmocka_run_group_tests_name("ddns_dns_provider", provider, prov_setup, prov_teardown);
	fails += cmocka_run_group_tests_name("ddns_dns_knot", knot, knot_setup, knot_teardown);
	return fails ? 1 : 0;
}
