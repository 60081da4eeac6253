#include "pcpd/handler.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "pcpd/result.h"

/* A MAP/PEER waiting for the engine (and maybe the kernel). */
struct htxn {
	struct pcp_handler *h;
	struct pcp_meta m;
	struct pcp_request req;
	size_t len;
	uint8_t pkt[PCP_MAX_LEN];
};

void pcp_handler_init(struct pcp_handler *h, const struct pcpd_config *cfg,
		      struct subscribers *subs, struct engine *eng, uint32_t epoch_base,
		      pcp_reply_fn reply)
{
	memset(h, 0, sizeof(*h));
	h->cfg = cfg;
	h->subs = subs;
	h->eng = eng;
	h->epoch_base = epoch_base;
	h->reply = reply;
}

uint32_t pcp_epoch(const struct pcp_handler *h, uint32_t now)
{
	return now - h->epoch_base;
}

static void send_error(struct pcp_handler *h, const struct pcp_meta *m, const uint8_t *pkt,
		       size_t len, bool parsed, enum perr err, uint32_t lifetime, bool lifetime_set)
{
	uint8_t out[PCP_MAX_LEN];
	uint8_t code = perr_to_pcp(err);
	if (!lifetime_set)
		lifetime = pcp_error_lifetime(code);
	size_t n = pcp_encode_error(pkt, len, parsed, code, lifetime, pcp_epoch(h, m->now), out,
				    sizeof(out));
	if (!n)
		return;
	h->stats.by_result[code]++;
	h->reply(m, out, n);
}

static void send_response(struct pcp_handler *h, const struct pcp_meta *m,
			  const struct pcp_response *rsp, const uint8_t *pkt, size_t len)
{
	uint8_t out[PCP_MAX_LEN];
	size_t n = pcp_encode_response(rsp, out, sizeof(out));
	if (!n) {
		/* §7.3: a reply that would exceed 1100 octets */
		send_error(h, m, pkt, len, true, PERR_MALFORMED_REQUEST, 0, false);
		return;
	}
	h->stats.by_result[rsp->result]++;
	h->reply(m, out, n);
}

/* The internal address a MAP/PEER is for. THIRD_PARTY may name any
 * internal address of the sender's own softwire (every key includes the
 * subscriber, so a B4 can only ever reach its own hosts); without it the
 * sender itself, which must then be an IPv4 host inside the softwire. */
static enum perr internal_addr(const struct pcp_handler *h, const struct pcp_meta *m,
			       const struct pcp_request *req, struct in6_addr *out,
			       uint8_t *flags)
{
	if (req->has_third_party) {
		if (addr_equal(&req->third_party, &m->src))
			return PERR_MALFORMED_REQUEST;         /* §13.1 */
		if (!h->cfg->enable_third_party)
			return PERR_UNSUPP_OPTION;             /* §13.1: prohibited */
		if (!subs_internal_allowed(h->subs, &req->third_party))
			return PERR_NOT_AUTHORIZED;
		*out = req->third_party;
		*flags |= BF_THIRD_PARTY;
		return PERR_OK;
	}
	if (!addr_is_v4mapped(&m->src) || !subs_internal_allowed(h->subs, &m->src))
		return PERR_NOT_AUTHORIZED;   /* an AFTR maps IPv4 hosts only */
	*out = m->src;
	return PERR_OK;
}

/* Remote peers a CGN can never talk to through a mapping (§12.3). */
static bool peer_addr_valid(const struct in6_addr *a)
{
	if (!addr_is_v4mapped(a))
		return false;
	uint32_t v4 = addr_to_v4(a);
	uint8_t first = (uint8_t)(v4 >> 24);
	return v4 != 0 && first != 0 && first != 127 && first < 224;
}

static void txn_done(void *arg, const struct engine_result *r)
{
	struct htxn *t = arg;
	struct pcp_handler *h = t->h;
	const struct pcp_request *req = &t->req;

	if (r->err == PERR_DROP) {
		h->stats.dropped++;
		free(t);
		return;
	}
	if (r->err != PERR_OK) {
		send_error(h, &t->m, t->pkt, t->len, true, r->err, r->lifetime, r->lifetime_set);
		free(t);
		return;
	}
	struct pcp_response rspbuf, *rsp = &rspbuf;
	memset(rsp, 0, sizeof(*rsp));
	rsp->opcode = req->opcode;
	rsp->result = PCP_SUCCESS;
	rsp->lifetime = r->lifetime;
	rsp->epoch = pcp_epoch(h, t->m.now);
	memcpy(rsp->nonce, req->nonce, sizeof(rsp->nonce));
	rsp->proto = req->proto;
	rsp->int_port = req->int_port;
	rsp->has_third_party = req->has_third_party;
	rsp->third_party = req->third_party;
	if (req->opcode == PCP_OP_MAP && req->lifetime == 0) {
		/* §15.1: a delete copies the suggested fields back */
		rsp->ext_port = req->sugg_port;
		rsp->ext_addr = req->sugg_addr;
		rsp->lifetime = 0;
	} else {
		rsp->ext_port = r->ext_port;
		rsp->ext_addr = r->ext_addr;
	}
	if (req->opcode == PCP_OP_MAP && req->lifetime != 0) {
		rsp->prefer_failure = req->prefer_failure;
		rsp->nfilters = req->nfilters;
		memcpy(rsp->filters, req->filters, req->nfilters * sizeof(req->filters[0]));
		if (req->has_description) {
			/* RFC 7220 §3: echo what is stored; an empty one erased it */
			rsp->has_description = true;
			rsp->desc_len = r->has_desc ? r->desc_len : 0;
			memcpy(rsp->description, r->desc, rsp->desc_len);
			rsp->description[rsp->desc_len] = '\0';
		}
	}
	if (req->opcode == PCP_OP_PEER) {
		rsp->peer_port = req->peer_port;
		rsp->peer_addr = req->peer_addr;
	}
	send_response(h, &t->m, rsp, t->pkt, t->len);
	free(t);
}

static void note_client(struct pcp_handler *h, struct subscriber *sub, const struct pcp_meta *m)
{
	if (sub->client_port == m->sport && addr_equal(&sub->client_addr, &m->src) &&
	    addr_equal(&sub->client_server, &m->dst))
		return;
	pthread_mutex_lock(&sub->lock);
	sub->client_addr = m->src;
	sub->client_port = m->sport;
	sub->client_server = m->dst;
	h->clients_dirty = true;
	pthread_mutex_unlock(&sub->lock);
}

static void handle_mapping(struct pcp_handler *h, const struct pcp_meta *m,
			   struct subscriber *sub, struct htxn *t)
{
	const struct pcp_request *req = &t->req;
	bool map = req->opcode == PCP_OP_MAP;
	struct engine_req rq;
	memset(&rq, 0, sizeof(rq));
	enum perr err = internal_addr(h, m, req, &rq.int_addr, &rq.flags);
	if (err == PERR_OK) {
		if (map && req->proto == 0 && req->int_port != 0)
			err = PERR_MALFORMED_REQUEST;         /* §11.3, §15.1 */
		else if (!map && (req->proto == 0 || req->int_port == 0 || req->peer_port == 0 ||
				  !peer_addr_valid(&req->peer_addr)))
			err = PERR_MALFORMED_REQUEST;         /* §12.1, §12.3 */
	}
	if (err != PERR_OK) {
		send_error(h, m, t->pkt, t->len, true, err, 0, false);
		free(t);
		return;
	}
	rq.sub = sub;
	rq.proto = req->proto;
	rq.int_port = req->int_port;
	rq.sugg_port = req->sugg_port;
	rq.sugg_addr = req->sugg_addr;
	rq.peer_port = req->peer_port;
	rq.peer_addr = req->peer_addr;
	rq.lifetime = req->lifetime;
	memcpy(rq.nonce, req->nonce, sizeof(rq.nonce));
	if (req->prefer_failure)
		rq.flags |= BF_PREFER_FAILURE;
	rq.nfilters = req->nfilters;
	rq.filters = req->filters;
	rq.has_desc = map && req->has_description;
	rq.desc = req->description;
	rq.desc_len = req->desc_len;
	rq.client_addr = m->src;
	rq.client_port = m->sport;
	rq.now = m->now;
	if (map)
		engine_map(h->eng, &rq, txn_done, t);
	else
		engine_peer(h->eng, &rq, txn_done, t);
}

void pcp_handle(struct pcp_handler *h, const struct pcp_meta *m, const uint8_t *pkt, size_t len)
{
	h->stats.received++;
	if (len < 2 || (pkt[1] & 0x80)) {
		h->stats.dropped++;
		return;
	}
	bool v4 = addr_is_v4mapped(&m->src);
	if (pkt[0] == 0 && h->cfg->enable_natpmp && v4) {
		h->stats.by_opcode[STAT_OP_NATPMP]++;
		natpmp_handle(h, m, pkt, len);
		return;
	}
	/* §8.2 ¶2: an IPv4 request is only accepted from a softwire we know */
	struct subscriber *sub = v4 ? subs_by_ifindex(h->subs, m->ifindex)
				    : subs_by_b4(h->subs, &m->src);
	if (!sub && v4) {
		h->stats.unknown_client++;
		h->stats.dropped++;
		return;
	}
	/* §8.2: overload handling sits after the version and 24-octet checks */
	if (sub && pkt[0] == PCP_VERSION && len >= PCP_HDR_LEN) {
		sub->requests++;
		if (!sub_rate_ok(sub, m->now_ms, h->cfg->aftr.rate_limit, h->cfg->aftr.rate_burst)) {
			h->stats.rate_limited++;
			send_error(h, m, pkt, len < PCP_MAX_LEN ? len : PCP_MAX_LEN, false,
				   PERR_NO_RESOURCES, 0, false);
			return;
		}
	}

	/* decoded on the stack: malformed floods cost no allocation */
	struct pcp_request req;
	bool parsed = false;
	enum perr v = pcp_decode_request(pkt, len, &req, &parsed);
	if (v == PERR_DROP) {
		h->stats.dropped++;
		return;
	}
	uint8_t op = pkt[1] & 0x7f;
	h->stats.by_opcode[op <= PCP_OP_PEER ? op : STAT_OP_OTHER]++;
	if (parsed && memcmp(pkt + 8, &m->src, 16) != 0)
		v = PERR_ADDRESS_MISMATCH;             /* §8.2, before any option */
	else if (v == PERR_OK && !sub)
		/* not from a configured B4 prefix; §13.1: THIRD_PARTY from an
		 * unauthorized host MUST get UNSUPP_OPTION */
		v = req.has_third_party ? PERR_UNSUPP_OPTION : PERR_NOT_AUTHORIZED;
	else if (v == PERR_OK && ((op == PCP_OP_MAP && !h->cfg->enable_map) ||
				  (op == PCP_OP_PEER && !h->cfg->enable_peer)))
		v = PERR_UNSUPP_OPCODE;                /* §11, §12: disabled by configuration */
	if (v != PERR_OK) {
		send_error(h, m, pkt, len, parsed, v, 0, false);
		return;
	}
	note_client(h, sub, m);
	if (op == PCP_OP_ANNOUNCE) {
		/* §14.1.1: SUCCESS with lifetime 0 */
		struct pcp_response rsp;
		memset(&rsp, 0, sizeof(rsp));
		rsp.opcode = PCP_OP_ANNOUNCE;
		rsp.epoch = pcp_epoch(h, m->now);
		send_response(h, m, &rsp, pkt, len);
		return;
	}
	/* MAP/PEER may complete after the kernel commits: keep what the reply needs */
	struct htxn *t = malloc(sizeof(*t));
	if (!t) {
		send_error(h, m, pkt, len, true, PERR_NO_RESOURCES, 0, false);
		return;
	}
	t->h = h;
	t->m = *m;
	t->req = req;
	t->len = len;
	memcpy(t->pkt, pkt, len);
	handle_mapping(h, m, sub, t);
}
