/* RFC 2136 UPDATE + RFC 8945 TSIG codec over ldns. ldns builds, signs,
 * parses and verifies; this file decides what goes into the message and
 * what an answer means. It does no I/O. */
#include "ddns-hook/dns_msg.h"

#include <ctype.h>
#include <ldns/ldns.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TSIG_BADSIG 16
#define TSIG_BADKEY 17
#define TSIG_BADTIME 18
#define TSIG_BADTRUNC 22

static const char *const rcode_names[] = {
	"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
	"YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE",
};

/* RFC 8945 §3 and the IANA TSIG error registry, 16..22 */
static const char *const tsig_err_names[] = {
	"BADSIG", "BADKEY", "BADTIME", "BADMODE", "BADNAME", "BADALG", "BADTRUNC",
};

const char *dns_rcode_str(unsigned rcode)
{
	if (rcode < sizeof(rcode_names) / sizeof(rcode_names[0]))
		return rcode_names[rcode];
	if (rcode >= 16 && rcode - 16 < sizeof(tsig_err_names) / sizeof(tsig_err_names[0]))
		return tsig_err_names[rcode - 16];
	return NULL;
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint64_t rd48(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 6; i++)
		v = v << 8 | p[i];
	return v;
}

/* ---- names and keys ---- */

bool dns_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n && name[n - 1] == '.')
		n--;
	if (!n || n > 253)
		return false;
	size_t lab = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '.') {
			if (!lab)
				return false;
			lab = 0;
			continue;
		}
		/* ldns would read '\\', spaces or ';' as presentation syntax: keep
		 * to what hostnames and service labels use */
		if (!isalnum(c) && c != '-' && c != '_')
			return false;
		if (++lab > 63)
			return false;
	}
	return lab > 0;
}

static ldns_rdf *dname(const char *s)
{
	return dns_name_ok(s) ? ldns_dname_new_frm_str(s) : NULL;
}

/* The algorithm as a wire name, or NULL when refused. MD5 and SHA-1 are
 * refused on purpose (RFC 8945 §6: MD5 MUST NOT be used, SHA-1 NOT
 * RECOMMENDED); SHA-384 is unreachable in ldns 1.8.3. */
static const char *alg_name(const char *alg)
{
	if (!strcasecmp(alg, "hmac-sha256") || !strcasecmp(alg, "hmac-sha256."))
		return "hmac-sha256.";
	if (!strcasecmp(alg, "hmac-sha512") || !strcasecmp(alg, "hmac-sha512."))
		return "hmac-sha512.";
	return NULL;
}

static bool secret_ok(const char *b64)
{
	size_t n = strnlen(b64, DNS_SECRET_B64_MAX);
	if (!n || n == DNS_SECRET_B64_MAX)
		return false;
	ldns_rdf *raw = NULL;
	if (ldns_str2rdf_b64(&raw, b64) != LDNS_STATUS_OK || !raw)
		return false;
	bool ok = ldns_rdf_size(raw) > 0;
	explicit_bzero(ldns_rdf_data(raw), ldns_rdf_size(raw));
	ldns_rdf_deep_free(raw);
	return ok;
}

int dns_key_check(const struct dns_key *k, char *err, size_t errlen)
{
	if (!alg_name(k->algorithm)) {
		snprintf(err, errlen, "TSIG algorithm \"%.15s\" refused: use hmac-sha256 or hmac-sha512",
			 k->algorithm);
		return DNS_E_KEY;
	}
	if (!dns_name_ok(k->name)) {
		snprintf(err, errlen, "TSIG key name \"%.64s\" is not a valid DNS name", k->name);
		return DNS_E_KEY;
	}
	if (!secret_ok(k->secret_b64)) {
		snprintf(err, errlen, "TSIG secret of key %.64s is empty, too long or not base64", k->name);
		return DNS_E_KEY;
	}
	return DNS_OK;
}

/* ---- building ---- */

static ldns_rr *rr_new(const ldns_rdf *owner, ldns_rr_type type, ldns_rr_class cls, uint32_t ttl)
{
	ldns_rr *rr = ldns_rr_new();
	ldns_rdf *o = ldns_rdf_clone(owner);
	if (!rr || !o) {
		ldns_rr_free(rr);
		ldns_rdf_deep_free(o);
		return NULL;
	}
	ldns_rr_set_owner(rr, o);
	ldns_rr_set_type(rr, type);
	ldns_rr_set_class(rr, cls);
	ldns_rr_set_ttl(rr, ttl);
	return rr;
}

/* Appends f to rr; on failure frees both so callers need one check. */
static ldns_rr *rr_push(ldns_rr *rr, ldns_rdf *f)
{
	if (rr && f && ldns_rr_push_rdf(rr, f))
		return rr;
	ldns_rr_free(rr);
	ldns_rdf_deep_free(f);
	return NULL;
}

static bool list_add(ldns_rr_list *l, ldns_rr *rr)
{
	if (rr && ldns_rr_list_push_rr(l, rr))
		return true;
	ldns_rr_free(rr);
	return false;
}

/* RFC 2136 §2.5.2: delete an RRset is CLASS ANY, TTL 0, no RDATA */
static bool add_delete(ldns_rr_list *l, const ldns_rdf *owner, ldns_rr_type type)
{
	return list_add(l, rr_new(owner, type, LDNS_RR_CLASS_ANY, 0));
}

static bool add_a(ldns_rr_list *l, const ldns_rdf *owner, const struct ddns_update *u)
{
	ldns_rr *rr = rr_new(owner, LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, u->ttl);
	rr = rr_push(rr, ldns_rdf_new_frm_data(LDNS_RDF_TYPE_A, 4, &u->addr.s_addr));
	return list_add(l, rr);
}

/* RFC 2782: priority 0, weight 0 (nothing to choose between), target is
 * the name itself, which carries the A record. */
static bool add_srv(ldns_rr_list *l, const ldns_rdf *sowner, const ldns_rdf *target, uint32_t ttl,
		    uint16_t port)
{
	ldns_rr *rr = rr_new(sowner, LDNS_RR_TYPE_SRV, LDNS_RR_CLASS_IN, ttl);
	rr = rr_push(rr, ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, 0));
	rr = rr_push(rr, ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, 0));
	rr = rr_push(rr, ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, port));
	rr = rr_push(rr, ldns_rdf_clone(target));
	return list_add(l, rr);
}

/* TXT character-strings hold 255 octets each: longer text is split. */
static bool add_txt(ldns_rr_list *l, const ldns_rdf *owner, const char *txt, uint32_t ttl)
{
	ldns_rr *rr = rr_new(owner, LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_IN, ttl);
	size_t n = strlen(txt);
	for (size_t off = 0; rr && off < n; off += 255) {
		uint8_t buf[256];
		size_t k = n - off > 255 ? 255 : n - off;
		buf[0] = (uint8_t)k;
		memcpy(buf + 1, txt + off, k);
		rr = rr_push(rr, ldns_rdf_new_frm_data(LDNS_RDF_TYPE_STR, k + 1, buf));
	}
	return list_add(l, rr);
}

static bool srv_of(const struct ddns_srv_rec *r, const char *service)
{
	return r->conf && !strcasecmp(r->conf->service, service);
}

/* Two configured services may share a label (same service, two internal
 * ports): one delete for the owner, then all its records, or the second
 * delete would remove the first one's adds. */
static bool service_seen(const struct ddns_update *u, unsigned j)
{
	for (unsigned i = 0; i < j; i++)
		if (!strcasecmp(u->services[i].service, u->services[j].service))
			return true;
	return false;
}

static int add_service(ldns_rr_list *l, const ldns_rdf *owner, const struct ddns_update *u,
		       const char *service, char *err, size_t errlen)
{
	char buf[2 * DDNS_NAME_MAX + 2];
	snprintf(buf, sizeof(buf), "%s.%s", service, u->name);
	ldns_rdf *sowner = dname(buf);
	if (!sowner) {
		snprintf(err, errlen, "SRV owner %.64s.%.128s is not a valid DNS name", service, u->name);
		return DNS_E_NAME;
	}
	bool ok = add_delete(l, sowner, LDNS_RR_TYPE_SRV);
	unsigned n = u->nsrv < DDNS_MAX_SRV_RECS ? u->nsrv : DDNS_MAX_SRV_RECS;
	for (unsigned i = 0; ok && u->has_addr && i < n; i++)
		if (srv_of(&u->srv[i], service))
			ok = add_srv(l, sowner, owner, u->ttl, u->srv[i].port);
	ldns_rdf_deep_free(sowner);
	return ok ? DNS_OK : DNS_E_NOMEM;
}

/* The update section: A, then each service's SRV set, then TXT; every set
 * deleted first, so the message states the whole name atomically. */
static int fill_updates(ldns_rr_list *l, const ldns_rdf *owner, const struct ddns_update *u,
			char *err, size_t errlen)
{
	/* a binding without A leaves the name's A records to someone else */
	if (u->a && !add_delete(l, owner, LDNS_RR_TYPE_A))
		return DNS_E_NOMEM;
	if (u->has_addr && u->a && !add_a(l, owner, u))
		return DNS_E_NOMEM;
	for (unsigned j = 0; j < u->nservices; j++) {
		if (service_seen(u, j))
			continue;
		int rc = add_service(l, owner, u, u->services[j].service, err, errlen);
		if (rc)
			return rc;
	}
	if (u->txt && !add_delete(l, owner, LDNS_RR_TYPE_TXT))
		return DNS_E_NOMEM;
	if (u->has_addr && u->txt && u->txt[0] && !add_txt(l, owner, u->txt, u->ttl))
		return DNS_E_NOMEM;
	return DNS_OK;
}

static bool in_zone(const ldns_rdf *name, const ldns_rdf *zone)
{
	return !ldns_dname_compare(name, zone) || ldns_dname_is_subdomain(name, zone);
}

/* Keeps what verifying the answer needs: the request MAC (RFC 8945 §5.1,
 * "the client MUST store the MAC") and the time signed. */
static int keep_request(ldns_pkt *pkt, const struct dns_key *key, struct dns_request *req)
{
	const ldns_rr *t = ldns_pkt_tsig(pkt);
	const ldns_rdf *mac = t ? ldns_rr_rdf(t, 3) : NULL;
	const ldns_rdf *ts = t ? ldns_rr_rdf(t, 1) : NULL;
	if (!mac || !ts || ldns_rdf_size(ts) != 6 || ldns_rdf_size(mac) < 2 ||
	    ldns_rdf_size(mac) - 2 > DNS_MAC_MAX)
		return DNS_E_NOMEM;
	req->maclen = (uint16_t)(ldns_rdf_size(mac) - 2);
	memcpy(req->mac, ldns_rdf_data(mac) + 2, req->maclen);
	req->time_signed = rd48(ldns_rdf_data(ts));
	req->id = ldns_pkt_id(pkt);
	req->key = key;
	if (ldns_pkt2wire(&req->wire, pkt, &req->len) != LDNS_STATUS_OK)
		return DNS_E_NOMEM;
	return DNS_OK;
}

static int sign_and_keep(ldns_pkt *pkt, const struct dns_key *key, struct dns_request *req,
			 char *err, size_t errlen)
{
	/* RFC 2136 §2.2 calls these bits Z; ldns sets RD on every query */
	ldns_pkt_set_rd(pkt, false);
	ldns_pkt_set_random_id(pkt);
	ldns_status st = ldns_pkt_tsig_sign(pkt, key->name, key->secret_b64, DNS_TSIG_FUDGE,
					    alg_name(key->algorithm), NULL);
	if (st != LDNS_STATUS_OK) {
		snprintf(err, errlen, "TSIG signing failed: %s", ldns_get_errorstr_by_id(st));
		return st == LDNS_STATUS_MEM_ERR ? DNS_E_NOMEM : DNS_E_KEY;
	}
	int rc = keep_request(pkt, key, req);
	if (rc)
		snprintf(err, errlen, "cannot encode the signed UPDATE");
	return rc;
}

int dns_update_build(const struct ddns_update *u, const char *zone, const struct dns_key *key,
		     struct dns_request *req, char *err, size_t errlen)
{
	memset(req, 0, sizeof(*req));
	if (errlen)
		err[0] = '\0';
	int rc = dns_key_check(key, err, errlen);
	if (rc)
		return rc;
	ldns_rdf *zname = dname(zone);
	ldns_rdf *owner = u->name ? dname(u->name) : NULL;
	ldns_rr_list *up = ldns_rr_list_new();
	ldns_pkt *pkt = NULL;
	if (!zname || !owner) {
		snprintf(err, errlen, "name \"%.100s\" or zone \"%.64s\" is not a valid DNS name",
			 u->name ? u->name : "", zone);
		rc = DNS_E_NAME;
	} else if (!in_zone(owner, zname)) {
		snprintf(err, errlen, "%.100s is not in zone %.64s", u->name, zone);
		rc = DNS_E_NAME;
	} else if (!up) {
		rc = DNS_E_NOMEM;
	} else {
		rc = fill_updates(up, owner, u, err, errlen);
	}
	if (!rc) {
		pkt = ldns_update_pkt_new(zname, LDNS_RR_CLASS_IN, NULL, up, NULL);
		zname = NULL;   /* the packet owns it now */
		rc = pkt ? sign_and_keep(pkt, key, req, err, errlen) : DNS_E_NOMEM;
	}
	if (rc == DNS_E_NOMEM && errlen && !err[0])
		snprintf(err, errlen, "out of memory building the UPDATE");
	ldns_pkt_free(pkt);
	ldns_rr_list_deep_free(up);
	ldns_rdf_deep_free(owner);
	ldns_rdf_deep_free(zname);
	if (rc)
		dns_request_free(req);
	return rc;
}

void dns_request_free(struct dns_request *req)
{
	free(req->wire);
	memset(req, 0, sizeof(*req));
}

/* ---- answers ---- */

/* Skips a possibly compressed name; false when it runs off the end. */
static bool skip_name(const uint8_t *w, size_t len, size_t *pos)
{
	while (*pos < len) {
		uint8_t l = w[*pos];
		if ((l & 0xc0) == 0xc0) {
			*pos += 2;
			return *pos <= len;
		}
		if (l & 0xc0)
			return false;
		*pos += 1u + l;
		if (!l)
			return true;
	}
	return false;
}

/* RFC 8945 §5.2: at most one TSIG, and only as the very last record.
 * Checked on the raw wire: ldns keeps the last TSIG it sees, drops
 * earlier ones without freeing them and digests as if the TSIG were
 * last. */
static bool tsig_placement_ok(const uint8_t *w, size_t len)
{
	unsigned qd = rd16(w + 4);
	unsigned rrs = (unsigned)rd16(w + 6) + rd16(w + 8) + rd16(w + 10);
	size_t pos = 12;
	for (unsigned i = 0; i < qd; i++) {
		if (!skip_name(w, len, &pos) || (pos += 4) > len)
			return false;
	}
	for (unsigned i = 0; i < rrs; i++) {
		if (!skip_name(w, len, &pos) || pos + 10 > len)
			return false;
		uint16_t type = rd16(w + pos);
		pos += 10u + rd16(w + pos + 8);
		if (pos > len)
			return false;
		if (type == LDNS_RR_TYPE_TSIG && (i + 1 != rrs || !rd16(w + 10)))
			return false;
	}
	return true;
}

static uint16_t rdf_u16(const ldns_rdf *f)
{
	return f && ldns_rdf_size(f) >= 2 ? rd16(ldns_rdf_data(f)) : 0;
}

static void set_res(struct ddns_result *res, enum ddns_rclass cls, const char *code, const char *fmt,
		    ...) __attribute__((format(printf, 4, 5)));

static void set_res(struct ddns_result *res, enum ddns_rclass cls, const char *code, const char *fmt,
		    ...)
{
	memset(res, 0, sizeof(*res));
	res->cls = cls;
	snprintf(res->code, sizeof(res->code), "%s", code);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(res->msg, sizeof(res->msg), fmt, ap);
	va_end(ap);
}

static void rcode_word(unsigned rcode, char *buf, size_t len)
{
	const char *s = dns_rcode_str(rcode);
	if (s)
		snprintf(buf, len, "%s", s);
	else
		snprintf(buf, len, "RCODE%u", rcode);
}

/* RFC 8945 §5.4: an answer that is unsigned or does not verify may be
 * spoofed. It is reported (and counted by the hook), never believed. */
static enum dns_answer bogus(struct ddns_result *res, unsigned rcode, const char *why)
{
	char rc[16];
	rcode_word(rcode, rc, sizeof(rc));
	set_res(res, DDNS_R_TRANSIENT, "BADSIG-REPLY", "answer (%s) %s; not accepted, could be spoofed",
		rc, why);
	return DNS_ANS_BOGUS;
}

static bool tsig_is_ours(const ldns_rr *t, const struct dns_key *k)
{
	ldns_rdf *kn = ldns_dname_new_frm_str(k->name);
	ldns_rdf *an = ldns_dname_new_frm_str(alg_name(k->algorithm));
	bool ok = kn && an && !ldns_dname_compare(ldns_rr_owner(t), kn) &&
		  ldns_rdf_get_type(ldns_rr_rdf(t, 0)) == LDNS_RDF_TYPE_DNAME &&
		  !ldns_dname_compare(ldns_rr_rdf(t, 0), an);
	ldns_rdf_deep_free(kn);
	ldns_rdf_deep_free(an);
	return ok;
}

/* The response MAC covers our request MAC (RFC 8945 §4.3.1), which binds
 * the answer to this very request and makes a replayed answer fail. */
static bool mac_verifies(const struct dns_request *req, ldns_pkt *pkt, const uint8_t *wire, size_t len)
{
	uint8_t m[DNS_MAC_MAX];
	memcpy(m, req->mac, req->maclen);
	ldns_rdf *qmac = ldns_native2rdf_int16_data(req->maclen, m);
	if (!qmac)
		return false;
	ldns_rr *t = ldns_pkt_tsig(pkt);
	bool ok = ldns_pkt_tsig_verify(pkt, wire, len, req->key->name, req->key->secret_b64, qmac);
	/* on internal errors ldns returns with the TSIG detached from pkt */
	if (ldns_pkt_tsig(pkt) != t)
		ldns_pkt_set_tsig(pkt, t);
	ldns_rdf_deep_free(qmac);
	return ok;
}

/* RFC 8945 §5.2.3: the server's clock is in Other Data. Log it; never
 * adjust ours (§5.4.3). */
static enum dns_answer badtime(struct ddns_result *res, const ldns_rr *t, time_t now)
{
	const ldns_rdf *od = ldns_rr_rdf(t, 6);
	if (!od || ldns_rdf_size(od) != 8 || rdf_u16(od) != 6) {
		set_res(res, DDNS_R_PERM_PROVIDER, "BADTIME",
			"server says our clock is off by more than %u s (no server time given); fix NTP",
			DNS_TSIG_FUDGE);
		return DNS_ANS_FINAL;
	}
	long long server = (long long)rd48(ldns_rdf_data(od) + 2);
	long long skew = server - (long long)now;
	set_res(res, DDNS_R_PERM_PROVIDER, "BADTIME",
		"clock skew %+lld s (server %lld, ours %lld, fudge %u s); fix NTP, clocks are not adjusted",
		skew, server, (long long)now, DNS_TSIG_FUDGE);
	return DNS_ANS_FINAL;
}

static enum dns_answer tsig_error(struct ddns_result *res, unsigned terr, const ldns_rr *t,
				  const struct dns_key *k, time_t now)
{
	char word[16];
	if (terr >= 16 && dns_rcode_str(terr))
		snprintf(word, sizeof(word), "%s", dns_rcode_str(terr));
	else
		snprintf(word, sizeof(word), "TSIGERR%u", terr);
	switch (terr) {
	case TSIG_BADTIME:
		return badtime(res, t, now);
	case TSIG_BADKEY:
		set_res(res, DDNS_R_PERM_PROVIDER, word, "server does not know key %.64s (%s) or denies it",
			k->name, k->algorithm);
		break;
	case TSIG_BADSIG:
		set_res(res, DDNS_R_PERM_PROVIDER, word, "server rejected the MAC of key %.64s: wrong secret?",
			k->name);
		break;
	case TSIG_BADTRUNC:
		set_res(res, DDNS_R_PERM_PROVIDER, word, "server refuses the MAC length of key %.64s", k->name);
		break;
	default:
		set_res(res, DDNS_R_PERM_PROVIDER, word, "TSIG error %u for key %.64s", terr, k->name);
	}
	return DNS_ANS_FINAL;
}

static enum dns_answer rcode_result(struct ddns_result *res, unsigned rcode)
{
	char word[16];
	rcode_word(rcode, word, sizeof(word));
	switch (rcode) {
	case LDNS_RCODE_NOERROR:
		set_res(res, DDNS_R_OK, word, "update applied");
		break;
	case LDNS_RCODE_SERVFAIL:
		set_res(res, DDNS_R_TRANSIENT, word, "server failure");
		break;
	case LDNS_RCODE_REFUSED:
		set_res(res, DDNS_R_PERM_PROVIDER, word, "server refused the update (policy or key permission)");
		break;
	case LDNS_RCODE_NOTAUTH:
		set_res(res, DDNS_R_PERM_PROVIDER, word, "server is not authoritative for the zone or denies the key");
		break;
	case LDNS_RCODE_FORMERR:
	case LDNS_RCODE_NOTIMPL:
	case LDNS_RCODE_NOTZONE:
		/* sending the same message again cannot help */
		set_res(res, DDNS_R_PERM_NAME, word, "server rejected the message for this name");
		break;
	case LDNS_RCODE_NXDOMAIN:
	case LDNS_RCODE_YXDOMAIN:
	case LDNS_RCODE_YXRRSET:
	case LDNS_RCODE_NXRRSET:
		set_res(res, DDNS_R_PERM_NAME, word, "update prerequisite failed");
		break;
	default:
		set_res(res, DDNS_R_PERM_NAME, word, "unknown response code %u", rcode);
	}
	return DNS_ANS_FINAL;
}

/* RFC 8945 §5.3.2: key and MAC errors come back unsigned, and servers
 * answer an update for a zone they do not serve with a bare NOTAUTH
 * (Knot 3.2 sends no TSIG at all). Believing these adds nothing a
 * spoofer could not already do with an unsigned BADKEY, which the RFC
 * makes us accept. */
static enum dns_answer unsigned_notauth(struct ddns_result *res, unsigned terr, const ldns_rr *t,
					const struct dns_key *k, time_t now)
{
	if (terr == TSIG_BADKEY || terr == TSIG_BADSIG)
		return tsig_error(res, terr, t, k, now);
	if (terr)
		return bogus(res, LDNS_RCODE_NOTAUTH, "is unsigned");
	set_res(res, DDNS_R_PERM_PROVIDER, "NOTAUTH",
		"server is not authoritative for the zone (unsigned answer)");
	return DNS_ANS_FINAL;
}

static enum dns_answer judge(const struct dns_request *req, ldns_pkt *pkt, const uint8_t *wire,
			     size_t len, time_t now, struct ddns_result *res)
{
	unsigned rcode = ldns_pkt_get_rcode(pkt);
	const ldns_rr *t = ldns_pkt_tsig(pkt);
	if (t && (ldns_rr_rd_count(t) != 7 || ldns_rdf_size(ldns_rr_rdf(t, 3)) < 2))
		return bogus(res, rcode, "has a malformed TSIG");
	unsigned terr = t ? rdf_u16(ldns_rr_rdf(t, 5)) : 0;
	if (!t || ldns_rdf_size(ldns_rr_rdf(t, 3)) == 2) {
		if (rcode == LDNS_RCODE_NOTAUTH)
			return unsigned_notauth(res, terr, t, req->key, now);
		return bogus(res, rcode, "is unsigned");
	}
	if (!tsig_is_ours(t, req->key))
		return bogus(res, rcode, "is signed with another key or algorithm");
	if (!mac_verifies(req, pkt, wire, len))
		return bogus(res, rcode, "has a TSIG MAC that does not verify");
	if (terr)
		return tsig_error(res, terr, t, req->key, now);
	return rcode_result(res, rcode);
}

enum dns_answer dns_answer_classify(const struct dns_request *req, const uint8_t *wire, size_t len,
				    time_t now, struct ddns_result *res)
{
	if (len < LDNS_HEADER_SIZE || rd16(wire) != req->id || !(wire[2] & 0x80))
		return DNS_ANS_IGNORE;
	if (wire[2] & 0x02)
		return DNS_ANS_TRUNCATED;
	if (!tsig_placement_ok(wire, len))
		return DNS_ANS_IGNORE;
	ldns_pkt *pkt = NULL;
	if (ldns_wire2pkt(&pkt, wire, len) != LDNS_STATUS_OK) {
		ldns_pkt_free(pkt);
		return DNS_ANS_IGNORE;
	}
	enum dns_answer a = judge(req, pkt, wire, len, now, res);
	ldns_pkt_free(pkt);
	return a;
}
