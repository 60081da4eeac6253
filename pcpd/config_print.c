/* pcpd -nv: the normalised config. Every key in schema order with its
 * effective value, lists expanded to canonical text, subscribers by index.
 * All strings printed come from restricted character sets, so no escaping
 * is needed and the output parses back to an equal config. */
#include "pcpd/config.h"

#include <stdlib.h>

static const char *yes_no(bool b)
{
	return b ? "true" : "false";
}

static const char *level_name(int level)
{
	switch (level) {
	case LOG_ERR: return "err";
	case LOG_WARNING: return "warning";
	case LOG_NOTICE: return "notice";
	case LOG_DEBUG: return "debug";
	default: return "info";
	}
}

static void print_prefixes(FILE *out, const char *key, const struct prefix *p, unsigned n)
{
	char buf[ADDR_STRLEN + 8];
	fprintf(out, "  %s = {", key);
	for (unsigned i = 0; i < n; i++)
		fprintf(out, "%s\"%s\"", i ? ", " : "", prefix_str(&p[i], buf, sizeof(buf)));
	fputs("}\n", out);
}

static void print_server(const struct pcpd_config *c, FILE *out)
{
	char a[ADDR_STRLEN];
	fputs("server {\n  listen = {", out);
	for (unsigned i = 0; i < c->nlisten; i++)
		fprintf(out, "%s\"%s\"", i ? ", " : "", addr_str(&c->listen[i], a));
	fprintf(out, "}\n  port = %u\n  workers = %u\n", c->port, c->workers);
	fprintf(out, "  map = %s\n  peer = %s\n  nat-pmp = %s\n  third-party = %s\n",
		yes_no(c->enable_map), yes_no(c->enable_peer), yes_no(c->enable_natpmp),
		yes_no(c->enable_third_party));
	fprintf(out, "  min-lifetime = %u\n  max-lifetime = %u\n  max-filters = %u\n",
		c->min_lifetime, c->max_lifetime, c->max_filters);
	fprintf(out, "  backend = \"%s\"\n  nft-table = \"%s\"\n  keep-table = %s\n", c->backend,
		c->nft_table, yes_no(c->keep_table));
	fprintf(out, "  state-dir = \"%s\"\n", c->state_dir);
	fprintf(out, "  log = \"%s\"\n  log-level = \"%s\"\n}\n",
		c->log_target == LOG_TO_SYSLOG ? "syslog" : "stderr", level_name(c->log_level));
}

static void print_control(const struct pcpd_config *c, FILE *out)
{
	fprintf(out, "control {\n  socket = \"%s\"\n  monitor-socket = \"%s\"\n"
		     "  admin-group = \"%s\"\n}\n", c->ctl_socket, c->ctl_monitor, c->ctl_admin_group);
}

static void print_sub(const struct aftr_sub_conf *s, FILE *out)
{
	char buf[ADDR_STRLEN + 8];
	fprintf(out, "  subscriber \"%s\" {\n", s->name);
	if (s->has_b4)
		fprintf(out, "    b4 = \"%s\"\n", prefix_str(&s->b4, buf, sizeof(buf)));
	if (s->ifname[0])
		fprintf(out, "    interface = \"%s\"\n", s->ifname);
	fprintf(out, "    index = %u\n  }\n", s->index);
}

static int cmp_sub(const void *pa, const void *pb)
{
	const struct aftr_sub_conf *a = *(const struct aftr_sub_conf *const *)pa;
	const struct aftr_sub_conf *b = *(const struct aftr_sub_conf *const *)pb;
	return (a->index > b->index) - (a->index < b->index);
}

static void print_aftr(const struct aftr_config *c, FILE *out)
{
	char a[ADDR_STRLEN], b[ADDR_STRLEN];
	struct in6_addr x;
	fputs("aftr {\n  pool = {", out);
	for (unsigned i = 0; i < c->npool; i++) {
		addr_from_v4(&x, c->pool[i].first);
		addr_str(&x, a);
		addr_from_v4(&x, c->pool[i].last);
		addr_str(&x, b);
		if (c->pool[i].first == c->pool[i].last)
			fprintf(out, "%s\"%s\"", i ? ", " : "", a);
		else
			fprintf(out, "%s\"%s-%s\"", i ? ", " : "", a, b);
	}
	fprintf(out, "}\n  port-min = %u\n  ports-per-subscriber = %u\n  pcp-ports = %u\n",
		c->port_min, c->ports_per_subscriber, c->pcp_ports);
	fprintf(out, "  subscriber-prefix-length = %u\n", c->subscriber_plen);
	print_prefixes(out, "b4-prefixes", c->b4_prefixes, c->nb4);
	print_prefixes(out, "internal-prefixes", c->internal, c->ninternal);
	fprintf(out, "  max-mappings = %u\n  rate-limit = %u\n  rate-burst = %u\n  hold-down = %u\n",
		c->max_mappings, c->rate_limit, c->rate_burst, c->hold_down);
	/* loaded configs are already in index order; others (built at run
	 * time) may not be */
	const struct aftr_sub_conf **ord = c->nsubs ? malloc(c->nsubs * sizeof(*ord)) : NULL;
	for (unsigned i = 0; ord && i < c->nsubs; i++)
		ord[i] = &c->subs[i];
	if (ord)
		qsort(ord, c->nsubs, sizeof(*ord), cmp_sub);
	for (unsigned i = 0; i < c->nsubs; i++)
		print_sub(ord ? ord[i] : &c->subs[i], out);
	free(ord);
	fputs("}\n", out);
}

/* A libconfuse string: quotes and backslashes escaped. */
static void qstr(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

static void kv(FILE *out, const char *k, const char *v)
{
	if (!v[0])
		return;
	fprintf(out, "    %s = ", k);
	qstr(out, v);
	fputc('\n', out);
}

static void print_provider(const struct ddns_provider_conf *p, FILE *out)
{
	char a[ADDR_STRLEN];
	fputs("  provider ", out);
	qstr(out, p->name);
	fprintf(out, " {\n    type = %s\n", ddns_ptype_str(p->type));
	switch (p->type) {
	case DDNS_RFC2136:
		fprintf(out, "    server = \"%s\"\n    port = %u\n", addr_str(&p->server, a), p->port);
		kv(out, "zone", p->zone);
		kv(out, "key-name", p->key_name);
		kv(out, "key-algorithm", p->key_algorithm);
		kv(out, "key-file", p->key_file);
		fprintf(out, "    tcp = %s\n", p->tcp ? "true" : "false");
		break;
	case DDNS_DYNDNS2:
	case DDNS_WEBHOOK:
		kv(out, "url", p->url);
		kv(out, "ca-file", p->ca_file);
		kv(out, "user-agent", p->user_agent);
		kv(out, "credentials-file", p->credentials_file);
		kv(out, "hmac-key-file", p->hmac_key_file);
		break;
	case DDNS_EXEC:
		kv(out, "command", p->command);
		if (p->nargs) {
			fputs("    args = {", out);
			for (unsigned i = 0; i < p->nargs; i++) {
				fputs(i ? ", " : "", out);
				qstr(out, p->args[i]);
			}
			fputs("}\n", out);
		}
		break;
	}
	fprintf(out, "    ttl = %u\n    timeout-ms = %u\n    rate-per-second = %u\n    rate-per-hour = %u\n"
		     "    backoff-min-ms = %u\n    backoff-max-ms = %u\n  }\n",
		p->ttl, p->timeout_ms, p->rate_per_sec, p->rate_per_hour, p->backoff_min_ms, p->backoff_max_ms);
}

static void print_binding(const struct ddns_binding_conf *b, FILE *out)
{
	char pfx[ADDR_STRLEN + 8];
	fputs("  binding ", out);
	qstr(out, b->name);
	fputs(" {\n", out);
	kv(out, "provider", b->provider);
	kv(out, "subscriber", b->subscriber);
	if (b->b4.plen)
		kv(out, "subscribers", prefix_str(&b->b4, pfx, sizeof(pfx)));
	fprintf(out, "    a = %s\n", b->a ? "true" : "false");
	if (b->nsrv) {
		fputs("    srv = {", out);
		for (unsigned i = 0; i < b->nsrv; i++)
			fprintf(out, "%s\"%s=%u\"", i ? ", " : "", b->srv[i].service, b->srv[i].int_port);
		fputs("}\n", out);
	}
	kv(out, "txt", b->txt);
	fputs("  }\n", out);
}

/* Only when enabled: a file without the section prints as before. */
static void print_ddns(const struct ddns_conf *c, FILE *out)
{
	if (!c->enabled)
		return;
	fprintf(out, "\nddns {\n  enabled = true\n  debounce-ms = %u\n  queue-size = %u\n  startup-grace = %u\n",
		c->debounce_ms, c->queue_size, c->startup_grace);
	for (unsigned i = 0; i < c->nproviders; i++)
		print_provider(&c->providers[i], out);
	for (unsigned i = 0; i < c->nbindings; i++)
		print_binding(&c->bindings[i], out);
	fputs("}\n", out);
}

void pcpd_config_print(const struct pcpd_config *c, FILE *out)
{
	print_server(c, out);
	print_control(c, out);
	fputc('\n', out);
	print_aftr(&c->aftr, out);
	print_ddns(&c->ddns, out);
}
