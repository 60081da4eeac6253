/* The control socket (docs/control-protocol.md): versioned JSON lines over
 * two UNIX stream sockets, an admin one that accepts every command and a
 * read-only monitor one. Runs on the main thread's libev loop, which must
 * be RCU-registered. pcpctl(8) is its client. */
#ifndef PCPD_CTL_H
#define PCPD_CTL_H

#include <stdint.h>
#include <sys/types.h>

#define CTL_PROTO_VERSION 1
#define CTL_DEFAULT_ADMIN_PATH "/run/pcpd/pcpd.sock"
#define CTL_DEFAULT_MONITOR_PATH "/run/pcpd/pcpd-monitor.sock"

struct ev_loop;
struct pcpd_server;
struct ddns_hook;

struct ctl_conf {
	char admin_path[108];        /* "" = no admin socket */
	char monitor_path[108];      /* "" = no monitor socket */
	gid_t admin_gid;             /* (gid_t)-1: root and pcpd's own uid only */
};

struct ctl_info {
	const char *conf_path;       /* not copied: must outlive the ctl */
	uint32_t start_sec;          /* mtime_sec() at start */
	unsigned workers;
	struct ddns_hook *ddns;      /* NULL: no DDNS hook */
};

struct ctl;

/* Binds both sockets (stale ones are unlinked, live ones refused) and
 * starts serving on loop. NULL on failure, with the reason logged. */
struct ctl *ctl_new(struct pcpd_server *srv, struct ev_loop *loop, const struct ctl_conf *conf,
		    const struct ctl_info *info);
/* Closes every connection and both sockets and unlinks the socket files.
 * NULL-safe. Call before the server is freed. */
void ctl_free(struct ctl *c);

#endif
