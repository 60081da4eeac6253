/* pcpd.conf loader. libconfuse does the syntax; a callback on every key
 * checks each value as it is read, so its message carries the value's own
 * line; checks that span keys run after the parse, using the lines the
 * callbacks recorded. Any error rejects the whole file. */
#include "pcpd/config.h"
#include "pcpd/config_int.h"

#include <confuse.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>

#include "aftr/backend.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE_SIZE (16u << 20)
#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

/* ---- parse context: where messages go, which line each value came from */

struct line_rec {
	const void *key;                 /* cfg_opt_t (a key) or cfg_t (a section) */
	unsigned idx;
	int line;
	size_t next;                     /* hash chain, index + 1 */
};

struct pctx {
	const char *name;
	FILE *err;
	unsigned nerr;
	bool parsing;                    /* false while cfg_init() sets defaults */
	struct line_rec *recs;
	size_t nrecs, cap;
	size_t *heads;                   /* nbuckets == cap */
};

/* libconfuse's lexer is global state: one parse at a time, and its
 * callbacks find the context here. */
static pthread_mutex_t parse_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pctx *ctx;

/* Messages echo file text: control bytes become '?' so they cannot forge
 * log lines. */
static void vreport(int line, const char *fmt, va_list ap)
{
	char msg[512];
	ctx->nerr++;
	if (!ctx->err)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	fprintf(ctx->err, "%s:%d: %s\n", ctx->name, line, msg);
}

void report(int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(line, fmt, ap);
	va_end(ap);
}

/* libconfuse's own words for the messages a user can provoke most */
static const char *const cfg_words[][2] = {
	{ "no such option '%s'", "unknown key or section '%s'" },
	{ "found duplicate title '%s'", "duplicate subscriber name '%s'" },
};

static void on_cfg_error(cfg_t *cfg, const char *fmt, va_list ap)
{
	for (size_t i = 0; i < sizeof(cfg_words) / sizeof(cfg_words[0]); i++)
		if (strcmp(fmt, cfg_words[i][0]) == 0)
			fmt = cfg_words[i][1];
	if (cfg && cfg->name && strcmp(cfg->name, "ddns") == 0 && strcmp(fmt, cfg_words[1][1]) == 0)
		fmt = "duplicate provider or binding name '%s'";
	vreport(cfg ? cfg->line : 0, fmt, ap);
}

/* For value callbacks: report at the current line, make libconfuse stop. */
int fail(cfg_t *cfg, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(cfg->line, fmt, ap);
	va_end(ap);
	return -1;
}

static size_t rec_hash(const void *key, unsigned idx, size_t nb)
{
	return (((uintptr_t)key >> 4) * 2654435761u ^ idx * 40503u) & (nb - 1);
}

static bool rec_grow(void)
{
	size_t cap = ctx->cap ? ctx->cap * 2 : 256;
	struct line_rec *r = realloc(ctx->recs, cap * sizeof(*r));
	if (!r)
		return false;
	ctx->recs = r;
	size_t *h = calloc(cap, sizeof(*h));
	if (!h)
		return false;
	free(ctx->heads);
	ctx->heads = h;
	ctx->cap = cap;
	for (size_t i = 0; i < ctx->nrecs; i++) {
		size_t b = rec_hash(r[i].key, r[i].idx, cap);
		r[i].next = h[b];
		h[b] = i + 1;
	}
	return true;
}

/* Lines are only for messages: when memory is short they are lost, not the parse. */
void rec_add(const void *key, unsigned idx, int line)
{
	if (!ctx->parsing || (ctx->nrecs == ctx->cap && !rec_grow()))
		return;
	size_t b = rec_hash(key, idx, ctx->cap);
	ctx->recs[ctx->nrecs] = (struct line_rec){ key, idx, line, ctx->heads[b] };
	ctx->heads[b] = ++ctx->nrecs;
}

/* The latest line recorded for key/idx, 0 if none. */
int rec_find(const void *key, unsigned idx)
{
	if (!ctx->cap || !key)
		return 0;
	for (size_t i = ctx->heads[rec_hash(key, idx, ctx->cap)]; i; i = ctx->recs[i - 1].next)
		if (ctx->recs[i - 1].key == key && ctx->recs[i - 1].idx == idx)
			return ctx->recs[i - 1].line;
	return 0;
}

static unsigned val_index(const cfg_opt_t *opt)
{
	return (opt->flags & CFGF_LIST) && opt->nvalues ? opt->nvalues - 1 : 0;
}

/* Records where a value came from; a key given twice is an error
 * (libconfuse would silently keep the last). "+=" appends to a list. */
bool note_value(cfg_t *cfg, cfg_opt_t *opt)
{
	unsigned idx = val_index(opt);
	int first = idx == 0 ? rec_find(opt, 0) : 0;
	if (ctx->parsing && first) {
		fail(cfg, "duplicate key '%s' (first set on line %d)", opt->name, first);
		return false;
	}
	rec_add(opt, idx, cfg->line);
	return true;
}

/* Line of a key's value (idx-th list entry), else the section's last line
 * (libconfuse keeps no other line for a section). */
int opt_line(cfg_t *sec, const char *name, unsigned idx)
{
	int line = rec_find(cfg_getopt(sec, name), idx);
	return line ? line : sec->line;
}

static int line_max(cfg_t *sec, const char *k1, const char *k2)
{
	int a = rec_find(cfg_getopt(sec, k1), 0), b = rec_find(cfg_getopt(sec, k2), 0);
	return a || b ? (a > b ? a : b) : sec->line;
}

int sec_line(cfg_t *sec)
{
	int line = rec_find(sec, SEC_MARK);
	return line ? line : sec->line;
}

/* ---- pre-scan: libconfuse 3.3 miscounts lines after comments, accepts
 * a file that ends inside a section, and skips stray '*' and '+'. This
 * pass follows its token rules far enough to blank comments out (line
 * breaks stay, so lines count right) and to refuse the rest. */

static size_t word_len(const char *s)
{
	size_t n = 0;
	while (s[n] && !strchr(" #\"'\t\n\r={}()+,*", s[n]))
		n++;
	return n;
}

/* Blanks s[i..end) except line breaks; returns end. */
static size_t blank(char *s, size_t i, size_t end, int *line)
{
	for (; i < end; i++) {
		if (s[i] == '\n')
			(*line)++;
		else
			s[i] = ' ';
	}
	return end;
}

/* Returns the index after the closing quote, 0 if the string never ends. */
static size_t skip_string(const char *s, size_t i, int *line)
{
	char q = s[i++];
	while (s[i] && s[i] != q) {
		if (s[i] == '\\' && s[i + 1])
			i++;
		if (s[i] == '\n')
			(*line)++;
		i++;
	}
	return s[i] ? i + 1 : 0;
}

static bool prescan(char *s)
{
	int line = 1, open[16], depth = 0;
	size_t i = 0;
	while (s[i]) {
		char ch = s[i];
		size_t n = word_len(s + i), slashes = strspn(s + i, "/");
		if (ch == '\n') {
			line++;
			i++;
		} else if (strchr(" \t\r=,()", ch) || (ch == '+' && s[i + 1] == '=')) {
			i += ch == '+' ? 2 : 1;
		} else if (ch == '#' || (slashes >= 2 && slashes == n)) {
			i = blank(s, i, i + strcspn(s + i, "\n"), &line);
		} else if (ch == '/' && s[i + 1] == '*') {
			const char *end = strstr(s + i + 2, "*/");
			if (!end) {
				report(line, "unterminated comment");
				return false;
			}
			i = blank(s, i, (size_t)(end + 2 - s), &line);
		} else if (ch == '{' || ch == '}') {
			if (ch == '}' && depth == 0)
				return true;     /* libconfuse reports the stray brace */
			if (ch == '{' && depth < 16)
				open[depth] = line;
			depth += ch == '{' ? 1 : -1;
			i++;
		} else if (ch == '"' || ch == '\'') {
			int start = line;
			i = skip_string(s, i, &line);
			if (!i) {
				report(start, "unterminated string");
				return false;
			}
		} else if (ch == '$' && s[i + 1] == '{' && strchr(s + i, '}')) {
			for (; s[i] != '}'; i++)   /* ${VAR}: environment, one token */
				line += s[i] == '\n';
			i++;
		} else if (n) {
			i += n;
		} else {
			report(line, "unexpected character '%c'", ch);
			return false;
		}
	}
	if (depth > 0) {
		report(open[(depth < 16 ? depth : 16) - 1],
		       "section opened here is not closed (missing '}')");
		return false;
	}
	return true;
}

/* ---- values ---- */

struct range {
	const char *name;
	unsigned long min, max;
};

static const struct range int_ranges[] = {
	{ "port", 1, 65535 },
	{ "workers", 0, 64 },
	{ "min-lifetime", 1, UINT32_MAX },
	{ "max-lifetime", 1, UINT32_MAX },
	{ "max-filters", 1, 32 },
	{ "port-min", 1024, 65535 },
	{ "ports-per-subscriber", 1, 65536 - 1024 },
	{ "pcp-ports", 1, 65536 - 1024 },
	{ "subscriber-prefix-length", 1, 128 },
	{ "max-mappings", 1, UINT32_MAX },
	{ "rate-limit", 0, UINT32_MAX },
	{ "rate-burst", 1, UINT32_MAX },
	{ "hold-down", 0, 86400 },
	{ "index", 0, UINT32_MAX },
	{ "debounce-ms", 0, 3600000 },
	{ "queue-size", 16, 1u << 24 },
	{ "startup-grace", 0, 86400 },
	{ "ttl", 1, 86400 },
	{ "timeout-ms", 100, 600000 },
	{ "rate-per-second", 0, 100000 },
	{ "rate-per-hour", 0, 100000000 },
	{ "backoff-min-ms", 10, 3600000 },
	{ "backoff-max-ms", 10, 86400000 },
};

struct choice {
	const char *name;
	const char *const *values;
};

static const char *const backends[] = { "memory", "nftables", NULL };
static const char *const log_targets[] = { "stderr", "syslog", NULL };
/* in syslog order, from LOG_ERR */
static const char *const log_levels[] = { "err", "warning", "notice", "info", "debug", NULL };

static const struct choice choices[] = {
	{ "backend", backends },
	{ "log", log_targets },
	{ "log-level", log_levels },
};

static int choice_index(const char *const *values, const char *v)
{
	for (int i = 0; values[i]; i++)
		if (strcmp(values[i], v) == 0)
			return i;
	return -1;
}

/* Strict prefix of the asked family: decimal length, no host bits, no
 * IPv4-mapped IPv6. Returns why not, or NULL. */
static const char *parse_prefix(const char *s, bool v6, struct prefix *p)
{
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	char a[ADDR_STRLEN];
	struct in6_addr full;
	if ((memchr(s, ':', alen) != NULL) != v6)
		return v6 ? "not an IPv6 prefix" : "not an IPv4 prefix";
	if (slash && (!slash[1] || strlen(slash + 1) > 3 ||
		      strspn(slash + 1, "0123456789") != strlen(slash + 1)))
		return "invalid prefix length";
	if (alen >= sizeof(a) || !prefix_parse(s, p))
		return "invalid prefix";
	memcpy(a, s, alen);
	a[alen] = '\0';
	if (!addr_parse(a, &full) || !addr_equal(&full, &p->addr))
		return "host bits set after the prefix length";
	if (v6 && addr_is_v4mapped(&p->addr) && p->plen >= 96)
		return "IPv4-mapped addresses are not allowed";
	return NULL;
}

static bool parse_v4(const char *s, uint32_t *v4)
{
	struct in6_addr a;
	if (strchr(s, ':') || !addr_parse(s, &a))
		return false;
	*v4 = addr_to_v4(&a);
	return true;
}

static bool v4_overlap(uint32_t a1, uint32_t a2, uint32_t b1, uint32_t b2)
{
	return a1 <= b2 && b1 <= a2;
}

/* "a.b.c.d", "a.b.c.d-e.f.g.h" or "a.b.c.d/len". Returns why not, or NULL. */
static const char *parse_pool(const char *s, struct aftr_pool_range *r)
{
	char first[ADDR_STRLEN];
	const char *dash = strchr(s, '-');
	if (strchr(s, '/')) {
		struct prefix p;
		const char *why = parse_prefix(s, false, &p);
		if (why)
			return why;
		r->first = addr_to_v4(&p.addr);
		r->last = r->first | (p.plen == 96 ? UINT32_MAX : UINT32_MAX >> (p.plen - 96));
	} else if (dash) {
		if ((size_t)(dash - s) >= sizeof(first))
			return "invalid address range";
		memcpy(first, s, (size_t)(dash - s));
		first[dash - s] = '\0';
		if (!parse_v4(first, &r->first) || !parse_v4(dash + 1, &r->last))
			return "invalid IPv4 address range";
		if (r->last < r->first)
			return "range ends before it starts";
	} else {
		if (!parse_v4(s, &r->first))
			return "invalid IPv4 address";
		r->last = r->first;
	}
	/* 0/8, loopback, multicast and above can never be a public address */
	if (v4_overlap(r->first, r->last, 0, 0x00ffffff) ||
	    v4_overlap(r->first, r->last, 0x7f000000, 0x7fffffff) ||
	    r->last >= 0xe0000000)
		return "contains addresses that cannot be public (0/8, 127/8, 224/3)";
	return NULL;
}

static bool prefix_overlap(const struct prefix *a, const struct prefix *b)
{
	return prefix_contains(a, &b->addr) || prefix_contains(b, &a->addr);
}

static bool valid_ifname(const char *s)
{
	size_t n = strlen(s);
	return n >= 1 && n < IF_NAMESIZE && strspn(s, NAME_CHARS) == n &&
	       strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static bool valid_sub_name(const char *s)
{
	size_t n = strlen(s);
	return n >= 1 && n < AFTR_SUB_NAME_MAX && strspn(s, NAME_CHARS) == n;
}

/* ---- value callbacks (libconfuse parsecb) ---- */

int cb_uint(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *res)
{
	unsigned long min = 0, max = UINT32_MAX;
	for (size_t i = 0; i < sizeof(int_ranges) / sizeof(int_ranges[0]); i++)
		if (strcmp(int_ranges[i].name, opt->name) == 0) {
			min = int_ranges[i].min;
			max = int_ranges[i].max;
		}
	if (!note_value(cfg, opt))
		return -1;
	/* decimal only: strtol's base 0 would read "010" as octal */
	size_t n = strspn(v, "0123456789");
	if (n == 0 || v[n])
		return fail(cfg, "%s: expected a decimal number, not '%s'", opt->name, v);
	unsigned long x = n > 10 ? ULONG_MAX : strtoul(v, NULL, 10);
	if (x < min || x > max)
		return fail(cfg, "%s: %s is out of range %lu..%lu", opt->name, v, min, max);
	*(long *)res = (long)x;
	return 0;
}

int cb_bool(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *res)
{
	if (!note_value(cfg, opt))
		return -1;
	int b = cfg_parse_boolean(v);
	if (b < 0)
		return fail(cfg, "%s: expected true or false, not '%s'", opt->name, v);
	*(int *)res = b;
	return 0;
}

static int cb_choice(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *res)
{
	if (!note_value(cfg, opt))
		return -1;
	for (size_t i = 0; i < sizeof(choices) / sizeof(choices[0]); i++) {
		if (strcmp(choices[i].name, opt->name) != 0 || choice_index(choices[i].values, v) >= 0)
			continue;
		char list[96] = "";
		for (const char *const *c = choices[i].values; *c; c++)
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
				 c == choices[i].values ? "" : ", ", *c);
		return fail(cfg, "%s: '%s' is not one of: %s", opt->name, v, list);
	}
	*(const char **)res = v;
	return 0;
}

static int cb_state_dir(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *res)
{
	if (!note_value(cfg, opt))
		return -1;
	size_t n = strlen(v);
	if (v[0] != '/' || n >= sizeof(((struct pcpd_config *)0)->state_dir))
		return fail(cfg, "%s: '%s' is not an absolute path of at most 255 bytes",
			    opt->name, v);
	for (size_t i = 0; i < n; i++)   /* printable, and prints back without escapes */
		if (v[i] < 0x20 || v[i] > 0x7e || strchr("\"'\\$", v[i]))
			return fail(cfg, "%s: character 0x%02x is not allowed", opt->name,
				    (unsigned char)v[i]);
	*(const char **)res = v;
	return 0;
}

/* Names that end up in the kernel or in /etc/group: a safe alphabet. */
static int cb_ident(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *res)
{
	if (!note_value(cfg, opt))
		return -1;
	size_t n = strlen(v);
	if (n == 0 || n > 32)
		return fail(cfg, "%s: '%s' must be 1 to 32 characters", opt->name, v);
	for (size_t i = 0; i < n; i++)
		if (!((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z') ||
		      (v[i] >= '0' && v[i] <= '9') || v[i] == '_' || v[i] == '-'))
			return fail(cfg, "%s: character '%c' is not allowed (letters, digits, _ and -)",
				    opt->name, v[i]);
	*(const char **)res = v;
	return 0;
}

static int cb_group(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *res)
{
	if (v[0] == '\0') {          /* none: root only */
		if (!note_value(cfg, opt))
			return -1;
		*(const char **)res = v;
		return 0;
	}
	return cb_ident(cfg, opt, v, res);
}

static int cb_sock_path(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *res)
{
	if (!note_value(cfg, opt))
		return -1;
	size_t n = strlen(v);
	if (v[0] != '/' || n >= sizeof(((struct pcpd_config *)0)->ctl_socket))
		return fail(cfg, "%s: '%s' is not an absolute path of at most 107 bytes",
			    opt->name, v);
	for (size_t i = 0; i < n; i++)
		if (v[i] < 0x20 || v[i] > 0x7e || strchr("\"'\\$", v[i]))
			return fail(cfg, "%s: character 0x%02x is not allowed", opt->name,
				    (unsigned char)v[i]);
	*(const char **)res = v;
	return 0;
}

static int cb_listen(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *res)
{
	unsigned idx = val_index(opt);
	struct in6_addr a, b;
	if (!note_value(cfg, opt))
		return -1;
	if (idx >= PCPD_MAX_LISTEN)
		return fail(cfg, "listen: too many addresses (at most %d)", PCPD_MAX_LISTEN);
	if (!addr_parse(v, &a))
		return fail(cfg, "listen: invalid address '%s'", v);
	for (unsigned i = 0; i < idx; i++)
		if (addr_parse(opt->values[i]->string, &b) && addr_equal(&a, &b))
			return fail(cfg, "listen: duplicate address '%s'", v);
	*(const char **)res = v;
	return 0;
}

static int cb_pool(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *res)
{
	unsigned idx = val_index(opt);
	struct aftr_pool_range r, q;
	if (!note_value(cfg, opt))
		return -1;
	if (idx >= AFTR_MAX_POOL)
		return fail(cfg, "pool: too many entries (at most %d)", AFTR_MAX_POOL);
	const char *why = parse_pool(v, &r);
	if (why)
		return fail(cfg, "pool: '%s': %s", v, why);
	for (unsigned i = 0; i < idx; i++)
		if (!parse_pool(opt->values[i]->string, &q) &&
		    v4_overlap(r.first, r.last, q.first, q.last))
			return fail(cfg, "pool: '%s' overlaps '%s'", v, opt->values[i]->string);
	*(const char **)res = v;
	return 0;
}

static int cb_b4_prefix(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *res)
{
	unsigned idx = val_index(opt);
	struct prefix p, q;
	if (!note_value(cfg, opt))
		return -1;
	if (idx >= AFTR_MAX_B4_PREFIXES)
		return fail(cfg, "b4-prefixes: too many entries (at most %d)", AFTR_MAX_B4_PREFIXES);
	const char *why = parse_prefix(v, true, &p);
	if (why)
		return fail(cfg, "b4-prefixes: '%s': %s", v, why);
	for (unsigned i = 0; i < idx; i++)
		if (!parse_prefix(opt->values[i]->string, true, &q) && prefix_overlap(&p, &q))
			return fail(cfg, "b4-prefixes: '%s' overlaps '%s'", v, opt->values[i]->string);
	*(const char **)res = v;
	return 0;
}

static int cb_internal(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *res)
{
	struct prefix p;
	if (!note_value(cfg, opt))
		return -1;
	if (val_index(opt) >= AFTR_MAX_INTERNAL)
		return fail(cfg, "internal-prefixes: too many entries (at most %d)", AFTR_MAX_INTERNAL);
	const char *why = parse_prefix(v, false, &p);
	if (why)
		return fail(cfg, "internal-prefixes: '%s': %s", v, why);
	*(const char **)res = v;
	return 0;
}

static int cb_sub_b4(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *res)
{
	struct prefix p;
	if (!note_value(cfg, opt))
		return -1;
	const char *why = parse_prefix(v, true, &p);
	if (why)
		return fail(cfg, "b4: '%s': %s", v, why);
	if (p.plen == 0)
		return fail(cfg, "b4: '%s': prefix length must be at least 1", v);
	*(const char **)res = v;
	return 0;
}

static int cb_ifname(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *res)
{
	if (!note_value(cfg, opt))
		return -1;
	if (!valid_ifname(v))
		return fail(cfg, "interface: '%s' is not an interface name ([A-Za-z0-9._-], "
			    "at most %d characters)", v, IF_NAMESIZE - 1);
	*(const char **)res = v;
	return 0;
}

/* Runs when a subscriber section opens (its defaults are set then). */
int cb_secline(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *res)
{
	(void)opt;
	rec_add(cfg, SEC_MARK, cfg->line);
	*(const char **)res = v;
	return 0;
}

/* server and aftr may appear once (libconfuse would merge repeats). */
int on_section_end(cfg_t *cfg, cfg_opt_t *opt)
{
	int first = rec_find(opt, SEC_MARK);
	if (first) {
		fail(cfg, "duplicate section '%s' (first one ends on line %d)", opt->name, first);
		return -1;
	}
	rec_add(opt, SEC_MARK, cfg->line);
	return 0;
}

/* ---- schema: the one place defaults live ---- */

static cfg_opt_t sub_opts[] = {
	CFG_STR_LIST_CB(SECLINE_OPT, "{x}", CFGF_NONE, cb_secline),
	CFG_STR_CB("b4", NULL, CFGF_NODEFAULT, cb_sub_b4),
	CFG_STR_CB("interface", NULL, CFGF_NODEFAULT, cb_ifname),
	CFG_INT_CB("index", 0, CFGF_NODEFAULT, cb_uint),
	CFG_END()
};

static cfg_opt_t server_opts[] = {
	CFG_STR_LIST_CB("listen", "{\"::1\", \"127.0.0.1\"}", CFGF_NONE, cb_listen),
	CFG_INT_CB("port", 5351, CFGF_NONE, cb_uint),
	CFG_INT_CB("workers", 0, CFGF_NONE, cb_uint),
	CFG_BOOL_CB("map", cfg_true, CFGF_NONE, cb_bool),
	CFG_BOOL_CB("peer", cfg_true, CFGF_NONE, cb_bool),
	CFG_BOOL_CB("nat-pmp", cfg_true, CFGF_NONE, cb_bool),
	CFG_BOOL_CB("third-party", cfg_true, CFGF_NONE, cb_bool),
	CFG_INT_CB("min-lifetime", 120, CFGF_NONE, cb_uint),
	CFG_INT_CB("max-lifetime", 86400, CFGF_NONE, cb_uint),
	CFG_INT_CB("max-filters", 8, CFGF_NONE, cb_uint),
	CFG_STR_CB("backend", "memory", CFGF_NONE, cb_choice),
	CFG_STR_CB("nft-table", "pcpd", CFGF_NONE, cb_ident),
	CFG_BOOL_CB("keep-table", cfg_true, CFGF_NONE, cb_bool),
	CFG_STR_CB("state-dir", "/var/lib/pcpd", CFGF_NONE, cb_state_dir),
	CFG_STR_CB("log", "stderr", CFGF_NONE, cb_choice),
	CFG_STR_CB("log-level", "info", CFGF_NONE, cb_choice),
	CFG_END()
};

static cfg_opt_t control_opts[] = {
	CFG_STR_CB("socket", "/run/pcpd/pcpd.sock", CFGF_NONE, cb_sock_path),
	CFG_STR_CB("monitor-socket", "/run/pcpd/pcpd-monitor.sock", CFGF_NONE, cb_sock_path),
	CFG_STR_CB("admin-group", "", CFGF_NONE, cb_group),
	CFG_END()
};

static cfg_opt_t aftr_opts[] = {
	CFG_STR_LIST_CB("pool", "{\"203.0.113.10\"}", CFGF_NONE, cb_pool),
	CFG_INT_CB("port-min", 1024, CFGF_NONE, cb_uint),
	CFG_INT_CB("ports-per-subscriber", 4096, CFGF_NONE, cb_uint),
	CFG_INT_CB("pcp-ports", 1024, CFGF_NONE, cb_uint),
	CFG_INT_CB("subscriber-prefix-length", 128, CFGF_NONE, cb_uint),
	CFG_STR_LIST_CB("b4-prefixes", 0, CFGF_NONE, cb_b4_prefix),
	CFG_STR_LIST_CB("internal-prefixes",
			"{\"10.0.0.0/8\", \"172.16.0.0/12\", \"192.168.0.0/16\", \"192.0.0.0/29\"}",
			CFGF_NONE, cb_internal),
	CFG_INT_CB("max-mappings", 64, CFGF_NONE, cb_uint),
	CFG_INT_CB("rate-limit", 20, CFGF_NONE, cb_uint),
	CFG_INT_CB("rate-burst", 40, CFGF_NONE, cb_uint),
	CFG_INT_CB("hold-down", 120, CFGF_NONE, cb_uint),
	CFG_SEC("subscriber", sub_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
	CFG_END()
};

static cfg_opt_t root_opts[] = {
	CFG_SEC("server", server_opts, CFGF_NONE),
	CFG_SEC("control", control_opts, CFGF_NONE),
	CFG_SEC("aftr", aftr_opts, CFGF_NONE),
	CFG_SEC("ddns", ddns_opts, CFGF_NONE),
	CFG_END()
};

/* ---- from the parsed tree to the struct (values already checked) ---- */

static unsigned u(cfg_t *sec, const char *name)
{
	return (unsigned)cfg_getint(sec, name);
}

static void get_server(cfg_t *s, struct pcpd_config *c)
{
	c->nlisten = cfg_size(s, "listen");
	for (unsigned i = 0; i < c->nlisten; i++)
		addr_parse(cfg_getnstr(s, "listen", i), &c->listen[i]);
	c->port = (uint16_t)u(s, "port");
	c->workers = u(s, "workers");
	c->enable_map = cfg_getbool(s, "map");
	c->enable_peer = cfg_getbool(s, "peer");
	c->enable_natpmp = cfg_getbool(s, "nat-pmp");
	c->enable_third_party = cfg_getbool(s, "third-party");
	c->min_lifetime = u(s, "min-lifetime");
	c->max_lifetime = u(s, "max-lifetime");
	c->max_filters = u(s, "max-filters");
	snprintf(c->backend, sizeof(c->backend), "%s", cfg_getstr(s, "backend"));
	snprintf(c->nft_table, sizeof(c->nft_table), "%s", cfg_getstr(s, "nft-table"));
	c->keep_table = cfg_getbool(s, "keep-table");
	snprintf(c->state_dir, sizeof(c->state_dir), "%s", cfg_getstr(s, "state-dir"));
	c->log_target = choice_index(log_targets, cfg_getstr(s, "log")) == 1 ? LOG_TO_SYSLOG
									    : LOG_TO_STDERR;
	c->log_level = LOG_ERR + choice_index(log_levels, cfg_getstr(s, "log-level"));
}

static void get_control(cfg_t *k, struct pcpd_config *c)
{
	snprintf(c->ctl_socket, sizeof(c->ctl_socket), "%s", cfg_getstr(k, "socket"));
	snprintf(c->ctl_monitor, sizeof(c->ctl_monitor), "%s", cfg_getstr(k, "monitor-socket"));
	snprintf(c->ctl_admin_group, sizeof(c->ctl_admin_group), "%s",
		 cfg_getstr(k, "admin-group"));
}

static bool get_aftr(cfg_t *a, struct aftr_config *c)
{
	c->npool = cfg_size(a, "pool");
	for (unsigned i = 0; i < c->npool; i++)
		parse_pool(cfg_getnstr(a, "pool", i), &c->pool[i]);
	c->port_min = (uint16_t)u(a, "port-min");
	c->ports_per_subscriber = (uint16_t)u(a, "ports-per-subscriber");
	c->pcp_ports = (uint16_t)u(a, "pcp-ports");
	c->subscriber_plen = (uint8_t)u(a, "subscriber-prefix-length");
	c->nb4 = cfg_size(a, "b4-prefixes");
	for (unsigned i = 0; i < c->nb4; i++)
		parse_prefix(cfg_getnstr(a, "b4-prefixes", i), true, &c->b4_prefixes[i]);
	c->ninternal = cfg_size(a, "internal-prefixes");
	for (unsigned i = 0; i < c->ninternal; i++)
		parse_prefix(cfg_getnstr(a, "internal-prefixes", i), false, &c->internal[i]);
	c->max_mappings = u(a, "max-mappings");
	c->rate_limit = u(a, "rate-limit");
	c->rate_burst = u(a, "rate-burst");
	c->hold_down = u(a, "hold-down");

	c->nsubs = cfg_size(a, "subscriber");
	if (!c->nsubs)
		return true;
	c->subs = calloc(c->nsubs, sizeof(*c->subs));
	if (!c->subs) {
		report(a->line, "out of memory");
		return false;
	}
	for (unsigned i = 0; i < c->nsubs; i++) {
		cfg_t *s = cfg_getnsec(a, "subscriber", i);
		struct aftr_sub_conf *sc = &c->subs[i];
		snprintf(sc->name, sizeof(sc->name), "%s", cfg_title(s));
		sc->has_b4 = cfg_size(s, "b4") > 0;
		if (sc->has_b4)
			parse_prefix(cfg_getstr(s, "b4"), true, &sc->b4);
		if (cfg_size(s, "interface"))
			snprintf(sc->ifname, sizeof(sc->ifname), "%s", cfg_getstr(s, "interface"));
		sc->index = u(s, "index");
	}
	return true;
}

/* ---- checks that span keys ---- */

static void check_server(cfg_t *s, const struct pcpd_config *c)
{
	if (c->nlisten == 0)
		report(s->line, "listen: at least one address is required");
	if (c->max_lifetime < c->min_lifetime)
		report(line_max(s, "min-lifetime", "max-lifetime"),
		       "max-lifetime (%u) must not be less than min-lifetime (%u)",
		       c->max_lifetime, c->min_lifetime);
}

/* False if the port layout is broken (capacity is meaningless then). */
static bool check_ports(cfg_t *a, const struct aftr_config *c)
{
	bool ok = true;
	if (c->npool == 0) {
		report(a->line, "pool: at least one address is required");
		ok = false;
	}
	if ((uint32_t)c->port_min + c->ports_per_subscriber > 65536) {
		report(line_max(a, "port-min", "ports-per-subscriber"),
		       "port-min (%u) + ports-per-subscriber (%u) exceeds 65536",
		       c->port_min, c->ports_per_subscriber);
		ok = false;
	}
	if (c->pcp_ports > c->ports_per_subscriber)
		report(line_max(a, "pcp-ports", "ports-per-subscriber"),
		       "pcp-ports (%u) must not exceed ports-per-subscriber (%u)",
		       c->pcp_ports, c->ports_per_subscriber);
	return ok;
}

static void check_b4_prefixes(cfg_t *a, const struct aftr_config *c)
{
	char buf[ADDR_STRLEN + 8];
	bool lengths_ok = true;
	for (unsigned k = 0; k < c->nb4; k++) {
		if (c->b4_prefixes[k].plen <= c->subscriber_plen)
			continue;
		report(opt_line(a, "b4-prefixes", k),
		       "b4-prefixes: %s is longer than subscriber-prefix-length (%u)",
		       prefix_str(&c->b4_prefixes[k], buf, sizeof(buf)), c->subscriber_plen);
		lengths_ok = false;
	}
	if (!lengths_ok)
		return;
	uint32_t cap = aftr_capacity(c), pool = aftr_pool_size(c);
	for (unsigned k = 0; k < c->nb4; k++) {
		uint64_t base = aftr_b4_range_base(c, k), size = aftr_b4_range_size(c, k);
		if (base + size <= cap)
			continue;
		report(opt_line(a, "b4-prefixes", k),
		       "b4-prefixes: %s needs indexes %llu..%llu (%llu subscribers of /%u) but "
		       "capacity is %u (pool size %u x %u blocks per address)",
		       prefix_str(&c->b4_prefixes[k], buf, sizeof(buf)), (unsigned long long)base,
		       (unsigned long long)(base + size - 1), (unsigned long long)size,
		       c->subscriber_plen, cap, pool, pool ? cap / pool : 0);
	}
}

struct sub_sort {
	const struct aftr_sub_conf *subs;
	int key;                         /* 0 index, 1 interface, 2 b4 */
};

/* Orders positions by the key, then by file order (so the later one is reported). */
static int cmp_pos(const void *pa, const void *pb, void *arg)
{
	const struct sub_sort *ss = arg;
	unsigned ia = *(const unsigned *)pa, ib = *(const unsigned *)pb;
	const struct aftr_sub_conf *a = &ss->subs[ia], *b = &ss->subs[ib];
	int r = 0;
	if (ss->key == 0)
		r = (a->index > b->index) - (a->index < b->index);
	else if (ss->key == 1)
		r = strcmp(a->ifname, b->ifname);
	else if ((r = memcmp(&a->b4.addr, &b->b4.addr, sizeof(a->b4.addr))) == 0)
		r = a->b4.plen - b->b4.plen;
	return r ? r : (ia > ib) - (ia < ib);
}

/* Sorted by address then length, an overlap always shows between neighbours. */
static void check_sub_unique(cfg_t *a, const struct aftr_config *c, unsigned *ord,
			     bool all_indexed)
{
	char buf[ADDR_STRLEN + 8];
	for (int key = all_indexed ? 0 : 1; key < 3; key++) {
		struct sub_sort ss = { c->subs, key };
		unsigned n = 0;
		for (unsigned i = 0; i < c->nsubs; i++)
			if (key == 0 || (key == 1 && c->subs[i].ifname[0]) || (key == 2 && c->subs[i].has_b4))
				ord[n++] = i;
		qsort_r(ord, n, sizeof(*ord), cmp_pos, &ss);
		for (unsigned j = 1; j < n; j++) {
			const struct aftr_sub_conf *p = &c->subs[ord[j - 1]], *s = &c->subs[ord[j]];
			cfg_t *sec = cfg_getnsec(a, "subscriber", ord[j]);
			if (key == 0 && p->index == s->index)
				report(opt_line(sec, "index", 0),
				       "subscriber '%s': index %u is already used by subscriber '%s'",
				       s->name, s->index, p->name);
			else if (key == 1 && strcmp(p->ifname, s->ifname) == 0)
				report(opt_line(sec, "interface", 0),
				       "subscriber '%s': interface %s is already used by subscriber '%s'",
				       s->name, s->ifname, p->name);
			else if (key == 2 && prefix_overlap(&p->b4, &s->b4))
				report(opt_line(sec, "b4", 0),
				       "subscriber '%s': b4 %s overlaps b4 of subscriber '%s'",
				       s->name, prefix_str(&s->b4, buf, sizeof(buf)), p->name);
		}
	}
}

static void check_subs(cfg_t *a, const struct aftr_config *c, bool have_capacity)
{
	char buf[ADDR_STRLEN + 8];
	uint32_t cap = aftr_capacity(c);
	bool all_indexed = true;
	for (unsigned i = 0; i < c->nsubs; i++) {
		cfg_t *sec = cfg_getnsec(a, "subscriber", i);
		const struct aftr_sub_conf *s = &c->subs[i];
		int line = sec_line(sec), iline = opt_line(sec, "index", 0);
		if (!valid_sub_name(s->name))
			report(line, "subscriber '%s': name must be 1..%d characters of [A-Za-z0-9._-]",
			       cfg_title(sec), AFTR_SUB_NAME_MAX - 1);
		if (!s->has_b4 && !s->ifname[0])
			report(line, "subscriber '%s': needs b4 or interface (or both)", s->name);
		if (cfg_size(sec, "index") == 0) {
			report(line, "subscriber '%s': index is required", s->name);
			all_indexed = false;
			continue;
		}
		if (!have_capacity)
			continue;
		if (s->index >= cap)
			report(iline, "subscriber '%s': index %u is beyond the capacity (%u subscribers)",
			       s->name, s->index, cap);
		for (unsigned k = 0; k < c->nb4; k++) {
			uint64_t base = aftr_b4_range_base(c, k), size = aftr_b4_range_size(c, k);
			if (s->index >= base && s->index < base + size)
				report(iline, "subscriber '%s': index %u lies in the range %llu..%llu "
				       "derived from b4-prefixes %s", s->name, s->index,
				       (unsigned long long)base, (unsigned long long)(base + size - 1),
				       prefix_str(&c->b4_prefixes[k], buf, sizeof(buf)));
		}
	}
	unsigned *ord = malloc((c->nsubs ? c->nsubs : 1) * sizeof(*ord));
	if (!ord) {
		report(a->line, "out of memory");
		return;
	}
	check_sub_unique(a, c, ord, all_indexed);
	free(ord);
}

static int cmp_sub_index(const void *pa, const void *pb)
{
	const struct aftr_sub_conf *a = pa, *b = pb;
	return (a->index > b->index) - (a->index < b->index);
}

/* The nftables data plane numbers things in 16 and 32 bits (conntrack
 * zones, conntrack marks): say so at load time, not at the first packet. */
static void check_kernel_limits(cfg_t *s, cfg_t *a, const struct pcpd_config *c)
{
	if (strcmp(c->backend, "nftables") != 0)
		return;
	if (aftr_pool_size(&c->aftr) > KMARK_MAX_POOL)
		report(line_max(a, "pool", "pool"), "pool: %u addresses; the nftables backend "
		       "supports at most %u (conntrack mark layout)", aftr_pool_size(&c->aftr),
		       KMARK_MAX_POOL);
	(void)s;
	for (unsigned i = 0; i < c->aftr.nsubs; i++)
		if (c->aftr.subs[i].index > KZONE_MAX_INDEX)
			report(opt_line(cfg_getnsec(a, "subscriber", i), "index", 0), "subscriber '%s': index %u has no conntrack zone; the "
			       "nftables backend serves indexes 0..%u", c->aftr.subs[i].name,
			       c->aftr.subs[i].index, KZONE_MAX_INDEX);
}

static struct pcpd_config *build(cfg_t *root)
{
	struct pcpd_config *c = calloc(1, sizeof(*c));
	cfg_t *s = cfg_getsec(root, "server"), *a = cfg_getsec(root, "aftr");
	cfg_t *k = cfg_getsec(root, "control");
	if (!c || !s || !a || !k) {
		report(root->line, "out of memory");
		free(c);
		return NULL;
	}
	get_server(s, c);
	get_control(k, c);
	if (strcmp(c->ctl_socket, c->ctl_monitor) == 0)
		report(line_max(k, "socket", "monitor-socket"), "socket and monitor-socket must differ");
	if (get_aftr(a, &c->aftr)) {
		check_server(s, c);
		bool ports_ok = check_ports(a, &c->aftr);
		if (ports_ok)
			check_b4_prefixes(a, &c->aftr);
		check_subs(a, &c->aftr, ports_ok);
		check_kernel_limits(s, a, c);
		get_ddns(root, c);
	}
	if (ctx->nerr) {
		pcpd_config_free(c);
		return NULL;
	}
	/* canonical order; indexes are unique by now */
	if (c->aftr.nsubs)
		qsort(c->aftr.subs, c->aftr.nsubs, sizeof(*c->aftr.subs), cmp_sub_index);
	return c;
}

/* ---- entry points ---- */

struct pcpd_config *pcpd_config_load_buf(const char *buf, const char *name, FILE *err)
{
	struct pctx x = { .name = name ? name : "(config)", .err = err };
	struct pcpd_config *c = NULL;
	char *text = buf ? strdup(buf) : NULL;

	pthread_mutex_lock(&parse_lock);
	ctx = &x;
	if (!text) {
		report(0, buf ? "out of memory" : "no configuration text");
	} else if (prescan(text)) {
		cfg_t *root = cfg_init(root_opts, CFGF_NONE);
		if (root) {
			cfg_set_error_function(root, on_cfg_error);
			cfg_set_validate_func(root, "server", on_section_end);
			cfg_set_validate_func(root, "aftr", on_section_end);
			cfg_set_validate_func(root, "control", on_section_end);
			cfg_set_validate_func(root, "ddns", on_section_end);
			x.parsing = true;
			int rc = cfg_parse_buf(root, text);
			x.parsing = false;
			if (rc != CFG_SUCCESS && x.nerr == 0)
				report(root->line, "syntax error");
			if (x.nerr == 0)
				c = build(root);
			cfg_free(root);    /* also resets the lexer for the next parse */
		} else {
			report(0, "out of memory");
		}
	}
	ctx = NULL;
	pthread_mutex_unlock(&parse_lock);
	free(x.recs);
	free(x.heads);
	free(text);
	return c;
}

/* Whole file into a NUL-terminated buffer; NULL with *why set on failure. */
static char *read_all(FILE *f, size_t *len, const char **why)
{
	size_t cap = 4096;
	char *buf = NULL;
	*len = 0;
	for (;;) {
		char *nb = realloc(buf, cap);
		if (!nb) {
			*why = "out of memory";
			break;
		}
		buf = nb;
		*len += fread(buf + *len, 1, cap - 1 - *len, f);
		if (ferror(f)) {
			*why = strerror(errno);
			break;
		}
		if (*len < cap - 1) {
			buf[*len] = '\0';
			return buf;
		}
		if (cap >= MAX_FILE_SIZE) {
			*why = "file too large";
			break;
		}
		cap *= 2;
	}
	free(buf);
	return NULL;
}

struct pcpd_config *pcpd_config_load(const char *path, FILE *err)
{
	const char *why = NULL;
	size_t len;
	FILE *f = fopen(path, "r");
	if (!f) {
		if (err)
			fprintf(err, "%s: cannot open: %s\n", path, strerror(errno));
		return NULL;
	}
	char *buf = read_all(f, &len, &why);
	fclose(f);
	if (!buf) {
		if (err)
			fprintf(err, "%s: cannot read: %s\n", path, why);
		return NULL;
	}
	const char *nul = memchr(buf, '\0', len);
	struct pcpd_config *c = NULL;
	if (nul) {
		int line = 1;
		for (const char *p = buf; p < nul; p++)
			line += *p == '\n';
		if (err)
			fprintf(err, "%s:%d: NUL byte in file\n", path, line);
	} else {
		c = pcpd_config_load_buf(buf, path, err);
	}
	free(buf);
	return c;
}

void pcpd_config_free(struct pcpd_config *c)
{
	if (!c)
		return;
	free(c->aftr.subs);
	free(c->ddns.bindings);
	free(c);
}
