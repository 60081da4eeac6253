/* PCP wire codec (RFC 6887, RFC 7220 DESCRIPTION, RFC 7753 PORT_SET).
 *
 * Pure functions: no sockets, no clock, no global state. Decoding fills a
 * value struct that owns all its data (no pointers into the receive buffer)
 * or yields the exact RFC 6887 §8.2 verdict. Responses are written into a
 * caller-supplied buffer, never in place over the request. */
#ifndef PCPD_CODEC_H
#define PCPD_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#include "common/err.h"

#define PCP_VERSION 2
#define PCP_MAX_LEN 1100          /* §7: maximum UDP payload */
#define PCP_HDR_LEN 24
#define PCP_MAP_LEN 36            /* opcode data */
#define PCP_PEER_LEN 56
#define PCP_NONCE_LEN 12
#define PCP_SERVER_PORT 5351
#define PCP_CLIENT_PORT 5350

enum pcp_opcode { PCP_OP_ANNOUNCE = 0, PCP_OP_MAP = 1, PCP_OP_PEER = 2 };

enum pcp_result {
	PCP_SUCCESS = 0,
	PCP_UNSUPP_VERSION = 1,
	PCP_NOT_AUTHORIZED = 2,
	PCP_MALFORMED_REQUEST = 3,
	PCP_UNSUPP_OPCODE = 4,
	PCP_UNSUPP_OPTION = 5,
	PCP_MALFORMED_OPTION = 6,
	PCP_NETWORK_FAILURE = 7,
	PCP_NO_RESOURCES = 8,
	PCP_UNSUPP_PROTOCOL = 9,
	PCP_USER_EX_QUOTA = 10,
	PCP_CANNOT_PROVIDE_EXTERNAL = 11,
	PCP_ADDRESS_MISMATCH = 12,
	PCP_EXCESSIVE_REMOTE_PEERS = 13,
};

enum pcp_option_code {
	PCP_OPT_THIRD_PARTY = 1,
	PCP_OPT_PREFER_FAILURE = 2,
	PCP_OPT_FILTER = 3,
	PCP_OPT_DESCRIPTION = 128,   /* RFC 7220 */
	PCP_OPT_PORT_SET = 130,      /* RFC 7753 */
};

#define PCP_MAX_FILTERS 48           /* more than fit in 1100 octets (24 each) */
#define PCP_DESC_MAX 1016            /* RFC 7220 §3 */

struct pcp_filter {
	uint8_t plen;                /* on 128 bits: IPv4-mapped peers 96..128 */
	uint16_t port;               /* 0 = all ports */
	struct in6_addr addr;
};

/* A decoded request. Field presence follows the opcode. */
struct pcp_request {
	uint8_t version;
	uint8_t opcode;
	uint32_t lifetime;
	struct in6_addr client_addr;

	/* MAP and PEER */
	uint8_t nonce[PCP_NONCE_LEN];
	uint8_t proto;
	uint16_t int_port;
	uint16_t sugg_port;
	struct in6_addr sugg_addr;
	/* PEER only */
	uint16_t peer_port;
	struct in6_addr peer_addr;

	/* options, in the order they appeared for FILTER */
	bool has_third_party;
	struct in6_addr third_party;
	bool prefer_failure;
	unsigned nfilters;
	struct pcp_filter filters[PCP_MAX_FILTERS];
	bool has_description;        /* present and valid UTF-8 (else ignored, §RFC 7220) */
	uint16_t desc_len;
	char description[PCP_DESC_MAX + 1];  /* NUL-terminated copy */
	bool has_port_set;
	uint16_t ps_size;
	uint16_t ps_first;
	bool ps_parity;
};

/* Result of decoding (§8.2 order):
 *   PERR_DROP                 silently discard
 *   PERR_OK                   *req is filled
 *   PERR_UNSUPP_VERSION, PERR_MALFORMED_REQUEST, PERR_UNSUPP_OPCODE,
 *   PERR_UNSUPP_OPTION, PERR_MALFORMED_OPTION  -> answer with an error response
 * *parsed tells whether the header was parsed successfully: it selects the
 * §7.2 rule for the reserved 96 bits of an error response. Version 0
 * (NAT-PMP) yields PERR_UNSUPP_VERSION; the caller dispatches it before
 * decoding if NAT-PMP is enabled. */
enum perr pcp_decode_request(const uint8_t *pkt, size_t len, struct pcp_request *req,
			     bool *parsed);

/* Error response per §8.2/§7.3: a copy of the request (at most 1100 octets,
 * padded to a multiple of 4 and to at least 24), R bit set, version 2,
 * result, lifetime, epoch; reserved 96 bits zeroed when parsed, else the
 * request's last 96 bits of the client address are kept. Returns length. */
size_t pcp_encode_error(const uint8_t *req, size_t req_len, bool parsed, uint8_t result,
			uint32_t lifetime, uint32_t epoch, uint8_t *out, size_t cap);

/* A success (or Mapping Update / unsolicited ANNOUNCE) response. */
struct pcp_response {
	uint8_t opcode;
	uint8_t result;
	uint32_t lifetime;
	uint32_t epoch;
	/* MAP / PEER */
	uint8_t nonce[PCP_NONCE_LEN];
	uint8_t proto;
	uint16_t int_port;
	uint16_t ext_port;
	struct in6_addr ext_addr;
	uint16_t peer_port;
	struct in6_addr peer_addr;
	/* processed options to include */
	bool has_third_party;
	struct in6_addr third_party;
	bool prefer_failure;
	unsigned nfilters;
	struct pcp_filter filters[PCP_MAX_FILTERS];
	bool has_description;
	uint16_t desc_len;
	char description[PCP_DESC_MAX + 1];
	bool has_port_set;
	uint16_t ps_size;
	uint16_t ps_first;
	bool ps_parity;
};

/* Returns the length written, or 0 if it would not fit in cap or in 1100
 * octets (the caller then answers MALFORMED_REQUEST, §7.3). */
size_t pcp_encode_response(const struct pcp_response *rsp, uint8_t *out, size_t cap);

/* Request encoder: for the shipped client, tests and benchmarks. Options
 * are written in the order THIRD_PARTY, PREFER_FAILURE, FILTERs,
 * DESCRIPTION, PORT_SET. Returns length or 0. */
size_t pcp_encode_request(const struct pcp_request *req, uint8_t *out, size_t cap);

/* Response decoder for the client and tests (R bit must be set). */
enum perr pcp_decode_response(const uint8_t *pkt, size_t len, struct pcp_response *rsp);

const char *pcp_result_str(uint8_t result);
const char *pcp_opcode_str(uint8_t opcode);

#endif
