#include "ddns-hook/backoff.h"

uint64_t ddns_backoff_ms(uint32_t min_ms, uint32_t max_ms, uint32_t attempt, uint32_t rnd)
{
	if (!min_ms)
		min_ms = 1;
	if (max_ms < min_ms)
		max_ms = min_ms;
	uint64_t d = min_ms;
	for (uint32_t i = 1; i < attempt && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	uint64_t half = d / 2;
	return half + (uint64_t)rnd % (d - half + 1);
}

static void refill(struct ddns_rate *r, uint64_t now_ms)
{
	if (now_ms <= r->last_ms)
		return;
	double dt = (double)(now_ms - r->last_ms) / 1000.0;
	r->last_ms = now_ms;
	if (r->per_sec) {
		r->sec_tokens += dt * r->per_sec;
		if (r->sec_tokens > r->per_sec)
			r->sec_tokens = r->per_sec;
	}
	if (r->per_hour) {
		r->hour_tokens += dt * r->per_hour / 3600.0;
		if (r->hour_tokens > r->per_hour)
			r->hour_tokens = r->per_hour;
	}
}

void ddns_rate_init(struct ddns_rate *r, uint32_t per_sec, uint32_t per_hour, uint64_t now_ms)
{
	r->per_sec = per_sec;
	r->per_hour = per_hour;
	r->sec_tokens = per_sec;
	r->hour_tokens = per_hour;
	r->last_ms = now_ms;
}

/* ms until `tokens` reaches 1 at `rate` tokens per `period_ms` */
static uint64_t wait_for(double tokens, uint32_t rate, double period_ms)
{
	double need = 1.0 - tokens;
	uint64_t w = (uint64_t)(need * period_ms / rate) + 1;
	return w;
}

uint64_t ddns_rate_take(struct ddns_rate *r, uint64_t now_ms)
{
	refill(r, now_ms);
	uint64_t w = 0, w2;
	if (r->per_sec && r->sec_tokens < 1.0)
		w = wait_for(r->sec_tokens, r->per_sec, 1000.0);
	if (r->per_hour && r->hour_tokens < 1.0 && (w2 = wait_for(r->hour_tokens, r->per_hour, 3600e3)) > w)
		w = w2;
	if (w)
		return w;
	if (r->per_sec)
		r->sec_tokens -= 1.0;
	if (r->per_hour)
		r->hour_tokens -= 1.0;
	return 0;
}
