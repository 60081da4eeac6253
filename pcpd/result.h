/* The one place that maps internal errors to PCP result codes (and their
 * error lifetimes, RFC 6887 §7.4). */
#ifndef PCPD_RESULT_H
#define PCPD_RESULT_H

#include <stdint.h>

#include "common/err.h"

#define PCP_ERR_LIFETIME_SHORT 30u
#define PCP_ERR_LIFETIME_LONG 1800u

uint8_t perr_to_pcp(enum perr e);
/* Lifetime of an error response with this result code. */
uint32_t pcp_error_lifetime(uint8_t result);
/* NAT-PMP (RFC 6886 §3.5) result code for an internal error. */
uint16_t perr_to_natpmp(enum perr e);

#endif
