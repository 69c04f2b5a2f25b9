#include "tmpname.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "htab.h"
#include "list.h"
#include "randid.h"

#define PREFIX ".porter-"
#define SUFFIX ".tmp"
#define PREFIX_LEN (sizeof(PREFIX) - 1)

static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static uint64_t key[2];
static int key_ok;

static void draw_key(void)
{
	uint8_t k[16];
	size_t got = 0;
	while (got < sizeof(k)) {
		ssize_t n = getrandom(k + got, sizeof(k) - got, GRND_NONBLOCK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* key_ok stays 0: no names are made or recognised */
		got += (size_t)n;
	}
	memcpy(&key[0], k, 8);
	memcpy(&key[1], k + 8, 8);
	key_ok = 1;
}

static uint64_t rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

/* One SipHash round over v[0..3]. */
static void sipround(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = rotl(v[1], 13);
	v[1] ^= v[0];
	v[0] = rotl(v[0], 32);
	v[2] += v[3];
	v[3] = rotl(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = rotl(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = rotl(v[1], 17);
	v[1] ^= v[2];
	v[2] = rotl(v[2], 32);
}

/* SipHash-2-4 of the 8-byte message `m` (its little-endian bytes) under
 * `key`. */
static uint64_t siphash_u64(uint64_t m)
{
	uint64_t v[4] = {key[0] ^ 0x736f6d6570736575ull, key[1] ^ 0x646f72616e646f6dull,
			 key[0] ^ 0x6c7967656e657261ull, key[1] ^ 0x7465646279746573ull};
	/* The one full block, then the final block: no bytes left over,
	 * the length (8) in its top byte. */
	uint64_t blocks[2] = {m, (uint64_t)8 << 56};
	for (int i = 0; i < 2; i++) {
		v[3] ^= blocks[i];
		sipround(v);
		sipround(v);
		v[0] ^= blocks[i];
	}
	v[2] ^= 0xff;
	for (int i = 0; i < 4; i++)
		sipround(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* ---- the record of names made ---- */

typedef struct entry {
	htab_node node; /* in names, by nonce */
	list rlink;     /* in retired, oldest first, once retired */
	uint64_t nonce;
	uint64_t retired_ms;  /* 0 while live */
	uint64_t retired_seq; /* retirements up to its own, once retired */
	uint64_t dir_dev, dir_ino;
	int placed; /* dir_dev and dir_ino are known */
} entry;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static htab names;
static list retired = {&retired, &retired};
static size_t n_retired;
/* Retirements so far (written under mu, read by anyone). */
static _Atomic uint64_t n_retirements;

uint64_t tmpname_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* Never 0, which marks a live entry. */
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + 1;
}

static entry *find(uint64_t nonce)
{
	uint64_t h = htab_mix(nonce);
	for (htab_node *n = htab_first(&names, h); n; n = htab_next(n))
		if (((entry *)n)->nonce == nonce)
			return (entry *)n;
	return NULL;
}

/* Forgets retired names past TMPNAME_RETAIN_MS or TMPNAME_RETIRED_MAX. */
static void prune(uint64_t now)
{
	while (!list_empty(&retired)) {
		entry *e = list_entry(retired.next, entry, rlink);
		if (n_retired <= TMPNAME_RETIRED_MAX && now - e->retired_ms < TMPNAME_RETAIN_MS)
			break;
		list_remove(&e->rlink);
		htab_remove(&names, &e->node);
		n_retired--;
		free(e);
	}
}

int tmpname_make(char out[TMPNAME_SIZE])
{
	uint64_t nonce;
	pthread_once(&key_once, draw_key);
	if (!key_ok || randid_new(64, &nonce) < 0) {
		out[0] = '\0';
		return EAGAIN;
	}
	snprintf(out, TMPNAME_SIZE, PREFIX "%016llx%016llx" SUFFIX, (unsigned long long)nonce,
		 (unsigned long long)siphash_u64(nonce));
	/* Out of memory, the name goes unrecorded: watchers then report its
	 * file, which shows more than it should, never less. */
	entry *e = calloc(1, sizeof(*e));
	if (!e)
		return 0;
	e->nonce = nonce;
	list_init(&e->rlink);
	pthread_mutex_lock(&mu);
	prune(tmpname_now_ms());
	if (find(nonce) || htab_insert(&names, &e->node, htab_mix(nonce)) < 0)
		free(e);
	pthread_mutex_unlock(&mu);
	return 0;
}

/* The value of the 16 lower-case hex digits at `s`, or -1 if they are not. */
static int hex16(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	for (int i = 0; i < 16; i++) {
		char c = s[i];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return -1;
		v = v << 4 | d;
	}
	*out = v;
	return 0;
}

/* The nonce of `name` when its tag verifies: 0, else -1. */
static int verify(const char *name, uint64_t *nonce)
{
	uint64_t tag;
	if (strlen(name) != TMPNAME_SIZE - 1 || memcmp(name, PREFIX, PREFIX_LEN) != 0 ||
	    strcmp(name + PREFIX_LEN + 32, SUFFIX) != 0)
		return -1;
	pthread_once(&key_once, draw_key);
	if (!key_ok || hex16(name + PREFIX_LEN, nonce) < 0 ||
	    hex16(name + PREFIX_LEN + 16, &tag) < 0)
		return -1;
	return siphash_u64(*nonce) == tag ? 0 : -1;
}

int tmpname_is_ours(const char *name)
{
	uint64_t nonce;
	return verify(name, &nonce) == 0;
}

/* The state of the name of nonce `v`, with when and as which it was
 * retired. */
static enum tmpname_state nonce_state(uint64_t v, uint64_t *retired_ms, uint64_t *retired_seq)
{
	enum tmpname_state st = TMPNAME_FOREIGN;
	pthread_mutex_lock(&mu);
	prune(tmpname_now_ms());
	const entry *e = find(v);
	if (e) {
		st = e->retired_ms ? TMPNAME_RETIRED : TMPNAME_LIVE;
		*retired_ms = e->retired_ms;
		*retired_seq = e->retired_seq;
	}
	pthread_mutex_unlock(&mu);
	return st;
}

enum tmpname_state tmpname_state(const char *name, uint64_t *nonce, uint64_t *retired_ms,
				 uint64_t *retired_seq)
{
	uint64_t v, seq = 0;
	if (verify(name, &v) < 0)
		return TMPNAME_FOREIGN;
	enum tmpname_state st = nonce_state(v, retired_ms, &seq);
	if (st != TMPNAME_FOREIGN) {
		*nonce = v;
		if (retired_seq)
			*retired_seq = seq;
	}
	return st;
}

enum tmpname_state tmpname_nonce_state(uint64_t nonce, uint64_t *retired_seq)
{
	uint64_t ms;
	return nonce_state(nonce, &ms, retired_seq);
}

uint64_t tmpname_retired_count(void)
{
	return atomic_load(&n_retirements);
}

void tmpname_place(const char *name, uint64_t dir_dev, uint64_t dir_ino)
{
	uint64_t v;
	if (!name[0] || verify(name, &v) < 0)
		return;
	pthread_mutex_lock(&mu);
	entry *e = find(v);
	if (e && !e->retired_ms) {
		e->dir_dev = dir_dev;
		e->dir_ino = dir_ino;
		e->placed = 1;
	}
	pthread_mutex_unlock(&mu);
}

int tmpname_in_dir(uint64_t nonce, uint64_t dir_dev, uint64_t dir_ino)
{
	pthread_mutex_lock(&mu);
	const entry *e = find(nonce);
	int in = !e || !e->placed || (e->dir_dev == dir_dev && e->dir_ino == dir_ino);
	pthread_mutex_unlock(&mu);
	return in;
}

void tmpname_retire(const char *name)
{
	uint64_t v;
	if (!name[0] || verify(name, &v) < 0)
		return;
	pthread_mutex_lock(&mu);
	uint64_t now = tmpname_now_ms();
	entry *e = find(v);
	if (e && !e->retired_ms) {
		e->retired_ms = now;
		/* After the caller's last system call on the name, whose
		 * events are queued by now (tmpname_retired_count). */
		e->retired_seq = atomic_fetch_add(&n_retirements, 1) + 1;
		list_push_back(&retired, &e->rlink);
		n_retired++;
	}
	prune(now);
	pthread_mutex_unlock(&mu);
}
