/* The control protocol: framing, request parsing, arguments, permission
 * and filters without sockets; every command over a pcpd_server with the
 * in-memory backend; then the real sockets on a private libev loop
 * (modes, pipelining, errors without disconnecting, back-pressure on a
 * large listing, peers vanishing mid-stream, connection limit). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/mtime.h"
#include "pcpd/ctl_cmd.h"

static const char test_conf[] =
	"aftr {\n"
	"  pool = {\"203.0.113.0/28\"}\n"
	"  ports-per-subscriber = 2048\n"
	"  pcp-ports = 2000\n"
	"  subscriber-prefix-length = 64\n"
	"  b4-prefixes = {\"2001:db8:100::/56\"}\n"
	"  internal-prefixes = {\"192.168.0.0/16\"}\n"
	"  max-mappings = 8\n"
	"  rate-limit = 0\n"
	"  subscriber \"alice\" { b4 = \"2001:db8:200:a::/64\"  index = 300 }\n"
	"  subscriber \"bob\" { interface = \"lo\"  index = 301 }\n"
	"}\n";

static uint32_t fake_now = 5000;      /* the command layer's clock in these tests */

static uint32_t fake_clock(void)
{
	return fake_now;
}

struct world {
	struct pcpd_server *s;
	struct ctl_ctx cx;
	struct ctl_out out;
	struct ctl_peer admin, monitor, user;
};

static void no_wake(void *owner)
{
	(void)owner;
}

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	struct pcpd_config *cfg = pcpd_config_load_buf(test_conf, "test_ctl.conf", stderr);
	assert_non_null(cfg);
	w->s = pcpd_server_new(cfg, 1000, NULL);
	assert_non_null(w->s);
	struct ctl_info info = { .conf_path = "/etc/pcpd/pcpd.conf", .start_sec = 4000,
				 .workers = 3 };
	ctl_ctx_init(&w->cx, w->s, &info);
	w->cx.clock = fake_clock;
	w->cx.wake = no_wake;
	ctl_out_init(&w->out);
	w->admin = (struct ctl_peer){ .pid = 1, .uid = 0, .admin_socket = true, .admin = true };
	w->monitor = (struct ctl_peer){ .pid = 2, .uid = 1000 };
	w->user = (struct ctl_peer){ .pid = 3, .uid = 1000, .admin_socket = true };
	fake_now = 5000;
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;
	assert_true(ctl_ctx_destroy(&w->cx));
	ctl_out_free(&w->out);
	pcpd_server_free(w->s);
	free(w);
	return 0;
}

/* ---- running requests without a socket ---- */

struct reply {
	json_object *rows[64];
	size_t n;
	json_object *end;
};

static void reply_free(struct reply *r)
{
	for (size_t i = 0; i < r->n; i++)
		json_object_put(r->rows[i]);
	json_object_put(r->end);
	memset(r, 0, sizeof(*r));
}

/* Splits the queued output into result objects and the end marker. */
static void collect(struct ctl_out *o, struct reply *r)
{
	memset(r, 0, sizeof(*r));
	const char *p = ctl_out_data(o), *e = p + ctl_out_pending(o);
	while (p < e) {
		const char *nl = memchr(p, '\n', (size_t)(e - p));
		assert_non_null(nl);
		char *line = strndup(p, (size_t)(nl - p));
		json_object *obj = json_tokener_parse(line);
		free(line);
		assert_non_null(obj);
		assert_null(r->end);             /* nothing after the end marker */
		json_object *v;
		if (json_object_object_get_ex(obj, "end", &v)) {
			r->end = obj;
		} else {
			assert_true(r->n < 64);
			r->rows[r->n++] = obj;
		}
		p = nl + 1;
	}
	assert_non_null(r->end);
	ctl_out_consume(o, ctl_out_pending(o));
}

/* Runs one request to its end marker (stepping and draining as ctl.c would). */
static void run(struct world *w, const struct ctl_peer *peer, const char *req, struct reply *r)
{
	struct ctl_call *c = ctl_call_start(&w->cx, &w->out, peer, req, strlen(req));
	while (c) {
		c->owner = w;
		if (c->state == CS_STREAM)
			ctl_call_step(c);
		else if (c->state == CS_WAIT)
			ctl_ctx_drain(&w->cx);
		if (c->state == CS_DONE) {
			ctl_call_free(c);
			c = NULL;
		}
	}
	collect(&w->out, r);
}

static const char *jstr(json_object *o, const char *k)
{
	json_object *v;
	if (!json_object_object_get_ex(o, k, &v) || json_object_is_type(v, json_type_null))
		return NULL;
	return json_object_get_string(v);
}

static int64_t jint(json_object *o, const char *k)
{
	json_object *v;
	assert_true(json_object_object_get_ex(o, k, &v));
	return json_object_get_int64(v);
}

static bool jnull(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_null);
}

static void assert_ok(const struct reply *r, size_t n)
{
	json_object *v;
	if (!json_object_object_get_ex(r->end, "ok", &v) || !json_object_get_boolean(v))
		fail_msg("not ok: %s", json_object_to_json_string(r->end));
	assert_int_equal(jint(r->end, "v"), 1);
	assert_int_equal(jint(r->end, "count"), n);
	assert_int_equal(r->n, n);
}

static void assert_err(const struct reply *r, const char *code, const char *substr)
{
	json_object *v;
	assert_true(json_object_object_get_ex(r->end, "ok", &v));
	if (json_object_get_boolean(v))
		fail_msg("unexpected success: %s", json_object_to_json_string(r->end));
	assert_string_equal(jstr(r->end, "code"), code);
	if (!strstr(jstr(r->end, "error"), substr))
		fail_msg("error '%s' lacks '%s'", jstr(r->end, "error"), substr);
}

static void expect_err(struct world *w, const struct ctl_peer *p, const char *req,
		       const char *code, const char *substr)
{
	struct reply r;
	run(w, p, req, &r);
	assert_err(&r, code, substr);
	assert_int_equal(r.n, 0);
	reply_free(&r);
}

/* ---- framing, queue, permission, filters ---- */

static void test_framing(void **state)
{
	(void)state;
	size_t ll, used;
	assert_int_equal(ctl_frame_next("abc\ndef", 7, 16, &ll, &used), CTL_FRAME_LINE);
	assert_int_equal(ll, 3);
	assert_int_equal(used, 4);
	assert_int_equal(ctl_frame_next("abc\r\n", 5, 16, &ll, &used), CTL_FRAME_LINE);
	assert_int_equal(ll, 3);
	assert_int_equal(used, 5);
	assert_int_equal(ctl_frame_next("\n", 1, 16, &ll, &used), CTL_FRAME_LINE);
	assert_int_equal(ll, 0);
	assert_int_equal(ctl_frame_next("abc", 3, 16, &ll, &used), CTL_FRAME_NONE);
	/* exactly max bytes then the newline is fine; max + 1 without is not */
	char buf[20];
	memset(buf, 'x', sizeof(buf));
	buf[16] = '\n';
	assert_int_equal(ctl_frame_next(buf, 17, 16, &ll, &used), CTL_FRAME_LINE);
	assert_int_equal(ll, 16);
	assert_int_equal(ctl_frame_next(buf, 16, 16, &ll, &used), CTL_FRAME_NONE);
	buf[16] = 'x';
	assert_int_equal(ctl_frame_next(buf, 17, 16, &ll, &used), CTL_FRAME_TOO_LONG);
	buf[17] = '\n';    /* a newline beyond the limit does not rescue it */
	assert_int_equal(ctl_frame_next(buf, 18, 16, &ll, &used), CTL_FRAME_TOO_LONG);
}

static void test_out_queue(void **state)
{
	(void)state;
	struct ctl_out o;
	ctl_out_init(&o);
	char big[5000];
	memset(big, 'a', sizeof(big));
	assert_true(ctl_out_put(&o, big, sizeof(big)));
	assert_int_equal(ctl_out_pending(&o), 5000);
	ctl_out_consume(&o, 4000);
	assert_int_equal(ctl_out_pending(&o), 1000);
	size_t cap = o.cap;
	assert_true(ctl_out_put(&o, big, 3000));        /* reuses the sent space */
	assert_int_equal(o.cap, cap);
	assert_int_equal(ctl_out_pending(&o), 4000);
	assert_int_equal(o.peak, 5000);
	ctl_out_consume(&o, 4000);
	assert_int_equal(ctl_out_pending(&o), 0);
	assert_int_equal(o.off, 0);
	ctl_out_error(&o, CE_BUSY, "x \"quoted\"\n");
	json_object *j = json_tokener_parse(ctl_out_data(&o));
	assert_non_null(j);
	assert_string_equal(jstr(j, "code"), "busy");
	assert_string_equal(jstr(j, "error"), "x \"quoted\"\n");
	json_object_put(j);
	ctl_out_free(&o);
}

static void test_permission(void **state)
{
	struct world *w = *state;
	struct ctl_err err;
	const struct ctl_cmd *add = ctl_cmd_find("static-add");
	const struct ctl_cmd *show = ctl_cmd_find("show-mappings");
	assert_non_null(add);
	assert_non_null(show);
	assert_true(ctl_permit(show, &w->monitor, &err));
	assert_true(ctl_permit(show, &w->user, &err));
	assert_true(ctl_permit(add, &w->admin, &err));
	assert_false(ctl_permit(add, &w->monitor, &err));
	assert_int_equal(err.code, CE_PERMISSION);
	assert_string_equal(err.msg, "permission denied: read-only socket");
	assert_false(ctl_permit(add, &w->user, &err));
	assert_non_null(strstr(err.msg, "uid 1000"));
	/* every mutating command is refused on the monitor socket */
	const char *const mut[] = { "static-add", "static-del", "subscriber-add",
				    "subscriber-remove", "subscriber-flush" };
	for (size_t i = 0; i < 5; i++) {
		assert_true(ctl_cmd_find(mut[i])->mutating);
		char req[128];
		snprintf(req, sizeof(req), "{\"v\":1,\"cmd\":\"%s\"}", mut[i]);
		expect_err(w, &w->monitor, req, "permission", "read-only socket");
	}
	gid_t groups[] = { 10, 27, 1001 };
	assert_true(ctl_peer_is_admin(0, 0, NULL, 0, (gid_t)-1, 999));
	assert_true(ctl_peer_is_admin(999, 100, NULL, 0, (gid_t)-1, 999));     /* pcpd's own uid */
	assert_false(ctl_peer_is_admin(1000, 100, groups, 3, (gid_t)-1, 999));
	assert_true(ctl_peer_is_admin(1000, 100, groups, 3, 27, 999));
	assert_true(ctl_peer_is_admin(1000, 27, NULL, 0, 27, 999));
	assert_false(ctl_peer_is_admin(1000, 100, groups, 3, 28, 999));
}

static void test_parse_errors(void **state)
{
	struct world *w = *state;
	static const struct {
		const char *req, *code, *substr;
	} cases[] = {
		{ "not json", "bad-request", "malformed" },
		{ "[1,2]", "bad-request", "not a JSON object" },
		{ "{\"v\":1,\"cmd\":\"status\"", "bad-request", "incomplete" },
		{ "{\"v\":1,\"cmd\":\"status\"} x", "bad-request", "after the JSON" },
		{ "{\"v\":1,\"cmd\":\"status\",}", "bad-request", "malformed" },
		{ "{v:1}", "bad-request", "malformed" },
		{ "{\"cmd\":\"status\"}", "version", "missing protocol version" },
		{ "{\"v\":2,\"cmd\":\"status\"}", "version", "unsupported protocol version 2" },
		{ "{\"v\":\"1\",\"cmd\":\"status\"}", "version", "unsupported" },
		{ "{\"v\":1}", "bad-request", "\"cmd\" must be a string" },
		{ "{\"v\":1,\"cmd\":7}", "bad-request", "\"cmd\" must be a string" },
		{ "{\"v\":1,\"cmd\":\"reboot\"}", "unknown-command", "'reboot'" },
		{ "{\"v\":1,\"cmd\":\"status\",\"id\":1}", "bad-request", "unknown request key 'id'" },
		{ "{\"v\":1,\"cmd\":\"status\",\"args\":[]}", "bad-request", "\"args\" must be" },
		{ "{\"v\":1,\"cmd\":\"status\",\"args\":{\"x\":1}}", "bad-argument",
		  "unknown argument 'x' for status" },
		{ "{\"v\":1,\"cmd\":\"show-mappings\",\"args\":{\"port\":\"80\"}}", "bad-argument",
		  "'port'" },
		{ "{\"v\":1,\"cmd\":\"show-mappings\",\"args\":{\"port\":70000}}", "bad-argument",
		  "1..65535" },
		{ "{\"v\":1,\"cmd\":\"show-mappings\",\"args\":{\"port\":1.5}}", "bad-argument",
		  "'port'" },
		{ "{\"v\":1,\"cmd\":\"show-mappings\",\"args\":{\"internal\":\"2001:db8::1\"}}",
		  "bad-argument", "IPv4" },
		{ "{\"v\":1,\"cmd\":\"show-mappings\",\"args\":{\"proto\":\"icmp\"}}", "bad-argument",
		  "tcp" },
		{ "{\"v\":1,\"cmd\":\"show-mappings\",\"args\":{\"subscriber\":\"\"}}", "bad-argument",
		  "subscriber" },
		{ "{\"v\":1,\"cmd\":\"show-mappings\",\"args\":{\"subscriber\":-1}}", "bad-argument",
		  "subscriber" },
		{ "{\"v\":1,\"cmd\":\"show-mappings\",\"args\":{\"subscriber\":\"nobody\"}}",
		  "not-found", "'nobody'" },
		{ "{\"v\":1,\"cmd\":\"static-add\",\"args\":{\"subscriber\":\"alice\"}}",
		  "bad-argument", "missing argument" },
		{ "{\"v\":1,\"cmd\":\"subscriber-add\",\"args\":{\"name\":\"x\",\"index\":"
		  "99999999999999999999}}", "bad-argument", "'index'" },
		{ "{\"v\":1,\"cmd\":\"subscriber-add\",\"args\":{\"name\":\"x\",\"index\":1,"
		  "\"b4\":\"10.0.0.0/8\"}}", "bad-argument", "IPv6 prefix" },
		{ "{\"v\":1,\"cmd\":\"show-mappings\",\"args\":{\"internal\":\"a\\u0000b\"}}",
		  "bad-argument", "NUL" },
		{ "{\"v\":1,\"cmd\":\"stat\\u00e9s\"}", "unknown-command", "unknown command" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_err(w, &w->admin, cases[i].req, cases[i].code, cases[i].substr);

	/* bytes no JSON parser should see */
	static const char nul[] = "{\"v\":1,\"cmd\":\"status\"}\0";
	struct reply r;
	assert_null(ctl_call_start(&w->cx, &w->out, &w->admin, nul, sizeof(nul) - 1));
	collect(&w->out, &r);
	assert_err(&r, "bad-request", "NUL");
	reply_free(&r);
	expect_err(w, &w->admin, "{\"v\":1,\"cmd\":\"st\xff\xfe\"}", "bad-request", "malformed");
	char deep[4096];
	size_t n = 0;
	for (; n < 2000; n++)
		deep[n] = '[';
	deep[n] = '\0';
	expect_err(w, &w->admin, deep, "bad-request", "malformed");
	/* args null is the same as none */
	run(w, &w->admin, "{\"v\":1,\"cmd\":\"status\",\"args\":null}", &r);
	assert_ok(&r, 1);
	reply_free(&r);
}

static void test_mfilter(void **state)
{
	(void)state;
	struct binding b;
	memset(&b, 0, sizeof(b));
	b.sub = 7;
	b.proto = 6;
	b.int_port = 80;
	b.ext_port = 2000;
	addr_parse("192.168.1.2", &b.int_addr);
	addr_parse("203.0.113.1", &b.ext_addr);
	struct ctl_mfilter f;
	memset(&f, 0, sizeof(f));
	assert_true(ctl_mfilter_match(&f, &b));
	f.has_port = true;
	f.port = 80;
	assert_true(ctl_mfilter_match(&f, &b));
	f.port = 2000;
	assert_true(ctl_mfilter_match(&f, &b));
	f.port = 81;
	assert_false(ctl_mfilter_match(&f, &b));
	memset(&f, 0, sizeof(f));
	f.has_proto = true;
	f.proto = 17;
	assert_false(ctl_mfilter_match(&f, &b));
	f.proto = 6;
	f.has_sub = true;
	f.sub = 7;
	f.has_int = true;
	addr_parse("192.168.1.2", &f.int_addr);
	f.has_ext = true;
	addr_parse("203.0.113.1", &f.ext_addr);
	assert_true(ctl_mfilter_match(&f, &b));
	f.sub = 8;
	assert_false(ctl_mfilter_match(&f, &b));
	f.sub = 7;
	addr_parse("203.0.113.2", &f.ext_addr);
	assert_false(ctl_mfilter_match(&f, &b));
	addr_parse("203.0.113.1", &f.ext_addr);
	addr_parse("192.168.1.3", &f.int_addr);
	assert_false(ctl_mfilter_match(&f, &b));
}

/* ---- commands ---- */

static void test_status_and_stats(void **state)
{
	struct world *w = *state;
	struct reply r;
	run(w, &w->monitor, "{\"v\":1,\"cmd\":\"status\"}", &r);
	assert_ok(&r, 1);
	json_object *o = r.rows[0];
	assert_string_equal(jstr(o, "version"), PCPD_VERSION);
	assert_int_equal(jint(o, "protocol"), 1);
	assert_int_equal(jint(o, "uptime"), 1000);
	assert_int_equal(jint(o, "epoch"), 4000);
	assert_string_equal(jstr(o, "backend"), "memory");
	assert_int_equal(jint(o, "workers"), 3);
	assert_int_equal(jint(o, "subscribers"), 2);
	assert_int_equal(jint(o, "mappings"), 0);
	assert_string_equal(jstr(o, "config"), "/etc/pcpd/pcpd.conf");
	reply_free(&r);

	w->s->handler.stats.by_result[PCP_NO_RESOURCES] = 4;
	w->s->handler.stats.by_result[200] = 1;
	w->s->handler.stats.by_opcode[STAT_OP_MAP] = 9;
	run(w, &w->monitor, "{\"v\":1,\"cmd\":\"stats\"}", &r);
	assert_ok(&r, 1);
	json_object *pcp, *res, *ops, *eng, *k, *h;
	assert_true(json_object_object_get_ex(r.rows[0], "pcp", &pcp));
	assert_true(json_object_object_get_ex(pcp, "results", &res));
	assert_int_equal(jint(res, "NO_RESOURCES"), 4);
	assert_int_equal(jint(res, "SUCCESS"), 0);
	assert_int_equal(jint(res, "EXCESSIVE_REMOTE_PEERS"), 0);
	assert_int_equal(jint(res, "code_200"), 1);
	assert_true(json_object_object_get_ex(pcp, "opcodes", &ops));
	assert_int_equal(jint(ops, "map"), 9);
	assert_int_equal(jint(pcp, "received"), 0);
	assert_true(json_object_object_get_ex(r.rows[0], "engine", &eng));
	assert_int_equal(jint(eng, "created"), 0);
	assert_true(json_object_object_get_ex(r.rows[0], "kernel", &k));
	assert_string_equal(jstr(k, "backend"), "memory");
	assert_true(json_object_object_get_ex(k, "batch_hist", &h));
	assert_int_equal(json_object_object_length(h), KSTAT_HIST);
	jint(k, "latency_us_mean");
	jint(k, "ct_flushes");
	reply_free(&r);
}

/* Engine calls made directly by the tests (in-memory backend: synchronous). */
static void static_done(void *arg, const struct engine_result *r)
{
	*(enum perr *)arg = r->err;
}

#define REQ(cmd, args) "{\"v\":1,\"cmd\":\"" cmd "\",\"args\":{" args "}}"

static void test_static_mappings(void **state)
{
	struct world *w = *state;
	struct reply r;
	run(w, &w->admin, REQ("static-add", "\"subscriber\":\"alice\",\"proto\":\"tcp\","
			      "\"internal\":\"192.168.1.2\",\"port\":80,\"description\":\"web\""), &r);
	assert_ok(&r, 1);
	json_object *m = r.rows[0];
	assert_int_equal(jint(m, "subscriber"), 300);
	assert_string_equal(jstr(m, "name"), "alice");
	assert_string_equal(jstr(m, "b4"), "2001:db8:200:a::/64");
	assert_true(jnull(m, "interface"));
	assert_string_equal(jstr(m, "proto"), "tcp");
	assert_string_equal(jstr(m, "internal_addr"), "192.168.1.2");
	assert_int_equal(jint(m, "internal_port"), 80);
	assert_string_equal(jstr(m, "type"), "static");
	assert_true(jnull(m, "lifetime"));
	assert_string_equal(jstr(m, "description"), "web");
	int64_t ext = jint(m, "external_port");
	char ext_addr[ADDR_STRLEN];
	snprintf(ext_addr, sizeof(ext_addr), "%s", jstr(m, "external_addr"));
	reply_free(&r);
	assert_int_equal(kbackend_mem_count(w->s->kb), 1);

	/* again: the same static mapping (idempotent) */
	run(w, &w->admin, REQ("static-add", "\"subscriber\":300,\"proto\":6,"
			      "\"internal\":\"192.168.1.2\",\"port\":80"), &r);
	assert_ok(&r, 1);
	assert_int_equal(jint(r.rows[0], "external_port"), ext);
	reply_free(&r);
	/* a second one may not take the first one's external port */
	char req[256];
	snprintf(req, sizeof(req), REQ("static-add", "\"subscriber\":\"alice\",\"proto\":\"tcp\","
				       "\"internal\":\"192.168.1.3\",\"port\":80,"
				       "\"external_port\":%d"), (int)ext);
	run(w, &w->admin, req, &r);
	assert_err(&r, "failed", "external port");
	reply_free(&r);
	expect_err(w, &w->admin, REQ("static-add", "\"subscriber\":\"alice\",\"proto\":\"udp\","
				     "\"internal\":\"10.0.0.1\",\"port\":53"),
		   "bad-argument", "internal-prefixes");
	expect_err(w, &w->admin, REQ("static-add", "\"subscriber\":\"carol\",\"proto\":\"udp\","
				     "\"internal\":\"192.168.1.2\",\"port\":53"),
		   "not-found", "'carol'");
	run(w, &w->monitor, REQ("show-subscribers", "\"subscriber\":\"bob\""), &r);
	assert_ok(&r, 1);
	int bob_port = (int)jint(r.rows[0], "pcp_lo") + 6;
	reply_free(&r);
	snprintf(req, sizeof(req), REQ("static-add", "\"subscriber\":\"bob\",\"proto\":\"udp\","
				       "\"internal\":\"192.168.1.2\",\"port\":5060,"
				       "\"external_port\":%d"), bob_port);
	run(w, &w->admin, req, &r);
	assert_ok(&r, 1);
	assert_int_equal(jint(r.rows[0], "external_port"), bob_port);
	assert_string_equal(jstr(r.rows[0], "interface"), "lo");
	reply_free(&r);

	/* listings and filters */
	run(w, &w->monitor, "{\"v\":1,\"cmd\":\"show-mappings\"}", &r);
	assert_ok(&r, 2);
	assert_int_equal(jint(r.rows[0], "subscriber"), 300);   /* by subscriber index */
	assert_int_equal(jint(r.rows[1], "subscriber"), 301);
	reply_free(&r);
	static const struct {
		const char *args;
		size_t n;
	} filters[] = {
		{ "\"subscriber\":\"alice\"", 1 },
		{ "\"subscriber\":\"301\"", 1 },
		{ "\"subscriber\":301", 1 },
		{ "\"internal\":\"192.168.1.2\"", 2 },
		{ "\"internal\":\"192.168.1.9\"", 0 },
		{ "\"proto\":\"udp\"", 1 },
		{ "\"port\":80", 1 },
		{ "\"port\":5060", 1 },
		{ "\"port\":81", 0 },
		{ "\"proto\":\"tcp\",\"port\":5060", 0 },
	};
	for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
		snprintf(req, sizeof(req), REQ("show-mappings", "%s"), filters[i].args);
		run(w, &w->monitor, req, &r);
		assert_ok(&r, filters[i].n);
		reply_free(&r);
	}
	snprintf(req, sizeof(req), REQ("show-mappings", "\"external\":\"%s\""), ext_addr);
	run(w, &w->monitor, req, &r);
	assert_ok(&r, 1);
	reply_free(&r);

	/* a client's mapping cannot be made static */
	struct engine_req rq;
	memset(&rq, 0, sizeof(rq));
	rcu_read_lock();
	rq.sub = subs_by_name(w->s->subs, "alice");
	rq.proto = 17;
	addr_parse("192.168.1.7", &rq.int_addr);
	rq.int_port = 9;
	rq.lifetime = 600;
	rq.now = fake_now;
	enum perr er = PERR_PENDING;
	engine_map(&w->s->eng, &rq, static_done, &er);
	rcu_read_unlock();
	assert_int_equal(er, PERR_OK);
	expect_err(w, &w->admin, REQ("static-add", "\"subscriber\":\"alice\",\"proto\":\"udp\","
				     "\"internal\":\"192.168.1.7\",\"port\":9"),
		   "exists", "dynamic mapping");
	expect_err(w, &w->admin, REQ("static-del", "\"subscriber\":\"alice\",\"proto\":\"udp\","
				     "\"internal\":\"192.168.1.7\",\"port\":9"),
		   "not-found", "not a static mapping");
	fake_now += 100;
	run(w, &w->monitor, REQ("show-mappings", "\"proto\":\"udp\",\"subscriber\":\"alice\""), &r);
	assert_ok(&r, 1);
	assert_string_equal(jstr(r.rows[0], "type"), "map");
	assert_int_equal(jint(r.rows[0], "lifetime"), 500);
	assert_int_equal(jint(r.rows[0], "age"), 100);
	reply_free(&r);

	/* delete */
	run(w, &w->admin, REQ("static-del", "\"subscriber\":\"alice\",\"proto\":\"tcp\","
			      "\"internal\":\"192.168.1.2\",\"port\":80"), &r);
	assert_ok(&r, 1);
	assert_int_equal(jint(r.rows[0], "external_port"), ext);
	reply_free(&r);
	expect_err(w, &w->admin, REQ("static-del", "\"subscriber\":\"alice\",\"proto\":\"tcp\","
				     "\"internal\":\"192.168.1.2\",\"port\":80"),
		   "not-found", "no such mapping");
	run(w, &w->monitor, REQ("show-mappings", "\"subscriber\":\"alice\""), &r);
	assert_ok(&r, 1);                         /* the dynamic one */
	reply_free(&r);
}

static void test_subscribers(void **state)
{
	struct world *w = *state;
	struct reply r;
	expect_err(w, &w->admin, REQ("subscriber-add", "\"name\":\"bad name\",\"index\":310,"
				     "\"interface\":\"x\""), "bad-argument", "'name'");
	expect_err(w, &w->admin, REQ("subscriber-add", "\"name\":\"carol\",\"index\":310"),
		   "bad-argument", "'b4' and/or 'interface'");
	expect_err(w, &w->admin, REQ("subscriber-add", "\"name\":\"carol\",\"index\":10,"
				     "\"b4\":\"2001:db8:300::/64\""), "bad-argument",
		   "derived from b4-prefix 2001:db8:100::/56");
	expect_err(w, &w->admin, REQ("subscriber-add", "\"name\":\"carol\",\"index\":100000,"
				     "\"b4\":\"2001:db8:300::/64\""), "bad-argument", "capacity");
	expect_err(w, &w->admin, REQ("subscriber-add", "\"name\":\"alice\",\"index\":310,"
				     "\"b4\":\"2001:db8:300::/64\""), "exists", "already in use");
	expect_err(w, &w->admin, REQ("subscriber-add", "\"name\":\"carol\",\"index\":310,"
				     "\"b4\":\"2001:db8:200::/48\""), "exists", "overlaps");
	expect_err(w, &w->admin, REQ("subscriber-add", "\"name\":\"carol\",\"index\":300,"
				     "\"interface\":\"sw-c\""), "exists", "index 300");

	run(w, &w->admin, REQ("subscriber-add", "\"name\":\"carol\",\"index\":310,"
			      "\"b4\":\"2001:db8:300::1/64\",\"interface\":\"sw-c\""), &r);
	assert_ok(&r, 1);
	json_object *s = r.rows[0];
	assert_int_equal(jint(s, "index"), 310);
	assert_string_equal(jstr(s, "name"), "carol");
	assert_string_equal(jstr(s, "b4"), "2001:db8:300::/64");
	assert_string_equal(jstr(s, "interface"), "sw-c");
	assert_int_equal(jint(s, "ifindex"), 0);            /* no such interface (yet) */
	assert_int_equal(jint(s, "block_hi") - jint(s, "block_lo"), 2047);
	assert_int_equal(jint(s, "pcp_hi") - jint(s, "pcp_lo"), 1999);
	assert_true(json_object_get_boolean(json_object_object_get(s, "provisioned")));
	reply_free(&r);

	run(w, &w->monitor, "{\"v\":1,\"cmd\":\"show-subscribers\"}", &r);
	assert_ok(&r, 3);
	assert_int_equal(jint(r.rows[0], "index"), 300);
	assert_int_equal(jint(r.rows[1], "index"), 301);
	assert_int_equal(jint(r.rows[2], "index"), 310);
	assert_string_equal(jstr(r.rows[1], "interface"), "lo");
	assert_true(jint(r.rows[1], "ifindex") > 0);
	assert_true(jnull(r.rows[1], "b4"));
	reply_free(&r);
	run(w, &w->monitor, REQ("show-subscribers", "\"subscriber\":\"carol\""), &r);
	assert_ok(&r, 1);
	reply_free(&r);

	for (int p = 1; p <= 3; p++) {
		char req[256];
		snprintf(req, sizeof(req), REQ("static-add", "\"subscriber\":\"carol\",\"proto\":"
					       "\"tcp\",\"internal\":\"192.168.1.2\",\"port\":%d"), p);
		run(w, &w->admin, req, &r);
		assert_ok(&r, 1);
		reply_free(&r);
	}
	run(w, &w->admin, REQ("subscriber-flush", "\"subscriber\":\"carol\""), &r);
	assert_ok(&r, 1);
	assert_int_equal(jint(r.rows[0], "deleted"), 3);
	assert_false(json_object_get_boolean(json_object_object_get(r.rows[0], "removed")));
	reply_free(&r);
	assert_int_equal(table_count(w->s->table), 0);

	run(w, &w->admin, REQ("static-add", "\"subscriber\":\"carol\",\"proto\":\"udp\","
			      "\"internal\":\"192.168.1.2\",\"port\":4"), &r);
	assert_ok(&r, 1);
	reply_free(&r);
	run(w, &w->admin, REQ("subscriber-remove", "\"subscriber\":310"), &r);
	assert_ok(&r, 1);
	assert_int_equal(jint(r.rows[0], "deleted"), 1);
	assert_string_equal(jstr(r.rows[0], "name"), "carol");
	assert_true(json_object_get_boolean(json_object_object_get(r.rows[0], "removed")));
	reply_free(&r);
	assert_int_equal(kbackend_mem_count(w->s->kb), 0);
	run(w, &w->monitor, "{\"v\":1,\"cmd\":\"show-subscribers\"}", &r);
	assert_ok(&r, 2);
	reply_free(&r);
	expect_err(w, &w->admin, REQ("subscriber-flush", "\"subscriber\":\"carol\""),
		   "not-found", "'carol'");
	/* the name and index are free again */
	run(w, &w->admin, REQ("subscriber-add", "\"name\":\"carol\",\"index\":310,"
			      "\"interface\":\"sw-c\""), &r);
	assert_ok(&r, 1);
	reply_free(&r);
}

/* One mutating call per subscriber; a vanished peer does not stop it. */
static void test_busy_and_detach(void **state)
{
	struct world *w = *state;
	const char *add = REQ("static-add", "\"subscriber\":\"alice\",\"proto\":\"tcp\","
			      "\"internal\":\"192.168.1.2\",\"port\":22");
	struct ctl_out o2;
	ctl_out_init(&o2);
	struct ctl_call *c = ctl_call_start(&w->cx, &o2, &w->admin, add, strlen(add));
	assert_non_null(c);
	assert_int_equal(c->state, CS_WAIT);      /* until the main loop drains */
	c->owner = w;
	expect_err(w, &w->admin, REQ("subscriber-flush", "\"subscriber\":\"alice\""), "busy",
		   "in progress");
	/* other subscribers are not held up (this drain completes both) */
	struct reply r;
	run(w, &w->admin, REQ("subscriber-flush", "\"subscriber\":\"bob\""), &r);
	assert_ok(&r, 1);
	reply_free(&r);
	assert_int_equal(c->state, CS_DONE);
	ctl_call_free(c);
	collect(&o2, &r);
	assert_ok(&r, 1);
	reply_free(&r);
	ctl_out_free(&o2);
	run(w, &w->admin, REQ("subscriber-flush", "\"subscriber\":\"alice\""), &r);
	assert_ok(&r, 1);
	assert_int_equal(jint(r.rows[0], "deleted"), 1);
	reply_free(&r);

	/* the peer goes away while the kernel works: the call ends on its own */
	c = ctl_call_start(&w->cx, &w->out, &w->admin, add, strlen(add));
	assert_non_null(c);
	c->owner = w;
	ctl_call_detach(c);
	assert_int_equal(w->cx.inflight, 1);
	ctl_ctx_drain(&w->cx);
	assert_int_equal(w->cx.inflight, 0);
	assert_int_equal(ctl_out_pending(&w->out), 0);
	assert_int_equal(table_count(w->s->table), 1);
	/* and the subscriber is free again */
	run(w, &w->admin, REQ("subscriber-flush", "\"subscriber\":\"alice\""), &r);
	assert_ok(&r, 1);
	reply_free(&r);
}

/* Many static mappings straight through the engine. */
static void fill(struct pcpd_server *s, const char *name, unsigned n)
{
	rcu_read_lock();
	struct subscriber *sub = subs_by_name(s->subs, name);
	assert_non_null(sub);
	for (unsigned i = 0; i < n; i++) {
		struct engine_req rq;
		memset(&rq, 0, sizeof(rq));
		rq.sub = sub;
		rq.proto = i % 2 ? 17 : 6;
		addr_from_v4(&rq.int_addr, 0xc0a80000u + 1 + i / 500);
		rq.int_port = (uint16_t)(1000 + i);
		rq.lifetime = 1;
		rq.flags = BF_STATIC;
		rq.now = fake_now;
		enum perr err = PERR_PENDING;
		engine_map(&s->eng, &rq, static_done, &err);
		assert_int_equal(err, PERR_OK);
	}
	rcu_read_unlock();
}

/* The listing is produced in steps and stops while output waits. */
static void test_streaming(void **state)
{
	struct world *w = *state;
	fill(w->s, "alice", 1500);
	fill(w->s, "bob", 1500);
	const char *req = "{\"v\":1,\"cmd\":\"show-mappings\"}";
	struct ctl_call *c = ctl_call_start(&w->cx, &w->out, &w->admin, req, strlen(req));
	assert_non_null(c);
	c->owner = w;
	size_t rows = 0, steps = 0;
	char *carry = NULL;
	size_t ncarry = 0;
	bool ended = false;
	while (!ended) {
		if (c && ctl_out_pending(&w->out) < CTL_OUT_HIGH) {
			ctl_call_step(c);
			steps++;
			if (c->state == CS_DONE) {
				ctl_call_free(c);
				c = NULL;
			}
		}
		/* a slow reader: 8 KiB at a time */
		size_t take = ctl_out_pending(&w->out);
		if (take > 8192)
			take = 8192;
		carry = realloc(carry, ncarry + take + 1);
		if (!carry)
			abort();
		if (take)
			memcpy(carry + ncarry, ctl_out_data(&w->out), take);
		ncarry += take;
		ctl_out_consume(&w->out, take);
		char *p = carry, *nl;
		while ((nl = memchr(p, '\n', ncarry - (size_t)(p - carry)))) {
			if (memmem(p, (size_t)(nl - p), "\"end\":true", 10)) {
				assert_non_null(memmem(p, (size_t)(nl - p), "\"count\":3000", 12));
				ended = true;
			} else {
				rows++;
			}
			p = nl + 1;
		}
		ncarry -= (size_t)(p - carry);
		memmove(carry, p, ncarry);
		assert_true(steps < 100000);
	}
	free(carry);
	assert_null(c);
	assert_int_equal(rows, 3000);
	assert_true(steps > 10);                  /* not one giant step */
	assert_true(w->out.peak < CTL_OUT_HIGH + 4096);
}

/* ---- over real sockets ---- */

struct net {
	struct world *w;
	struct ev_loop *loop;
	struct ctl *ctl;
	char dir[64], admin[108], monitor[108];
};

static void net_up(struct world *w, struct net *n, gid_t admin_gid)
{
	memset(n, 0, sizeof(*n));
	n->w = w;
	snprintf(n->dir, sizeof(n->dir), "/tmp/pcpd-ctl-XXXXXX");
	assert_non_null(mkdtemp(n->dir));
	snprintf(n->admin, sizeof(n->admin), "%s/run/pcpd.sock", n->dir);
	snprintf(n->monitor, sizeof(n->monitor), "%s/run/pcpd-monitor.sock", n->dir);
	n->loop = ev_loop_new(EVFLAG_AUTO);
	assert_non_null(n->loop);
	struct ctl_conf conf;
	memset(&conf, 0, sizeof(conf));
	snprintf(conf.admin_path, sizeof(conf.admin_path), "%s", n->admin);
	snprintf(conf.monitor_path, sizeof(conf.monitor_path), "%s", n->monitor);
	conf.admin_gid = admin_gid;
	struct ctl_info info = { .conf_path = "test", .start_sec = mtime_sec(), .workers = 1 };
	n->ctl = ctl_new(w->s, n->loop, &conf, &info);
	assert_non_null(n->ctl);
}

static void net_down(struct net *n)
{
	ctl_free(n->ctl);
	struct stat st;
	assert_int_equal(stat(n->admin, &st), -1);         /* unlinked */
	assert_int_equal(stat(n->monitor, &st), -1);
	char run[120];
	snprintf(run, sizeof(run), "%s/run", n->dir);
	rmdir(run);
	rmdir(n->dir);
	ev_loop_destroy(n->loop);
}

static int dial(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void say(int fd, const char *s)
{
	size_t n = strlen(s);
	assert_int_equal(send(fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

struct inbox {
	char *buf;
	size_t len;
	unsigned ends;
	unsigned lines;
	bool closed;
};

static void inbox_take(struct inbox *b, int fd)
{
	char tmp[65536];
	for (;;) {
		ssize_t n = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
		if (n == 0)
			b->closed = true;
		if (n <= 0)
			return;
		b->buf = realloc(b->buf, b->len + (size_t)n + 1);
		memcpy(b->buf + b->len, tmp, (size_t)n);
		for (ssize_t i = 0; i < n; i++)
			b->lines += tmp[i] == '\n';
		b->len += (size_t)n;
		b->buf[b->len] = '\0';
	}
}

/* Pumps the loop until fd has seen `ends` end markers (or closed). */
static void pump(struct net *n, int fd, struct inbox *b, unsigned ends)
{
	uint64_t t0 = mtime_ms();
	while (b->ends < ends && !b->closed) {
		ev_run(n->loop, EVRUN_NOWAIT);
		inbox_take(b, fd);
		b->ends = 0;
		for (const char *p = b->buf; p && (p = strstr(p, "\"end\":true")); p++)
			b->ends++;
		if (mtime_ms() - t0 > 20000)
			fail_msg("no reply after 20 s (%u of %u end markers)", b->ends, ends);
	}
}

static void test_socket_basics(void **state)
{
	struct world *w = *state;
	struct net n;
	net_up(w, &n, (gid_t)-1);
	struct stat st;
	assert_int_equal(stat(n.admin, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0660);
	assert_int_equal(stat(n.monitor, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0666);

	/* pipelined requests, CRLF, a blank line, errors that keep the line up */
	int a = dial(n.admin);
	say(a, "{\"v\":1,\"cmd\":\"status\"}\r\n\n{oops\n{\"v\":9}\n"
	       "{\"v\":1,\"cmd\":\"show-subscribers\"}\n");
	struct inbox b = { 0 };
	pump(&n, a, &b, 4);
	assert_int_equal(b.lines, 1 + 1 + 1 + 1 + 2 + 1);
	assert_non_null(strstr(b.buf, "\"backend\":\"memory\""));
	assert_non_null(strstr(b.buf, "\"code\":\"bad-request\""));
	assert_non_null(strstr(b.buf, "\"code\":\"version\""));
	assert_non_null(strstr(b.buf, "\"count\":2}"));
	free(b.buf);

	/* the monitor socket is read-only, and says so without hanging up */
	int m = dial(n.monitor);
	memset(&b, 0, sizeof(b));
	say(m, REQ("subscriber-flush", "\"subscriber\":\"alice\"") "\n");
	pump(&n, m, &b, 1);
	assert_non_null(strstr(b.buf, "permission denied: read-only socket"));
	say(m, "{\"v\":1,\"cmd\":\"status\"}\n");
	pump(&n, m, &b, 2);
	assert_non_null(strstr(b.buf, "\"ok\":true"));
	free(b.buf);

	/* root on the admin socket may change things */
	memset(&b, 0, sizeof(b));
	say(a, REQ("static-add", "\"subscriber\":\"alice\",\"proto\":\"tcp\","
		   "\"internal\":\"192.168.1.2\",\"port\":443") "\n");
	pump(&n, a, &b, 1);
	assert_non_null(strstr(b.buf, "\"type\":\"static\""));
	assert_non_null(strstr(b.buf, "\"ok\":true"));
	free(b.buf);

	/* an over-long line is refused, the next request is served */
	memset(&b, 0, sizeof(b));
	char *junk = malloc(70000);
	memset(junk, 'x', 70000);
	size_t sent = 0;
	while (sent < 70000) {
		ssize_t k = send(a, junk + sent, 70000 - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (k > 0)
			sent += (size_t)k;
		ev_run(n.loop, EVRUN_NOWAIT);
	}
	free(junk);
	say(a, "xx\n{\"v\":1,\"cmd\":\"status\"}\n");
	pump(&n, a, &b, 2);
	assert_non_null(strstr(b.buf, "\"code\":\"too-long\""));
	assert_non_null(strstr(b.buf, "\"uptime\""));
	free(b.buf);

	/* the last request may lack its newline; then the server hangs up */
	memset(&b, 0, sizeof(b));
	say(m, "{\"v\":1,\"cmd\":\"status\"}");
	shutdown(m, SHUT_WR);
	pump(&n, m, &b, 1);
	while (!b.closed) {
		ev_run(n.loop, EVRUN_NOWAIT);
		inbox_take(&b, m);
	}
	assert_int_equal(b.ends, 1);
	free(b.buf);
	close(m);
	close(a);
	net_down(&n);
}

/* A big listing to a reader that stalls: the server keeps serving others,
 * and holds only a bounded amount of output for the stalled one. */
static void test_socket_backpressure(void **state)
{
	struct world *w = *state;
	fill(w->s, "alice", 2000);
	fill(w->s, "bob", 2000);
	struct net n;
	net_up(w, &n, (gid_t)-1);
	int slow = dial(n.monitor);
	say(slow, "{\"v\":1,\"cmd\":\"show-mappings\"}\n");
	for (int i = 0; i < 300; i++)
		ev_run(n.loop, EVRUN_NOWAIT);
	int queued = 0;
	assert_int_equal(ioctl(slow, FIONREAD, &queued), 0);
	assert_true(queued > 0);
	assert_true(queued < 4000 * 300);         /* far from the whole listing */

	int other = dial(n.monitor);
	say(other, "{\"v\":1,\"cmd\":\"status\"}\n");
	struct inbox b = { 0 };
	pump(&n, other, &b, 1);
	assert_non_null(strstr(b.buf, "\"mappings\":4000"));
	free(b.buf);
	close(other);

	memset(&b, 0, sizeof(b));
	pump(&n, slow, &b, 1);
	assert_int_equal(b.lines, 4001);
	assert_non_null(strstr(b.buf, "\"count\":4000"));
	free(b.buf);

	/* a reader that goes away mid-stream */
	int gone = dial(n.admin);
	say(gone, "{\"v\":1,\"cmd\":\"show-mappings\"}\n");
	for (int i = 0; i < 50; i++)
		ev_run(n.loop, EVRUN_NOWAIT);
	close(gone);
	for (int i = 0; i < 50; i++)
		ev_run(n.loop, EVRUN_NOWAIT);
	memset(&b, 0, sizeof(b));
	say(slow, "{\"v\":1,\"cmd\":\"status\"}\n");
	pump(&n, slow, &b, 1);
	free(b.buf);
	close(slow);
	net_down(&n);
}

/* Child side of the peer checks: as uid/gid 65534 (with supplementary
 * group 4242 in round 2) on the admin socket. Round 0 expects the socket's
 * mode to keep it out, round 1 a refusal by uid, round 2 success through
 * the group. Returns 0 if all was as expected. */
static int as_nobody(const char *admin, int round)
{
	gid_t extra = 4242;
	if (setgroups(round == 2 ? 1 : 0, &extra) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
		return 64;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", admin);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (round == 0)
		return r == 0 || errno != EACCES ? 1 : 0;
	if (r < 0)
		return 2;
	const char req[] = REQ("subscriber-flush", "\"subscriber\":\"alice\"") "\n"
			   "{\"v\":1,\"cmd\":\"status\"}\n";
	if (send(fd, req, sizeof(req) - 1, 0) != (ssize_t)sizeof(req) - 1)
		return 4;
	char buf[8192];
	size_t n = 0;
	unsigned ends = 0;
	while (ends < 2 && n < sizeof(buf) - 1) {
		ssize_t k = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
		if (k <= 0)
			return 8;
		for (ssize_t i = 0; i < k; i++)
			ends += buf[n + (size_t)i] == '\n';
		n += (size_t)k;
	}
	buf[n] = '\0';
	const char *want = round == 1 ? "permission denied: uid 65534 is not root or in the admin group"
				      : "\"removed\":false";
	if (!strstr(buf, want))
		return 16;
	if (!strstr(buf, "\"uptime\""))
		return 32;
	return 0;
}

/* SO_PEERCRED at work: the admin socket's mode keeps others out; a peer
 * that gets in anyway (here: the mode opened up) may only read; a member
 * of admin-group (supplementary, SO_PEERGROUPS) may change things. */
static void test_socket_peer_checks(void **state)
{
	struct world *w = *state;
	struct net n;
	if (geteuid() != 0)
		skip();                  /* needs to become another user */
	for (int round = 0; round < 3; round++) {
		net_up(w, &n, round == 2 ? 4242 : (gid_t)-1);
		assert_int_equal(chmod(n.dir, 0755), 0);       /* mkdtemp made it 0700 */
		struct stat st;
		assert_int_equal(stat(n.admin, &st), 0);
		assert_int_equal(st.st_gid, round == 2 ? 4242 : getgid());
		if (round == 1)
			assert_int_equal(chmod(n.admin, 0666), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			_exit(as_nobody(n.admin, round));
		int ws = 0;
		uint64_t t0 = mtime_ms();
		while (waitpid(pid, &ws, WNOHANG) == 0) {
			ev_run(n.loop, EVRUN_NOWAIT);
			usleep(1000);
			if (mtime_ms() - t0 > 20000)
				fail_msg("child stuck");
		}
		assert_true(WIFEXITED(ws));
		assert_int_equal(WEXITSTATUS(ws), 0);
		net_down(&n);
	}
}

static void test_socket_limits(void **state)
{
	struct world *w = *state;
	struct net n;
	net_up(w, &n, (gid_t)-1);
	int fds[40];
	for (int i = 0; i < 32; i++) {
		fds[i] = dial(n.monitor);
		ev_run(n.loop, EVRUN_NOWAIT);
	}
	int extra = dial(n.monitor);
	struct inbox b = { 0 };
	pump(&n, extra, &b, 1);
	assert_non_null(strstr(b.buf, "\"code\":\"overload\""));
	free(b.buf);
	close(extra);
	/* the admin socket has its own connections */
	int a = dial(n.admin);
	memset(&b, 0, sizeof(b));
	say(a, "{\"v\":1,\"cmd\":\"status\"}\n");
	pump(&n, a, &b, 1);
	assert_non_null(strstr(b.buf, "\"ok\":true"));
	free(b.buf);
	close(a);
	for (int i = 0; i < 32; i++)
		close(fds[i]);
	ev_run(n.loop, EVRUN_NOWAIT);

	/* a second control server on the same paths is refused (live
	 * socket); after the first is gone, a stale file is replaced */
	struct ctl_conf conf;
	memset(&conf, 0, sizeof(conf));
	snprintf(conf.admin_path, sizeof(conf.admin_path), "%s", n.admin);
	conf.admin_gid = (gid_t)-1;
	struct ctl_info info = { .conf_path = NULL, .start_sec = 0, .workers = 1 };
	assert_null(ctl_new(w->s, n.loop, &conf, &info));
	net_down(&n);

	char dir[] = "/tmp/pcpd-ctl-XXXXXX";
	assert_non_null(mkdtemp(dir));
	snprintf(conf.admin_path, sizeof(conf.admin_path), "%s/stale.sock", dir);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", conf.admin_path);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(s);                                 /* left behind, like a crashed pcpd */
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct ctl *c = ctl_new(w->s, loop, &conf, &info);
	assert_non_null(c);
	ctl_free(c);
	/* a regular file in the way is never removed */
	FILE *f = fopen(conf.admin_path, "w");
	assert_non_null(f);
	fclose(f);
	assert_null(ctl_new(w->s, loop, &conf, &info));
	struct stat st;
	assert_int_equal(stat(conf.admin_path, &st), 0);
	unlink(conf.admin_path);
	rmdir(dir);
	ev_loop_destroy(loop);
}

int main(void)
{
	rcu_register_thread();
	log_setup(LOG_TO_STDERR, LOG_WARNING, "test_ctl");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_framing),
		cmocka_unit_test(test_out_queue),
		cmocka_unit_test(test_mfilter),
		cmocka_unit_test_setup_teardown(test_permission, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_and_stats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_static_mappings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subscribers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_and_detach, setup, teardown),
		cmocka_unit_test_setup_teardown(test_streaming, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_basics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_peer_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_limits, setup, teardown),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	rcu_unregister_thread();
	return rc;
}
