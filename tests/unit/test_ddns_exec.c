/* Exec provider: real programs (small /bin/sh scripts written at test
 * time) run on a real libev loop. The scripts report what they saw into
 * files next to them; the tests compare against the exact expectation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ddns-hook/provider.h"

#define LEAK_VAR "SECRET_SHOULD_NOT_LEAK"

static char g_base[64];                 /* whole run; removed at exit */
static bool g_in_send;                  /* set around send(): done() must not see it */

struct t {
	char dir[128];
	struct ev_loop *loop;
	ev_timer tick;                       /* keeps EVRUN_ONCE from sleeping forever */
	void *prov;
	struct ddns_provider_conf conf;
};

struct got {
	int calls;
	bool from_send;
	struct ddns_result r;
};

/* ---- helpers ---- */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleeps through signals: the loop must not run meanwhile. */
static void sleep_blocking(double s)
{
	double end = now() + s;
	while (now() < end)
		usleep(10000);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void rm_tree(const char *path)
{
	if (path[0])
		nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void rm_base(void)
{
	rm_tree(g_base);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

static void on_done(void *arg, const struct ddns_result *r)
{
	struct got *g = arg;
	g->calls++;
	g->from_send |= g_in_send;
	g->r = *r;
}

static void send_one(struct t *t, const struct ddns_update *u, struct got *g)
{
	g_in_send = true;
	ddns_exec_ops.send(t->prov, u, on_done, g);
	g_in_send = false;
	assert_int_equal(g->calls, 0);
}

/* Runs the loop until *count reaches want or max_s passes. */
static bool run_until(struct t *t, const int *count, int want, double max_s)
{
	double end = now() + max_s;
	while (*count < want && now() < end)
		ev_run(t->loop, EVRUN_ONCE);
	return *count >= want;
}

static void path_in(const struct t *t, const char *name, char *buf, size_t len)
{
	int r = snprintf(buf, len, "%s/%s", t->dir, name);
	assert_true(r > 0 && (size_t)r < len);
}

/* Writes dir/name as a #!/bin/sh script; "%D" in body is the test dir. */
static void write_script(const struct t *t, const char *name, mode_t mode, const char *body, char *path,
			 size_t len)
{
	path_in(t, name, path, len);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("#!/bin/sh\n", f);
	for (const char *s = body; *s; s++) {
		if (s[0] == '%' && s[1] == 'D') {
			fputs(t->dir, f);
			s++;
		} else {
			fputc(*s, f);
		}
	}
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* Whole file; *n bytes, NUL-terminated, NULL if absent. */
static char *slurp(const struct t *t, const char *name, size_t *n)
{
	char path[256];
	path_in(t, name, path, sizeof(path));
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap + 1);
	assert_non_null(buf);
	len = fread(buf, 1, cap, f);
	fclose(f);
	buf[len] = '\0';
	if (n)
		*n = len;
	return buf;
}

/* Splits NUL-terminated items; returns their count. */
static unsigned split_nul(char *buf, size_t n, char **items, unsigned max)
{
	unsigned k = 0;
	for (size_t i = 0; i < n && k < max;) {
		items[k++] = buf + i;
		i += strlen(buf + i) + 1;
	}
	return k;
}

static pid_t read_pid(const struct t *t, const char *name)
{
	char *s = slurp(t, name, NULL);
	assert_non_null(s);
	pid_t pid = (pid_t)atoi(s);
	free(s);
	assert_true(pid > 1);
	return pid;
}

/* Waits (running the loop) until the script has written name. */
static void wait_file(struct t *t, const char *name, double max_s)
{
	char path[256];
	struct stat st;
	path_in(t, name, path, sizeof(path));
	double end = now() + max_s;
	while ((stat(path, &st) < 0 || st.st_size == 0) && now() < end)
		ev_run(t->loop, EVRUN_ONCE);
	assert_true(stat(path, &st) == 0 && st.st_size > 0);
}

/* Reaped: neither running nor a zombie of ours. */
static void assert_gone(pid_t pid)
{
	assert_int_equal(kill(pid, 0), -1);
	assert_int_equal(errno, ESRCH);
	assert_int_equal(waitpid(pid, NULL, WNOHANG | __WALL), -1);
}

/* An orphaned grandchild is reparented: dead means gone or a zombie
 * waiting for whoever adopted it. */
static bool dead_or_zombie(pid_t pid)
{
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return true;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	return !p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X';
}

static void conf_for(struct t *t, const char *cmd)
{
	memset(&t->conf, 0, sizeof(t->conf));
	snprintf(t->conf.name, sizeof(t->conf.name), "prog");
	t->conf.type = DDNS_EXEC;
	snprintf(t->conf.command, sizeof(t->conf.command), "%s", cmd);
	t->conf.ttl = 60;
	t->conf.timeout_ms = 5000;
}

static void open_prov(struct t *t)
{
	char err[256] = "";
	t->prov = ddns_exec_ops.open(&t->conf, t->loop, err, sizeof(err));
	if (!t->prov)
		fail_msg("open: %s", err);
}

static const struct ddns_srv_conf g_svcs[2] = {
	{ "_http._tcp", 6, 80 },
	{ "_ssh._tcp", 6, 22 },
};

static void sample_update(struct ddns_update *u)
{
	memset(u, 0, sizeof(*u));
	u->name = "host1.example.net";
	u->subscriber = "alice";
	u->sub_index = 7;
	u->event = DDNS_CHANGED;
	u->seq = 42;
	u->has_addr = true;
	inet_pton(AF_INET, "192.0.2.10", &u->addr);
	u->services = g_svcs;
	u->nservices = 2;
	u->srv[0] = (struct ddns_srv_rec){ &g_svcs[0], 1024, 3600 };
	u->srv[1] = (struct ddns_srv_rec){ &g_svcs[1], 1030, UINT32_MAX };
	u->nsrv = 2;
	u->a = true;
	u->txt = "v=1 $(id) 'q'";
	u->ttl = 60;
}

/* The dumped environment is exactly want (any order). */
static void assert_env_exact(struct t *t, const char *const *want, unsigned nwant)
{
	size_t n;
	char *buf = slurp(t, "env.out", &n);
	char *items[64];
	assert_non_null(buf);
	unsigned k = split_nul(buf, n, items, 64);
	for (unsigned i = 0; i < k; i++) {
		assert_null(strstr(items[i], LEAK_VAR));
		bool found = false;
		for (unsigned w = 0; w < nwant && !found; w++)
			found = strcmp(items[i], want[w]) == 0;
		if (!found)
			fail_msg("unexpected variable in child: %s", items[i]);
	}
	for (unsigned w = 0; w < nwant; w++) {
		bool found = false;
		for (unsigned i = 0; i < k && !found; i++)
			found = strcmp(items[i], want[w]) == 0;
		if (!found)
			fail_msg("missing variable in child: %s", want[w]);
	}
	assert_int_equal(k, nwant);
	free(buf);
}

static const char env_script[] =
	"cat /proc/$$/environ > '%D/env.out'\n"
	"echo 'hello from child'\n"
	"echo 'second line'\n";

/* ---- fixtures ---- */

static int group_setup(void **state)
{
	(void)state;
	snprintf(g_base, sizeof(g_base), "/tmp/pcpd-exec-XXXXXX");
	if (!mkdtemp(g_base))
		return -1;
	atexit(rm_base);
	/* Must never reach a child. */
	setenv(LEAK_VAR, "hunter2", 1);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	rm_tree(g_base);
	return 0;
}

static int setup_with(void **state, struct ev_loop *loop)
{
	struct t *t = calloc(1, sizeof(*t));
	if (!t)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "%s/t-XXXXXX", g_base);
	if (!mkdtemp(t->dir) || !loop) {
		free(t);
		return -1;
	}
	t->loop = loop;
	ev_timer_init(&t->tick, on_tick, 0.02, 0.02);
	ev_timer_start(t->loop, &t->tick);
	*state = t;
	return 0;
}

static int setup(void **state)
{
	return setup_with(state, ev_loop_new(EVFLAG_AUTO));
}

/* pcpd's main thread runs the default loop, with its SIGCHLD reaper. */
static int setup_default(void **state)
{
	return setup_with(state, ev_default_loop(0));
}

static int teardown(void **state)
{
	struct t *t = *state;
	if (t->prov)
		ddns_exec_ops.close(t->prov);
	ev_timer_stop(t->loop, &t->tick);
	ev_loop_destroy(t->loop);
	rm_tree(t->dir);
	free(t);
	return 0;
}

/* ---- tests ---- */

static void test_env_exact(void **state)
{
	struct t *t = *state;
	struct ddns_update u;
	struct got g = { 0 };
	char cmd[256];

	write_script(t, "prog", 0755, env_script, cmd, sizeof(cmd));
	conf_for(t, cmd);
	open_prov(t);
	sample_update(&u);
	send_one(t, &u, &g);
	assert_true(run_until(t, &g.calls, 1, 10));
	assert_false(g.from_send);
	assert_int_equal(g.r.cls, DDNS_R_OK);
	assert_string_equal(g.r.code, "exit-0");
	assert_string_equal(g.r.msg, "exit 0: hello from child");

	static const char *const want[] = {
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"PCPD_EVENT=changed",
		"PCPD_SEQ=42",
		"PCPD_SUBSCRIBER=alice",
		"PCPD_SUB_INDEX=7",
		"PCPD_NAME=host1.example.net",
		"PCPD_ADDRESS=192.0.2.10",
		"PCPD_TTL=60",
		"PCPD_TXT=v=1 $(id) 'q'",
		"PCPD_A=1",
		"PCPD_RECORDS=_http._tcp/tcp/80/1024/3600 _ssh._tcp/tcp/22/1030/static",
		"PCPD_SERVICE=_http._tcp",
		"PCPD_PROTOCOL=tcp",
		"PCPD_INTERNAL_PORT=80",
		"PCPD_PORT=1024",
		"PCPD_LIFETIME=3600",
	};
	assert_env_exact(t, want, sizeof(want) / sizeof(want[0]));
}

static void test_env_removal(void **state)
{
	struct t *t = *state;
	struct ddns_update u;
	struct got g = { 0 };
	static const struct ddns_srv_conf udp = { "_sip._udp", 17, 5060 };
	char cmd[256];

	write_script(t, "prog", 0755, env_script, cmd, sizeof(cmd));
	conf_for(t, cmd);
	open_prov(t);

	/* A removal: no address, no records, no TXT, no A. */
	sample_update(&u);
	u.event = DDNS_DELETED;
	u.subscriber = "#3";
	u.sub_index = 3;
	u.seq = 18446744073709551615u;
	u.has_addr = false;
	u.nsrv = 0;
	u.a = false;
	u.txt = NULL;
	u.ttl = 300;
	send_one(t, &u, &g);
	assert_true(run_until(t, &g.calls, 1, 10));
	assert_int_equal(g.r.cls, DDNS_R_OK);
	static const char *const want_del[] = {
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"PCPD_EVENT=deleted",
		"PCPD_SEQ=18446744073709551615",
		"PCPD_SUBSCRIBER=#3",
		"PCPD_SUB_INDEX=3",
		"PCPD_NAME=host1.example.net",
		"PCPD_ADDRESS=",
		"PCPD_TTL=300",
		"PCPD_TXT=",
		"PCPD_A=0",
		"PCPD_RECORDS=",
		"PCPD_SERVICE=",
		"PCPD_PROTOCOL=",
		"PCPD_INTERNAL_PORT=",
		"PCPD_PORT=",
		"PCPD_LIFETIME=",
	};
	assert_env_exact(t, want_del, sizeof(want_del) / sizeof(want_del[0]));

	/* A creation whose first record is UDP and static. */
	memset(&g, 0, sizeof(g));
	sample_update(&u);
	u.event = DDNS_CREATED;
	u.srv[0] = (struct ddns_srv_rec){ &udp, 40000, UINT32_MAX };
	u.nsrv = 1;
	send_one(t, &u, &g);
	assert_true(run_until(t, &g.calls, 1, 10));
	static const char *const want_new[] = {
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"PCPD_EVENT=created",
		"PCPD_SEQ=42",
		"PCPD_SUBSCRIBER=alice",
		"PCPD_SUB_INDEX=7",
		"PCPD_NAME=host1.example.net",
		"PCPD_ADDRESS=192.0.2.10",
		"PCPD_TTL=60",
		"PCPD_TXT=v=1 $(id) 'q'",
		"PCPD_A=1",
		"PCPD_RECORDS=_sip._udp/udp/5060/40000/static",
		"PCPD_SERVICE=_sip._udp",
		"PCPD_PROTOCOL=udp",
		"PCPD_INTERNAL_PORT=5060",
		"PCPD_PORT=40000",
		"PCPD_LIFETIME=static",
	};
	assert_env_exact(t, want_new, sizeof(want_new) / sizeof(want_new[0]));
}

static void test_args_verbatim(void **state)
{
	struct t *t = *state;
	struct ddns_update u;
	struct got g = { 0 };
	char cmd[256], pwned[256], hostile[512], hostile2[512];

	write_script(t, "prog", 0755,
		     "for a in \"$@\"; do printf '%s\\0' \"$a\"; done > '%D/args.out'\n"
		     "printf '%s' \"$0\" > '%D/argv0.out'\n",
		     cmd, sizeof(cmd));
	path_in(t, "pwned", pwned, sizeof(pwned));
	snprintf(hostile, sizeof(hostile), "$(touch %s); ;|", pwned);
	snprintf(hostile2, sizeof(hostile2), "`touch %s` && rm -rf /nonexistent", pwned);
	const char *args[] = { "plain", "two words", hostile, hostile2, "'\"\\", "*", "", "--x=$HOME" };
	const unsigned nargs = sizeof(args) / sizeof(args[0]);

	conf_for(t, cmd);
	for (unsigned i = 0; i < nargs; i++)
		snprintf(t->conf.args[i], sizeof(t->conf.args[i]), "%s", args[i]);
	t->conf.nargs = nargs;
	open_prov(t);
	sample_update(&u);
	send_one(t, &u, &g);
	assert_true(run_until(t, &g.calls, 1, 10));
	assert_int_equal(g.r.cls, DDNS_R_OK);

	size_t n;
	char *buf = slurp(t, "args.out", &n), *items[16];
	assert_non_null(buf);
	assert_int_equal(split_nul(buf, n, items, 16), nargs);
	for (unsigned i = 0; i < nargs; i++)
		assert_string_equal(items[i], args[i]);
	free(buf);
	buf = slurp(t, "argv0.out", NULL);
	assert_non_null(buf);
	assert_string_equal(buf, cmd);
	free(buf);
	assert_int_equal(access(pwned, F_OK), -1);
}

static void test_exit_classes(void **state)
{
	struct t *t = *state;
	struct ddns_update u;
	char cmd[256];
	static const struct {
		uint64_t seq;
		enum ddns_rclass cls;
		const char *code, *msg;
	} cases[] = {
		{ 0, DDNS_R_OK, "exit-0", "exit 0: first line" },
		{ 75, DDNS_R_TRANSIENT, "exit-75", "exit 75 (temporary failure): first line" },
		{ 3, DDNS_R_PERM_NAME, "exit-3", "exit 3: first line" },
		{ 1, DDNS_R_PERM_NAME, "exit-1", "exit 1: first line" },
	};

	/* The exit status is taken from PCPD_SEQ; the message to stderr. */
	write_script(t, "prog", 0755,
		     "echo 'first line' >&2\n"
		     "echo 'second line'\n"
		     "exit \"$PCPD_SEQ\"\n",
		     cmd, sizeof(cmd));
	conf_for(t, cmd);
	open_prov(t);
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct got g = { 0 };
		sample_update(&u);
		u.seq = cases[i].seq;
		send_one(t, &u, &g);
		assert_true(run_until(t, &g.calls, 1, 10));
		assert_false(g.from_send);
		assert_int_equal(g.r.cls, cases[i].cls);
		assert_string_equal(g.r.code, cases[i].code);
		assert_string_equal(g.r.msg, cases[i].msg);
	}
}

static void test_signal(void **state)
{
	struct t *t = *state;
	struct ddns_update u;
	struct got g = { 0 };
	char cmd[256];

	write_script(t, "prog", 0755, "kill -USR1 $$\nsleep 5\n", cmd, sizeof(cmd));
	conf_for(t, cmd);
	open_prov(t);
	sample_update(&u);
	send_one(t, &u, &g);
	assert_true(run_until(t, &g.calls, 1, 10));
	assert_int_equal(g.r.cls, DDNS_R_TRANSIENT);
	char code[32];
	snprintf(code, sizeof(code), "signal-%d", SIGUSR1);
	assert_string_equal(g.r.code, code);
}

static void test_output_sanitised(void **state)
{
	struct t *t = *state;
	struct ddns_update u;
	struct got g = { 0 };
	char cmd[256];

	write_script(t, "prog", 0755,
		     "printf '\\n  \\033[31mred\\001\\377 x\\ty  \\r\\nnext\\n'\n"
		     "exit 4\n",
		     cmd, sizeof(cmd));
	conf_for(t, cmd);
	open_prov(t);
	sample_update(&u);
	send_one(t, &u, &g);
	assert_true(run_until(t, &g.calls, 1, 10));
	assert_int_equal(g.r.cls, DDNS_R_PERM_NAME);
	assert_string_equal(g.r.msg, "exit 4: ?[31mred?? x y");
}

/* Far more output than a pipe holds: the program must not block on it,
 * the message keeps only the head. */
static void test_big_output(void **state)
{
	struct t *t = *state;
	struct ddns_update u;
	struct got g = { 0 };
	char cmd[256];

	write_script(t, "prog", 0755,
		     "i=0\n"
		     "while [ $i -lt 4000 ]; do\n"
		     "  echo 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'\n"
		     "  i=$((i+1))\n"
		     "done\n",
		     cmd, sizeof(cmd));
	conf_for(t, cmd);
	open_prov(t);
	sample_update(&u);
	send_one(t, &u, &g);
	assert_true(run_until(t, &g.calls, 1, 10));
	assert_int_equal(g.r.cls, DDNS_R_OK);
	assert_string_equal(g.r.code, "exit-0");
	assert_true(strlen(g.r.msg) < sizeof(g.r.msg));
	assert_memory_equal(g.r.msg, "exit 0: xxxx", 12);
}

static void test_timeout(void **state)
{
	struct t *t = *state;
	struct ddns_update u;
	struct got g = { 0 };
	char cmd[256];

	write_script(t, "prog", 0755,
		     "echo $$ > '%D/pid'\n"
		     "echo 'working'\n"
		     "sleep 30 &\n"
		     "echo $! > '%D/kid'\n"
		     "wait\n",
		     cmd, sizeof(cmd));
	conf_for(t, cmd);
	t->conf.timeout_ms = 300;
	open_prov(t);
	sample_update(&u);
	double t0 = now();
	send_one(t, &u, &g);
	assert_true(run_until(t, &g.calls, 1, 10));
	double took = now() - t0;
	assert_true(took >= 0.25 && took < 1.5);
	assert_int_equal(g.r.cls, DDNS_R_TRANSIENT);
	assert_string_equal(g.r.code, "timeout");
	assert_string_equal(g.r.msg, "no exit within 300 ms, killed: working");
	assert_gone(read_pid(t, "pid"));

	/* The script's own child went with it. */
	pid_t kid = read_pid(t, "kid");
	double end = now() + 2;
	while (!dead_or_zombie(kid) && now() < end)
		usleep(10000);
	assert_true(dead_or_zombie(kid));
}

/* The script dies on SIGTERM, its child ignores it: the child still goes
 * (SIGKILL to the group once the leader is down). */
static void test_timeout_kills_group(void **state)
{
	struct t *t = *state;
	struct ddns_update u;
	struct got g = { 0 };
	char cmd[256];

	write_script(t, "prog", 0755,
		     "sh -c 'trap \"\" TERM; echo $$ > %D/kid; exec sleep 30' &\n"
		     "wait\n",
		     cmd, sizeof(cmd));
	conf_for(t, cmd);
	t->conf.timeout_ms = 300;
	open_prov(t);
	sample_update(&u);
	double t0 = now();
	send_one(t, &u, &g);
	assert_true(run_until(t, &g.calls, 1, 10));
	assert_true(now() - t0 < 1.0);
	assert_string_equal(g.r.code, "timeout");

	pid_t kid = read_pid(t, "kid");
	double end = now() + 2;
	while (!dead_or_zombie(kid) && now() < end)
		usleep(10000);
	assert_true(dead_or_zombie(kid));
}

static void test_timeout_ignores_term(void **state)
{
	struct t *t = *state;
	struct ddns_update u;
	struct got g = { 0 };
	char cmd[256];

	write_script(t, "prog", 0755,
		     "trap '' TERM\n"
		     "echo $$ > '%D/pid'\n"
		     "while :; do sleep 1; done\n",
		     cmd, sizeof(cmd));
	conf_for(t, cmd);
	t->conf.timeout_ms = 300;
	open_prov(t);
	sample_update(&u);
	double t0 = now();
	send_one(t, &u, &g);
	assert_true(run_until(t, &g.calls, 1, 10));
	double took = now() - t0;
	/* 300 ms, SIGTERM ignored, SIGKILL one second later. */
	assert_true(took >= 1.2 && took < 3.0);
	assert_int_equal(g.r.cls, DDNS_R_TRANSIENT);
	assert_string_equal(g.r.code, "timeout");
	assert_gone(read_pid(t, "pid"));
}

static void test_parallel(void **state)
{
	struct t *t = *state;
	struct ddns_update u;
	struct got g[3] = { { 0 } };
	static const uint64_t seq[3] = { 0, 75, 3 };
	static const char *const code[3] = { "exit-0", "exit-75", "exit-3" };
	char cmd[256];
	int total = 0;

	write_script(t, "prog", 0755, "sleep 1\necho \"seq $PCPD_SEQ\"\nexit \"$PCPD_SEQ\"\n", cmd, sizeof(cmd));
	conf_for(t, cmd);
	open_prov(t);
	double t0 = now();
	for (int i = 0; i < 3; i++) {
		sample_update(&u);
		u.seq = seq[i];
		send_one(t, &u, &g[i]);
	}
	double end = now() + 10;
	while (total < 3 && now() < end) {
		ev_run(t->loop, EVRUN_ONCE);
		total = g[0].calls + g[1].calls + g[2].calls;
	}
	assert_int_equal(total, 3);
	/* Sequential would need three seconds. */
	assert_true(now() - t0 < 2.5);
	for (int i = 0; i < 3; i++) {
		char msg[64];
		assert_int_equal(g[i].calls, 1);
		assert_false(g[i].from_send);
		assert_string_equal(g[i].r.code, code[i]);
		snprintf(msg, sizeof(msg), ": seq %d", (int)seq[i]);
		assert_non_null(strstr(g[i].r.msg, msg));
	}
}

static void test_fd_leak(void **state)
{
	struct t *t = *state;
	struct ddns_update u;
	struct got g = { 0 };
	char cmd[256];

	/* Descriptors the hook might hold without O_CLOEXEC. */
	int nul = open("/dev/null", O_RDONLY);
	int sock = socket(AF_INET, SOCK_DGRAM, 0);
	int pfd[2];
	assert_true(nul >= 0 && sock >= 0);
	assert_int_equal(pipe(pfd), 0);

	write_script(t, "prog", 0755,
		     /* read before any redirection: dash redirects in the shell itself */
		     "a=$(readlink /proc/$$/fd/0) b=$(readlink /proc/$$/fd/1) c=$(readlink /proc/$$/fd/2)\n"
		     "ls /proc/self/fd > '%D/fds'\n"
		     "echo \"$a\" > '%D/fd0'\n"
		     "echo \"$b\" > '%D/fd1'\n"
		     "echo \"$c\" > '%D/fd2'\n",
		     cmd, sizeof(cmd));
	conf_for(t, cmd);
	open_prov(t);
	sample_update(&u);
	send_one(t, &u, &g);
	bool ok = run_until(t, &g.calls, 1, 10);
	close(nul);
	close(sock);
	close(pfd[0]);
	close(pfd[1]);
	assert_true(ok);
	assert_int_equal(g.r.cls, DDNS_R_OK);

	/* ls sees 0, 1, 2 and the directory it reads (3), nothing else. */
	char *fds = slurp(t, "fds", NULL);
	assert_non_null(fds);
	bool seen[3] = { false };
	for (char *s = strtok(fds, "\n"); s; s = strtok(NULL, "\n")) {
		int fd = atoi(s);
		if (fd > 3)
			fail_msg("descriptor %s leaked into the child", s);
		if (fd < 3)
			seen[fd] = true;
	}
	free(fds);
	assert_true(seen[0] && seen[1] && seen[2]);

	char *fd0 = slurp(t, "fd0", NULL), *fd1 = slurp(t, "fd1", NULL), *fd2 = slurp(t, "fd2", NULL);
	assert_true(fd0 && fd1 && fd2);
	assert_string_equal(fd0, "/dev/null\n");
	assert_memory_equal(fd1, "pipe:[", 6);
	assert_string_equal(fd1, fd2);
	free(fd0);
	free(fd1);
	free(fd2);
}

static void test_open_refuses(void **state)
{
	struct t *t = *state;
	char good[256], noexec[256], wwrite[256], err[256];
	static const char *const bad_fixed[] = { "", "true", "bin/true", "./prog", "/nonexistent/prog", "/tmp" };

	write_script(t, "good", 0755, "exit 0\n", good, sizeof(good));
	write_script(t, "noexec", 0644, "exit 0\n", noexec, sizeof(noexec));
	write_script(t, "wwrite", 0777, "exit 0\n", wwrite, sizeof(wwrite));

	for (unsigned i = 0; i < sizeof(bad_fixed) / sizeof(bad_fixed[0]); i++) {
		conf_for(t, bad_fixed[i]);
		err[0] = '\0';
		assert_null(ddns_exec_ops.open(&t->conf, t->loop, err, sizeof(err)));
		assert_true(err[0] != '\0');
	}
	const char *const bad_files[] = { noexec, wwrite };
	for (unsigned i = 0; i < 2; i++) {
		conf_for(t, bad_files[i]);
		err[0] = '\0';
		assert_null(ddns_exec_ops.open(&t->conf, t->loop, err, sizeof(err)));
		assert_non_null(strstr(err, bad_files[i]));
	}
	/* Unterminated argument. */
	conf_for(t, good);
	memset(t->conf.args[0], 'a', sizeof(t->conf.args[0]));
	t->conf.nargs = 1;
	assert_null(ddns_exec_ops.open(&t->conf, t->loop, err, sizeof(err)));

	conf_for(t, good);
	open_prov(t);
	assert_int_equal(ddns_exec_ops.type, DDNS_EXEC);
}

static void test_close_running(void **state)
{
	struct t *t = *state;
	struct ddns_update u;
	struct got g = { 0 };
	char cmd[256];

	write_script(t, "prog", 0755, "echo $$ > '%D/pid'\nexec sleep 30\n", cmd, sizeof(cmd));
	conf_for(t, cmd);
	open_prov(t);
	sample_update(&u);
	send_one(t, &u, &g);
	wait_file(t, "pid", 10);
	pid_t pid = read_pid(t, "pid");
	assert_int_equal(kill(pid, 0), 0);

	ddns_exec_ops.close(t->prov);
	t->prov = NULL;
	assert_gone(pid);
	double end = now() + 0.2;
	while (now() < end)
		ev_run(t->loop, EVRUN_ONCE);
	assert_int_equal(g.calls, 0);
}

struct closer {
	struct got g;
	struct t *t;
};

static void on_done_close(void *arg, const struct ddns_result *r)
{
	struct closer *c = arg;
	on_done(&c->g, r);
	ddns_exec_ops.close(c->t->prov);
	c->t->prov = NULL;
}

/* done() may close the provider: the other attempt dies silently. */
static void test_close_from_done(void **state)
{
	struct t *t = *state;
	struct ddns_update u;
	struct got slow = { 0 };
	struct closer fast = { { 0 }, t };
	char cmd[256];

	write_script(t, "prog", 0755,
		     "if [ \"$PCPD_SEQ\" = 1 ]; then echo $$ > '%D/pid'; exec sleep 30; fi\n"
		     "exit 0\n",
		     cmd, sizeof(cmd));
	conf_for(t, cmd);
	open_prov(t);
	sample_update(&u);
	u.seq = 1;
	send_one(t, &u, &slow);
	wait_file(t, "pid", 10);
	pid_t pid = read_pid(t, "pid");

	u.seq = 2;
	g_in_send = true;
	ddns_exec_ops.send(t->prov, &u, on_done_close, &fast);
	g_in_send = false;
	assert_true(run_until(t, &fast.g.calls, 1, 10));
	assert_false(fast.g.from_send);
	assert_null(t->prov);
	assert_string_equal(fast.g.r.code, "exit-0");
	assert_gone(pid);
	double end = now() + 0.1;
	while (now() < end)
		ev_run(t->loop, EVRUN_ONCE);
	assert_int_equal(slow.calls, 0);
}

/* The program vanished after open(): reported later, from the loop; and
 * a pending report dies silently with close(). */
static void test_exec_failure(void **state)
{
	struct t *t = *state;
	struct ddns_update u;
	struct got g = { 0 }, g2 = { 0 };
	char cmd[256];

	write_script(t, "prog", 0755, "exit 0\n", cmd, sizeof(cmd));
	conf_for(t, cmd);
	open_prov(t);
	assert_int_equal(unlink(cmd), 0);
	sample_update(&u);
	send_one(t, &u, &g);
	assert_true(run_until(t, &g.calls, 1, 5));
	assert_false(g.from_send);
	assert_int_equal(g.r.cls, DDNS_R_PERM_PROVIDER);
	assert_string_equal(g.r.code, "exec");
	assert_non_null(strstr(g.r.msg, cmd));

	send_one(t, &u, &g2);
	ddns_exec_ops.close(t->prov);
	t->prov = NULL;
	double end = now() + 0.1;
	while (now() < end)
		ev_run(t->loop, EVRUN_ONCE);
	assert_int_equal(g2.calls, 0);
	assert_int_equal(g.calls, 1);
}

/* Linux >= 6.15 keeps the exit status on a pidfd after a foreign reap. */
static bool kernel_keeps_exit(void)
{
	struct utsname un;
	int maj = 0, min = 0;
	if (uname(&un) < 0 || sscanf(un.release, "%d.%d", &maj, &min) != 2)
		return false;
	return maj > 6 || (maj == 6 && min >= 15);
}

/* On the default loop libev reaps every SIGCHLD child with waitpid(-1)
 * before any other watcher runs. The status must still arrive where the
 * kernel keeps it; elsewhere the attempt is a retry, reported once. */
static void test_default_loop(void **state)
{
	struct t *t = *state;
	struct ddns_update u;
	char cmd[256];
	bool strict = kernel_keeps_exit();

	write_script(t, "prog", 0755, "exit 3\n", cmd, sizeof(cmd));
	conf_for(t, cmd);
	open_prov(t);
	for (int i = 0; i < 3; i++) {
		struct got g = { 0 };
		sample_update(&u);
		send_one(t, &u, &g);
		/* The loop is busy while the program exits: a SIGCHLD would be
		 * pending with libev's reaper (highest priority) when it runs. */
		sleep_blocking(0.3);
		assert_true(run_until(t, &g.calls, 1, 10));
		assert_int_equal(g.calls, 1);
		if (!strict && strcmp(g.r.code, "lost") == 0) {
			assert_int_equal(g.r.cls, DDNS_R_TRANSIENT);
			continue;
		}
		assert_int_equal(g.r.cls, DDNS_R_PERM_NAME);
		assert_string_equal(g.r.code, "exit-3");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_env_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_removal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_args_verbatim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_classes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_sanitised, setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_output, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_kills_group, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_ignores_term, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parallel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fd_leak, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_running, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_from_done, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exec_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_default_loop, setup_default, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
