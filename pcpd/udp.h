/* UDP I/O: N worker threads, each with its own libev loop and its own
 * SO_REUSEPORT socket per listen address, so the kernel spreads requests
 * over the workers. Requests carry their destination address and ingress
 * interface (IP_PKTINFO / IPV6_RECVPKTINFO); replies leave from the
 * address the request was sent to, batched with sendmmsg. */
#ifndef PCPD_UDP_H
#define PCPD_UDP_H

#include <stddef.h>
#include <stdint.h>

#include "pcpd/handler.h"

struct udp_server;

/* Opens every socket (errors are logged; NULL if any listen address
 * cannot be bound) but starts no thread yet. */
struct udp_server *udp_server_new(struct pcp_handler *h, const struct pcpd_config *cfg);
int udp_server_start(struct udp_server *u);
/* Stops the workers and waits for them. */
void udp_server_stop(struct udp_server *u);
void udp_server_free(struct udp_server *u);
unsigned udp_server_workers(const struct udp_server *u);
/* A socket bound to the server address local (or to the wildcard of its
 * family), for replies that are not answers (unsolicited ANNOUNCE);
 * -1 if pcpd does not listen there. */
int udp_server_fd(const struct udp_server *u, const struct in6_addr *local);

/* The reply hook to give to the handler. */
void udp_reply(const struct pcp_meta *m, const uint8_t *buf, size_t len);

#endif
