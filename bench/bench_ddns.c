/* PCP request latency with the DDNS hook off, and on with its provider
 * down: the "the PCP path's latency with the hook enabled and its
 * provider down is the same as with the hook disabled", as figures.
 *
 *   bench_ddns [THREADS [ROUNDS [CYCLES [SUBS_LOG2 [MAPS [PACE_US]]]]]]
 *
 * Workload, identical in every configuration: 2^SUBS_LOG2 subscribers
 * (plain mode, THIRD_PARTY) x MAPS mappings each, all internal TCP port 80
 * on distinct internal hosts; one cycle is MAP create, MAP refresh (a new
 * lifetime), MAP delete, and a round repeats CYCLES cycles on a fresh
 * pcpd_server with the memory backend (no kernel). Every request is timed
 * alone: clock_gettime() around pcp_handle(), encoding done beforehand.
 * Requests go back to back (the hook falls behind), or with PACE_US
 * one every PACE_US microseconds per thread (spinning, not sleeping), so
 * that the hook thread goes idle between events and each event has to
 * wake it, as at the rates pcpd usually sees.
 *
 * Configurations, interleaved round by round (the order rotates) so that
 * the machine's drift lands on all of them alike:
 *   off   no ddns section: the engine has no observer
 *   down  the hook on, one binding "{index}.dyn.example.net" covering every
 *         subscriber with srv "_http._tcp=80", so every create and delete
 *         is a hook event that changes a name; its rfc2136 provider points
 *         at a UDP socket this program binds on 127.0.0.1 and never reads:
 *         every update times out (timeout-ms 200), backs off (20-100 ms)
 *         and is sent again; debounce-ms 0 keeps the hook as busy as it
 *         can be
 *   ovf   as down, with queue-size 16: the queue overflows all the time,
 *         events are coalesced and the hook re-reads whole subscribers
 *         from the table (snapshot) instead
 *
 * Nothing is sent anywhere but 127.0.0.1. The TSIG key (mode 0600) and the
 * hook's ddns.db live in a temporary directory removed at the end. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/log.h"
#include "pcpd/ddns_glue.h"
#include "pcpd/server.h"

enum { C_OFF, C_DOWN, C_OVF, NCONF };
enum { P_CREATE, P_REFRESH, P_DELETE, NPHASE };

static const char *const conf_names[NCONF] = { "off", "down", "ovf" };
static const char *const phase_names[NPHASE] = { "create", "refresh", "delete" };
static const uint32_t phase_lifetime[NPHASE] = { 3600, 7200, 0 };

#define INT_PORT 80
#define MAX_THREADS 8

struct params {
	unsigned threads, rounds, cycles, subs_log2, maps, pace_us;
	unsigned nsubs;
	size_t per_phase;                /* requests in one phase of one cycle */
	int sink_port;                   /* the provider's server: never read */
	char dir[64];                    /* temporary state directory */
	char key_file[128];
};

/* latencies of one phase in one configuration, all rounds */
struct series {
	uint32_t *ns;
	size_t n, cap;
	double wall;                     /* seconds, sum over the phase runs */
	unsigned long failures;
};

/* requests encoded once: phase x subscriber x mapping */
struct pkts {
	uint8_t *buf;
	size_t *off;                     /* per_phase + 1 offsets */
};

struct hook_totals {
	unsigned runs;
	int64_t events, coalesced, resyncs, sent, transient, high_water;
};

static struct params P;
static struct series S[NCONF][NPHASE];
static struct pkts K[NPHASE];
static struct in6_addr *b4s;
static struct hook_totals T[NCONF];

/* ---- the temporary directory ---- */

static void cleanup_dir(void)
{
	if (!P.dir[0])
		return;
	DIR *d = opendir(P.dir);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL)
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				unlinkat(dirfd(d), e->d_name, 0);
		closedir(d);
	}
	if (rmdir(P.dir) != 0)
		fprintf(stderr, "bench_ddns: cannot remove %s: %s\n", P.dir, strerror(errno));
	P.dir[0] = '\0';
}

/* Every file the run creates, so that a signal handler can remove them
 * with unlink() alone. */
static const char *const state_files[] = { "ddns.db", "ddns.db-wal", "ddns.db-shm", "ddns.db-journal" };
#define NSTATE (sizeof(state_files) / sizeof(state_files[0]))
static char state_paths[NSTATE][192];

/* Removes the hook's database between runs: each run starts empty. */
static void forget_state(void)
{
	for (size_t i = 0; i < NSTATE; i++)
		unlink(state_paths[i]);
}

static void on_signal(int sig)
{
	if (P.dir[0]) {
		for (size_t i = 0; i < NSTATE; i++)
			unlink(state_paths[i]);
		unlink(P.key_file);
		rmdir(P.dir);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static int make_dir(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(P.dir, sizeof(P.dir), "%s/bench_ddns.XXXXXX", tmp && tmp[0] == '/' && strlen(tmp) < 40 ? tmp : "/tmp");
	if (!mkdtemp(P.dir)) {
		perror("mkdtemp");
		P.dir[0] = '\0';
		return -1;
	}
	atexit(cleanup_dir);
	for (size_t i = 0; i < NSTATE; i++)
		snprintf(state_paths[i], sizeof(state_paths[i]), "%s/%s", P.dir, state_files[i]);
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGPIPE };
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], on_signal);
	snprintf(P.key_file, sizeof(P.key_file), "%s/tsig.key", P.dir);
	int fd = open(P.key_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		perror(P.key_file);
		return -1;
	}
	/* 32 bytes for hmac-sha256; the value does not matter, nobody checks it */
	static const char key[] = "YmVuY2hfZGRuczogbm90IGEgc2VjcmV0LCAzMiBieXQ=\n";
	ssize_t w = write(fd, key, sizeof(key) - 1);
	close(fd);
	if (w != (ssize_t)sizeof(key) - 1) {
		perror(P.key_file);
		return -1;
	}
	return 0;
}

/* The "DNS server": bound on loopback, never read. Updates sent to it
 * fill its buffer, then the kernel drops them; no answer ever comes. */
static int make_sink(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
		perror("sink socket");
		return -1;
	}
	P.sink_port = ntohs(sa.sin_port);
	return fd;
}

/* ---- configuration ---- */

static struct pcpd_config *mkcfg(int conf)
{
	char text[4096];
	int n = snprintf(text, sizeof(text),
			 "server {\n  max-filters = 4\n  backend = \"memory\"\n  keep-table = false\n"
			 "  state-dir = \"%s\"\n}\n"
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
			 "}\n", P.dir, 64 - P.subs_log2, P.maps);
	if (conf != C_OFF)
		n += snprintf(text + n, sizeof(text) - (size_t)n,
			      "ddns {\n"
			      "  debounce-ms = 0\n"
			      "  startup-grace = 0\n"
			      "  queue-size = %u\n"
			      "  provider \"down\" {\n"
			      "    type = \"rfc2136\"\n"
			      "    server = \"127.0.0.1\"\n"
			      "    port = %d\n"
			      "    zone = \"dyn.example.net\"\n"
			      "    key-name = \"bench-key\"\n"
			      "    key-algorithm = \"hmac-sha256\"\n"
			      "    key-file = \"%s\"\n"
			      "    timeout-ms = 200\n"
			      "    backoff-min-ms = 20\n"
			      "    backoff-max-ms = 100\n"
			      "  }\n"
			      "  binding \"{index}.dyn.example.net\" {\n"
			      "    provider = \"down\"\n"
			      "    subscribers = \"2001:db8:100::/%u\"\n"
			      "    srv = {\"_http._tcp=%d\"}\n"
			      "  }\n"
			      "}\n", conf == C_OVF ? 16 : 65536, P.sink_port, P.key_file, 64 - P.subs_log2,
			      INT_PORT);
	if (n < 0 || (size_t)n >= sizeof(text)) {
		fprintf(stderr, "bench_ddns: config text too long\n");
		exit(1);
	}
	struct pcpd_config *c = pcpd_config_load_buf(text, "bench_ddns.conf", stderr);
	if (!c)
		exit(1);
	return c;
}

/* ---- requests ---- */

static void encode_all(void)
{
	b4s = calloc(P.nsubs, sizeof(*b4s));
	for (unsigned s = 0; s < P.nsubs; s++) {
		char b4[64];
		snprintf(b4, sizeof(b4), "2001:db8:100:%x::1", s);
		addr_parse(b4, &b4s[s]);
	}
	for (unsigned ph = 0; ph < NPHASE; ph++) {
		K[ph].buf = malloc(P.per_phase * 128);
		K[ph].off = malloc((P.per_phase + 1) * sizeof(size_t));
		if (!b4s || !K[ph].buf || !K[ph].off) {
			fprintf(stderr, "bench_ddns: out of memory\n");
			exit(1);
		}
		size_t o = 0, i = 0;
		for (unsigned s = 0; s < P.nsubs; s++)
			for (unsigned k = 0; k < P.maps; k++) {
				struct pcp_request req;
				memset(&req, 0, sizeof(req));
				req.version = 2;
				req.opcode = PCP_OP_MAP;
				req.lifetime = phase_lifetime[ph];
				req.client_addr = b4s[s];
				memset(req.nonce, 7, sizeof(req.nonce));
				req.proto = 6;
				req.int_port = INT_PORT;
				addr_from_v4(&req.sugg_addr, 0);
				req.has_third_party = true;
				/* one internal host per mapping: 192.168.<k/250>.<k%250+2> */
				addr_from_v4(&req.third_party, 0xc0a80000u | (k / 250) << 8 | (k % 250 + 2));
				K[ph].off[i++] = o;
				size_t n = pcp_encode_request(&req, K[ph].buf + o, 128);
				if (!n) {
					fprintf(stderr, "bench_ddns: cannot encode a request\n");
					exit(1);
				}
				o += n;
			}
		K[ph].off[i] = o;
	}
}

static void sink(const struct pcp_meta *m, const uint8_t *buf, size_t len)
{
	(void)len;
	if (buf[3] != 0)                 /* result code: count non-SUCCESS */
		(*(unsigned long *)m->io)++;
}

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct job {
	struct pcpd_server *s;
	unsigned first_sub, nsubs, phase;
	uint32_t *out;                   /* this job's first subscriber's slot */
	unsigned long failures;
};

static void *run(void *arg)
{
	struct job *j = arg;
	rcu_register_thread();
	const struct pkts *pk = &K[j->phase];
	uint32_t *out = j->out;
	uint64_t pace = (uint64_t)P.pace_us * 1000;
	for (unsigned s = j->first_sub; s < j->first_sub + j->nsubs; s++) {
		struct pcp_meta m = { .src = b4s[s], .now = 1000, .now_ms = 1000000, .io = &j->failures };
		for (unsigned k = 0; k < P.maps; k++) {
			size_t i = (size_t)s * P.maps + k;
			const uint8_t *pkt = pk->buf + pk->off[i];
			size_t n = pk->off[i + 1] - pk->off[i];
			uint64_t t0 = now_ns();
			rcu_read_lock();
			pcp_handle(&j->s->handler, &m, pkt, n);
			rcu_read_unlock();
			uint64_t d = now_ns() - t0;
			*out++ = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
			while (pace && now_ns() - t0 < pace)
				;
		}
	}
	rcu_unregister_thread();
	return NULL;
}

static void phase(struct pcpd_server *s, int conf, unsigned ph)
{
	struct series *se = &S[conf][ph];
	if (se->n + P.per_phase > se->cap) {
		fprintf(stderr, "bench_ddns: series overflow\n");
		exit(1);
	}
	pthread_t t[MAX_THREADS];
	struct job j[MAX_THREADS];
	unsigned per = P.nsubs / P.threads;
	uint64_t t0 = now_ns();
	for (unsigned i = 0; i < P.threads; i++) {
		j[i] = (struct job){ .s = s, .first_sub = i * per, .nsubs = per, .phase = ph,
				     .out = se->ns + se->n + (size_t)i * per * P.maps };
		if (pthread_create(&t[i], NULL, run, &j[i]) != 0) {
			perror("pthread_create");
			exit(1);
		}
	}
	for (unsigned i = 0; i < P.threads; i++) {
		pthread_join(t[i], NULL);
		se->failures += j[i].failures;
	}
	se->wall += (double)(now_ns() - t0) / 1e9;
	se->n += P.per_phase;
}

/* ---- one round of one configuration ---- */

static int64_t jint(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : -1;
}

static void one_run(int conf, unsigned round)
{
	struct pcpd_server *s = pcpd_server_new(mkcfg(conf), 0, sink);
	if (!s)
		exit(1);
	struct pcpd_ddns *d = NULL;
	if (conf != C_OFF) {
		char err[512];
		d = pcpd_ddns_new(s, err, sizeof(err));
		if (!d || pcpd_ddns_start(d, false) < 0) {
			fprintf(stderr, "bench_ddns: the hook does not start: %s\n", err[0] ? err : "?");
			exit(1);
		}
	}
	for (unsigned c = 0; c < P.cycles; c++)
		for (unsigned ph = 0; ph < NPHASE; ph++)
			phase(s, conf, ph);
	if (d) {
		json_object *st = ddns_hook_stats(pcpd_ddns_hook(d));
		printf("round %u %-4s hook: %s\n", round, conf_names[conf],
		       json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN));
		struct hook_totals *h = &T[conf];
		h->runs++;
		h->events += jint(st, "events");
		h->coalesced += jint(st, "events_coalesced");
		h->resyncs += jint(st, "resyncs");
		h->sent += jint(st, "updates_sent");
		h->transient += jint(st, "updates_transient");
		if (jint(st, "queue_high_water") > h->high_water)
			h->high_water = jint(st, "queue_high_water");
		json_object_put(st);
		pcpd_ddns_free(d);
		forget_state();
	}
	pcpd_server_free(s);
	fflush(stdout);
}

/* ---- figures ---- */

struct summary {
	size_t n;
	double p50, p99, p999, max, mean, rps;
};

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

static double pct(const uint32_t *v, size_t n, double p)
{
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* Sorts v (the caller's copy). */
static struct summary summarize(uint32_t *v, size_t n, double wall)
{
	struct summary r = { .n = n };
	if (!n)
		return r;
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += v[i];
	qsort(v, n, sizeof(*v), cmp_u32);
	r.p50 = pct(v, n, 0.50);
	r.p99 = pct(v, n, 0.99);
	r.p999 = pct(v, n, 0.999);
	r.max = v[n - 1];
	r.mean = sum / (double)n;
	r.rps = wall > 0 ? (double)n / wall : 0;
	return r;
}

static void report(void)
{
	struct summary sm[NCONF][NPHASE + 1];
	for (int c = 0; c < NCONF; c++) {
		size_t all_n = 0;
		double all_wall = 0;
		for (unsigned ph = 0; ph < NPHASE; ph++) {
			all_n += S[c][ph].n;
			all_wall += S[c][ph].wall;
		}
		uint32_t *all = malloc((all_n ? all_n : 1) * sizeof(*all));
		if (!all) {
			fprintf(stderr, "bench_ddns: out of memory\n");
			exit(1);
		}
		size_t o = 0;
		for (unsigned ph = 0; ph < NPHASE; ph++) {
			memcpy(all + o, S[c][ph].ns, S[c][ph].n * sizeof(*all));
			o += S[c][ph].n;
			sm[c][ph] = summarize(S[c][ph].ns, S[c][ph].n, S[c][ph].wall);
		}
		sm[c][NPHASE] = summarize(all, all_n, all_wall);
		free(all);
	}
	printf("\nper-request latency, ns (clock_gettime around pcp_handle)\n");
	printf("%-5s %-8s %9s %7s %7s %8s %9s %7s %10s %s\n", "conf", "phase", "requests", "p50", "p99",
	       "p99.9", "max", "mean", "req/s", "failures");
	for (unsigned ph = 0; ph <= NPHASE; ph++)
		for (int c = 0; c < NCONF; c++) {
			const struct summary *x = &sm[c][ph];
			unsigned long f = 0;
			for (unsigned q = 0; q < NPHASE; q++)
				if (ph == NPHASE || q == ph)
					f += S[c][q].failures;
			printf("%-5s %-8s %9zu %7.0f %7.0f %8.0f %9.0f %7.0f %10.0f %lu\n", conf_names[c],
			       ph < NPHASE ? phase_names[ph] : "all", x->n, x->p50, x->p99, x->p999, x->max, x->mean,
			       x->rps, f);
		}
	printf("\nratios to off (1.00 = the same)\n");
	printf("%-9s %-8s %6s %6s %6s %6s %6s %6s\n", "ratio", "phase", "p50", "p99", "p99.9", "max", "mean",
	       "req/s");
	for (int c = C_DOWN; c < NCONF; c++)
		for (unsigned ph = 0; ph <= NPHASE; ph++) {
			const struct summary *x = &sm[c][ph], *b = &sm[C_OFF][ph];
			char label[16];
			snprintf(label, sizeof(label), "%s/off", conf_names[c]);
			printf("%-9s %-8s %6.2f %6.2f %6.2f %6.2f %6.2f %6.2f\n", label,
			       ph < NPHASE ? phase_names[ph] : "all", x->p50 / b->p50, x->p99 / b->p99,
			       x->p999 / b->p999, x->max / b->max, x->mean / b->mean, x->rps / b->rps);
		}
	printf("\nhook totals over all rounds\n");
	for (int c = C_DOWN; c < NCONF; c++) {
		const struct hook_totals *h = &T[c];
		printf("%-5s runs %u events %lld coalesced %lld resyncs %lld updates_sent %lld transient %lld "
		       "queue_high_water %lld\n", conf_names[c], h->runs, (long long)h->events,
		       (long long)h->coalesced, (long long)h->resyncs, (long long)h->sent,
		       (long long)h->transient, (long long)h->high_water);
	}
}

static unsigned arg(int argc, char **argv, int i, unsigned def, unsigned min, unsigned max)
{
	if (argc <= i)
		return def;
	char *end;
	unsigned long v = strtoul(argv[i], &end, 10);
	if (*end || v < min || v > max) {
		fprintf(stderr, "usage: bench_ddns [THREADS 1-%d [ROUNDS [CYCLES [SUBS_LOG2 1-12 [MAPS 1-500 "
			"[PACE_US]]]]]]\n", MAX_THREADS);
		exit(2);
	}
	return (unsigned)v;
}

int main(int argc, char **argv)
{
	P.threads = arg(argc, argv, 1, 1, 1, MAX_THREADS);
	P.rounds = arg(argc, argv, 2, 6, 1, 1000);
	P.cycles = arg(argc, argv, 3, 20, 1, 100000);
	P.subs_log2 = arg(argc, argv, 4, 8, 1, 12);
	P.maps = arg(argc, argv, 5, 32, 1, 500);
	P.pace_us = arg(argc, argv, 6, 0, 0, 1000000);
	P.nsubs = 1u << P.subs_log2;
	if (P.nsubs % P.threads) {
		fprintf(stderr, "bench_ddns: THREADS must divide the number of subscribers\n");
		return 2;
	}
	P.per_phase = (size_t)P.nsubs * P.maps;
	log_setup(LOG_TO_STDERR, LOG_ERR, "bench");   /* the hook's per-retry warnings stay quiet */

	if (make_dir() < 0)
		return 1;
	int sinkfd = make_sink();
	if (sinkfd < 0)
		return 1;
	encode_all();
	for (int c = 0; c < NCONF; c++)
		for (unsigned ph = 0; ph < NPHASE; ph++) {
			S[c][ph].cap = (size_t)P.rounds * P.cycles * P.per_phase;
			S[c][ph].ns = malloc(S[c][ph].cap * sizeof(uint32_t));
			if (!S[c][ph].ns) {
				fprintf(stderr, "bench_ddns: out of memory\n");
				return 1;
			}
		}
	printf("bench_ddns: %u subscribers x %u MAP (internal TCP %d), %u cycle(s) of create/refresh/delete per "
	       "round, %u round(s), %u thread(s), memory backend, ", P.nsubs, P.maps, INT_PORT, P.cycles, P.rounds,
	       P.threads);
	if (P.pace_us)
		printf("one request every %u us per thread\n", P.pace_us);
	else
		printf("requests back to back\n");
	printf("provider down: rfc2136 to 127.0.0.1:%d (never read), timeout-ms 200, backoff 20-100 ms, "
	       "debounce-ms 0; state in %s\n", P.sink_port, P.dir);

	rcu_register_thread();
	for (unsigned r = 0; r < P.rounds; r++)
		for (int i = 0; i < NCONF; i++)
			one_run((int)((r + (unsigned)i) % NCONF), r);
	rcu_unregister_thread();
	report();

	close(sinkfd);
	cleanup_dir();
	for (int c = 0; c < NCONF; c++)
		for (unsigned ph = 0; ph < NPHASE; ph++)
			free(S[c][ph].ns);
	for (unsigned ph = 0; ph < NPHASE; ph++) {
		free(K[ph].buf);
		free(K[ph].off);
	}
	free(b4s);
	return 0;
}
