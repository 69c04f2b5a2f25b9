/*
 * listwire - a directory listing's reply built as its wire bytes, not as
 * protobuf-c structs: each entry is packed where it is read (on the pool
 * thread), and the reply's frame is written around the packed entries.
 * Built as structs, a listing of 400,000 short names held every name
 * twice (a copy per entry, then protobuf-c's message structs) and a
 * packed copy, some 70 MB for a 16 MiB frame, and was packed on the
 * worker loop.
 *
 * The bytes are the ones protobuf-c packs, byte for byte: a FileListReply
 * is its repeated entries (field 1), each a FileEntry with its fields in
 * order and zeros left out; the Response around it has the request's id,
 * status 0, no message, more false, and the body file_list (field 48).
 *
 * Stateless and thread safe.
 */
#ifndef PORTER_LISTWIRE_H
#define PORTER_LISTWIRE_H

#include <stddef.h>
#include <stdint.h>

/* Room the frame's head needs at most (listwire_frame). */
#define LISTWIRE_HEAD_MAX 32u

/* Bytes one entry takes in a FileListReply, its field's tag and length
 * included. `name_len` > 0. */
size_t listwire_entry_size(size_t name_len, int type, uint64_t size, int64_t mtime_ns);

/* Writes that entry at `p` (room for listwire_entry_size bytes); returns
 * the end. */
uint8_t *listwire_put_entry(uint8_t *p, const char *name, size_t name_len, int type, uint64_t size,
			    int64_t mtime_ns);

/* The entry at `e` (written by listwire_put_entry): its name (not
 * NUL-terminated, `*name_len` bytes) and in `*entry_len` how many bytes
 * the whole entry takes. */
const uint8_t *listwire_entry_name(const uint8_t *e, size_t *name_len, size_t *entry_len);

/*
 * The head of the frame of a Response with id `id` answering a FileList
 * with `body_len` bytes of packed entries: frame header, Response fields,
 * the body's tag and length; the entries follow it (lengths in
 * `*head_len`). Returns 0; 1 when !listwire_known(); PORTER_E_TOO_LARGE
 * when the payload would pass `max_frame`.
 */
int listwire_frame(uint64_t id, size_t body_len, size_t max_frame, uint8_t head[LISTWIRE_HEAD_MAX],
		   size_t *head_len);

/* 1 when porter.proto's Response, FileListReply and FileEntry are the
 * ones this was written for, 0 when they changed since (pack with
 * protobuf-c then). */
int listwire_known(void);

/* Payload bytes (frame header not counted) of such a frame beyond its
 * entries, at most: what a listing leaves free of max-frame. */
#define LISTWIRE_OVERHEAD 24u

#endif
