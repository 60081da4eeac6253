/* nftables netlink messages for the kernel backend: pure functions over
 * memory buffers (no sockets), see nft_msg.h for the ruleset and the key
 * layouts.
 *
 * Element user data of a pcp_snat element
 * ----------------------------------------
 * Everything restore() needs that the keys and data do not already say.
 * It is one nftnl_udata TLV of a private type, so nft(8) -- which parses
 * element user data as TLVs (0 = comment, 1 = flags) -- skips it and
 * `nft list` keeps working:
 *
 *   off  size
 *   0    1    TLV type NFTM_UD_TLV (0x50)
 *   1    1    TLV length L: the bytes that follow (<= 254)
 *   2    1    version (1)
 *   3    1    binding flags (BF_*; BF_PENDING is never stored)
 *   4    1    info: bit 0 = filters omitted (they did not fit: restore
 *             rebuilds them from the binding's pcp_allow elements),
 *             bit 1 = some PEER parts omitted (did not fit, or not IPv4)
 *   5    4    subscriber index
 *   9    12   MAP nonce
 *   21   1    number of filters F, then F filters, each
 *               IPv4-mapped with plen >= 96:
 *                 [plen - 96 (0..32)] [port (2)] [IPv4 address (4)]       7 bytes
 *               anything else:
 *                 [0xff] [plen (0..128)] [port (2)] [IPv6 address (16)]  20 bytes
 *   .    1    number of peers P, then P peers, each
 *               [IPv4 address (4)] [port (2)] [nonce (12)] [expiry (4)]   22 bytes
 *             expiry = CLOCK_REALTIME seconds when the PEER part ends
 *             (absolute, so that an unchanged peer encodes the same at
 *             every refresh; restore gives back what is left).
 * Multi-byte fields are big endian. The fixed part is 23 bytes, leaving
 * 233: up to 33 IPv4 filters or 10 peers. Filters are all or nothing (a
 * subset would change what the mapping lets in); then peers in order
 * until the next one does not fit.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>

#include "aftr/nft_msg.h"
#include "common/addr.h"

/* ---- set descriptions ---- */

/* nft's datatype ids (src/datatype.h) and how a concatenation of types is
 * folded into one key type (6 bits per field). */
#define TYPE_INTEGER 4
#define TYPE_IPADDR 7
#define TYPE_INET_PROTOCOL 12
#define TYPE_INET_SERVICE 13
#define TYPE_MARK 19
#define TYPE_IFNAME 41
#define CAT2(a, b) (((a) << 6) | (b))
#define CAT3(a, b, c) (CAT2(CAT2(a, b), c))

/* nft's expression ids and payload template ids in the typeof user data,
 * as nft 1.0.6 writes them. */
enum { TY_PAYLOAD = 7, TY_META = 9, TY_CT = 12, TY_CONCAT = 13 };
enum { PD_TH = 11, PD_IP = 12 };            /* payload protocol descriptions */
enum { IPH_SADDR = 11, IPH_DADDR = 12 };    /* ip header templates */
enum { THH_SPORT = 1, THH_DPORT = 2 };      /* th header templates */

struct tyx {
	uint8_t kind;
	uint32_t a, b;     /* payload: desc, template; meta: key; ct: key, direction */
};
#define X_IP_DADDR { TY_PAYLOAD, PD_IP, IPH_DADDR }
#define X_IP_SADDR { TY_PAYLOAD, PD_IP, IPH_SADDR }
#define X_TH_DPORT { TY_PAYLOAD, PD_TH, THH_DPORT }
#define X_TH_SPORT { TY_PAYLOAD, PD_TH, THH_SPORT }
#define X_L4PROTO { TY_META, NFT_META_L4PROTO, 0 }
#define X_IIFNAME { TY_META, NFT_META_IIFNAME, 0 }
#define X_META_MARK { TY_META, NFT_META_MARK, 0 }
#define X_CT_ZONE { TY_CT, NFT_CT_ZONE, 0xffffffffu }
#define X_CT_MARK { TY_CT, NFT_CT_MARK, 0xffffffffu }

struct set_desc {
	const char *name;
	uint32_t flags, ktype, klen, dtype, dlen;
	uint8_t nfields;             /* NFTA_SET_DESC_CONCAT (interval concatenations) */
	uint8_t fields[5];
	int8_t kbo, dbo, dint;       /* byte order / data interval user data, -1 = absent */
	uint8_t nk, nd;
	struct tyx k[5], d[2];
};

#define F_MAP NFT_SET_MAP
#define F_TMO NFT_SET_TIMEOUT
#define F_INT NFT_SET_INTERVAL
#define F_CAT 0x80                   /* NFT_SET_CONCAT (kernel 5.6) */

static const struct set_desc sets[NFTM_NSETS] = {
	[NFTM_SW_ZONE] = { "sw_zone", F_MAP, TYPE_IFNAME, 16, TYPE_INTEGER, 2, 0, {0},
			   1, 1, 0, 1, 1, { X_IIFNAME }, { X_CT_ZONE } },
	[NFTM_PUB_ZONE] = { "pub_zone", F_CAT | F_MAP | F_INT, CAT2(TYPE_IPADDR, TYPE_INET_SERVICE),
			    8, TYPE_INTEGER, 2, 2, { 4, 2 },
			    0, 1, 0, 2, 1, { X_IP_DADDR, X_TH_DPORT }, { X_CT_ZONE } },
	[NFTM_PUB_MARK] = { "pub_mark", F_CAT | F_MAP | F_INT, CAT2(TYPE_IPADDR, TYPE_INET_SERVICE),
			    8, TYPE_MARK, 4, 2, { 4, 2 },
			    0, 1, 0, 2, 1, { X_IP_DADDR, X_TH_DPORT }, { X_META_MARK } },
	[NFTM_ZONE_BLOCK] = { "zone_block", F_MAP, TYPE_INTEGER, 2,
			      CAT2(TYPE_IPADDR, TYPE_INET_SERVICE), 16, 0, {0},
			      1, 0, 1, 1, 2, { X_CT_ZONE }, { X_IP_SADDR, X_TH_SPORT } },
	[NFTM_ZONE_ADDR] = { "zone_addr", F_MAP, TYPE_INTEGER, 2, TYPE_IPADDR, 4, 0, {0},
			     1, 2, 0, 1, 1, { X_CT_ZONE }, { X_IP_SADDR } },
	[NFTM_DNAT] = { "pcp_dnat", F_MAP | F_TMO,
			CAT3(TYPE_IPADDR, TYPE_INET_PROTOCOL, TYPE_INET_SERVICE), 12,
			CAT2(TYPE_IPADDR, TYPE_INET_SERVICE), 8, 0, {0},
			0, 0, 0, 3, 2, { X_IP_DADDR, X_L4PROTO, X_TH_DPORT },
			{ X_IP_DADDR, X_TH_DPORT } },
	[NFTM_SNAT] = { "pcp_snat", F_MAP | F_TMO,
			CAT2(CAT3(TYPE_INTEGER, TYPE_IPADDR, TYPE_INET_PROTOCOL), TYPE_INET_SERVICE), 16,
			CAT2(TYPE_IPADDR, TYPE_INET_SERVICE), 8, 0, {0},
			0, 0, 0, 4, 2, { X_CT_ZONE, X_IP_SADDR, X_L4PROTO, X_TH_SPORT },
			{ X_IP_SADDR, X_TH_SPORT } },
	[NFTM_IMARK] = { "pcp_imark", F_MAP | F_TMO,
			 CAT3(TYPE_IPADDR, TYPE_INET_PROTOCOL, TYPE_INET_SERVICE), 12, TYPE_MARK, 4,
			 0, {0}, 0, 1, 0, 3, 1, { X_IP_DADDR, X_L4PROTO, X_TH_DPORT }, { X_CT_MARK } },
	[NFTM_OMARK] = { "pcp_omark", F_MAP | F_TMO,
			 CAT2(CAT3(TYPE_INTEGER, TYPE_IPADDR, TYPE_INET_PROTOCOL), TYPE_INET_SERVICE),
			 16, TYPE_MARK, 4, 0, {0}, 0, 1, 0, 4, 1,
			 { X_CT_ZONE, X_IP_SADDR, X_L4PROTO, X_TH_SPORT }, { X_CT_MARK } },
	[NFTM_FILTERED] = { "pcp_filtered", F_TMO,
			    CAT3(TYPE_IPADDR, TYPE_INET_PROTOCOL, TYPE_INET_SERVICE), 12, 0, 0, 0, {0},
			    0, -1, -1, 3, 0, { X_IP_DADDR, X_L4PROTO, X_TH_DPORT }, {{0}} },
	/* nft 1.0.6 records only the first four fields of this typeof (and
	 * so lists the set by its types); the same here */
	[NFTM_ALLOW] = { "pcp_allow", F_CAT | F_INT | F_TMO,
			 CAT2(CAT2(CAT3(TYPE_IPADDR, TYPE_INET_PROTOCOL, TYPE_INET_SERVICE),
				   TYPE_IPADDR), TYPE_INET_SERVICE), 20, 0, 0, 5, { 4, 1, 2, 4, 2 },
			 0, -1, -1, 4, 0, { X_IP_DADDR, X_L4PROTO, X_TH_DPORT, X_IP_SADDR },
			 {{0}} },
};

/* The anonymous { tcp, udp } of nat_post. */
static const struct set_desc anon_l4 = { "__set%d", NFT_SET_ANONYMOUS | NFT_SET_CONSTANT,
					 TYPE_INET_PROTOCOL, 1, 0, 0, 0, {0}, 1, -1, -1, 1, 0,
					 { X_L4PROTO }, {{0}} };

const char *nftm_set_name(enum nftm_set s)
{
	return (unsigned)s < NFTM_NSETS ? sets[s].name : "?";
}

int nftm_set_by_name(const char *name)
{
	for (int i = 0; i < NFTM_NSETS; i++)
		if (strcmp(sets[i].name, name) == 0)
			return i;
	return -1;
}

void nftm_set_expected(enum nftm_set s, struct nftm_set_info *out)
{
	const struct set_desc *d = &sets[s];
	memset(out, 0, sizeof(*out));
	strncpy(out->name, d->name, sizeof(out->name) - 1);
	out->flags = d->flags;
	out->key_type = d->ktype;
	out->key_len = d->klen;
	out->data_type = d->dtype;
	out->data_len = d->dlen;
}

static void put_typeof1(struct nftnl_udata_buf *u, const struct tyx *x)
{
	nftnl_udata_put_u32(u, NFTNL_UDATA_SET_TYPEOF_EXPR, x->kind);
	struct nftnl_udata *n = nftnl_udata_nest_start(u, NFTNL_UDATA_SET_TYPEOF_DATA);
	nftnl_udata_put_u32(u, 0, x->a);
	if (x->kind != TY_META)
		nftnl_udata_put_u32(u, 1, x->b);
	nftnl_udata_nest_end(u, n);
}

static void put_typeof(struct nftnl_udata_buf *u, uint8_t type, const struct tyx *xs, unsigned n)
{
	struct nftnl_udata *outer = nftnl_udata_nest_start(u, type);
	if (n == 1) {
		put_typeof1(u, xs);
	} else {
		nftnl_udata_put_u32(u, NFTNL_UDATA_SET_TYPEOF_EXPR, TY_CONCAT);
		struct nftnl_udata *d = nftnl_udata_nest_start(u, NFTNL_UDATA_SET_TYPEOF_DATA);
		for (unsigned i = 0; i < n; i++) {
			struct nftnl_udata *it = nftnl_udata_nest_start(u, (uint8_t)i);
			put_typeof1(u, &xs[i]);
			nftnl_udata_nest_end(u, it);
		}
		nftnl_udata_nest_end(u, d);
	}
	nftnl_udata_nest_end(u, outer);
}

static size_t desc_udata(const struct set_desc *d, uint8_t *buf)
{
	struct nftnl_udata_buf *u = nftnl_udata_buf_alloc(NFTM_UDATA_MAX);
	if (!u)
		return 0;
	if (d->kbo >= 0)
		nftnl_udata_put_u32(u, NFTNL_UDATA_SET_KEYBYTEORDER, (uint32_t)d->kbo);
	if (d->dbo >= 0)
		nftnl_udata_put_u32(u, NFTNL_UDATA_SET_DATABYTEORDER, (uint32_t)d->dbo);
	put_typeof(u, NFTNL_UDATA_SET_KEY_TYPEOF, d->k, d->nk);
	if (d->nd)
		put_typeof(u, NFTNL_UDATA_SET_DATA_TYPEOF, d->d, d->nd);
	if (d->dint >= 0)
		nftnl_udata_put_u32(u, NFTNL_UDATA_SET_DATA_INTERVAL, (uint32_t)d->dint);
	size_t len = nftnl_udata_buf_len(u);
	if (len > NFTM_UDATA_MAX)
		len = 0;
	else
		memcpy(buf, nftnl_udata_buf_data(u), len);
	nftnl_udata_buf_free(u);
	return len;
}

size_t nftm_set_udata(enum nftm_set s, uint8_t *buf)
{
	if ((unsigned)s >= NFTM_NSETS)
		return 0;
	return desc_udata(&sets[s], buf);
}

/* ---- keys and data ---- */

static void put_be32(uint8_t *p, uint32_t v)
{
	v = htonl(v);
	memcpy(p, &v, 4);
}

static void put_be16(uint8_t *p, uint16_t v)
{
	v = htons(v);
	memcpy(p, &v, 2);
}

static uint32_t get_be32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return ntohl(v);
}

static uint16_t get_be16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return ntohs(v);
}

static void elem_init(struct nftm_elem *e, enum nftm_set s)
{
	memset(e, 0, sizeof(*e));
	e->set = (uint8_t)s;
	e->klen = (uint8_t)sets[s].klen;
	e->dlen = (uint8_t)sets[s].dlen;
}

static void snat_key(uint8_t *k, uint16_t zone, uint32_t int_v4, uint8_t proto, uint16_t port)
{
	memcpy(k, &zone, 2);         /* host order, as "ct zone" loads it */
	put_be32(k + 4, int_v4);
	k[8] = proto;
	put_be16(k + 12, port);
}

static void ext_key(uint8_t *k, uint32_t ext_v4, uint8_t proto, uint16_t port)
{
	put_be32(k, ext_v4);
	k[4] = proto;
	put_be16(k + 8, port);
}

void nftm_snat_elem(struct nftm_elem *e, uint16_t zone, uint32_t int_v4, uint8_t proto,
		    uint16_t int_port, uint32_t ext_v4, uint16_t ext_port)
{
	elem_init(e, NFTM_SNAT);
	snat_key(e->key, zone, int_v4, proto, int_port);
	put_be32(e->data, ext_v4);
	put_be16(e->data + 4, ext_port);
}

void nftm_omark_elem(struct nftm_elem *e, uint16_t zone, uint32_t int_v4, uint8_t proto,
		     uint16_t int_port, uint32_t mark)
{
	elem_init(e, NFTM_OMARK);
	snat_key(e->key, zone, int_v4, proto, int_port);
	memcpy(e->data, &mark, 4);
}

void nftm_dnat_elem(struct nftm_elem *e, uint32_t ext_v4, uint8_t proto, uint16_t ext_port,
		    uint32_t int_v4, uint16_t int_port)
{
	elem_init(e, NFTM_DNAT);
	ext_key(e->key, ext_v4, proto, ext_port);
	put_be32(e->data, int_v4);
	put_be16(e->data + 4, int_port);
}

void nftm_imark_elem(struct nftm_elem *e, uint32_t ext_v4, uint8_t proto, uint16_t ext_port,
		     uint32_t mark)
{
	elem_init(e, NFTM_IMARK);
	ext_key(e->key, ext_v4, proto, ext_port);
	memcpy(e->data, &mark, 4);
}

void nftm_filtered_elem(struct nftm_elem *e, uint32_t ext_v4, uint8_t proto, uint16_t ext_port)
{
	elem_init(e, NFTM_FILTERED);
	ext_key(e->key, ext_v4, proto, ext_port);
}

void nftm_allow_elem(struct nftm_elem *e, uint32_t ext_v4, uint8_t proto, uint16_t ext_port,
		     const struct nftm_range *r)
{
	elem_init(e, NFTM_ALLOW);
	e->has_end = true;
	ext_key(e->key, ext_v4, proto, ext_port);
	memcpy(e->key_end, e->key, 12);
	put_be32(e->key + 12, r->addr_lo);
	put_be16(e->key + 16, r->port_lo);
	put_be32(e->key_end + 12, r->addr_hi);
	put_be16(e->key_end + 16, r->port_hi);
}

void nftm_sw_zone_elem(struct nftm_elem *e, const char *ifname, uint16_t zone)
{
	elem_init(e, NFTM_SW_ZONE);
	strncpy((char *)e->key, ifname, 15);     /* IFNAMSIZ, NUL padded */
	memcpy(e->data, &zone, 2);
}

static void pub_key(struct nftm_elem *e, uint32_t addr, uint16_t lo, uint16_t hi)
{
	e->has_end = true;
	put_be32(e->key, addr);
	put_be16(e->key + 4, lo);
	put_be32(e->key_end, addr);
	put_be16(e->key_end + 4, hi);
}

void nftm_pub_zone_elem(struct nftm_elem *e, uint32_t addr, uint16_t lo, uint16_t hi, uint16_t zone)
{
	elem_init(e, NFTM_PUB_ZONE);
	pub_key(e, addr, lo, hi);
	memcpy(e->data, &zone, 2);
}

void nftm_pub_mark_elem(struct nftm_elem *e, uint32_t addr, uint16_t lo, uint16_t hi, uint32_t mark)
{
	elem_init(e, NFTM_PUB_MARK);
	pub_key(e, addr, lo, hi);
	memcpy(e->data, &mark, 4);
}

void nftm_zone_block_elem(struct nftm_elem *e, uint16_t zone, uint32_t addr, uint16_t lo, uint16_t hi)
{
	elem_init(e, NFTM_ZONE_BLOCK);
	memcpy(e->key, &zone, 2);
	put_be32(e->data, addr);
	put_be16(e->data + 4, lo);
	put_be32(e->data + 8, addr);
	put_be16(e->data + 12, hi);
}

void nftm_zone_addr_elem(struct nftm_elem *e, uint16_t zone, uint32_t addr)
{
	elem_init(e, NFTM_ZONE_ADDR);
	memcpy(e->key, &zone, 2);
	put_be32(e->data, addr);
}

bool nftm_snat_key_get(const struct nftm_elem *e, uint16_t *zone, uint32_t *int_v4,
		       uint8_t *proto, uint16_t *int_port)
{
	if (e->klen != 16)
		return false;
	memcpy(zone, e->key, 2);
	*int_v4 = get_be32(e->key + 4);
	*proto = e->key[8];
	*int_port = get_be16(e->key + 12);
	return true;
}

bool nftm_ext_key_get(const struct nftm_elem *e, uint32_t *ext_v4, uint8_t *proto,
		      uint16_t *ext_port)
{
	if (e->klen != 12 && e->klen != 20)
		return false;
	*ext_v4 = get_be32(e->key);
	*proto = e->key[4];
	*ext_port = get_be16(e->key + 8);
	return true;
}

bool nftm_nat_data_get(const struct nftm_elem *e, uint32_t *v4, uint16_t *port)
{
	if (e->dlen != 8)
		return false;
	*v4 = get_be32(e->data);
	*port = get_be16(e->data + 4);
	return true;
}

bool nftm_mark_get(const struct nftm_elem *e, uint32_t *mark)
{
	if (e->dlen != 4)
		return false;
	memcpy(mark, e->data, 4);
	return true;
}

bool nftm_allow_range_get(const struct nftm_elem *e, struct nftm_range *r)
{
	if (e->klen != 20 || !e->has_end || memcmp(e->key, e->key_end, 12) != 0)
		return false;
	r->addr_lo = get_be32(e->key + 12);
	r->port_lo = get_be16(e->key + 16);
	r->addr_hi = get_be32(e->key_end + 12);
	r->port_hi = get_be16(e->key_end + 16);
	return r->addr_lo <= r->addr_hi && r->port_lo <= r->port_hi;
}

bool nftm_zone_data_get(const struct nftm_elem *e, uint16_t *zone)
{
	if (e->dlen != 2)
		return false;
	memcpy(zone, e->data, 2);
	return true;
}

bool nftm_zone_key_get(const struct nftm_elem *e, uint16_t *zone)
{
	if (e->klen != 2)
		return false;
	memcpy(zone, e->key, 2);
	return true;
}

bool nftm_pub_key_get(const struct nftm_elem *e, uint32_t *addr, uint16_t *lo, uint16_t *hi)
{
	if (e->klen != 8 || !e->has_end || get_be32(e->key) != get_be32(e->key_end))
		return false;
	*addr = get_be32(e->key);
	*lo = get_be16(e->key + 4);
	*hi = get_be16(e->key_end + 4);
	return *lo <= *hi;
}

bool nftm_ifname_get(const struct nftm_elem *e, char *ifname)
{
	if (e->klen != 16 || memchr(e->key, 0, 16) == NULL)
		return false;
	memcpy(ifname, e->key, 16);
	return true;
}

bool nftm_zone_block_data_get(const struct nftm_elem *e, uint32_t *addr, uint16_t *lo, uint16_t *hi)
{
	if (e->dlen != 16 || get_be32(e->data) != get_be32(e->data + 8))
		return false;
	*addr = get_be32(e->data);
	*lo = get_be16(e->data + 4);
	*hi = get_be16(e->data + 12);
	return true;
}

bool nftm_zone_addr_data_get(const struct nftm_elem *e, uint32_t *addr)
{
	if (e->dlen != 4)
		return false;
	*addr = get_be32(e->data);
	return true;
}

bool nftm_elem_key_equal(const struct nftm_elem *a, const struct nftm_elem *b)
{
	if (a->set != b->set || a->klen != b->klen || a->has_end != b->has_end ||
	    memcmp(a->key, b->key, a->klen) != 0)
		return false;
	return !a->has_end || memcmp(a->key_end, b->key_end, a->klen) == 0;
}

/* ---- filters ---- */

struct v4f {
	uint32_t lo, hi;
	uint16_t port;
	bool keep;
};

static const uint8_t v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static bool bits_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned bytes = bits / 8, rest = bits % 8;
	if (memcmp(a, b, bytes) != 0)
		return false;
	if (rest) {
		uint8_t m = (uint8_t)(0xff << (8 - rest));
		if ((a[bytes] & m) != (b[bytes] & m))
			return false;
	}
	return true;
}

/* The IPv4 part of a filter's prefix; false if it has none. */
static bool filter_v4(const struct aftr_filter *f, uint32_t *lo, uint32_t *hi)
{
	unsigned p = f->plen > 128 ? 128 : f->plen;
	if (!bits_equal(f->addr.s6_addr, v4mapped_prefix, p < 96 ? p : 96))
		return false;
	if (p <= 96) {
		*lo = 0;
		*hi = UINT32_MAX;
		return true;
	}
	unsigned p4 = p - 96;
	uint32_t mask = p4 == 0 ? 0 : UINT32_MAX << (32 - p4);
	uint32_t a = get_be32(f->addr.s6_addr + 12);
	*lo = a & mask;
	*hi = *lo | ~mask;
	return true;
}

static bool covers(const struct v4f *y, const struct v4f *x)
{
	return y->lo <= x->lo && x->hi <= y->hi && (y->port == 0 || y->port == x->port);
}

static int cmp_u16(const void *a, const void *b)
{
	return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

int nftm_range_cmp(const void *pa, const void *pb)
{
	const struct nftm_range *a = pa, *b = pb;
	if (a->addr_lo != b->addr_lo)
		return a->addr_lo < b->addr_lo ? -1 : 1;
	if (a->addr_hi != b->addr_hi)
		return a->addr_hi < b->addr_hi ? -1 : 1;
	if (a->port_lo != b->port_lo)
		return a->port_lo < b->port_lo ? -1 : 1;
	return (int)a->port_hi - (int)b->port_hi;
}

/* Appends a range if there is room; counts it anyway. */
static void emit(struct nftm_range *out, size_t max, size_t *n, uint32_t lo, uint32_t hi,
		 uint16_t plo, uint16_t phi)
{
	if (*n < max)
		out[*n] = (struct nftm_range){ lo, hi, plo, phi };
	(*n)++;
}

size_t nftm_filter_ranges(const struct aftr_filter *f, unsigned n, struct nftm_range *out,
			  size_t max)
{
	if (n == 0)
		return 0;
	struct v4f *v = calloc(n, sizeof(*v));
	uint16_t *ports = calloc(n, sizeof(*ports));
	if (!v || !ports) {
		free(v);
		free(ports);
		return SIZE_MAX;
	}
	unsigned nv = 0;
	for (unsigned i = 0; i < n; i++) {
		if (filter_v4(&f[i], &v[nv].lo, &v[nv].hi)) {
			v[nv].port = f[i].port;
			v[nv].keep = true;
			nv++;
		}
	}
	/* drop what another filter covers (of two equal ones, the later) */
	for (unsigned i = 0; i < nv; i++) {
		for (unsigned j = 0; j < nv && v[i].keep; j++) {
			if (i == j || !v[j].keep || !covers(&v[j], &v[i]))
				continue;
			if (!covers(&v[i], &v[j]) || j < i)
				v[i].keep = false;
		}
	}
	size_t cnt = 0;
	for (unsigned i = 0; i < nv; i++) {
		if (!v[i].keep)
			continue;
		if (v[i].port != 0) {
			emit(out, max, &cnt, v[i].lo, v[i].hi, v[i].port, v[i].port);
			continue;
		}
		/* any port: cut around the ports of larger single-port filters,
		 * which would otherwise overlap it */
		unsigned np = 0;
		for (unsigned j = 0; j < nv; j++)
			if (v[j].keep && v[j].port != 0 && v[j].lo <= v[i].lo && v[i].hi <= v[j].hi)
				ports[np++] = v[j].port;
		qsort(ports, np, sizeof(ports[0]), cmp_u16);
		uint32_t from = 0;
		for (unsigned k = 0; k < np; k++) {
			if (k && ports[k] == ports[k - 1])
				continue;
			if (ports[k] > from)
				emit(out, max, &cnt, v[i].lo, v[i].hi, (uint16_t)from,
				     (uint16_t)(ports[k] - 1));
			from = (uint32_t)ports[k] + 1;
		}
		if (from <= UINT16_MAX)
			emit(out, max, &cnt, v[i].lo, v[i].hi, (uint16_t)from, UINT16_MAX);
	}
	if (cnt <= max)
		qsort(out, cnt, sizeof(*out), nftm_range_cmp);
	free(v);
	free(ports);
	return cnt;
}

long nftm_filters_from_ranges(const struct nftm_range *r, size_t n, struct aftr_filter *out,
			      size_t max)
{
	if (n == 0)
		return 0;
	struct aftr_filter *f = calloc(n, sizeof(*f));
	struct nftm_range *chk = calloc(n + 1, sizeof(*chk));
	struct nftm_range *in = calloc(n, sizeof(*in));
	long res = -1;
	if (!f || !chk || !in)
		goto out;
	for (size_t i = 0; i < n; i++) {
		uint64_t size = (uint64_t)r[i].addr_hi - r[i].addr_lo + 1;
		if (r[i].addr_hi < r[i].addr_lo || (size & (size - 1)) != 0 ||
		    (r[i].addr_lo & (uint32_t)(size - 1)) != 0 || r[i].port_hi < r[i].port_lo)
			goto out;
		unsigned bits = 0;
		while (((uint64_t)1 << bits) < size)
			bits++;
		addr_from_v4(&f[i].addr, r[i].addr_lo);
		f[i].plen = (uint8_t)(96 + 32 - bits);
		/* a cut piece of an any-port filter (or the full range) means
		 * any port; a single port is a port filter unless covered */
		f[i].port = r[i].port_lo == r[i].port_hi ? r[i].port_lo : 0;
	}
	/* normalise: the same function that made the ranges decides */
	size_t m = nftm_filter_ranges(f, (unsigned)n, chk, n + 1);
	memcpy(in, r, n * sizeof(*in));
	qsort(in, n, sizeof(*in), nftm_range_cmp);
	if (m != n || memcmp(chk, in, n * sizeof(*in)) != 0)
		goto out;
	/* the filters that survive normalisation */
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t lo, hi;
		filter_v4(&f[i], &lo, &hi);
		struct v4f me = { lo, hi, f[i].port, true };
		bool dropped = false;
		for (size_t j = 0; j < n && !dropped; j++) {
			uint32_t lo2, hi2;
			if (j == i)
				continue;
			filter_v4(&f[j], &lo2, &hi2);
			struct v4f other = { lo2, hi2, f[j].port, true };
			if (covers(&other, &me) && (!covers(&me, &other) || j < i))
				dropped = true;
		}
		if (dropped)
			continue;
		if (k < max)
			out[k] = f[i];
		k++;
	}
	res = (long)k;
out:
	free(f);
	free(chk);
	free(in);
	return res;
}

/* ---- element user data ---- */

#define UD_HDR 23
#define UD_V4F 7
#define UD_V6F 20
#define UD_PEER 22

static bool filter_is_v4(const struct aftr_filter *f)
{
	return f->plen >= 96 && f->plen <= 128 && addr_is_v4mapped(&f->addr);
}

size_t nftm_ud_encode(uint8_t *buf, const struct kchange *c, uint32_t now_real)
{
	size_t room = NFTM_UDATA_MAX - UD_HDR;
	size_t flen = 0;
	uint8_t info = 0;
	unsigned nf = c->filters ? c->nfilters : 0;
	for (unsigned i = 0; i < nf; i++)
		flen += filter_is_v4(&c->filters[i]) ? UD_V4F : UD_V6F;
	if (nf > NFTM_UD_MAX_FILTERS || flen > room) {
		info |= NFTM_UD_FILTERS_OMITTED;
		nf = 0;
		flen = 0;
	}
	room -= flen;
	uint8_t *p = buf + 2;
	*p++ = NFTM_UD_VERSION;
	*p++ = c->flags & (uint8_t)~BF_PENDING;
	uint8_t *infop = p++;
	put_be32(p, c->sub);
	p += 4;
	memcpy(p, c->nonce, BINDING_NONCE_LEN);
	p += BINDING_NONCE_LEN;
	*p++ = (uint8_t)nf;
	for (unsigned i = 0; i < nf; i++) {
		const struct aftr_filter *f = &c->filters[i];
		if (filter_is_v4(f)) {
			*p++ = (uint8_t)(f->plen - 96);
			put_be16(p, f->port);
			memcpy(p + 2, f->addr.s6_addr + 12, 4);
			p += 6;
		} else {
			*p++ = 0xff;
			*p++ = f->plen;
			put_be16(p, f->port);
			memcpy(p + 2, f->addr.s6_addr, 16);
			p += 18;
		}
	}
	uint8_t *np = p++;
	unsigned npk = 0;
	unsigned npeers = c->peers ? c->npeers : 0;
	for (unsigned i = 0; i < npeers; i++) {
		const struct kpeer *k = &c->peers[i];
		if (!addr_is_v4mapped(&k->addr)) {
			info |= NFTM_UD_PEERS_OMITTED;
			continue;
		}
		if (room < UD_PEER || npk >= NFTM_UD_MAX_PEERS) {
			info |= NFTM_UD_PEERS_OMITTED;
			break;
		}
		memcpy(p, k->addr.s6_addr + 12, 4);
		put_be16(p + 4, k->port);
		memcpy(p + 6, k->nonce, BINDING_NONCE_LEN);
		put_be32(p + 18, now_real + k->timeout);
		p += UD_PEER;
		room -= UD_PEER;
		npk++;
	}
	*np = (uint8_t)npk;
	*infop = info;
	size_t len = (size_t)(p - buf);
	buf[0] = NFTM_UD_TLV;
	buf[1] = (uint8_t)(len - 2);
	return len;
}

bool nftm_ud_decode(const uint8_t *buf, size_t len, uint32_t now_real, struct nftm_ud *out)
{
	memset(out, 0, sizeof(*out));
	if (!buf || len < UD_HDR || len > NFTM_UDATA_MAX || buf[0] != NFTM_UD_TLV ||
	    buf[1] != len - 2 || buf[2] != NFTM_UD_VERSION)
		return false;
	const uint8_t *p = buf + 3, *end = buf + len;
	out->flags = *p++;
	out->info = *p++;
	if (out->info & ~(NFTM_UD_FILTERS_OMITTED | NFTM_UD_PEERS_OMITTED))
		return false;
	if (out->flags & BF_PENDING)
		return false;
	out->sub = get_be32(p);
	p += 4;
	memcpy(out->nonce, p, BINDING_NONCE_LEN);
	p += BINDING_NONCE_LEN;
	unsigned nf = *p++;
	if (nf > NFTM_UD_MAX_FILTERS || (nf && (out->info & NFTM_UD_FILTERS_OMITTED)))
		return false;
	for (unsigned i = 0; i < nf; i++) {
		struct aftr_filter *f = &out->filters[i];
		if (p >= end)
			return false;
		if (*p != 0xff) {
			if (*p > 32 || end - p < UD_V4F)
				return false;
			f->plen = (uint8_t)(*p + 96);
			f->port = get_be16(p + 1);
			addr_from_v4(&f->addr, get_be32(p + 3));
			p += UD_V4F;
		} else {
			if (end - p < UD_V6F || p[1] > 128)
				return false;
			f->plen = p[1];
			f->port = get_be16(p + 2);
			memcpy(f->addr.s6_addr, p + 4, 16);
			p += UD_V6F;
		}
	}
	out->nfilters = nf;
	if (p >= end)
		return false;
	unsigned npk = *p++;
	if (npk > NFTM_UD_MAX_PEERS || (size_t)(end - p) != (size_t)npk * UD_PEER)
		return false;
	for (unsigned i = 0; i < npk; i++) {
		struct kpeer *k = &out->peers[i];
		addr_from_v4(&k->addr, get_be32(p));
		k->port = get_be16(p + 4);
		memcpy(k->nonce, p + 6, BINDING_NONCE_LEN);
		uint32_t exp = get_be32(p + 18);
		out->peer_expiry[i] = exp;
		k->timeout = (int32_t)(exp - now_real) > 0 ? exp - now_real : 0;
		p += UD_PEER;
	}
	out->npeers = npk;
	return true;
}

bool nftm_ud_equivalent(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
			uint32_t slack)
{
	if (alen != blen)
		return false;
	if (alen == 0 || memcmp(a, b, alen) == 0)
		return true;
	struct nftm_ud *x = malloc(2 * sizeof(*x));
	if (!x)
		return false;
	struct nftm_ud *y = x + 1;
	bool same = nftm_ud_decode(a, alen, 0, x) && nftm_ud_decode(b, blen, 0, y) &&
		    x->flags == y->flags && x->info == y->info && x->sub == y->sub &&
		    memcmp(x->nonce, y->nonce, sizeof(x->nonce)) == 0 &&
		    x->nfilters == y->nfilters && x->npeers == y->npeers &&
		    memcmp(x->filters, y->filters, x->nfilters * sizeof(x->filters[0])) == 0;
	for (unsigned i = 0; same && i < x->npeers; i++) {
		const struct kpeer *p = &x->peers[i], *q = &y->peers[i];
		int32_t d = (int32_t)(x->peer_expiry[i] - y->peer_expiry[i]);
		same = addr_equal(&p->addr, &q->addr) && p->port == q->port &&
		       memcmp(p->nonce, q->nonce, sizeof(p->nonce)) == 0 &&
		       (uint32_t)(d < 0 ? -d : d) <= slack;
	}
	free(x);
	return same;
}

/* ---- buffers ---- */

void nftm_buf_init(struct nftm_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void nftm_buf_free(struct nftm_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

void nftm_buf_reset(struct nftm_buf *b)
{
	b->len = 0;
	b->oom = false;
}

bool nftm_buf_reserve(struct nftm_buf *b, size_t more)
{
	if (b->len + more <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more)
		cap *= 2;
	uint8_t *p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

/* Attribute writer over a buffer: 4-byte aligned, zero padding. */
static void put_attr(struct nftm_buf *b, uint16_t type, const void *data, size_t len)
{
	struct nlattr *a = (struct nlattr *)(b->p + b->len);
	size_t tot = NLA_ALIGN(NLA_HDRLEN + len);
	a->nla_type = type;
	a->nla_len = (uint16_t)(NLA_HDRLEN + len);
	memcpy((uint8_t *)a + NLA_HDRLEN, data, len);
	memset((uint8_t *)a + NLA_HDRLEN + len, 0, tot - NLA_HDRLEN - len);
	b->len += tot;
}

static size_t nest_start(struct nftm_buf *b, uint16_t type)
{
	size_t off = b->len;
	struct nlattr *a = (struct nlattr *)(b->p + off);
	a->nla_type = type | NLA_F_NESTED;
	a->nla_len = NLA_HDRLEN;
	b->len += NLA_HDRLEN;
	return off;
}

static void nest_end(struct nftm_buf *b, size_t off)
{
	struct nlattr *a = (struct nlattr *)(b->p + off);
	a->nla_len = (uint16_t)(b->len - off);
}

static void put_value(struct nftm_buf *b, uint16_t type, const uint8_t *v, size_t len)
{
	size_t n = nest_start(b, type);
	put_attr(b, NFTA_DATA_VALUE, v, len);
	nest_end(b, n);
}

static void put_be64_attr(struct nftm_buf *b, uint16_t type, uint64_t v)
{
	uint64_t be = htobe64(v);
	put_attr(b, type, &be, 8);
}

bool nftm_elem_put(struct nftm_buf *b, const struct nftm_elem *e)
{
	/* at most: nest 4 + key 28 + end 28 + data 24 + 2 x 12 + udata 260 */
	if (!nftm_buf_reserve(b, 512))
		return false;
	size_t el = nest_start(b, NFTA_LIST_ELEM);
	put_value(b, NFTA_SET_ELEM_KEY, e->key, e->klen);
	if (e->has_end)
		put_value(b, NFTA_SET_ELEM_KEY_END, e->key_end, e->klen);
	if (e->dlen)
		put_value(b, NFTA_SET_ELEM_DATA, e->data, e->dlen);
	if (e->timeout_ms)
		put_be64_attr(b, NFTA_SET_ELEM_TIMEOUT, e->timeout_ms);
	if (e->expiration_ms)
		put_be64_attr(b, NFTA_SET_ELEM_EXPIRATION, e->expiration_ms);
	if (e->ulen && e->udata)
		put_attr(b, NFTA_SET_ELEM_USERDATA, e->udata,
			 e->ulen > NFTM_UDATA_MAX ? NFTM_UDATA_MAX : e->ulen);
	nest_end(b, el);
	return true;
}

/* ---- batches ---- */

void nftm_batch_init(struct nftm_batch *bt, uint32_t seq)
{
	memset(bt, 0, sizeof(*bt));
	nftm_buf_init(&bt->b);
	bt->seq = seq;
}

void nftm_batch_free(struct nftm_batch *bt)
{
	nftm_buf_free(&bt->b);
	free(bt->msgs);
	bt->msgs = NULL;
	bt->nmsgs = bt->msgcap = 0;
}

static bool note_msg(struct nftm_batch *bt, uint32_t seq, uint16_t type, uint8_t set, uint8_t op,
		     uint32_t nelems)
{
	if (bt->nmsgs == bt->msgcap) {
		unsigned cap = bt->msgcap ? bt->msgcap * 2 : 32;
		struct nftm_msginfo *m = realloc(bt->msgs, cap * sizeof(*m));
		if (!m) {
			bt->b.oom = true;
			return false;
		}
		bt->msgs = m;
		bt->msgcap = cap;
	}
	bt->msgs[bt->nmsgs++] = (struct nftm_msginfo){ seq, type, set, op, nelems };
	return true;
}

bool nftm_batch_begin(struct nftm_batch *bt)
{
	nftm_buf_reset(&bt->b);
	bt->nmsgs = 0;
	if (!nftm_buf_reserve(&bt->b, 64))
		return false;
	bt->begin_seq = bt->seq++;
	struct nlmsghdr *nlh = nftnl_batch_begin((char *)bt->b.p, bt->begin_seq);
	bt->b.len += NLMSG_ALIGN(nlh->nlmsg_len);
	return true;
}

bool nftm_batch_end(struct nftm_batch *bt)
{
	if (!nftm_buf_reserve(&bt->b, 64))
		return false;
	struct nlmsghdr *nlh = nftnl_batch_end((char *)(bt->b.p + bt->b.len), bt->seq++);
	bt->b.len += NLMSG_ALIGN(nlh->nlmsg_len);
	return !bt->b.oom;
}

const struct nftm_msginfo *nftm_batch_msg(const struct nftm_batch *bt, uint32_t seq)
{
	/* messages are numbered consecutively after BEGIN */
	if (bt->nmsgs == 0)
		return NULL;
	uint32_t i = seq - bt->msgs[0].seq;
	if (i < bt->nmsgs && bt->msgs[i].seq == seq)
		return &bt->msgs[i];
	for (unsigned k = 0; k < bt->nmsgs; k++)
		if (bt->msgs[k].seq == seq)
			return &bt->msgs[k];
	return NULL;
}

static struct nlmsghdr *msg_start(struct nftm_buf *b, uint16_t type, uint16_t flags, uint32_t seq)
{
	struct nlmsghdr *nlh = (struct nlmsghdr *)(b->p + b->len);
	memset(nlh, 0, NLMSG_HDRLEN + sizeof(struct nfgenmsg));
	nlh->nlmsg_type = (uint16_t)((NFNL_SUBSYS_NFTABLES << 8) | type);
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = seq;
	struct nfgenmsg *g = (struct nfgenmsg *)((uint8_t *)nlh + NLMSG_HDRLEN);
	g->nfgen_family = NFPROTO_IPV4;
	g->version = NFNETLINK_V0;
	g->res_id = 0;
	b->len += NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg));
	return nlh;
}

static void put_strz(struct nftm_buf *b, uint16_t type, const char *s)
{
	put_attr(b, type, s, strlen(s) + 1);
}

static bool elems_msg(struct nftm_batch *bt, const char *table, enum nftm_set set,
		      enum nftm_op op, bool destroy, const uint8_t *elems, size_t len,
		      uint32_t nelems)
{
	size_t need = 64 + strlen(table) + 16 + len;
	if (!nftm_buf_reserve(&bt->b, need))
		return false;
	uint16_t type = op == NFTM_OP_DEL ? (destroy ? NFT_MSG_DESTROYSETELEM : NFT_MSG_DELSETELEM)
					  : NFT_MSG_NEWSETELEM;
	uint16_t flags = NLM_F_ACK;
	if (op == NFTM_OP_ADD)
		flags |= NLM_F_CREATE | NLM_F_EXCL;
	else if (op == NFTM_OP_UPD)
		flags |= NLM_F_CREATE;
	uint32_t seq = bt->seq++;
	size_t start = bt->b.len;
	struct nlmsghdr *nlh = msg_start(&bt->b, type, flags, seq);
	put_strz(&bt->b, NFTA_SET_ELEM_LIST_TABLE, table);
	put_strz(&bt->b, NFTA_SET_ELEM_LIST_SET, sets[set].name);
	size_t n = nest_start(&bt->b, NFTA_SET_ELEM_LIST_ELEMENTS);
	memcpy(bt->b.p + bt->b.len, elems, len);
	bt->b.len += len;
	nest_end(&bt->b, n);
	nlh = (struct nlmsghdr *)(bt->b.p + start);
	nlh->nlmsg_len = (uint32_t)(bt->b.len - start);
	return note_msg(bt, seq, type, (uint8_t)set, (uint8_t)op, nelems);
}

bool nftm_batch_elems(struct nftm_batch *bt, const char *table, enum nftm_set set,
		      enum nftm_op op, bool destroy, const uint8_t *elems, size_t len)
{
	size_t start = 0, off = 0;
	uint32_t n = 0;
	while (off < len) {
		const struct nlattr *a = (const struct nlattr *)(elems + off);
		size_t alen = NLA_ALIGN(a->nla_len);
		if (a->nla_len < NLA_HDRLEN || off + alen > len)
			return false;
		if (off + alen - start > NFTM_NEST_MAX) {
			if (!elems_msg(bt, table, set, op, destroy, elems + start, off - start, n))
				return false;
			start = off;
			n = 0;
		}
		off += alen;
		n++;
	}
	if (off > start)
		return elems_msg(bt, table, set, op, destroy, elems + start, off - start, n);
	return true;
}

/* ---- the skeleton, with libnftnl ---- */

#define OBJ_ROOM 16384

static struct nlmsghdr *obj_hdr(struct nftm_batch *bt, uint16_t type, uint16_t flags,
				uint32_t *seq)
{
	if (!nftm_buf_reserve(&bt->b, OBJ_ROOM))
		return NULL;
	*seq = bt->seq++;
	return nftnl_nlmsg_build_hdr((char *)(bt->b.p + bt->b.len), type, NFPROTO_IPV4,
				     flags | NLM_F_ACK, *seq);
}

static bool obj_done(struct nftm_batch *bt, struct nlmsghdr *nlh, uint32_t seq, uint16_t type)
{
	bt->b.len += NLMSG_ALIGN(nlh->nlmsg_len);
	return note_msg(bt, seq, type, 0xff, 0xff, 0);
}

static struct nftnl_set *set_obj(const char *table, const struct set_desc *d, uint32_t id)
{
	uint8_t ud[NFTM_UDATA_MAX];
	size_t ulen = desc_udata(d, ud);
	struct nftnl_set *s = nftnl_set_alloc();
	if (!s || !ulen) {
		nftnl_set_free(s);
		return NULL;
	}
	nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, d->name);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_IPV4);
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, d->flags);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, d->ktype);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, d->klen);
	if (d->flags & NFT_SET_MAP) {
		nftnl_set_set_u32(s, NFTNL_SET_DATA_TYPE, d->dtype);
		nftnl_set_set_u32(s, NFTNL_SET_DATA_LEN, d->dlen);
	}
	if (d->nfields)
		nftnl_set_set_data(s, NFTNL_SET_DESC_CONCAT, d->fields, d->nfields);
	nftnl_set_set_u32(s, NFTNL_SET_ID, id);
	nftnl_set_set_data(s, NFTNL_SET_USERDATA, ud, (uint32_t)ulen);
	return s;
}

static bool add_set(struct nftm_batch *bt, struct nftnl_set *s)
{
	uint32_t seq;
	if (!s)
		return false;
	struct nlmsghdr *nlh = obj_hdr(bt, NFT_MSG_NEWSET, NLM_F_CREATE, &seq);
	if (!nlh) {
		nftnl_set_free(s);
		return false;
	}
	nftnl_set_nlmsg_build_payload(nlh, s);
	nftnl_set_free(s);
	return obj_done(bt, nlh, seq, NFT_MSG_NEWSET);
}

static bool add_chain(struct nftm_batch *bt, const char *table, const char *name,
		      const char *type, uint32_t hook, int32_t prio)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	uint32_t seq;
	if (!c)
		return false;
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_IPV4);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, type);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, hook);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	struct nlmsghdr *nlh = obj_hdr(bt, NFT_MSG_NEWCHAIN, NLM_F_CREATE, &seq);
	if (!nlh) {
		nftnl_chain_free(c);
		return false;
	}
	nftnl_chain_nlmsg_build_payload(nlh, c);
	nftnl_chain_free(c);
	return obj_done(bt, nlh, seq, NFT_MSG_NEWCHAIN);
}

/* Expression helpers; each appends to r and returns false on failure. */
static bool ex_add(struct nftnl_rule *r, struct nftnl_expr *e)
{
	if (!e)
		return false;
	nftnl_rule_add_expr(r, e);
	return true;
}

static bool ex_payload(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len, uint32_t dreg)
{
	struct nftnl_expr *e = nftnl_expr_alloc("payload");
	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
	return ex_add(r, e);
}

static bool ex_meta(struct nftnl_rule *r, uint32_t key, uint32_t dreg, uint32_t sreg)
{
	struct nftnl_expr *e = nftnl_expr_alloc("meta");
	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	if (dreg)
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
	else
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_SREG, sreg);
	return ex_add(r, e);
}

static bool ex_ct(struct nftnl_rule *r, uint32_t key, uint32_t dreg, uint32_t sreg)
{
	struct nftnl_expr *e = nftnl_expr_alloc("ct");
	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
	if (dreg)
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, dreg);
	else
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_SREG, sreg);
	return ex_add(r, e);
}

static bool ex_lookup(struct nftnl_rule *r, const char *set, uint32_t set_id, uint32_t sreg,
		      uint32_t dreg, uint32_t flags)
{
	struct nftnl_expr *e = nftnl_expr_alloc("lookup");
	if (!e)
		return false;
	nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, set_id);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, sreg);
	if (dreg)
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, dreg);
	if (flags)
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, flags);
	return ex_add(r, e);
}

static bool ex_imm_u32(struct nftnl_rule *r, uint32_t dreg, uint32_t v)
{
	struct nftnl_expr *e = nftnl_expr_alloc("immediate");
	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, dreg);
	nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, &v, sizeof(v));
	return ex_add(r, e);
}

static bool ex_verdict(struct nftnl_rule *r, int verdict)
{
	struct nftnl_expr *e = nftnl_expr_alloc("immediate");
	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)verdict);
	return ex_add(r, e);
}

static bool ex_mask_cmp(struct nftnl_rule *r, uint32_t reg, uint32_t mask, enum nft_cmp_ops op,
			uint32_t val)
{
	uint32_t zero = 0;
	struct nftnl_expr *e = nftnl_expr_alloc("bitwise");
	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, reg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, reg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, 4);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &mask, 4);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &zero, 4);
	if (!ex_add(r, e))
		return false;
	e = nftnl_expr_alloc("cmp");
	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, reg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, &val, 4);
	return ex_add(r, e);
}

static bool ex_hton(struct nftnl_rule *r, uint32_t reg, uint32_t len, uint32_t size)
{
	struct nftnl_expr *e = nftnl_expr_alloc("byteorder");
	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_SREG, reg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_DREG, reg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_OP, NFT_BYTEORDER_HTON);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_LEN, len);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_SIZE, size);
	return ex_add(r, e);
}

static bool ex_nat(struct nftnl_rule *r, uint32_t type, uint32_t amin, uint32_t amax, uint32_t pmin,
		   uint32_t pmax)
{
	struct nftnl_expr *e = nftnl_expr_alloc("nat");
	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_TYPE, type);
	nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FAMILY, NFPROTO_IPV4);
	nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, amin);
	if (amax)
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MAX, amax);
	if (pmin)
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN, pmin);
	if (pmax)
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MAX, pmax);
	return ex_add(r, e);
}

/* 32-bit register numbers (NFT_REG32_00 = 8 is the first word of NFT_REG_1). */
#define R1 NFT_REG_1
#define R9 NFT_REG32_01
#define R10 NFT_REG32_02
#define R11 NFT_REG32_03
#define R12 NFT_REG32_04
#define NH NFT_PAYLOAD_NETWORK_HEADER
#define TH NFT_PAYLOAD_TRANSPORT_HEADER
#define IP_SADDR_OFF 12
#define IP_DADDR_OFF 16

/* ip daddr . meta l4proto . th dport in R1, R9, R10 */
static bool ld_ext(struct nftnl_rule *r)
{
	return ex_payload(r, NH, IP_DADDR_OFF, 4, R1) && ex_meta(r, NFT_META_L4PROTO, R9, 0) &&
	       ex_payload(r, TH, 2, 2, R10);
}

/* ct zone . ip saddr . meta l4proto . th sport in R1, R9, R10, R11 */
static bool ld_int(struct nftnl_rule *r)
{
	return ex_ct(r, NFT_CT_ZONE, R1, 0) && ex_payload(r, NH, IP_SADDR_OFF, 4, R9) &&
	       ex_meta(r, NFT_META_L4PROTO, R10, 0) && ex_payload(r, TH, 0, 2, R11);
}

enum { SID_BASE = 1, SID_ANON = SID_BASE + NFTM_NSETS };

static bool lk(struct nftnl_rule *r, enum nftm_set s, uint32_t dreg, uint32_t flags)
{
	return ex_lookup(r, sets[s].name, SID_BASE + (uint32_t)s, R1, dreg, flags);
}

static bool add_rule(struct nftm_batch *bt, const char *table, const char *chain, int which)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	uint32_t seq;
	if (!r)
		return false;
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_IPV4);
	bool ok = false;
	switch (which) {
	case 0:  /* ct zone set iifname map @sw_zone meta mark set 0x80000000 return */
		ok = ex_meta(r, NFT_META_IIFNAME, R1, 0) && lk(r, NFTM_SW_ZONE, R1, 0) &&
		     ex_ct(r, NFT_CT_ZONE, 0, R1) && ex_imm_u32(r, R1, KMARK_SOFTWIRE) &&
		     ex_meta(r, NFT_META_MARK, 0, R1) && ex_verdict(r, NFT_RETURN);
		break;
	case 1:  /* ct zone set ip daddr . th dport map @pub_zone */
		ok = ex_payload(r, NH, IP_DADDR_OFF, 4, R1) && ex_payload(r, TH, 2, 2, R9) &&
		     lk(r, NFTM_PUB_ZONE, R1, 0) && ex_ct(r, NFT_CT_ZONE, 0, R1);
		break;
	case 2:  /* meta mark set ip daddr . th dport map @pub_mark */
		ok = ex_payload(r, NH, IP_DADDR_OFF, 4, R1) && ex_payload(r, TH, 2, 2, R9) &&
		     lk(r, NFTM_PUB_MARK, R1, 0) && ex_meta(r, NFT_META_MARK, 0, R1);
		break;
	case 3:  /* ct state new ... @pcp_filtered ... != @pcp_allow drop */
		ok = ex_ct(r, NFT_CT_STATE, R1, 0) &&
		     ex_mask_cmp(r, R1, NF_CT_STATE_BIT(IP_CT_NEW), NFT_CMP_NEQ, 0) &&
		     ld_ext(r) && lk(r, NFTM_FILTERED, 0, 0) &&
		     ex_payload(r, NH, IP_DADDR_OFF, 4, R1) &&
		     ex_meta(r, NFT_META_L4PROTO, R9, 0) && ex_hton(r, R9, 1, 2) &&
		     ex_payload(r, TH, 2, 2, R10) && ex_payload(r, NH, IP_SADDR_OFF, 4, R11) &&
		     ex_payload(r, TH, 0, 2, R12) && lk(r, NFTM_ALLOW, 0, NFT_LOOKUP_F_INV) &&
		     ex_verdict(r, NF_DROP);
		break;
	case 4:  /* ct mark set ip daddr . meta l4proto . th dport map @pcp_imark */
		ok = ld_ext(r) && lk(r, NFTM_IMARK, R1, 0) && ex_ct(r, NFT_CT_MARK, 0, R1);
		break;
	case 5:  /* dnat ip to ip daddr . meta l4proto . th dport map @pcp_dnat */
		ok = ld_ext(r) && lk(r, NFTM_DNAT, R1, 0) && ex_nat(r, NFT_NAT_DNAT, R1, 0, R9, 0);
		break;
	case 6:  /* meta mark & 0x80000000 == 0 return */
		ok = ex_meta(r, NFT_META_MARK, R1, 0) &&
		     ex_mask_cmp(r, R1, KMARK_SOFTWIRE, NFT_CMP_EQ, 0) && ex_verdict(r, NFT_RETURN);
		break;
	case 7:  /* ct mark set ct zone . ip saddr . meta l4proto . th sport map @pcp_omark */
		ok = ld_int(r) && lk(r, NFTM_OMARK, R1, 0) && ex_ct(r, NFT_CT_MARK, 0, R1);
		break;
	case 8:  /* snat ip to ct zone . ip saddr . meta l4proto . th sport map @pcp_snat */
		ok = ld_int(r) && lk(r, NFTM_SNAT, R1, 0) && ex_nat(r, NFT_NAT_SNAT, R1, 0, R9, 0);
		break;
	case 9:  /* meta l4proto { tcp, udp } snat ip to ct zone map @zone_block */
		ok = ex_meta(r, NFT_META_L4PROTO, R1, 0) &&
		     ex_lookup(r, anon_l4.name, SID_ANON, R1, 0, 0) &&
		     ex_ct(r, NFT_CT_ZONE, R1, 0) && lk(r, NFTM_ZONE_BLOCK, R1, 0) &&
		     ex_nat(r, NFT_NAT_SNAT, R1, R10, R9, R11);
		break;
	case 10: /* snat ip to ct zone map @zone_addr */
		ok = ex_ct(r, NFT_CT_ZONE, R1, 0) && lk(r, NFTM_ZONE_ADDR, R1, 0) &&
		     ex_nat(r, NFT_NAT_SNAT, R1, 0, 0, 0);
		break;
	}
	struct nlmsghdr *nlh = ok ? obj_hdr(bt, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, &seq)
				  : NULL;
	if (nlh)
		nftnl_rule_nlmsg_build_payload(nlh, r);
	nftnl_rule_free(r);
	return nlh && obj_done(bt, nlh, seq, NFT_MSG_NEWRULE);
}

static bool add_anon_set(struct nftm_batch *bt, const char *table)
{
	struct nftnl_set *s = set_obj(table, &anon_l4, SID_ANON);
	if (!s)
		return false;
	nftnl_set_set_u32(s, NFTNL_SET_DESC_SIZE, 2);
	/* the set message takes s; build the elements on a second object */
	if (!add_set(bt, s))
		return false;
	s = nftnl_set_alloc();
	if (!s)
		return false;
	nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, anon_l4.name);
	nftnl_set_set_u32(s, NFTNL_SET_ID, SID_ANON);
	static const uint8_t protos[2] = { IPPROTO_TCP, IPPROTO_UDP };
	for (int i = 0; i < 2; i++) {
		struct nftnl_set_elem *e = nftnl_set_elem_alloc();
		if (!e) {
			nftnl_set_free(s);
			return false;
		}
		nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, &protos[i], 1);
		nftnl_set_elem_add(s, e);
	}
	uint32_t seq;
	struct nlmsghdr *nlh = obj_hdr(bt, NFT_MSG_NEWSETELEM, NLM_F_CREATE, &seq);
	if (!nlh) {
		nftnl_set_free(s);
		return false;
	}
	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	nftnl_set_free(s);
	return obj_done(bt, nlh, seq, NFT_MSG_NEWSETELEM);
}

bool nftm_batch_skeleton(struct nftm_batch *bt, const char *table)
{
	struct nftnl_table *t = nftnl_table_alloc();
	struct nftnl_udata_buf *u = nftnl_udata_buf_alloc(64);
	uint32_t seq;
	if (!t || !u) {
		nftnl_table_free(t);
		nftnl_udata_buf_free(u);
		return false;
	}
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, table);
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_IPV4);
	nftnl_table_set_u32(t, NFTNL_TABLE_FLAGS, 0);
	nftnl_udata_put_strz(u, NFTNL_UDATA_TABLE_COMMENT, "pcpd");
	nftnl_table_set_data(t, NFTNL_TABLE_USERDATA, nftnl_udata_buf_data(u),
			     nftnl_udata_buf_len(u));
	nftnl_udata_buf_free(u);
	struct nlmsghdr *nlh = obj_hdr(bt, NFT_MSG_NEWTABLE, NLM_F_CREATE, &seq);
	if (!nlh) {
		nftnl_table_free(t);
		return false;
	}
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	if (!obj_done(bt, nlh, seq, NFT_MSG_NEWTABLE))
		return false;

	if (!add_chain(bt, table, "raw_pre", "filter", NF_INET_PRE_ROUTING, -300) ||
	    !add_chain(bt, table, "filter_pre", "filter", NF_INET_PRE_ROUTING, -110) ||
	    !add_chain(bt, table, "nat_pre", "nat", NF_INET_PRE_ROUTING, -100) ||
	    !add_chain(bt, table, "nat_post", "nat", NF_INET_POST_ROUTING, 100))
		return false;
	for (int s = 0; s < NFTM_NSETS; s++)
		if (!add_set(bt, set_obj(table, &sets[s], SID_BASE + (uint32_t)s)))
			return false;
	static const char *const chain_of[] = { "raw_pre", "raw_pre", "raw_pre", "filter_pre",
						"nat_pre", "nat_pre", "nat_post", "nat_post",
						"nat_post", "nat_post", "nat_post" };
	for (int i = 0; i < 11; i++) {
		if (i == 9 && !add_anon_set(bt, table))
			return false;
		if (!add_rule(bt, table, chain_of[i], i))
			return false;
	}
	return !bt->b.oom;
}

bool nftm_batch_deltable(struct nftm_batch *bt, const char *table)
{
	uint32_t seq;
	struct nlmsghdr *nlh = obj_hdr(bt, NFT_MSG_DELTABLE, 0, &seq);
	if (!nlh)
		return false;
	mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, table);
	return obj_done(bt, nlh, seq, NFT_MSG_DELTABLE);
}

/* ---- single requests ---- */

struct nlmsghdr *nftm_req_gettable(void *buf, const char *table, uint32_t seq)
{
	struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETTABLE, NFPROTO_IPV4,
						     NLM_F_ACK, seq);
	mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, table);
	return nlh;
}

struct nlmsghdr *nftm_req_getsets(void *buf, const char *table, uint32_t seq)
{
	struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSET, NFPROTO_IPV4,
						     NLM_F_DUMP | NLM_F_ACK, seq);
	mnl_attr_put_strz(nlh, NFTA_SET_TABLE, table);
	return nlh;
}

struct nlmsghdr *nftm_req_getchains(void *buf, const char *table, uint32_t seq)
{
	struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETCHAIN, NFPROTO_IPV4,
						     NLM_F_DUMP | NLM_F_ACK, seq);
	mnl_attr_put_strz(nlh, NFTA_CHAIN_TABLE, table);
	return nlh;
}

struct nlmsghdr *nftm_req_dumpelems(void *buf, const char *table, enum nftm_set set,
				    uint32_t seq)
{
	struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSETELEM, NFPROTO_IPV4,
						     NLM_F_DUMP | NLM_F_ACK, seq);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, table);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, sets[set].name);
	return nlh;
}

struct nlmsghdr *nftm_req_getelem(void *buf, const char *table, const struct nftm_elem *e,
				  uint32_t seq)
{
	struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSETELEM, NFPROTO_IPV4,
						     NLM_F_ACK, seq);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, table);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, sets[e->set].name);
	struct nlattr *l = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
	struct nlattr *el = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
	struct nlattr *k = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_KEY);
	mnl_attr_put(nlh, NFTA_DATA_VALUE, e->klen, e->key);
	mnl_attr_nest_end(nlh, k);
	if (e->has_end) {
		k = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_KEY_END);
		mnl_attr_put(nlh, NFTA_DATA_VALUE, e->klen, e->key_end);
		mnl_attr_nest_end(nlh, k);
	}
	mnl_attr_nest_end(nlh, el);
	mnl_attr_nest_end(nlh, l);
	return nlh;
}

/* ---- parsing ---- */

/* The NFTA_DATA_VALUE inside a nested key/data attribute. */
static bool get_value(const struct nlattr *nest, uint8_t *out, size_t want)
{
	const struct nlattr *a;
	mnl_attr_for_each_nested(a, nest) {
		if (mnl_attr_get_type(a) == NFTA_DATA_VALUE) {
			if (mnl_attr_get_payload_len(a) != want)
				return false;
			memcpy(out, mnl_attr_get_payload(a), want);
			return true;
		}
	}
	return false;
}

static uint64_t get_be64_attr(const struct nlattr *a)
{
	uint64_t v;
	memcpy(&v, mnl_attr_get_payload(a), 8);
	return be64toh(v);
}

static int parse_elem(const struct nlattr *el, enum nftm_set set, nftm_elem_cb cb, void *arg)
{
	struct nftm_elem e;
	elem_init(&e, set);
	bool have_key = false, have_data = false;
	const struct nlattr *a;
	mnl_attr_for_each_nested(a, el) {
		switch (mnl_attr_get_type(a)) {
		case NFTA_SET_ELEM_KEY:
			if (!get_value(a, e.key, e.klen))
				return -1;
			have_key = true;
			break;
		case NFTA_SET_ELEM_KEY_END:
			if (!get_value(a, e.key_end, e.klen))
				return -1;
			e.has_end = true;
			break;
		case NFTA_SET_ELEM_DATA:
			if (!e.dlen || !get_value(a, e.data, e.dlen))
				return -1;
			have_data = true;
			break;
		case NFTA_SET_ELEM_TIMEOUT:
			if (mnl_attr_get_payload_len(a) != 8)
				return -1;
			e.timeout_ms = get_be64_attr(a);
			break;
		case NFTA_SET_ELEM_EXPIRATION:
			if (mnl_attr_get_payload_len(a) != 8)
				return -1;
			e.expiration_ms = get_be64_attr(a);
			break;
		case NFTA_SET_ELEM_USERDATA:
			e.udata = mnl_attr_get_payload(a);
			e.ulen = (uint16_t)mnl_attr_get_payload_len(a);
			break;
		default:
			break;
		}
	}
	if (!have_key)
		return -1;
	if (!have_data)
		e.dlen = 0;          /* delete requests name elements by key only */
	return cb(&e, arg);
}

/* Every top-level attribute lies within nlmsg_len. (libmnl's iterator
 * bounds them by the aligned length, which may pass the end of a buffer
 * that holds exactly nlmsg_len bytes; nested ones are bounded by their
 * parent, which is checked here.) */
static bool attrs_ok(const struct nlmsghdr *nlh)
{
	size_t len = nlh->nlmsg_len, off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg));
	if (len < off)
		return false;
	while (off < len) {
		if (len - off < NLA_HDRLEN)
			return false;
		const struct nlattr *a = (const struct nlattr *)((const uint8_t *)nlh + off);
		if (a->nla_len < NLA_HDRLEN || a->nla_len > len - off)
			return false;
		off += NLA_ALIGN(a->nla_len);
	}
	return true;
}

int nftm_parse_elems(const struct nlmsghdr *nlh, nftm_elem_cb cb, void *arg)
{
	if (!attrs_ok(nlh))
		return -1;
	int set = -1;
	const struct nlattr *list = NULL, *a;
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
		switch (mnl_attr_get_type(a)) {
		case NFTA_SET_ELEM_LIST_SET:
			if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) < 0)
				return -1;
			set = nftm_set_by_name(mnl_attr_get_str(a));
			break;
		case NFTA_SET_ELEM_LIST_ELEMENTS:
			list = a;
			break;
		default:
			break;
		}
	}
	if (set < 0)
		return -1;
	if (!list)
		return 0;
	mnl_attr_for_each_nested(a, list) {
		if (mnl_attr_get_type(a) != NFTA_LIST_ELEM)
			continue;
		int r = parse_elem(a, (enum nftm_set)set, cb, arg);
		if (r)
			return r;
	}
	return 0;
}

bool nftm_parse_set(const struct nlmsghdr *nlh, struct nftm_set_info *out)
{
	memset(out, 0, sizeof(*out));
	if (!attrs_ok(nlh))
		return false;
	const struct nlattr *a;
	bool named = false;
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
		uint16_t t = mnl_attr_get_type(a);
		uint32_t *dst = NULL;
		switch (t) {
		case NFTA_SET_NAME:
			if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) < 0)
				return false;
			strncpy(out->name, mnl_attr_get_str(a), sizeof(out->name) - 1);
			named = true;
			break;
		case NFTA_SET_FLAGS: dst = &out->flags; break;
		case NFTA_SET_KEY_TYPE: dst = &out->key_type; break;
		case NFTA_SET_KEY_LEN: dst = &out->key_len; break;
		case NFTA_SET_DATA_TYPE: dst = &out->data_type; break;
		case NFTA_SET_DATA_LEN: dst = &out->data_len; break;
		default: break;
		}
		if (dst) {
			if (mnl_attr_validate(a, MNL_TYPE_U32) < 0)
				return false;
			*dst = ntohl(mnl_attr_get_u32(a));
		}
	}
	return named;
}

bool nftm_parse_chain_name(const struct nlmsghdr *nlh, char *buf)
{
	if (!attrs_ok(nlh))
		return false;
	const struct nlattr *a;
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
		if (mnl_attr_get_type(a) == NFTA_CHAIN_NAME &&
		    mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0) {
			strncpy(buf, mnl_attr_get_str(a), 63);
			buf[63] = 0;
			return true;
		}
	}
	return false;
}

enum perr nftm_errno_perr(int err)
{
	switch (err) {
	case 0:
		return PERR_OK;
	case ENOMEM: case ENOSPC: case E2BIG: case ENFILE: case EMFILE: case ENOBUFS:
	case EMSGSIZE: case EFBIG:
		return PERR_NO_RESOURCES;
	case EEXIST: case ENOTEMPTY:
		return PERR_EXISTS;
	case ENOENT:
		return PERR_NOT_FOUND;
	default:
		return PERR_KERNEL;
	}
}
