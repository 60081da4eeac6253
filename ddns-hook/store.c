#include "ddns-hook/store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

enum { Q_BPUT, Q_BDEL, Q_BLOAD, Q_PPUT, Q_PDEL, Q_PLOAD, Q_SEQ, Q_SEQSET, NQ };

static const char *const sql[NQ] = {
	[Q_BPUT] = "INSERT OR REPLACE INTO bindings(name,provider,subscriber,b4,a,srv,txt) VALUES(?,?,?,?,?,?,?)",
	[Q_BDEL] = "DELETE FROM bindings WHERE name=?",
	[Q_BLOAD] = "SELECT name,provider,subscriber,b4,a,srv,txt FROM bindings ORDER BY name",
	[Q_PPUT] = "INSERT OR REPLACE INTO published(name,binding,provider,sub_index,value,seq,at) VALUES(?,?,?,?,?,?,?)",
	[Q_PDEL] = "DELETE FROM published WHERE name=?",
	[Q_PLOAD] = "SELECT name,binding,provider,sub_index,value,seq,at FROM published ORDER BY name",
	[Q_SEQ] = "SELECT v FROM meta WHERE k='seq'",
	[Q_SEQSET] = "INSERT OR REPLACE INTO meta(k,v) VALUES('seq',?)",
};

static const char schema[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=FULL;"
	"CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v INTEGER);"
	"CREATE TABLE IF NOT EXISTS bindings(name TEXT PRIMARY KEY, provider TEXT NOT NULL,"
	" subscriber TEXT NOT NULL, b4 TEXT NOT NULL, a INTEGER NOT NULL, srv TEXT NOT NULL, txt TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS published(name TEXT PRIMARY KEY, binding TEXT NOT NULL,"
	" provider TEXT NOT NULL, sub_index INTEGER NOT NULL, value TEXT NOT NULL,"
	" seq INTEGER NOT NULL, at INTEGER NOT NULL);";

struct ddns_store {
	sqlite3 *db;
	sqlite3_stmt *q[NQ];
	uint64_t seq;
};

struct ddns_store *ddns_store_open(const char *path, char *err, size_t errlen)
{
	struct ddns_store *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	char *msg = NULL;
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
	    sqlite3_exec(s->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, msg ? msg : sqlite3_errmsg(s->db));
		sqlite3_free(msg);
		ddns_store_close(s);
		return NULL;
	}
	sqlite3_busy_timeout(s->db, 2000);
	for (int i = 0; i < NQ; i++)
		if (sqlite3_prepare_v2(s->db, sql[i], -1, &s->q[i], NULL) != SQLITE_OK) {
			snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(s->db));
			ddns_store_close(s);
			return NULL;
		}
	sqlite3_stmt *q = s->q[Q_SEQ];
	if (sqlite3_step(q) == SQLITE_ROW)
		s->seq = (uint64_t)sqlite3_column_int64(q, 0);
	sqlite3_reset(q);
	return s;
}

void ddns_store_close(struct ddns_store *s)
{
	if (!s)
		return;
	for (int i = 0; i < NQ; i++)
		sqlite3_finalize(s->q[i]);
	sqlite3_close(s->db);
	free(s);
}

static int run(struct ddns_store *s, sqlite3_stmt *q)
{
	int rc = sqlite3_step(q);
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	if (rc != SQLITE_DONE) {
		log_err("ddns state: %s", sqlite3_errmsg(s->db));
		return -1;
	}
	return 0;
}

static void text(sqlite3_stmt *q, int i, const char *v)
{
	sqlite3_bind_text(q, i, v, -1, SQLITE_TRANSIENT);
}

static void col(sqlite3_stmt *q, int i, char *dst, size_t len)
{
	const unsigned char *v = sqlite3_column_text(q, i);
	snprintf(dst, len, "%s", v ? (const char *)v : "");
}

int ddns_store_binding_put(struct ddns_store *s, const struct ddns_binding_conf *b)
{
	char b4[64] = "", srv[DDNS_MAX_SRV * 80] = "";
	if (b->b4.plen)
		prefix_str(&b->b4, b4, sizeof(b4));
	size_t off = 0;
	for (unsigned i = 0; i < b->nsrv && off < sizeof(srv); i++)
		off += (size_t)snprintf(srv + off, sizeof(srv) - off, "%s%s=%u", i ? "," : "", b->srv[i].service,
					b->srv[i].int_port);
	sqlite3_stmt *q = s->q[Q_BPUT];
	text(q, 1, b->name);
	text(q, 2, b->provider);
	text(q, 3, b->subscriber);
	text(q, 4, b4);
	sqlite3_bind_int(q, 5, b->a);
	text(q, 6, srv);
	text(q, 7, b->txt);
	return run(s, q);
}

int ddns_store_binding_del(struct ddns_store *s, const char *name)
{
	sqlite3_stmt *q = s->q[Q_BDEL];
	text(q, 1, name);
	return run(s, q);
}

/* A row that no longer parses (edited by hand) is skipped with a warning:
 * the rest still loads. */
static bool binding_of_row(sqlite3_stmt *q, struct ddns_binding_conf *b)
{
	char b4[64], srv[DDNS_MAX_SRV * 80];
	memset(b, 0, sizeof(*b));
	col(q, 0, b->name, sizeof(b->name));
	col(q, 1, b->provider, sizeof(b->provider));
	col(q, 2, b->subscriber, sizeof(b->subscriber));
	col(q, 3, b4, sizeof(b4));
	b->a = sqlite3_column_int(q, 4) != 0;
	col(q, 5, srv, sizeof(srv));
	col(q, 6, b->txt, sizeof(b->txt));
	b->runtime = true;
	if (b4[0] && !prefix_parse(b4, &b->b4))
		return false;
	char *save = NULL;
	for (char *t = strtok_r(srv, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (b->nsrv == DDNS_MAX_SRV || ddns_srv_parse(t, &b->srv[b->nsrv]))
			return false;
		b->nsrv++;
	}
	return ddns_binding_check(b) == NULL;
}

int ddns_store_bindings_load(struct ddns_store *s,
			     void (*cb)(void *arg, const struct ddns_binding_conf *b), void *arg)
{
	sqlite3_stmt *q = s->q[Q_BLOAD];
	struct ddns_binding_conf b;
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (binding_of_row(q, &b))
			cb(arg, &b);
		else
			log_warn("ddns state: runtime binding %s does not parse, skipped", b.name);
	}
	sqlite3_reset(q);
	return rc == SQLITE_DONE ? 0 : -1;
}

int ddns_store_pub_put(struct ddns_store *s, const struct ddns_pub *p)
{
	sqlite3_stmt *q;
	if (!p->value[0]) {
		q = s->q[Q_PDEL];
		text(q, 1, p->name);
		return run(s, q);
	}
	q = s->q[Q_PPUT];
	text(q, 1, p->name);
	text(q, 2, p->binding);
	text(q, 3, p->provider);
	sqlite3_bind_int64(q, 4, p->sub_index);
	text(q, 5, p->value);
	sqlite3_bind_int64(q, 6, (sqlite3_int64)p->seq);
	sqlite3_bind_int64(q, 7, p->at);
	return run(s, q);
}

int ddns_store_pub_load(struct ddns_store *s, void (*cb)(void *arg, const struct ddns_pub *p), void *arg)
{
	sqlite3_stmt *q = s->q[Q_PLOAD];
	struct ddns_pub p;
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		memset(&p, 0, sizeof(p));
		col(q, 0, p.name, sizeof(p.name));
		col(q, 1, p.binding, sizeof(p.binding));
		col(q, 2, p.provider, sizeof(p.provider));
		p.sub_index = (uint32_t)sqlite3_column_int64(q, 3);
		col(q, 4, p.value, sizeof(p.value));
		p.seq = (uint64_t)sqlite3_column_int64(q, 5);
		p.at = sqlite3_column_int64(q, 6);
		cb(arg, &p);
	}
	sqlite3_reset(q);
	return rc == SQLITE_DONE ? 0 : -1;
}

uint64_t ddns_store_next_seq(struct ddns_store *s)
{
	sqlite3_stmt *q = s->q[Q_SEQSET];
	sqlite3_bind_int64(q, 1, (sqlite3_int64)(s->seq + 1));
	run(s, q);               /* on a write error still unique within this run */
	return ++s->seq;
}
