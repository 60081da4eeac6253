/* One running pcpd: config, subscribers, table, backend, engine, handler.
 * Built without sockets so tests and fuzzers drive the real thing. */
#ifndef PCPD_SERVER_H
#define PCPD_SERVER_H

#include "aftr/backend.h"
#include "aftr/subscriber.h"
#include "aftr/table.h"
#include "pcpd/config.h"
#include "pcpd/engine.h"
#include "pcpd/handler.h"

struct pcpd_server {
	struct pcpd_config *cfg;         /* owned */
	struct subscribers *subs;
	struct table *table;
	struct kbackend *kb;
	struct kbackend_conf kconf;
	bool kernel_fresh;               /* the backend had no state of ours at open */
	struct engine eng;
	struct pcp_handler handler;
};

/* Takes ownership of cfg. The calling thread must be RCU-registered.
 * NULL on failure (logged). */
struct pcpd_server *pcpd_server_new(struct pcpd_config *cfg, uint32_t epoch_base,
				    pcp_reply_fn reply);
/* Installs every configured subscriber's data plane and, when the kernel
 * kept our state, rebuilds the table from it. Returns bindings restored,
 * or -1 if a subscriber could not be provisioned. */
long pcpd_server_restore(struct pcpd_server *s, uint32_t now);
void pcpd_server_free(struct pcpd_server *s);

#endif
