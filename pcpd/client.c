/* pcp-client: a small PCP client for demos, tests and operators.
 * Sends one ANNOUNCE, MAP or PEER, retransmits per RFC 6887 §8.1.1
 * (bounded), prints the response as one key=value line. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/addr.h"
#include "pcpd/codec.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pcp-client [options] announce\n"
		"       pcp-client [options] map tcp|udp|PROTO INTERNAL_PORT [SUGGESTED_PORT]\n"
		"       pcp-client [options] peer tcp|udp|PROTO INTERNAL_PORT PEER_ADDR PEER_PORT [SUGGESTED_PORT]\n"
		"options:\n"
		"  -s ADDR     server address (default 127.0.0.1)\n"
		"  -p PORT     server port (default 5351)\n"
		"  -t ADDR     THIRD_PARTY internal address\n"
		"  -l SECONDS  requested lifetime (default 3600; 0 deletes a MAP)\n"
		"  -N HEX      nonce, 24 hex digits (default random)\n"
		"  -x ADDR     suggested external address\n"
		"  -P          PREFER_FAILURE\n"
		"  -f ADDR/LEN[:PORT]  FILTER (repeatable; LEN 0 clears)\n"
		"  -d TEXT     DESCRIPTION\n"
		"  -w MS       first retransmission timeout (default 1000)\n"
		"  -r N        attempts (default 3)\n");
}

static int parse_proto(const char *s)
{
	if (!strcmp(s, "tcp"))
		return 6;
	if (!strcmp(s, "udp"))
		return 17;
	char *end;
	long v = strtol(s, &end, 10);
	return (*end || v < 0 || v > 255) ? -1 : (int)v;
}

static int parse_port(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);
	return (*end || v < 0 || v > 65535) ? -1 : (int)v;
}

static bool parse_nonce(const char *s, uint8_t *n)
{
	if (strlen(s) != 24)
		return false;
	for (int i = 0; i < 12; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return false;
		n[i] = (uint8_t)v;
	}
	return true;
}

static bool parse_filter(char *s, struct pcp_filter *f)
{
	char *colon = strrchr(s, ':');
	char *slash = strchr(s, '/');
	memset(f, 0, sizeof(*f));
	/* ADDR/LEN[:PORT]: the port follows the prefix length */
	if (colon && slash && colon > slash) {
		int p = parse_port(colon + 1);
		if (p < 0)
			return false;
		f->port = (uint16_t)p;
		*colon = '\0';
	}
	struct prefix pf;
	if (!prefix_parse(s, &pf))
		return false;
	f->addr = pf.addr;
	bool v4 = addr_is_v4mapped(&pf.addr);
	f->plen = (v4 && pf.plen == 96) ? 0 : pf.plen;   /* "/0" clears */
	return true;
}

static void print_response(const struct pcp_response *r)
{
	char a[ADDR_STRLEN];
	printf("result=%s opcode=%s lifetime=%u epoch=%u", pcp_result_str(r->result),
	       pcp_opcode_str(r->opcode), r->lifetime, r->epoch);
	if (r->opcode == PCP_OP_MAP || r->opcode == PCP_OP_PEER)
		printf(" proto=%u internal_port=%u external=%s:%u", r->proto, r->int_port,
		       addr_str(&r->ext_addr, a), r->ext_port);
	if (r->opcode == PCP_OP_PEER)
		printf(" peer=%s:%u", addr_str(&r->peer_addr, a), r->peer_port);
	if (r->has_third_party)
		printf(" third_party=%s", addr_str(&r->third_party, a));
	if (r->nfilters)
		printf(" filters=%u", r->nfilters);
	if (r->has_description)
		printf(" description=\"%s\"", r->description);
	printf("\n");
}

int main(int argc, char **argv)
{
	const char *server = "127.0.0.1";
	int port = PCP_SERVER_PORT, wait_ms = 1000, attempts = 3;
	struct pcp_request req;
	memset(&req, 0, sizeof(req));
	req.version = PCP_VERSION;
	req.lifetime = 3600;
	/* §11.1: no preference = the all-zeros address of the family wanted;
	 * an AFTR's external addresses are IPv4 */
	addr_from_v4(&req.sugg_addr, 0);
	bool have_nonce = false;
	int opt;
	while ((opt = getopt(argc, argv, "s:p:t:l:N:x:Pf:d:w:r:h")) != -1) {
		switch (opt) {
		case 's': server = optarg; break;
		case 'p': port = parse_port(optarg); break;
		case 't':
			if (!addr_parse(optarg, &req.third_party)) {
				fprintf(stderr, "pcp-client: bad THIRD_PARTY address %s\n", optarg);
				return 2;
			}
			req.has_third_party = true;
			break;
		case 'l': req.lifetime = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'N':
			if (!parse_nonce(optarg, req.nonce)) {
				fprintf(stderr, "pcp-client: nonce must be 24 hex digits\n");
				return 2;
			}
			have_nonce = true;
			break;
		case 'x':
			if (!addr_parse(optarg, &req.sugg_addr)) {
				fprintf(stderr, "pcp-client: bad address %s\n", optarg);
				return 2;
			}
			break;
		case 'P': req.prefer_failure = true; break;
		case 'f':
			if (req.nfilters >= PCP_MAX_FILTERS ||
			    !parse_filter(optarg, &req.filters[req.nfilters])) {
				fprintf(stderr, "pcp-client: bad filter %s\n", optarg);
				return 2;
			}
			req.nfilters++;
			break;
		case 'd':
			snprintf(req.description, sizeof(req.description), "%s", optarg);
			req.desc_len = (uint16_t)strlen(req.description);
			req.has_description = true;
			break;
		case 'w': wait_ms = atoi(optarg); break;
		case 'r': attempts = atoi(optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	int nargs = argc - optind;
	char **args = argv + optind;
	if (nargs < 1 || port < 0 || wait_ms <= 0 || attempts <= 0) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(args[0], "announce") && nargs == 1) {
		req.opcode = PCP_OP_ANNOUNCE;
		req.lifetime = 0;
	} else if (!strcmp(args[0], "map") && (nargs == 3 || nargs == 4)) {
		req.opcode = PCP_OP_MAP;
	} else if (!strcmp(args[0], "peer") && (nargs == 5 || nargs == 6)) {
		req.opcode = PCP_OP_PEER;
	} else {
		usage(stderr);
		return 2;
	}
	if (req.opcode != PCP_OP_ANNOUNCE) {
		int proto = parse_proto(args[1]), iport = parse_port(args[2]);
		int sugg = 0;
		if (req.opcode == PCP_OP_MAP && nargs == 4)
			sugg = parse_port(args[3]);
		if (req.opcode == PCP_OP_PEER) {
			int pp = parse_port(args[4]);
			if (!addr_parse(args[3], &req.peer_addr) || pp < 0) {
				fprintf(stderr, "pcp-client: bad peer\n");
				return 2;
			}
			req.peer_port = (uint16_t)pp;
			if (nargs == 6)
				sugg = parse_port(args[5]);
		}
		if (proto < 0 || iport < 0 || sugg < 0) {
			fprintf(stderr, "pcp-client: bad protocol or port\n");
			return 2;
		}
		req.proto = (uint8_t)proto;
		req.int_port = (uint16_t)iport;
		req.sugg_port = (uint16_t)sugg;
		if (!have_nonce) {
			int fd = open("/dev/urandom", O_RDONLY);
			if (fd < 0 || read(fd, req.nonce, sizeof(req.nonce)) != sizeof(req.nonce)) {
				fprintf(stderr, "pcp-client: no randomness for the nonce\n");
				return 1;
			}
			close(fd);
		}
	}

	struct in6_addr srv;
	if (!addr_parse(server, &srv)) {
		fprintf(stderr, "pcp-client: bad server address %s\n", server);
		return 2;
	}
	bool v4 = addr_is_v4mapped(&srv);
	int fd = socket(v4 ? AF_INET : AF_INET6, SOCK_DGRAM, 0);
	struct sockaddr_storage ss;
	socklen_t sl;
	memset(&ss, 0, sizeof(ss));
	if (v4) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		memcpy(&s4->sin_addr, &srv.s6_addr[12], 4);
		sl = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		s6->sin6_addr = srv;
		sl = sizeof(*s6);
	}
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, sl) < 0) {
		fprintf(stderr, "pcp-client: %s\n", strerror(errno));
		return 1;
	}
	/* the PCP client address is what the server will see as our source */
	struct sockaddr_storage local;
	socklen_t ll = sizeof(local);
	getsockname(fd, (struct sockaddr *)&local, &ll);
	if (v4)
		addr_from_v4(&req.client_addr,
			     ntohl(((struct sockaddr_in *)&local)->sin_addr.s_addr));
	else
		req.client_addr = ((struct sockaddr_in6 *)&local)->sin6_addr;

	uint8_t buf[PCP_MAX_LEN], rx[PCP_MAX_LEN + 4];
	size_t n = pcp_encode_request(&req, buf, sizeof(buf));
	if (!n) {
		fprintf(stderr, "pcp-client: request does not fit in 1100 octets\n");
		return 2;
	}
	for (int i = 0; i < attempts; i++, wait_ms *= 2) {
		if (send(fd, buf, n, 0) < 0) {
			fprintf(stderr, "pcp-client: send: %s\n", strerror(errno));
			return 1;
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		while (poll(&p, 1, wait_ms) > 0) {
			ssize_t r = recv(fd, rx, sizeof(rx), 0);
			if (r < 0)
				break;
			struct pcp_response rsp;
			if (pcp_decode_response(rx, (size_t)r, &rsp) != PERR_OK ||
			    rsp.opcode != req.opcode)
				continue;
			if (req.opcode != PCP_OP_ANNOUNCE && rsp.result == PCP_SUCCESS &&
			    memcmp(rsp.nonce, req.nonce, sizeof(req.nonce)) != 0)
				continue;   /* not ours */
			print_response(&rsp);
			return rsp.result == PCP_SUCCESS ? 0 : 3;
		}
	}
	fprintf(stderr, "pcp-client: no response from %s port %d\n", server, port);
	return 1;
}
