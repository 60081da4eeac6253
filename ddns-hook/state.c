#include "ddns-hook/state.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool same_key(const struct ddns_mapping *m, const struct ddns_event *ev)
{
	return m->proto == ev->proto && m->int_port == ev->int_port && m->int_addr.s_addr == ev->int_addr.s_addr;
}

struct ddns_subview *ddns_views_apply(struct ddns_views *vs, const struct ddns_event *ev)
{
	uint32_t i = ev->sub_index % DDNS_SUB_MAX;
	struct ddns_subview *v = vs->v[i];
	if (!v) {
		if (!ev->up)
			return NULL;
		v = calloc(1, sizeof(*v));
		if (!v)
			return NULL;
		v->index = i;
		vs->v[i] = v;
		vs->nsubs++;
	}
	/* names can change when an operator re-provisions a subscriber */
	snprintf(v->name, sizeof(v->name), "%s", ev->sub_name);
	v->b4 = ev->b4;
	unsigned k = 0;
	while (k < v->n && !same_key(&v->m[k], ev))
		k++;
	if (!ev->up) {
		if (k < v->n) {
			v->m[k] = v->m[--v->n];
			vs->nmappings--;
		}
		return v;
	}
	if (k == v->n) {
		if (v->n == v->cap) {
			unsigned cap = v->cap ? v->cap * 2 : 4;
			struct ddns_mapping *m = realloc(v->m, cap * sizeof(*m));
			if (!m)
				return v;
			v->m = m;
			v->cap = cap;
		}
		v->n++;
		vs->nmappings++;
	}
	struct ddns_mapping *m = &v->m[k];
	m->proto = ev->proto;
	m->int_port = ev->int_port;
	m->int_addr = ev->int_addr;
	m->ext_port = ev->ext_port;
	m->ext_addr = ev->ext_addr;
	m->expires = ev->expires;
	return v;
}

void ddns_views_clear(struct ddns_views *vs, uint32_t index)
{
	struct ddns_subview *v = vs->v[index % DDNS_SUB_MAX];
	if (v) {
		vs->nmappings -= v->n;
		v->n = 0;
	}
}

void ddns_views_free(struct ddns_views *vs)
{
	for (uint32_t i = 0; i < DDNS_SUB_MAX; i++)
		if (vs->v[i]) {
			free(vs->v[i]->m);
			free(vs->v[i]);
			vs->v[i] = NULL;
		}
	vs->nsubs = vs->nmappings = 0;
}

bool ddns_binding_matches(const struct ddns_binding_conf *b, const struct ddns_subview *v)
{
	if (b->subscriber[0])
		return !strcmp(b->subscriber, v->name);
	return v->b4.plen >= b->b4.plen && prefix_contains(&b->b4, &v->b4.addr);
}

int ddns_name_expand(const struct ddns_binding_conf *b, const struct ddns_subview *v, char *out, size_t len)
{
	char idx[16], nm[DDNS_ID_MAX];
	snprintf(idx, sizeof(idx), "%u", v->index);
	snprintf(nm, sizeof(nm), "%s", v->name[0] ? v->name : idx);
	size_t o = 0, lab = 0;           /* lab: length of the current label */
	for (const char *p = b->name; *p;) {
		const char *ins = NULL;
		if (!strncmp(p, "{index}", 7)) {
			ins = idx;
			p += 7;
		} else if (!strncmp(p, "{name}", 6)) {
			ins = nm;
			p += 6;
		}
		if (ins) {
			for (const char *q = ins; *q; q++) {
				/* a subscriber name is a label here, nothing more */
				bool ok = (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
					  (*q >= '0' && *q <= '9') || *q == '-';
				if (!ok || o + 1 >= len || ++lab > 63)
					return -1;
				out[o++] = *q;
			}
			continue;
		}
		lab = *p == '.' ? 0 : lab + 1;
		if (o + 1 >= len || lab > 63)
			return -1;
		out[o++] = *p++;
	}
	out[o] = '\0';
	return o > 253 ? -1 : 0;
}

static int srv_cmp(const void *a, const void *b)
{
	const struct ddns_srv_rec *x = a, *y = b;
	int c = strcasecmp(x->conf->service, y->conf->service);
	if (c)
		return c;
	return (int)x->port - (int)y->port;
}

void ddns_desired(const struct ddns_binding_conf *b, const struct ddns_subview *v, uint32_t now_wall,
		  struct ddns_update *u)
{
	u->services = b->srv;
	u->nservices = b->nsrv;
	u->a = b->a;
	u->txt = b->txt[0] ? b->txt : NULL;
	u->has_addr = false;
	u->nsrv = 0;
	u->addr.s_addr = 0;
	for (unsigned k = 0; v && k < v->n; k++) {
		const struct ddns_mapping *m = &v->m[k];
		bool used = !b->nsrv;             /* A-only: any mapping makes the name live */
		for (unsigned s = 0; s < b->nsrv; s++) {
			if (m->proto != b->srv[s].proto || m->int_port != b->srv[s].int_port)
				continue;
			used = true;
			if (u->nsrv < DDNS_MAX_SRV_RECS) {
				struct ddns_srv_rec *r = &u->srv[u->nsrv++];
				r->conf = &b->srv[s];
				r->port = m->ext_port;
				r->lifetime = m->expires == UINT32_MAX ? UINT32_MAX
					      : m->expires > now_wall ? m->expires - now_wall : 0;
			}
		}
		/* one subscriber has one public address; the lowest keeps it stable */
		if (used && (!u->has_addr || ntohl(m->ext_addr.s_addr) < ntohl(u->addr.s_addr))) {
			u->has_addr = true;
			u->addr = m->ext_addr;
		}
	}
	if (!u->has_addr)
		u->nsrv = 0;
	qsort(u->srv, u->nsrv, sizeof(u->srv[0]), srv_cmp);
}

void ddns_value_str(const struct ddns_update *u, bool addr_only, char *buf, size_t len)
{
	buf[0] = '\0';
	if (!u->has_addr)
		return;
	char a[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &u->addr, a, sizeof(a));
	size_t o = (size_t)snprintf(buf, len, "%s%s", u->a || addr_only ? "A " : "addr ", a);
	if (addr_only)
		return;
	for (unsigned i = 0; i < u->nsrv && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "; SRV %s %u", u->srv[i].conf->service, u->srv[i].port);
	if (u->txt && o < len)
		snprintf(buf + o, len - o, "; TXT %s", u->txt);
}
