/* Mutating control commands: static mappings and run-time subscribers.
 *
 * Each goes through the engine like a PCP request would, so a reply is
 * sent only after the kernel has the change. The engine's done() may run
 * on any thread (whoever flushes the backend): it only records the result;
 * the rest runs on the main thread in the call's resume step. No lock is
 * held while calling the engine (it takes the subscriber lock itself).
 * Subscribers are removed only here, on the main thread, so a subscriber
 * pointer found under rcu_read_lock() stays valid on this thread until the
 * removal below. One mutating call per subscriber runs at a time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "pcpd/ctl_cmd.h"

#define REMOVE_ROUNDS 5            /* flushes before giving up on a busy subscriber */

/* What a mutating call remembers across the kernel round trip. */
struct op {
	uint32_t index;
	struct subscriber *sub;        /* compared, dereferenced only as above */
	struct ctl_subinfo si;
	uint8_t proto;
	struct in6_addr int_addr;
	uint16_t int_port, ext_port;
	struct ctl_snap snap;          /* static-del: the mapping as it was */
	unsigned deleted, rounds;
	char what[160];                /* "tcp 192.168.1.2:80 of subscriber 3" */
};

static void op_free(struct ctl_call *c)
{
	struct op *op = c->st;
	if (op) {
		ctl_snap_clear(&op->snap);
		free(op);
		c->st = NULL;
	}
}

static struct op *op_new(struct ctl_call *c, struct subscriber *sub)
{
	struct op *op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	op->index = sub->index;
	op->sub = sub;
	ctl_subinfo_of(&op->si, sub);
	c->st = op;
	c->fini = op_free;
	return op;
}

static const char *sub_what(const struct subscriber *sub, char *buf, size_t len)
{
	if (sub->name[0])
		snprintf(buf, len, "subscriber %u (%s)", sub->index, sub->name);
	else
		snprintf(buf, len, "subscriber %u", sub->index);
	return buf;
}

/* Resolves the subscriber argument and claims it; NULL after ending c. */
static struct subscriber *claim(struct ctl_call *c, const struct ctl_aval *v)
{
	char lbl[96];
	struct subscriber *sub = ctl_sub_resolve(c->cx, v);
	if (!sub) {
		ctl_end_err(c, CE_NOT_FOUND, "no %s", ctl_sub_label(v, lbl, sizeof(lbl)));
		return NULL;
	}
	if (!ctl_busy_take(c, sub->index)) {
		ctl_end_err(c, CE_BUSY, "another control operation on %s is in progress",
			    sub_what(sub, lbl, sizeof(lbl)));
		return NULL;
	}
	if (!op_new(c, sub)) {
		ctl_end_err(c, CE_INTERNAL, "out of memory");
		return NULL;
	}
	return sub;
}

/* The engine's verdict in operator terms. */
static void end_engine_err(struct ctl_call *c, const char *what, enum perr err)
{
	const struct op *op = c->st;
	switch (err) {
	case PERR_DROP:
		ctl_end_err(c, CE_BUSY, "%s: a change of this mapping is in flight; retry", what);
		break;
	case PERR_NOT_FOUND:
		ctl_end_err(c, CE_NOT_FOUND, "%s: no such static mapping", what);
		break;
	case PERR_CANNOT_PROVIDE_EXTERNAL:
		ctl_end_err(c, CE_FAILED, "%s: external port %u is not available (taken, held "
			    "down, or outside the subscriber's PCP ports)", what, op->ext_port);
		break;
	case PERR_NO_RESOURCES:
		ctl_end_err(c, CE_FAILED, "%s: no resources (no free PCP port, or the kernel "
			    "refused)", what);
		break;
	case PERR_NETWORK_FAILURE:
	case PERR_KERNEL:
		ctl_end_err(c, CE_FAILED, "%s: the kernel refused the change", what);
		break;
	default:
		ctl_end_err(c, CE_FAILED, "%s: %s", what, perr_str(err));
		break;
	}
}

/* Emits the current state of op's mapping (nothing if it is gone). */
static void emit_mapping(struct ctl_call *c, const struct op *op)
{
	struct ctl_snap snap;
	bool found = false;
	rcu_read_lock();
	struct subscriber *sub = subs_by_index(c->cx->srv->subs, op->index);
	if (sub) {
		pthread_mutex_lock(&sub->lock);
		struct binding *b = table_lookup_int(c->cx->srv->table, op->index, op->proto,
						     &op->int_addr, op->int_port);
		found = b && ctl_snap_take(&snap, b);
		pthread_mutex_unlock(&sub->lock);
	}
	rcu_read_unlock();
	if (found) {
		ctl_emit(c, ctl_json_mapping(&op->si, &snap, c->cx->clock()));
		ctl_snap_clear(&snap);
	}
}

/* ---- static-add / static-del ---- */

enum { ST_SUB, ST_PROTO, ST_INT, ST_PORT, ST_EXT, ST_DESC };

static bool static_target(struct ctl_call *c, const struct ctl_aval *av, struct subscriber **out)
{
	struct subscriber *sub = claim(c, &av[ST_SUB]);
	if (!sub)
		return false;
	struct op *op = c->st;
	char a[ADDR_STRLEN], pb[8];
	op->proto = av[ST_PROTO].proto;
	op->int_addr = av[ST_INT].addr;
	op->int_port = (uint16_t)av[ST_PORT].u;
	snprintf(op->what, sizeof(op->what), "%s %s:%u of ", ctl_proto_str(op->proto, pb, sizeof(pb)),
		 addr_str(&op->int_addr, a), op->int_port);
	size_t n = strlen(op->what);
	sub_what(sub, op->what + n, sizeof(op->what) - n);
	*out = sub;
	return true;
}

static void static_add_resume(struct ctl_call *c)
{
	struct op *op = c->st;
	if (c->res.err != PERR_OK) {
		end_engine_err(c, op->what, c->res.err);
		return;
	}
	emit_mapping(c, op);
	ctl_end_ok(c);
}

static void static_add(struct ctl_call *c, const struct ctl_aval *av)
{
	struct pcpd_server *s = c->cx->srv;
	struct subscriber *sub;
	rcu_read_lock();
	if (!static_target(c, av, &sub)) {
		rcu_read_unlock();
		return;
	}
	struct op *op = c->st;
	op->ext_port = (uint16_t)av[ST_EXT].u;
	char a[ADDR_STRLEN];
	if (!subs_internal_allowed(s->subs, &op->int_addr)) {
		rcu_read_unlock();
		ctl_end_err(c, CE_BAD_ARGUMENT, "internal address %s is not in internal-prefixes",
			    addr_str(&op->int_addr, a));
		return;
	}
	/* a client's mapping would be refreshed, not turned static */
	pthread_mutex_lock(&sub->lock);
	struct binding *b = table_lookup_int(s->table, sub->index, op->proto, &op->int_addr,
					     op->int_port);
	bool dynamic = b && !(b->flags & BF_STATIC);
	pthread_mutex_unlock(&sub->lock);
	if (dynamic) {
		rcu_read_unlock();
		ctl_end_err(c, CE_EXISTS, "%s has a dynamic mapping; flush the subscriber or "
			    "wait for it to end", op->what);
		return;
	}
	struct engine_req rq;
	memset(&rq, 0, sizeof(rq));
	rq.sub = sub;
	rq.proto = op->proto;
	rq.int_addr = op->int_addr;
	rq.int_port = op->int_port;
	rq.sugg_port = op->ext_port;
	rq.lifetime = 1;                  /* any non-zero: static mappings never expire */
	/* an operator naming the external port wants that port or an error */
	rq.flags = BF_STATIC | (op->ext_port ? BF_PREFER_FAILURE : 0);
	if (av[ST_DESC].set) {
		rq.has_desc = true;
		rq.desc = av[ST_DESC].s;
		rq.desc_len = (uint16_t)strlen(av[ST_DESC].s);
	}
	rq.now = c->cx->clock();
	ctl_call_wait(c, static_add_resume);
	engine_map(&s->eng, &rq, ctl_engine_done, c);
	rcu_read_unlock();
	s->kb->ops->flush(s->kb);
}

static const struct ctl_aspec static_add_args[] = {
	[ST_SUB] = { "subscriber", CA_SUB, true },
	[ST_PROTO] = { "proto", CA_PROTO, true },
	[ST_INT] = { "internal", CA_ADDR4, true },
	[ST_PORT] = { "port", CA_PORT, true },
	[ST_EXT] = { "external_port", CA_PORT, false },
	[ST_DESC] = { "description", CA_STR, false },
	{ NULL, CA_STR, false },
};

const struct ctl_cmd ctl_cmd_static_add = { "static-add", true, static_add_args, static_add };

static void static_del_resume(struct ctl_call *c)
{
	struct op *op = c->st;
	if (c->res.err != PERR_OK) {
		end_engine_err(c, op->what, c->res.err);
		return;
	}
	ctl_emit(c, ctl_json_mapping(&op->si, &op->snap, c->cx->clock()));
	ctl_end_ok(c);
}

static void static_del(struct ctl_call *c, const struct ctl_aval *av)
{
	struct pcpd_server *s = c->cx->srv;
	struct subscriber *sub;
	rcu_read_lock();
	if (!static_target(c, av, &sub)) {
		rcu_read_unlock();
		return;
	}
	struct op *op = c->st;
	pthread_mutex_lock(&sub->lock);
	struct binding *b = table_lookup_int(s->table, sub->index, op->proto, &op->int_addr,
					     op->int_port);
	bool is_static = b && (b->flags & BF_STATIC);
	bool ok = is_static && ctl_snap_take(&op->snap, b);
	pthread_mutex_unlock(&sub->lock);
	if (!ok) {
		rcu_read_unlock();
		if (!b)
			ctl_end_err(c, CE_NOT_FOUND, "%s: no such mapping", op->what);
		else if (!is_static)
			ctl_end_err(c, CE_NOT_FOUND, "%s is not a static mapping", op->what);
		else
			ctl_end_err(c, CE_INTERNAL, "out of memory");
		return;
	}
	struct engine_req rq;
	memset(&rq, 0, sizeof(rq));
	rq.sub = sub;
	rq.proto = op->proto;
	rq.int_addr = op->int_addr;
	rq.int_port = op->int_port;
	rq.now = c->cx->clock();
	ctl_call_wait(c, static_del_resume);
	engine_static_delete(&s->eng, &rq, ctl_engine_done, c);
	rcu_read_unlock();
	s->kb->ops->flush(s->kb);
}

static const struct ctl_aspec static_del_args[] = {
	[ST_SUB] = { "subscriber", CA_SUB, true },
	[ST_PROTO] = { "proto", CA_PROTO, true },
	[ST_INT] = { "internal", CA_ADDR4, true },
	[ST_PORT] = { "port", CA_PORT, true },
	{ NULL, CA_STR, false },
};

const struct ctl_cmd ctl_cmd_static_del = { "static-del", true, static_del_args, static_del };

/* ---- subscriber-flush / subscriber-remove ---- */

static json_object *flush_result(const struct op *op, bool removed)
{
	json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	json_object_object_add(o, "subscriber", json_object_new_uint64(op->si.index));
	json_object_object_add(o, "name", op->si.name[0] ? json_object_new_string(op->si.name)
							  : NULL);
	json_object_object_add(o, "deleted", json_object_new_uint64(op->deleted));
	json_object_object_add(o, "removed", json_object_new_boolean(removed));
	return o;
}

/* Starts (another) flush of op's subscriber. */
static void start_flush(struct ctl_call *c, struct subscriber *sub,
			void (*resume)(struct ctl_call *))
{
	struct pcpd_server *s = c->cx->srv;
	ctl_call_wait(c, resume);
	rcu_read_lock();
	engine_flush_sub(&s->eng, sub, c->cx->clock(), ctl_flush_done, c);
	rcu_read_unlock();
	s->kb->ops->flush(s->kb);
}

static void flush_resume(struct ctl_call *c)
{
	struct op *op = c->st;
	char w[96];
	op->deleted += c->fdeleted;
	if (c->ferr != PERR_OK) {
		ctl_end_err(c, c->ferr == PERR_DROP ? CE_BUSY : CE_FAILED,
			    "%s: %u mapping(s) deleted, then: %s", sub_what(op->sub, w, sizeof(w)),
			    op->deleted, c->ferr == PERR_DROP ? "a change is in flight; retry"
							      : perr_str(c->ferr));
		return;
	}
	ctl_emit(c, flush_result(op, false));
	ctl_end_ok(c);
}

static void subscriber_flush(struct ctl_call *c, const struct ctl_aval *av)
{
	rcu_read_lock();
	struct subscriber *sub = claim(c, &av[0]);
	rcu_read_unlock();
	if (sub)
		start_flush(c, sub, flush_resume);
}

static const struct ctl_aspec sub_only_args[] = {
	{ "subscriber", CA_SUB, true },
	{ NULL, CA_STR, false },
};

const struct ctl_cmd ctl_cmd_subscriber_flush = {
	"subscriber-flush", true, sub_only_args, subscriber_flush,
};

static void remove_resume(struct ctl_call *c)
{
	struct pcpd_server *s = c->cx->srv;
	struct op *op = c->st;
	char w[96];
	op->deleted += c->fdeleted;
	rcu_read_lock();
	struct subscriber *sub = subs_by_index(s->subs, op->index);
	bool empty = false;
	if (sub == op->sub) {
		pthread_mutex_lock(&sub->lock);
		empty = cds_list_empty(&sub->bindings);
		pthread_mutex_unlock(&sub->lock);
	}
	rcu_read_unlock();
	if (sub != op->sub) {
		ctl_end_err(c, CE_NOT_FOUND, "subscriber %u is gone", op->index);
		return;
	}
	if (c->ferr != PERR_OK && c->ferr != PERR_DROP) {
		sub->removing = false;
		ctl_end_err(c, CE_FAILED, "%s: flush failed (%s) after %u deletion(s); kept",
			    sub_what(sub, w, sizeof(w)), perr_str(c->ferr), op->deleted);
		return;
	}
	/* clients may have created mappings while the flush ran */
	if (!empty || c->ferr == PERR_DROP) {
		if (++op->rounds < REMOVE_ROUNDS) {
			start_flush(c, sub, remove_resume);
			return;
		}
		sub->removing = false;
		ctl_end_err(c, CE_BUSY, "%s still has mappings after %u flushes; kept",
			    sub_what(sub, w, sizeof(w)), REMOVE_ROUNDS);
		return;
	}
	enum perr err = engine_sub_unprovision(&s->eng, sub);
	if (err != PERR_OK) {
		sub->removing = false;
		ctl_end_err(c, CE_FAILED, "%s: cannot remove its data plane (%s); kept without "
			    "mappings", sub_what(sub, w, sizeof(w)), perr_str(err));
		return;
	}
	err = subs_remove(s->subs, sub);
	if (err != PERR_OK) {
		ctl_end_err(c, CE_NOT_FOUND, "subscriber %u: %s", op->index, perr_str(err));
		return;
	}
	op->sub = NULL;                   /* freed after a grace period */
	ctl_emit(c, flush_result(op, true));
	ctl_end_ok(c);
}

static void subscriber_remove(struct ctl_call *c, const struct ctl_aval *av)
{
	rcu_read_lock();
	struct subscriber *sub = claim(c, &av[0]);
	rcu_read_unlock();
	if (!sub)
		return;
	sub->removing = true;     /* the engine refuses new mappings from now on */
	start_flush(c, sub, remove_resume);
}

const struct ctl_cmd ctl_cmd_subscriber_remove = {
	"subscriber-remove", true, sub_only_args, subscriber_remove,
};

/* ---- subscriber-add ---- */

enum { SA_NAME, SA_INDEX, SA_B4, SA_IF };

/* The characters pcpd.conf allows in subscriber and interface names: they
 * appear in logs, text tables and section titles. */
static bool name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	return n > 0 && n < max &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

struct overlap {
	const struct prefix *p;
	uint32_t index;
	bool found;
};

static bool prefix_overlap(const struct prefix *a, const struct prefix *b)
{
	struct in6_addr x = a->addr, y = b->addr;
	unsigned n = a->plen < b->plen ? a->plen : b->plen;
	addr_mask(&x, n);
	addr_mask(&y, n);
	return addr_equal(&x, &y);
}

static int find_overlap(void *arg, struct subscriber *sub)
{
	struct overlap *o = arg;
	if (sub->b4.plen && prefix_overlap(&sub->b4, o->p)) {
		o->found = true;
		o->index = sub->index;
		return 1;
	}
	return 0;
}

/* An explicit index inside the index range of a configured B4 prefix would
 * share its port block with a subscriber derived on first contact. */
static bool index_in_b4_range(const struct aftr_config *ac, uint32_t index, unsigned *k)
{
	for (unsigned i = 0; i < ac->nb4; i++) {
		uint64_t base = aftr_b4_range_base(ac, i), n = aftr_b4_range_size(ac, i);
		if (index >= base && index - base < n) {
			*k = i;
			return true;
		}
	}
	return false;
}

static void subscriber_add(struct ctl_call *c, const struct ctl_aval *av)
{
	struct pcpd_server *s = c->cx->srv;
	const struct aftr_config *ac = &s->cfg->aftr;
	struct aftr_sub_conf sc;
	memset(&sc, 0, sizeof(sc));
	if (!name_ok(av[SA_NAME].s, sizeof(sc.name))) {
		ctl_end_err(c, CE_BAD_ARGUMENT, "argument 'name': 1 to %zu characters of "
			    "[A-Za-z0-9._-]", sizeof(sc.name) - 1);
		return;
	}
	if (av[SA_IF].set && !name_ok(av[SA_IF].s, IF_NAMESIZE)) {
		ctl_end_err(c, CE_BAD_ARGUMENT, "argument 'interface': 1 to %d characters of "
			    "[A-Za-z0-9._-]", IF_NAMESIZE - 1);
		return;
	}
	if (!av[SA_B4].set && !av[SA_IF].set) {
		ctl_end_err(c, CE_BAD_ARGUMENT, "subscriber-add needs 'b4' and/or 'interface'");
		return;
	}
	uint32_t index = (uint32_t)av[SA_INDEX].u;
	unsigned k;
	if (index >= aftr_capacity(ac)) {
		ctl_end_err(c, CE_BAD_ARGUMENT, "index %u is beyond the pool's capacity (%u "
			    "subscribers)", index, aftr_capacity(ac));
		return;
	}
	if (index > KZONE_MAX_INDEX) {
		ctl_end_err(c, CE_BAD_ARGUMENT, "index %u is beyond the %u conntrack zones",
			    index, KZONE_MAX_INDEX + 1);
		return;
	}
	if (index_in_b4_range(ac, index, &k)) {
		char p[ADDR_STRLEN + 8];
		ctl_end_err(c, CE_BAD_ARGUMENT, "index %u belongs to the subscribers derived from "
			    "b4-prefix %s", index, prefix_str(&ac->b4_prefixes[k], p, sizeof(p)));
		return;
	}
	if (av[SA_B4].set) {
		if (av[SA_B4].pfx.plen == 0) {
			ctl_end_err(c, CE_BAD_ARGUMENT, "argument 'b4': prefix length must be at "
				    "least 1");
			return;
		}
		/* the B4 -> subscriber lookup must stay unambiguous */
		struct overlap ov = { .p = &av[SA_B4].pfx };
		rcu_read_lock();
		subs_foreach(s->subs, find_overlap, &ov);
		rcu_read_unlock();
		if (ov.found) {
			char p[ADDR_STRLEN + 8];
			ctl_end_err(c, CE_EXISTS, "b4 %s overlaps the B4 prefix of subscriber %u",
				    prefix_str(&av[SA_B4].pfx, p, sizeof(p)), ov.index);
			return;
		}
	}
	snprintf(sc.name, sizeof(sc.name), "%s", av[SA_NAME].s);
	sc.index = index;
	if (av[SA_B4].set) {
		sc.b4 = av[SA_B4].pfx;
		sc.has_b4 = true;
	}
	if (av[SA_IF].set)
		snprintf(sc.ifname, sizeof(sc.ifname), "%s", av[SA_IF].s);
	struct subscriber *sub = NULL;
	enum perr err = subs_add(s->subs, &sc, &sub);
	if (err == PERR_EXISTS) {
		ctl_end_err(c, CE_EXISTS, "the name, index %u, B4 prefix or interface is already "
			    "in use", index);
		return;
	}
	if (err != PERR_OK || !sub) {
		ctl_end_err(c, CE_FAILED, "subscriber %s not added: %s", sc.name, perr_str(err));
		return;
	}
	err = engine_sub_provision(&s->eng, sub);
	if (err != PERR_OK) {
		subs_remove(s->subs, sub);
		ctl_end_err(c, CE_FAILED, "subscriber %s not added: its data plane cannot be "
			    "installed (%s)", sc.name, perr_str(err));
		return;
	}
	rcu_read_lock();
	ctl_emit(c, ctl_json_subscriber(sub));
	rcu_read_unlock();
	ctl_end_ok(c);
}

static const struct ctl_aspec subscriber_add_args[] = {
	[SA_NAME] = { "name", CA_STR, true },
	[SA_INDEX] = { "index", CA_UINT, true },
	[SA_B4] = { "b4", CA_PREFIX6, false },
	[SA_IF] = { "interface", CA_STR, false },
	{ NULL, CA_STR, false },
};

const struct ctl_cmd ctl_cmd_subscriber_add = {
	"subscriber-add", true, subscriber_add_args, subscriber_add,
};
