/* Control protocol internals shared by ctl.c (sockets, framing, peers,
 * streaming), ctl_cmd.c (requests, arguments, calls), ctl_show.c (read-only
 * commands), ctl_admin.c (mutating commands) and the unit tests. Nothing
 * here touches a socket. The daemon itself only sees pcpd/ctl.h. */
#ifndef PCPD_CTL_CMD_H
#define PCPD_CTL_CMD_H

#include <json-c/json.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ddns-hook/hook.h"
#include "pcpd/ctl.h"
#include "pcpd/server.h"

#define CTL_LINE_MAX 65536u        /* request line, newline excluded */
#define CTL_OUT_HIGH 65536u        /* queued output above which nothing more is produced */
#define CTL_MAX_BUSY 64            /* subscribers with a mutating operation in flight */
#define CTL_MAX_ARGS 8

/* Machine-readable error classes carried in the end marker ("code"). */
enum ctl_ecode {
	CE_BAD_REQUEST,            /* not JSON, not an object, bad "cmd"/"args" */
	CE_VERSION,                /* unsupported "v" */
	CE_UNKNOWN_COMMAND,
	CE_BAD_ARGUMENT,           /* unknown, missing, mistyped or invalid argument */
	CE_PERMISSION,
	CE_NOT_FOUND,
	CE_EXISTS,
	CE_BUSY,                   /* retry later */
	CE_FAILED,                 /* the engine or the kernel refused */
	CE_TOO_LONG,               /* request line over CTL_LINE_MAX */
	CE_OVERLOAD,               /* too many connections */
	CE_INTERNAL,               /* out of memory */
	CE__COUNT
};
const char *ctl_ecode_str(enum ctl_ecode c);

struct ctl_err {
	enum ctl_ecode code;
	char msg[256];
};
void ctl_err_set(struct ctl_err *e, enum ctl_ecode code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- output queue of one connection (ctl.c) ---- */

struct ctl_out {
	char *buf;
	size_t off, len, cap;      /* pending bytes are buf[off..len) */
	size_t peak;               /* largest amount ever pending */
	bool failed;               /* an allocation failed: the connection must go */
};
void ctl_out_init(struct ctl_out *o);
void ctl_out_free(struct ctl_out *o);
bool ctl_out_put(struct ctl_out *o, const char *s, size_t n);
size_t ctl_out_pending(const struct ctl_out *o);
const char *ctl_out_data(const struct ctl_out *o);
void ctl_out_consume(struct ctl_out *o, size_t n);
/* Writes an end marker with an error (no call involved). */
void ctl_out_error(struct ctl_out *o, enum ctl_ecode code, const char *msg);

/* ---- framing (ctl.c) ---- */

enum ctl_frame { CTL_FRAME_NONE, CTL_FRAME_LINE, CTL_FRAME_TOO_LONG };
/* The next request line in buf[0..len): LINE with its length without the
 * "\n" or "\r\n" in *line_len and the bytes to consume in *used; NONE if
 * no complete line yet; TOO_LONG if max bytes hold no line end. */
enum ctl_frame ctl_frame_next(const char *buf, size_t len, size_t max, size_t *line_len,
			      size_t *used);

/* ---- peers (ctl.c) and permission (ctl_cmd.c) ---- */

struct ctl_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	bool admin_socket;         /* came in on the admin socket */
	bool admin;                /* root, pcpd's own uid, or in the admin group */
};
/* Root, the daemon's own uid (self), or a member of admin_gid (primary or
 * supplementary). admin_gid (gid_t)-1 means root (or self) only. */
bool ctl_peer_is_admin(uid_t uid, gid_t gid, const gid_t *groups, size_t ngroups,
		       gid_t admin_gid, uid_t self);

/* ---- arguments ---- */

enum ctl_atype {
	CA_STR,                    /* string */
	CA_UINT,                   /* integer 0..UINT32_MAX */
	CA_PORT,                   /* integer 1..65535 */
	CA_SUB,                    /* subscriber: name (string) or index (integer) */
	CA_PROTO,                  /* "tcp", "udp" or 6, 17 */
	CA_ADDR4,                  /* IPv4 address string */
	CA_PREFIX6,                /* IPv6 prefix string (masked) */
};

struct ctl_aspec {
	const char *name;          /* NULL ends the list */
	enum ctl_atype type;
	bool required;
};

struct ctl_aval {
	bool set;
	const char *s;             /* CA_STR, CA_SUB by name: borrowed from the request */
	uint64_t u;                /* CA_UINT, CA_PORT, CA_SUB by index */
	bool by_index;             /* CA_SUB */
	uint8_t proto;             /* CA_PROTO */
	struct in6_addr addr;      /* CA_ADDR4, IPv4-mapped */
	struct prefix pfx;         /* CA_PREFIX6 */
};

/* Checks args (may be NULL) against spec: every key known, every required
 * one present, every value well-typed and valid. out has one slot per
 * spec entry. */
bool ctl_args_parse(const struct ctl_aspec *spec, const char *cmd, json_object *args,
		    struct ctl_aval *out, struct ctl_err *err);

/* ---- commands, contexts and calls ---- */

struct ctl_call;

struct ctl_cmd {
	const char *name;
	bool mutating;             /* admin socket and an admin peer only */
	const struct ctl_aspec *args;
	/* Starts the command on c: it emits results and ends the call, or
	 * sets it streaming (ctl_call_stream) or waiting (ctl_call_wait). */
	void (*start)(struct ctl_call *c, const struct ctl_aval *av);
};

const struct ctl_cmd *ctl_cmd_find(const char *name);
/* Parses one request line. On success *root owns the request (put it
 * after the call started) and *args is its "args" object or NULL. */
const struct ctl_cmd *ctl_parse(const char *line, size_t len, json_object **root,
				json_object **args, struct ctl_err *err);
/* May peer run cmd? */
bool ctl_permit(const struct ctl_cmd *cmd, const struct ctl_peer *peer, struct ctl_err *err);

/* Shared by every call of one control server. */
struct ctl_ctx {
	struct pcpd_server *srv;
	const char *conf_path;
	uint32_t start_sec;
	unsigned workers;
	struct ddns_hook *ddns;    /* NULL: the hook is off */
	uint32_t (*clock)(void);   /* monotonic seconds (tests substitute one) */
	/* completions of kernel operations: pushed from whatever thread runs
	 * the engine's done(), run on the main thread by ctl_ctx_drain() */
	pthread_mutex_t lock;
	struct ctl_call *completed;
	bool dead;                 /* ctl_free gave up waiting: notify nobody */
	void (*notify)(void *arg); /* any thread: "call ctl_ctx_drain() soon" */
	void *notify_arg;
	/* main thread only */
	void (*wake)(void *owner); /* a waiting call of this owner went on */
	unsigned inflight;         /* calls waiting for the kernel */
	uint32_t busy[CTL_MAX_BUSY];   /* subscribers with a mutating call in flight */
	unsigned nbusy;
};

void ctl_ctx_init(struct ctl_ctx *cx, struct pcpd_server *srv, const struct ctl_info *info);
/* Runs the continuations of completed kernel operations (main thread). */
void ctl_ctx_drain(struct ctl_ctx *cx);
/* Flushes the backend and drains until nothing is in flight (bounded).
 * False if calls are still in flight: cx must then stay allocated. */
bool ctl_ctx_destroy(struct ctl_ctx *cx);

enum ctl_cstate {
	CS_STREAM,                 /* wants ctl_call_step() while output drains */
	CS_WAIT,                   /* waiting for the kernel */
	CS_DONE,                   /* end marker written */
};

struct ctl_call {
	struct ctl_ctx *cx;
	struct ctl_out *out;       /* NULL once detached (the peer went away) */
	void *owner;               /* the connection, for cx->wake */
	const struct ctl_cmd *cmd;
	struct ctl_peer peer;
	enum ctl_cstate state;
	unsigned count;            /* result objects emitted */
	void (*step)(struct ctl_call *c);     /* CS_STREAM */
	void (*resume)(struct ctl_call *c);   /* CS_WAIT, on the main thread */
	void (*fini)(struct ctl_call *c);     /* frees st */
	void *st;
	bool holds_busy;
	uint32_t busy_index;
	struct ctl_call *next_done;
	/* written by the engine's done() on any thread, read after the drain */
	struct engine_result res;
	enum perr ferr;
	unsigned fdeleted;
};

/* Parses, checks and starts one request. NULL when the reply is already
 * complete in out; otherwise the call to drive (state CS_STREAM/CS_WAIT). */
struct ctl_call *ctl_call_start(struct ctl_ctx *cx, struct ctl_out *out,
				const struct ctl_peer *peer, const char *line, size_t len);
/* Produces some more output (bounded work). */
void ctl_call_step(struct ctl_call *c);
void ctl_call_free(struct ctl_call *c);
/* The connection is going: a waiting call finishes on its own (its
 * output is dropped) and frees itself; any other call is freed now. */
void ctl_call_detach(struct ctl_call *c);

/* For commands: */
void ctl_emit(struct ctl_call *c, json_object *o);       /* takes o */
void ctl_end_ok(struct ctl_call *c);
void ctl_end_err(struct ctl_call *c, enum ctl_ecode code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void ctl_call_stream(struct ctl_call *c, void (*step)(struct ctl_call *),
		     void (*fini)(struct ctl_call *), void *st);
/* Before handing c to the engine: resume runs on the main thread once
 * ctl_engine_done / ctl_flush_done has been called. */
void ctl_call_wait(struct ctl_call *c, void (*resume)(struct ctl_call *));
void ctl_engine_done(void *arg, const struct engine_result *r);     /* engine_done_fn */
void ctl_flush_done(void *arg, enum perr err, unsigned deleted);
/* One mutating call per subscriber at a time; released when c is freed. */
bool ctl_busy_take(struct ctl_call *c, uint32_t index);
void ctl_busy_release(struct ctl_call *c);
/* A subscriber argument: by name, or by index (an integer, or a string of
 * digits naming no subscriber). rcu_read_lock() held. */
struct subscriber *ctl_sub_resolve(struct ctl_ctx *cx, const struct ctl_aval *v);
/* "subscriber 'x'" / "subscriber 7" for messages. */
const char *ctl_sub_label(const struct ctl_aval *v, char *buf, size_t len);

/* ---- result objects (ctl_show.c) ---- */

struct ctl_subinfo {
	uint32_t index;
	char name[AFTR_SUB_NAME_MAX];
	struct prefix b4;
	char ifname[IF_NAMESIZE];
};
void ctl_subinfo_of(struct ctl_subinfo *si, const struct subscriber *sub);

/* A copy of one binding, taken under its subscriber's lock. */
struct ctl_snap_peer {
	struct in6_addr addr;
	uint16_t port;
	uint32_t expires;
};
struct ctl_snap {
	uint8_t proto, flags;
	uint16_t int_port, ext_port;
	struct in6_addr int_addr, ext_addr;
	uint32_t map_expires, created;
	unsigned nfilters, npeers;
	struct aftr_filter *filters;
	struct ctl_snap_peer *peers;
	char *desc;
};
bool ctl_snap_take(struct ctl_snap *s, const struct binding *b);   /* sub lock held */
void ctl_snap_clear(struct ctl_snap *s);
const char *ctl_proto_str(uint8_t proto, char *buf, size_t len);
json_object *ctl_json_mapping(const struct ctl_subinfo *si, const struct ctl_snap *m,
			      uint32_t now);
json_object *ctl_json_subscriber(struct subscriber *sub);    /* takes sub->lock */

/* show-mappings filters */
struct ctl_mfilter {
	bool has_sub, has_int, has_ext, has_port, has_proto;
	uint32_t sub;
	struct in6_addr int_addr, ext_addr;
	uint16_t port;                 /* internal or external */
	uint8_t proto;
};
bool ctl_mfilter_match(const struct ctl_mfilter *f, const struct binding *b);

/* The commands (ctl_show.c, ctl_admin.c). */
extern const struct ctl_cmd ctl_cmd_status, ctl_cmd_stats, ctl_cmd_show_mappings,
	ctl_cmd_show_subscribers, ctl_cmd_static_add, ctl_cmd_static_del,
	ctl_cmd_subscriber_add, ctl_cmd_subscriber_remove, ctl_cmd_subscriber_flush,
	ctl_cmd_ddns_status, ctl_cmd_ddns_providers, ctl_cmd_ddns_bindings, ctl_cmd_ddns_add,
	ctl_cmd_ddns_set, ctl_cmd_ddns_del, ctl_cmd_ddns_reset;

#endif
