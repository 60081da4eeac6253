#include "pcpd/result.h"

#include "pcpd/codec.h"

uint8_t perr_to_pcp(enum perr e)
{
	switch (e) {
	case PERR_OK: return PCP_SUCCESS;
	case PERR_UNSUPP_VERSION: return PCP_UNSUPP_VERSION;
	case PERR_NOT_AUTHORIZED: return PCP_NOT_AUTHORIZED;
	case PERR_MALFORMED_REQUEST: return PCP_MALFORMED_REQUEST;
	case PERR_UNSUPP_OPCODE: return PCP_UNSUPP_OPCODE;
	case PERR_UNSUPP_OPTION: return PCP_UNSUPP_OPTION;
	case PERR_MALFORMED_OPTION: return PCP_MALFORMED_OPTION;
	case PERR_NETWORK_FAILURE:
	case PERR_KERNEL: return PCP_NETWORK_FAILURE;
	case PERR_UNSUPP_PROTOCOL: return PCP_UNSUPP_PROTOCOL;
	case PERR_USER_EX_QUOTA: return PCP_USER_EX_QUOTA;
	case PERR_CANNOT_PROVIDE_EXTERNAL: return PCP_CANNOT_PROVIDE_EXTERNAL;
	case PERR_ADDRESS_MISMATCH: return PCP_ADDRESS_MISMATCH;
	case PERR_EXCESSIVE_REMOTE_PEERS: return PCP_EXCESSIVE_REMOTE_PEERS;
	default: return PCP_NO_RESOURCES;   /* NOMEM, PORTS_EXHAUSTED, ...: the catch-all */
	}
}

uint32_t pcp_error_lifetime(uint8_t result)
{
	switch (result) {
	case PCP_NETWORK_FAILURE:
	case PCP_NO_RESOURCES:
	case PCP_USER_EX_QUOTA:
	case PCP_CANNOT_PROVIDE_EXTERNAL:
		return PCP_ERR_LIFETIME_SHORT;
	default:
		return PCP_ERR_LIFETIME_LONG;
	}
}

uint16_t perr_to_natpmp(enum perr e)
{
	switch (e) {
	case PERR_OK: return 0;
	case PERR_UNSUPP_VERSION: return 1;
	case PERR_NOT_AUTHORIZED: return 2;
	case PERR_NETWORK_FAILURE:
	case PERR_KERNEL: return 3;
	case PERR_UNSUPP_OPCODE: return 5;
	default: return 4;   /* Out of resources */
	}
}
