/*
 * preamble.h: what the echo backend reads before it acts: an optional
 * PROXY header (v1 text or v2 binary, as relays send them) followed by a
 * four-byte command from the load generator. A pure function, so it is
 * tested byte for byte (bench/tests/test_preamble.c).
 */
#ifndef LG_PREAMBLE_H
#define LG_PREAMBLE_H

#include <stddef.h>
#include <stdint.h>

enum echo_cmd { CMD_NONE = 0, CMD_ECHO, CMD_SINK, CMD_SOURCE };

#define PREAMBLE_MAX (16 * 1024) /* longest PROXY header + command we accept */

/*
 * Parse the first len bytes of a stream. Returns the number of bytes the
 * header and command take (> 0, *cmd set), 0 when more bytes are needed,
 * or -EPROTO when the stream is not a PROXY header plus a known command.
 */
int preamble_parse(const uint8_t *b, size_t len, enum echo_cmd *cmd);

#endif
