/* HTTP providers of the DDNS hook: dyndns2 and webhook classification and
 * body (pure), then both providers live against tests/ddns/https_server.py
 * over TLS with a test CA made by tests/ddns/mkca.sh. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ddns-hook/dyndns2.h"
#include "ddns-hook/http.h"
#include "ddns-hook/webhook.h"

#define PYTHON "/usr/bin/python3"        /* not whatever python3 PATH finds */
#define ADDR "203.0.113.10"

/* ---- shared fixtures ---- */

static const struct ddns_srv_conf srv_conf[2] = {
	{ "_http._tcp", 6, 80 },
	{ "_sip._udp", 17, 5060 },
};

static void make_update(struct ddns_update *u, const char *name)
{
	memset(u, 0, sizeof(*u));
	u->name = name;
	u->subscriber = "sub-1";
	u->sub_index = 1;
	u->event = DDNS_CHANGED;
	u->seq = 42;
	u->has_addr = true;
	inet_pton(AF_INET, ADDR, &u->addr);
	u->services = srv_conf;
	u->nservices = 2;
	u->srv[0] = (struct ddns_srv_rec){ &srv_conf[0], 1024, 3600 };
	u->srv[1] = (struct ddns_srv_rec){ &srv_conf[1], 2048, UINT32_MAX };
	u->nsrv = 2;
	u->a = true;
	u->ttl = 60;
}

/* ---- pure: dyndns2 answers ---- */

struct dd_case {
	long status;
	uint32_t retry_after;
	const char *body;
	enum ddns_rclass cls;
	uint32_t wait;
	const char *code;
};

static const struct dd_case dd_cases[] = {
	{ 200, 0, "good 203.0.113.10\n", DDNS_R_OK, 0, "good" },
	{ 200, 0, "nochg 203.0.113.10", DDNS_R_OK, 0, "nochg" },
	{ 200, 0, " \r\ngood", DDNS_R_OK, 0, "good" },
	{ 200, 0, "badauth", DDNS_R_PERM_PROVIDER, 0, "badauth" },
	{ 200, 0, "!donator", DDNS_R_PERM_PROVIDER, 0, "!donator" },
	{ 200, 0, "badagent\n", DDNS_R_PERM_PROVIDER, 0, "badagent" },
	{ 200, 0, "notfqdn", DDNS_R_PERM_NAME, 0, "notfqdn" },
	{ 200, 0, "nohost", DDNS_R_PERM_NAME, 0, "nohost" },
	{ 200, 0, "numhost", DDNS_R_PERM_NAME, 0, "numhost" },
	{ 200, 0, "abuse\n", DDNS_R_PERM_NAME, 0, "abuse" },
	{ 200, 0, "dnserr", DDNS_R_WAIT, 1800, "dnserr" },
	{ 200, 0, "911", DDNS_R_WAIT, 1800, "911" },
	{ 200, 0, "w30m", DDNS_R_WAIT, 1800, "wait" },
	{ 200, 0, "w5", DDNS_R_WAIT, 5, "wait" },
	{ 200, 0, "w2h", DDNS_R_WAIT, 7200, "wait" },
	{ 200, 0, "w99999999999h", DDNS_R_WAIT, 86400, "wait" },
	{ 200, 0, "wat", DDNS_R_TRANSIENT, 0, "unknown" },
	{ 200, 0, "goodbye", DDNS_R_TRANSIENT, 0, "unknown" },
	{ 200, 0, "<html>", DDNS_R_TRANSIENT, 0, "unknown" },
	{ 200, 0, "", DDNS_R_TRANSIENT, 0, "empty" },
	{ 200, 0, " \n ", DDNS_R_TRANSIENT, 0, "empty" },
	{ 500, 0, "", DDNS_R_TRANSIENT, 0, "http-500" },
	{ 503, 0, "<html>busy</html>", DDNS_R_TRANSIENT, 0, "http-503" },
	{ 500, 0, "good", DDNS_R_TRANSIENT, 0, "http-500" },   /* success word on an error status */
	{ 503, 0, "911", DDNS_R_WAIT, 1800, "911" },            /* error word beats the status */
	{ 401, 0, "badauth", DDNS_R_PERM_PROVIDER, 0, "badauth" },
	{ 401, 0, "", DDNS_R_PERM_PROVIDER, 0, "http-401" },
	{ 403, 0, "Forbidden", DDNS_R_PERM_PROVIDER, 0, "http-403" },
	{ 404, 0, "", DDNS_R_PERM_NAME, 0, "http-404" },
	{ 400, 0, "bad request", DDNS_R_PERM_NAME, 0, "http-400" },
	{ 408, 0, "", DDNS_R_TRANSIENT, 0, "http-408" },
	{ 429, 0, "", DDNS_R_TRANSIENT, 0, "http-429" },
	{ 429, 60, "", DDNS_R_WAIT, 60, "http-429" },
	{ 429, 99999, "", DDNS_R_WAIT, 3600, "http-429" },
	{ 301, 0, "", DDNS_R_PERM_PROVIDER, 0, "http-301" },
};

static void test_dyndns2_classify_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(dd_cases) / sizeof(dd_cases[0]); i++) {
		const struct dd_case *c = &dd_cases[i];
		struct ddns_result r;

		memset(&r, 0xa5, sizeof(r));
		dyndns2_classify(c->status, c->retry_after, c->body, strlen(c->body), &r);
		if (r.cls != c->cls || r.retry_after != c->wait || strcmp(r.code, c->code))
			fail_msg("case %zu (%ld \"%s\"): cls %d wait %u code %s", i, c->status,
				 c->body, r.cls, r.retry_after, r.code);
		assert_non_null(memchr(r.msg, '\0', sizeof(r.msg)));
	}
}

/* The length given is the length read: no NUL needed, none trusted. */
static void test_dyndns2_classify_len(void **state)
{
	struct ddns_result r;

	(void)state;
	dyndns2_classify(200, 0, "goodness", 4, &r);
	assert_int_equal(r.cls, DDNS_R_OK);
	assert_string_equal(r.code, "good");
	dyndns2_classify(200, 0, "badauth", 0, &r);
	assert_string_equal(r.code, "empty");
}

static void test_dyndns2_classify_unknown_sanitised(void **state)
{
	const char body[] = "\x01sp\x7f" "am\x1b[31m and more\nsecond line";
	struct ddns_result r;

	(void)state;
	dyndns2_classify(200, 0, body, sizeof(body) - 1, &r);
	assert_int_equal(r.cls, DDNS_R_TRANSIENT);
	assert_string_equal(r.code, "unknown");
	for (const char *p = r.msg; *p; p++)
		assert_true(*p >= 0x20 && *p < 0x7f);
	assert_non_null(strstr(r.msg, "sp?am"));
	assert_null(strstr(r.msg, "second line"));
}

static void test_dyndns2_url(void **state)
{
	struct in_addr a;
	char *u;

	(void)state;
	inet_pton(AF_INET, ADDR, &a);
	u = dyndns2_url("https://dyn.example/nic/update", "host.dyn.example.net", a);
	assert_string_equal(u, "https://dyn.example/nic/update?hostname=host.dyn.example.net&myip=" ADDR);
	free(u);
	u = dyndns2_url("https://dyn.example/nic/update?system=dyndns", "a b&c", a);
	assert_string_equal(u, "https://dyn.example/nic/update?system=dyndns&hostname=a%20b%26c&myip=" ADDR);
	free(u);
}

/* ---- pure: transport errors ---- */

static void check_transport(int code, bool too_large, enum ddns_rclass cls, const char *rcode)
{
	struct http_response resp = { .curl_code = code, .too_large = too_large,
				      .error = "some \x01 text\nmore", .body = "" };
	struct ddns_result r;

	assert_true(http_classify_transport(&resp, &r));
	assert_int_equal(r.cls, cls);
	assert_string_equal(r.code, rcode);
	assert_string_equal(r.msg, "some ? text");
}

static void test_transport_classify(void **state)
{
	struct http_response ok = { .curl_code = 0, .error = "", .body = "" };
	struct ddns_result r;

	(void)state;
	assert_false(http_classify_transport(&ok, &r));
	check_transport(CURLE_OPERATION_TIMEDOUT, false, DDNS_R_TRANSIENT, "timeout");
	check_transport(CURLE_COULDNT_CONNECT, false, DDNS_R_TRANSIENT, "connect");
	check_transport(CURLE_COULDNT_RESOLVE_HOST, false, DDNS_R_TRANSIENT, "resolve");
	check_transport(CURLE_GOT_NOTHING, false, DDNS_R_TRANSIENT, "network");
	check_transport(CURLE_RECV_ERROR, false, DDNS_R_TRANSIENT, "network");
	check_transport(CURLE_SSL_CONNECT_ERROR, false, DDNS_R_TRANSIENT, "tls");
	check_transport(CURLE_PEER_FAILED_VERIFICATION, false, DDNS_R_PERM_PROVIDER, "tls-verify");
	check_transport(CURLE_SSL_CACERT_BADFILE, false, DDNS_R_PERM_PROVIDER, "tls-verify");
	check_transport(CURLE_UNSUPPORTED_PROTOCOL, false, DDNS_R_PERM_PROVIDER, "bad-url");
	check_transport(CURLE_WRITE_ERROR, true, DDNS_R_TRANSIENT, "too-large");
	check_transport(CURLE_WRITE_ERROR, false, DDNS_R_TRANSIENT, "curl-23");
}

/* ---- pure: webhook ---- */

static void test_webhook_classify(void **state)
{
	static const struct { long st; uint32_t ra; enum ddns_rclass cls; uint32_t wait; } t[] = {
		{ 200, 0, DDNS_R_OK, 0 }, { 204, 0, DDNS_R_OK, 0 },
		{ 408, 0, DDNS_R_TRANSIENT, 0 }, { 429, 0, DDNS_R_TRANSIENT, 0 },
		{ 429, 30, DDNS_R_WAIT, 30 }, { 429, 7200, DDNS_R_WAIT, 3600 },
		{ 500, 0, DDNS_R_TRANSIENT, 0 }, { 503, 120, DDNS_R_TRANSIENT, 0 },
		{ 401, 0, DDNS_R_PERM_PROVIDER, 0 }, { 403, 0, DDNS_R_PERM_PROVIDER, 0 },
		{ 302, 0, DDNS_R_PERM_PROVIDER, 0 },
		{ 400, 0, DDNS_R_PERM_NAME, 0 }, { 404, 0, DDNS_R_PERM_NAME, 0 },
		{ 422, 0, DDNS_R_PERM_NAME, 0 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct ddns_result r;
		char code[16];

		webhook_classify(t[i].st, t[i].ra, "x", 1, &r);
		snprintf(code, sizeof(code), "http-%ld", t[i].st);
		if (r.cls != t[i].cls || r.retry_after != t[i].wait || strcmp(r.code, code))
			fail_msg("status %ld: cls %d wait %u code %s", t[i].st, r.cls, r.retry_after, r.code);
	}
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static bool jnull(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && v == NULL;
}

static int64_t jint(json_object *o, const char *key)
{
	json_object *v;

	assert_true(json_object_object_get_ex(o, key, &v));
	assert_true(json_object_is_type(v, json_type_int));
	return json_object_get_int64(v);
}

static void test_webhook_body(void **state)
{
	const char *sub = "q\"uo\\te\x01\n\t\x1f end";
	const char *txt = "v=1 \"x\" \\ /";
	struct ddns_update u;
	json_object *o, *m, *e;

	(void)state;
	make_update(&u, "host.dyn.example.net");
	u.subscriber = sub;
	u.txt = txt;
	u.seq = UINT64_C(18446744073709551615);
	char *body = webhook_body(&u, 1700000000);
	assert_non_null(body);
	for (const char *p = body; *p; p++)
		assert_true((unsigned char)*p >= 0x20);   /* control characters escaped */
	assert_non_null(strstr(body, "\\u0001"));
	o = json_tokener_parse(body);
	assert_non_null(o);
	assert_string_equal(jstr(o, "event"), "changed");
	assert_true(json_object_object_get_ex(o, "seq", &e));
	assert_true(json_object_get_uint64(e) == UINT64_C(18446744073709551615));
	assert_string_equal(jstr(o, "subscriber"), sub);
	assert_string_equal(jstr(o, "name"), "host.dyn.example.net");
	assert_string_equal(jstr(o, "address"), ADDR);
	assert_string_equal(jstr(o, "txt"), txt);
	assert_int_equal(jint(o, "ttl"), 60);
	assert_int_equal(jint(o, "time"), 1700000000);
	assert_true(json_object_object_get_ex(o, "mappings", &m));
	assert_int_equal(json_object_array_length(m), 2);
	e = json_object_array_get_idx(m, 0);
	assert_string_equal(jstr(e, "service"), "_http._tcp");
	assert_string_equal(jstr(e, "protocol"), "tcp");
	assert_int_equal(jint(e, "internal_port"), 80);
	assert_int_equal(jint(e, "port"), 1024);
	assert_int_equal(jint(e, "lifetime"), 3600);
	e = json_object_array_get_idx(m, 1);
	assert_string_equal(jstr(e, "protocol"), "udp");
	assert_int_equal(jint(e, "internal_port"), 5060);
	assert_true(jnull(e, "lifetime"));          /* static mapping */
	json_object_put(o);
	free(body);
}

static void test_webhook_body_deleted(void **state)
{
	struct ddns_update u;
	json_object *o, *m;

	(void)state;
	make_update(&u, "gone.example.net");
	u.event = DDNS_DELETED;
	u.has_addr = false;
	u.nsrv = 0;
	char *body = webhook_body(&u, 5);
	o = json_tokener_parse(body);
	assert_non_null(o);
	assert_string_equal(jstr(o, "event"), "deleted");
	assert_true(jnull(o, "address"));
	assert_true(jnull(o, "txt"));
	assert_true(json_object_object_get_ex(o, "mappings", &m));
	assert_int_equal(json_object_array_length(m), 0);
	json_object_put(o);
	free(body);
	u.event = DDNS_CREATED;
	body = webhook_body(&u, 5);
	assert_non_null(strstr(body, "\"event\":\"created\""));
	free(body);
}

/* RFC 4231 test case 2 */
static void test_webhook_signature(void **state)
{
	const char *data = "what do ya want for nothing?";
	char hex[65];

	(void)state;
	webhook_signature("Jefe", 4, data, strlen(data), hex);
	assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

/* ---- live: server process and temp dir ---- */

static struct {
	char dir[64];
	char ca[128], other_ca[128], log[128];
	pid_t pid;
	int port;
} G = { .pid = -1 };

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void live_cleanup(void)
{
	if (G.pid > 0) {
		kill(G.pid, SIGTERM);
		waitpid(G.pid, NULL, 0);
		G.pid = -1;
	}
	if (G.dir[0]) {
		nftw(G.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		G.dir[0] = '\0';
	}
}

static int run_wait(char *const argv[])
{
	int st;
	pid_t pid = fork();

	if (pid == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Reads the port the server prints once it listens (10 s at most). */
static int read_port(int fd)
{
	char buf[32];
	size_t n = 0;
	struct pollfd p = { .fd = fd, .events = POLLIN };

	while (n + 1 < sizeof(buf) && poll(&p, 1, 10000) == 1) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = '\0';
		if (strchr(buf, '\n'))
			return atoi(buf);
	}
	return -1;
}

static int start_server(void)
{
	char cert[128], key[128];
	int pfd[2];

	snprintf(cert, sizeof(cert), "%s/pki/server.pem", G.dir);
	snprintf(key, sizeof(key), "%s/pki/server.key", G.dir);
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	char *argv[] = { PYTHON, SRCDIR "/tests/ddns/https_server.py", "--port", "0",
			 "--cert", cert, "--key", key, "--log", G.log, "--slow", "2", NULL };
	G.pid = fork();
	if (G.pid == 0) {
		/* the server must not outlive a crashed test */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(pfd[1], STDOUT_FILENO);
		execv(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	G.port = G.pid > 0 ? read_port(pfd[0]) : -1;
	close(pfd[0]);
	return G.port > 0 ? 0 : -1;
}

static int live_setup(void **state)
{
	char pki[96];

	(void)state;
	snprintf(G.dir, sizeof(G.dir), "/tmp/pcpd-ddns-http.XXXXXX");
	if (!mkdtemp(G.dir)) {
		G.dir[0] = '\0';
		return -1;
	}
	atexit(live_cleanup);
	snprintf(pki, sizeof(pki), "%s/pki", G.dir);
	snprintf(G.ca, sizeof(G.ca), "%s/ca.pem", pki);
	snprintf(G.other_ca, sizeof(G.other_ca), "%s/other-ca.pem", pki);
	snprintf(G.log, sizeof(G.log), "%s/requests.log", G.dir);
	char *mk[] = { "/bin/sh", SRCDIR "/tests/ddns/mkca.sh", pki, NULL };
	if (run_wait(mk) != 0) {
		fprintf(stderr, "mkca.sh failed\n");
		return -1;
	}
	if (start_server() < 0) {
		fprintf(stderr, "https_server.py did not start\n");
		return -1;
	}
	return 0;
}

static int live_teardown(void **state)
{
	(void)state;
	live_cleanup();
	return 0;
}

/* ---- live: helpers ---- */

static void conf_init(struct ddns_provider_conf *c, enum ddns_ptype t, const char *path)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "test");
	c->type = t;
	snprintf(c->url, sizeof(c->url), "https://127.0.0.1:%d%s", G.port, path);
	snprintf(c->ca_file, sizeof(c->ca_file), "%s", G.ca);
	c->ttl = 60;
	c->timeout_ms = 3000;
}

static void write_secret(char *path, size_t len, const char *name, const char *content, mode_t mode)
{
	snprintf(path, len, "%s/%s", G.dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

struct rec {
	int calls;
	int order;
	double at;
	struct ddns_result r;
};

static int g_pending, g_order;
static bool g_in_send;
static struct ev_loop *g_loop;

static void on_done(void *arg, const struct ddns_result *r)
{
	struct rec *x = arg;

	assert_false(g_in_send);                 /* never from inside send() */
	x->calls++;
	x->r = *r;
	x->order = ++g_order;
	x->at = ev_now(g_loop);
	g_pending--;
}

static void expire_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)revents;
	*(bool *)w->data = true;
	ev_break(l, EVBREAK_ONE);
}

/* Runs the loop for max seconds, or until nothing is pending. */
static bool run_loop(double max, bool until_done)
{
	bool expired = false;
	ev_timer t;

	ev_timer_init(&t, expire_cb, max, 0.);
	t.data = &expired;
	ev_timer_start(g_loop, &t);
	while (!expired && (!until_done || g_pending > 0))
		ev_run(g_loop, EVRUN_ONCE);
	ev_timer_stop(g_loop, &t);
	return !expired;
}

static void *open_ok(const struct ddns_provider_ops *ops, const struct ddns_provider_conf *c)
{
	char err[256] = "";
	void *p = ops->open(c, g_loop, err, sizeof(err));

	if (!p)
		fail_msg("open: %s", err);
	return p;
}

static void send_one(const struct ddns_provider_ops *ops, void *p, const struct ddns_update *u,
		     struct rec *x)
{
	memset(x, 0, sizeof(*x));
	g_pending++;
	g_in_send = true;
	ops->send(p, u, on_done, x);
	g_in_send = false;
	assert_int_equal(x->calls, 0);
}

/* One update through a fresh provider; the result in x. */
static void run_one(const struct ddns_provider_ops *ops, const struct ddns_provider_conf *c,
		    const struct ddns_update *u, struct rec *x)
{
	g_loop = ev_loop_new(EVFLAG_AUTO);
	void *p = open_ok(ops, c);
	send_one(ops, p, u, x);
	assert_true(run_loop(10., true));
	assert_int_equal(x->calls, 1);
	ops->close(p);
	ev_loop_destroy(g_loop);
	g_loop = NULL;
}

static const char *dd_creds(void)
{
	static char path[160];

	write_secret(path, sizeof(path), "dyndns.cred", "alice:s3cr:et pw\n", 0600);
	return path;
}

static void dd_conf(struct ddns_provider_conf *c)
{
	conf_init(c, DDNS_DYNDNS2, "/nic/update");
	snprintf(c->credentials_file, sizeof(c->credentials_file), "%s", dd_creds());
}

static void dd_run(const struct ddns_provider_conf *c, const char *name, struct rec *x)
{
	struct ddns_update u;

	make_update(&u, name);
	run_one(&ddns_dyndns2_ops, c, &u, x);
}

/* The last logged request whose query or body contains needle. */
static json_object *log_find(const char *needle)
{
	FILE *f = fopen(G.log, "r");
	json_object *found = NULL;
	char *line = NULL;
	size_t cap = 0;

	if (!f)
		return NULL;
	while (getline(&line, &cap, f) > 0) {
		json_object *o = json_tokener_parse(line);
		const char *q = o ? jstr(o, "query") : NULL, *b = o ? jstr(o, "body") : NULL;
		if (o && ((q && strstr(q, needle)) || (b && strstr(b, needle)))) {
			json_object_put(found);
			found = o;
		} else {
			json_object_put(o);
		}
	}
	free(line);
	fclose(f);
	return found;
}

static const char *log_header(json_object *o, const char *name)
{
	json_object *h;

	if (!json_object_object_get_ex(o, "headers", &h))
		return NULL;
	json_object_object_foreach(h, k, v) {
		if (!strcasecmp(k, name))
			return json_object_get_string(v);
	}
	return NULL;
}

/* ---- live: dyndns2 ---- */

static void test_live_dyndns2_good(void **state)
{
	struct ddns_provider_conf c;
	struct rec x;
	char expect[128];
	unsigned char b64[64];

	(void)state;
	dd_conf(&c);
	dd_run(&c, "good1.example.net", &x);
	assert_int_equal(x.r.cls, DDNS_R_OK);
	assert_string_equal(x.r.code, "good");

	json_object *o = log_find("hostname=good1.example.net");
	assert_non_null(o);
	assert_string_equal(jstr(o, "method"), "GET");
	assert_string_equal(jstr(o, "path"), "/nic/update");
	assert_string_equal(jstr(o, "query"), "hostname=good1.example.net&myip=" ADDR);
	EVP_EncodeBlock(b64, (const unsigned char *)"alice:s3cr:et pw", 16);
	snprintf(expect, sizeof(expect), "Basic %s", b64);
	assert_string_equal(log_header(o, "Authorization"), expect);
	assert_string_equal(log_header(o, "User-Agent"), "pcpd/" PCPD_VERSION);
	json_object_put(o);
}

static void test_live_dyndns2_user_agent(void **state)
{
	const char *ua = "ExampleCarrier pcpd-AFTR/" PCPD_VERSION " noc@example.net";
	struct ddns_provider_conf c;
	struct rec x;

	(void)state;
	dd_conf(&c);
	snprintf(c.user_agent, sizeof(c.user_agent), "%s", ua);
	dd_run(&c, "good-ua.example.net", &x);
	assert_int_equal(x.r.cls, DDNS_R_OK);
	json_object *o = log_find("hostname=good-ua.example.net");
	assert_non_null(o);
	assert_string_equal(log_header(o, "User-Agent"), ua);
	json_object_put(o);
}

static void test_live_dyndns2_answers(void **state)
{
	static const struct { const char *name; enum ddns_rclass cls; uint32_t wait; const char *code; } t[] = {
		{ "nochg1.example.net", DDNS_R_OK, 0, "nochg" },
		{ "badauth1.example.net", DDNS_R_PERM_PROVIDER, 0, "badauth" },
		{ "abuse1.example.net", DDNS_R_PERM_NAME, 0, "abuse" },
		{ "911-1.example.net", DDNS_R_WAIT, 1800, "911" },
		{ "notfqdn1.example.net", DDNS_R_PERM_NAME, 0, "notfqdn" },
		{ "nohost1.example.net", DDNS_R_PERM_NAME, 0, "nohost" },
		{ "dnserr1.example.net", DDNS_R_WAIT, 1800, "dnserr" },
		{ "big1.example.net", DDNS_R_TRANSIENT, 0, "too-large" },
	};
	struct ddns_provider_conf c;

	(void)state;
	dd_conf(&c);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct rec x;

		dd_run(&c, t[i].name, &x);
		if (x.r.cls != t[i].cls || x.r.retry_after != t[i].wait || strcmp(x.r.code, t[i].code))
			fail_msg("%s: cls %d wait %u code %s (%s)", t[i].name, x.r.cls,
				 x.r.retry_after, x.r.code, x.r.msg);
	}
}

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_live_dyndns2_slow(void **state)
{
	struct ddns_provider_conf c;
	struct rec x;

	(void)state;
	dd_conf(&c);
	c.timeout_ms = 500;
	double t0 = mono();
	dd_run(&c, "slow1.example.net", &x);
	assert_int_equal(x.r.cls, DDNS_R_TRANSIENT);
	assert_string_equal(x.r.code, "timeout");
	assert_true(mono() - t0 < 1.8);           /* the server sleeps 2 s */
}

static void test_live_dyndns2_drop(void **state)
{
	struct ddns_provider_conf c;
	struct rec x;

	(void)state;
	dd_conf(&c);
	dd_run(&c, "drop1.example.net", &x);
	assert_int_equal(x.r.cls, DDNS_R_TRANSIENT);
	assert_string_equal(x.r.code, "network");
}

/* A certificate that does not verify is a configuration problem: the
 * provider stops until an operator fixes ca_file or the server. */
static void test_live_dyndns2_wrong_ca(void **state)
{
	struct ddns_provider_conf c;
	struct rec x;

	(void)state;
	dd_conf(&c);
	snprintf(c.ca_file, sizeof(c.ca_file), "%s", G.other_ca);
	dd_run(&c, "good-ca.example.net", &x);
	assert_int_equal(x.r.cls, DDNS_R_PERM_PROVIDER);
	assert_string_equal(x.r.code, "tls-verify");
	c.ca_file[0] = '\0';                      /* system store: test CA unknown too */
	dd_run(&c, "good-ca.example.net", &x);
	assert_int_equal(x.r.cls, DDNS_R_PERM_PROVIDER);
	assert_null(log_find("good-ca"));          /* nothing was sent */
}

static void test_live_dyndns2_refused(void **state)
{
	struct ddns_provider_conf c;
	struct rec x;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	(void)state;
	/* a port nobody listens on: bound, never listening */
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	dd_conf(&c);
	snprintf(c.url, sizeof(c.url), "https://127.0.0.1:%u/nic/update", ntohs(sa.sin_port));
	dd_run(&c, "good.example.net", &x);
	close(fd);
	assert_int_equal(x.r.cls, DDNS_R_TRANSIENT);
	assert_string_equal(x.r.code, "connect");
}

static void test_live_dyndns2_deleted(void **state)
{
	struct ddns_provider_conf c;
	struct ddns_update u;
	struct rec x;

	(void)state;
	dd_conf(&c);
	make_update(&u, "good-del.example.net");
	u.event = DDNS_DELETED;
	u.has_addr = false;
	run_one(&ddns_dyndns2_ops, &c, &u, &x);
	assert_int_equal(x.r.cls, DDNS_R_OK);
	assert_string_equal(x.r.code, "skipped");
	assert_non_null(strstr(x.r.msg, "cannot remove"));
	assert_null(log_find("good-del"));
	assert_true(ddns_dyndns2_ops.flags & DDNS_PF_ADDR_ONLY);
	assert_int_equal(ddns_dyndns2_ops.type, DDNS_DYNDNS2);
}

/* One slow request does not hold the others back. */
static void test_live_concurrent(void **state)
{
	static const char *names[] = { "slow-c.example.net", "good-c1.example.net",
				       "nochg-c2.example.net", "badauth-c3.example.net",
				       "good-c4.example.net" };
	struct ddns_provider_conf c;
	struct ddns_update u[5];
	struct rec x[5];

	(void)state;
	dd_conf(&c);
	g_loop = ev_loop_new(EVFLAG_AUTO);
	void *p = open_ok(&ddns_dyndns2_ops, &c);
	g_order = 0;
	for (int i = 0; i < 5; i++) {
		make_update(&u[i], names[i]);
		send_one(&ddns_dyndns2_ops, p, &u[i], &x[i]);
	}
	assert_true(run_loop(10., true));
	ddns_dyndns2_ops.close(p);
	ev_loop_destroy(g_loop);
	for (int i = 0; i < 5; i++)
		assert_int_equal(x[i].calls, 1);
	assert_int_equal(x[0].order, 5);          /* the slow one last */
	assert_int_equal(x[0].r.cls, DDNS_R_OK);
	assert_true(x[0].at - x[1].at > 1.0);
	assert_string_equal(x[1].r.code, "good");
	assert_string_equal(x[2].r.code, "nochg");
	assert_int_equal(x[3].r.cls, DDNS_R_PERM_PROVIDER);
	assert_string_equal(x[4].r.code, "good");
}

/* close() with requests in flight: no done() afterwards. */
static void test_live_close_in_flight(void **state)
{
	struct ddns_provider_conf c;
	struct ddns_update u, d;
	struct rec x, y;

	(void)state;
	dd_conf(&c);
	g_loop = ev_loop_new(EVFLAG_AUTO);
	void *p = open_ok(&ddns_dyndns2_ops, &c);
	make_update(&u, "slow-close.example.net");
	make_update(&d, "gone.example.net");
	d.has_addr = false;
	send_one(&ddns_dyndns2_ops, p, &u, &x);
	send_one(&ddns_dyndns2_ops, p, &d, &y);   /* would complete at once */
	ddns_dyndns2_ops.close(p);
	run_loop(0.3, false);
	ev_loop_destroy(g_loop);
	assert_int_equal(x.calls, 0);
	assert_int_equal(y.calls, 0);
	g_pending = 0;
}

struct closer {
	struct rec r;
	void *p;
};

static void close_on_done(void *arg, const struct ddns_result *r)
{
	struct closer *k = arg;

	on_done(&k->r, r);
	ddns_dyndns2_ops.close(k->p);
}

/* done() may close the provider while others are in flight. */
static void test_live_close_from_done(void **state)
{
	struct ddns_provider_conf c;
	struct ddns_update u, s;
	struct closer k;
	struct rec x;

	(void)state;
	dd_conf(&c);
	g_loop = ev_loop_new(EVFLAG_AUTO);
	memset(&k, 0, sizeof(k));
	k.p = open_ok(&ddns_dyndns2_ops, &c);
	make_update(&u, "good-closer.example.net");
	make_update(&s, "slow-closer.example.net");
	send_one(&ddns_dyndns2_ops, k.p, &s, &x);
	g_pending++;
	ddns_dyndns2_ops.send(k.p, &u, close_on_done, &k);
	run_loop(1.0, false);
	ev_loop_destroy(g_loop);
	assert_int_equal(k.r.calls, 1);
	assert_string_equal(k.r.r.code, "good");
	assert_int_equal(x.calls, 0);
	g_pending = 0;
}

/* ---- live: open() refusals ---- */

static void expect_refused(const struct ddns_provider_ops *ops, const struct ddns_provider_conf *c,
			   const char *in_err, const char *secret)
{
	char err[256] = "";
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	void *p = ops->open(c, loop, err, sizeof(err));

	if (p)
		ops->close(p);
	ev_loop_destroy(loop);
	assert_null(p);
	if (!strstr(err, in_err))
		fail_msg("error \"%s\" lacks \"%s\"", err, in_err);
	if (secret)
		assert_null(strstr(err, secret));
}

static void test_open_refusals(void **state)
{
	struct ddns_provider_conf c;

	(void)state;
	dd_conf(&c);
	write_secret(c.credentials_file, sizeof(c.credentials_file), "cred644", "alice:hunter2", 0644);
	expect_refused(&ddns_dyndns2_ops, &c, "chmod 600", "hunter2");
	write_secret(c.credentials_file, sizeof(c.credentials_file), "nocolon", "hunter2", 0600);
	expect_refused(&ddns_dyndns2_ops, &c, "user:password", "hunter2");
	write_secret(c.credentials_file, sizeof(c.credentials_file), "nouser", ":hunter2", 0600);
	expect_refused(&ddns_dyndns2_ops, &c, "user:password", "hunter2");
	write_secret(c.credentials_file, sizeof(c.credentials_file), "nopass", "hunter2:", 0600);
	expect_refused(&ddns_dyndns2_ops, &c, "user:password", "hunter2");
	snprintf(c.credentials_file, sizeof(c.credentials_file), "%s/missing", G.dir);
	expect_refused(&ddns_dyndns2_ops, &c, "missing", NULL);
	c.credentials_file[0] = '\0';
	expect_refused(&ddns_dyndns2_ops, &c, "credentials_file", NULL);
	dd_conf(&c);
	snprintf(c.url, sizeof(c.url), "ftp://127.0.0.1/");
	expect_refused(&ddns_dyndns2_ops, &c, "url", NULL);
	dd_conf(&c);
	snprintf(c.ca_file, sizeof(c.ca_file), "%s/no-such-ca.pem", G.dir);
	expect_refused(&ddns_dyndns2_ops, &c, "ca_file", NULL);

	conf_init(&c, DDNS_WEBHOOK, "/hook");
	write_secret(c.credentials_file, sizeof(c.credentials_file), "tok644", "tok-hunter2", 0644);
	expect_refused(&ddns_webhook_ops, &c, "chmod 600", "hunter2");
	write_secret(c.credentials_file, sizeof(c.credentials_file), "tokspace", "tok hunter2", 0600);
	expect_refused(&ddns_webhook_ops, &c, "bearer token", "hunter2");
	c.credentials_file[0] = '\0';
	write_secret(c.hmac_key_file, sizeof(c.hmac_key_file), "key644", "k-hunter2", 0640);
	expect_refused(&ddns_webhook_ops, &c, "chmod 600", "hunter2");
	c.hmac_key_file[0] = '\0';
	c.url[0] = '\0';
	expect_refused(&ddns_webhook_ops, &c, "url", NULL);
}

/* ---- live: webhook ---- */

static void wh_conf(struct ddns_provider_conf *c, bool auth)
{
	conf_init(c, DDNS_WEBHOOK, "/hook");
	if (!auth)
		return;
	write_secret(c->credentials_file, sizeof(c->credentials_file), "token",
		     "tok.EN-123_~+/=\n", 0600);
	write_secret(c->hmac_key_file, sizeof(c->hmac_key_file), "hmac", "k3y with spaces\n", 0600);
}

static void wh_run(const struct ddns_provider_conf *c, const char *name, struct rec *x)
{
	struct ddns_update u;

	make_update(&u, name);
	run_one(&ddns_webhook_ops, c, &u, x);
}

static void test_live_webhook_signed(void **state)
{
	struct ddns_provider_conf c;
	struct ddns_update u;
	struct rec x;
	char hex[65], expect[80];

	(void)state;
	wh_conf(&c, true);
	make_update(&u, "hook-ok.example.net");
	u.txt = "a \"quoted\" txt";
	u.event = DDNS_CREATED;
	u.seq = 7;
	run_one(&ddns_webhook_ops, &c, &u, &x);
	assert_int_equal(x.r.cls, DDNS_R_OK);
	assert_string_equal(x.r.code, "http-200");

	json_object *o = log_find("hook-ok.example.net");
	assert_non_null(o);
	assert_string_equal(jstr(o, "method"), "POST");
	assert_string_equal(jstr(o, "path"), "/hook");
	assert_string_equal(log_header(o, "Content-Type"), "application/json");
	assert_string_equal(log_header(o, "Authorization"), "Bearer tok.EN-123_~+/=");
	assert_string_equal(log_header(o, "User-Agent"), "pcpd/" PCPD_VERSION);
	const char *body = jstr(o, "body");
	webhook_signature("k3y with spaces", 15, body, strlen(body), hex);
	snprintf(expect, sizeof(expect), "sha256=%s", hex);
	assert_string_equal(log_header(o, WEBHOOK_SIG_HEADER), expect);

	json_object *b = json_tokener_parse(body);
	assert_non_null(b);
	assert_string_equal(jstr(b, "event"), "created");
	assert_int_equal(jint(b, "seq"), 7);
	assert_string_equal(jstr(b, "subscriber"), "sub-1");
	assert_string_equal(jstr(b, "address"), ADDR);
	assert_string_equal(jstr(b, "txt"), "a \"quoted\" txt");
	assert_true(llabs(jint(b, "time") - (int64_t)time(NULL)) < 60);
	json_object_put(b);
	json_object_put(o);
}

static void test_live_webhook_unsigned(void **state)
{
	struct ddns_provider_conf c;
	struct rec x;

	(void)state;
	wh_conf(&c, false);
	wh_run(&c, "hook-plain.example.net", &x);
	assert_int_equal(x.r.cls, DDNS_R_OK);
	json_object *o = log_find("hook-plain.example.net");
	assert_non_null(o);
	assert_null(log_header(o, "Authorization"));
	assert_null(log_header(o, WEBHOOK_SIG_HEADER));
	json_object_put(o);
}

static void test_live_webhook_statuses(void **state)
{
	static const struct { const char *name; enum ddns_rclass cls; uint32_t wait; const char *code; } t[] = {
		{ "status204.example.net", DDNS_R_OK, 0, "http-204" },
		{ "status503.example.net", DDNS_R_TRANSIENT, 0, "http-503" },
		{ "status408.example.net", DDNS_R_TRANSIENT, 0, "http-408" },
		{ "status429.example.net", DDNS_R_TRANSIENT, 0, "http-429" },
		{ "status429-retry7.example.net", DDNS_R_WAIT, 7, "http-429" },
		{ "status429-retry99999.example.net", DDNS_R_WAIT, 3600, "http-429" },
		{ "status401.example.net", DDNS_R_PERM_PROVIDER, 0, "http-401" },
		{ "status403.example.net", DDNS_R_PERM_PROVIDER, 0, "http-403" },
		{ "status404.example.net", DDNS_R_PERM_NAME, 0, "http-404" },
		{ "status302.example.net", DDNS_R_PERM_PROVIDER, 0, "http-302" },
		{ "drop-h.example.net", DDNS_R_TRANSIENT, 0, "network" },
	};
	struct ddns_provider_conf c;

	(void)state;
	wh_conf(&c, true);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct rec x;

		wh_run(&c, t[i].name, &x);
		if (x.r.cls != t[i].cls || x.r.retry_after != t[i].wait || strcmp(x.r.code, t[i].code))
			fail_msg("%s: cls %d wait %u code %s (%s)", t[i].name, x.r.cls,
				 x.r.retry_after, x.r.code, x.r.msg);
	}
	c.timeout_ms = 500;
	struct rec x;
	wh_run(&c, "slow-h.example.net", &x);
	assert_int_equal(x.r.cls, DDNS_R_TRANSIENT);
	assert_string_equal(x.r.code, "timeout");
}

/* ---- live: the HTTP client on its own ---- */

struct got {
	int calls;
	long status;
	char body[64];
	uint32_t retry_after;
	int curl_code;
};

static void got_cb(void *arg, const struct http_response *resp)
{
	struct got *g = arg;

	g->calls++;
	g->status = resp->status;
	g->retry_after = resp->retry_after;
	g->curl_code = resp->curl_code;
	snprintf(g->body, sizeof(g->body), "%s", resp->body);
	g_pending--;
}

static void test_live_http_client(void **state)
{
	struct ddns_provider_conf c;
	struct got a = { 0 }, b = { 0 }, l = { 0 }, z = { 0 };
	char err[128], url[128];
	const char *hdrs[] = { "X-Test-Status: 418", "X-Test-Retry-After: 9", NULL };

	(void)state;
	conf_init(&c, DDNS_WEBHOOK, "/hook");
	g_loop = ev_loop_new(EVFLAG_AUTO);
	struct http_client *cl = http_client_new(g_loop, &c, err, sizeof(err));
	assert_non_null(cl);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/hook", G.port);
	g_pending = 3;
	http_request(cl, HTTP_POST, url, hdrs, "{}", 2, NULL, NULL, got_cb, &a);
	http_request(cl, HTTP_POST, url, NULL, "{\"name\":\"x\"}", 12, NULL, NULL, got_cb, &b);
	http_later(cl, got_cb, &l);
	assert_int_equal(a.calls + b.calls + l.calls, 0);
	assert_true(run_loop(10., true));
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.status, 418);
	assert_int_equal(a.retry_after, 9);
	assert_string_equal(a.body, "status 418\n");
	assert_int_equal(b.status, 200);
	assert_string_equal(b.body, "ok\n");
	assert_int_equal(l.calls, 1);
	assert_int_equal(l.status, 0);
	assert_int_equal(l.curl_code, 0);

	/* cancelled: never called back */
	http_request(cl, HTTP_POST, url, NULL, "{}", 2, NULL, NULL, got_cb, &z);
	http_later(cl, got_cb, &z);
	http_cancel_all(cl);
	run_loop(0.2, false);
	assert_int_equal(z.calls, 0);
	/* a URL curl refuses is reported from the loop too */
	g_pending = 1;
	http_request(cl, HTTP_GET, "gopher://127.0.0.1/", NULL, NULL, 0, NULL, NULL, got_cb, &z);
	assert_int_equal(z.calls, 0);
	assert_true(run_loop(5., true));
	assert_int_equal(z.curl_code, CURLE_UNSUPPORTED_PROTOCOL);
	http_client_free(cl);
	http_client_free(NULL);
	ev_loop_destroy(g_loop);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_dyndns2_classify_table),
		cmocka_unit_test(test_dyndns2_classify_len),
		cmocka_unit_test(test_dyndns2_classify_unknown_sanitised),
		cmocka_unit_test(test_dyndns2_url),
		cmocka_unit_test(test_transport_classify),
		cmocka_unit_test(test_webhook_classify),
		cmocka_unit_test(test_webhook_body),
		cmocka_unit_test(test_webhook_body_deleted),
		cmocka_unit_test(test_webhook_signature),
	};
	const struct CMUnitTest live[] = {
		cmocka_unit_test(test_live_dyndns2_good),
		cmocka_unit_test(test_live_dyndns2_user_agent),
		cmocka_unit_test(test_live_dyndns2_answers),
		cmocka_unit_test(test_live_dyndns2_slow),
		cmocka_unit_test(test_live_dyndns2_drop),
		cmocka_unit_test(test_live_dyndns2_wrong_ca),
		cmocka_unit_test(test_live_dyndns2_refused),
		cmocka_unit_test(test_live_dyndns2_deleted),
		cmocka_unit_test(test_live_concurrent),
		cmocka_unit_test(test_live_close_in_flight),
		cmocka_unit_test(test_live_close_from_done),
		cmocka_unit_test(test_open_refusals),
		cmocka_unit_test(test_live_webhook_signed),
		cmocka_unit_test(test_live_webhook_unsigned),
		cmocka_unit_test(test_live_webhook_statuses),
		cmocka_unit_test(test_live_http_client),
	};
	int rc = cmocka_run_group_tests_name("ddns_http_pure", pure, NULL, NULL);
	rc += cmocka_run_group_tests_name("ddns_http_live", live, live_setup, live_teardown);
	curl_global_cleanup();
	return rc;
}
