/* Monotonic time: wall-clock jumps must not look like restarts (RFC 6887 §8.5). */
#ifndef PCP_COMMON_MTIME_H
#define PCP_COMMON_MTIME_H
#include <stdint.h>

uint64_t mtime_ms(void);   /* CLOCK_MONOTONIC in milliseconds */
uint32_t mtime_sec(void);  /* CLOCK_MONOTONIC in seconds */
#endif
