/* Port allocator: forbidden ports, exhaustion, next-fit, hold-down. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "aftr/portalloc.h"
#include "common/addr.h"

#define TCP 6
#define UDP 17

static struct port_owner owner(uint32_t v4, uint16_t port, uint8_t nonce_byte)
{
	struct port_owner o;
	memset(&o, 0, sizeof(o));
	addr_from_v4(&o.int_addr, v4);
	o.int_port = port;
	memset(o.nonce, nonce_byte, sizeof(o.nonce));
	return o;
}

/* Takes every port portalloc_any will give; returns how many. */
static unsigned drain(struct portalloc *pa, uint32_t now, uint8_t *seen)
{
	const struct port_owner o = owner(0xc0a80102, 80, 1);
	unsigned n = 0;
	uint16_t p;
	while (portalloc_any(pa, now, &o, &p) == PERR_OK) {
		if (seen) {
			assert_int_equal(seen[p], 0);  /* never handed out twice */
			seen[p] = 1;
		}
		n++;
		assert_true(n <= 65536);
	}
	return n;
}

static void test_forbidden_predicate(void **state)
{
	(void)state;
	assert_true(port_forbidden(TCP, 0));
	assert_true(port_forbidden(TCP, 1023));
	assert_false(port_forbidden(TCP, 1024));
	assert_true(port_forbidden(UDP, 5350));
	assert_true(port_forbidden(UDP, 5351));
	assert_false(port_forbidden(UDP, 5352));
	assert_false(port_forbidden(UDP, 5349));
	assert_false(port_forbidden(TCP, 5350));
	assert_false(port_forbidden(TCP, 5351));
	assert_false(port_forbidden(UDP, 65535));
}

static void test_udp_pcp_ports_skipped(void **state)
{
	(void)state;
	static uint8_t seen[65536];
	memset(seen, 0, sizeof(seen));
	struct portalloc pa;
	assert_int_equal(portalloc_init(&pa, UDP, 5340, 20, 7), PERR_OK);
	assert_int_equal(pa.used, 0);
	assert_int_equal(drain(&pa, 100, seen), 18);
	assert_int_equal(pa.used, 18);
	assert_int_equal(seen[5350], 0);
	assert_int_equal(seen[5351], 0);
	for (unsigned p = 5340; p < 5360; p++)
		if (p != 5350 && p != 5351)
			assert_int_equal(seen[p], 1);
	uint16_t port;
	const struct port_owner o = owner(1, 1, 1);
	assert_int_equal(portalloc_any(&pa, 100, &o, &port), PERR_PORTS_EXHAUSTED);
	assert_int_equal(portalloc_take(&pa, 5350, 100, &o), PERR_EXISTS);
	assert_int_equal(portalloc_take(&pa, 5351, 100, &o), PERR_EXISTS);
	/* releasing a forbidden port must not make it allocatable */
	portalloc_release(&pa, 5350, 100, 0, &o);
	assert_int_equal(pa.used, 18);
	assert_int_equal(portalloc_any(&pa, 100, &o, &port), PERR_PORTS_EXHAUSTED);
	portalloc_fini(&pa);
}

static void test_tcp_pcp_ports_allowed(void **state)
{
	(void)state;
	static uint8_t seen[65536];
	memset(seen, 0, sizeof(seen));
	struct portalloc pa;
	assert_int_equal(portalloc_init(&pa, TCP, 5340, 20, 0), PERR_OK);
	assert_int_equal(drain(&pa, 100, seen), 20);
	assert_int_equal(seen[5350], 1);
	assert_int_equal(seen[5351], 1);
	portalloc_fini(&pa);

	const struct port_owner o = owner(1, 1, 1);
	assert_int_equal(portalloc_init(&pa, TCP, 5340, 20, 0), PERR_OK);
	assert_int_equal(portalloc_take(&pa, 5350, 100, &o), PERR_OK);
	assert_int_equal(pa.used, 1);
	portalloc_fini(&pa);
}

static void test_range_below_1024(void **state)
{
	(void)state;
	static uint8_t seen[65536];
	memset(seen, 0, sizeof(seen));
	struct portalloc pa;
	assert_int_equal(portalloc_init(&pa, TCP, 1000, 40, 3), PERR_OK);
	assert_int_equal(pa.used, 0);
	assert_int_equal(drain(&pa, 5, seen), 16);
	for (unsigned p = 0; p < 1024; p++)
		assert_int_equal(seen[p], 0);
	for (unsigned p = 1024; p < 1040; p++)
		assert_int_equal(seen[p], 1);
	const struct port_owner o = owner(1, 1, 1);
	assert_int_equal(portalloc_take(&pa, 1000, 5, &o), PERR_EXISTS);
	assert_int_equal(portalloc_take(&pa, 1023, 5, &o), PERR_EXISTS);
	portalloc_fini(&pa);

	/* a range entirely below 1024 has nothing to give */
	assert_int_equal(portalloc_init(&pa, UDP, 0, 1024, 0), PERR_OK);
	uint16_t port;
	assert_int_equal(portalloc_any(&pa, 0, &o, &port), PERR_PORTS_EXHAUSTED);
	portalloc_fini(&pa);
}

static void test_init_bounds(void **state)
{
	(void)state;
	struct portalloc pa;
	assert_int_equal(portalloc_init(&pa, TCP, 2000, 0, 0), PERR_INVAL);
	assert_int_equal(portalloc_init(&pa, TCP, 65530, 7, 0), PERR_INVAL);
	assert_int_equal(portalloc_init(&pa, TCP, 65500, 36, 0), PERR_OK);
	assert_true(portalloc_in_range(&pa, 65535));
	assert_true(portalloc_in_range(&pa, 65500));
	assert_false(portalloc_in_range(&pa, 65499));
	assert_int_equal(drain(&pa, 0, NULL), 36);
	portalloc_fini(&pa);
	portalloc_fini(&pa);  /* idempotent */
}

static void test_exhaustion_exact(void **state)
{
	(void)state;
	static uint8_t seen[65536];
	/* 130 ports: three words, the last one partial */
	for (uint32_t seed = 0; seed < 300; seed += 37) {
		memset(seen, 0, sizeof(seen));
		struct portalloc pa;
		assert_int_equal(portalloc_init(&pa, TCP, 20000, 130, seed), PERR_OK);
		assert_int_equal(drain(&pa, 0, seen), 130);
		assert_int_equal(pa.used, 130);
		for (unsigned p = 20000; p < 20130; p++)
			assert_int_equal(seen[p], 1);
		assert_int_equal(seen[19999], 0);
		assert_int_equal(seen[20130], 0);

		const struct port_owner o = owner(1, 1, 1);
		uint16_t port;
		assert_int_equal(portalloc_any(&pa, 0, &o, &port), PERR_PORTS_EXHAUSTED);
		portalloc_release(&pa, 20077, 0, 0, &o);
		assert_int_equal(pa.used, 129);
		assert_int_equal(portalloc_any(&pa, 0, &o, &port), PERR_OK);
		assert_int_equal(port, 20077);
		assert_int_equal(portalloc_any(&pa, 0, &o, &port), PERR_PORTS_EXHAUSTED);
		portalloc_fini(&pa);
	}
}

static void test_next_fit(void **state)
{
	(void)state;
	struct portalloc pa;
	const struct port_owner o = owner(1, 1, 1);
	uint16_t port;
	assert_int_equal(portalloc_init(&pa, TCP, 40000, 10, 5), PERR_OK);
	const uint16_t want[] = { 40005, 40006, 40007, 40008, 40009, 40000, 40001 };
	for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_int_equal(portalloc_any(&pa, 0, &o, &port), PERR_OK);
		assert_int_equal(port, want[i]);
	}
	/* a released port behind the cursor is not reused before the wrap */
	portalloc_release(&pa, 40006, 0, 0, &o);
	assert_int_equal(portalloc_any(&pa, 0, &o, &port), PERR_OK);
	assert_int_equal(port, 40002);
	portalloc_fini(&pa);
}

static void test_take(void **state)
{
	(void)state;
	struct portalloc pa;
	const struct port_owner a = owner(0xc0a80102, 80, 0xaa);
	const struct port_owner b = owner(0xc0a80103, 80, 0xbb);
	assert_int_equal(portalloc_init(&pa, TCP, 20000, 100, 0), PERR_OK);
	assert_int_equal(portalloc_take(&pa, 20005, 10, &a), PERR_OK);
	assert_int_equal(pa.used, 1);
	assert_int_equal(portalloc_take(&pa, 20005, 10, &a), PERR_EXISTS);
	assert_int_equal(portalloc_take(&pa, 20005, 10, &b), PERR_EXISTS);
	assert_int_equal(portalloc_take(&pa, 19999, 10, &a), PERR_EXISTS);
	assert_int_equal(portalloc_take(&pa, 20100, 10, &a), PERR_EXISTS);
	assert_int_equal(pa.used, 1);

	/* held for a: b is refused, a takes it back */
	portalloc_release(&pa, 20005, 10, 120, &a);
	assert_int_equal(pa.used, 0);
	assert_int_equal(portalloc_held(&pa, 10), 1);
	assert_int_equal(portalloc_take(&pa, 20005, 20, &b), PERR_EXISTS);
	assert_int_equal(portalloc_take(&pa, 20005, 20, NULL), PERR_EXISTS);
	assert_int_equal(portalloc_take(&pa, 20005, 20, &a), PERR_OK);
	assert_int_equal(portalloc_held(&pa, 20), 0);
	assert_int_equal(pa.used, 1);

	/* after the hold expires anyone may take it */
	portalloc_release(&pa, 20005, 100, 120, &a);
	assert_int_equal(portalloc_take(&pa, 20005, 219, &b), PERR_EXISTS);
	assert_int_equal(portalloc_take(&pa, 20005, 220, &b), PERR_OK);
	assert_int_equal(portalloc_held(&pa, 220), 0);
	portalloc_fini(&pa);
}

static void test_hold_down(void **state)
{
	(void)state;
	struct portalloc pa;
	const struct port_owner a = owner(0xc0a80102, 8080, 0xaa);
	const struct port_owner a2 = owner(0xc0a80102, 8080, 0xab);   /* other nonce */
	const struct port_owner b = owner(0xc0a80103, 8080, 0xaa);    /* other host */
	uint16_t port;

	assert_int_equal(portalloc_init(&pa, UDP, 30000, 4, 0), PERR_OK);
	assert_int_equal(drain(&pa, 1000, NULL), 4);
	portalloc_release(&pa, 30002, 1000, 120, &a);
	assert_int_equal(pa.used, 3);
	assert_int_equal(portalloc_held(&pa, 1000), 1);

	/* the only free port is held: nobody else gets it */
	assert_int_equal(portalloc_any(&pa, 1000, &b, &port), PERR_PORTS_EXHAUSTED);
	assert_int_equal(portalloc_any(&pa, 1119, &a2, &port), PERR_PORTS_EXHAUSTED);
	assert_int_equal(portalloc_any(&pa, 1119, NULL, &port), PERR_PORTS_EXHAUSTED);
	/* the owner with the same nonce reclaims it */
	assert_int_equal(portalloc_any(&pa, 1119, &a, &port), PERR_OK);
	assert_int_equal(port, 30002);
	assert_int_equal(portalloc_held(&pa, 1119), 0);

	/* expiry: held while now < until */
	portalloc_release(&pa, 30002, 2000, 120, &a);
	assert_int_equal(portalloc_any(&pa, 2119, &b, &port), PERR_PORTS_EXHAUSTED);
	assert_int_equal(portalloc_held(&pa, 2119), 1);
	assert_int_equal(portalloc_any(&pa, 2120, &b, &port), PERR_OK);
	assert_int_equal(port, 30002);
	assert_int_equal(portalloc_held(&pa, 2120), 0);

	/* hold_down 0: no hold at all */
	portalloc_release(&pa, 30001, 3000, 0, &a);
	assert_int_equal(portalloc_held(&pa, 3000), 0);
	assert_int_equal(portalloc_any(&pa, 3000, &b, &port), PERR_OK);
	assert_int_equal(port, 30001);
	portalloc_fini(&pa);
}

static void test_hold_reclaim_preferred(void **state)
{
	(void)state;
	struct portalloc pa;
	const struct port_owner a = owner(0xc0a80102, 5000, 1);
	const struct port_owner b = owner(0xc0a80104, 5000, 2);
	uint16_t pa_port, p;
	assert_int_equal(portalloc_init(&pa, TCP, 50000, 200, 17), PERR_OK);
	assert_int_equal(portalloc_any(&pa, 0, &a, &pa_port), PERR_OK);
	assert_int_equal(pa_port, 50017);
	for (int i = 0; i < 10; i++)
		assert_int_equal(portalloc_any(&pa, 0, &b, &p), PERR_OK);
	portalloc_release(&pa, pa_port, 0, 120, &a);
	/* many holds, then other owners never land on a's port */
	for (int i = 0; i < 150; i++) {
		const struct port_owner bi = owner(0xc0a80104, (uint16_t)(6000 + i), 2);
		assert_int_equal(portalloc_any(&pa, 1, &bi, &p), PERR_OK);
		assert_int_not_equal(p, pa_port);
		portalloc_release(&pa, p, 1, 120, &bi);
	}
	assert_int_equal(portalloc_held(&pa, 1), 151);
	/* a's next request gets its old port back although the cursor moved */
	assert_int_equal(portalloc_any(&pa, 2, &a, &p), PERR_OK);
	assert_int_equal(p, pa_port);
	assert_int_equal(portalloc_held(&pa, 2), 150);
	/* all holds expire together */
	assert_int_equal(portalloc_held(&pa, 121), 0);
	assert_int_equal(pa.used, 11);
	portalloc_fini(&pa);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forbidden_predicate),
		cmocka_unit_test(test_udp_pcp_ports_skipped),
		cmocka_unit_test(test_tcp_pcp_ports_allowed),
		cmocka_unit_test(test_range_below_1024),
		cmocka_unit_test(test_init_bounds),
		cmocka_unit_test(test_exhaustion_exact),
		cmocka_unit_test(test_next_fit),
		cmocka_unit_test(test_take),
		cmocka_unit_test(test_hold_down),
		cmocka_unit_test(test_hold_reclaim_preferred),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
