/* The one internal error enum. pcpd/result.c maps it to PCP result codes;
 * aftr/ and ddns-hook/ report through it as well. */
#ifndef PCP_COMMON_ERR_H
#define PCP_COMMON_ERR_H

enum perr {
	PERR_OK = 0,
	PERR_DROP,                 /* silently discard (RFC 6887 §8.2) */
	PERR_PENDING,              /* completion will be reported later */
	/* protocol verdicts, one per PCP result code */
	PERR_UNSUPP_VERSION,
	PERR_NOT_AUTHORIZED,
	PERR_MALFORMED_REQUEST,
	PERR_UNSUPP_OPCODE,
	PERR_UNSUPP_OPTION,
	PERR_MALFORMED_OPTION,
	PERR_NETWORK_FAILURE,
	PERR_NO_RESOURCES,
	PERR_UNSUPP_PROTOCOL,
	PERR_USER_EX_QUOTA,
	PERR_CANNOT_PROVIDE_EXTERNAL,
	PERR_ADDRESS_MISMATCH,
	PERR_EXCESSIVE_REMOTE_PEERS,
	/* internal conditions */
	PERR_NOMEM,
	PERR_EXISTS,
	PERR_NOT_FOUND,
	PERR_PORTS_EXHAUSTED,
	PERR_KERNEL,
	PERR_INVAL,
	PERR__COUNT
};

const char *perr_str(enum perr e);

#endif
