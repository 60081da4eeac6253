/* NAT-PMP (RFC 6886) for encapsulated-mode IPv4 clients, over the same
 * engine as PCP (RFC 6887 Appendix A: dispatch on the version octet). */
#include <stdlib.h>
#include <string.h>

#include "common/wire.h"
#include "pcpd/handler.h"
#include "pcpd/result.h"

#define NATPMP_OP_ADDR 0
#define NATPMP_OP_UDP 1
#define NATPMP_OP_TCP 2

/* NAT-PMP has no nonce: all its mappings share this one, so a refresh
 * over NAT-PMP matches and a PCP client with its own nonce cannot take
 * them over (and vice versa). */
static const uint8_t natpmp_nonce[PCP_NONCE_LEN] = "NAT-PMP";

struct ntxn {
	struct pcp_handler *h;
	struct pcp_meta m;
	uint8_t op;
	uint16_t int_port;
	bool del;
};

static void natpmp_send(struct pcp_handler *h, const struct pcp_meta *m, uint8_t op,
			uint16_t result, uint16_t int_port, uint16_t ext_port, uint32_t lifetime)
{
	uint8_t out[16];
	struct wire_wr w = wire_wr_init(out, sizeof(out));
	wire_put_u8(&w, 0);
	wire_put_u8(&w, (uint8_t)(op | 0x80));
	wire_put_u16(&w, result);
	wire_put_u32(&w, pcp_epoch(h, m->now));
	if (op == NATPMP_OP_UDP || op == NATPMP_OP_TCP) {
		wire_put_u16(&w, int_port);
		wire_put_u16(&w, ext_port);
		wire_put_u32(&w, lifetime);
	}
	h->reply(m, out, (size_t)(w.pos - out));
}

static void ntxn_done(void *arg, const struct engine_result *r)
{
	struct ntxn *t = arg;
	if (r->err == PERR_DROP) {
		t->h->stats.dropped++;
	} else if (r->err != PERR_OK) {
		natpmp_send(t->h, &t->m, t->op, perr_to_natpmp(r->err), t->int_port, 0, 0);
	} else {
		natpmp_send(t->h, &t->m, t->op, 0, t->int_port, t->del ? 0 : r->ext_port,
			    t->del ? 0 : r->lifetime);
	}
	free(t);
}

void natpmp_handle(struct pcp_handler *h, const struct pcp_meta *m, const uint8_t *pkt,
		   size_t len)
{
	uint8_t op = pkt[1];
	if (op >= 128) {                 /* RFC 6886 §3: responses are ignored */
		h->stats.dropped++;
		return;
	}
	struct subscriber *sub = subs_by_ifindex(h->subs, m->ifindex);
	if (!sub) {
		h->stats.unknown_client++;
		h->stats.dropped++;
		return;
	}
	sub->requests++;
	if (!sub_rate_ok(sub, m->now_ms, h->cfg->aftr.rate_limit, h->cfg->aftr.rate_burst)) {
		h->stats.rate_limited++;
		h->stats.dropped++;
		return;
	}
	if (op == NATPMP_OP_ADDR) {
		uint8_t out[12];
		struct wire_wr w = wire_wr_init(out, sizeof(out));
		wire_put_u8(&w, 0);
		wire_put_u8(&w, 128);
		wire_put_u16(&w, 0);
		wire_put_u32(&w, pcp_epoch(h, m->now));
		wire_put_bytes(&w, &sub->ext_addr.s6_addr[12], 4);
		h->reply(m, out, sizeof(out));
		return;
	}
	if (op != NATPMP_OP_UDP && op != NATPMP_OP_TCP) {
		/* RFC 6886 §3.5: the entire request is returned, R bit and result 5 set */
		if (len < 8) {
			natpmp_send(h, m, op, perr_to_natpmp(PERR_UNSUPP_OPCODE), 0, 0, 0);
			return;
		}
		uint8_t out[PCP_MAX_LEN];
		size_t n = len < sizeof(out) ? len : sizeof(out);
		memcpy(out, pkt, n);
		out[1] = (uint8_t)(op | 0x80);
		out[2] = 0;
		out[3] = (uint8_t)perr_to_natpmp(PERR_UNSUPP_OPCODE);
		h->reply(m, out, n);
		return;
	}
	if (len < 12) {
		h->stats.dropped++;
		return;
	}
	struct wire_rd r = wire_rd_init(pkt + 4, len - 4);
	uint16_t int_port = wire_get_u16(&r);
	uint16_t sugg_port = wire_get_u16(&r);
	uint32_t lifetime = wire_get_u32(&r);
	uint8_t proto = op == NATPMP_OP_UDP ? 17 : 6;

	if (!subs_internal_allowed(h->subs, &m->src)) {
		natpmp_send(h, m, op, perr_to_natpmp(PERR_NOT_AUTHORIZED), int_port, 0, 0);
		return;
	}
	if (lifetime == 0 && int_port == 0) {
		/* RFC 6886 §3.4: delete all of this client's mappings for proto */
		engine_delete_all_natpmp(h->eng, sub, proto, &m->src, m->now);
		natpmp_send(h, m, op, 0, 0, 0, 0);
		return;
	}
	if (int_port == 0) {
		natpmp_send(h, m, op, perr_to_natpmp(PERR_NOT_AUTHORIZED), 0, 0, 0);
		return;
	}
	struct ntxn *t = calloc(1, sizeof(*t));
	if (!t) {
		natpmp_send(h, m, op, perr_to_natpmp(PERR_NO_RESOURCES), int_port, 0, 0);
		return;
	}
	t->h = h;
	t->m = *m;
	t->op = op;
	t->int_port = int_port;
	t->del = lifetime == 0;
	struct engine_req rq;
	memset(&rq, 0, sizeof(rq));
	rq.sub = sub;
	rq.proto = proto;
	rq.int_addr = m->src;
	rq.int_port = int_port;
	rq.sugg_port = sugg_port;
	rq.lifetime = lifetime;
	rq.flags = BF_NATPMP;
	memcpy(rq.nonce, natpmp_nonce, sizeof(rq.nonce));
	rq.client_addr = m->src;
	rq.client_port = m->sport;
	rq.now = m->now;
	engine_map(h->eng, &rq, ntxn_done, t);
}
