/* Restart without loss (RFC 6887 §8.5, §14.1.3; DESIGN.md §7).
 *
 * The kernel's maps are the durable mapping state; what the kernel cannot
 * hold lives in the state directory:
 *   epoch    "BOOT_ID BASE": the monotonic second at which the epoch was 0.
 *            Kept while the kernel kept our table (same boot, table
 *            present), so clients see the epoch run on across a restart.
 *   clients  one line per subscriber with a known PCP client: "INDEX
 *            CLIENT PORT SERVER". Written within a second of a new client,
 *            every minute and at exit,
 *            so that when state WAS lost the new process can tell them
 *            (unsolicited ANNOUNCE, unicast, up to ten times with the
 *            interval doubling from 250 ms). */
#ifndef PCPD_RESTART_H
#define PCPD_RESTART_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "pcpd/server.h"
#include "pcpd/udp.h"

/* The epoch base to run with. kernel_fresh: the backend's state was lost
 * (table newly created). *continued tells whether the old epoch goes on.
 * The chosen base is written back. */
uint32_t restart_epoch(const char *state_dir, bool kernel_fresh, uint32_t now, bool *continued);

/* Reads the clients file of the previous run back into the subscribers
 * (derived ones are re-created), so that a later loss reaches clients
 * that have not spoken since this start. Returns how many. */
int restart_load_clients(const char *state_dir, struct subscribers *subs);

/* Writes the clients file atomically (tmp + rename). Returns how many. */
int restart_save_clients(const char *state_dir, struct subscribers *subs);

struct announcer;
/* Starts sending unsolicited ANNOUNCEs on loop to every subscriber's known
 * client (restart_load_clients() first). NULL if there is nobody to tell. */
struct announcer *announcer_start(struct ev_loop *loop, struct pcpd_server *srv,
				  struct udp_server *udp);
unsigned announcer_sent(const struct announcer *a);
void announcer_free(struct announcer *a);

#endif
