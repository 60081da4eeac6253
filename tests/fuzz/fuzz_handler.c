/* Fuzzes the whole request path: handler, engine, in-memory backend.
 * Input: [source selector][seconds to advance][datagram...]. The server
 * lives across inputs so sequences of requests build real state. Aborts
 * on any malformed reply or on table/kernel disagreement. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/log.h"
#include "pcpd/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_reply(const struct pcp_meta *m, const uint8_t *buf, size_t len)
{
	(void)m;
	if (len < 2 || len > PCP_MAX_LEN)
		abort();
	if (buf[0] == PCP_VERSION && (len < PCP_HDR_LEN || len % 4 || !(buf[1] & 0x80)))
		abort();
	/* NAT-PMP: fixed sizes, or the whole request back for result 5 */
	if (buf[0] == 0 && len != 8 && len != 12 && len != 16 && !(len >= 8 && buf[3] == 5))
		abort();
}

static struct pcpd_server *server(void)
{
	static struct pcpd_server *s;
	if (s)
		return s;
	rcu_register_thread();
	log_setup(LOG_TO_STDERR, LOG_ERR, "fuzz");
	struct pcpd_config *c = calloc(1, sizeof(*c));
	c->enable_map = c->enable_peer = c->enable_natpmp = c->enable_third_party = true;
	c->min_lifetime = 120;
	c->max_lifetime = 86400;
	c->max_filters = 4;
	strcpy(c->backend, "memory");
	c->aftr.pool[0].first = 0xcb007100u;
	c->aftr.pool[0].last = 0xcb007103u;
	c->aftr.npool = 1;
	c->aftr.port_min = 1024;
	c->aftr.ports_per_subscriber = 4096;
	c->aftr.pcp_ports = 64;
	c->aftr.subscriber_plen = 64;
	prefix_parse("2001:db8:100::/60", &c->aftr.b4_prefixes[0]);
	c->aftr.nb4 = 1;
	prefix_parse("192.168.0.0/16", &c->aftr.internal[0]);
	c->aftr.ninternal = 1;
	c->aftr.max_mappings = 16;
	c->aftr.rate_limit = 0;
	c->aftr.hold_down = 120;
	c->aftr.subs = calloc(1, sizeof(*c->aftr.subs));
	strcpy(c->aftr.subs[0].name, "enc");
	strcpy(c->aftr.subs[0].ifname, "lo");
	c->aftr.subs[0].index = 40;
	c->aftr.nsubs = 1;
	s = pcpd_server_new(c, 0, check_reply);
	if (!s)
		abort();
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint32_t now = 1000;
	struct pcpd_server *s = server();
	if (size < 2)
		return 0;
	static const char *const srcs[] = { "2001:db8:100:1::1", "2001:db8:100:2::1",
					    "192.168.1.2", "2001:db8:999::1" };
	struct pcp_meta m;
	memset(&m, 0, sizeof(m));
	addr_parse(srcs[data[0] & 3], &m.src);
	m.ifindex = (data[0] & 4) ? 7 : 1;
	now += data[1];
	m.now = now;
	m.now_ms = (uint64_t)now * 1000u;
	rcu_read_lock();
	pcp_handle(&s->handler, &m, data + 2, size - 2);
	rcu_read_unlock();
	engine_expire(&s->eng, now);
	if (table_count(s->table) != kbackend_mem_count(s->kb))
		abort();
	return 0;
}
