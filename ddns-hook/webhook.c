/* placeholder: replaced by the webhook provider */
#include "ddns-hook/provider.h"
#include <stdio.h>
static void *ph_open(const struct ddns_provider_conf *c, struct ev_loop *l, char *err, size_t n)
{
	(void)c; (void)l;
	snprintf(err, n, "webhook provider not built yet");
	return NULL;
}
static void ph_send(void *p, const struct ddns_update *u, ddns_done_fn d, void *a) { (void)p; (void)u; (void)d; (void)a; }
static void ph_close(void *p) { (void)p; }
const struct ddns_provider_ops ddns_webhook_ops = { DDNS_WEBHOOK, 0, ph_open, ph_send, ph_close };
