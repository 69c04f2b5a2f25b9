/* httpbuf - large body buffers kept a while per worker; see httpbuf.h. */
#include "httpbuf.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "list.h"

struct httpbuf_cache {
	uv_loop_t *loop;
	uv_timer_t timer; /* unmaps what was kept HTTPBUF_KEEP_MS */
	list kept;        /* bufhead.link, oldest first */
	unsigned n_kept;
	size_t kept_bytes; /* of the mappings kept, heads included */
	unsigned out;      /* buffers taken and not given back */
	int closing;       /* nothing more is kept */
	int timer_open;    /* until the timer's close callback */
};

/* Every worker's mappings together (httpbuf_mapped_total). */
static _Atomic size_t g_mapped;

/* In front of every buffer's bytes, in the same mapping. */
typedef struct bufhead {
	httpbuf_cache *owner;
	size_t map_len; /* the whole mapping, this head included */
	list link;      /* owner->kept while kept */
	uint64_t since; /* uv_now() when given back */
} bufhead;

/* The head's room: keeps the bytes 64-byte aligned. */
#define HEAD 64u
/* Mappings grow in steps of this, so that bodies of nearly the same size
 * fit each other's buffers. */
#define STEP (64u * 1024u)

static bufhead *head_of(void *p)
{
	return (bufhead *)((uint8_t *)p - HEAD);
}

static uint8_t *bytes_of(bufhead *h)
{
	return (uint8_t *)h + HEAD;
}

static size_t map_size(size_t need)
{
	if (need > SIZE_MAX - HEAD - STEP)
		return 0;
	return (need + HEAD + STEP - 1) / STEP * STEP;
}

/*
 * The mappings. Under AddressSanitizer they are malloc'd instead, so that
 * it still sees every access past a body's buffer; the cache around them
 * is the same.
 */
#if defined(__SANITIZE_ADDRESS__)
static bufhead *map_new(size_t len)
{
	return malloc(len);
}

static bufhead *map_resize(bufhead *h, size_t len)
{
	return realloc(h, len);
}

static void map_free(bufhead *h)
{
	free(h);
}
#else
static bufhead *map_new(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* The pages move with the mapping (the kernel remaps them; no copy). */
static bufhead *map_resize(bufhead *h, size_t len)
{
	void *p = mremap(h, h->map_len, len, MREMAP_MAYMOVE);
	return p == MAP_FAILED ? NULL : p;
}

static void map_free(bufhead *h)
{
	munmap(h, h->map_len);
}
#endif

/* The mappings, counted in g_mapped. */
static bufhead *mapping_new(size_t len)
{
	bufhead *h = map_new(len);
	if (h) {
		h->map_len = len;
		atomic_fetch_add(&g_mapped, len);
	}
	return h;
}

static bufhead *mapping_resize(bufhead *h, size_t len)
{
	size_t old = h->map_len;
	bufhead *nh = map_resize(h, len);
	if (nh) {
		nh->map_len = len;
		atomic_fetch_add(&g_mapped, len - old);
	}
	return nh;
}

static void mapping_free(bufhead *h)
{
	atomic_fetch_sub(&g_mapped, h->map_len);
	map_free(h);
}

static void maybe_free(httpbuf_cache *c)
{
	if (c->closing && !c->timer_open && c->out == 0)
		free(c);
}

static void on_timer_closed(uv_handle_t *t)
{
	httpbuf_cache *c = t->data;
	c->timer_open = 0;
	maybe_free(c);
}

static void unkeep(httpbuf_cache *c, bufhead *h)
{
	list_remove(&h->link);
	c->n_kept--;
	c->kept_bytes -= h->map_len;
}

/* Unmaps what was kept HTTPBUF_KEEP_MS; comes back for the rest. */
static void on_expire(uv_timer_t *t)
{
	httpbuf_cache *c = t->data;
	uint64_t now = uv_now(c->loop);
	while (!list_empty(&c->kept)) {
		bufhead *h = list_entry(c->kept.next, bufhead, link);
		if (now - h->since < HTTPBUF_KEEP_MS) {
			uv_timer_start(&c->timer, on_expire, HTTPBUF_KEEP_MS - (now - h->since), 0);
			return;
		}
		unkeep(c, h);
		mapping_free(h);
	}
}

httpbuf_cache *httpbuf_cache_new(uv_loop_t *loop)
{
	httpbuf_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->loop = loop;
	list_init(&c->kept);
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;
	c->timer_open = 1;
	return c;
}

void httpbuf_cache_close(httpbuf_cache *c)
{
	if (!c)
		return;
	c->closing = 1;
	while (!list_empty(&c->kept)) {
		bufhead *h = list_entry(c->kept.next, bufhead, link);
		unkeep(c, h);
		mapping_free(h);
	}
	uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

/* The smallest kept buffer of `need` bytes or more; NULL when none. */
static bufhead *best_fit(httpbuf_cache *c, size_t need)
{
	list *pos, *tmp;
	bufhead *best = NULL;
	list_for_each_safe(pos, tmp, &c->kept) {
		bufhead *h = list_entry(pos, bufhead, link);
		if (h->map_len - HEAD >= need && (!best || h->map_len < best->map_len))
			best = h;
	}
	return best;
}

uint8_t *httpbuf_get(httpbuf_cache *c, size_t need, size_t *cap)
{
	size_t len = map_size(need);
	if (!len)
		return NULL;
	bufhead *h = best_fit(c, need);
	if (h) {
		unkeep(c, h);
	} else if (!list_empty(&c->kept)) {
		/* None is large enough: the newest grows, keeping the pages
		 * it has (only the new part faults in). */
		bufhead *old = list_entry(c->kept.prev, bufhead, link);
		unkeep(c, old);
		if (!(h = mapping_resize(old, len))) {
			mapping_free(old);
			return NULL;
		}
	} else {
		if (!(h = mapping_new(len)))
			return NULL;
		h->owner = c;
		list_init(&h->link);
	}
	c->out++;
	*cap = h->map_len - HEAD;
	return bytes_of(h);
}

uint8_t *httpbuf_grow(uint8_t *p, size_t len, size_t need, size_t *cap)
{
	bufhead *h = head_of(p);
	httpbuf_cache *c = h->owner;
	size_t ml = map_size(need);
	if (!ml)
		return NULL;
	bufhead *fit = best_fit(c, need);
	if (fit) {
		/* A copy of what is there costs far less than faulting in the
		 * rest of a fresh mapping. */
		unkeep(c, fit);
		memcpy(bytes_of(fit), p, len);
		c->out++;
		httpbuf_release(p);
		*cap = fit->map_len - HEAD;
		return bytes_of(fit);
	}
	bufhead *nh = mapping_resize(h, ml);
	if (!nh)
		return NULL;
	*cap = ml - HEAD;
	return bytes_of(nh);
}

void httpbuf_release(void *p)
{
	if (!p)
		return;
	bufhead *h = head_of(p);
	httpbuf_cache *c = h->owner;
	c->out--;
	if (c->closing || c->n_kept >= HTTPBUF_KEEP_N ||
	    c->kept_bytes + h->map_len > HTTPBUF_KEEP_BYTES) {
		mapping_free(h);
		maybe_free(c);
		return;
	}
	h->since = uv_now(c->loop);
	list_push_back(&c->kept, &h->link);
	c->n_kept++;
	c->kept_bytes += h->map_len;
	if (!uv_is_active((uv_handle_t *)&c->timer))
		uv_timer_start(&c->timer, on_expire, HTTPBUF_KEEP_MS, 0);
}

size_t httpbuf_kept_bytes(const httpbuf_cache *c)
{
	return c ? c->kept_bytes : 0;
}

size_t httpbuf_mapped_total(void)
{
	return atomic_load(&g_mapped);
}
