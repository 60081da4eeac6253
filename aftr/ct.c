/* Conntrack access over ctnetlink: libmnl for the socket and message
 * framing, libnetfilter_conntrack to encode tuples and parse replies.
 * Every call is one request and waits for the kernel's ack on our own
 * socket, so the answer (or errno) belongs to that request. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>

#include "aftr/ct.h"
#include "common/addr.h"

/* ctnetlink messages for one entry stay well under 1 KiB; the buffer only
 * has to hold one datagram of the answer. */
#define CT_BUFSZ 16384

struct ct {
	struct mnl_socket *nl;
	uint32_t portid;
	uint32_t seq;
	char buf[CT_BUFSZ];
};

struct ct *ct_open(void)
{
	struct ct *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!c->nl || mnl_socket_bind(c->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int e = errno;
		if (c->nl)
			mnl_socket_close(c->nl);
		free(c);
		errno = e;
		return NULL;
	}
	c->portid = mnl_socket_get_portid(c->nl);
	c->seq = (uint32_t)time(NULL);
	return c;
}

void ct_close(struct ct *c)
{
	if (!c)
		return;
	mnl_socket_close(c->nl);
	free(c);
}

static enum perr errno_perr(int e)
{
	switch (e) {
	case ENOENT: return PERR_NOT_FOUND;
	case EEXIST: return PERR_EXISTS;
	case ENOMEM: case ENOSPC: return PERR_NO_RESOURCES;
	default: return PERR_KERNEL;
	}
}

/* Header of a ctnetlink request; always with an ack so that the end of
 * the answer (or the error) is explicit. IPv4 only. */
static struct nlmsghdr *msg_start(struct ct *c, uint8_t type, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(c->buf);
	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	nlh->nlmsg_seq = ++c->seq;
	struct nfgenmsg *nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = AF_INET;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = 0;
	return nlh;
}

/* Sends the request and reads until its ack or error; cb (may be NULL)
 * sees the data messages. */
static enum perr transact(struct ct *c, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	uint32_t seq = nlh->nlmsg_seq;
	if (mnl_socket_sendto(c->nl, nlh, nlh->nlmsg_len) < 0)
		return errno_perr(errno);
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(c->nl, c->buf, sizeof(c->buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno_perr(errno);
		}
		/* Each kernel answer is its own datagram: skip a late one to an
		 * earlier, abandoned request. */
		const struct nlmsghdr *first = (const struct nlmsghdr *)c->buf;
		if (mnl_nlmsg_ok(first, (int)n) && first->nlmsg_seq != seq)
			continue;
		int r = mnl_cb_run(c->buf, (size_t)n, seq, c->portid, cb, data);
		if (r == MNL_CB_STOP)
			return PERR_OK;
		if (r < 0)
			return errno_perr(errno);
	}
}

static bool has_ports(uint8_t proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP ||
	       proto == IPPROTO_DCCP || proto == IPPROTO_UDPLITE;
}

/* A conntrack object with the original tuple int -> peer in zone. The
 * zone is the non-directional CTA_ZONE, as nft's "ct zone set" gives. */
static struct nf_conntrack *ct_tuple(uint16_t zone, uint8_t proto, const struct in6_addr *int_addr,
				     uint16_t int_port, const struct in6_addr *peer,
				     uint16_t peer_port)
{
	if (!has_ports(proto) || !addr_is_v4mapped(int_addr) || !addr_is_v4mapped(peer)) {
		errno = EINVAL;
		return NULL;
	}
	struct nf_conntrack *ct = nfct_new();
	if (!ct)
		return NULL;
	nfct_set_attr_u8(ct, ATTR_ORIG_L3PROTO, AF_INET);
	nfct_set_attr_u32(ct, ATTR_ORIG_IPV4_SRC, htonl(addr_to_v4(int_addr)));
	nfct_set_attr_u32(ct, ATTR_ORIG_IPV4_DST, htonl(addr_to_v4(peer)));
	nfct_set_attr_u8(ct, ATTR_ORIG_L4PROTO, proto);
	nfct_set_attr_u16(ct, ATTR_ORIG_PORT_SRC, htons(int_port));
	nfct_set_attr_u16(ct, ATTR_ORIG_PORT_DST, htons(peer_port));
	nfct_set_attr_u16(ct, ATTR_ZONE, zone);
	return ct;
}

static enum perr tuple_err(void)
{
	return errno == EINVAL ? PERR_INVAL : PERR_NOMEM;
}

enum perr ct_flush_mark(struct ct *c, uint32_t mark, unsigned *removed)
{
	if (removed)
		*removed = 0;  /* the kernel's flush answers with a bare ack */
	if (mark == 0)
		return PERR_INVAL;  /* would flush every unmarked flow */
	/* A delete without tuple is a flush; CTA_MARK + CTA_MARK_MASK make the
	 * kernel filter it (since 4.1). libnetfilter_conntrack 1.0.9 can only
	 * flush by family, hence the hand-built message. */
	struct nlmsghdr *nlh = msg_start(c, IPCTNL_MSG_CT_DELETE, 0);
	mnl_attr_put_u32(nlh, CTA_MARK, htonl(mark));
	mnl_attr_put_u32(nlh, CTA_MARK_MASK, htonl(0xffffffffu));
	return transact(c, nlh, NULL, NULL);
}

struct find_res {
	struct in6_addr *addr;
	uint16_t *port;
	bool found;
};

struct marks_run {
	void (*cb)(void *arg, uint32_t mark);
	void *arg;
};

static int marks_cb(const struct nlmsghdr *nlh, void *data)
{
	struct marks_run *r = data;
	struct nf_conntrack *ct = nfct_new();
	if (!ct)
		return MNL_CB_ERROR;
	if (nfct_nlmsg_parse(nlh, ct) >= 0 && nfct_attr_is_set(ct, ATTR_MARK)) {
		uint32_t mark = nfct_get_attr_u32(ct, ATTR_MARK);
		if (mark)
			r->cb(r->arg, mark);
	}
	nfct_destroy(ct);
	return MNL_CB_OK;
}

enum perr ct_marks(struct ct *c, void (*cb)(void *arg, uint32_t mark), void *arg)
{
	struct marks_run r = { cb, arg };
	struct nlmsghdr *nlh = msg_start(c, IPCTNL_MSG_CT_GET, NLM_F_DUMP);
	return transact(c, nlh, marks_cb, &r);
}

static int find_cb(const struct nlmsghdr *nlh, void *data)
{
	struct find_res *res = data;
	struct nf_conntrack *ct = nfct_new();
	if (!ct)
		return MNL_CB_ERROR;
	if (nfct_nlmsg_parse(nlh, ct) >= 0 && nfct_attr_is_set(ct, ATTR_REPL_IPV4_DST) > 0) {
		/* The reply tuple is peer -> (translated source): its destination
		 * is the external endpoint. */
		addr_from_v4(res->addr, ntohl(nfct_get_attr_u32(ct, ATTR_REPL_IPV4_DST)));
		*res->port = ntohs(nfct_get_attr_u16(ct, ATTR_REPL_PORT_DST));
		res->found = true;
	}
	nfct_destroy(ct);
	return MNL_CB_OK;
}

enum perr ct_find(struct ct *c, uint16_t zone, uint8_t proto, const struct in6_addr *int_addr,
		  uint16_t int_port, const struct in6_addr *peer, uint16_t peer_port,
		  struct in6_addr *ext_addr, uint16_t *ext_port)
{
	struct nf_conntrack *ct = ct_tuple(zone, proto, int_addr, int_port, peer, peer_port);
	if (!ct)
		return tuple_err();
	struct nlmsghdr *nlh = msg_start(c, IPCTNL_MSG_CT_GET, 0);
	int r = nfct_nlmsg_build(nlh, ct);
	nfct_destroy(ct);
	if (r < 0)
		return PERR_KERNEL;
	struct find_res res = { ext_addr, ext_port, false };
	enum perr e = transact(c, nlh, find_cb, &res);
	if (e == PERR_OK && !res.found)
		e = PERR_KERNEL;  /* acked without a parsable entry */
	return e;
}

enum perr ct_create(struct ct *c, uint16_t zone, uint8_t proto, const struct in6_addr *int_addr,
		    uint16_t int_port, const struct in6_addr *peer, uint16_t peer_port,
		    const struct in6_addr *ext_addr, uint16_t ext_port, uint32_t mark,
		    uint32_t timeout)
{
	/* libnetfilter_conntrack encodes NAT ports for TCP and UDP only. */
	if ((proto != IPPROTO_TCP && proto != IPPROTO_UDP) || !addr_is_v4mapped(ext_addr))
		return PERR_INVAL;
	struct nf_conntrack *ct = ct_tuple(zone, proto, int_addr, int_port, peer, peer_port);
	if (!ct)
		return tuple_err();
	/* The reply tuple is given untranslated (peer -> int) and the SNAT as a
	 * one-address, one-port range: the kernel's NAT core then rewrites the
	 * reply tuple to peer -> ext, sets IPS_SRC_NAT and *_NAT_DONE and hashes
	 * the binding, as for a packet-created entry. Giving the translated reply
	 * tuple instead would leave IPS_SRC_NAT unset (the status bits are not
	 * settable from user space) and packets would pass untranslated. */
	nfct_set_attr_u8(ct, ATTR_REPL_L3PROTO, AF_INET);
	nfct_set_attr_u32(ct, ATTR_REPL_IPV4_SRC, htonl(addr_to_v4(peer)));
	nfct_set_attr_u32(ct, ATTR_REPL_IPV4_DST, htonl(addr_to_v4(int_addr)));
	nfct_set_attr_u8(ct, ATTR_REPL_L4PROTO, proto);
	nfct_set_attr_u16(ct, ATTR_REPL_PORT_SRC, htons(peer_port));
	nfct_set_attr_u16(ct, ATTR_REPL_PORT_DST, htons(int_port));
	nfct_set_attr_u32(ct, ATTR_SNAT_IPV4, htonl(addr_to_v4(ext_addr)));
	nfct_set_attr_u16(ct, ATTR_SNAT_PORT, htons(ext_port));
	nfct_set_attr_u32(ct, ATTR_MARK, mark);
	nfct_set_attr_u32(ct, ATTR_TIMEOUT, timeout);  /* mandatory on create */
	struct nlmsghdr *nlh = msg_start(c, IPCTNL_MSG_CT_NEW, NLM_F_CREATE | NLM_F_EXCL);
	int r = nfct_nlmsg_build(nlh, ct);
	nfct_destroy(ct);
	if (r < 0)
		return PERR_KERNEL;
	return transact(c, nlh, NULL, NULL);
}

enum perr ct_set_timeout(struct ct *c, uint16_t zone, uint8_t proto,
			 const struct in6_addr *int_addr, uint16_t int_port,
			 const struct in6_addr *peer, uint16_t peer_port, uint32_t timeout)
{
	struct nf_conntrack *ct = ct_tuple(zone, proto, int_addr, int_port, peer, peer_port);
	if (!ct)
		return tuple_err();
	nfct_set_attr_u32(ct, ATTR_TIMEOUT, timeout);
	/* CT_NEW without NLM_F_CREATE changes an existing entry (ENOENT if none). */
	struct nlmsghdr *nlh = msg_start(c, IPCTNL_MSG_CT_NEW, 0);
	int r = nfct_nlmsg_build(nlh, ct);
	nfct_destroy(ct);
	if (r < 0)
		return PERR_KERNEL;
	return transact(c, nlh, NULL, NULL);
}
