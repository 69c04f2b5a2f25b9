/* httpglue - libcurl multi-socket on a worker loop, one connection cache
 * per uid; see httpglue.h. */
#include "httpglue.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "porter_errors.h"
#include "worker.h"

/* ---- process-wide state ---- */

static CURLSH *g_share;
/* No proxy variable in the environment (read once: it never changes). */
static int g_no_proxy_env;
static pthread_mutex_t g_share_locks[CURL_LOCK_DATA_LAST];

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access a, void *u)
{
	(void)h;
	(void)a;
	(void)u;
	pthread_mutex_lock(&g_share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *u)
{
	(void)h;
	(void)u;
	pthread_mutex_unlock(&g_share_locks[data]);
}

int httpglue_global_init(const config *cfg)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return PORTER_E_INTERNAL;
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
	if (!(v->features & CURL_VERSION_ASYNCHDNS))
		log_warn(
			"libcurl %s has no asynchronous resolver: host name lookups will block a worker loop; use IP addresses or a libcurl built with the threaded resolver",
			v->version);
	static const char *const proxy_vars[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
						 "HTTPS_PROXY", "all_proxy",  "ALL_PROXY",
						 "no_proxy",    "NO_PROXY"};
	g_no_proxy_env = 1;
	for (size_t i = 0; i < sizeof(proxy_vars) / sizeof(proxy_vars[0]); i++)
		if (getenv(proxy_vars[i]))
			g_no_proxy_env = 0;
	if (!cfg->http_share)
		return 0;
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&g_share_locks[i], NULL);
	g_share = curl_share_init();
	if (!g_share)
		return PORTER_E_NOMEM;
	curl_share_setopt(g_share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(g_share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	/* DNS answers only. TLS sessions stay with the tenant that made them
	 * (its pooled easy handles): a session resumed by another uid would
	 * let the server link the two users, and would skip the handshake
	 * that another uid's request is owed. */
	curl_share_setopt(g_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	return 0;
}

/*
 * Open streams per uid over all workers: a uid's streams may sit on any
 * worker, and its limit is its own whatever the others hold. Touched once
 * when a stream opens and once when it ends, never on the data path, so
 * one mutex does. Entries of uids back to 0 are kept for reuse: there are
 * as many as uids that ever streamed.
 */
typedef struct uid_streams {
	uid_t uid;
	unsigned n;
} uid_streams;

static pthread_mutex_t g_uid_lock = PTHREAD_MUTEX_INITIALIZER;
static uid_streams *g_uid_streams;
static size_t g_n_uid_streams, g_cap_uid_streams;

int httpglue_streams_take(uid_t uid, unsigned max)
{
	int rc = 0;
	uid_streams *e = NULL;
	pthread_mutex_lock(&g_uid_lock);
	for (size_t i = 0; i < g_n_uid_streams && !e; i++)
		if (g_uid_streams[i].uid == uid)
			e = &g_uid_streams[i];
	if (!e) {
		if (g_n_uid_streams == g_cap_uid_streams) {
			size_t nc = g_cap_uid_streams ? g_cap_uid_streams * 2 : 16;
			uid_streams *ne = realloc(g_uid_streams, nc * sizeof(*ne));
			if (!ne) {
				rc = PORTER_E_NOMEM;
				goto out;
			}
			g_uid_streams = ne;
			g_cap_uid_streams = nc;
		}
		e = &g_uid_streams[g_n_uid_streams++];
		e->uid = uid;
		e->n = 0;
	}
	if (e->n >= max)
		rc = PORTER_E_BUSY;
	else
		e->n++;
out:
	pthread_mutex_unlock(&g_uid_lock);
	return rc;
}

void httpglue_streams_put(uid_t uid)
{
	pthread_mutex_lock(&g_uid_lock);
	for (size_t i = 0; i < g_n_uid_streams; i++)
		if (g_uid_streams[i].uid == uid && g_uid_streams[i].n) {
			g_uid_streams[i].n--;
			break;
		}
	pthread_mutex_unlock(&g_uid_lock);
}

unsigned httpglue_streams_count(uid_t uid)
{
	unsigned n = 0;
	pthread_mutex_lock(&g_uid_lock);
	for (size_t i = 0; i < g_n_uid_streams; i++)
		if (g_uid_streams[i].uid == uid)
			n = g_uid_streams[i].n;
	pthread_mutex_unlock(&g_uid_lock);
	return n;
}

void httpglue_global_cleanup(void)
{
	free(g_uid_streams);
	g_uid_streams = NULL;
	g_n_uid_streams = g_cap_uid_streams = 0;
	if (g_share) {
		curl_share_cleanup(g_share);
		g_share = NULL;
		for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
			pthread_mutex_destroy(&g_share_locks[i]);
	}
	curl_global_cleanup();
}

/* ---- tenants' handles ---- */

/*
 * One socket libcurl asked us to watch. Its poll handle lives as long as
 * the socket, and keeps the events it watches across requests on a reused
 * connection: libuv's uv_poll_start and uv_poll_stop each cost epoll_ctl
 * calls (a start is a DEL and an ADD), so the poll is started only when
 * the events libcurl wants change, and left watching for reads while the
 * connection idles in libcurl's cache (libcurl says CURL_POLL_REMOVE when
 * a transfer ends and asks for reads again when the next one starts).
 */
typedef struct http_sock {
	uv_poll_t poll;
	httpglue_tenant *t;
	curl_socket_t fd;
	int ev;   /* UV_READABLE|UV_WRITABLE the poll watches; 0 stopped */
	int idle; /* libcurl does not watch it now (CURL_POLL_REMOVE) */
	/* Opened by on_open_socket: a connection's, closed through
	 * on_close_socket. Otherwise a socket libcurl made and closes itself
	 * (the threaded resolver's socketpair), never through that callback:
	 * its handle goes at CURL_POLL_REMOVE, or libuv would keep the closed
	 * fd's number as watched, and the next poll handle anyone on this
	 * loop makes for a socket given that number (a PostgreSQL
	 * connection's) would be refused with EEXIST. */
	int own;
	list link; /* t->socks while open */
} http_sock;

/* A tenant's handle has closed: the tenant goes with the last one. */
static void tenant_handle_gone(httpglue_tenant *t)
{
	if (--t->open_handles == 0 && t->closing) {
		httpglue *g = t->g;
		free(t->ca_file);
		free(t->ca_path);
		free(t);
		g->n_alive--;
		g->freed(g);
	}
}

static void on_tenant_timer_closed(uv_handle_t *h)
{
	tenant_handle_gone(h->data);
}

/* ---- sockets ---- */

static void on_sock_closed(uv_handle_t *h)
{
	http_sock *s = h->data;
	httpglue_tenant *t = s->t;
	free(s);
	tenant_handle_gone(t);
}

static void sock_close(http_sock *s)
{
	list_remove(&s->link);
	list_init(&s->link);
	/* uv_close stops the poll and drops the fd from epoll now, so the fd
	 * may be closed (or reused) as soon as this returns. */
	uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static http_sock *sock_find(httpglue_tenant *t, curl_socket_t fd)
{
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &t->socks) {
		http_sock *s = list_entry(pos, http_sock, link);
		if (s->fd == fd)
			return s;
	}
	return NULL;
}

/* A stopped poll handle for `fd`, in t->socks; NULL when out of memory or
 * libuv refuses the fd. */
static http_sock *sock_new(httpglue_tenant *t, curl_socket_t fd, int own)
{
	http_sock *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	if (uv_poll_init_socket(&t->g->w->loop, &s->poll, fd) < 0) {
		free(s);
		return NULL;
	}
	s->t = t;
	s->fd = fd;
	s->own = own;
	s->poll.data = s;
	t->open_handles++;
	list_push_back(&t->socks, &s->link);
	log_debug("http: watching socket %d", (int)fd);
	return s;
}

/* curl_multi_socket_action counted in g->in_curl, then the drain. */
static void action(httpglue_tenant *t, curl_socket_t fd, int flags)
{
	int running;
	httpglue *g = t->g;
	g->in_curl++;
	curl_multi_socket_action(t->multi, fd, flags, &running);
	g->in_curl--;
	g->drain(t);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	http_sock *s = p->data;
	httpglue_tenant *t = s->t;
	worker_saw_io(t->g->w);
	int flags = 0;
	if (s->idle) {
		/* An idle connection became readable (the server closed it,
		 * or a paused transfer's data waits): libcurl will find out
		 * when it wants the socket again. Stop, or level-triggered
		 * readiness would wake the loop for nothing until then. */
		uv_poll_stop(&s->poll);
		s->ev = 0;
		return;
	}
	if (status < 0) {
		/* An error or hang-up on the socket (a reset): let libcurl
		 * read or write it, so it reports the real cause. */
		flags = CURL_CSELECT_IN | CURL_CSELECT_OUT;
	} else {
		if (events & UV_READABLE)
			flags |= CURL_CSELECT_IN;
		if (events & UV_WRITABLE)
			flags |= CURL_CSELECT_OUT;
	}
	action(t, s->fd, flags);
}

/* CURLMOPT_SOCKETFUNCTION: libcurl tells what to watch on `fd`. Only
 * libuv calls and curl_multi_assign happen here. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	(void)easy;
	httpglue_tenant *t = userp;
	http_sock *s = socketp;

	if (what == CURL_POLL_REMOVE) {
		/* Usually an idle connection going back to the cache: keep
		 * the handle and its events (see http_sock), so the next
		 * request on it costs no allocation and no epoll call. A
		 * socket only writing stops: it would be ready at once. The
		 * handle is closed when the socket is (on_close_socket). */
		if (s && !s->own) {
			/* libcurl's own socket: it may be closed already. */
			sock_close(s);
		} else if (s) {
			s->idle = 1;
			if (s->ev & UV_WRITABLE) {
				uv_poll_stop(&s->poll);
				s->ev = 0;
			}
		}
		log_debug("http: socket %d idle", (int)fd);
		if (t->multi)
			curl_multi_assign(t->multi, fd, NULL);
		return 0;
	}
	if (!s)
		s = sock_find(t, fd);
	if (!s)
		s = sock_new(t, fd, 0);
	if (!s)
		return -1;
	curl_multi_assign(t->multi, fd, s);
	int ev = 0;
	if (what & CURL_POLL_IN)
		ev |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		ev |= UV_WRITABLE;
	s->idle = 0;
	if (ev != s->ev) {
		uv_poll_start(&s->poll, ev, on_poll);
		s->ev = ev;
	}
	return 0;
}

/* CURLOPT_OPENSOCKETFUNCTION: a connection's socket, with its handle made
 * here so that it is known as one (http_sock.own). */
static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
	(void)purpose;
	httpglue_tenant *t = clientp;
	curl_socket_t fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	if (fd == CURL_SOCKET_BAD)
		return fd;
	http_sock *s = sock_find(t, fd);
	if (s) {
		/* libcurl closed its resolver's socket, and this socket got
		 * its number: libcurl hands that socket's watch on to this
		 * one, with other events (connecting waits to write), so the
		 * handle starts afresh as this connection's. */
		uv_poll_stop(&s->poll);
		s->ev = 0;
		s->idle = 0;
		s->own = 1;
	} else if (!sock_new(t, fd, 1)) {
		close(fd);
		return CURL_SOCKET_BAD;
	}
	return fd;
}

/* CURLOPT_CLOSESOCKETFUNCTION: the poll handle goes before the fd does.
 * A connection keeps the tenant of the handle that opened it, and lives in
 * that tenant's cache, so `clientp` is the tenant whose socks hold it. */
static int on_close_socket(void *clientp, curl_socket_t fd)
{
	httpglue_tenant *t = clientp;
	http_sock *s = sock_find(t, fd);
	if (s) {
		sock_close(s);
		if (t->multi)
			curl_multi_assign(t->multi, fd, NULL);
		log_debug("http: closed socket %d", (int)fd);
	}
	return close(fd);
}

/* ---- libcurl's timer ---- */

static void on_timer(uv_timer_t *timer)
{
	action(timer->data, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_TIMERFUNCTION: one timer, replaced by each call; -1 deletes
 * it. A 0 ms timeout fires on the next loop iteration, never from here. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	httpglue_tenant *t = userp;
	if (t->closing)
		return 0;
	if (timeout_ms < 0)
		uv_timer_stop(&t->timer);
	else
		uv_timer_start(&t->timer, on_timer, (uint64_t)timeout_ms, 0);
	return 0;
}

/* ---- tenants ---- */

void httpglue_init(httpglue *g, worker *w, void (*drain)(httpglue_tenant *t),
		   void (*freed)(httpglue *g))
{
	g->w = w;
	list_init(&g->tenants);
	g->n_alive = 0;
	g->closing = 0;
	g->in_curl = 0;
	g->drain = drain;
	g->freed = freed;
}

httpglue_tenant *httpglue_hold(httpglue *g, uid_t uid)
{
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &g->tenants) {
		httpglue_tenant *t = list_entry(pos, httpglue_tenant, link);
		if (t->uid == uid) {
			t->n_xfers++;
			return t;
		}
	}
	httpglue_tenant *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->multi = curl_multi_init();
	if (!t->multi) {
		free(t);
		return NULL;
	}
	t->g = g;
	t->uid = uid;
	list_init(&t->socks);
	curl_multi_setopt(t->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(t->multi, CURLMOPT_SOCKETDATA, t);
	curl_multi_setopt(t->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(t->multi, CURLMOPT_TIMERDATA, t);
	curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS, (long)HTTPGLUE_MAX_CONNECTS);
	if (g->w->cfg->http_max_host_connections)
		curl_multi_setopt(t->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
				  (long)g->w->cfg->http_max_host_connections);
	uv_timer_init(&g->w->loop, &t->timer);
	t->timer.data = t;
	t->open_handles = 1;
	t->n_xfers = 1;
	g->n_alive++;
	list_push_back(&g->tenants, &t->link);
	log_debug("http: new tenant for uid %u", (unsigned)uid);
	return t;
}

int httpglue_release(httpglue_tenant *t, uint64_t now)
{
	if (--t->n_xfers)
		return 0;
	t->idle_since = now;
	return 1;
}

static int str_eq(const char *a, const char *b)
{
	return (!a || !*a) ? (!b || !*b) : (b && strcmp(a, b) == 0);
}

/* Follows a reload that changed the TLS options: handles set up before are
 * reset when next taken. 0, or -1 when out of memory. */
static int follow_tls(httpglue_tenant *t, const config *cfg)
{
	if (t->tls_epoch && t->tls_verify == cfg->http_tls_verify &&
	    str_eq(t->ca_file, cfg->http_ca_file) && str_eq(t->ca_path, cfg->http_ca_path))
		return 0;
	char *f = cfg->http_ca_file && cfg->http_ca_file[0] ? strdup(cfg->http_ca_file) : NULL;
	char *p = cfg->http_ca_path && cfg->http_ca_path[0] ? strdup(cfg->http_ca_path) : NULL;
	if ((cfg->http_ca_file && cfg->http_ca_file[0] && !f) ||
	    (cfg->http_ca_path && cfg->http_ca_path[0] && !p)) {
		free(f);
		free(p);
		return -1;
	}
	free(t->ca_file);
	free(t->ca_path);
	t->ca_file = f;
	t->ca_path = p;
	t->tls_verify = cfg->http_tls_verify;
	if (++t->tls_epoch == 0)
		t->tls_epoch = 1; /* 0 means "reset" */
	return 0;
}

CURL *httpglue_easy_get(httpglue_tenant *t, const config *cfg, unsigned *epoch, int *fresh)
{
	if (follow_tls(t, cfg) < 0)
		return NULL;
	CURL *e = NULL;
	*fresh = 1;
	if (t->n_pool) {
		httpglue_idle *i = &t->pool[--t->n_pool];
		e = i->e;
		if (i->epoch == t->tls_epoch)
			*fresh = 0;
		else if (i->epoch)
			curl_easy_reset(e);
	} else {
		e = curl_easy_init();
		if (!e)
			return NULL;
	}
	*epoch = t->tls_epoch;
	if (!*fresh)
		return e;
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t);
	curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
	curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, t);
	if (g_share)
		curl_easy_setopt(e, CURLOPT_SHARE, g_share);
	if (g_no_proxy_env) {
		/* Nothing in porterd's environment names a proxy, and its
		 * environment never changes: saying so spares libcurl the
		 * getenv calls it makes for every transfer otherwise. */
		curl_easy_setopt(e, CURLOPT_PROXY, "");
		curl_easy_setopt(e, CURLOPT_NOPROXY, "");
	}
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, t->tls_verify ? 1L : 0L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, t->tls_verify ? 2L : 0L);
	if (t->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, t->ca_file);
	if (t->ca_path)
		curl_easy_setopt(e, CURLOPT_CAPATH, t->ca_path);
	return e;
}

void httpglue_easy_put(httpglue_tenant *t, CURL *e, unsigned epoch)
{
	/* Back to its own tenant's pool only: a pooled handle keeps
	 * libcurl's TLS session cache, which is per uid. */
	if (t->closing || t->g->closing || t->n_pool == HTTPGLUE_POOL) {
		curl_easy_cleanup(e);
		return;
	}
	if (epoch) {
		/* Kept options that point into the transfer, about to be
		 * freed: none is used while idle, but none is left dangling. */
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
		curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
		curl_easy_setopt(e, CURLOPT_CURLU, NULL);
	} else {
		curl_easy_reset(e);
	}
	t->pool[t->n_pool].e = e;
	t->pool[t->n_pool].epoch = epoch;
	t->n_pool++;
}

void httpglue_kick(httpglue_tenant *t)
{
	action(t, CURL_SOCKET_TIMEOUT, 0);
}

CURLcode httpglue_pause(httpglue *g, CURL *e, int bitmask)
{
	g->in_curl++;
	CURLcode rc = curl_easy_pause(e, bitmask);
	g->in_curl--;
	return rc;
}

/* Closes `t`'s cached connections and handles; it is freed when the last
 * one has called back. Not inside a libcurl callback. */
static void tenant_close(httpglue_tenant *t)
{
	list *pos, *tmp;
	list_remove(&t->link);
	while (t->n_pool)
		curl_easy_cleanup(t->pool[--t->n_pool].e);
	/* Closes the cached connections through on_close_socket, which
	 * closes their poll handles. */
	CURLM *m = t->multi;
	t->multi = NULL;
	t->closing = 1;
	curl_multi_cleanup(m);
	/* No transfer holds the tenant, so none holds a URL. */
	httpurl_cache_free(&t->urls);
	list_for_each_safe(pos, tmp, &t->socks)
		sock_close(list_entry(pos, http_sock, link));
	uv_close((uv_handle_t *)&t->timer, on_tenant_timer_closed);
}

uint64_t httpglue_close_idle(httpglue *g, uint64_t now)
{
	list *pos, *tmp;
	uint64_t next = UINT64_MAX;
	list_for_each_safe(pos, tmp, &g->tenants) {
		httpglue_tenant *t = list_entry(pos, httpglue_tenant, link);
		if (t->n_xfers)
			continue;
		if (now - t->idle_since >= HTTPGLUE_TENANT_IDLE_MS) {
			tenant_close(t);
			continue;
		}
		uint64_t left = HTTPGLUE_TENANT_IDLE_MS - (now - t->idle_since);
		if (left < next)
			next = left;
	}
	return next;
}

void httpglue_close_all(httpglue *g)
{
	list *pos, *tmp;
	g->closing = 1;
	list_for_each_safe(pos, tmp, &g->tenants)
		tenant_close(list_entry(pos, httpglue_tenant, link));
}
