/* pcpd's side of the DDNS hook: turns the engine's mapping changes into
 * hook events and answers the hook's snapshot requests from the table.
 * The hook itself (ddns-hook/) never sees pcpd's structures. */
#ifndef PCPD_DDNS_GLUE_H
#define PCPD_DDNS_GLUE_H

#include <stdbool.h>
#include <stddef.h>

#include "ddns-hook/hook.h"
#include "pcpd/server.h"

struct pcpd_ddns;

/* NULL with err[0] == '\0' when the config has no ddns section enabled;
 * NULL with err set when the hook cannot start (bad secret file mode...). */
struct pcpd_ddns *pcpd_ddns_new(struct pcpd_server *srv, char *err, size_t errlen);
/* Attaches to the engine and starts the hook thread. */
int pcpd_ddns_start(struct pcpd_ddns *d, bool state_lost);
struct ddns_hook *pcpd_ddns_hook(struct pcpd_ddns *d);
/* Detaches from the engine, then stops the hook. */
void pcpd_ddns_free(struct pcpd_ddns *d);

#endif
