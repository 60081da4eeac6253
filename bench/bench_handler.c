/* Request-path throughput: encoded PCP requests through pcp_handle(), no
 * sockets, for N subscribers x M mappings: MAP create, MAP refresh,
 * ANNOUNCE, MAP delete. Prints requests per second per phase and per
 * thread count.
 *
 *   bench_handler [THREADS] [memory|nftables]
 *
 * With "nftables" every answer waits for the kernel, as in pcpd: the
 * benchmark moves into a network namespace of its own (root needed),
 * each thread flushes the backend after every 32 requests like a UDP
 * worker after one recvmmsg batch (group commit), and every mapping is
 * real nftables elements when its response is counted. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>

#include "common/addr.h"
#include "common/log.h"
#include "pcpd/server.h"

static void sink(const struct pcp_meta *m, const uint8_t *buf, size_t len)
{
	(void)len;
	if (buf[3] != 0)          /* count failures through the meta's io slot */
		(*(unsigned long *)m->io)++;
}

#define BATCH 32                    /* a UDP worker's recvmmsg batch */

static struct pcpd_config *mkcfg(unsigned nsubs_pow2, unsigned per_sub, const char *backend)
{
	char text[1024];
	snprintf(text, sizeof(text),
		 "server {\n  max-filters = 4\n  backend = \"%s\"\n  keep-table = false\n}\n"
		 "aftr {\n"
		 "  pool = {\"203.0.113.0/24\"}\n"
		 "  ports-per-subscriber = 2048\n"
		 "  pcp-ports = 1024\n"
		 "  subscriber-prefix-length = 64\n"
		 "  b4-prefixes = {\"2001:db8:100::/%u\"}\n"
		 "  internal-prefixes = {\"192.168.0.0/16\"}\n"
		 "  max-mappings = %u\n"
		 "  rate-limit = 0\n"
		 "  hold-down = 0\n"
		 "}\n", backend, 64 - nsubs_pow2, per_sub);
	struct pcpd_config *c = pcpd_config_load_buf(text, "bench.conf", stderr);
	if (!c)
		exit(1);
	return c;
}

struct job {
	struct pcpd_server *s;
	unsigned first_sub, nsubs, per_sub;
	uint8_t op;
	uint32_t lifetime;
	unsigned inbatch;
	unsigned long failures;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *run(void *arg)
{
	struct job *j = arg;
	rcu_register_thread();
	struct pcp_request req;
	uint8_t pkt[PCP_MAX_LEN];
	for (unsigned s = j->first_sub; s < j->first_sub + j->nsubs; s++) {
		memset(&req, 0, sizeof(req));
		req.version = 2;
		req.opcode = j->op;
		req.lifetime = j->lifetime;
		char b4[64];
		snprintf(b4, sizeof(b4), "2001:db8:100:%x::1", s);
		addr_parse(b4, &req.client_addr);
		struct pcp_meta m = { .src = req.client_addr, .now = 1000, .now_ms = 1000000,
				      .io = &j->failures };
		for (unsigned k = 0; k < (j->op == PCP_OP_ANNOUNCE ? 1 : j->per_sub); k++) {
			memset(req.nonce, 7, sizeof(req.nonce));
			req.proto = 6;
			req.int_port = (uint16_t)(1 + k);
			addr_from_v4(&req.sugg_addr, 0);
			req.has_third_party = j->op != PCP_OP_ANNOUNCE;
			addr_from_v4(&req.third_party, 0xc0a80102u);
			size_t n = pcp_encode_request(&req, pkt, sizeof(pkt));
			rcu_read_lock();
			pcp_handle(&j->s->handler, &m, pkt, n);
			rcu_read_unlock();
			if (++j->inbatch == BATCH) {
				j->s->kb->ops->flush(j->s->kb);
				j->inbatch = 0;
			}
		}
	}
	j->s->kb->ops->flush(j->s->kb);
	rcu_unregister_thread();
	return NULL;
}

static double phase(struct pcpd_server *s, unsigned threads, unsigned nsubs, unsigned per_sub,
		    uint8_t op, uint32_t lifetime, unsigned long *failures)
{
	pthread_t t[8];
	struct job j[8];
	double t0 = now_s();
	for (unsigned i = 0; i < threads; i++) {
		j[i] = (struct job){ .s = s, .first_sub = i * (nsubs / threads),
				     .nsubs = nsubs / threads, .per_sub = per_sub, .op = op,
				     .lifetime = lifetime };
		pthread_create(&t[i], NULL, run, &j[i]);
	}
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		*failures += j[i].failures;
	}
	double dt = now_s() - t0;
	unsigned long reqs = (unsigned long)nsubs * (op == PCP_OP_ANNOUNCE ? 1 : per_sub);
	return reqs / dt;
}

int main(int argc, char **argv)
{
	unsigned max_threads = argc > 1 ? (unsigned)atoi(argv[1]) : 2;
	const char *backend = argc > 2 ? argv[2] : "memory";
	log_setup(LOG_TO_STDERR, LOG_ERR, "bench");
	if (strcmp(backend, "memory") != 0 && unshare(CLONE_NEWNET) != 0) {
		perror("unshare(CLONE_NEWNET): the kernel backend needs root");
		return 77;
	}
	printf("backend %s\n", backend);
	rcu_register_thread();
	printf("%-9s %-7s %-12s %-12s %-12s %-12s %s\n", "mappings", "threads", "create/s",
	       "refresh/s", "announce/s", "delete/s", "failures");
	static const unsigned sizes[][2] = { { 4, 64 }, { 8, 40 }, { 12, 25 } };  /* 1k, 10k, 100k */
	for (unsigned si = 0; si < 3; si++) {
		unsigned nsubs = 1u << sizes[si][0], per = sizes[si][1];
		for (unsigned th = 1; th <= max_threads; th *= 2) {
			struct pcpd_server *s = pcpd_server_new(mkcfg(sizes[si][0], per, backend), 0,
								sink);
			if (!s)
				return 1;
			unsigned long f = 0;
			double c = phase(s, th, nsubs, per, PCP_OP_MAP, 3600, &f);
			double r = phase(s, th, nsubs, per, PCP_OP_MAP, 7200, &f);   /* a new expiry: the kernel is written */
			double a = phase(s, th, nsubs, per, PCP_OP_ANNOUNCE, 0, &f);
			size_t live = table_count(s->table);
			double d = phase(s, th, nsubs, per, PCP_OP_MAP, 0, &f);
			printf("%-9zu %-7u %-12.0f %-12.0f %-12.0f %-12.0f %lu\n", live, th, c, r, a, d, f);
			pcpd_server_free(s);
		}
	}
	rcu_unregister_thread();
	return 0;
}
