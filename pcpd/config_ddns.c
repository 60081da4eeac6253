/* The ddns { } section: providers and bindings of the DDNS hook. Values
 * are checked as they are read (their own line in messages); which keys
 * a provider type takes, and what bindings refer to, after the parse. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcpd/config_int.h"

static int cb_ptype(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *res)
{
	enum ddns_ptype t;
	if (!note_value(cfg, opt))
		return -1;
	if (!ddns_ptype_parse(v, &t))
		return fail(cfg, "type: '%s' is not one of: rfc2136, dyndns2, webhook, exec", v);
	*(const char **)res = v;
	return 0;
}

static int cb_alg(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *res)
{
	if (!note_value(cfg, opt))
		return -1;
	/* RFC 8945 §6: HMAC-MD5 must not be used; SHA-1 is not recommended */
	if (strcmp(v, "hmac-sha256") && strcmp(v, "hmac-sha512"))
		return fail(cfg, "key-algorithm: '%s' is not one of: hmac-sha256, hmac-sha512", v);
	*(const char **)res = v;
	return 0;
}

static int cb_addr(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *res)
{
	struct in6_addr a;
	if (!note_value(cfg, opt))
		return -1;
	if (!addr_parse(v, &a))
		return fail(cfg, "%s: '%s' is not an IP address", opt->name, v);
	*(const char **)res = v;
	return 0;
}

static bool printable(const char *v)
{
	for (; *v; v++)
		if ((unsigned char)*v < 0x20 || *v == 0x7f)
			return false;
	return true;
}

struct str_rule {
	const char *key;
	size_t max;                      /* longest value */
	enum { ANY, PATH, DNAME, URL } kind;
};

static const struct str_rule str_rules[] = {
	{ "zone", DDNS_NAME_MAX, DNAME },
	{ "key-name", DDNS_NAME_MAX, DNAME },
	{ "key-file", DDNS_PATH_MAX - 1, PATH },
	{ "credentials-file", DDNS_PATH_MAX - 1, PATH },
	{ "hmac-key-file", DDNS_PATH_MAX - 1, PATH },
	{ "ca-file", DDNS_PATH_MAX - 1, PATH },
	{ "command", DDNS_PATH_MAX - 1, PATH },
	{ "url", DDNS_URL_MAX - 1, URL },
	{ "user-agent", 127, ANY },
	{ "args", 127, ANY },
	{ "provider", DDNS_ID_MAX - 1, ANY },
	{ "subscriber", DDNS_ID_MAX - 1, ANY },
	{ "txt", DDNS_TXT_MAX, ANY },
};

static int cb_str(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *res)
{
	if (!note_value(cfg, opt))
		return -1;
	const struct str_rule *r = NULL;
	for (size_t i = 0; i < sizeof(str_rules) / sizeof(str_rules[0]); i++)
		if (!strcmp(str_rules[i].key, opt->name))
			r = &str_rules[i];
	size_t n = strlen(v);
	if (!r || n > r->max)
		return fail(cfg, "%s: longer than %zu characters", opt->name, r ? r->max : 0);
	if (!printable(v))
		return fail(cfg, "%s: control characters are not allowed", opt->name);
	if (r->kind == PATH && v[0] != '/')
		return fail(cfg, "%s: '%s' is not an absolute path", opt->name, v);
	if (r->kind == URL && strncmp(v, "https://", 8) && strncmp(v, "http://", 7))
		return fail(cfg, "%s: '%s' is not an http:// or https:// URL", opt->name, v);
	if (r->kind == DNAME && (!n || strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._") != n ||
				 strstr(v, "..") || v[0] == '.'))
		return fail(cfg, "%s: '%s' is not a domain name", opt->name, v);
	*(const char **)res = v;
	return 0;
}

static int cb_srv(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *res)
{
	struct ddns_srv_conf s;
	if (!note_value(cfg, opt))
		return -1;
	const char *m = ddns_srv_parse(v, &s);
	if (m)
		return fail(cfg, "srv: '%s': %s", v, m);
	*(const char **)res = v;
	return 0;
}

static int cb_subs(cfg_t *cfg, cfg_opt_t *opt, const char *v, void *res)
{
	struct prefix p;
	if (!note_value(cfg, opt))
		return -1;
	if (!prefix_parse(v, &p) || addr_is_v4mapped(&p.addr) || !p.plen)
		return fail(cfg, "subscribers: '%s' is not an IPv6 prefix", v);
	*(const char **)res = v;
	return 0;
}

/* ---- schema ---- */

static cfg_opt_t provider_opts[] = {
	CFG_STR_LIST_CB(SECLINE_OPT, "{x}", CFGF_NONE, cb_secline),
	CFG_STR_CB("type", NULL, CFGF_NODEFAULT, cb_ptype),
	CFG_STR_CB("server", NULL, CFGF_NODEFAULT, cb_addr),
	CFG_INT_CB("port", 53, CFGF_NONE, cb_uint),
	CFG_STR_CB("zone", NULL, CFGF_NODEFAULT, cb_str),
	CFG_STR_CB("key-name", NULL, CFGF_NODEFAULT, cb_str),
	CFG_STR_CB("key-algorithm", "hmac-sha256", CFGF_NONE, cb_alg),
	CFG_STR_CB("key-file", NULL, CFGF_NODEFAULT, cb_str),
	CFG_BOOL_CB("tcp", cfg_false, CFGF_NONE, cb_bool),
	CFG_STR_CB("url", NULL, CFGF_NODEFAULT, cb_str),
	CFG_STR_CB("ca-file", NULL, CFGF_NODEFAULT, cb_str),
	CFG_STR_CB("user-agent", NULL, CFGF_NODEFAULT, cb_str),
	CFG_STR_CB("command", NULL, CFGF_NODEFAULT, cb_str),
	CFG_STR_LIST_CB("args", 0, CFGF_NONE, cb_str),
	CFG_STR_CB("credentials-file", NULL, CFGF_NODEFAULT, cb_str),
	CFG_STR_CB("hmac-key-file", NULL, CFGF_NODEFAULT, cb_str),
	CFG_INT_CB("ttl", 60, CFGF_NONE, cb_uint),
	CFG_INT_CB("timeout-ms", 5000, CFGF_NONE, cb_uint),
	CFG_INT_CB("rate-per-second", 0, CFGF_NONE, cb_uint),
	CFG_INT_CB("rate-per-hour", 0, CFGF_NONE, cb_uint),
	CFG_INT_CB("backoff-min-ms", 1000, CFGF_NONE, cb_uint),
	CFG_INT_CB("backoff-max-ms", 300000, CFGF_NONE, cb_uint),
	CFG_END()
};

static cfg_opt_t binding_opts[] = {
	CFG_STR_LIST_CB(SECLINE_OPT, "{x}", CFGF_NONE, cb_secline),
	CFG_STR_CB("provider", NULL, CFGF_NODEFAULT, cb_str),
	CFG_STR_CB("subscriber", NULL, CFGF_NODEFAULT, cb_str),
	CFG_STR_CB("subscribers", NULL, CFGF_NODEFAULT, cb_subs),
	CFG_BOOL_CB("a", cfg_true, CFGF_NONE, cb_bool),
	CFG_STR_LIST_CB("srv", 0, CFGF_NONE, cb_srv),
	CFG_STR_CB("txt", NULL, CFGF_NODEFAULT, cb_str),
	CFG_END()
};

cfg_opt_t ddns_opts[] = {
	CFG_BOOL_CB("enabled", cfg_true, CFGF_NONE, cb_bool),
	CFG_INT_CB("debounce-ms", 1000, CFGF_NONE, cb_uint),
	CFG_INT_CB("queue-size", 65536, CFGF_NONE, cb_uint),
	CFG_INT_CB("startup-grace", 30, CFGF_NONE, cb_uint),
	CFG_SEC("provider", provider_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
	CFG_SEC("binding", binding_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
	CFG_END()
};

/* ---- which keys each type takes ---- */

struct type_keys {
	enum ddns_ptype type;
	const char *need[5];
	const char *may[8];
};

static const struct type_keys type_keys[] = {
	{ DDNS_RFC2136, { "server", "zone", "key-name", "key-file" }, { "port", "key-algorithm", "tcp" } },
	{ DDNS_DYNDNS2, { "url", "credentials-file" }, { "ca-file", "user-agent" } },
	{ DDNS_WEBHOOK, { "url" }, { "ca-file", "user-agent", "credentials-file", "hmac-key-file" } },
	{ DDNS_EXEC, { "command" }, { "args" } },
};

static const char *const typed_keys[] = {
	"server", "port", "zone", "key-name", "key-algorithm", "key-file", "tcp", "url", "ca-file",
	"user-agent", "command", "args", "credentials-file", "hmac-key-file", NULL,
};

static bool in_list(const char *const *l, size_t n, const char *k)
{
	for (size_t i = 0; i < n && l[i]; i++)
		if (!strcmp(l[i], k))
			return true;
	return false;
}

static bool key_set(cfg_t *sec, const char *k)
{
	return rec_find(cfg_getopt(sec, k), 0) != 0;
}

static void copy(char *dst, size_t len, cfg_t *sec, const char *k)
{
	const char *v = cfg_getstr(sec, k);
	snprintf(dst, len, "%s", v ? v : "");
}

static void get_provider(cfg_t *ps, struct ddns_provider_conf *p)
{
	ddns_provider_defaults(p);
	snprintf(p->name, sizeof(p->name), "%s", cfg_title(ps));
	if (!cfg_getstr(ps, "type")) {
		report(sec_line(ps), "provider '%s': type is missing", p->name);
		return;
	}
	ddns_ptype_parse(cfg_getstr(ps, "type"), &p->type);
	const struct type_keys *tk = &type_keys[p->type];
	for (const char *const *k = typed_keys; *k; k++) {
		bool need = in_list(tk->need, 5, *k), may = in_list(tk->may, 8, *k);
		if (need && !key_set(ps, *k))
			report(sec_line(ps), "provider '%s': %s provider needs %s", p->name, ddns_ptype_str(p->type), *k);
		else if (!need && !may && key_set(ps, *k))
			report(opt_line(ps, *k, 0), "provider '%s': %s is not used by %s providers", p->name, *k,
			       ddns_ptype_str(p->type));
	}
	if (cfg_getstr(ps, "server"))
		addr_parse(cfg_getstr(ps, "server"), &p->server);
	p->port = (uint16_t)cfg_getint(ps, "port");
	copy(p->zone, sizeof(p->zone), ps, "zone");
	copy(p->key_name, sizeof(p->key_name), ps, "key-name");
	copy(p->key_algorithm, sizeof(p->key_algorithm), ps, "key-algorithm");
	copy(p->key_file, sizeof(p->key_file), ps, "key-file");
	p->tcp = cfg_getbool(ps, "tcp");
	copy(p->url, sizeof(p->url), ps, "url");
	copy(p->ca_file, sizeof(p->ca_file), ps, "ca-file");
	copy(p->user_agent, sizeof(p->user_agent), ps, "user-agent");
	copy(p->command, sizeof(p->command), ps, "command");
	p->nargs = cfg_size(ps, "args");
	if (p->nargs > DDNS_MAX_ARGS) {
		report(opt_line(ps, "args", DDNS_MAX_ARGS), "provider '%s': at most %d args", p->name, DDNS_MAX_ARGS);
		p->nargs = DDNS_MAX_ARGS;
	}
	for (unsigned i = 0; i < p->nargs; i++)
		snprintf(p->args[i], sizeof(p->args[i]), "%s", cfg_getnstr(ps, "args", i));
	copy(p->credentials_file, sizeof(p->credentials_file), ps, "credentials-file");
	copy(p->hmac_key_file, sizeof(p->hmac_key_file), ps, "hmac-key-file");
	p->ttl = (uint32_t)cfg_getint(ps, "ttl");
	p->timeout_ms = (uint32_t)cfg_getint(ps, "timeout-ms");
	p->rate_per_sec = (uint32_t)cfg_getint(ps, "rate-per-second");
	p->rate_per_hour = (uint32_t)cfg_getint(ps, "rate-per-hour");
	p->backoff_min_ms = (uint32_t)cfg_getint(ps, "backoff-min-ms");
	p->backoff_max_ms = (uint32_t)cfg_getint(ps, "backoff-max-ms");
	if (p->backoff_max_ms < p->backoff_min_ms)
		report(opt_line(ps, "backoff-max-ms", 0), "provider '%s': backoff-max-ms is below backoff-min-ms", p->name);
}

static bool sub_exists(const struct aftr_config *a, const char *name)
{
	for (unsigned i = 0; i < a->nsubs; i++)
		if (!strcmp(a->subs[i].name, name))
			return true;
	return false;
}

static void get_binding(cfg_t *bs, const struct pcpd_config *c, struct ddns_binding_conf *b)
{
	memset(b, 0, sizeof(*b));
	const char *title = cfg_title(bs);
	if (strlen(title) > DDNS_NAME_MAX) {
		report(sec_line(bs), "binding '%.40s...': name longer than %d characters", title, DDNS_NAME_MAX);
		return;
	}
	snprintf(b->name, sizeof(b->name), "%s", title);
	copy(b->provider, sizeof(b->provider), bs, "provider");
	copy(b->subscriber, sizeof(b->subscriber), bs, "subscriber");
	if (cfg_getstr(bs, "subscribers"))
		prefix_parse(cfg_getstr(bs, "subscribers"), &b->b4);
	b->a = cfg_getbool(bs, "a");
	b->nsrv = cfg_size(bs, "srv");
	if (b->nsrv > DDNS_MAX_SRV) {
		report(opt_line(bs, "srv", DDNS_MAX_SRV), "binding '%s': at most %d srv", b->name, DDNS_MAX_SRV);
		b->nsrv = DDNS_MAX_SRV;
	}
	for (unsigned i = 0; i < b->nsrv; i++)
		ddns_srv_parse(cfg_getnstr(bs, "srv", i), &b->srv[i]);
	copy(b->txt, sizeof(b->txt), bs, "txt");
	const char *m = ddns_binding_check(b);
	if (m) {
		report(sec_line(bs), "binding '%s': %s", b->name, m);
		return;
	}
	bool found = false;
	for (unsigned i = 0; i < c->ddns.nproviders; i++)
		found |= !strcmp(c->ddns.providers[i].name, b->provider);
	if (!found)
		report(opt_line(bs, "provider", 0), "binding '%s': no provider named '%s'", b->name, b->provider);
	if (b->subscriber[0] && !sub_exists(&c->aftr, b->subscriber))
		report(opt_line(bs, "subscriber", 0), "binding '%s': no subscriber named '%s' in aftr { }", b->name,
		       b->subscriber);
}

void get_ddns(cfg_t *root, struct pcpd_config *c)
{
	cfg_t *d = cfg_getsec(root, "ddns");
	ddns_conf_defaults(&c->ddns);
	if (!d || !rec_find(cfg_getopt(root, "ddns"), SEC_MARK))
		return;                  /* no ddns section: the hook stays off */
	c->ddns.enabled = cfg_getbool(d, "enabled");
	c->ddns.debounce_ms = (uint32_t)cfg_getint(d, "debounce-ms");
	c->ddns.queue_size = (uint32_t)cfg_getint(d, "queue-size");
	c->ddns.startup_grace = (uint32_t)cfg_getint(d, "startup-grace");
	unsigned np = cfg_size(d, "provider");
	if (np > DDNS_MAX_PROVIDERS) {
		report(sec_line(cfg_getnsec(d, "provider", DDNS_MAX_PROVIDERS)), "at most %d providers",
		       DDNS_MAX_PROVIDERS);
		np = DDNS_MAX_PROVIDERS;
	}
	for (unsigned i = 0; i < np; i++)
		get_provider(cfg_getnsec(d, "provider", i), &c->ddns.providers[i]);
	c->ddns.nproviders = np;
	unsigned nb = cfg_size(d, "binding");
	if (!nb)
		return;
	c->ddns.bindings = calloc(nb, sizeof(*c->ddns.bindings));
	if (!c->ddns.bindings) {
		report(sec_line(d), "out of memory");
		return;
	}
	for (unsigned i = 0; i < nb; i++)
		get_binding(cfg_getnsec(d, "binding", i), c, &c->ddns.bindings[i]);
	c->ddns.nbindings = nb;
}
