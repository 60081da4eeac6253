/* Control commands of the DDNS hook: ddns-status (one result per name),
 * ddns-providers, ddns-bindings (read-only), ddns-add / ddns-set /
 * ddns-del (runtime bindings, persisted by the hook) and ddns-reset
 * (clear a permanent stop). Each asks the hook thread and waits for it;
 * the hook never blocks, so neither does this for long. */
#include <stdio.h>
#include <string.h>

#include "pcpd/ctl_cmd.h"

static struct ddns_hook *hook_of(struct ctl_call *c)
{
	if (!c->cx->ddns)
		ctl_end_err(c, CE_FAILED, "the DDNS hook is not enabled (no ddns { } section in pcpd.conf)");
	return c->cx->ddns;
}

/* Emits every element of status[key] as a result object. */
static void emit_list(struct ctl_call *c, const char *filter, const char *key)
{
	struct ddns_hook *h = hook_of(c);
	if (!h)
		return;
	json_object *st = ddns_hook_status_part(h, filter, key), *arr;
	if (st && json_object_object_get_ex(st, key, &arr))
		for (size_t i = 0; i < json_object_array_length(arr); i++)
			ctl_emit(c, json_object_get(json_object_array_get_idx(arr, i)));
	json_object_put(st);
	ctl_end_ok(c);
}

static const struct ctl_aspec filter_args[] = {
	{ "name", CA_STR, false },
	{ NULL, CA_STR, false },
};

static void ddns_status(struct ctl_call *c, const struct ctl_aval *av)
{
	emit_list(c, av[0].set ? av[0].s : NULL, "names");
}

static void ddns_providers(struct ctl_call *c, const struct ctl_aval *av)
{
	emit_list(c, av[0].set ? av[0].s : NULL, "providers");
}

static void ddns_bindings(struct ctl_call *c, const struct ctl_aval *av)
{
	emit_list(c, av[0].set ? av[0].s : NULL, "bindings");
}

const struct ctl_cmd ctl_cmd_ddns_status = { "ddns-status", false, filter_args, ddns_status };
const struct ctl_cmd ctl_cmd_ddns_providers = { "ddns-providers", false, filter_args, ddns_providers };
const struct ctl_cmd ctl_cmd_ddns_bindings = { "ddns-bindings", false, filter_args, ddns_bindings };

enum { DA_NAME, DA_PROVIDER, DA_SUB, DA_SUBS, DA_A, DA_SRV, DA_TXT };

static const struct ctl_aspec add_args[] = {
	[DA_NAME] = { "name", CA_STR, true },
	[DA_PROVIDER] = { "provider", CA_STR, true },
	[DA_SUB] = { "subscriber", CA_STR, false },
	[DA_SUBS] = { "subscribers", CA_PREFIX6, false },
	[DA_A] = { "a", CA_UINT, false },
	[DA_SRV] = { "srv", CA_STR, false },
	[DA_TXT] = { "txt", CA_STR, false },
	{ NULL, CA_STR, false },
};

static bool fits(struct ctl_call *c, const char *arg, const char *v, size_t size)
{
	if (strlen(v) < size)
		return true;
	ctl_end_err(c, CE_BAD_ARGUMENT, "argument '%s': longer than %zu characters", arg, size - 1);
	return false;
}

static bool binding_of(struct ctl_call *c, const struct ctl_aval *av, struct ddns_binding_conf *b)
{
	memset(b, 0, sizeof(*b));
	b->a = true;
	if (!fits(c, "name", av[DA_NAME].s, sizeof(b->name)) ||
	    !fits(c, "provider", av[DA_PROVIDER].s, sizeof(b->provider)) ||
	    (av[DA_SUB].set && !fits(c, "subscriber", av[DA_SUB].s, sizeof(b->subscriber))) ||
	    (av[DA_TXT].set && !fits(c, "txt", av[DA_TXT].s, sizeof(b->txt))))
		return false;
	snprintf(b->name, sizeof(b->name), "%s", av[DA_NAME].s);
	snprintf(b->provider, sizeof(b->provider), "%s", av[DA_PROVIDER].s);
	if (av[DA_SUB].set)
		snprintf(b->subscriber, sizeof(b->subscriber), "%s", av[DA_SUB].s);
	if (av[DA_SUBS].set)
		b->b4 = av[DA_SUBS].pfx;
	if (av[DA_A].set) {
		if (av[DA_A].u > 1) {
			ctl_end_err(c, CE_BAD_ARGUMENT, "argument 'a': 0 or 1");
			return false;
		}
		b->a = av[DA_A].u == 1;
	}
	if (av[DA_TXT].set)
		snprintf(b->txt, sizeof(b->txt), "%s", av[DA_TXT].s);
	if (av[DA_SRV].set && av[DA_SRV].s[0]) {
		char list[DDNS_MAX_SRV * 80 + 1], *save = NULL;
		if (!fits(c, "srv", av[DA_SRV].s, sizeof(list)))
			return false;
		snprintf(list, sizeof(list), "%s", av[DA_SRV].s);
		for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			if (b->nsrv == DDNS_MAX_SRV) {
				ctl_end_err(c, CE_BAD_ARGUMENT, "argument 'srv': at most %d entries", DDNS_MAX_SRV);
				return false;
			}
			const char *m = ddns_srv_parse(t, &b->srv[b->nsrv++]);
			if (m) {
				ctl_end_err(c, CE_BAD_ARGUMENT, "argument 'srv': '%.64s': %s", t, m);
				return false;
			}
		}
	}
	const char *m = ddns_binding_check(b);
	if (m) {
		ctl_end_err(c, CE_BAD_ARGUMENT, "%s", m);
		return false;
	}
	return true;
}

static void add_or_set(struct ctl_call *c, const struct ctl_aval *av, bool replace)
{
	struct ddns_hook *h = hook_of(c);
	struct ddns_binding_conf b;
	char err[256];
	if (!h || !binding_of(c, av, &b))
		return;
	if (ddns_hook_binding_add(h, &b, replace, err, sizeof(err)) < 0) {
		ctl_end_err(c, strstr(err, "exists") ? CE_EXISTS : strstr(err, "no provider") ? CE_NOT_FOUND
											: CE_FAILED,
			    "%s", err);
		return;
	}
	json_object *st = ddns_hook_status_part(h, b.name, "bindings"), *arr;
	if (st && json_object_object_get_ex(st, "bindings", &arr) && json_object_array_length(arr))
		ctl_emit(c, json_object_get(json_object_array_get_idx(arr, 0)));
	json_object_put(st);
	ctl_end_ok(c);
}

static void ddns_add(struct ctl_call *c, const struct ctl_aval *av)
{
	add_or_set(c, av, false);
}

static void ddns_set(struct ctl_call *c, const struct ctl_aval *av)
{
	add_or_set(c, av, true);
}

const struct ctl_cmd ctl_cmd_ddns_add = { "ddns-add", true, add_args, ddns_add };
const struct ctl_cmd ctl_cmd_ddns_set = { "ddns-set", true, add_args, ddns_set };

static const struct ctl_aspec name_args[] = {
	{ "name", CA_STR, true },
	{ NULL, CA_STR, false },
};

static void ddns_del(struct ctl_call *c, const struct ctl_aval *av)
{
	struct ddns_hook *h = hook_of(c);
	char err[256];
	if (!h)
		return;
	if (ddns_hook_binding_del(h, av[0].s, err, sizeof(err)) < 0) {
		ctl_end_err(c, strstr(err, "no binding") ? CE_NOT_FOUND : CE_FAILED, "%s", err);
		return;
	}
	ctl_end_ok(c);
}

static void ddns_reset(struct ctl_call *c, const struct ctl_aval *av)
{
	struct ddns_hook *h = hook_of(c);
	char err[256];
	if (!h)
		return;
	int n = ddns_hook_reset(h, av[0].s, err, sizeof(err));
	if (n < 0) {
		ctl_end_err(c, CE_NOT_FOUND, "%s", err);
		return;
	}
	json_object *o = json_object_new_object();
	json_object_object_add(o, "reset", json_object_new_int(n));
	ctl_emit(c, o);
	ctl_end_ok(c);
}

const struct ctl_cmd ctl_cmd_ddns_del = { "ddns-del", true, name_args, ddns_del };
const struct ctl_cmd ctl_cmd_ddns_reset = { "ddns-reset", true, name_args, ddns_reset };
