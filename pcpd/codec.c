/* PCP wire codec: RFC 6887 framing and §8.2 verdicts, the §13 options,
 * DESCRIPTION (RFC 7220) and PORT_SET (RFC 7753). */
#include "pcpd/codec.h"

#include <string.h>

#include "common/addr.h"
#include "common/wire.h"

#define OPT_HDR_LEN 4
#define TP_LEN 16
#define FILTER_LEN 20
#define PORT_SET_LEN 5
#define RESERVED_96 12
#define OPCODE_UNKNOWN ((size_t)-1)

static size_t pad4(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

static size_t opcode_len(uint8_t op)
{
	switch (op) {
	case PCP_OP_ANNOUNCE: return 0;
	case PCP_OP_MAP: return PCP_MAP_LEN;
	case PCP_OP_PEER: return PCP_PEER_LEN;
	default: return OPCODE_UNKNOWN;
	}
}

/* Requests and responses carry identical option fields; these views let
 * one parser and one writer serve both structs. */
struct opts {
	bool *has_tp;
	struct in6_addr *tp;
	bool *pf;
	unsigned *nfilters;
	struct pcp_filter *filters;
	bool *has_desc;
	uint16_t *desc_len;
	char *desc;
	bool *has_ps;
	uint16_t *ps_size, *ps_first;
	bool *ps_parity;
};

struct copts {
	const bool *has_tp;
	const struct in6_addr *tp;
	const bool *pf;
	const unsigned *nfilters;
	const struct pcp_filter *filters;
	const bool *has_desc;
	const uint16_t *desc_len;
	const char *desc;
	const bool *has_ps;
	const uint16_t *ps_size, *ps_first;
	const bool *ps_parity;
};

#define OPTS_OF(s) { &(s)->has_third_party, &(s)->third_party, &(s)->prefer_failure, \
		     &(s)->nfilters, (s)->filters, &(s)->has_description, &(s)->desc_len, \
		     (s)->description, &(s)->has_port_set, &(s)->ps_size, &(s)->ps_first, \
		     &(s)->ps_parity }

/* What option validation depends on. Responses skip the request rules:
 * §7.3 error responses echo every option, valid or not. */
struct optctx {
	bool request;
	uint8_t opcode;
	uint32_t lifetime;
	uint16_t sugg_port;
	bool seen_desc;
};

/* RFC 3629 strict: no overlongs, surrogates or code points past U+10FFFF.
 * NUL is refused too, the description is handled as a C string. */
static bool utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		size_t k;
		uint32_t cp, min;

		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			k = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

static enum perr opt_third_party(struct wire_rd *d, uint16_t olen, const struct optctx *c,
				 const struct opts *o)
{
	if (c->request && c->opcode == PCP_OP_ANNOUNCE)
		return PERR_MALFORMED_OPTION;
	if (olen != TP_LEN || *o->has_tp)
		return PERR_MALFORMED_OPTION;
	wire_get_in6(d, o->tp);
	*o->has_tp = true;
	return PERR_OK;
}

static enum perr opt_prefer_failure(uint16_t olen, const struct optctx *c, const struct opts *o)
{
	if (c->request && c->opcode == PCP_OP_PEER)
		return PERR_MALFORMED_REQUEST;          /* §12.1 names this code */
	if (c->request && c->opcode != PCP_OP_MAP)
		return PERR_MALFORMED_OPTION;
	if (olen != 0 || *o->pf)
		return PERR_MALFORMED_OPTION;
	/* §11.3 (lifetime 0 makes no sense) and §13.2 (port 0) */
	if (c->request && (c->lifetime == 0 || c->sugg_port == 0))
		return PERR_MALFORMED_OPTION;
	*o->pf = true;
	return PERR_OK;
}

static enum perr opt_filter(struct wire_rd *d, uint16_t olen, const struct optctx *c,
			    const struct opts *o)
{
	if (c->request && (c->opcode != PCP_OP_MAP || c->lifetime == 0))
		return PERR_MALFORMED_OPTION;
	if (olen != FILTER_LEN || *o->nfilters >= PCP_MAX_FILTERS)
		return PERR_MALFORMED_OPTION;
	struct pcp_filter *f = &o->filters[*o->nfilters];
	wire_skip(d, 1);
	f->plen = wire_get_u8(d);
	f->port = wire_get_u16(d);
	wire_get_in6(d, &f->addr);
	if (c->request && f->plen != 0) {
		unsigned lo = addr_is_v4mapped(&f->addr) ? 96 : 0;
		if (f->plen < lo || f->plen > 128) {
			memset(f, 0, sizeof(*f));
			return PERR_MALFORMED_OPTION;
		}
	}
	(*o->nfilters)++;
	return PERR_OK;
}

static enum perr opt_description(struct wire_rd *d, uint16_t olen, struct optctx *c,
				 const struct opts *o)
{
	if (c->request && c->opcode == PCP_OP_ANNOUNCE)
		return PERR_OK;                 /* optional: ignored there */
	if (olen > PCP_DESC_MAX || c->seen_desc)
		return PERR_MALFORMED_OPTION;
	c->seen_desc = true;
	/* RFC 7220 §3: invalid text is ignored, not an error */
	if (!utf8_valid(d->pos, olen))
		return PERR_OK;
	wire_get_bytes(d, o->desc, olen);
	o->desc[olen] = '\0';
	*o->desc_len = olen;
	*o->has_desc = true;
	return PERR_OK;
}

static enum perr opt_port_set(struct wire_rd *d, uint16_t olen, const struct optctx *c,
			      const struct opts *o)
{
	if (c->request && c->opcode != PCP_OP_MAP)
		return PERR_MALFORMED_OPTION;
	if (olen != PORT_SET_LEN || *o->has_ps)
		return PERR_MALFORMED_OPTION;
	uint16_t size = wire_get_u16(d);
	uint16_t first = wire_get_u16(d);
	uint8_t flags = wire_get_u8(d);
	if (c->request && size == 0 && c->lifetime != 0)
		return PERR_MALFORMED_OPTION;   /* RFC 7753 §4.2 */
	*o->ps_size = size;
	*o->ps_first = first;
	*o->ps_parity = flags & 1;
	*o->has_ps = true;
	return PERR_OK;
}

/* Walks the option list in order; the first error is the verdict. */
static enum perr parse_options(struct wire_rd *r, struct optctx *c, const struct opts *o)
{
	while (wire_rd_left(r) > 0) {
		uint8_t code = wire_get_u8(r);
		wire_skip(r, 1);
		uint16_t olen = wire_get_u16(r);
		if (r->err || wire_rd_left(r) < pad4(olen))
			return PERR_MALFORMED_OPTION;
		struct wire_rd d = wire_rd_init(r->pos, olen);
		wire_skip(r, pad4(olen));

		enum perr e = PERR_OK;
		switch (code) {
		case PCP_OPT_THIRD_PARTY: e = opt_third_party(&d, olen, c, o); break;
		case PCP_OPT_PREFER_FAILURE: e = opt_prefer_failure(olen, c, o); break;
		case PCP_OPT_FILTER: e = opt_filter(&d, olen, c, o); break;
		case PCP_OPT_DESCRIPTION: e = opt_description(&d, olen, c, o); break;
		case PCP_OPT_PORT_SET: e = opt_port_set(&d, olen, c, o); break;
		default:
			/* clients ignore what they do not know (§7.3) */
			if (c->request && code < 128)
				e = PERR_UNSUPP_OPTION;
			break;
		}
		if (e != PERR_OK)
			return e;
	}
	/* RFC 7753 §4.2, whichever comes first */
	if (c->request && *o->has_ps && *o->pf)
		return PERR_MALFORMED_OPTION;
	return PERR_OK;
}

enum perr pcp_decode_request(const uint8_t *pkt, size_t len, struct pcp_request *req,
			     bool *parsed)
{
	bool dummy;
	if (!parsed)
		parsed = &dummy;
	*parsed = false;
	memset(req, 0, sizeof(*req));

	if (len < 2 || (pkt[1] & 0x80))
		return PERR_DROP;
	if (pkt[0] != PCP_VERSION)
		return PERR_UNSUPP_VERSION;     /* before the length check (§8.2) */
	if (len < PCP_HDR_LEN)
		return PERR_DROP;
	if (len > PCP_MAX_LEN || len % 4 != 0)
		return PERR_MALFORMED_REQUEST;
	uint8_t op = pkt[1] & 0x7f;
	size_t need = opcode_len(op);
	if (need == OPCODE_UNKNOWN)
		return PERR_UNSUPP_OPCODE;
	if (len < PCP_HDR_LEN + need)
		return PERR_MALFORMED_REQUEST;
	*parsed = true;

	struct wire_rd r = wire_rd_init(pkt, len);
	req->version = wire_get_u8(&r);
	req->opcode = wire_get_u8(&r) & 0x7f;
	wire_skip(&r, 2);
	req->lifetime = wire_get_u32(&r);
	wire_get_in6(&r, &req->client_addr);
	if (op != PCP_OP_ANNOUNCE) {
		wire_get_bytes(&r, req->nonce, PCP_NONCE_LEN);
		req->proto = wire_get_u8(&r);
		wire_skip(&r, 3);
		req->int_port = wire_get_u16(&r);
		req->sugg_port = wire_get_u16(&r);
		wire_get_in6(&r, &req->sugg_addr);
	}
	if (op == PCP_OP_PEER) {
		req->peer_port = wire_get_u16(&r);
		wire_skip(&r, 2);
		wire_get_in6(&r, &req->peer_addr);
	}

	struct optctx c = { true, op, req->lifetime, req->sugg_port, false };
	struct opts o = OPTS_OF(req);
	return parse_options(&r, &c, &o);
}

size_t pcp_encode_error(const uint8_t *req, size_t req_len, bool parsed, uint8_t result,
			uint32_t lifetime, uint32_t epoch, uint8_t *out, size_t cap)
{
	size_t n = req_len < PCP_MAX_LEN ? req_len : PCP_MAX_LEN;
	size_t olen = pad4(n);
	if (olen < PCP_HDR_LEN)
		olen = PCP_HDR_LEN;
	if (olen > cap)
		return 0;
	uint8_t op = req_len >= 2 ? req[1] & 0x7f : 0;

	memmove(out, req, n);
	memset(out + n, 0, olen - n);
	struct wire_wr w = wire_wr_init(out, olen);
	wire_put_u8(&w, PCP_VERSION);           /* §9: the version we do support */
	wire_put_u8(&w, 0x80 | op);
	wire_put_u8(&w, 0);
	wire_put_u8(&w, result);
	wire_put_u32(&w, lifetime);
	wire_put_u32(&w, epoch);
	/* §7.2: unparsed requests keep the client address tail as the reserved field */
	if (parsed)
		wire_put_zero(&w, RESERVED_96);
	return olen;
}

static void put_opt_hdr(struct wire_wr *w, uint8_t code, uint16_t len)
{
	wire_put_u8(w, code);
	wire_put_u8(w, 0);
	wire_put_u16(w, len);
}

static void put_options(struct wire_wr *w, const struct copts *o)
{
	if (*o->nfilters > PCP_MAX_FILTERS || (*o->has_desc && *o->desc_len > PCP_DESC_MAX)) {
		w->err = true;
		return;
	}
	if (*o->has_tp) {
		put_opt_hdr(w, PCP_OPT_THIRD_PARTY, TP_LEN);
		wire_put_in6(w, o->tp);
	}
	if (*o->pf)
		put_opt_hdr(w, PCP_OPT_PREFER_FAILURE, 0);
	for (unsigned i = 0; i < *o->nfilters; i++) {
		put_opt_hdr(w, PCP_OPT_FILTER, FILTER_LEN);
		wire_put_u8(w, 0);
		wire_put_u8(w, o->filters[i].plen);
		wire_put_u16(w, o->filters[i].port);
		wire_put_in6(w, &o->filters[i].addr);
	}
	if (*o->has_desc) {
		put_opt_hdr(w, PCP_OPT_DESCRIPTION, *o->desc_len);
		wire_put_bytes(w, o->desc, *o->desc_len);
		wire_put_zero(w, pad4(*o->desc_len) - *o->desc_len);
	}
	if (*o->has_ps) {
		put_opt_hdr(w, PCP_OPT_PORT_SET, PORT_SET_LEN);
		wire_put_u16(w, *o->ps_size);
		wire_put_u16(w, *o->ps_first);
		wire_put_u8(w, *o->ps_parity ? 1 : 0);
		wire_put_zero(w, pad4(PORT_SET_LEN) - PORT_SET_LEN);
	}
}

static size_t finish(const struct wire_wr *w, const uint8_t *out)
{
	return w->err ? 0 : (size_t)(w->pos - out);
}

size_t pcp_encode_response(const struct pcp_response *rsp, uint8_t *out, size_t cap)
{
	struct wire_wr w = wire_wr_init(out, cap < PCP_MAX_LEN ? cap : PCP_MAX_LEN);
	uint8_t op = rsp->opcode & 0x7f;

	wire_put_u8(&w, PCP_VERSION);
	wire_put_u8(&w, 0x80 | op);
	wire_put_u8(&w, 0);
	wire_put_u8(&w, rsp->result);
	wire_put_u32(&w, rsp->lifetime);
	wire_put_u32(&w, rsp->epoch);
	wire_put_zero(&w, RESERVED_96);
	if (op == PCP_OP_MAP || op == PCP_OP_PEER) {
		wire_put_bytes(&w, rsp->nonce, PCP_NONCE_LEN);
		wire_put_u8(&w, rsp->proto);
		wire_put_zero(&w, 3);
		wire_put_u16(&w, rsp->int_port);
		wire_put_u16(&w, rsp->ext_port);
		wire_put_in6(&w, &rsp->ext_addr);
	}
	if (op == PCP_OP_PEER) {
		wire_put_u16(&w, rsp->peer_port);
		wire_put_zero(&w, 2);
		wire_put_in6(&w, &rsp->peer_addr);
	}
	struct copts o = OPTS_OF(rsp);
	put_options(&w, &o);
	return finish(&w, out);
}

/* Always writes version 2: a zeroed struct must not become NAT-PMP. */
size_t pcp_encode_request(const struct pcp_request *req, uint8_t *out, size_t cap)
{
	struct wire_wr w = wire_wr_init(out, cap < PCP_MAX_LEN ? cap : PCP_MAX_LEN);
	uint8_t op = req->opcode & 0x7f;

	wire_put_u8(&w, PCP_VERSION);
	wire_put_u8(&w, op);
	wire_put_zero(&w, 2);
	wire_put_u32(&w, req->lifetime);
	wire_put_in6(&w, &req->client_addr);
	if (op == PCP_OP_MAP || op == PCP_OP_PEER) {
		wire_put_bytes(&w, req->nonce, PCP_NONCE_LEN);
		wire_put_u8(&w, req->proto);
		wire_put_zero(&w, 3);
		wire_put_u16(&w, req->int_port);
		wire_put_u16(&w, req->sugg_port);
		wire_put_in6(&w, &req->sugg_addr);
	}
	if (op == PCP_OP_PEER) {
		wire_put_u16(&w, req->peer_port);
		wire_put_zero(&w, 2);
		wire_put_in6(&w, &req->peer_addr);
	}
	struct copts o = OPTS_OF(req);
	put_options(&w, &o);
	return finish(&w, out);
}

enum perr pcp_decode_response(const uint8_t *pkt, size_t len, struct pcp_response *rsp)
{
	memset(rsp, 0, sizeof(*rsp));
	/* §8.3: invalid sizes are ignored */
	if (len < PCP_HDR_LEN || len > PCP_MAX_LEN || len % 4 != 0 ||
	    pkt[0] != PCP_VERSION || !(pkt[1] & 0x80))
		return PERR_MALFORMED_REQUEST;

	struct wire_rd r = wire_rd_init(pkt, len);
	wire_skip(&r, 1);
	rsp->opcode = wire_get_u8(&r) & 0x7f;
	wire_skip(&r, 1);
	rsp->result = wire_get_u8(&r);
	rsp->lifetime = wire_get_u32(&r);
	rsp->epoch = wire_get_u32(&r);
	wire_skip(&r, RESERVED_96);

	/* An UNSUPP_OPCODE echo is uninterpretable, and an error response
	 * to a short request carries no opcode data: the header is all. */
	size_t need = opcode_len(rsp->opcode);
	if (need == OPCODE_UNKNOWN)
		return PERR_OK;
	if (len < PCP_HDR_LEN + need)
		return rsp->result == PCP_SUCCESS ? PERR_MALFORMED_REQUEST : PERR_OK;
	if (need) {
		wire_get_bytes(&r, rsp->nonce, PCP_NONCE_LEN);
		rsp->proto = wire_get_u8(&r);
		wire_skip(&r, 3);
		rsp->int_port = wire_get_u16(&r);
		rsp->ext_port = wire_get_u16(&r);
		wire_get_in6(&r, &rsp->ext_addr);
	}
	if (rsp->opcode == PCP_OP_PEER) {
		rsp->peer_port = wire_get_u16(&r);
		wire_skip(&r, 2);
		wire_get_in6(&r, &rsp->peer_addr);
	}

	struct optctx c = { false, rsp->opcode, rsp->lifetime, 0, false };
	struct opts o = OPTS_OF(rsp);
	enum perr e = parse_options(&r, &c, &o);
	/* Error responses echo the request's options, malformed ones
	 * included (§7.3): keep what parsed and still report the result. */
	return rsp->result == PCP_SUCCESS ? e : PERR_OK;
}

const char *pcp_result_str(uint8_t result)
{
	static const char *const names[] = {
		"SUCCESS", "UNSUPP_VERSION", "NOT_AUTHORIZED", "MALFORMED_REQUEST",
		"UNSUPP_OPCODE", "UNSUPP_OPTION", "MALFORMED_OPTION", "NETWORK_FAILURE",
		"NO_RESOURCES", "UNSUPP_PROTOCOL", "USER_EX_QUOTA",
		"CANNOT_PROVIDE_EXTERNAL", "ADDRESS_MISMATCH", "EXCESSIVE_REMOTE_PEERS",
	};
	return result < sizeof(names) / sizeof(names[0]) ? names[result] : "UNKNOWN";
}

const char *pcp_opcode_str(uint8_t opcode)
{
	switch (opcode) {
	case PCP_OP_ANNOUNCE: return "ANNOUNCE";
	case PCP_OP_MAP: return "MAP";
	case PCP_OP_PEER: return "PEER";
	default: return "UNKNOWN";
	}
}
