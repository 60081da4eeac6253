/* Bounds-checked wire cursors with a sticky error flag.
 *
 * Readers and writers never fail loudly: every access past the end sets
 * `err` and yields zero / writes nothing, so a codec can run a whole
 * sequence of reads and check once at the end. */
#ifndef PCP_COMMON_WIRE_H
#define PCP_COMMON_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <netinet/in.h>

struct wire_rd {
	const uint8_t *pos;
	const uint8_t *end;
	bool err;
};

struct wire_wr {
	uint8_t *pos;
	uint8_t *end;
	bool err;
};

static inline struct wire_rd wire_rd_init(const uint8_t *buf, size_t len)
{
	struct wire_rd r = { buf, buf + len, false };
	return r;
}

static inline struct wire_wr wire_wr_init(uint8_t *buf, size_t cap)
{
	struct wire_wr w = { buf, buf + cap, false };
	return w;
}

static inline size_t wire_rd_left(const struct wire_rd *r)
{
	return r->err ? 0 : (size_t)(r->end - r->pos);
}

static inline bool wire_rd_need(struct wire_rd *r, size_t n)
{
	if (r->err || (size_t)(r->end - r->pos) < n) {
		r->err = true;
		return false;
	}
	return true;
}

static inline uint8_t wire_get_u8(struct wire_rd *r)
{
	if (!wire_rd_need(r, 1))
		return 0;
	return *r->pos++;
}

static inline uint16_t wire_get_u16(struct wire_rd *r)
{
	if (!wire_rd_need(r, 2))
		return 0;
	uint16_t v = (uint16_t)(r->pos[0] << 8 | r->pos[1]);
	r->pos += 2;
	return v;
}

static inline uint32_t wire_get_u32(struct wire_rd *r)
{
	if (!wire_rd_need(r, 4))
		return 0;
	uint32_t v = (uint32_t)r->pos[0] << 24 | (uint32_t)r->pos[1] << 16 |
		     (uint32_t)r->pos[2] << 8 | r->pos[3];
	r->pos += 4;
	return v;
}

static inline void wire_get_bytes(struct wire_rd *r, void *dst, size_t n)
{
	if (!wire_rd_need(r, n)) {
		memset(dst, 0, n);
		return;
	}
	memcpy(dst, r->pos, n);
	r->pos += n;
}

static inline void wire_get_in6(struct wire_rd *r, struct in6_addr *a)
{
	wire_get_bytes(r, a->s6_addr, 16);
}

static inline void wire_skip(struct wire_rd *r, size_t n)
{
	if (wire_rd_need(r, n))
		r->pos += n;
}

static inline bool wire_wr_need(struct wire_wr *w, size_t n)
{
	if (w->err || (size_t)(w->end - w->pos) < n) {
		w->err = true;
		return false;
	}
	return true;
}

static inline void wire_put_u8(struct wire_wr *w, uint8_t v)
{
	if (wire_wr_need(w, 1))
		*w->pos++ = v;
}

static inline void wire_put_u16(struct wire_wr *w, uint16_t v)
{
	if (!wire_wr_need(w, 2))
		return;
	w->pos[0] = (uint8_t)(v >> 8);
	w->pos[1] = (uint8_t)v;
	w->pos += 2;
}

static inline void wire_put_u32(struct wire_wr *w, uint32_t v)
{
	if (!wire_wr_need(w, 4))
		return;
	w->pos[0] = (uint8_t)(v >> 24);
	w->pos[1] = (uint8_t)(v >> 16);
	w->pos[2] = (uint8_t)(v >> 8);
	w->pos[3] = (uint8_t)v;
	w->pos += 4;
}

static inline void wire_put_bytes(struct wire_wr *w, const void *src, size_t n)
{
	if (wire_wr_need(w, n)) {
		memcpy(w->pos, src, n);
		w->pos += n;
	}
}

static inline void wire_put_zero(struct wire_wr *w, size_t n)
{
	if (wire_wr_need(w, n)) {
		memset(w->pos, 0, n);
		w->pos += n;
	}
}

static inline void wire_put_in6(struct wire_wr *w, const struct in6_addr *a)
{
	wire_put_bytes(w, a->s6_addr, 16);
}

#endif
