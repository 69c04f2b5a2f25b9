/*
 * httpurl - the URLs a tenant requests, kept parsed by libcurl's URL API,
 * so that a repeated URL is handed to libcurl already parsed
 * (CURLOPT_CURLU) instead of being parsed and formatted again per request.
 *
 * libcurl 7.88 parses CURLOPT_URL into a CURLU on every transfer, then
 * formats the whole URL back (curl_url_get of CURLUPART_URL, through its
 * printf engine): some 10k instructions of porterd's ~75k per GET of 1 KiB.
 * Given a CURLU, it takes a copy (curl_url_dup) for the transfer and reads
 * its parts from that copy; redirects (CURLINFO_REDIRECT_URL) resolve
 * against that copy too, so the cached one is never changed by libcurl.
 * CURLOPT_URL is still set to the same text on every transfer: libcurl
 * keeps it as the transfer's URL (state.url), which a retry on a dead
 * reused connection goes back to; left from an earlier transfer on a
 * pooled handle it would be another request's URL.
 *
 * An entry is held by each transfer that uses it (libcurl reads it again
 * on a retry, until the transfer is removed) and only an entry nobody
 * holds is replaced. Each tenant (one uid on one worker) has its own
 * cache, so a uid's URLs are never another's.
 *
 * Owned by one worker loop; not thread safe.
 */
#ifndef PORTER_HTTPURL_H
#define PORTER_HTTPURL_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

/* URLs kept per tenant. */
#define HTTPURL_SLOTS 8
/* Longer URLs are left to libcurl (they are rarely repeated). */
#define HTTPURL_MAX_LEN 1024

typedef struct httpurl {
	char *text;    /* owned: the URL as requested; NULL when the slot is free */
	size_t len;    /* strlen(text) */
	uint64_t hash; /* of text */
	CURLU *cu;     /* owned: text parsed as libcurl parses CURLOPT_URL */
	unsigned refs; /* transfers using it */
	uint64_t used; /* the cache's tick when last held */
} httpurl;

typedef struct httpurl_cache {
	httpurl slot[HTTPURL_SLOTS];
	uint64_t tick;
} httpurl_cache;

/*
 * The parsed form of `url` (not NULL), from the cache or parsed now into a
 * free slot (or the least recently used one nobody holds), held for one
 * transfer until httpurl_put. NULL when it is not cached and cannot be:
 * too long, every slot held, out of memory, or refused by libcurl's parser
 * (which then refuses CURLOPT_URL the same way). The caller then lets
 * libcurl parse CURLOPT_URL itself.
 */
httpurl *httpurl_hold(httpurl_cache *c, const char *url);

/* Lets go of one hold on `u` (NULL accepted). */
void httpurl_put(httpurl *u);

/* Frees every entry; none may be held. The cache is empty afterwards. */
void httpurl_cache_free(httpurl_cache *c);

#endif
