/* httpurl - parsed URLs kept per tenant; see httpurl.h. */
#include "httpurl.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a: the URLs are short and the table tiny; a hash only spares most
 * string comparisons. */
static uint64_t hash_of(const char *s, size_t *len)
{
	uint64_t h = 0xcbf29ce484222325ull;
	const char *p = s;
	for (; *p && p - s <= HTTPURL_MAX_LEN; p++) {
		h ^= (unsigned char)*p;
		h *= 0x100000001b3ull;
	}
	*len = (size_t)(p - s);
	return h;
}

static void slot_clear(httpurl *u)
{
	curl_url_cleanup(u->cu);
	free(u->text);
	memset(u, 0, sizeof(*u));
}

httpurl *httpurl_hold(httpurl_cache *c, const char *url)
{
	size_t len;
	uint64_t h = hash_of(url, &len);
	if (len > HTTPURL_MAX_LEN)
		return NULL;
	httpurl *victim = NULL;
	for (unsigned i = 0; i < HTTPURL_SLOTS; i++) {
		httpurl *u = &c->slot[i];
		if (u->text && u->hash == h && u->len == len && memcmp(u->text, url, len) == 0) {
			u->refs++;
			u->used = ++c->tick;
			return u;
		}
		if (!u->refs && (!victim || !u->text || (victim->text && u->used < victim->used)))
			victim = u;
	}
	if (!victim)
		return NULL;
	CURLU *cu = curl_url();
	char *text = malloc(len + 1);
	/* The flags libcurl 7.88 parses CURLOPT_URL with (porterd sets no
	 * default protocol, and neither CURLOPT_DISALLOW_USERNAME_IN_URL nor
	 * CURLOPT_PATH_AS_IS). */
	if (!cu || !text ||
	    curl_url_set(cu, CURLUPART_URL, url, CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) !=
		    CURLUE_OK) {
		curl_url_cleanup(cu);
		free(text);
		return NULL;
	}
	memcpy(text, url, len + 1);
	slot_clear(victim);
	victim->text = text;
	victim->len = len;
	victim->hash = h;
	victim->cu = cu;
	victim->refs = 1;
	victim->used = ++c->tick;
	return victim;
}

void httpurl_put(httpurl *u)
{
	if (u)
		u->refs--;
}

void httpurl_cache_free(httpurl_cache *c)
{
	for (unsigned i = 0; i < HTTPURL_SLOTS; i++)
		slot_clear(&c->slot[i]);
	c->tick = 0;
}
