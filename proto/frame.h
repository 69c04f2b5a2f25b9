/*
 * frame - the length-prefixed framing shared by porterd and libporter.
 *
 * A frame is a 4-byte big-endian payload length followed by the payload (one
 * packed protobuf message). The reader accumulates bytes from any number of
 * partial reads and yields whole frames; it checks a frame's declared length
 * against its limit before reserving a byte for it, so a hostile length never
 * drives an allocation.
 *
 * A frame_reader is owned by one thread (a worker loop or a client thread);
 * it is not thread safe.
 */
#ifndef PORTER_FRAME_H
#define PORTER_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "arena.h"

#define FRAME_HEADER_SIZE 4u

/* Bytes read into a fresh buffer when the next frame's size is not known. */
#define FRAME_READ_CHUNK 65536u

static inline void frame_put_header(uint8_t *hdr, uint32_t len)
{
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
}

static inline uint32_t frame_get_header(const uint8_t *hdr)
{
	return ((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16) | ((uint32_t)hdr[2] << 8) |
	       (uint32_t)hdr[3];
}

typedef struct frame_reader {
	uint8_t *buf;     /* owned; NULL until the first read */
	size_t cap;       /* bytes allocated in buf */
	size_t start;     /* first unconsumed byte */
	size_t end;       /* one past the last byte read */
	size_t max_frame; /* largest payload accepted */
	size_t skip;      /* bytes of a discarded frame still to arrive */
} frame_reader;

/* Initialises an empty reader that accepts payloads up to `max_frame`. */
void frame_reader_init(frame_reader *r, size_t max_frame);

/* Frees the reader's buffer; the reader may be initialised again. */
void frame_reader_free(frame_reader *r);

/* Changes the limit (e.g. after Hello); applies to frames not yet begun. */
void frame_reader_set_limit(frame_reader *r, size_t max_frame);

/*
 * Returns writable space for the next read in `*p`/`*n` (n >= 1). The space
 * is sized for the frame in progress when its header has arrived, otherwise
 * FRAME_READ_CHUNK. Returns 0, PORTER_E_TOO_LARGE when the pending header
 * exceeds the limit, or PORTER_E_NOMEM.
 */
int frame_reader_space(frame_reader *r, uint8_t **p, size_t *n);

/* Records that `n` bytes were written into the space last returned. */
void frame_reader_commit(frame_reader *r, size_t n);

/*
 * Takes the next whole frame. Returns 1 with `*payload`/`*len` pointing into
 * the reader's buffer (valid until the next call on the reader), 0 when no
 * whole frame is buffered yet, or PORTER_E_TOO_LARGE when the next frame's
 * declared length exceeds the limit (the reader is then unusable).
 */
int frame_reader_next(frame_reader *r, const uint8_t **payload, size_t *len);

/*
 * Hands the reader's buffer to the caller, who frees it (free()), when the
 * frame frame_reader_next last returned is all it holds: that frame's
 * payload then stays where it is for as long as the caller keeps the
 * buffer, and the reader starts the next frame in a buffer of its own.
 * Returns NULL, and keeps the buffer, when more bytes are buffered (or a
 * discarded frame's rest is still to arrive).
 */
uint8_t *frame_reader_give(frame_reader *r);

/*
 * Gives the reader's buffer to arena `a` (frame_reader_give, arena_adopt)
 * and lends `a` the `len` payload bytes at `payload` of the frame just
 * taken (arena_lend), when that frame is at least ARENA_LEND_MIN and all
 * the reader holds, and the buffer is larger than `keep` bytes (one the
 * caller would free after the call anyway, frame_reader_trim; a smaller
 * one stays for the next frame): a reply's body of megabytes unpacked
 * into `a` is then used where it was read instead of being copied into a
 * second buffer of its size (whose pages would all be faulted in again).
 * Otherwise, or when out of memory, nothing changes and the decoder
 * copies as usual.
 */
void frame_reader_lend(frame_reader *r, arena *a, const uint8_t *payload, size_t len, size_t keep);

/* Bytes buffered that do not yet form a whole frame, plus those of a
 * discarded frame still to arrive (0: between frames). */
size_t frame_reader_pending(const frame_reader *r);

/*
 * The frame in progress, when its header has arrived and its payload is
 * not whole: returns 1 with `*payload` pointing at the `*have` payload
 * bytes buffered so far (valid until the next call on the reader) and
 * `*declared` its length. Returns 0 otherwise.
 */
int frame_reader_partial(const frame_reader *r, const uint8_t **payload, size_t *have,
			 uint32_t *declared);

/*
 * Drops the frame in progress (frame_reader_partial returned 1): its bytes
 * buffered now and the rest as they arrive are read into a small buffer
 * and thrown away, so a frame refused from its first bytes is never held
 * whole. The next frame is read as usual.
 */
void frame_reader_discard(frame_reader *r);

/* True when a whole frame (or a header over the limit) is buffered, so
 * frame_reader_next would not return 0. */
int frame_reader_has_frame(const frame_reader *r);

/* Releases the buffer when it is idle and larger than `keep` bytes. */
void frame_reader_trim(frame_reader *r, size_t keep);

/*
 * Packs `msg` into a new buffer holding header and payload. On success sets
 * `*out` (owned by the caller, free()) and `*outlen` and returns 0; returns
 * PORTER_E_TOO_LARGE when the payload exceeds `max_frame`, PORTER_E_NOMEM.
 */
int frame_pack(const ProtobufCMessage *msg, size_t max_frame, uint8_t **out, size_t *outlen);

/*
 * Like frame_pack, into the caller's reusable buffer `*buf` of `*cap`
 * bytes (NULL and 0 at first; owned by the caller, free()), which is grown
 * when too small. On failure the buffer is left as it was.
 */
int frame_pack_into(const ProtobufCMessage *msg, size_t max_frame, uint8_t **buf, size_t *cap,
		    size_t *outlen);

#endif
