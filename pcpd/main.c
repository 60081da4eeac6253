/* pcpd: thin main over the libraries. */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mtime.h"
#include "pcpd/ctl.h"
#include "pcpd/ddns_glue.h"
#include "pcpd/restart.h"
#include "pcpd/server.h"
#include "pcpd/udp.h"

#define DEFAULT_CONF "/etc/pcpd/pcpd.conf"

struct mainctx {
	struct pcpd_server *srv;
	struct udp_server *udp;
	const char *conf_path;
	ev_timer expiry;
	ev_timer ifscan;
	ev_timer clients;
	ev_signal sigint, sigterm, sighup;
	struct announcer *announcer;
	struct ctl *ctl;
	struct pcpd_ddns *ddns;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: pcpd [-c FILE] [-n [-v]] [-d] [-V] [FILE]\n"
		   "  -c FILE  configuration file (default " DEFAULT_CONF ")\n"
		   "  -n       check the configuration and exit\n"
		   "  -v       with -n: print the normalised configuration\n"
		   "  -d       debug logging to stderr\n"
		   "  -V       print the version\n");
}

/* One pcpd per state directory: with SO_REUSEPORT a second daemon would
 * bind too and the kernel would split requests between two tables. The
 * lock is held for the life of the process (the fd stays open). */
static int lock_state_dir(const char *dir)
{
	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		log_err("state-dir %s: %s", dir, strerror(errno));
		return -1;
	}
	char path[300];
	snprintf(path, sizeof(path), "%s/pcpd.lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		log_err("%s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		log_err("%s: another pcpd is running with this state-dir", path);
		close(fd);
		return -1;
	}
	char pid[24];
	int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || write(fd, pid, (size_t)n) != n)
		log_warn("%s: cannot record the pid", path);
	return fd;
}

static void on_expiry(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	struct mainctx *mc = t->data;
	engine_expire(&mc->srv->eng, mtime_sec());
	mc->srv->kb->ops->flush(mc->srv->kb);
	/* a new client is on disk within a second: a kill -9 must not lose it */
	if (atomic_exchange(&mc->srv->handler.clients_dirty, false))
		restart_save_clients(mc->srv->cfg->state_dir, mc->srv->subs);
}

static void on_ifscan(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	struct mainctx *mc = t->data;
	unsigned n = subs_refresh_ifindexes(mc->srv->subs);
	if (n)
		log_info("softwire interfaces changed: %u subscriber(s) re-resolved", n);
}

/* Also rewritten now and then: a client's port may change without a new
 * subscriber endpoint being noticed (same values written again). */
static void on_clients(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	struct mainctx *mc = t->data;
	restart_save_clients(mc->srv->cfg->state_dir, mc->srv->subs);
}

static void on_stop(struct ev_loop *loop, ev_signal *s, int revents)
{
	(void)revents;
	log_info("signal %d: shutting down", s->signum);
	ev_break(loop, EVBREAK_ALL);
}

static void on_hup(struct ev_loop *loop, ev_signal *s, int revents)
{
	(void)loop;
	(void)revents;
	struct mainctx *mc = s->data;
	/* Only a check for now: live reload needs the control socket's
	 * atomic swap, so the running config stays in force. */
	struct pcpd_config *c = pcpd_config_load(mc->conf_path, stderr);
	if (c)
		log_warn("SIGHUP: %s is valid; restart pcpd to apply changes", mc->conf_path);
	else
		log_err("SIGHUP: %s is invalid; keeping the running configuration", mc->conf_path);
	pcpd_config_free(c);
}

/* pcpd -n also checks what the hook would refuse at start: secret files
 * that are missing, empty, or readable by group or others. */
static int check_secrets(const char *conf, const struct ddns_conf *d)
{
	int bad = 0;
	for (unsigned i = 0; d->enabled && i < d->nproviders; i++) {
		const struct ddns_provider_conf *p = &d->providers[i];
		const char *files[] = { p->key_file, p->credentials_file, p->hmac_key_file };
		for (unsigned k = 0; k < 3; k++) {
			char buf[1024], err[512];
			if (files[k][0] && ddns_secret_read(files[k], buf, sizeof(buf), err, sizeof(err)) < 0) {
				fprintf(stderr, "%s: provider '%s': %s\n", conf, p->name, err);
				bad = -1;
			}
			memset(buf, 0, sizeof(buf));
		}
	}
	return bad;
}

int main(int argc, char **argv)
{
	const char *conf = DEFAULT_CONF;
	bool check = false, verbose = false, debug = false;
	int opt;
	while ((opt = getopt(argc, argv, "c:nvdVh")) != -1) {
		switch (opt) {
		case 'c': conf = optarg; break;
		case 'n': check = true; break;
		case 'v': verbose = true; break;
		case 'd': debug = true; break;
		case 'V': printf("pcpd %s\n", PCPD_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	/* `pcpd -n FILE` / `pcpd -nv FILE`: the file may also come positionally */
	if (optind + 1 == argc)
		conf = argv[optind];
	else if (optind != argc) {
		usage(stderr);
		return 2;
	}
	struct pcpd_config *cfg = pcpd_config_load(conf, stderr);
	if (!cfg)
		return 1;
	if (check) {
		if (check_secrets(conf, &cfg->ddns) < 0) {
			pcpd_config_free(cfg);
			return 1;
		}
		if (verbose)
			pcpd_config_print(cfg, stdout);
		pcpd_config_free(cfg);
		return 0;
	}
	log_setup(debug ? LOG_TO_STDERR : cfg->log_target, debug ? LOG_DEBUG : cfg->log_level,
		  "pcpd");
	signal(SIGPIPE, SIG_IGN);
	int lockfd = lock_state_dir(cfg->state_dir);
	if (lockfd < 0) {
		pcpd_config_free(cfg);
		return 1;
	}
	rcu_register_thread();

	struct mainctx mc = { .conf_path = conf };
	mc.srv = pcpd_server_new(cfg, mtime_sec(), udp_reply);
	if (!mc.srv) {
		rcu_unregister_thread();
		return 1;
	}
	/* restart without loss: the kernel kept the mappings, the state
	 * directory the epoch (RFC 6887 §8.5) */
	uint32_t now = mtime_sec();
	long restored = pcpd_server_restore(mc.srv, now);
	bool continued;
	mc.srv->handler.epoch_base = restart_epoch(mc.srv->cfg->state_dir, mc.srv->kernel_fresh,
						   now, &continued);
	log_info("%s; epoch %s (%u s)", mc.srv->kernel_fresh ? "no kernel state of ours: fresh start"
							     : "kernel state found",
		 continued ? "continues" : "starts at 0", pcp_epoch(&mc.srv->handler, now));
	if (restored < 0)
		log_warn("some subscribers could not be provisioned");
	/* the hook starts before requests are served: its first snapshot has
	 * every restored mapping, later ones arrive as events */
	char derr[512];
	mc.ddns = pcpd_ddns_new(mc.srv, derr, sizeof(derr));
	if (!mc.ddns && derr[0]) {
		log_err("ddns: %s; not starting", derr);
		pcpd_server_free(mc.srv);
		rcu_unregister_thread();
		return 1;
	}
	if (mc.ddns && pcpd_ddns_start(mc.ddns, mc.srv->kernel_fresh) < 0) {
		log_err("ddns: cannot start the hook thread");
		pcpd_ddns_free(mc.ddns);
		pcpd_server_free(mc.srv);
		rcu_unregister_thread();
		return 1;
	}
	mc.udp = udp_server_new(&mc.srv->handler, mc.srv->cfg);
	if (!mc.udp || udp_server_start(mc.udp) < 0) {
		pcpd_ddns_free(mc.ddns);
		udp_server_free(mc.udp);
		pcpd_server_free(mc.srv);
		rcu_unregister_thread();
		return 1;
	}
	/* not the default loop: that one reaps every child (SIGCHLD), and the
	 * DDNS hook's exec provider must collect its own children's status */
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	if (!loop) {
		log_err("cannot create the event loop");
		pcpd_ddns_free(mc.ddns);
		udp_server_free(mc.udp);
		pcpd_server_free(mc.srv);
		rcu_unregister_thread();
		return 1;
	}
	ev_timer_init(&mc.expiry, on_expiry, 1.0, 1.0);
	mc.expiry.data = &mc;
	ev_timer_start(loop, &mc.expiry);
	ev_timer_init(&mc.ifscan, on_ifscan, 5.0, 5.0);
	mc.ifscan.data = &mc;
	ev_timer_start(loop, &mc.ifscan);
	struct ctl_conf cc = { .admin_gid = (gid_t)-1 };
	snprintf(cc.admin_path, sizeof(cc.admin_path), "%s", mc.srv->cfg->ctl_socket);
	snprintf(cc.monitor_path, sizeof(cc.monitor_path), "%s", mc.srv->cfg->ctl_monitor);
	if (mc.srv->cfg->ctl_admin_group[0]) {
		struct group *g = getgrnam(mc.srv->cfg->ctl_admin_group);
		if (g)
			cc.admin_gid = g->gr_gid;
		else
			log_warn("admin-group %s: no such group; the admin socket is root's only",
				 mc.srv->cfg->ctl_admin_group);
	}
	struct ctl_info ci = { .conf_path = conf, .start_sec = now,
			       .workers = udp_server_workers(mc.udp),
			       .ddns = pcpd_ddns_hook(mc.ddns) };
	/* the socket directory (/run/pcpd) may not exist yet */
	for (const char *p = cc.admin_path; p; p = p == cc.admin_path ? cc.monitor_path : NULL) {
		char dir[108];
		snprintf(dir, sizeof(dir), "%s", p);
		char *slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			if (mkdir(dir, 0755) < 0 && errno != EEXIST)
				log_warn("%s: %s", dir, strerror(errno));
		}
	}
	mc.ctl = ctl_new(mc.srv, loop, &cc, &ci);
	if (!mc.ctl) {
		udp_server_free(mc.udp);
		pcpd_ddns_free(mc.ddns);
		pcpd_server_free(mc.srv);
		rcu_unregister_thread();
		return 1;
	}
	ev_timer_init(&mc.clients, on_clients, 60.0, 60.0);
	mc.clients.data = &mc;
	ev_timer_start(loop, &mc.clients);
	/* clients of earlier runs stay known until they speak again */
	int known = restart_load_clients(mc.srv->cfg->state_dir, mc.srv->subs);
	if (known > 0)
		log_info("%d known PCP client(s) from earlier runs", known);
	if (mc.srv->kernel_fresh)
		mc.announcer = announcer_start(loop, mc.srv, mc.udp);
	ev_signal_init(&mc.sigint, on_stop, SIGINT);
	ev_signal_init(&mc.sigterm, on_stop, SIGTERM);
	ev_signal_init(&mc.sighup, on_hup, SIGHUP);
	mc.sighup.data = &mc;
	ev_signal_start(loop, &mc.sigint);
	ev_signal_start(loop, &mc.sigterm);
	ev_signal_start(loop, &mc.sighup);

	char a[ADDR_STRLEN];
	for (unsigned i = 0; i < mc.srv->cfg->nlisten; i++)
		log_info("listening on %s port %u", addr_str(&mc.srv->cfg->listen[i], a),
			 mc.srv->cfg->port);
	log_info("pcpd %s ready: %u worker(s), backend %s, %zu subscriber(s) configured",
		 PCPD_VERSION, udp_server_workers(mc.udp), mc.srv->kb->ops->name,
		 subs_count(mc.srv->subs));

	ev_run(loop, 0);

	ctl_free(mc.ctl);
	udp_server_free(mc.udp);
	pcpd_ddns_free(mc.ddns);        /* after the workers: no more events */
	announcer_free(mc.announcer);
	restart_save_clients(mc.srv->cfg->state_dir, mc.srv->subs);
	pcpd_server_free(mc.srv);
	ev_loop_destroy(loop);
	rcu_unregister_thread();
	close(lockfd);
	return 0;
}
