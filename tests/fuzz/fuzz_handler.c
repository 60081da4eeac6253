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

static const char fuzz_conf[] =
	"server {\n  max-filters = 4\n}\n"
	"aftr {\n"
	"  pool = {\"203.0.113.0-203.0.113.3\"}\n"
	"  pcp-ports = 64\n"
	"  subscriber-prefix-length = 64\n"
	"  b4-prefixes = {\"2001:db8:100::/60\"}\n"
	"  internal-prefixes = {\"192.168.0.0/16\"}\n"
	"  max-mappings = 16\n"
	"  rate-limit = 0\n"
	"  subscriber \"enc\" { interface = \"lo\"  index = 40 }\n"
	"}\n";

static struct pcpd_server *server(void)
{
	static struct pcpd_server *s;
	if (s)
		return s;
	rcu_register_thread();
	log_setup(LOG_TO_STDERR, LOG_ERR, "fuzz");
	struct pcpd_config *c = pcpd_config_load_buf(fuzz_conf, "fuzz_handler.conf", stderr);
	if (!c || !(s = pcpd_server_new(c, 0, check_reply)))
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
