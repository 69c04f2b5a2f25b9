/* clients - the client-identity registry and close hooks; see clients.h. */
#include "clients.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"
#include "htab.h"
#include "list.h"
#include "porter_errors.h"

static uid_t self_uid;
static pthread_once_t self_once = PTHREAD_ONCE_INIT;

static void read_self(void)
{
	self_uid = geteuid();
}

uid_t clients_self(void)
{
	pthread_once(&self_once, read_self);
	return self_uid;
}

/* One client identity. */
typedef struct ident {
	htab_node node; /* in G.idents; first member */
	struct uent *u; /* its uid's entry */
	uid_t uid;
	uint64_t inst;
	unsigned conns;      /* connections past Hello that are open */
	uint64_t gone_since; /* monotonic ms when conns dropped to 0 */
	list gone;           /* in G.gone while conns == 0, oldest first */
	list ugone;          /* in u->gone while conns == 0, oldest first */
} ident;

/* One uid with at least one known identity or one holder of its
 * accounting. The public name of an entry is clients_acct. */
typedef struct uent {
	htab_node node; /* in G.uids; first member */
	uid_t uid;
	size_t n_idents; /* identities of this uid */
	size_t n_gone;   /* of which gone (in `gone`) */
	list gone;
	size_t refs; /* clients_acct_open/ref holders; freed when both are 0 */
	_Atomic uint64_t use[CLIENTS_RES_N];
	_Atomic uint64_t output;       /* its connections' unsent reply bytes */
	_Atomic uint64_t discard_free; /* ms (uv_now) when its refused frames'
					* bytes may be read again */
} uent;

#define MAX_HOOKS 8

static struct {
	pthread_mutex_t mu;
	htab idents; /* of ident */
	htab uids;   /* of uent */
	list gone;   /* every gone ident, oldest first */
	clients_close_hook hooks[MAX_HOOKS];
	unsigned n_hooks;
} G = {.mu = PTHREAD_MUTEX_INITIALIZER, .gone = {&G.gone, &G.gone}};

int clients_peer_read(int fd, clients_peer *out)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	memset(out, 0, sizeof(*out));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -errno;
	out->uid = cred.uid;
	out->gid = cred.gid;
	out->pid = cred.pid;
#ifdef SO_PEERGROUPS
	len = sizeof(out->groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, out->groups, &len) == 0) {
		out->n_groups = len / sizeof(gid_t);
	} else if (errno == ERANGE && len > sizeof(out->groups)) {
		/* More groups than we keep: the kernel filled nothing and said
		 * how much room it needs; keep the first ones. */
		gid_t *all = malloc(len);
		if (all && getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, all, &len) == 0) {
			memcpy(out->groups, all, sizeof(out->groups));
			out->n_groups = CLIENTS_MAX_GROUPS;
		}
		free(all);
	}
#endif
	return 0;
}

int clients_peer_allowed(const config *cfg, int activated, const clients_peer *peer)
{
	if (activated && !cfg->allow_uid_set && cfg->n_allow_gids == 0)
		return 1;
	return config_uid_allowed(cfg, peer->uid) ||
	       config_gid_allowed(cfg, peer->gid, peer->groups, peer->n_groups);
}

static _Atomic uint64_t output_total; /* every connection's unsent bytes */
static _Atomic uint64_t output_uids;  /* uids with unsent bytes */

static uint64_t mono_ms(void)
{
	return uv_hrtime() / 1000000;
}

static uint64_t ident_hash(uid_t uid, uint64_t inst)
{
	return htab_mix(inst ^ htab_mix((uint64_t)uid + 1));
}

static uint64_t uid_hash(uid_t uid)
{
	return htab_mix((uint64_t)uid + 1);
}

static ident *find(uid_t uid, uint64_t inst)
{
	uint64_t h = ident_hash(uid, inst);
	for (htab_node *n = htab_first(&G.idents, h); n; n = htab_next(n)) {
		ident *i = (ident *)n;
		if (i->uid == uid && i->inst == inst)
			return i;
	}
	return NULL;
}

static uent *find_uid(uid_t uid)
{
	for (htab_node *n = htab_first(&G.uids, uid_hash(uid)); n; n = htab_next(n))
		if (((uent *)n)->uid == uid)
			return (uent *)n;
	return NULL;
}

static void forget(ident *i)
{
	uent *u = i->u;
	list_remove(&i->gone);
	list_remove(&i->ugone);
	u->n_gone--;
	htab_remove(&G.idents, &i->node);
	free(i);
	if (--u->n_idents == 0 && u->refs == 0) {
		htab_remove(&G.uids, &u->node);
		free(u);
	}
}

/* Drops identities gone for longer than CLIENTS_FORGET_MS; the list is in
 * gone order, so this stops at the first that is not. */
static void expire(uint64_t now)
{
	while (!list_empty(&G.gone)) {
		ident *i = list_entry(G.gone.next, ident, gone);
		if (now - i->gone_since <= CLIENTS_FORGET_MS)
			break;
		forget(i);
	}
}

/* The entry of `uid`, created when missing; NULL when out of memory. */
static uent *get_uid(uid_t uid)
{
	uent *u = find_uid(uid);
	if (u)
		return u;
	if (!(u = calloc(1, sizeof(*u))))
		return NULL;
	u->uid = uid;
	list_init(&u->gone);
	if (htab_insert(&G.uids, &u->node, uid_hash(uid)) < 0) {
		free(u);
		return NULL;
	}
	return u;
}

static ident *create(uid_t uid, uint64_t inst)
{
	uent *u = get_uid(uid);
	if (!u)
		return NULL;
	ident *i = calloc(1, sizeof(*i));
	if (!i || htab_insert(&G.idents, &i->node, ident_hash(uid, inst)) < 0) {
		free(i);
		if (u->n_idents == 0 && u->refs == 0) {
			htab_remove(&G.uids, &u->node);
			free(u);
		}
		return NULL;
	}
	i->u = u;
	i->uid = uid;
	i->inst = inst;
	list_init(&i->gone);
	list_init(&i->ugone);
	u->n_idents++;
	return i;
}

void clients_attach(uid_t uid, uint64_t instance)
{
	pthread_mutex_lock(&G.mu);
	expire(mono_ms());
	ident *i = find(uid, instance);
	if (!i)
		i = create(uid, instance);
	if (i) {
		if (i->conns++ == 0 && !list_empty(&i->gone)) {
			/* Back before it was forgotten: no longer gone. */
			list_remove(&i->gone);
			list_remove(&i->ugone);
			i->u->n_gone--;
		}
	}
	pthread_mutex_unlock(&G.mu);
}

void clients_detach(uid_t uid, uint64_t instance)
{
	uint64_t now = mono_ms();
	pthread_mutex_lock(&G.mu);
	ident *i = find(uid, instance);
	if (i && i->conns && --i->conns == 0) {
		uent *u = i->u;
		i->gone_since = now;
		list_push_back(&G.gone, &i->gone);
		list_push_back(&u->gone, &i->ugone);
		if (++u->n_gone > CLIENTS_GONE_PER_UID)
			forget(list_entry(u->gone.next, ident, ugone));
	}
	expire(now);
	pthread_mutex_unlock(&G.mu);
}

uint64_t clients_gone_ms(uid_t uid, uint64_t instance)
{
	uint64_t r = UINT64_MAX;
	uint64_t now = mono_ms();
	pthread_mutex_lock(&G.mu);
	ident *i = find(uid, instance);
	/* At least 1 once gone, so 0 only ever means present. */
	if (i)
		r = i->conns ? 0 : now - i->gone_since + 1;
	pthread_mutex_unlock(&G.mu);
	return r;
}

size_t clients_known(void)
{
	pthread_mutex_lock(&G.mu);
	size_t n = G.idents.n;
	pthread_mutex_unlock(&G.mu);
	return n;
}

void clients_reset(void)
{
	pthread_mutex_lock(&G.mu);
	/* Both entry types start with their node, so one walk frees both. */
	htab *ts[] = {&G.idents, &G.uids};
	for (size_t k = 0; k < 2; k++) {
		for (size_t s = 0; s < ts[k]->cap; s++) {
			htab_node *e = ts[k]->b[s];
			while (e) {
				htab_node *next = e->next;
				free(e);
				e = next;
			}
		}
		htab_free(ts[k]);
	}
	list_init(&G.gone);
	atomic_store(&output_total, 0);
	atomic_store(&output_uids, 0);
	pthread_mutex_unlock(&G.mu);
}

/* ---- per-uid accounting ---- */

static const char *const res_names[CLIENTS_RES_N] = {
	[CLIENTS_CONNS] = "connections",       [CLIENTS_INFLIGHT] = "requests in flight",
	[CLIENTS_BUFFERED] = "buffered bytes", [CLIENTS_SESSIONS] = "database connections",
	[CLIENTS_STREAMS] = "open streams",    [CLIENTS_FILE_STREAMS] = "open file streams",
};

const char *clients_res_name(enum clients_res res)
{
	return res < CLIENTS_RES_N ? res_names[res] : "?";
}

clients_acct *clients_acct_ref(uid_t uid)
{
	pthread_mutex_lock(&G.mu);
	uent *u = get_uid(uid);
	if (u)
		u->refs++;
	pthread_mutex_unlock(&G.mu);
	return (clients_acct *)u;
}

void clients_acct_unref(clients_acct *a)
{
	uent *u = (uent *)a;
	if (!u)
		return;
	pthread_mutex_lock(&G.mu);
	if (--u->refs == 0 && u->n_idents == 0) {
		htab_remove(&G.uids, &u->node);
		free(u);
	}
	pthread_mutex_unlock(&G.mu);
}

int clients_take(clients_acct *a, enum clients_res res, uint64_t n, uint64_t limit)
{
	uent *u = (uent *)a;
	if (!u)
		return 1;
	uint64_t was = atomic_fetch_add_explicit(&u->use[res], n, memory_order_relaxed);
	if (limit && was + n > limit) {
		atomic_fetch_sub_explicit(&u->use[res], n, memory_order_relaxed);
		return 0;
	}
	return 1;
}

void clients_put(clients_acct *a, enum clients_res res, uint64_t n)
{
	uent *u = (uent *)a;
	if (u)
		atomic_fetch_sub_explicit(&u->use[res], n, memory_order_relaxed);
}

uint64_t clients_use(const clients_acct *a, enum clients_res res)
{
	const uent *u = (const uent *)a;
	return u ? atomic_load_explicit(&u->use[res], memory_order_relaxed) : 0;
}

uint64_t clients_output_add(clients_acct *a, int64_t delta)
{
	uent *u = (uent *)a;
	if (u && delta) {
		/* Each move of the uid's count through zero is seen by exactly
		 * one caller (one atomic step each), whatever the threads. */
		uint64_t was = delta > 0 ? atomic_fetch_add_explicit(&u->output, (uint64_t)delta,
								     memory_order_relaxed)
					 : atomic_fetch_sub_explicit(&u->output, (uint64_t)-delta,
								     memory_order_relaxed);
		if (delta > 0 && was == 0)
			atomic_fetch_add_explicit(&output_uids, 1, memory_order_relaxed);
		else if (delta < 0 && was == (uint64_t)-delta)
			atomic_fetch_sub_explicit(&output_uids, 1, memory_order_relaxed);
	}
	if (delta >= 0)
		return atomic_fetch_add_explicit(&output_total, (uint64_t)delta,
						 memory_order_relaxed) +
		       (uint64_t)delta;
	return atomic_fetch_sub_explicit(&output_total, (uint64_t)-delta, memory_order_relaxed) -
	       (uint64_t)-delta;
}

uint64_t clients_discard_pace(clients_acct *a, uint64_t now, uint64_t ms)
{
	uent *u = (uent *)a;
	if (!u)
		return now + ms;
	uint64_t was = atomic_load_explicit(&u->discard_free, memory_order_relaxed);
	uint64_t end;
	do
		end = (was > now ? was : now) + ms;
	while (!atomic_compare_exchange_weak_explicit(&u->discard_free, &was, end,
						      memory_order_relaxed, memory_order_relaxed));
	return end;
}

int clients_output_over_share(const clients_acct *a, uint64_t limit)
{
	const uent *u = (const uent *)a;
	if (!u)
		return 1;
	/* A uid's move to zero can be counted before its move from zero
	 * when two workers' connections of it cross (one preempted between
	 * its two steps): the count then reads below zero for a moment,
	 * which unsigned made a share of 0, every connection over it. Read
	 * as signed, such a moment gives the whole limit (no one dropped for
	 * a share), not none. */
	int64_t uids = (int64_t)atomic_load_explicit(&output_uids, memory_order_relaxed);
	return atomic_load_explicit(&u->output, memory_order_relaxed) >
	       limit / (uint64_t)(uids > 0 ? uids : 1);
}

int clients_uid_usage_get(uid_t uid, clients_uid_usage *out)
{
	pthread_mutex_lock(&G.mu);
	uent *u = find_uid(uid);
	if (u) {
		out->uid = uid;
		for (int r = 0; r < CLIENTS_RES_N; r++)
			out->use[r] = atomic_load_explicit(&u->use[r], memory_order_relaxed);
	}
	pthread_mutex_unlock(&G.mu);
	return u != NULL;
}

size_t clients_uid_snapshot(clients_uid_usage *out, size_t cap)
{
	size_t n = 0;
	pthread_mutex_lock(&G.mu);
	for (size_t s = 0; s < G.uids.cap; s++)
		for (uent *u = (uent *)G.uids.b[s]; u; u = (uent *)u->node.next) {
			if (!u->refs)
				continue; /* only remembered identities: nothing held */
			if (n < cap) {
				out[n].uid = u->uid;
				for (int r = 0; r < CLIENTS_RES_N; r++)
					out[n].use[r] = atomic_load_explicit(&u->use[r],
									     memory_order_relaxed);
			}
			n++;
		}
	pthread_mutex_unlock(&G.mu);
	return n;
}

int clients_on_close(clients_close_hook fn)
{
	if (G.n_hooks == MAX_HOOKS)
		return PORTER_E_INTERNAL;
	G.hooks[G.n_hooks++] = fn;
	return 0;
}

void clients_conn_closed(const clients_conn_info *info)
{
	/* Past Hello the identity was counted; database sessions outlive
	 * their client's last connection only by a grace period. */
	if (info->had_hello)
		clients_detach(info->uid, info->instance);
	for (unsigned k = 0; k < G.n_hooks; k++)
		G.hooks[k](info);
}
