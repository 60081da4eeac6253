/* Decoder fuzz target: no crash, decode/encode/decode is the identity on
 * accepted requests and responses, and every error answer is well framed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pcpd/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SAME(a, b, f) (memcmp(&(a)->f, &(b)->f, sizeof((a)->f)) == 0)

/* Field by field: struct padding is not part of the value. */
#define OPTIONS_EQUAL(a, b) \
	((a)->has_third_party == (b)->has_third_party && SAME(a, b, third_party) && \
	 (a)->prefer_failure == (b)->prefer_failure && (a)->nfilters == (b)->nfilters && \
	 filters_equal((a)->filters, (b)->filters, (a)->nfilters) && \
	 (a)->has_description == (b)->has_description && (a)->desc_len == (b)->desc_len && \
	 memcmp((a)->description, (b)->description, (a)->desc_len + 1u) == 0 && \
	 (a)->has_port_set == (b)->has_port_set && (a)->ps_size == (b)->ps_size && \
	 (a)->ps_first == (b)->ps_first && (a)->ps_parity == (b)->ps_parity)

static bool filters_equal(const struct pcp_filter *a, const struct pcp_filter *b, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (a[i].plen != b[i].plen || a[i].port != b[i].port ||
		    memcmp(&a[i].addr, &b[i].addr, sizeof(a[i].addr)) != 0)
			return false;
	return true;
}

static bool req_equal(const struct pcp_request *a, const struct pcp_request *b)
{
	return a->version == b->version && a->opcode == b->opcode &&
	       a->lifetime == b->lifetime && SAME(a, b, client_addr) && SAME(a, b, nonce) &&
	       a->proto == b->proto && a->int_port == b->int_port &&
	       a->sugg_port == b->sugg_port && SAME(a, b, sugg_addr) &&
	       a->peer_port == b->peer_port && SAME(a, b, peer_addr) && OPTIONS_EQUAL(a, b);
}

static bool rsp_equal(const struct pcp_response *a, const struct pcp_response *b)
{
	return a->opcode == b->opcode && a->result == b->result && a->lifetime == b->lifetime &&
	       a->epoch == b->epoch && SAME(a, b, nonce) && a->proto == b->proto &&
	       a->int_port == b->int_port && a->ext_port == b->ext_port &&
	       SAME(a, b, ext_addr) && a->peer_port == b->peer_port &&
	       SAME(a, b, peer_addr) && OPTIONS_EQUAL(a, b);
}

static uint8_t result_of(enum perr e)
{
	switch (e) {
	case PERR_UNSUPP_VERSION: return PCP_UNSUPP_VERSION;
	case PERR_MALFORMED_REQUEST: return PCP_MALFORMED_REQUEST;
	case PERR_UNSUPP_OPCODE: return PCP_UNSUPP_OPCODE;
	case PERR_UNSUPP_OPTION: return PCP_UNSUPP_OPTION;
	case PERR_MALFORMED_OPTION: return PCP_MALFORMED_OPTION;
	default: abort();       /* the decoder has no other verdicts */
	}
}

static void check_request(const uint8_t *data, size_t size)
{
	static struct pcp_request a, b;
	static uint8_t buf[PCP_MAX_LEN];
	bool parsed, parsed2;

	enum perr e = pcp_decode_request(data, size, &a, &parsed);
	if (e == PERR_DROP)
		return;
	if (e == PERR_OK) {
		/* options are only ever dropped, so it cannot grow */
		size_t n = pcp_encode_request(&a, buf, sizeof(buf));
		if (n == 0 || n > size)
			abort();
		if (pcp_decode_request(buf, n, &b, &parsed2) != PERR_OK || !parsed2 ||
		    !req_equal(&a, &b))
			abort();
		return;
	}
	size_t n = pcp_encode_error(data, size, parsed, result_of(e), 1800, 1, buf, sizeof(buf));
	if (n > PCP_MAX_LEN || n < PCP_HDR_LEN || n % 4 != 0)
		abort();
	if (buf[0] != PCP_VERSION || !(buf[1] & 0x80) || buf[3] != result_of(e))
		abort();
}

static void check_response(const uint8_t *data, size_t size)
{
	static struct pcp_response a, b;
	static uint8_t buf[PCP_MAX_LEN];

	if (pcp_decode_response(data, size, &a) != PERR_OK)
		return;
	size_t n = pcp_encode_response(&a, buf, sizeof(buf));
	if (n == 0 || pcp_decode_response(buf, n, &b) != PERR_OK || !rsp_equal(&a, &b))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_request(data, size);
	check_response(data, size);
	return 0;
}
