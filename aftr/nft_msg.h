/* nftables netlink messages for the kernel backend (aftr/nft_backend.c),
 * kept pure: everything here builds or parses bytes in memory and never
 * touches a socket, so tests/unit/test_nft.c checks it without a kernel.
 *
 * The ruleset (built with libnftnl; see nftm_batch_skeleton()):
 *
 *   table ip <name> {      # comment "pcpd"
 *     map sw_zone    { typeof iifname : ct zone; }
 *     map pub_zone   { typeof ip daddr . th dport : ct zone; flags interval; }
 *     map pub_mark   { typeof ip daddr . th dport : meta mark; flags interval; }
 *     map zone_block { typeof ct zone : interval ip saddr . th sport; }
 *     map zone_addr  { typeof ct zone : ip saddr; }
 *     map pcp_dnat   { typeof ip daddr . meta l4proto . th dport : ip daddr . th dport; flags timeout; }
 *     map pcp_snat   { typeof ct zone . ip saddr . meta l4proto . th sport : ip saddr . th sport; flags timeout; }
 *     map pcp_imark  { typeof ip daddr . meta l4proto . th dport : ct mark; flags timeout; }
 *     map pcp_omark  { typeof ct zone . ip saddr . meta l4proto . th sport : ct mark; flags timeout; }
 *     set pcp_filtered { typeof ip daddr . meta l4proto . th dport; flags timeout; }
 *     set pcp_allow  { typeof ip daddr . meta l4proto . th dport . ip saddr . th sport; flags interval, timeout; }
 *     chain raw_pre    { type filter hook prerouting priority raw; policy accept;
 *       ct zone set iifname map @sw_zone meta mark set 0x80000000 return
 *       ct zone set ip daddr . th dport map @pub_zone
 *       meta mark set ip daddr . th dport map @pub_mark }
 *     chain filter_pre { type filter hook prerouting priority -110; policy accept;
 *       ct state new ip daddr . meta l4proto . th dport @pcp_filtered
 *         ip daddr . meta l4proto . th dport . ip saddr . th sport != @pcp_allow drop }
 *     chain nat_pre    { type nat hook prerouting priority dstnat; policy accept;
 *       ct mark set ip daddr . meta l4proto . th dport map @pcp_imark
 *       dnat ip to ip daddr . meta l4proto . th dport map @pcp_dnat }
 *     chain nat_post   { type nat hook postrouting priority srcnat; policy accept;
 *       meta mark & 0x80000000 == 0 return
 *       ct mark set ct zone . ip saddr . meta l4proto . th sport map @pcp_omark
 *       snat ip to ct zone . ip saddr . meta l4proto . th sport map @pcp_snat
 *       meta l4proto { tcp, udp } snat ip to ct zone map @zone_block
 *       snat ip to ct zone map @zone_addr }
 *   }
 *
 * This is conf/pcpd-reference.nft with one change: zone_block is a plain
 * hash map (zone -> range), not an interval map; its key is one zone, so
 * the interval machinery (end elements, rbtree) bought nothing. The
 * expressions, set flags, key/data types and lengths and the sets' typeof
 * user data are those nft 1.0.6 generates for the reference file, so
 * `nft list table ip pcpd` prints the table the way it was written.
 *
 * Key and data layout (nft registers: every field of a concatenation is
 * padded to 4 bytes; addresses and ports in network order, ct zone, ct
 * mark and meta mark in host order):
 *   pcp_snat/pcp_omark key  zone(2)+pad . int addr(4) . proto(1)+pad . int port(2)+pad  = 16
 *   pcp_dnat/imark/filtered key  ext addr(4) . proto(1)+pad . ext port(2)+pad            = 12
 *   pcp_snat data  ext addr . ext port+pad (8)    pcp_dnat data  int addr . int port+pad (8)
 *   pcp_imark/pcp_omark data  ct mark (4)
 *   pcp_allow key  ext addr . proto . ext port . remote addr . remote port (20), with an end key
 *   sw_zone  ifname(16) -> zone(2); pub_zone/pub_mark  addr . port+pad (8, with end) -> zone / mark
 *   zone_block  zone(2) -> addr_min . port_min+pad . addr_max . port_max+pad (16)
 *   zone_addr   zone(2) -> addr (4)
 */
#ifndef AFTR_NFT_MSG_H
#define AFTR_NFT_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/netlink.h>

#include "aftr/backend.h"

/* Kernels >= 6.3 delete without failing on absent elements; Debian 12's
 * headers predate it. */
#ifndef NFT_MSG_DESTROYSETELEM
#define NFT_MSG_DESTROYSETELEM 30
#endif

enum nftm_set {
	NFTM_SW_ZONE,
	NFTM_PUB_ZONE,
	NFTM_PUB_MARK,
	NFTM_ZONE_BLOCK,
	NFTM_ZONE_ADDR,
	NFTM_DNAT,
	NFTM_SNAT,
	NFTM_IMARK,
	NFTM_OMARK,
	NFTM_FILTERED,
	NFTM_ALLOW,
	NFTM_NSETS
};

/* What the kernel reports about a set (GETSET), and what we expect. */
struct nftm_set_info {
	char name[64];
	uint32_t flags, key_type, key_len, data_type, data_len;
};

const char *nftm_set_name(enum nftm_set s);
/* -1 if the name is not one of ours. */
int nftm_set_by_name(const char *name);
/* The expected shape of set s (name, flags, types, lengths). */
void nftm_set_expected(enum nftm_set s, struct nftm_set_info *out);
/* The typeof user data nft 1.0.6 attaches to set s (for unit tests);
 * returns its length, 0 on error. buf holds 256 bytes. */
size_t nftm_set_udata(enum nftm_set s, uint8_t *buf);

/* ---- elements ---- */

#define NFTM_KEY_MAX 20
#define NFTM_DATA_MAX 16
#define NFTM_UDATA_MAX 256          /* NFT_USERDATA_MAXLEN */

struct nftm_elem {
	uint8_t set;                 /* enum nftm_set */
	uint8_t klen, dlen;          /* dlen 0 = no data (plain set) */
	bool has_end;                /* interval sets: key_end closes the range */
	uint8_t key[NFTM_KEY_MAX];
	uint8_t key_end[NFTM_KEY_MAX];
	uint8_t data[NFTM_DATA_MAX];
	uint64_t timeout_ms;         /* 0 = none (never expires) */
	uint64_t expiration_ms;      /* 0 = none; dumps report the time left */
	uint16_t ulen;
	const uint8_t *udata;        /* not owned */
};

/* IPv4 addresses are host-order uint32 (common/addr.h addr_to_v4). */
void nftm_snat_elem(struct nftm_elem *e, uint16_t zone, uint32_t int_v4, uint8_t proto,
		    uint16_t int_port, uint32_t ext_v4, uint16_t ext_port);
void nftm_omark_elem(struct nftm_elem *e, uint16_t zone, uint32_t int_v4, uint8_t proto,
		     uint16_t int_port, uint32_t mark);
void nftm_dnat_elem(struct nftm_elem *e, uint32_t ext_v4, uint8_t proto, uint16_t ext_port,
		    uint32_t int_v4, uint16_t int_port);
void nftm_imark_elem(struct nftm_elem *e, uint32_t ext_v4, uint8_t proto, uint16_t ext_port,
		     uint32_t mark);
void nftm_filtered_elem(struct nftm_elem *e, uint32_t ext_v4, uint8_t proto, uint16_t ext_port);

/* A remote range of a pcp_allow element: [addr_lo, addr_hi] x [port_lo, port_hi]. */
struct nftm_range {
	uint32_t addr_lo, addr_hi;
	uint16_t port_lo, port_hi;
};
void nftm_allow_elem(struct nftm_elem *e, uint32_t ext_v4, uint8_t proto, uint16_t ext_port,
		     const struct nftm_range *r);

void nftm_sw_zone_elem(struct nftm_elem *e, const char *ifname, uint16_t zone);
void nftm_pub_zone_elem(struct nftm_elem *e, uint32_t addr, uint16_t lo, uint16_t hi, uint16_t zone);
void nftm_pub_mark_elem(struct nftm_elem *e, uint32_t addr, uint16_t lo, uint16_t hi, uint32_t mark);
void nftm_zone_block_elem(struct nftm_elem *e, uint16_t zone, uint32_t addr, uint16_t lo, uint16_t hi);
void nftm_zone_addr_elem(struct nftm_elem *e, uint16_t zone, uint32_t addr);

/* Decoders; false if the lengths do not fit the set. */
bool nftm_snat_key_get(const struct nftm_elem *e, uint16_t *zone, uint32_t *int_v4,
		       uint8_t *proto, uint16_t *int_port);
bool nftm_ext_key_get(const struct nftm_elem *e, uint32_t *ext_v4, uint8_t *proto,
		      uint16_t *ext_port);           /* dnat, imark, filtered, allow (first 12 bytes) */
bool nftm_nat_data_get(const struct nftm_elem *e, uint32_t *v4, uint16_t *port);
bool nftm_mark_get(const struct nftm_elem *e, uint32_t *mark);   /* imark, omark, pub_mark */
bool nftm_allow_range_get(const struct nftm_elem *e, struct nftm_range *r);
bool nftm_zone_data_get(const struct nftm_elem *e, uint16_t *zone);   /* sw_zone, pub_zone */
bool nftm_zone_key_get(const struct nftm_elem *e, uint16_t *zone);    /* zone_block, zone_addr */
bool nftm_pub_key_get(const struct nftm_elem *e, uint32_t *addr, uint16_t *lo, uint16_t *hi);
bool nftm_ifname_get(const struct nftm_elem *e, char *ifname /* IF_NAMESIZE */);
bool nftm_zone_block_data_get(const struct nftm_elem *e, uint32_t *addr, uint16_t *lo, uint16_t *hi);
bool nftm_zone_addr_data_get(const struct nftm_elem *e, uint32_t *addr);
/* Same key (and end key). */
bool nftm_elem_key_equal(const struct nftm_elem *a, const struct nftm_elem *b);

/* ---- filters -> pcp_allow ranges ---- */

/* The remote ranges of a filter list as pcp_allow elements: the IPv4 part
 * of each filter (IPv4-mapped, plen on 128 bits; port 0 = any), with
 * duplicates and filters covered by another removed, and an any-port
 * filter nested in a larger single-port filter cut around that port, so
 * no two ranges overlap (the pipapo set refuses overlapping elements).
 * Sorted. Returns how many ranges there are; only the first max are
 * written. */
size_t nftm_filter_ranges(const struct aftr_filter *f, unsigned n, struct nftm_range *out,
			  size_t max);
/* The inverse, for restore when the filters did not fit the user data:
 * the normalised filter list (IPv4-mapped) that gives those ranges.
 * Returns the count (only the first max written); -1 if a range is not
 * one nftm_filter_ranges() makes. */
long nftm_filters_from_ranges(const struct nftm_range *r, size_t n, struct aftr_filter *out,
			      size_t max);

/* ---- element user data (the pcp_snat element) ---- */

/* See the format description in nft_msg.c. */
#define NFTM_UD_TLV 0x50
#define NFTM_UD_VERSION 1
#define NFTM_UD_MAX_FILTERS 36
#define NFTM_UD_MAX_PEERS 12
#define NFTM_UD_FILTERS_OMITTED 0x01  /* did not fit: rebuild from pcp_allow */
#define NFTM_UD_PEERS_OMITTED 0x02    /* some PEER parts did not fit */

struct nftm_ud {
	uint8_t flags;               /* binding flags (BF_*) */
	uint8_t info;                /* NFTM_UD_* */
	uint32_t sub;
	uint8_t nonce[BINDING_NONCE_LEN];
	unsigned nfilters;
	struct aftr_filter filters[NFTM_UD_MAX_FILTERS];
	unsigned npeers;
	struct kpeer peers[NFTM_UD_MAX_PEERS];  /* .timeout = seconds left at now_real */
	uint32_t peer_expiry[NFTM_UD_MAX_PEERS];  /* CLOCK_REALTIME seconds */
};

/* Encodes c's restart data; now_real = CLOCK_REALTIME seconds. Returns
 * the length (<= NFTM_UDATA_MAX). */
size_t nftm_ud_encode(uint8_t *buf, const struct kchange *c, uint32_t now_real);
/* Decodes; false if it is not ours or malformed. Peer timeouts are what
 * is left at now_real (0 if past). */
bool nftm_ud_decode(const uint8_t *buf, size_t len, uint32_t now_real, struct nftm_ud *out);
/* Same content; peer expiries may differ by up to slack seconds. */
bool nftm_ud_equivalent(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
			uint32_t slack);

/* ---- buffers and batches ---- */

struct nftm_buf {
	uint8_t *p;
	size_t len, cap;
	bool oom;                    /* an append failed: the content is incomplete */
};
void nftm_buf_init(struct nftm_buf *b);
void nftm_buf_free(struct nftm_buf *b);
void nftm_buf_reset(struct nftm_buf *b);
bool nftm_buf_reserve(struct nftm_buf *b, size_t more);

/* Appends one element (a complete NFTA_LIST_ELEM attribute). */
bool nftm_elem_put(struct nftm_buf *b, const struct nftm_elem *e);

/* Element operations; DEL is DESTROYSETELEM or DELSETELEM (destroy flag
 * of nftm_batch_elems), ADD is NEWSETELEM with NLM_F_EXCL, UPD is
 * NEWSETELEM without it (creates, or updates an existing element's
 * timeout on kernels >= 6.10). */
enum nftm_op { NFTM_OP_DEL, NFTM_OP_ADD, NFTM_OP_UPD, NFTM_NOPS };

struct nftm_msginfo {
	uint32_t seq;
	uint16_t type;               /* NFT_MSG_* */
	uint8_t set;                 /* enum nftm_set, or 0xff */
	uint8_t op;                  /* enum nftm_op, or 0xff */
	uint32_t nelems;
};

/* A transaction being assembled: BEGIN, messages, END. Every message
 * asks for an ack (NLM_F_ACK); BEGIN/END do not. */
struct nftm_batch {
	struct nftm_buf b;
	uint32_t seq;                /* next sequence number */
	uint32_t begin_seq;
	struct nftm_msginfo *msgs;
	unsigned nmsgs, msgcap;
};
void nftm_batch_init(struct nftm_batch *bt, uint32_t seq);
void nftm_batch_free(struct nftm_batch *bt);
/* Empties it and starts a new transaction (writes BEGIN). */
bool nftm_batch_begin(struct nftm_batch *bt);
bool nftm_batch_end(struct nftm_batch *bt);
/* The messages (not BEGIN/END) whose seq is seq; NULL if none. */
const struct nftm_msginfo *nftm_batch_msg(const struct nftm_batch *bt, uint32_t seq);

/* Element messages for a stream of NFTA_LIST_ELEM attributes (as written
 * by nftm_elem_put), split so that no NFTA_SET_ELEM_LIST_ELEMENTS nest
 * exceeds netlink's 16-bit attribute length. */
bool nftm_batch_elems(struct nftm_batch *bt, const char *table, enum nftm_set set,
		      enum nftm_op op, bool destroy, const uint8_t *elems, size_t len);
/* The whole table: NEWTABLE, the sets, chains and rules above. */
bool nftm_batch_skeleton(struct nftm_batch *bt, const char *table);
bool nftm_batch_deltable(struct nftm_batch *bt, const char *table);

/* Largest content of one NFTA_SET_ELEM_LIST_ELEMENTS nest. */
#define NFTM_NEST_MAX (UINT16_MAX - 4)

/* Non-batch requests (each a single message in buf, which must hold 512
 * bytes): table get, set dump, element dump/get. */
struct nlmsghdr *nftm_req_gettable(void *buf, const char *table, uint32_t seq);
struct nlmsghdr *nftm_req_getsets(void *buf, const char *table, uint32_t seq);
struct nlmsghdr *nftm_req_getchains(void *buf, const char *table, uint32_t seq);
struct nlmsghdr *nftm_req_dumpelems(void *buf, const char *table, enum nftm_set set,
				    uint32_t seq);
/* GETSETELEM for one key (not a dump). */
struct nlmsghdr *nftm_req_getelem(void *buf, const char *table, const struct nftm_elem *e,
				  uint32_t seq);

/* ---- parsing ---- */

/* Parses a NEWSETELEM message (dump or get reply): cb gets each element
 * (its udata points into the message). The set must be one of ours.
 * Returns 0, -1 if malformed, or cb's non-zero return. */
typedef int (*nftm_elem_cb)(const struct nftm_elem *e, void *arg);
int nftm_parse_elems(const struct nlmsghdr *nlh, nftm_elem_cb cb, void *arg);
/* Parses a NEWSET message. */
bool nftm_parse_set(const struct nlmsghdr *nlh, struct nftm_set_info *out);
/* Name of a NEWCHAIN message (buf holds 64 bytes). */
bool nftm_parse_chain_name(const struct nlmsghdr *nlh, char *buf);

/* ---- errors ---- */
enum perr nftm_errno_perr(int err);

/* ---- test hooks of the nftables backend (aftr/nft_backend.c) ---- */

/* Pretend the kernel lacks DESTROYSETELEM / in-place timeout update. */
void nftb_test_compat(struct kbackend *kb, bool no_destroy, bool no_timeout_update);
/* Probe results of open(): destroy supported, timeout update supported. */
void nftb_test_caps(struct kbackend *kb, bool *destroy, bool *timeout_update);
/* The next n transactions lose their acks as if the receive queue had
 * overflowed (ENOBUFS). */
void nftb_test_lose_acks(struct kbackend *kb, unsigned n);
/* Maximum changes per transaction (default NFTB_MAX_TXN_CHANGES). */
void nftb_test_txn_cap(struct kbackend *kb, unsigned n);
#define NFTB_MAX_TXN_CHANGES 4096

/* qsort order of ranges (address, then ports): the canonical order in
 * which filters are compared and written. */
int nftm_range_cmp(const void *pa, const void *pb);

#endif
