/* Control protocol requests: parsing and checking a request line, typed
 * arguments, permission, and the life of one call (streaming, waiting for
 * the kernel, end marker). Socket-free: ctl.c feeds it lines. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/mtime.h"
#include "pcpd/ctl_cmd.h"

#define CTL_JSON_DEPTH 8          /* requests are flat; deep nesting is an attack */
#define CTL_STR_MAX 1024          /* longest string argument */

static const struct ctl_cmd *const commands[] = {
	&ctl_cmd_status,
	&ctl_cmd_stats,
	&ctl_cmd_show_mappings,
	&ctl_cmd_show_subscribers,
	&ctl_cmd_static_add,
	&ctl_cmd_static_del,
	&ctl_cmd_subscriber_add,
	&ctl_cmd_subscriber_remove,
	&ctl_cmd_subscriber_flush,
	&ctl_cmd_ddns_status,
	&ctl_cmd_ddns_providers,
	&ctl_cmd_ddns_bindings,
	&ctl_cmd_ddns_add,
	&ctl_cmd_ddns_set,
	&ctl_cmd_ddns_del,
	&ctl_cmd_ddns_reset,
};

const char *ctl_ecode_str(enum ctl_ecode c)
{
	static const char *const names[CE__COUNT] = {
		[CE_BAD_REQUEST] = "bad-request",
		[CE_VERSION] = "version",
		[CE_UNKNOWN_COMMAND] = "unknown-command",
		[CE_BAD_ARGUMENT] = "bad-argument",
		[CE_PERMISSION] = "permission",
		[CE_NOT_FOUND] = "not-found",
		[CE_EXISTS] = "exists",
		[CE_BUSY] = "busy",
		[CE_FAILED] = "failed",
		[CE_TOO_LONG] = "too-long",
		[CE_OVERLOAD] = "overload",
		[CE_INTERNAL] = "internal",
	};
	return (unsigned)c < CE__COUNT ? names[c] : "internal";
}

void ctl_err_set(struct ctl_err *e, enum ctl_ecode code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	e->code = code;
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

const struct ctl_cmd *ctl_cmd_find(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i]->name, name) == 0)
			return commands[i];
	return NULL;
}

/* ---- end markers ---- */

static void out_json(struct ctl_out *o, json_object *j)
{
	size_t n = 0;
	const char *s = json_object_to_json_string_length(
		j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
	if (!s || !ctl_out_put(o, s, n) || !ctl_out_put(o, "\n", 1))
		o->failed = true;
}

static void out_end(struct ctl_out *o, bool ok, unsigned count, enum ctl_ecode code,
		    const char *msg)
{
	json_object *j = json_object_new_object();
	if (!j) {
		o->failed = true;
		return;
	}
	json_object_object_add(j, "v", json_object_new_int(CTL_PROTO_VERSION));
	json_object_object_add(j, "end", json_object_new_boolean(1));
	json_object_object_add(j, "ok", json_object_new_boolean(ok));
	json_object_object_add(j, "count", json_object_new_int64(count));
	if (!ok) {
		json_object_object_add(j, "code", json_object_new_string(ctl_ecode_str(code)));
		json_object_object_add(j, "error", json_object_new_string(msg));
	}
	out_json(o, j);
	json_object_put(j);
}

void ctl_out_error(struct ctl_out *o, enum ctl_ecode code, const char *msg)
{
	out_end(o, false, 0, code, msg);
}

/* ---- request parsing ---- */

static bool all_space(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isspace((unsigned char)s[i]))
			return false;
	return true;
}

static json_object *parse_json(const char *line, size_t len, struct ctl_err *err)
{
	if (memchr(line, '\0', len)) {
		ctl_err_set(err, CE_BAD_REQUEST, "malformed request: NUL byte");
		return NULL;
	}
	json_tokener *tok = json_tokener_new_ex(CTL_JSON_DEPTH);
	if (!tok) {
		ctl_err_set(err, CE_INTERNAL, "out of memory");
		return NULL;
	}
	/* strict JSON, valid UTF-8; trailing bytes are checked below so that
	 * trailing blanks are allowed and anything else is not */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS |
					    JSON_TOKENER_VALIDATE_UTF8);
	json_object *o = json_tokener_parse_ex(tok, line, (int)len);
	enum json_tokener_error je = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!o) {
		ctl_err_set(err, CE_BAD_REQUEST, "malformed request: %s",
			    je == json_tokener_continue ? "incomplete JSON"
							: json_tokener_error_desc(je));
		return NULL;
	}
	if (end < len && !all_space(line + end, len - end)) {
		json_object_put(o);
		ctl_err_set(err, CE_BAD_REQUEST, "malformed request: data after the JSON object");
		return NULL;
	}
	return o;
}

const struct ctl_cmd *ctl_parse(const char *line, size_t len, json_object **root,
				json_object **args, struct ctl_err *err)
{
	*root = NULL;
	*args = NULL;
	json_object *o = parse_json(line, len, err);
	if (!o)
		return NULL;
	json_object *v = NULL, *cmd = NULL, *a = NULL;
	if (!json_object_is_type(o, json_type_object)) {
		ctl_err_set(err, CE_BAD_REQUEST, "malformed request: not a JSON object");
		goto fail;
	}
	/* the version first: a newer client learns that before anything else */
	if (!json_object_object_get_ex(o, "v", &v)) {
		ctl_err_set(err, CE_VERSION, "missing protocol version \"v\" (this server speaks %d)",
			    CTL_PROTO_VERSION);
		goto fail;
	}
	if (!json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) != CTL_PROTO_VERSION) {
		ctl_err_set(err, CE_VERSION, "unsupported protocol version %.32s (this server speaks %d)",
			    json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
			    CTL_PROTO_VERSION);
		goto fail;
	}
	struct json_object_iterator it = json_object_iter_begin(o), end = json_object_iter_end(o);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		const char *k = json_object_iter_peek_name(&it);
		if (strcmp(k, "v") != 0 && strcmp(k, "cmd") != 0 && strcmp(k, "args") != 0) {
			ctl_err_set(err, CE_BAD_REQUEST, "unknown request key '%.64s'", k);
			goto fail;
		}
	}
	if (!json_object_object_get_ex(o, "cmd", &cmd) ||
	    !json_object_is_type(cmd, json_type_string)) {
		ctl_err_set(err, CE_BAD_REQUEST, "\"cmd\" must be a string");
		goto fail;
	}
	const struct ctl_cmd *c = ctl_cmd_find(json_object_get_string(cmd));
	if (!c) {
		ctl_err_set(err, CE_UNKNOWN_COMMAND, "unknown command '%.64s'",
			    json_object_get_string(cmd));
		goto fail;
	}
	if (json_object_object_get_ex(o, "args", &a) && a &&
	    !json_object_is_type(a, json_type_object)) {
		ctl_err_set(err, CE_BAD_REQUEST, "\"args\" must be an object");
		goto fail;
	}
	*root = o;
	*args = a;
	return c;
fail:
	json_object_put(o);
	return NULL;
}

/* ---- arguments ---- */

static bool arg_int(json_object *v, int64_t lo, int64_t hi, uint64_t *out)
{
	if (!json_object_is_type(v, json_type_int))
		return false;
	int64_t i = json_object_get_int64(v);
	/* json-c saturates huge values at INT64_MAX, which no range here allows */
	if (i < lo || i > hi)
		return false;
	*out = (uint64_t)i;
	return true;
}

static bool arg_proto(json_object *v, uint8_t *out)
{
	if (json_object_is_type(v, json_type_int)) {
		int64_t i = json_object_get_int64(v);
		if (i == 6 || i == 17) {
			*out = (uint8_t)i;
			return true;
		}
		return false;
	}
	if (!json_object_is_type(v, json_type_string))
		return false;
	const char *s = json_object_get_string(v);
	if (strcasecmp(s, "tcp") == 0)
		*out = 6;
	else if (strcasecmp(s, "udp") == 0)
		*out = 17;
	else
		return false;
	return true;
}

/* One value; false with err set. */
static bool arg_value(const struct ctl_aspec *sp, json_object *v, struct ctl_aval *out,
		      struct ctl_err *err)
{
	static const char *const expect[] = {
		[CA_STR] = "a string",
		[CA_UINT] = "an integer 0..4294967295",
		[CA_PORT] = "an integer 1..65535",
		[CA_SUB] = "a subscriber name or index",
		[CA_PROTO] = "\"tcp\" or \"udp\"",
		[CA_ADDR4] = "an IPv4 address",
		[CA_PREFIX6] = "an IPv6 prefix",
	};
	bool is_str = json_object_is_type(v, json_type_string);
	const char *s = is_str ? json_object_get_string(v) : NULL;
	if (is_str && ((size_t)json_object_get_string_len(v) != strlen(s) ||
		       strlen(s) > CTL_STR_MAX)) {
		ctl_err_set(err, CE_BAD_ARGUMENT, "argument '%s': string with a NUL byte or "
			    "longer than %u bytes", sp->name, CTL_STR_MAX);
		return false;
	}
	bool ok = false;
	switch (sp->type) {
	case CA_STR:
		ok = is_str;
		out->s = s;
		break;
	case CA_UINT:
		ok = arg_int(v, 0, UINT32_MAX, &out->u);
		break;
	case CA_PORT:
		ok = arg_int(v, 1, 65535, &out->u);
		break;
	case CA_SUB:
		if (is_str) {
			ok = s[0] != '\0';
			out->s = s;
		} else {
			ok = arg_int(v, 0, UINT32_MAX, &out->u);
			out->by_index = true;
		}
		break;
	case CA_PROTO:
		ok = arg_proto(v, &out->proto);
		break;
	case CA_ADDR4:
		ok = is_str && addr_parse(s, &out->addr) && addr_is_v4mapped(&out->addr);
		break;
	case CA_PREFIX6:
		ok = is_str && prefix_parse(s, &out->pfx) && !addr_is_v4mapped(&out->pfx.addr);
		if (ok)
			addr_mask(&out->pfx.addr, out->pfx.plen);
		break;
	}
	if (!ok) {
		ctl_err_set(err, CE_BAD_ARGUMENT, "argument '%s': %.64s is not %s", sp->name,
			    json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
			    expect[sp->type]);
		return false;
	}
	out->set = true;
	return true;
}

bool ctl_args_parse(const struct ctl_aspec *spec, const char *cmd, json_object *args,
		    struct ctl_aval *out, struct ctl_err *err)
{
	size_t n = 0;
	while (spec[n].name)
		n++;
	if (n > CTL_MAX_ARGS) {
		ctl_err_set(err, CE_INTERNAL, "%s: too many arguments declared", cmd);
		return false;
	}
	memset(out, 0, n * sizeof(*out));
	if (args) {
		struct json_object_iterator it = json_object_iter_begin(args);
		struct json_object_iterator end = json_object_iter_end(args);
		for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
			const char *k = json_object_iter_peek_name(&it);
			size_t i = 0;
			while (i < n && strcmp(spec[i].name, k) != 0)
				i++;
			if (i == n) {
				ctl_err_set(err, CE_BAD_ARGUMENT, "unknown argument '%.64s' for %s",
					    k, cmd);
				return false;
			}
			if (!arg_value(&spec[i], json_object_iter_peek_value(&it), &out[i], err))
				return false;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (spec[i].required && !out[i].set) {
			ctl_err_set(err, CE_BAD_ARGUMENT, "missing argument '%s' for %s",
				    spec[i].name, cmd);
			return false;
		}
	}
	return true;
}

bool ctl_permit(const struct ctl_cmd *cmd, const struct ctl_peer *peer, struct ctl_err *err)
{
	if (!cmd->mutating)
		return true;
	if (!peer->admin_socket) {
		ctl_err_set(err, CE_PERMISSION, "permission denied: read-only socket");
		return false;
	}
	if (!peer->admin) {
		ctl_err_set(err, CE_PERMISSION,
			    "permission denied: uid %u is not root or in the admin group",
			    (unsigned)peer->uid);
		return false;
	}
	return true;
}

struct subscriber *ctl_sub_resolve(struct ctl_ctx *cx, const struct ctl_aval *v)
{
	struct subscribers *subs = cx->srv->subs;
	if (v->by_index)
		return v->u <= UINT32_MAX ? subs_by_index(subs, (uint32_t)v->u) : NULL;
	struct subscriber *sub = subs_by_name(subs, v->s);
	if (sub)
		return sub;
	/* "7" names subscriber 7 unless a subscriber is called "7" */
	size_t n = strlen(v->s);
	if (n == 0 || n > 10 || strspn(v->s, "0123456789") != n)
		return NULL;
	unsigned long long i = strtoull(v->s, NULL, 10);
	return i <= UINT32_MAX ? subs_by_index(subs, (uint32_t)i) : NULL;
}

const char *ctl_sub_label(const struct ctl_aval *v, char *buf, size_t len)
{
	if (v->by_index)
		snprintf(buf, len, "subscriber %llu", (unsigned long long)v->u);
	else
		snprintf(buf, len, "subscriber '%.64s'", v->s);
	return buf;
}

/* ---- calls ---- */

void ctl_ctx_init(struct ctl_ctx *cx, struct pcpd_server *srv, const struct ctl_info *info)
{
	memset(cx, 0, sizeof(*cx));
	cx->srv = srv;
	cx->conf_path = info->conf_path;
	cx->start_sec = info->start_sec;
	cx->workers = info->workers;
	cx->ddns = info->ddns;
	cx->clock = mtime_sec;
	pthread_mutex_init(&cx->lock, NULL);
}

static void log_end(const struct ctl_call *c, const char *what)
{
	if (c->cmd && c->cmd->mutating)
		log_info("control: pid %ld uid %u: %s: %s", (long)c->peer.pid,
			 (unsigned)c->peer.uid, c->cmd->name, what);
}

void ctl_emit(struct ctl_call *c, json_object *o)
{
	if (!o) {
		if (c->out)
			c->out->failed = true;
		return;
	}
	if (c->out && c->state != CS_DONE) {
		out_json(c->out, o);
		c->count++;
	}
	json_object_put(o);
}

void ctl_end_ok(struct ctl_call *c)
{
	if (c->state == CS_DONE)
		return;
	c->state = CS_DONE;
	if (c->out)
		out_end(c->out, true, c->count, CE__COUNT, NULL);
	log_end(c, "ok");
}

void ctl_end_err(struct ctl_call *c, enum ctl_ecode code, const char *fmt, ...)
{
	if (c->state == CS_DONE)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->state = CS_DONE;
	if (c->out)
		out_end(c->out, false, c->count, code, msg);
	log_end(c, msg);
}

void ctl_call_stream(struct ctl_call *c, void (*step)(struct ctl_call *),
		     void (*fini)(struct ctl_call *), void *st)
{
	c->state = CS_STREAM;
	c->step = step;
	c->fini = fini;
	c->st = st;
}

void ctl_call_wait(struct ctl_call *c, void (*resume)(struct ctl_call *))
{
	c->state = CS_WAIT;
	c->resume = resume;
	c->cx->inflight++;
}

/* Any thread: hand the call back to the main thread. */
static void complete(struct ctl_call *c)
{
	struct ctl_ctx *cx = c->cx;
	pthread_mutex_lock(&cx->lock);
	c->next_done = cx->completed;
	cx->completed = c;
	bool tell = !cx->dead && cx->notify;
	pthread_mutex_unlock(&cx->lock);
	if (tell)
		cx->notify(cx->notify_arg);
}

void ctl_engine_done(void *arg, const struct engine_result *r)
{
	struct ctl_call *c = arg;
	c->res = *r;
	complete(c);
}

void ctl_flush_done(void *arg, enum perr err, unsigned deleted)
{
	struct ctl_call *c = arg;
	c->ferr = err;
	c->fdeleted = deleted;
	complete(c);
}

bool ctl_busy_take(struct ctl_call *c, uint32_t index)
{
	struct ctl_ctx *cx = c->cx;
	for (unsigned i = 0; i < cx->nbusy; i++)
		if (cx->busy[i] == index)
			return false;
	if (cx->nbusy == CTL_MAX_BUSY)
		return false;
	cx->busy[cx->nbusy++] = index;
	c->holds_busy = true;
	c->busy_index = index;
	return true;
}

void ctl_busy_release(struct ctl_call *c)
{
	struct ctl_ctx *cx = c->cx;
	if (!c->holds_busy)
		return;
	for (unsigned i = 0; i < cx->nbusy; i++) {
		if (cx->busy[i] == c->busy_index) {
			cx->busy[i] = cx->busy[--cx->nbusy];
			break;
		}
	}
	c->holds_busy = false;
}

/* A command that neither ended, streamed nor waited is a bug: answer
 * rather than hang the client. */
static void settle(struct ctl_call *c)
{
	if (c->state == CS_STREAM && !c->step)
		ctl_end_err(c, CE_INTERNAL, "%s: no answer", c->cmd->name);
}

struct ctl_call *ctl_call_start(struct ctl_ctx *cx, struct ctl_out *out,
				const struct ctl_peer *peer, const char *line, size_t len)
{
	json_object *root, *args;
	struct ctl_err err;
	struct ctl_aval av[CTL_MAX_ARGS];
	const struct ctl_cmd *cmd = ctl_parse(line, len, &root, &args, &err);
	if (cmd && !ctl_permit(cmd, peer, &err)) {
		/* on the monitor socket a refusal is routine, not worth a log line */
		if (peer->admin_socket)
			log_info("control: pid %ld uid %u: %s refused: %s", (long)peer->pid,
				 (unsigned)peer->uid, cmd->name, err.msg);
		cmd = NULL;
	}
	if (cmd && !ctl_args_parse(cmd->args, cmd->name, args, av, &err))
		cmd = NULL;
	struct ctl_call *c = cmd ? calloc(1, sizeof(*c)) : NULL;
	if (cmd && !c)
		ctl_err_set(&err, CE_INTERNAL, "out of memory");
	if (!c) {
		ctl_out_error(out, err.code, err.msg);
		json_object_put(root);
		return NULL;
	}
	if (cmd->mutating)
		log_info("control: pid %ld uid %u: %s %.400s", (long)peer->pid,
			 (unsigned)peer->uid, cmd->name,
			 args ? json_object_to_json_string_ext(args, JSON_C_TO_STRING_PLAIN) : "{}");
	c->cx = cx;
	c->out = out;
	c->cmd = cmd;
	c->peer = *peer;
	c->state = CS_STREAM;
	cmd->start(c, av);       /* av borrows from root: commands copy what they keep */
	json_object_put(root);
	settle(c);
	if (c->state == CS_DONE) {
		ctl_call_free(c);
		return NULL;
	}
	return c;
}

void ctl_call_step(struct ctl_call *c)
{
	if (c->state != CS_STREAM)
		return;
	if (c->out && c->out->failed) {
		c->state = CS_DONE;      /* the connection is closing anyway */
		return;
	}
	c->step(c);
}

void ctl_call_free(struct ctl_call *c)
{
	if (!c)
		return;
	if (c->fini)
		c->fini(c);
	ctl_busy_release(c);
	free(c);
}

void ctl_call_detach(struct ctl_call *c)
{
	if (!c)
		return;
	c->out = NULL;
	c->owner = NULL;
	if (c->state != CS_WAIT)
		ctl_call_free(c);
}

void ctl_ctx_drain(struct ctl_ctx *cx)
{
	pthread_mutex_lock(&cx->lock);
	struct ctl_call *list = cx->completed;
	cx->completed = NULL;
	pthread_mutex_unlock(&cx->lock);
	/* the list is newest first; order between calls does not matter */
	while (list) {
		struct ctl_call *c = list;
		list = c->next_done;
		cx->inflight--;
		void (*resume)(struct ctl_call *) = c->resume;
		c->resume = NULL;
		c->state = CS_STREAM;
		resume(c);
		settle(c);
		if (!c->owner) {
			/* nobody to stream to; a further kernel operation (subscriber
			 * removal) still runs to its end */
			if (c->state != CS_WAIT)
				ctl_call_free(c);
		} else if (cx->wake) {
			cx->wake(c->owner);    /* may free c */
		}
	}
}

bool ctl_ctx_destroy(struct ctl_ctx *cx)
{
	/* give waiting calls the chance to finish: the backend commits on
	 * flush, the completions then run here */
	for (unsigned i = 0; i < 16 && cx->inflight; i++) {
		cx->srv->kb->ops->flush(cx->srv->kb);
		ctl_ctx_drain(cx);
	}
	pthread_mutex_lock(&cx->lock);
	cx->dead = true;
	bool busy = cx->inflight > 0;
	pthread_mutex_unlock(&cx->lock);
	if (busy) {
		log_warn("control: %u operation(s) still waiting for the kernel at shutdown",
			 cx->inflight);
		return false;
	}
	pthread_mutex_destroy(&cx->lock);
	return true;
}
