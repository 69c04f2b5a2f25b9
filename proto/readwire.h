/*
 * readwire - the frame of a file read's reply around its chunk, without
 * the chunk: porterd sends the bytes it read where the pool thread put
 * them (a 1 MiB chunk packed by protobuf-c was copied into a fresh buffer
 * and page-faulted in on the worker loop, some milliseconds each on a
 * virtual machine, which every other client of that loop waited for).
 *
 * The frame is the one protobuf-c packs, byte for byte: the Response's
 * fields before its FileReadReply body, whose first field is the data, so
 * everything but the data goes before it (`head`) or after it (`tail`).
 *
 * Stateless and thread safe.
 */
#ifndef PORTER_READWIRE_H
#define PORTER_READWIRE_H

#include <stddef.h>
#include <stdint.h>

#include "porter.pb-c.h"

/* Room `head` and `tail` need at most. */
#define READWIRE_HEAD_MAX 48u
#define READWIRE_TAIL_MAX 48u

/*
 * Frames Response `r`, a FileReadReply whose data is not empty, as
 * `head`, the data, then `tail` (frame header included; lengths in
 * `*head_len`, `*tail_len`). Returns 0; 1 when `r` has what this does not
 * write (a message, an error detail, unknown fields, another body, empty
 * data, or a porter.proto changed since): pack it with protobuf-c then;
 * PORTER_E_TOO_LARGE when the payload would pass `max_frame`.
 */
int readwire_frame(const Porter__V1__Response *r, size_t max_frame, uint8_t head[READWIRE_HEAD_MAX],
		   size_t *head_len, uint8_t tail[READWIRE_TAIL_MAX], size_t *tail_len);

#endif
