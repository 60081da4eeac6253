/* placeholder: replaced by the rfc2136 provider */
#include "ddns-hook/provider.h"
#include <stdio.h>
static void *ph_open(const struct ddns_provider_conf *c, struct ev_loop *l, char *err, size_t n)
{
	(void)c; (void)l;
	snprintf(err, n, "rfc2136 provider not built yet");
	return NULL;
}
static void ph_send(void *p, const struct ddns_update *u, ddns_done_fn d, void *a) { (void)p; (void)u; (void)d; (void)a; }
static void ph_close(void *p) { (void)p; }
const struct ddns_provider_ops ddns_rfc2136_ops = { DDNS_RFC2136, 0, ph_open, ph_send, ph_close };
