/* The provider table: one const ops per type, no #ifdefs. */
#include "ddns-hook/provider.h"

#include <stddef.h>

const struct ddns_provider_ops *ddns_provider_ops(enum ddns_ptype t)
{
	static const struct ddns_provider_ops *const ops[] = {
		[DDNS_RFC2136] = &ddns_rfc2136_ops,
		[DDNS_DYNDNS2] = &ddns_dyndns2_ops,
		[DDNS_WEBHOOK] = &ddns_webhook_ops,
		[DDNS_EXEC] = &ddns_exec_ops,
	};
	return (unsigned)t < sizeof(ops) / sizeof(ops[0]) ? ops[t] : NULL;
}
