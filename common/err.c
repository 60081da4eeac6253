#include "common/err.h"

static const char *const names[PERR__COUNT] = {
	[PERR_OK] = "ok",
	[PERR_DROP] = "drop",
	[PERR_PENDING] = "pending",
	[PERR_UNSUPP_VERSION] = "unsupported version",
	[PERR_NOT_AUTHORIZED] = "not authorized",
	[PERR_MALFORMED_REQUEST] = "malformed request",
	[PERR_UNSUPP_OPCODE] = "unsupported opcode",
	[PERR_UNSUPP_OPTION] = "unsupported option",
	[PERR_MALFORMED_OPTION] = "malformed option",
	[PERR_NETWORK_FAILURE] = "network failure",
	[PERR_NO_RESOURCES] = "no resources",
	[PERR_UNSUPP_PROTOCOL] = "unsupported protocol",
	[PERR_USER_EX_QUOTA] = "user exceeded quota",
	[PERR_CANNOT_PROVIDE_EXTERNAL] = "cannot provide external",
	[PERR_ADDRESS_MISMATCH] = "address mismatch",
	[PERR_EXCESSIVE_REMOTE_PEERS] = "excessive remote peers",
	[PERR_NOMEM] = "out of memory",
	[PERR_EXISTS] = "exists",
	[PERR_NOT_FOUND] = "not found",
	[PERR_PORTS_EXHAUSTED] = "ports exhausted",
	[PERR_KERNEL] = "kernel error",
	[PERR_INVAL] = "invalid argument",
};

const char *perr_str(enum perr e)
{
	if ((unsigned)e >= PERR__COUNT || !names[e])
		return "unknown error";
	return names[e];
}
