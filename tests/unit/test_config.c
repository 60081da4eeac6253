/* Config: defaults, the example file, golden normalised output, round
 * trips, and rejected files with their file:line messages. */
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "pcpd/config.h"

#define CONFDIR SRCDIR "/tests/unit/config"
#define EXAMPLE SRCDIR "/conf/pcpd.conf"

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	int ch;
	while ((ch = fgetc(f)) != EOF)
		fputc(ch, m);
	fclose(f);
	fclose(m);
	return buf;
}

/* noinline: gcc otherwise takes the memstream's buffer for a dangling local */
static __attribute__((noinline)) char *print_str(const struct pcpd_config *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	pcpd_config_print(c, m);
	fclose(m);
	return buf;
}

/* Loads a file or (path NULL) a buffer, collecting the messages. */
static struct pcpd_config *load(const char *path, const char *text, char **errs)
{
	size_t len = 0;
	FILE *m = open_memstream(errs, &len);
	struct pcpd_config *c = path ? pcpd_config_load(path, m) : pcpd_config_load_buf(text, "buf", m);
	fclose(m);
	return c;
}

/* Loads and insists on success, showing the messages otherwise. */
static struct pcpd_config *load_ok(const char *path, const char *text)
{
	char *errs;
	struct pcpd_config *c = load(path, text, &errs);
	if (!c)
		print_error("%s: unexpected errors:\n%s", path ? path : "buf", errs);
	free(errs);
	assert_non_null(c);
	return c;
}

/* Field-wise equality: both come from calloc, so padding is zero. */
static void assert_config_equal(const struct pcpd_config *a, const struct pcpd_config *b)
{
	struct pcpd_config x, y;
	memcpy(&x, a, sizeof(x));
	memcpy(&y, b, sizeof(y));
	x.aftr.subs = y.aftr.subs = NULL;
	x.ddns.bindings = y.ddns.bindings = NULL;
	assert_memory_equal(&x, &y, sizeof(x));
	assert_int_equal(a->aftr.nsubs, b->aftr.nsubs);
	if (a->aftr.nsubs)
		assert_memory_equal(a->aftr.subs, b->aftr.subs, a->aftr.nsubs * sizeof(*a->aftr.subs));
	assert_int_equal(a->ddns.nbindings, b->ddns.nbindings);
	if (a->ddns.nbindings)
		assert_memory_equal(a->ddns.bindings, b->ddns.bindings,
				    a->ddns.nbindings * sizeof(*a->ddns.bindings));
}

/* print -> load -> equal, and the second print is identical. */
static void assert_round_trip(const struct pcpd_config *c)
{
	char *s1 = print_str(c);
	struct pcpd_config *again = load_ok(NULL, s1);
	assert_config_equal(c, again);
	char *s2 = print_str(again);
	assert_string_equal(s1, s2);
	free(s1);
	free(s2);
	pcpd_config_free(again);
}

static const char *pfx(const struct prefix *p, char *buf)
{
	return prefix_str(p, buf, ADDR_STRLEN + 8);
}

static void test_defaults(void **state)
{
	(void)state;
	char a[ADDR_STRLEN + 8];
	struct pcpd_config *c = load_ok(NULL, "");
	assert_int_equal(c->nlisten, 2);
	assert_string_equal(addr_str(&c->listen[0], a), "::1");
	assert_true(addr_is_v4mapped(&c->listen[1]));
	assert_string_equal(addr_str(&c->listen[1], a), "127.0.0.1");
	assert_int_equal(c->port, 5351);
	assert_int_equal(c->workers, 0);
	assert_true(c->enable_map && c->enable_peer && c->enable_natpmp && c->enable_third_party);
	assert_int_equal(c->min_lifetime, 120);
	assert_int_equal(c->max_lifetime, 86400);
	assert_int_equal(c->max_filters, 8);
	assert_string_equal(c->backend, "memory");
	assert_string_equal(c->state_dir, "/var/lib/pcpd");
	assert_int_equal(c->log_target, LOG_TO_STDERR);
	assert_int_equal(c->log_level, LOG_INFO);

	const struct aftr_config *f = &c->aftr;
	assert_int_equal(f->npool, 1);
	assert_int_equal(f->pool[0].first, 0xcb00710a);   /* 203.0.113.10 */
	assert_int_equal(f->pool[0].last, 0xcb00710a);
	assert_int_equal(f->port_min, 1024);
	assert_int_equal(f->ports_per_subscriber, 4096);
	assert_int_equal(f->pcp_ports, 1024);
	assert_int_equal(f->subscriber_plen, 128);
	assert_int_equal(f->nb4, 0);
	assert_int_equal(f->ninternal, 4);
	assert_string_equal(pfx(&f->internal[0], a), "10.0.0.0/8");
	assert_string_equal(pfx(&f->internal[1], a), "172.16.0.0/12");
	assert_string_equal(pfx(&f->internal[2], a), "192.168.0.0/16");
	assert_string_equal(pfx(&f->internal[3], a), "192.0.0.0/29");
	assert_int_equal(f->internal[3].plen, 96 + 29);
	assert_int_equal(f->max_mappings, 64);
	assert_int_equal(f->rate_limit, 20);
	assert_int_equal(f->rate_burst, 40);
	assert_int_equal(f->hold_down, 120);
	assert_int_equal(f->nsubs, 0);
	assert_null(f->subs);

	/* empty sections are the defaults too */
	struct pcpd_config *e = load_ok(NULL, "server {\n}\naftr {\n}\n");
	assert_config_equal(c, e);
	pcpd_config_free(e);
	pcpd_config_free(c);
}

static void test_example_conf(void **state)
{
	(void)state;
	char a[ADDR_STRLEN + 8];
	struct pcpd_config *c = load_ok(EXAMPLE, NULL);
	const struct aftr_config *f = &c->aftr;
	assert_int_equal(c->nlisten, 2);
	assert_int_equal(aftr_pool_size(f), 4);
	assert_int_equal(aftr_capacity(f), 124);
	assert_int_equal(f->nb4, 1);
	assert_int_equal(aftr_b4_range_size(f, 0), 16);
	assert_int_equal(f->nsubs, 2);
	assert_string_equal(f->subs[0].name, "demo-plain");
	assert_true(f->subs[0].has_b4);
	assert_string_equal(pfx(&f->subs[0].b4, a), "::1/128");
	assert_string_equal(f->subs[1].name, "demo-encap");
	assert_string_equal(f->subs[1].ifname, "lo");
	assert_false(f->subs[1].has_b4);
	assert_true(f->subs[0].index < f->subs[1].index);
	bool loopback = false;
	for (unsigned i = 0; i < f->ninternal; i++)
		loopback |= strcmp(pfx(&f->internal[i], a), "127.0.0.0/8") == 0;
	assert_true(loopback);
	assert_round_trip(c);
	pcpd_config_free(c);
}

/* Every tests/unit/config/NAME.out is the normalised print of NAME.conf. */
static void test_golden(void **state)
{
	(void)state;
	glob_t g;
	assert_int_equal(glob(CONFDIR "/*.out", 0, NULL, &g), 0);
	assert_true(g.gl_pathc >= 3);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		char conf[4096];
		snprintf(conf, sizeof(conf), "%.*s.conf", (int)(strlen(g.gl_pathv[i]) - 4),
			 g.gl_pathv[i]);
		char *want = slurp(g.gl_pathv[i]);
		assert_non_null(want);
		struct pcpd_config *c = load_ok(conf, NULL);
		char *got = print_str(c);
		if (strcmp(want, got) != 0)
			print_error("%s: printed form differs; got:\n%s", conf, got);
		assert_string_equal(want, got);
		free(want);
		free(got);
		pcpd_config_free(c);
	}
	globfree(&g);
}

/* Every good file (golden inputs and the example) survives print -> load. */
static void test_round_trip(void **state)
{
	(void)state;
	glob_t g;
	assert_int_equal(glob(CONFDIR "/*.conf", 0, NULL, &g), 0);
	unsigned n = 0;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		if (strstr(g.gl_pathv[i], "/bad-"))
			continue;
		struct pcpd_config *c = load_ok(g.gl_pathv[i], NULL);
		assert_round_trip(c);
		pcpd_config_free(c);
		n++;
	}
	globfree(&g);
	assert_true(n >= 3);
}

/* bad-X.conf is rejected with the message line in bad-X.err, which starts
 * with "bad-X.conf:LINE:". */
static void test_bad_files(void **state)
{
	(void)state;
	glob_t g;
	assert_int_equal(glob(CONFDIR "/bad-*.conf", 0, NULL, &g), 0);
	assert_true(g.gl_pathc >= 20);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		const char *path = g.gl_pathv[i], *base = strrchr(path, '/') + 1;
		char errfile[4096], prefix[256];
		snprintf(errfile, sizeof(errfile), "%.*s.err", (int)(strlen(path) - 5), path);
		char *want = slurp(errfile);
		if (!want)
			print_error("%s: no .err file\n", path);
		assert_non_null(want);
		want[strcspn(want, "\n")] = '\0';
		snprintf(prefix, sizeof(prefix), "%s:", base);
		assert_true(strncmp(want, prefix, strlen(prefix)) == 0);

		char *errs;
		struct pcpd_config *c = load(path, NULL, &errs);
		if (c || !strstr(errs, want))
			print_error("%s: expected \"%s\", got:\n%s", path, want, errs);
		assert_null(c);
		assert_non_null(strstr(errs, want));
		free(errs);
		free(want);
	}
	globfree(&g);
}

static void test_missing_file(void **state)
{
	(void)state;
	char *errs;
	assert_null(load("/nonexistent/pcpd-test/pcpd.conf", NULL, &errs));
	assert_non_null(strstr(errs, "/nonexistent/pcpd-test/pcpd.conf: cannot open"));
	assert_non_null(strstr(errs, "No such file"));
	free(errs);
	assert_null(load(CONFDIR, NULL, &errs));
	assert_non_null(strstr(errs, "cannot read"));
	free(errs);
	assert_null(pcpd_config_load("/nonexistent/pcpd-test/pcpd.conf", NULL));
}

static void test_nul_byte(void **state)
{
	(void)state;
	char path[] = "/tmp/pcpd-test-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	static const char text[] = "server {\n  port = 1\0\n}\n";
	assert_int_equal(write(fd, text, sizeof(text) - 1), sizeof(text) - 1);
	close(fd);
	char *errs;
	assert_null(load(path, NULL, &errs));
	unlink(path);
	assert_non_null(strstr(errs, ":2: NUL byte"));
	free(errs);
}

static void test_buffer_messages(void **state)
{
	(void)state;
	char *errs;
	assert_null(load(NULL, "server {\n  port = 0\n}\n", &errs));
	assert_string_equal(errs, "buf:2: port: 0 is out of range 1..65535\n");
	free(errs);
	assert_null(pcpd_config_load_buf("server {\n  port = 0\n}\n", "x", NULL));
	assert_null(pcpd_config_load_buf(NULL, "x", NULL));
	/* several checks after the parse: all reported */
	assert_null(load(NULL, "server {\n  min-lifetime = 10\n  max-lifetime = 5\n  listen = {}\n}\n",
			 &errs));
	assert_non_null(strstr(errs, "buf:3: max-lifetime (5)"));
	assert_non_null(strstr(errs, "buf:5: listen: at least one"));
	free(errs);
}

/* A lexer error mid-string must not leave libconfuse's global scanner in
 * a state that breaks the next parse. */
static void test_parse_after_lexer_error(void **state)
{
	(void)state;
	char *errs;
	assert_null(load(NULL, "server {\n  backend = \"\\9\"\n}\n", &errs));
	assert_non_null(strstr(errs, "buf:2:"));
	free(errs);
	struct pcpd_config *c = load_ok(NULL, "server {\n  backend = \"nftables\"\n}\n");
	assert_string_equal(c->backend, "nftables");
	pcpd_config_free(c);
}

static void test_syntax_features(void **state)
{
	(void)state;
	setenv("PCPD_TEST_STATE", "/run/pcpd-test", 1);
	unsetenv("PCPD_TEST_UNSET");
	struct pcpd_config *c = load_ok(NULL,
		"server {\n"
		"  state-dir = \"${PCPD_TEST_STATE}/x\"\n"
		"  backend = \"${PCPD_TEST_UNSET:-nftables}\"\n"
		"  listen += {\"192.0.2.1\"}\n"
		"}\n");
	assert_string_equal(c->state_dir, "/run/pcpd-test/x");
	assert_string_equal(c->backend, "nftables");
	assert_int_equal(c->nlisten, 3);
	pcpd_config_free(c);

	/* limits are inclusive: 16 listen addresses */
	char buf[1024] = "server {\n  listen = {";
	for (int i = 1; i <= PCPD_MAX_LISTEN; i++)
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s\"192.0.2.%d\"",
			 i > 1 ? ", " : "", i);
	strcat(buf, "}\n}\n");
	c = load_ok(NULL, buf);
	assert_int_equal(c->nlisten, PCPD_MAX_LISTEN);
	pcpd_config_free(c);
}

/* Subscribers come out in index order whatever the file or struct order. */
static void test_subscriber_order(void **state)
{
	(void)state;
	struct pcpd_config *c = load_ok(NULL,
		"aftr {\n"
		"  subscriber \"c\" { interface = \"sw2\"  index = 9 }\n"
		"  subscriber \"a\" { interface = \"sw0\"  index = 2 }\n"
		"  subscriber \"b\" { interface = \"sw1\"  index = 5 }\n"
		"}\n");
	assert_int_equal(c->aftr.nsubs, 3);
	assert_int_equal(c->aftr.subs[0].index, 2);
	assert_int_equal(c->aftr.subs[1].index, 5);
	assert_int_equal(c->aftr.subs[2].index, 9);
	char *s1 = print_str(c);
	struct aftr_sub_conf t = c->aftr.subs[0];
	c->aftr.subs[0] = c->aftr.subs[2];
	c->aftr.subs[2] = t;
	char *s2 = print_str(c);
	assert_string_equal(s1, s2);
	assert_true(strstr(s1, "\"a\"") < strstr(s1, "\"b\"") && strstr(s1, "\"b\"") < strstr(s1, "\"c\""));
	free(s1);
	free(s2);
	pcpd_config_free(c);
	pcpd_config_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_example_conf),
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_buffer_messages),
		cmocka_unit_test(test_parse_after_lexer_error),
		cmocka_unit_test(test_syntax_features),
		cmocka_unit_test(test_subscriber_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
