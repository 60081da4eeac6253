#include "pcpd/server.h"

#include <stdlib.h>

#include "common/log.h"

struct pcpd_server *pcpd_server_new(struct pcpd_config *cfg, uint32_t epoch_base,
				    pcp_reply_fn reply)
{
	struct pcpd_server *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->cfg = cfg;
	const struct kbackend_ops *ops = kbackend_find(cfg->backend);
	if (!ops) {
		log_err("unknown kernel backend '%s'", cfg->backend);
		goto fail;
	}
	s->kconf = (struct kbackend_conf){ .table = cfg->nft_table, .keep_table = cfg->keep_table,
					   .aftr = &cfg->aftr };
	s->kernel_fresh = true;
	s->kb = ops->open(&s->kconf, &s->kernel_fresh);
	s->subs = subs_new(&cfg->aftr);
	s->table = table_new();
	if (!s->kb || !s->subs || !s->table) {
		log_err("cannot set up the %s backend, subscribers or table", ops->name);
		goto fail;
	}
	struct engine_limits lim = {
		.min_lifetime = cfg->min_lifetime,
		.max_lifetime = cfg->max_lifetime,
		.max_filters = cfg->max_filters,
		.max_mappings = cfg->aftr.max_mappings,
		.hold_down = cfg->aftr.hold_down,
	};
	engine_init(&s->eng, &lim, s->subs, s->table, s->kb);
	pcp_handler_init(&s->handler, cfg, s->subs, &s->eng, epoch_base, reply);
	return s;
fail:
	pcpd_server_free(s);
	return NULL;
}

static int provision_one(void *arg, struct subscriber *sub)
{
	struct pcpd_server *s = arg;
	return engine_sub_provision(&s->eng, sub) != PERR_OK;
}

long pcpd_server_restore(struct pcpd_server *s, uint32_t now)
{
	rcu_read_lock();
	subs_foreach(s->subs, provision_one, s);
	rcu_read_unlock();
	/* derived subscribers of the previous run come back with their bindings;
	 * on a fresh table this finds nothing but still removes the flows of
	 * bindings that were lost with it */
	return (long)engine_restore(&s->eng, now);
}

void pcpd_server_free(struct pcpd_server *s)
{
	if (!s)
		return;
	/* Let deferred frees of removed bindings run before the table goes. */
	rcu_barrier();
	table_free(s->table);
	subs_free(s->subs);
	if (s->kb)
		s->kb->ops->close(s->kb);
	pcpd_config_free(s->cfg);
	free(s);
}
