/*
 * httpbuf - one worker's large response-body buffers, kept for a second
 * after use so that the next body reuses pages already mapped.
 *
 * A body of a few MiB collected from malloc sat at the top of the worker's
 * heap and went back to the kernel when it was freed (anything over
 * malloc's trim threshold does), so every such body faulted all its pages
 * in afresh: on this project's VMs some 6 ms of porterd's CPU per MiB, and
 * GETs of 8 MiB ran at 0.13x direct libcurl. Keeping the freed memory in
 * malloc instead would keep a burst's memory for good (a thread arena's
 * top is never trimmed later). Here a buffer of HTTPBUF_MIN bytes or more
 * is its own mapping: when the reply that carried it has been written it
 * comes back to its worker's cache, the next body of a fitting size takes
 * it with its pages in place, and a buffer nobody took for HTTPBUF_KEEP_MS
 * is unmapped, so the memory of a burst is back a second after it.
 *
 * A buffer's bookkeeping sits in front of its bytes, so httpbuf_release
 * needs only the pointer (connout gives taken buffers back that way). The
 * cache outlives its worker's http module while buffers are out: the last
 * one back frees it.
 *
 * Owned by one worker loop; not thread safe: buffers are taken, grown and
 * given back on the loop thread of the worker whose cache made them.
 */
#ifndef PORTER_HTTPBUF_H
#define PORTER_HTTPBUF_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Bodies (or stream chunks) that need this much take a cached buffer;
 * smaller ones stay with malloc, which keeps them in its free lists. */
#define HTTPBUF_MIN (256u * 1024u)
/* How long a buffer given back is kept for the next body. */
#define HTTPBUF_KEEP_MS 1000
/* What a worker keeps at most (four bodies of 8 MiB and some room). */
#define HTTPBUF_KEEP_BYTES (48u * 1024u * 1024u)
#define HTTPBUF_KEEP_N 8

typedef struct httpbuf_cache httpbuf_cache;

/* A cache on `loop` (its timer is a handle of that loop). NULL when out of
 * memory; then bodies use malloc. */
httpbuf_cache *httpbuf_cache_new(uv_loop_t *loop);

/* Unmaps the buffers kept and closes the timer; buffers still out are
 * unmapped when given back, and the last of them frees the cache. `c` may
 * be NULL. Loop thread, before the loop ends. */
void httpbuf_cache_close(httpbuf_cache *c);

/* A buffer of at least `need` bytes (its size in `*cap`): a kept one when
 * one fits, else a fresh mapping. NULL when out of memory. */
uint8_t *httpbuf_get(httpbuf_cache *c, size_t need, size_t *cap);

/* Grows `p` (from httpbuf_get, its first `len` bytes in use) to at least
 * `need` bytes: into a kept buffer that fits, else by remapping its pages
 * (no copy). Returns the buffer, *cap updated, or NULL with `p` unchanged
 * when out of memory. */
uint8_t *httpbuf_grow(uint8_t *p, size_t len, size_t need, size_t *cap);

/* Gives `p` (from httpbuf_get or httpbuf_grow; NULL is ignored) back to
 * its cache, which keeps it for HTTPBUF_KEEP_MS or unmaps it. A void *
 * parameter so it serves where free() would. */
void httpbuf_release(void *p);

/* Bytes the cache keeps now (tests, stats). */
size_t httpbuf_kept_bytes(const httpbuf_cache *c);

/* Bytes of every worker's buffers together, kept or out: memory in use
 * that malloc's statistics do not see (server.c's trim compares them with
 * RSS). Any thread. */
size_t httpbuf_mapped_total(void);

#endif
