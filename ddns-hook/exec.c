/* Exec provider: runs a configured program once per update and classifies
 * its exit status. No shell is involved anywhere: the program gets the
 * configured argv verbatim and a clean environment that describes the
 * update, so nothing a subscriber controls (names, TXT) is ever parsed.
 *
 * Children are started vfork-style by clone(CLONE_PIDFD): the pidfd comes
 * with the child, so no pid can be recycled under us, and waitid(P_PIDFD)
 * reaps exactly that process. Somebody else may still reap it first: the
 * default libev loop (pcpd's main thread) reaps every child with
 * waitpid(-1) on SIGCHLD. The pidfd normally wakes us before the SIGCHLD
 * is even sent; if we lose anyway, kernels >= 6.15 still hand out the
 * status through PIDFD_GET_INFO, older ones make it a transient "lost". */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "ddns-hook/provider.h"

#define EXEC_PATH_ENV "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define EXEC_OUT_KEEP 200               /* output bytes kept for the result msg */
#define EXEC_KILL_GRACE 1.0             /* seconds between SIGTERM and SIGKILL */
#define EXEC_STACK (64 * 1024)          /* the child only runs a few syscalls */
#define EXEC_ENV_VARS 20
#define EXEC_ENV_BUF 16384
#define EXEC_ARG_MAX sizeof(((struct ddns_provider_conf *)0)->args[0])
#define EXEC_DEFAULT_TIMEOUT_MS 5000

/* PIDFD_GET_INFO, first published layout (Linux 6.13; exit_code since
 * 6.15). Local because Debian 12's headers predate it. */
struct xpidfd_info {
	uint64_t mask;
	uint64_t cgroupid;
	uint32_t ids[11];                /* pid, tgid, ppid, uids and gids */
	int32_t exit_code;               /* wait status */
};
_Static_assert(sizeof(struct xpidfd_info) == 64, "PIDFD_INFO_SIZE_VER0");
#define XPIDFD_GET_INFO _IOWR(0xFF, 11, struct xpidfd_info)
#define XPIDFD_INFO_EXIT (1ull << 3)

struct xstatus {
	bool signaled;
	int n;                           /* exit code or signal number */
};

struct xjob;

struct xprov {
	struct ev_loop *loop;
	double timeout;                  /* seconds */
	uint32_t timeout_ms;
	char cmd[DDNS_PATH_MAX];
	char args[DDNS_MAX_ARGS][EXEC_ARG_MAX];
	char *argv[DDNS_MAX_ARGS + 2];
	struct xjob *jobs;               /* every attempt not yet reported */
};

struct xjob {
	struct xprov *p;
	struct xjob *prev, *next;
	ddns_done_fn done;
	void *arg;
	pid_t pid;                       /* 0: never started, res holds the failure */
	int pidfd, outfd;
	ev_io pid_w, out_w;
	ev_timer timer;                  /* timeout, then kill grace; or the deferred failure */
	bool timed_out;
	struct ddns_result res;
	size_t outlen;
	char out[EXEC_OUT_KEEP];
};

/* ---- environment ---- */

struct envb {
	char *envp[EXEC_ENV_VARS + 1];
	unsigned n;
	size_t used;
	bool full;
	char buf[EXEC_ENV_BUF];
};

__attribute__((format(printf, 2, 3)))
static void env_put(struct envb *e, const char *fmt, ...)
{
	if (e->full || e->n >= EXEC_ENV_VARS) {
		e->full = true;
		return;
	}
	size_t room = sizeof(e->buf) - e->used;
	va_list ap;
	va_start(ap, fmt);
	int r = vsnprintf(e->buf + e->used, room, fmt, ap);
	va_end(ap);
	if (r < 0 || (size_t)r >= room) {
		e->full = true;
		return;
	}
	e->envp[e->n++] = e->buf + e->used;
	e->envp[e->n] = NULL;
	e->used += (size_t)r + 1;
}

static const char *event_str(enum ddns_event_kind k)
{
	switch (k) {
	case DDNS_CREATED: return "created";
	case DDNS_CHANGED: return "changed";
	case DDNS_DELETED: return "deleted";
	}
	return "changed";
}

static void proto_str(uint8_t proto, char *buf, size_t len)
{
	if (proto == IPPROTO_TCP)
		snprintf(buf, len, "tcp");
	else if (proto == IPPROTO_UDP)
		snprintf(buf, len, "udp");
	else
		snprintf(buf, len, "%u", proto);
}

static void lifetime_str(uint32_t lt, char *buf, size_t len)
{
	if (lt == UINT32_MAX)
		snprintf(buf, len, "static");
	else
		snprintf(buf, len, "%" PRIu32, lt);
}

/* The parts of one record, as strings: the same text goes into
 * PCPD_RECORDS and the PCPD_SERVICE.. variables. */
struct rec_txt {
	char service[64];
	char proto[8];
	char iport[8];
	char port[8];
	char life[12];
};

static void rec_format(const struct ddns_srv_rec *r, struct rec_txt *t)
{
	const struct ddns_srv_conf *c = r->conf;
	snprintf(t->service, sizeof(t->service), "%.*s", c ? (int)sizeof(t->service) - 1 : 0,
		 c ? c->service : "");
	proto_str(c ? c->proto : 0, t->proto, sizeof(t->proto));
	snprintf(t->iport, sizeof(t->iport), "%u", c ? c->int_port : 0u);
	snprintf(t->port, sizeof(t->port), "%u", r->port);
	lifetime_str(r->lifetime, t->life, sizeof(t->life));
}

/* "svc/proto/int/ext/life svc/..." into buf; false if it does not fit. */
static bool records_str(const struct ddns_update *u, unsigned nsrv, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (unsigned i = 0; i < nsrv; i++) {
		struct rec_txt t;
		rec_format(&u->srv[i], &t);
		int r = snprintf(buf + used, len - used, "%s%s/%s/%s/%s/%s", i ? " " : "",
				 t.service, t.proto, t.iport, t.port, t.life);
		if (r < 0 || (size_t)r >= len - used)
			return false;
		used += (size_t)r;
	}
	return true;
}

static bool env_build(struct envb *e, const struct ddns_update *u)
{
	char addr[INET_ADDRSTRLEN] = "";
	char recs[DDNS_MAX_SRV_RECS * 112];
	unsigned nsrv = u->nsrv < DDNS_MAX_SRV_RECS ? u->nsrv : DDNS_MAX_SRV_RECS;
	struct rec_txt first = { "", "", "", "", "" };

	if (u->has_addr)
		inet_ntop(AF_INET, &u->addr, addr, sizeof(addr));
	if (!records_str(u, nsrv, recs, sizeof(recs)))
		return false;
	if (nsrv)
		rec_format(&u->srv[0], &first);

	e->n = 0;
	e->used = 0;
	e->full = false;
	e->envp[0] = NULL;
	env_put(e, "%s", EXEC_PATH_ENV);
	env_put(e, "PCPD_EVENT=%s", event_str(u->event));
	env_put(e, "PCPD_SEQ=%" PRIu64, u->seq);
	env_put(e, "PCPD_SUBSCRIBER=%s", u->subscriber ? u->subscriber : "");
	env_put(e, "PCPD_SUB_INDEX=%" PRIu32, u->sub_index);
	env_put(e, "PCPD_NAME=%s", u->name ? u->name : "");
	env_put(e, "PCPD_ADDRESS=%s", addr);
	env_put(e, "PCPD_TTL=%" PRIu32, u->ttl);
	env_put(e, "PCPD_TXT=%s", u->txt ? u->txt : "");
	env_put(e, "PCPD_A=%d", u->a ? 1 : 0);
	env_put(e, "PCPD_RECORDS=%s", recs);
	env_put(e, "PCPD_SERVICE=%s", first.service);
	env_put(e, "PCPD_PROTOCOL=%s", first.proto);
	env_put(e, "PCPD_INTERNAL_PORT=%s", first.iport);
	env_put(e, "PCPD_PORT=%s", first.port);
	env_put(e, "PCPD_LIFETIME=%s", first.life);
	return !e->full;
}

/* ---- spawning ---- */

/* Shared with the vfork-style child: it writes err before _exit so the
 * parent, resumed only after execve or _exit, learns why. */
struct spawn_ctx {
	const char *path;
	char *const *argv;
	char *const *envp;
	int outw;                        /* pipe write end */
	volatile int err;
	volatile bool exec_failed;       /* err came from execve (the program), not setup */
};

/* Only for kernels without close_range (< 5.9). */
__attribute__((no_sanitize_address))
static void close_from_3(void)
{
	struct rlimit rl;
	int max = 1024;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 65536)
		max = (int)rl.rlim_cur;
	for (int fd = 3; fd < max; fd++)
		close(fd);
}

/* Runs in the child on its own stack while sharing the parent's memory:
 * only plain syscalls, no allocation, no locks, and not instrumented (the
 * sanitizers' bookkeeping would be done in the parent's memory). */
__attribute__((no_sanitize_address))
static int child_main(void *arg)
{
	struct spawn_ctx *s = arg;
	struct sigaction dfl = { .sa_handler = SIG_DFL }, old;
	sigset_t none;

	/* Handlers and ignores of the daemon (SIGPIPE, ...) are not the
	 * program's business: everything back to the default. */
	for (int sig = 1; sig < NSIG; sig++)
		if (sigaction(sig, NULL, &old) == 0 && old.sa_handler != SIG_DFL)
			sigaction(sig, &dfl, NULL);

	/* Own process group: a timeout kills the script's children too. */
	if (setpgid(0, 0) < 0)
		goto fail;
	/* Move the pipe above 2 first so the dup2s below always really
	 * duplicate (and thereby drop close-on-exec). */
	int w = fcntl(s->outw, F_DUPFD_CLOEXEC, 3);
	if (w < 0)
		goto fail;
	int nul = open("/dev/null", O_RDONLY);
	if (nul < 0 || (nul != 0 && dup2(nul, 0) < 0) || dup2(w, 1) < 0 || dup2(w, 2) < 0)
		goto fail;
	/* The hook holds sockets and state files: none may reach the program,
	 * whether or not somebody forgot O_CLOEXEC. */
	if (close_range(3, ~0u, 0) < 0)
		close_from_3();
	if (chdir("/") < 0)
		goto fail;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(s->path, s->argv, s->envp);
	s->exec_failed = true;
fail:
	s->err = errno ? errno : EINVAL;
	_exit(127);
}

/* The status from the pidfd of a child somebody else reaped. */
static bool status_from_pidfs(int pidfd, struct xstatus *xs)
{
	struct xpidfd_info info;
	memset(&info, 0, sizeof(info));
	info.mask = XPIDFD_INFO_EXIT;
	if (ioctl(pidfd, XPIDFD_GET_INFO, &info) < 0 || !(info.mask & XPIDFD_INFO_EXIT))
		return false;
	xs->signaled = WIFSIGNALED(info.exit_code);
	xs->n = xs->signaled ? WTERMSIG(info.exit_code) : WEXITSTATUS(info.exit_code);
	return true;
}

/* Reaps the child behind pidfd. 1: *xs set; 0: still running (only
 * without block); -1: gone, status unknown. */
static int reap(int pidfd, bool block, struct xstatus *xs)
{
	siginfo_t si;
	int r;

	memset(&si, 0, sizeof(si));
	do
		r = waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED | __WALL | (block ? 0 : WNOHANG));
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return status_from_pidfs(pidfd, xs) ? 1 : -1;
	if (si.si_pid == 0)
		return 0;
	xs->signaled = si.si_code != CLD_EXITED;
	xs->n = si.si_status;
	return 1;
}

/* Starts the program with stdout and stderr on outw. Returns 0 with pid
 * and pidfd set, or an errno value (*exec_failed: execve itself failed). */
static int spawn(const struct xprov *p, char *const envp[], int outw, pid_t *pid, int *pidfd,
		 bool *exec_failed)
{
	struct spawn_ctx s = { p->cmd, p->argv, envp, outw, 0, false };
	long page = sysconf(_SC_PAGESIZE);
	size_t sz = EXEC_STACK + (size_t)page;
	sigset_t all, old;
	int fd = -1;

	*exec_failed = false;
	char *stk = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stk == MAP_FAILED)
		return errno;
	/* Guard page: an overflow faults instead of writing into our memory. */
	mprotect(stk, (size_t)page, PROT_NONE);

	/* No handler of ours may run in the child while it shares our memory. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pid_t c = clone(child_main, stk + sz, CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &s, &fd);
	int e = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	munmap(stk, sz);

	if (c < 0)
		return e;
	if (s.err) {
		struct xstatus xs;
		reap(fd, true, &xs);
		close(fd);
		*exec_failed = s.exec_failed;
		return s.err;
	}
	*pid = c;
	*pidfd = fd;
	return 0;
}

/* ---- results ---- */

/* First non-empty line of the output as printable ASCII. */
static void first_line(const char *buf, size_t n, char *dst, size_t len)
{
	size_t i = 0, o = 0;
	while (i < n && (buf[i] == '\n' || buf[i] == '\r' || buf[i] == ' ' || buf[i] == '\t'))
		i++;
	for (; i < n && buf[i] != '\n' && buf[i] != '\r' && o + 1 < len; i++) {
		unsigned char ch = (unsigned char)buf[i];
		dst[o++] = ch == '\t' ? ' ' : (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	while (o && dst[o - 1] == ' ')
		o--;
	dst[o] = '\0';
}

static void set_result(struct ddns_result *r, enum ddns_rclass cls, const char *code,
		       const char *what, const char *line)
{
	memset(r, 0, sizeof(*r));
	r->cls = cls;
	snprintf(r->code, sizeof(r->code), "%s", code);
	if (snprintf(r->msg, sizeof(r->msg), "%s%s%s", what, *line ? ": " : "", line) < 0)
		r->msg[0] = '\0';
}

static void classify(const struct xjob *j, const struct xstatus *xs, struct ddns_result *r)
{
	char line[EXEC_OUT_KEEP + 1], code[32], what[64];
	enum ddns_rclass cls;

	first_line(j->out, j->outlen, line, sizeof(line));
	if (j->timed_out) {
		cls = DDNS_R_TRANSIENT;
		snprintf(code, sizeof(code), "timeout");
		snprintf(what, sizeof(what), "no exit within %" PRIu32 " ms, killed", j->p->timeout_ms);
	} else if (xs->signaled) {
		cls = DDNS_R_TRANSIENT;
		snprintf(code, sizeof(code), "signal-%d", xs->n);
		snprintf(what, sizeof(what), "killed by signal %d", xs->n);
	} else {
		int ex = xs->n;
		/* 0 done, EX_TEMPFAIL retry later, anything else: the program
		 * looked at this name and refused it. */
		cls = ex == 0 ? DDNS_R_OK : ex == EX_TEMPFAIL ? DDNS_R_TRANSIENT : DDNS_R_PERM_NAME;
		snprintf(code, sizeof(code), "exit-%d", ex);
		snprintf(what, sizeof(what), "exit %d%s", ex, ex == EX_TEMPFAIL ? " (temporary failure)" : "");
	}
	set_result(r, cls, code, what, line);
}

/* ---- job life cycle ---- */

static void job_link(struct xprov *p, struct xjob *j)
{
	j->p = p;
	j->next = p->jobs;
	if (p->jobs)
		p->jobs->prev = j;
	p->jobs = j;
}

static void job_unlink(struct xjob *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else
		j->p->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
}

/* Stops watchers and closes what the job holds; the child must already
 * be reaped (or never have existed). */
static void job_release(struct xjob *j)
{
	struct ev_loop *loop = j->p->loop;
	ev_timer_stop(loop, &j->timer);
	if (j->pidfd >= 0) {
		ev_io_stop(loop, &j->pid_w);
		close(j->pidfd);
		j->pidfd = -1;
	}
	if (j->outfd >= 0) {
		ev_io_stop(loop, &j->out_w);
		close(j->outfd);
		j->outfd = -1;
	}
	job_unlink(j);
}

/* Reports and frees. done() may close the provider or send again, so
 * nothing of the job or provider is touched after it. */
static void job_finish(struct xjob *j)
{
	ddns_done_fn done = j->done;
	void *arg = j->arg;
	struct ddns_result r = j->res;
	job_release(j);
	free(j);
	done(arg, &r);
}

/* Reads what is available; keeps the head, discards the rest so the
 * program never blocks on a full pipe. Closes on EOF. */
static void out_drain(struct xjob *j)
{
	char tmp[1024];
	for (int rounds = 0; j->outfd >= 0 && rounds < 64; rounds++) {
		ssize_t r = read(j->outfd, tmp, sizeof(tmp));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		if (r <= 0) {
			ev_io_stop(j->p->loop, &j->out_w);
			close(j->outfd);
			j->outfd = -1;
			return;
		}
		size_t keep = sizeof(j->out) - j->outlen;
		if (keep > (size_t)r)
			keep = (size_t)r;
		memcpy(j->out + j->outlen, tmp, keep);
		j->outlen += keep;
	}
}

static void on_output(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	out_drain(w->data);
}

/* The leader through its pidfd (immune to pid reuse), then its process
 * group, but only while the leader is unreaped (the pidfd signal worked):
 * until then the group id cannot name anyone else. */
static void job_signal(struct xjob *j, int sig)
{
	if (syscall(SYS_pidfd_send_signal, j->pidfd, sig, NULL, 0) == 0)
		kill(-j->pid, sig);
}

static void on_exit_ready(struct ev_loop *loop, ev_io *w, int revents)
{
	struct xjob *j = w->data;
	struct xstatus xs = { false, 0 };
	(void)loop;
	(void)revents;

	/* A readable pidfd means the leader has exited: after a timeout,
	 * whatever it left behind in its group goes too. */
	if (j->timed_out)
		job_signal(j, SIGKILL);
	int r = reap(j->pidfd, false, &xs);
	if (r == 0)
		return;
	out_drain(j);
	if (r < 0 && !j->timed_out)
		set_result(&j->res, DDNS_R_TRANSIENT, "lost", "exit status reaped by somebody else", "");
	else
		classify(j, &xs, &j->res);
	j->pid = 0;
	job_finish(j);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct xjob *j = w->data;
	(void)revents;

	if (!j->pid) {
		job_finish(j);           /* deferred failure */
		return;
	}
	if (!j->timed_out) {
		j->timed_out = true;
		job_signal(j, SIGTERM);
		ev_timer_set(w, EXEC_KILL_GRACE, 0.);
		ev_timer_start(loop, w);
		return;
	}
	job_signal(j, SIGKILL);
}

/* Reports a failure from the loop, never from inside send(). */
static void job_fail_later(struct xjob *j, enum ddns_rclass cls, const char *code, const char *what,
			   const char *detail)
{
	set_result(&j->res, cls, code, what, detail);
	ev_timer_set(&j->timer, 0., 0.);
	ev_timer_start(j->p->loop, &j->timer);
}

static void job_start(struct xjob *j, const struct ddns_update *u)
{
	struct xprov *p = j->p;
	struct envb *env = malloc(sizeof(*env));
	int pfd[2];
	bool exec_failed;

	if (!env) {
		job_fail_later(j, DDNS_R_TRANSIENT, "nomem", "out of memory", "");
		return;
	}
	if (!env_build(env, u)) {
		free(env);
		job_fail_later(j, DDNS_R_PERM_NAME, "env-too-long", "update too large for the environment", "");
		return;
	}
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		free(env);
		job_fail_later(j, DDNS_R_TRANSIENT, "spawn", "pipe", strerror(errno));
		return;
	}
	int e = spawn(p, env->envp, pfd[1], &j->pid, &j->pidfd, &exec_failed);
	free(env);
	close(pfd[1]);
	if (e) {
		close(pfd[0]);
		j->pid = 0;
		/* A program that cannot be executed stays broken until someone
		 * fixes it; a lack of fds or memory passes. */
		if (exec_failed)
			job_fail_later(j, DDNS_R_PERM_PROVIDER, "exec", p->cmd, strerror(e));
		else
			job_fail_later(j, DDNS_R_TRANSIENT, "spawn", "cannot start program", strerror(e));
		return;
	}
	j->outfd = pfd[0];
	fcntl(j->outfd, F_SETFL, fcntl(j->outfd, F_GETFL) | O_NONBLOCK);
	ev_io_set(&j->out_w, j->outfd, EV_READ);
	ev_io_start(p->loop, &j->out_w);
	ev_io_set(&j->pid_w, j->pidfd, EV_READ);
	ev_io_start(p->loop, &j->pid_w);
	ev_timer_set(&j->timer, p->timeout, 0.);
	ev_timer_start(p->loop, &j->timer);
}

/* ---- ops ---- */

static bool command_ok(const struct ddns_provider_conf *c, char *err, size_t errlen)
{
	size_t len = strnlen(c->command, sizeof(c->command));
	struct stat st;

	if (!len || len == sizeof(c->command)) {
		snprintf(err, errlen, "exec provider %s: no command (or not terminated)", c->name);
		return false;
	}
	if (c->command[0] != '/') {
		snprintf(err, errlen, "exec provider %s: command %s must be an absolute path", c->name, c->command);
		return false;
	}
	if (stat(c->command, &st) < 0) {
		snprintf(err, errlen, "exec provider %s: command %s: %s", c->name, c->command, strerror(errno));
		return false;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "exec provider %s: command %s is not a regular file", c->name, c->command);
		return false;
	}
	if (!(st.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH)) || faccessat(AT_FDCWD, c->command, X_OK, AT_EACCESS) < 0) {
		snprintf(err, errlen, "exec provider %s: command %s is not executable", c->name, c->command);
		return false;
	}
	/* The daemon runs it with its privileges: anyone able to rewrite it
	 * would own them. */
	if (st.st_mode & S_IWOTH) {
		snprintf(err, errlen, "exec provider %s: command %s is writable by others", c->name, c->command);
		return false;
	}
	return true;
}

static bool args_ok(const struct ddns_provider_conf *c, char *err, size_t errlen)
{
	if (c->nargs > DDNS_MAX_ARGS) {
		snprintf(err, errlen, "exec provider %s: more than %d arguments", c->name, DDNS_MAX_ARGS);
		return false;
	}
	for (unsigned i = 0; i < c->nargs; i++) {
		if (strnlen(c->args[i], sizeof(c->args[i])) == sizeof(c->args[i])) {
			snprintf(err, errlen, "exec provider %s: argument %u not terminated", c->name, i + 1);
			return false;
		}
	}
	return true;
}

static void *x_open(const struct ddns_provider_conf *c, struct ev_loop *loop, char *err, size_t errlen)
{
	if (!command_ok(c, err, errlen) || !args_ok(c, err, errlen))
		return NULL;
	struct xprov *p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "exec provider %s: out of memory", c->name);
		return NULL;
	}
	p->loop = loop;
	p->timeout_ms = c->timeout_ms ? c->timeout_ms : EXEC_DEFAULT_TIMEOUT_MS;
	p->timeout = p->timeout_ms / 1000.0;
	memcpy(p->cmd, c->command, sizeof(p->cmd));
	memcpy(p->args, c->args, sizeof(p->args));
	p->argv[0] = p->cmd;
	for (unsigned i = 0; i < c->nargs; i++)
		p->argv[i + 1] = p->args[i];
	p->argv[c->nargs + 1] = NULL;
	return p;
}

static void x_send(void *vp, const struct ddns_update *u, ddns_done_fn done, void *arg)
{
	struct xprov *p = vp;
	struct xjob *j = calloc(1, sizeof(*j));
	/* Without a few hundred bytes there is no way to keep the promise
	 * of exactly one later done(). */
	if (!j)
		abort();
	j->done = done;
	j->arg = arg;
	j->pidfd = -1;
	j->outfd = -1;
	ev_io_init(&j->pid_w, on_exit_ready, -1, EV_READ);
	ev_io_init(&j->out_w, on_output, -1, EV_READ);
	ev_timer_init(&j->timer, on_timer, 0., 0.);
	j->pid_w.data = j;
	j->out_w.data = j;
	j->timer.data = j;
	job_link(p, j);
	job_start(j, u);
}

/* SIGKILL cannot be refused, so the wait is short unless the program
 * sits in uninterruptible sleep; shutdown may take that long. */
static void x_close(void *vp)
{
	struct xprov *p = vp;
	if (!p)
		return;
	while (p->jobs) {
		struct xjob *j = p->jobs;
		if (j->pid) {
			struct xstatus xs;
			job_signal(j, SIGKILL);
			reap(j->pidfd, true, &xs);
		}
		job_release(j);
		free(j);
	}
	free(p);
}

const struct ddns_provider_ops ddns_exec_ops = { DDNS_EXEC, 0, x_open, x_send, x_close };
