/* pcpctl: command-line client of pcpd's control socket (pcpctl(8),
 * docs/control-protocol.md). The command words become one request; the
 * reply streams through a renderer chosen at start: aligned text tables
 * (default), the result objects as JSON lines (-j), or OpenMetrics
 * (`pcpctl metrics`). Speaks only the protocol: no daemon code linked. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "pcpd/ctl.h"

enum { RC_OK = 0, RC_ERROR = 1, RC_USAGE = 2, RC_UNREACHABLE = 3 };

#define REPLY_LINE_MAX (16u << 20)   /* a sane bound on one reply line */

/* ---- turning JSON values into text ---- */

/* Control characters (C0, DEL, C1) would reach the terminal: '?' instead. */
static void sanitize(char *s)
{
	for (unsigned char *p = (unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
		else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
			p[0] = p[1] = '?';
	}
}

/* Terminal columns of a UTF-8 string (one per code point). */
static size_t width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

static void value_text(json_object *v, char *buf, size_t n)
{
	switch (json_object_get_type(v)) {
	case json_type_null:
		snprintf(buf, n, "-");
		break;
	case json_type_boolean:
		snprintf(buf, n, "%s", json_object_get_boolean(v) ? "yes" : "no");
		break;
	case json_type_string:
		snprintf(buf, n, "%s", json_object_get_string(v));
		break;
	default:
		snprintf(buf, n, "%s", json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
		break;
	}
	sanitize(buf);
}

static json_object *get(json_object *o, const char *k)
{
	json_object *v = NULL;
	return k && json_object_object_get_ex(o, k, &v) ? v : NULL;
}

/* ---- table columns ---- */

struct column {
	const char *head;
	const char *k1, *k2;
	void (*fmt)(json_object *o, const struct column *col, char *buf, size_t n);
};

static void f_val(json_object *o, const struct column *col, char *buf, size_t n)
{
	value_text(get(o, col->k1), buf, n);
}

/* k1, or else k2 (B4 prefix or softwire) */
static void f_alt(json_object *o, const struct column *col, char *buf, size_t n)
{
	json_object *v = get(o, col->k1);
	value_text(v ? v : get(o, col->k2), buf, n);
}

static void f_join(json_object *o, const struct column *col, char *buf, size_t n,
		   const char *sep)
{
	char a[256], b[256];
	value_text(get(o, col->k1), a, sizeof(a));
	value_text(get(o, col->k2), b, sizeof(b));
	snprintf(buf, n, "%s%s%s", a, sep, b);
}

static void f_pair(json_object *o, const struct column *col, char *buf, size_t n)
{
	f_join(o, col, buf, n, ":");
}

static void f_range(json_object *o, const struct column *col, char *buf, size_t n)
{
	f_join(o, col, buf, n, "-");
}

static void f_life(json_object *o, const struct column *col, char *buf, size_t n)
{
	json_object *t = get(o, "type");
	if (t && strcmp(json_object_get_string(t), "static") == 0)
		snprintf(buf, n, "static");
	else
		f_val(o, col, buf, n);
}

static void f_count(json_object *o, const struct column *col, char *buf, size_t n)
{
	json_object *a = get(o, col->k1);
	snprintf(buf, n, "%zu", json_object_is_type(a, json_type_array) ?
					json_object_array_length(a) : (size_t)0);
}

static void f_iface(json_object *o, const struct column *col, char *buf, size_t n)
{
	json_object *i = get(o, col->k1);
	if (!i || json_object_is_type(i, json_type_null)) {
		snprintf(buf, n, "-");
		return;
	}
	char a[64];
	value_text(i, a, sizeof(a));
	snprintf(buf, n, "%s(%d)", a, json_object_get_int(get(o, col->k2)));
}

static const struct column mapping_cols[] = {
	{ "SUB", "subscriber", NULL, f_val },
	{ "NAME", "name", NULL, f_val },
	{ "B4/SOFTWIRE", "b4", "interface", f_alt },
	{ "PROTO", "proto", NULL, f_val },
	{ "INTERNAL", "internal_addr", "internal_port", f_pair },
	{ "EXTERNAL", "external_addr", "external_port", f_pair },
	{ "TYPE", "type", NULL, f_val },
	{ "LIFETIME", "lifetime", NULL, f_life },
	{ "PEERS", "peers", NULL, f_count },
	{ "DESCRIPTION", "description", NULL, f_val },
	{ NULL, NULL, NULL, NULL },
};

static const struct column ddns_cols[] = {
	{ "NAME", "name", NULL, f_val },
	{ "PROVIDER", "provider", NULL, f_val },
	{ "STATE", "state", NULL, f_val },
	{ "PUBLISHED", "published", NULL, f_val },
	{ "LAST", "last_result", NULL, f_val },
	{ "NEXT(s)", "next_attempt_in", NULL, f_val },
	{ "ERROR", "error", NULL, f_val },
	{ NULL, NULL, NULL, NULL },
};

static const struct column provider_cols[] = {
	{ "PROVIDER", "name", NULL, f_val },
	{ "TYPE", "type", NULL, f_val },
	{ "STATE", "state", NULL, f_val },
	{ "SENT", "sent", NULL, f_val },
	{ "OK", "ok", NULL, f_val },
	{ "TRANSIENT", "transient", NULL, f_val },
	{ "PERMANENT", "permanent", NULL, f_val },
	{ "RATE-WAITS", "rate_waits", NULL, f_val },
	{ "REASON", "reason", NULL, f_val },
	{ NULL, NULL, NULL, NULL },
};

static const struct column subscriber_cols[] = {
	{ "INDEX", "index", NULL, f_val },
	{ "NAME", "name", NULL, f_val },
	{ "B4", "b4", NULL, f_val },
	{ "SOFTWIRE", "interface", "ifindex", f_iface },
	{ "EXTERNAL", "external_addr", NULL, f_val },
	{ "BLOCK", "block_lo", "block_hi", f_range },
	{ "PCP", "pcp_lo", "pcp_hi", f_range },
	{ "MAPPINGS", "mappings", NULL, f_val },
	{ "REQUESTS", "requests", NULL, f_val },
	{ "LIMITED", "rate_limited", NULL, f_val },
	{ NULL, NULL, NULL, NULL },
};

/* ---- renderers ---- */

struct render {
	const struct render_ops *ops;
	const struct column *cols;    /* text: NULL = key/value listing */
	char **cells;                 /* table rows, ncols per row */
	size_t ncols, nrows, cap;
	unsigned objects;
};

struct render_ops {
	/* one result object (o parsed, line as received) */
	void (*row)(struct render *r, json_object *o, const char *line, size_t len);
	/* the reply ended: print what was held back (a failed reply without
	 * results prints nothing) */
	void (*finish)(struct render *r, bool ok);
};

static void json_row(struct render *r, json_object *o, const char *line, size_t len)
{
	(void)r;
	(void)o;
	fwrite(line, 1, len, stdout);
	fputc('\n', stdout);
}

static void nothing(struct render *r, bool ok)
{
	(void)r;
	(void)ok;
}

static const struct render_ops json_ops = { json_row, nothing };

/* key/value listing: nested objects flattened to dotted keys */
struct kv {
	char **k, **v;
	size_t n, cap;
};

static void kv_add(struct kv *kv, const char *k, const char *v)
{
	if (kv->n == kv->cap) {
		kv->cap = kv->cap ? kv->cap * 2 : 32;
		kv->k = realloc(kv->k, kv->cap * sizeof(*kv->k));
		kv->v = realloc(kv->v, kv->cap * sizeof(*kv->v));
		if (!kv->k || !kv->v) {
			fprintf(stderr, "pcpctl: out of memory\n");
			exit(RC_ERROR);
		}
	}
	kv->k[kv->n] = strdup(k);
	kv->v[kv->n] = strdup(v);
	kv->n++;
}

static void flatten(struct kv *kv, const char *prefix, json_object *o)
{
	struct json_object_iterator it = json_object_iter_begin(o), end = json_object_iter_end(o);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		char key[256], val[1024];
		snprintf(key, sizeof(key), "%s%s%s", prefix, prefix[0] ? "." : "",
			 json_object_iter_peek_name(&it));
		sanitize(key);
		json_object *v = json_object_iter_peek_value(&it);
		if (json_object_is_type(v, json_type_object)) {
			flatten(kv, key, v);
			continue;
		}
		value_text(v, val, sizeof(val));
		kv_add(kv, key, val);
	}
}

static void kv_row(struct render *r, json_object *o)
{
	struct kv kv = { 0 };
	flatten(&kv, "", o);
	size_t w = 0;
	for (size_t i = 0; i < kv.n; i++)
		if (width(kv.k[i]) > w)
			w = width(kv.k[i]);
	if (r->objects++)
		putchar('\n');
	for (size_t i = 0; i < kv.n; i++) {
		printf("%s%*s  %s\n", kv.k[i], (int)(w - width(kv.k[i])), "", kv.v[i]);
		free(kv.k[i]);
		free(kv.v[i]);
	}
	free(kv.k);
	free(kv.v);
}

static void text_row(struct render *r, json_object *o, const char *line, size_t len)
{
	(void)line;
	(void)len;
	if (!r->cols) {
		kv_row(r, o);
		return;
	}
	if (r->nrows == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 256;
		r->cells = realloc(r->cells, r->cap * r->ncols * sizeof(*r->cells));
		if (!r->cells) {
			fprintf(stderr, "pcpctl: out of memory\n");
			exit(RC_ERROR);
		}
	}
	char buf[1024];
	for (size_t i = 0; i < r->ncols; i++) {
		r->cols[i].fmt(o, &r->cols[i], buf, sizeof(buf));
		r->cells[r->nrows * r->ncols + i] = strdup(buf);
	}
	r->nrows++;
}

/* Tables need every row to align the columns, so they print at the end. */
static void text_finish(struct render *r, bool ok)
{
	if (!r->cols || (!ok && !r->nrows))
		return;
	size_t w[32] = { 0 };
	for (size_t i = 0; i < r->ncols; i++)
		w[i] = strlen(r->cols[i].head);
	for (size_t j = 0; j < r->nrows; j++)
		for (size_t i = 0; i < r->ncols; i++) {
			const char *s = r->cells[j * r->ncols + i];
			if (s && width(s) > w[i])
				w[i] = width(s);
		}
	for (size_t j = 0; j <= r->nrows; j++) {
		for (size_t i = 0; i < r->ncols; i++) {
			const char *s = j ? r->cells[(j - 1) * r->ncols + i] : r->cols[i].head;
			if (!s)
				s = "?";
			bool last = i + 1 == r->ncols;
			printf("%s%*s%s", s, last ? 0 : (int)(w[i] - width(s)), "", last ? "\n" : "  ");
		}
	}
	for (size_t k = 0; k < r->nrows * r->ncols; k++)
		free(r->cells[k]);
	free(r->cells);
	r->cells = NULL;
}

static const struct render_ops text_ops = { text_row, text_finish };

/* OpenMetrics from the stats object: counters get _total, a few values are
 * gauges, nested objects become one family with a label. */
/* Nested objects: family name and label. */
static const char *const metric_families[][3] = {
	{ "opcodes", "requests", "opcode" },
	{ "results", "responses", "result" },
	{ "batch_hist", "batches", "size" },
};

static void metric_family(const char *key, const char **family, const char **label)
{
	*family = key;
	*label = "key";
	for (size_t i = 0; i < sizeof(metric_families) / sizeof(metric_families[0]); i++) {
		if (strcmp(key, metric_families[i][0]) == 0) {
			*family = metric_families[i][1];
			*label = metric_families[i][2];
		}
	}
}

static bool metric_gauge(const char *key)
{
	static const char *const gauges[] = {
		"latency_us_mean", "latency_us_max", "batch_max", "elements",
		/* ddns */
		"queue_depth", "queue_capacity", "queue_high_water", "in_flight", "names", "bindings",
		"subscribers_seen", "mappings_seen", "providers_stopped",
	};
	for (size_t i = 0; i < sizeof(gauges) / sizeof(gauges[0]); i++)
		if (strcmp(key, gauges[i]) == 0)
			return true;
	return false;
}

static void metrics_row(struct render *r, json_object *o, const char *line, size_t len)
{
	(void)r;
	(void)line;
	(void)len;
	struct json_object_iterator s = json_object_iter_begin(o), se = json_object_iter_end(o);
	for (; !json_object_iter_equal(&s, &se); json_object_iter_next(&s)) {
		const char *sec = json_object_iter_peek_name(&s);
		json_object *so = json_object_iter_peek_value(&s);
		if (!json_object_is_type(so, json_type_object))
			continue;
		struct json_object_iterator k = json_object_iter_begin(so);
		struct json_object_iterator ke = json_object_iter_end(so);
		for (; !json_object_iter_equal(&k, &ke); json_object_iter_next(&k)) {
			const char *key = json_object_iter_peek_name(&k);
			json_object *v = json_object_iter_peek_value(&k);
			if (json_object_is_type(v, json_type_int)) {
				bool g = metric_gauge(key);
				printf("# TYPE pcpd_%s_%s %s\npcpd_%s_%s%s %" PRIu64 "\n", sec, key,
				       g ? "gauge" : "counter", sec, key, g ? "" : "_total",
				       json_object_get_uint64(v));
			} else if (json_object_is_type(v, json_type_object)) {
				const char *fam, *label;
				metric_family(key, &fam, &label);
				printf("# TYPE pcpd_%s_%s counter\n", sec, fam);
				struct json_object_iterator l = json_object_iter_begin(v);
				struct json_object_iterator le = json_object_iter_end(v);
				for (; !json_object_iter_equal(&l, &le); json_object_iter_next(&l))
					printf("pcpd_%s_%s_total{%s=\"%s\"} %" PRIu64 "\n", sec, fam,
					       label, json_object_iter_peek_name(&l),
					       json_object_get_uint64(json_object_iter_peek_value(&l)));
			}
		}
	}
}

static void metrics_finish(struct render *r, bool ok)
{
	(void)r;
	if (ok)
		printf("# EOF\n");
}

static const struct render_ops metrics_ops = { metrics_row, metrics_finish };

/* ---- command words -> request ---- */

enum ktype { K_STR, K_UINT, K_PORT, K_PROTO };

struct kw {
	const char *word;     /* on the command line */
	const char *key;      /* in "args" */
	enum ktype type;
};

static bool number(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	if (!s[0] || strspn(s, "0123456789") != strlen(s))
		return false;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return false;
	*out = v;
	return true;
}

static int put_value(json_object *a, const char *key, enum ktype t, const char *s)
{
	unsigned long v;
	switch (t) {
	case K_STR:
		json_object_object_add(a, key, json_object_new_string(s));
		return 0;
	case K_UINT:
		if (!number(s, 0xffffffffUL, &v))
			break;
		json_object_object_add(a, key, json_object_new_int64((int64_t)v));
		return 0;
	case K_PORT:
		if (!number(s, 65535, &v) || v == 0)
			break;
		json_object_object_add(a, key, json_object_new_int64((int64_t)v));
		return 0;
	case K_PROTO:
		if (strcmp(s, "tcp") != 0 && strcmp(s, "udp") != 0)
			break;
		json_object_object_add(a, key, json_object_new_string(s));
		return 0;
	}
	fprintf(stderr, "pcpctl: %s: invalid value '%s'\n", key, s);
	return -1;
}

/* "word value" pairs in any order */
static int keywords(json_object *a, const struct kw *kws, int argc, char **argv)
{
	for (int i = 0; i < argc; i += 2) {
		const struct kw *k = kws;
		while (k->word && strcmp(k->word, argv[i]) != 0)
			k++;
		if (!k->word) {
			fprintf(stderr, "pcpctl: unknown keyword '%s'\n", argv[i]);
			return -1;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "pcpctl: '%s' needs a value\n", argv[i]);
			return -1;
		}
		if (put_value(a, k->key, k->type, argv[i + 1]) < 0)
			return -1;
	}
	return 0;
}

static int a_none(json_object *a, int argc, char **argv)
{
	(void)a;
	(void)argv;
	return argc ? -1 : 0;
}

static int a_show_mappings(json_object *a, int argc, char **argv)
{
	static const struct kw kws[] = {
		{ "subscriber", "subscriber", K_STR }, { "internal", "internal", K_STR },
		{ "external", "external", K_STR }, { "port", "port", K_PORT },
		{ "proto", "proto", K_PROTO }, { NULL, NULL, K_STR },
	};
	return keywords(a, kws, argc, argv);
}

static int a_show_subscribers(json_object *a, int argc, char **argv)
{
	static const struct kw kws[] = {
		{ "subscriber", "subscriber", K_STR }, { NULL, NULL, K_STR },
	};
	return keywords(a, kws, argc, argv);
}

/* SUB tcp|udp ADDR PORT [EXTPORT] */
static int a_static(json_object *a, int argc, char **argv, bool add)
{
	if (argc < 4 || argc > (add ? 5 : 4))
		return -1;
	if (put_value(a, "subscriber", K_STR, argv[0]) < 0 ||
	    put_value(a, "proto", K_PROTO, argv[1]) < 0 ||
	    put_value(a, "internal", K_STR, argv[2]) < 0 ||
	    put_value(a, "port", K_PORT, argv[3]) < 0 ||
	    (argc == 5 && put_value(a, "external_port", K_PORT, argv[4]) < 0))
		return -1;
	return 0;
}

static int a_static_add(json_object *a, int argc, char **argv)
{
	return a_static(a, argc, argv, true);
}

static int a_static_del(json_object *a, int argc, char **argv)
{
	return a_static(a, argc, argv, false);
}

/* NAME index N [b4 PREFIX] [interface IF] */
static int a_sub_add(json_object *a, int argc, char **argv)
{
	static const struct kw kws[] = {
		{ "index", "index", K_UINT }, { "b4", "b4", K_STR },
		{ "interface", "interface", K_STR }, { NULL, NULL, K_STR },
	};
	if (argc < 1 || put_value(a, "name", K_STR, argv[0]) < 0 ||
	    keywords(a, kws, argc - 1, argv + 1) < 0)
		return -1;
	if (!get(a, "index")) {
		fprintf(stderr, "pcpctl: subscriber add needs 'index N'\n");
		return -1;
	}
	return 0;
}

static int a_sub_one(json_object *a, int argc, char **argv)
{
	if (argc != 1)
		return -1;
	return put_value(a, "subscriber", K_STR, argv[0]);
}

/* [NAME] */
static int a_opt_name(json_object *a, int argc, char **argv)
{
	if (argc > 1)
		return -1;
	return argc ? put_value(a, "name", K_STR, argv[0]) : 0;
}

static int a_name(json_object *a, int argc, char **argv)
{
	if (argc != 1)
		return -1;
	return put_value(a, "name", K_STR, argv[0]);
}

/* NAME provider P (subscriber S | subscribers PREFIX) [a 0|1] [srv LIST] [txt TEXT] */
static int a_ddns_add(json_object *a, int argc, char **argv)
{
	static const struct kw kws[] = {
		{ "provider", "provider", K_STR }, { "subscriber", "subscriber", K_STR },
		{ "subscribers", "subscribers", K_STR }, { "a", "a", K_UINT },
		{ "srv", "srv", K_STR }, { "txt", "txt", K_STR }, { NULL, NULL, K_STR },
	};
	if (argc < 1 || put_value(a, "name", K_STR, argv[0]) < 0 ||
	    keywords(a, kws, argc - 1, argv + 1) < 0)
		return -1;
	if (!get(a, "provider")) {
		fprintf(stderr, "pcpctl: ddns add needs 'provider NAME'\n");
		return -1;
	}
	return 0;
}

struct verb {
	const char *w1, *w2;          /* command words */
	const char *cmd;              /* protocol command */
	int (*args)(json_object *a, int argc, char **argv);
	const struct column *cols;    /* text view: table columns, NULL = key/value */
	const struct render_ops *force;   /* a renderer of its own (metrics) */
	const char *usage;            /* its arguments */
};

static const struct verb verbs[] = {
	{ "status", NULL, "status", a_none, NULL, NULL, "" },
	{ "stats", NULL, "stats", a_none, NULL, NULL, "" },
	{ "metrics", NULL, "stats", a_none, NULL, &metrics_ops, "" },
	{ "show", "mappings", "show-mappings", a_show_mappings, mapping_cols, NULL,
	  " [subscriber NAME|IDX] [internal ADDR] [external ADDR] [port N] [proto tcp|udp]" },
	{ "show", "subscribers", "show-subscribers", a_show_subscribers, subscriber_cols, NULL,
	  " [subscriber NAME|IDX]" },
	{ "static", "add", "static-add", a_static_add, mapping_cols, NULL,
	  " SUB tcp|udp ADDR PORT [EXTPORT]" },
	{ "static", "del", "static-del", a_static_del, mapping_cols, NULL,
	  " SUB tcp|udp ADDR PORT" },
	{ "static", "delete", "static-del", a_static_del, mapping_cols, NULL,
	  " SUB tcp|udp ADDR PORT" },
	{ "subscriber", "add", "subscriber-add", a_sub_add, subscriber_cols, NULL,
	  " NAME index N [b4 PREFIX] [interface IF]" },
	{ "subscriber", "remove", "subscriber-remove", a_sub_one, NULL, NULL, " NAME|IDX" },
	{ "subscriber", "flush", "subscriber-flush", a_sub_one, NULL, NULL, " NAME|IDX" },
	{ "ddns", "status", "ddns-status", a_opt_name, ddns_cols, NULL, " [NAME|PROVIDER|BINDING]" },
	{ "ddns", "providers", "ddns-providers", a_opt_name, provider_cols, NULL, " [PROVIDER]" },
	{ "ddns", "bindings", "ddns-bindings", a_opt_name, NULL, NULL, " [BINDING|PROVIDER]" },
	{ "ddns", "add", "ddns-add", a_ddns_add, NULL, NULL,
	  " NAME provider P subscriber S|subscribers PREFIX [a 0|1] [srv LIST] [txt TEXT]" },
	{ "ddns", "set", "ddns-set", a_ddns_add, NULL, NULL, " NAME provider P ... (as add)" },
	{ "ddns", "del", "ddns-del", a_name, NULL, NULL, " BINDING" },
	{ "ddns", "reset", "ddns-reset", a_name, NULL, NULL, " NAME|PROVIDER|*" },
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pcpctl [-s SOCKET] [-j] [-t SECONDS] COMMAND ...\n"
		"  status\n"
		"  stats\n"
		"  metrics\n"
		"  show mappings [subscriber NAME|IDX] [internal ADDR] [external ADDR]\n"
		"                [port N] [proto tcp|udp]\n"
		"  show subscribers [subscriber NAME|IDX]\n"
		"  static add SUB tcp|udp ADDR PORT [EXTPORT]\n"
		"  static del SUB tcp|udp ADDR PORT\n"
		"  subscriber add NAME index N [b4 PREFIX] [interface IF]\n"
		"  subscriber remove NAME|IDX\n"
		"  subscriber flush NAME|IDX\n"
		"  ddns status [NAME|PROVIDER|BINDING]\n"
		"  ddns providers [PROVIDER]\n"
		"  ddns bindings [BINDING|PROVIDER]\n"
		"  ddns add NAME provider P subscriber S|subscribers PREFIX [a 0|1]\n"
		"           [srv _svc._tcp=PORT,...] [txt TEXT]\n"
		"  ddns set NAME ... (as add: replaces a runtime binding)\n"
		"  ddns del BINDING\n"
		"  ddns reset NAME|PROVIDER|*\n"
		"options:\n"
		"  -s SOCKET   control socket (default %s if writable, else %s)\n"
		"  -j          result objects as JSON lines\n"
		"  -t SECONDS  give up when pcpd is silent that long (default 30, 0 = never)\n"
		"  -V          print the version\n",
		CTL_DEFAULT_ADMIN_PATH, CTL_DEFAULT_MONITOR_PATH);
}

/* ---- talking to pcpd ---- */

static int connect_to(const char *path)
{
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "pcpctl: socket path too long: %s\n", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "pcpctl: cannot connect to %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

struct reply {
	char *buf;
	size_t len, cap;
};

/* Handles one reply line: RC_OK/RC_ERROR at the end marker, -1 to go on,
 * RC_UNREACHABLE if it is not protocol. */
static int reply_line(struct render *r, const char *line, size_t len)
{
	json_tokener *tok = json_tokener_new();
	json_object *o = tok ? json_tokener_parse_ex(tok, line, (int)len) : NULL;
	json_tokener_free(tok);
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		fprintf(stderr, "pcpctl: malformed reply from pcpd\n");
		return RC_UNREACHABLE;
	}
	json_object *end = get(o, "end");
	if (!end || !json_object_get_boolean(end)) {
		r->ops->row(r, o, line, len);
		json_object_put(o);
		return -1;
	}
	bool ok = json_object_get_boolean(get(o, "ok"));
	r->ops->finish(r, ok);
	int rc = RC_OK;
	if (!ok) {
		json_object *e = get(o, "error");
		char msg[1024];
		value_text(e, msg, sizeof(msg));
		fprintf(stderr, "pcpctl: %s\n", msg);
		rc = RC_ERROR;
	}
	json_object_put(o);
	return rc;
}

static int read_reply(int fd, struct render *r, int timeout_s)
{
	struct reply rp = { 0 };
	int rc = -1;
	while (rc < 0) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int n = poll(&p, 1, timeout_s > 0 ? timeout_s * 1000 : -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) {
			fprintf(stderr, "pcpctl: no reply from pcpd within %d s\n", timeout_s);
			rc = RC_UNREACHABLE;
			break;
		}
		if (rp.cap - rp.len < 65536) {
			size_t cap = rp.cap ? rp.cap * 2 : 131072;
			char *b = cap <= 2 * (size_t)REPLY_LINE_MAX ? realloc(rp.buf, cap) : NULL;
			if (!b) {
				fprintf(stderr, "pcpctl: reply line too long\n");
				rc = RC_UNREACHABLE;
				break;
			}
			rp.buf = b;
			rp.cap = cap;
		}
		ssize_t got = n < 0 ? -1 : recv(fd, rp.buf + rp.len, rp.cap - rp.len, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			fprintf(stderr, "pcpctl: pcpd closed the connection before the reply ended\n");
			rc = RC_UNREACHABLE;
			break;
		}
		rp.len += (size_t)got;
		size_t off = 0;
		char *nl;
		while (rc < 0 && (nl = memchr(rp.buf + off, '\n', rp.len - off))) {
			size_t ll = (size_t)(nl - (rp.buf + off));
			if (ll)
				rc = reply_line(r, rp.buf + off, ll);
			off += ll + 1;
		}
		memmove(rp.buf, rp.buf + off, rp.len - off);
		rp.len -= off;
	}
	free(rp.buf);
	return rc;
}

static const struct verb *find_verb(int argc, char **argv, int *used)
{
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		const struct verb *v = &verbs[i];
		if (strcmp(argv[0], v->w1) != 0)
			continue;
		if (!v->w2) {
			*used = 1;
			return v;
		}
		if (argc > 1 && strcmp(argv[1], v->w2) == 0) {
			*used = 2;
			return v;
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *sock = NULL;
	bool json = false;
	unsigned long timeout = 30;
	int opt;
	while ((opt = getopt(argc, argv, "+s:jt:hV")) != -1) {
		switch (opt) {
		case 's': sock = optarg; break;
		case 'j': json = true; break;
		case 't':
			if (!number(optarg, 86400, &timeout)) {
				usage(stderr);
				return RC_USAGE;
			}
			break;
		case 'h': usage(stdout); return RC_OK;
		case 'V': printf("pcpctl %s (protocol %d)\n", PCPD_VERSION, CTL_PROTO_VERSION); return RC_OK;
		default: usage(stderr); return RC_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	int used = 0;
	const struct verb *v = argc ? find_verb(argc, argv, &used) : NULL;
	json_object *req = json_object_new_object(), *args = json_object_new_object();
	if (!v || v->args(args, argc - used, argv + used) < 0) {
		if (v)
			fprintf(stderr, "usage: pcpctl [-s SOCKET] [-j] %s%s%s%s\n", v->w1,
				v->w2 ? " " : "", v->w2 ? v->w2 : "", v->usage);
		else
			usage(stderr);
		json_object_put(req);
		json_object_put(args);
		return RC_USAGE;
	}
	json_object_object_add(req, "v", json_object_new_int(CTL_PROTO_VERSION));
	json_object_object_add(req, "cmd", json_object_new_string(v->cmd));
	json_object_object_add(req, "args", args);

	if (!sock)
		sock = access(CTL_DEFAULT_ADMIN_PATH, W_OK) == 0 ? CTL_DEFAULT_ADMIN_PATH
								  : CTL_DEFAULT_MONITOR_PATH;
	int fd = connect_to(sock);
	if (fd < 0) {
		json_object_put(req);
		return RC_UNREACHABLE;
	}
	size_t n = 0;
	const char *s = json_object_to_json_string_length(
		req, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
	int rc;
	if (send_all(fd, s, n) < 0 || send_all(fd, "\n", 1) < 0) {
		fprintf(stderr, "pcpctl: cannot send to %s: %s\n", sock, strerror(errno));
		rc = RC_UNREACHABLE;
	} else {
		struct render r = { .ops = json ? &json_ops : v->force ? v->force : &text_ops };
		r.cols = v->cols;
		while (r.cols && r.cols[r.ncols].head)
			r.ncols++;
		rc = read_reply(fd, &r, (int)timeout);
		if (r.cells) {                /* the reply broke off mid-table */
			for (size_t k = 0; k < r.nrows * r.ncols; k++)
				free(r.cells[k]);
			free(r.cells);
		}
	}
	close(fd);
	json_object_put(req);
	if (fflush(stdout) != 0 && rc == RC_OK)
		rc = RC_ERROR;
	return rc;
}
