/* aftr/ct.c against the real kernel, inside a private network namespace
 * (never the host's conntrack table). Needs root (CAP_NET_ADMIN); skips
 * (exit 77) otherwise. The traffic test also needs ip(8) and nft(8). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <cmocka.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>

#include "aftr/ct.h"
#include "common/addr.h"

#define TCP IPPROTO_TCP
#define UDP IPPROTO_UDP

static struct ct *c;

static struct in6_addr a4(const char *s)
{
	struct in6_addr a;
	assert_true(addr_parse(s, &a));
	return a;
}

/* ---- reading the table back (test side: plain dump is fine here) ---- */

struct dump_row {
	uint16_t zone;
	uint32_t mark, timeout, status;
	uint8_t proto;
	uint32_t src, rdst;      /* host order */
	uint16_t sport, rdport;  /* host order */
};
struct dump {
	struct dump_row row[64];
	unsigned n;
};

static int dump_cb(enum nf_conntrack_msg_type type, struct nf_conntrack *ct, void *data)
{
	struct dump *d = data;
	(void)type;
	if (d->n < 64) {
		struct dump_row *r = &d->row[d->n];
		r->zone = nfct_get_attr_u16(ct, ATTR_ZONE);
		r->mark = nfct_get_attr_u32(ct, ATTR_MARK);
		r->timeout = nfct_get_attr_u32(ct, ATTR_TIMEOUT);
		r->status = nfct_get_attr_u32(ct, ATTR_STATUS);
		r->proto = nfct_get_attr_u8(ct, ATTR_ORIG_L4PROTO);
		r->src = ntohl(nfct_get_attr_u32(ct, ATTR_ORIG_IPV4_SRC));
		r->sport = ntohs(nfct_get_attr_u16(ct, ATTR_ORIG_PORT_SRC));
		r->rdst = ntohl(nfct_get_attr_u32(ct, ATTR_REPL_IPV4_DST));
		r->rdport = ntohs(nfct_get_attr_u16(ct, ATTR_REPL_PORT_DST));
	}
	d->n++;
	return NFCT_CB_CONTINUE;
}

static void dump_all(struct dump *d)
{
	struct nfct_handle *h = nfct_open(CONNTRACK, 0);
	assert_non_null(h);
	uint32_t family = AF_INET;
	memset(d, 0, sizeof(*d));
	nfct_callback_register(h, NFCT_T_ALL, dump_cb, d);
	assert_int_equal(nfct_query(h, NFCT_Q_DUMP, &family), 0);
	nfct_close(h);
}

static unsigned count_mark(const struct dump *d, uint32_t mark)
{
	unsigned n = 0;
	for (unsigned i = 0; i < d->n && i < 64; i++)
		n += d->row[i].mark == mark;
	return n;
}

static const struct dump_row *find_row(const struct dump *d, uint16_t zone, uint8_t proto,
				       uint16_t sport)
{
	for (unsigned i = 0; i < d->n && i < 64; i++)
		if (d->row[i].zone == zone && d->row[i].proto == proto && d->row[i].sport == sport)
			return &d->row[i];
	return NULL;
}

/* Empties this namespace's table before each test. */
static int flush_all(void **state)
{
	(void)state;
	struct nfct_handle *h = nfct_open(CONNTRACK, 0);
	uint32_t family = AF_INET;
	if (!h)
		return -1;
	int r = nfct_query(h, NFCT_Q_FLUSH, &family);
	nfct_close(h);
	return r;
}

/* The flow every test uses: 192.168.1.2:80 -> 198.51.100.2:7000. */
static enum perr mk(uint16_t zone, uint8_t proto, uint16_t int_port, const char *ext,
		    uint16_t ext_port, uint32_t mark, uint32_t timeout)
{
	struct in6_addr i = a4("192.168.1.2"), p = a4("198.51.100.2"), e = a4(ext);
	return ct_create(c, zone, proto, &i, int_port, &p, 7000, &e, ext_port, mark, timeout);
}

static enum perr look(uint16_t zone, uint8_t proto, uint16_t int_port, struct in6_addr *e,
		      uint16_t *ep)
{
	struct in6_addr i = a4("192.168.1.2"), p = a4("198.51.100.2");
	return ct_find(c, zone, proto, &i, int_port, &p, 7000, e, ep);
}

/* ---- tests ---- */

static void test_same_tuple_two_zones(void **state)
{
	(void)state;
	struct in6_addr e, want1 = a4("203.0.113.10"), want2 = a4("203.0.113.11");
	uint16_t ep = 0;
	assert_int_equal(mk(1, UDP, 80, "203.0.113.10", 1025, 0x101, 100), PERR_OK);
	assert_int_equal(mk(2, UDP, 80, "203.0.113.11", 2048, 0x102, 100), PERR_OK);
	assert_int_equal(look(1, UDP, 80, &e, &ep), PERR_OK);
	assert_true(addr_equal(&e, &want1));
	assert_int_equal(ep, 1025);
	assert_int_equal(look(2, UDP, 80, &e, &ep), PERR_OK);
	assert_true(addr_equal(&e, &want2));
	assert_int_equal(ep, 2048);
	assert_int_equal(look(3, UDP, 80, &e, &ep), PERR_NOT_FOUND);
	assert_int_equal(look(1, TCP, 80, &e, &ep), PERR_NOT_FOUND);

	/* The kernel made them real SNAT bindings, with our marks. */
	struct dump d;
	dump_all(&d);
	assert_int_equal(d.n, 2);
	for (uint16_t z = 1; z <= 2; z++) {
		const struct dump_row *r = find_row(&d, z, UDP, 80);
		assert_non_null(r);
		assert_int_equal(r->mark, 0x100u + z);
		assert_int_equal(r->src, 0xc0a80102);
		assert_true(r->status & IPS_SRC_NAT);
		assert_true(r->status & IPS_SRC_NAT_DONE);
		assert_true(r->status & IPS_DST_NAT_DONE);
		assert_false(r->status & IPS_DST_NAT);
	}
}

static void test_exists(void **state)
{
	(void)state;
	assert_int_equal(mk(1, TCP, 80, "203.0.113.10", 1025, 1, 100), PERR_OK);
	/* the same flow again */
	assert_int_equal(mk(1, TCP, 80, "203.0.113.10", 1026, 1, 100), PERR_EXISTS);
	/* another flow whose reply tuple (peer -> 203.0.113.10:1025) is taken */
	assert_int_equal(mk(1, TCP, 81, "203.0.113.10", 1025, 1, 100), PERR_EXISTS);
	/* same flow in another zone is another entry */
	assert_int_equal(mk(2, TCP, 80, "203.0.113.10", 1025, 1, 100), PERR_OK);
}

static void test_not_found(void **state)
{
	(void)state;
	struct in6_addr e, i = a4("192.168.1.2"), p = a4("198.51.100.2");
	uint16_t ep;
	assert_int_equal(look(1, UDP, 80, &e, &ep), PERR_NOT_FOUND);
	assert_int_equal(ct_set_timeout(c, 1, UDP, &i, 80, &p, 7000, 50), PERR_NOT_FOUND);
}

static void test_invalid(void **state)
{
	(void)state;
	struct in6_addr e, i = a4("192.168.1.2"), p = a4("198.51.100.2"), v6 = a4("2001:db8::1");
	uint16_t ep;
	assert_int_equal(ct_find(c, 1, IPPROTO_ICMP, &i, 80, &p, 7000, &e, &ep), PERR_INVAL);
	assert_int_equal(ct_find(c, 1, UDP, &v6, 80, &p, 7000, &e, &ep), PERR_INVAL);
	assert_int_equal(ct_create(c, 1, UDP, &i, 80, &p, 7000, &v6, 1, 1, 10), PERR_INVAL);
	assert_int_equal(ct_create(c, 1, IPPROTO_SCTP, &i, 80, &p, 7000, &p, 1, 1, 10), PERR_INVAL);
	assert_int_equal(ct_flush_mark(c, 0, NULL), PERR_INVAL);
}

static void test_flush_mark(void **state)
{
	(void)state;
	const uint32_t A = (5u << 17) | 1025, B = (5u << 17) | 1026;
	assert_int_equal(mk(1, UDP, 80, "203.0.113.10", 1025, A, 100), PERR_OK);
	assert_int_equal(mk(2, UDP, 80, "203.0.113.10", 1025, A, 100), PERR_OK);
	assert_int_equal(mk(1, TCP, 80, "203.0.113.10", 1025, A, 100), PERR_OK);
	assert_int_equal(mk(1, UDP, 81, "203.0.113.10", 1026, B, 100), PERR_OK);
	assert_int_equal(mk(3, UDP, 80, "203.0.113.10", 1026, B, 100), PERR_OK);
	assert_int_equal(mk(3, TCP, 80, "203.0.113.10", 1027, B | 0x80000000u, 100), PERR_OK);
	struct dump d;
	dump_all(&d);
	assert_int_equal(d.n, 6);
	assert_int_equal(count_mark(&d, A), 3);

	unsigned removed = 99;
	assert_int_equal(ct_flush_mark(c, A, &removed), PERR_OK);
	assert_int_equal(removed, 0);  /* the kernel does not tell */
	dump_all(&d);
	assert_int_equal(d.n, 3);
	assert_int_equal(count_mark(&d, A), 0);
	assert_int_equal(count_mark(&d, B), 2);
	/* exact match, not "any bit of": B|0x80000000 survives a flush of B */
	assert_int_equal(ct_flush_mark(c, B, NULL), PERR_OK);
	dump_all(&d);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.row[0].mark, B | 0x80000000u);
	/* nothing left with that mark: still fine */
	assert_int_equal(ct_flush_mark(c, A, NULL), PERR_OK);
}

static void test_set_timeout(void **state)
{
	(void)state;
	struct in6_addr i = a4("192.168.1.2"), p = a4("198.51.100.2");
	assert_int_equal(mk(1, UDP, 80, "203.0.113.10", 1025, 7, 100), PERR_OK);
	assert_int_equal(mk(2, UDP, 80, "203.0.113.10", 1026, 7, 100), PERR_OK);
	struct dump d;
	dump_all(&d);
	const struct dump_row *r = find_row(&d, 1, UDP, 80);
	assert_non_null(r);
	assert_in_range(r->timeout, 98, 100);

	assert_int_equal(ct_set_timeout(c, 1, UDP, &i, 80, &p, 7000, 3000), PERR_OK);
	dump_all(&d);
	r = find_row(&d, 1, UDP, 80);
	assert_non_null(r);
	assert_in_range(r->timeout, 2998, 3000);
	r = find_row(&d, 2, UDP, 80);  /* same tuple, other zone: untouched */
	assert_non_null(r);
	assert_in_range(r->timeout, 98, 100);
	assert_int_equal(r->mark, 7);
}

/* ---- traffic through the created binding ----
 *
 * b4 netns (192.168.1.2) --veth-- this netns (AFTR) --veth-- inet netns
 * (198.51.100.2); 203.0.113.10 is the AFTR's external address. nft puts
 * the subscriber's packets and those to 203.0.113.10 in zone 7 and has
 * empty nat chains (NAT hooks are only active in a netns with a nat
 * chain); there is no SNAT rule, so any translation comes from the entry
 * ct_create made. */

static int aftr_ns = -1, b4_ns = -1, inet_ns = -1;

/* A fresh netns, returned as an fd; we stay where we were. The fd is
 * inheritable on purpose: ip(8) reaches it as /proc/self/fd/N. */
static int new_netns(void)
{
	if (unshare(CLONE_NEWNET) < 0)
		return -1;
	int fd = open("/proc/self/ns/net", O_RDONLY);
	if (setns(aftr_ns, CLONE_NEWNET) < 0)
		abort();
	return fd;
}

static int run_in(int ns, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run_in(int ns, const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (setns(ns, CLONE_NEWNET) < 0)
		return -1;
	int r = system(cmd);
	if (setns(aftr_ns, CLONE_NEWNET) < 0)
		abort();
	return r;
}

static const char nft_rules[] =
	"nft -f - <<'EOF'\n"
	"table ip cttest {\n"
	"  chain raw { type filter hook prerouting priority raw;\n"
	"    iifname \"tob4\" ct zone set 7; ip daddr 203.0.113.10 ct zone set 7; }\n"
	"  chain pre { type nat hook prerouting priority dstnat; }\n"
	"  chain post { type nat hook postrouting priority srcnat; }\n"
	"}\n"
	"EOF\n";

static int setup_lab(void)
{
	if (system("command -v ip >/dev/null && command -v nft >/dev/null") != 0)
		return 1;
	if ((b4_ns = new_netns()) < 0 || (inet_ns = new_netns()) < 0)
		return -1;
	if (run_in(aftr_ns,
		   "set -e; ip link set lo up;"
		   "ip link add tob4 type veth peer name eth0 netns /proc/self/fd/%d;"
		   "ip link add toinet type veth peer name eth0 netns /proc/self/fd/%d;"
		   "ip addr add 192.168.1.1/24 dev tob4; ip link set tob4 up;"
		   "ip addr add 198.51.100.1/24 dev toinet; ip addr add 203.0.113.10/32 dev toinet;"
		   "ip link set toinet up; echo 1 > /proc/sys/net/ipv4/ip_forward",
		   b4_ns, inet_ns) != 0)
		return -1;
	if (run_in(aftr_ns, "%s", nft_rules) != 0)
		return -1;
	if (run_in(b4_ns, "set -e; ip link set lo up; ip addr add 192.168.1.2/24 dev eth0;"
			  "ip link set eth0 up; ip route add default via 192.168.1.1") != 0)
		return -1;
	if (run_in(inet_ns, "set -e; ip link set lo up; ip addr add 198.51.100.2/24 dev eth0;"
			    "ip link set eth0 up; ip route add default via 198.51.100.1") != 0)
		return -1;
	return 0;
}

/* A socket of type bound to addr:port, created inside netns ns. */
static int sock_in(int ns, int type, const char *addr, uint16_t port)
{
	assert_int_equal(setns(ns, CLONE_NEWNET), 0);
	int s = socket(AF_INET, type, 0);
	assert_int_equal(setns(aftr_ns, CLONE_NEWNET), 0);
	assert_true(s >= 0);
	int one = 1;
	struct timeval tv = { 3, 0 };
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	inet_pton(AF_INET, addr, &sa.sin_addr);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return s;
}

static struct sockaddr_in sin4(const char *addr, uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	inet_pton(AF_INET, addr, &sa.sin_addr);
	return sa;
}

static void assert_sa(const struct sockaddr_in *sa, const char *addr, uint16_t port)
{
	char buf[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &sa->sin_addr, buf, sizeof(buf));
	assert_string_equal(buf, addr);
	assert_int_equal(ntohs(sa->sin_port), port);
}

/* One UDP datagram int_port -> peer:7000 and its answer; checks the source
 * the peer sees and that the answer reaches the host. */
static void udp_round(uint16_t int_port, const char *seen_addr, uint16_t seen_port)
{
	int h = sock_in(b4_ns, SOCK_DGRAM, "192.168.1.2", int_port);
	int p = sock_in(inet_ns, SOCK_DGRAM, "198.51.100.2", 7000);
	struct sockaddr_in to = sin4("198.51.100.2", 7000), from;
	socklen_t fl = sizeof(from);
	char buf[16];
	assert_int_equal(sendto(h, "ping", 4, 0, (struct sockaddr *)&to, sizeof(to)), 4);
	assert_int_equal(recvfrom(p, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl), 4);
	assert_sa(&from, seen_addr, seen_port);
	assert_int_equal(sendto(p, "pong", 4, 0, (struct sockaddr *)&from, fl), 4);
	fl = sizeof(from);
	assert_int_equal(recvfrom(h, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl), 4);
	assert_memory_equal(buf, "pong", 4);
	assert_sa(&from, "198.51.100.2", 7000);
	close(h);
	close(p);
}

static void test_traffic(void **state)
{
	(void)state;
	static int lab = -2;
	if (lab == -2)
		lab = setup_lab();
	if (lab == 1) {
		printf("SKIP test_traffic: ip(8) or nft(8) not found\n");
		skip();
	}
	assert_int_equal(lab, 0);
	struct in6_addr e;
	uint16_t ep;

	/* Control: no entry, no SNAT rule -> the peer sees the private source. */
	udp_round(4002, "192.168.1.2", 4002);

	/* UDP through a created binding, both ways. */
	assert_int_equal(mk(7, UDP, 4000, "203.0.113.10", 40000, 0x123, 60), PERR_OK);
	udp_round(4000, "203.0.113.10", 40000);
	udp_round(4000, "203.0.113.10", 40000);  /* still the same binding */
	assert_int_equal(look(7, UDP, 4000, &e, &ep), PERR_OK);
	assert_int_equal(ep, 40000);
	struct dump d;
	dump_all(&d);
	const struct dump_row *r = find_row(&d, 7, UDP, 4000);
	assert_non_null(r);
	assert_int_equal(r->mark, 0x123);
	assert_true(r->status & IPS_SEEN_REPLY);  /* the answer used our entry */

	/* After a flush by its mark, the flow is new again and untranslated. */
	assert_int_equal(ct_flush_mark(c, 0x123, NULL), PERR_OK);
	assert_int_equal(look(7, UDP, 4000, &e, &ep), PERR_NOT_FOUND);
	udp_round(4000, "192.168.1.2", 4000);

	/* TCP: handshake and data through a created binding. */
	assert_int_equal(mk(7, TCP, 4001, "203.0.113.10", 40001, 0x124, 60), PERR_OK);
	int l = sock_in(inet_ns, SOCK_STREAM, "198.51.100.2", 7000);
	assert_int_equal(listen(l, 1), 0);
	int h = sock_in(b4_ns, SOCK_STREAM, "192.168.1.2", 4001);
	struct sockaddr_in to = sin4("198.51.100.2", 7000), from;
	socklen_t fl = sizeof(from);
	assert_int_equal(connect(h, (struct sockaddr *)&to, sizeof(to)), 0);
	int a = accept(l, (struct sockaddr *)&from, &fl);
	assert_true(a >= 0);
	assert_sa(&from, "203.0.113.10", 40001);
	char buf[8];
	assert_int_equal(write(h, "hi", 2), 2);
	assert_int_equal(read(a, buf, sizeof(buf)), 2);
	assert_int_equal(write(a, "ho", 2), 2);
	assert_int_equal(read(h, buf, sizeof(buf)), 2);
	assert_memory_equal(buf, "ho", 2);
	dump_all(&d);
	r = find_row(&d, 7, TCP, 4001);
	assert_non_null(r);
	assert_int_equal(r->mark, 0x124);
	assert_int_equal(r->rdst, 0xcb00710a);
	assert_int_equal(r->rdport, 40001);
	close(a);
	close(h);
	close(l);
}

int main(void)
{
	if (geteuid() != 0) {
		printf("SKIP test_ct: needs root (CAP_NET_ADMIN) for a private network namespace\n");
		return 77;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		printf("SKIP test_ct: unshare(CLONE_NEWNET) failed: %s\n", strerror(errno));
		return 77;
	}
	aftr_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	c = ct_open();
	if (aftr_ns < 0 || !c) {
		printf("FAIL test_ct: no ctnetlink socket: %s\n", strerror(errno));
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_same_tuple_two_zones, flush_all),
		cmocka_unit_test_setup(test_exists, flush_all),
		cmocka_unit_test_setup(test_not_found, flush_all),
		cmocka_unit_test_setup(test_invalid, flush_all),
		cmocka_unit_test_setup(test_flush_mark, flush_all),
		cmocka_unit_test_setup(test_set_timeout, flush_all),
		cmocka_unit_test_setup(test_traffic, flush_all),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	ct_close(c);
	return r;
}
