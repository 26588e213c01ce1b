/*
 * preamble.c: PROXY header skipping and command recognition for the echo
 * backend (see preamble.h). The header's content is not needed, only its
 * length: v2 is a 16-byte fixed part plus the length it announces; v1 is
 * one text line of at most 107 bytes ending in CRLF.
 */
#include "preamble.h"

#include <errno.h>
#include <string.h>

#include "loadgen.h"

#define PP1_MAX 107

static const uint8_t pp2_sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };
static const uint8_t pp1_sig[6] = { 'P', 'R', 'O', 'X', 'Y', ' ' };

/* Length of the PROXY header at b: > 0, 0 when absent, -EAGAIN for more bytes, -EPROTO. */
static long header_len(const uint8_t *b, size_t len)
{
	if (b[0] == pp2_sig[0]) {
		size_t n = len < sizeof(pp2_sig) ? len : sizeof(pp2_sig);
		if (memcmp(b, pp2_sig, n) != 0)
			return -EPROTO;
		if (len < 16)
			return -EAGAIN;
		return 16 + ((long)b[14] << 8 | b[15]);
	}
	if (b[0] != pp1_sig[0])
		return 0;
	size_t n = len < sizeof(pp1_sig) ? len : sizeof(pp1_sig);
	if (memcmp(b, pp1_sig, n) != 0)
		return -EPROTO;
	for (size_t i = 0; i + 1 < len && i + 1 < PP1_MAX; i++)
		if (b[i] == '\r' && b[i + 1] == '\n')
			return (long)i + 2;
	return len >= PP1_MAX ? -EPROTO : -EAGAIN;
}

int preamble_parse(const uint8_t *b, size_t len, enum echo_cmd *cmd)
{
	if (len == 0)
		return 0;
	long hl = header_len(b, len);
	if (hl == -EAGAIN)
		return 0;
	if (hl < 0 || hl + ECHO_CMD_LEN > PREAMBLE_MAX)
		return -EPROTO;
	if (len < (size_t)hl + ECHO_CMD_LEN)
		return 0;
	const uint8_t *c = b + hl;
	if (memcmp(c, ECHO_CMD_ECHO, ECHO_CMD_LEN) == 0)
		*cmd = CMD_ECHO;
	else if (memcmp(c, ECHO_CMD_SINK, ECHO_CMD_LEN) == 0)
		*cmd = CMD_SINK;
	else if (memcmp(c, ECHO_CMD_SRCE, ECHO_CMD_LEN) == 0)
		*cmd = CMD_SOURCE;
	else
		return -EPROTO;
	return (int)hl + ECHO_CMD_LEN;
}
