/* Checks and defaults shared by the config file and pcpctl ddns add. */
#include "ddns-hook/conf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const ptype_names[] = {
	[DDNS_RFC2136] = "rfc2136",
	[DDNS_DYNDNS2] = "dyndns2",
	[DDNS_WEBHOOK] = "webhook",
	[DDNS_EXEC] = "exec",
};

const char *ddns_ptype_str(enum ddns_ptype t)
{
	return (unsigned)t < sizeof(ptype_names) / sizeof(ptype_names[0]) ? ptype_names[t] : "?";
}

bool ddns_ptype_parse(const char *s, enum ddns_ptype *t)
{
	for (unsigned i = 0; i < sizeof(ptype_names) / sizeof(ptype_names[0]); i++)
		if (!strcmp(s, ptype_names[i])) {
			*t = (enum ddns_ptype)i;
			return true;
		}
	return false;
}

void ddns_provider_defaults(struct ddns_provider_conf *p)
{
	memset(p, 0, sizeof(*p));
	p->port = 53;
	snprintf(p->key_algorithm, sizeof(p->key_algorithm), "hmac-sha256");
	p->ttl = 60;
	p->timeout_ms = 5000;
	p->backoff_min_ms = 1000;
	p->backoff_max_ms = 300000;
}

void ddns_conf_defaults(struct ddns_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->debounce_ms = 1000;
	c->queue_size = 65536;
	c->startup_grace = 30;
}

static bool label_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-';
}

/* A host name (RFC 1123 labels), where "{index}" and "{name}" may stand
 * for (part of) a label. */
static const char *check_name(const char *name, bool *templated)
{
	size_t len = strlen(name), lab = 0;
	*templated = false;
	if (!len)
		return "empty name";
	if (len > 253)
		return "name longer than 253 characters";
	if (name[len - 1] == '.')
		return "name must not end with a dot";
	for (const char *p = name; *p;) {
		if (!strncmp(p, "{index}", 7) || !strncmp(p, "{name}", 6)) {
			*templated = true;
			lab += 1;
			p += p[1] == 'i' ? 7 : 6;
			continue;
		}
		if (*p == '.') {
			if (!lab)
				return "empty label in name";
			lab = 0;
		} else if (!label_char(*p)) {
			return "name characters are letters, digits, '-' and '.' (and {index}, {name})";
		} else if (++lab > 63) {
			return "label longer than 63 characters";
		}
		p++;
	}
	if (!lab)
		return "empty label in name";
	return NULL;
}

const char *ddns_srv_parse(const char *s, struct ddns_srv_conf *srv)
{
	memset(srv, 0, sizeof(*srv));
	const char *eq = strchr(s, '=');
	if (!eq || s[0] != '_')
		return "srv is \"_service._tcp=<internal port>\" or \"_service._udp=<port>\"";
	size_t n = (size_t)(eq - s);
	if (n >= sizeof(srv->service))
		return "srv service label too long";
	memcpy(srv->service, s, n);
	const char *dot = strchr(srv->service, '.');
	if (!dot || dot == srv->service + 1)
		return "srv is \"_service._tcp=<internal port>\" or \"_service._udp=<port>\"";
	for (const char *p = srv->service + 1; p < dot; p++)
		if (!label_char(*p))
			return "srv service name characters are letters, digits and '-'";
	if (!strcasecmp(dot, "._tcp"))
		srv->proto = 6;
	else if (!strcasecmp(dot, "._udp"))
		srv->proto = 17;
	else
		return "srv protocol label must be _tcp or _udp";
	char *end;
	unsigned long port = strtoul(eq + 1, &end, 10);
	if (!eq[1] || *end || port < 1 || port > 65535)
		return "srv internal port must be 1..65535";
	srv->int_port = (uint16_t)port;
	return NULL;
}

const char *ddns_binding_check(const struct ddns_binding_conf *b)
{
	bool templated;
	const char *m = check_name(b->name, &templated);
	if (m)
		return m;
	if (!b->provider[0])
		return "binding needs a provider";
	if (!b->subscriber[0] && !b->b4.plen)
		return "binding needs a subscriber or a subscriber prefix";
	if (b->subscriber[0] && b->b4.plen)
		return "binding has both a subscriber and a subscriber prefix";
	if (b->b4.plen && !templated)
		return "a binding for a subscriber prefix needs {index} or {name} in its name";
	if (!b->a && !b->nsrv)
		return "binding publishes nothing (a false and no srv)";
	for (unsigned i = 0; i < b->nsrv; i++)
		for (unsigned j = 0; j < i; j++)
			if (!strcasecmp(b->srv[i].service, b->srv[j].service) && b->srv[i].int_port == b->srv[j].int_port)
				return "the same srv is listed twice";
	for (const char *p = b->txt; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return "txt must be printable";
	return NULL;
}
