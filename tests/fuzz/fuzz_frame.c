/*
 * fuzz_frame - libFuzzer target for the frame reader and request decoding:
 * the input is a byte stream split into reads of varying sizes; every whole
 * frame is unpacked with the daemon's budgeted allocator (from malloc, or
 * from a small-block arena as porterd does after Hello, chosen by the
 * first byte) and packed again; with an arena, porterd's own decoder of
 * query requests is checked against protobuf-c's.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "dbwire.h"
#include "frame.h"
#include "palloc.h"
#include "porter.pb-c.h"

/* porterd decodes query requests with its own decoder first: whatever it
 * accepts, protobuf-c (`ref`, NULL when it refused) must accept too, and
 * both must mean the same (they pack again to the same bytes). */
static void check_fast_decoder(const Porter__V1__Request *ref, size_t len, const uint8_t *wire)
{
	arena a;
	arena_init(&a, 128);
	Porter__V1__Request *mine = dbwire_unpack_request(&a.base, len, wire);
	if (mine) {
		if (!ref)
			abort();
		size_t n1 = porter__v1__request__get_packed_size(mine);
		size_t n2 = porter__v1__request__get_packed_size(ref);
		uint8_t *b1 = malloc(n1 + 1), *b2 = malloc(n2 + 1);
		if (n1 != n2 || porter__v1__request__pack(mine, b1) != n1 ||
		    porter__v1__request__pack(ref, b2) != n2 || memcmp(b1, b2, n1) != 0)
			abort();
		free(b1);
		free(b2);
	}
	arena_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	frame_reader r;
	size_t off = 0;
	/* The first byte picks the read size, so splits are explored too. */
	size_t step = size ? (size_t)data[0] % 64 + 1 : 1;
	int use_arena = size && (data[0] & 0x80);

	frame_reader_init(&r, 1 << 20);
	while (off < size) {
		uint8_t *p;
		size_t n;
		if (frame_reader_space(&r, &p, &n) < 0)
			break;
		size_t k = size - off < step ? size - off : step;
		if (k > n)
			k = n;
		memcpy(p, data + off, k);
		frame_reader_commit(&r, k);
		off += k;

		const uint8_t *payload;
		size_t len;
		int rc;
		while ((rc = frame_reader_next(&r, &payload, &len)) == 1) {
			arena a;
			arena_init(&a, 128); /* small: many blocks, own blocks */
			palloc_budget b;
			palloc_budget_init(&b, len, use_arena ? &a : NULL);
			Porter__V1__Request *req =
				porter__v1__request__unpack(&b.base, len, payload);
			if (use_arena)
				check_fast_decoder(req, len, payload);
			if (req) {
				/* What decodes must encode again, to the size it
				 * says. (Decoding that again is not required:
				 * protobuf-c keeps an unknown field numbered 0 when
				 * its tag is over-long, then refuses the short form
				 * it writes; the daemon never re-encodes requests.) */
				size_t plen = porter__v1__request__get_packed_size(req);
				uint8_t *buf = malloc(plen + 1);
				if (porter__v1__request__pack(req, buf) != plen)
					abort();
				free(buf);
				if (!use_arena)
					porter__v1__request__free_unpacked(req, NULL);
			}
			arena_free(&a);
		}
		if (rc < 0)
			break;
	}
	frame_reader_free(&r);
	return 0;
}
