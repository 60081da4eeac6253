/* Kernel backend interface: a const ops table chosen at run time.
 *
 * Asynchronous by contract: submit() queues a change and the backend calls
 * done() once the kernel has it (or has refused it). A backend may call
 * done() from inside submit() (the in-memory one does) or later from
 * flush(), which the owner calls once per event-loop iteration so that all
 * changes queued in that iteration become one kernel transaction (group
 * commit). A response is sent only from done(). */
#ifndef AFTR_BACKEND_H
#define AFTR_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#include "aftr/binding.h"
#include "common/err.h"

enum kop { KOP_ADD, KOP_DEL, KOP_REFRESH };

/* A change is a value: the backend copies what it needs in submit(). */
struct kchange {
	enum kop op;
	uint32_t sub;
	uint8_t proto;
	struct in6_addr int_addr;
	uint16_t int_port;
	struct in6_addr ext_addr;
	uint16_t ext_port;
	uint32_t timeout;            /* seconds until the kernel expires it; 0 = none */
	uint8_t flags;
	uint8_t nonce[BINDING_NONCE_LEN];
	unsigned nfilters;
	const struct aftr_filter *filters;
};

typedef void (*kbackend_done_fn)(void *arg, enum perr result);

struct kbackend;

struct kbackend_ops {
	const char *name;
	struct kbackend *(*open)(void);
	void (*submit)(struct kbackend *kb, const struct kchange *c, kbackend_done_fn done,
		       void *arg);
	void (*flush)(struct kbackend *kb);
	void (*close)(struct kbackend *kb);
};

struct kbackend {
	const struct kbackend_ops *ops;
};

/* Looks a backend up by name ("memory"); NULL if unknown. */
const struct kbackend_ops *kbackend_find(const char *name);

extern const struct kbackend_ops kbackend_mem_ops;

/* In-memory backend: inspection and fault injection for tests. */
size_t kbackend_mem_count(struct kbackend *kb);
/* True if an element for (proto, ext_addr, ext_port) exists; fills *out. */
bool kbackend_mem_lookup(struct kbackend *kb, uint8_t proto, const struct in6_addr *ext_addr,
			 uint16_t ext_port, struct kchange *out);
/* The next n submits fail with err (PERR_KERNEL or PERR_NO_RESOURCES). */
void kbackend_mem_fail_next(struct kbackend *kb, unsigned n, enum perr err);

#endif
