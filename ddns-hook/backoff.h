/* Retry schedule and per-provider rate limits: pure arithmetic on
 * milliseconds, so the unit tests drive them with a fake clock. */
#ifndef DDNS_BACKOFF_H
#define DDNS_BACKOFF_H

#include <stdint.h>

/* Delay before retry number `attempt` (1 = first retry): min * 2^(attempt-1)
 * capped at max, then "equal jitter": a uniform value in [d/2, d] from rnd,
 * so synchronized failures (a DNS server restart) spread out. */
uint64_t ddns_backoff_ms(uint32_t min_ms, uint32_t max_ms, uint32_t attempt, uint32_t rnd);

/* Two token buckets: per second (burst = rate) and per hour (burst =
 * rate, refilled evenly over the hour). 0 = unlimited. */
struct ddns_rate {
	uint32_t per_sec, per_hour;
	double sec_tokens, hour_tokens;
	uint64_t last_ms;
};

void ddns_rate_init(struct ddns_rate *r, uint32_t per_sec, uint32_t per_hour, uint64_t now_ms);
/* 0 if a request may go now (and takes a token), otherwise the number of
 * milliseconds until one may go. */
uint64_t ddns_rate_take(struct ddns_rate *r, uint64_t now_ms);

#endif
