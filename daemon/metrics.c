/* metrics - Prometheus text file and loopback endpoint; see metrics.h. */
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "clients.h"
#include "config.h"
#include "list.h"
#include "log.h"
#include "porter_errors.h"
#include "peeruid.h"
#include "porter_version.h"
#include "server.h"
#include "stats.h"
#include "worker.h"

/* Connections at once. Past it one still waiting for its request is
 * closed to make room: the oldest of the uid holding the most. Any local
 * user can connect: refusing newcomers let anyone hold every slot with
 * idle connections, and closing the oldest of all let a user whose new
 * connections porterd accepted faster than it read the scraper's request
 * push the scraper out. */
#define MAX_CLIENTS 16
/* A scrape must send its request and take its answer within this. */
#define CLIENT_TIMEOUT_MS 5000
#define REQUEST_MAX 4096

/* One HTTP scrape connection: read the request, answer, close. */
typedef struct mclient {
	list link; /* metrics.clients */
	struct metrics *m;
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_write_t wr;
	int open;     /* handles not yet closed (tcp, timer) */
	int answered; /* a response is being written */
	uid_t uid;    /* of the peer's socket (peeruid.h); (uid_t)-1 unknown */
	char *resp;   /* owned while writing */
	size_t len;
	char req[REQUEST_MAX];
} mclient;

struct metrics {
	struct server *srv; /* not owned */
	uv_timer_t file_timer;
	char *file; /* owned; NULL when the file is off */
	uint32_t interval_ms;
	int writing; /* a file job is on the thread pool */
	uv_work_t work;
	char *job_path; /* owned by the job while writing */
	char *job_text;
	size_t job_len;
	int job_err;     /* errno of the job, 0 on success */
	int file_warned; /* a failing write is logged once per streak */
	uv_tcp_t listener;
	int listening;
	char *listen_addr; /* owned; as given at start */
	list clients;
	int diag; /* netlink socket for peeruid_tcp, or -1 */
	int open; /* handles of ours not yet closed */
	int closing;
};

static void maybe_free(metrics *m)
{
	if (!m->closing || m->open || m->writing || !list_empty(&m->clients))
		return;
	if (m->diag >= 0)
		close(m->diag);
	free(m->file);
	free(m->listen_addr);
	free(m);
}

/* ---- rendering ---- */

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* What each uid holds now (the uids holding something), with its quota
 * resources as the `resource` label. */
static void write_uid_usage(FILE *f)
{
	static const char *const label[CLIENTS_RES_N] = {
		[CLIENTS_CONNS] = "connections",       [CLIENTS_INFLIGHT] = "inflight",
		[CLIENTS_BUFFERED] = "buffered_bytes", [CLIENTS_SESSIONS] = "sessions",
		[CLIENTS_STREAMS] = "streams",         [CLIENTS_FILE_STREAMS] = "file_streams",
	};
	clients_uid_usage u[256];
	size_t n = clients_uid_snapshot(u, sizeof(u) / sizeof(u[0]));
	if (n > sizeof(u) / sizeof(u[0]))
		n = sizeof(u) / sizeof(u[0]);
	family(f, "porter_uid_usage", "gauge",
	       "What each connected uid holds, per resource counted against its quotas.");
	for (size_t k = 0; k < n; k++)
		for (int r = 0; r < CLIENTS_RES_N; r++)
			fprintf(f, "porter_uid_usage{uid=\"%u\",resource=\"%s\"} %llu\n",
				(unsigned)u[k].uid, label[r], (unsigned long long)u[k].use[r]);
}

/* The per-uid quotas in force (the same for every uid, so nothing about
 * any uid's activity): what porter_uid_usage is held against. 0: none. */
static void write_uid_limits(FILE *f, const server *srv)
{
	const config *cfg = srv->cfg;
	const struct {
		const char *resource;
		uint64_t limit;
	} limits[] = {
		{"connections",
		 cfg->uid_max_connections ? cfg->uid_max_connections : srv->auto_uid_connections},
		{"inflight", cfg->uid_max_inflight},
		{"buffered_bytes", cfg->uid_max_buffered},
		{"sessions", cfg->db_max_connections_per_uid},
		{"http_streams", cfg->http_max_streams_per_uid},
		{"file_streams", cfg->file_max_streams_per_uid},
	};
	family(f, "porter_uid_limit", "gauge",
	       "Each uid's quota per resource (uid-max-connections, uid-max-inflight, "
	       "uid-max-buffered, db-max-connections-per-uid, http-max-streams-per-uid, "
	       "file-max-streams-per-uid); 0: no limit.");
	for (size_t k = 0; k < sizeof(limits) / sizeof(limits[0]); k++)
		fprintf(f, "porter_uid_limit{resource=\"%s\"} %llu\n", limits[k].resource,
			(unsigned long long)limits[k].limit);
}

int metrics_render(server *srv, char **out, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	if (!f)
		return PORTER_E_NOMEM;

	family(f, "porter_info", "gauge", "porterd's version; always 1.");
	fprintf(f, "porter_info{version=\"%s\"} 1\n", PORTER_VERSION_STRING);
	family(f, "porter_uptime_seconds", "gauge", "Seconds since porterd started.");
	fprintf(f, "porter_uptime_seconds %.3f\n",
		(double)(uv_hrtime() / 1000000 - srv->start_ms) / 1000.0);
	family(f, "porter_workers", "gauge", "Worker loops.");
	fprintf(f, "porter_workers %u\n", srv->n_workers);
	family(f, "porter_denied_connections_total", "counter",
	       "Connections refused because of the peer's uid.");
	fprintf(f, "porter_denied_connections_total %llu\n", (unsigned long long)srv->denied);
	family(f, "porter_config_reloads_total", "counter",
	       "Configuration reloads applied (SIGHUP).");
	fprintf(f, "porter_config_reloads_total %llu\n", (unsigned long long)srv->reloads);
	family(f, "porter_config_reload_failures_total", "counter",
	       "Reloads rejected because of errors in the file.");
	fprintf(f, "porter_config_reload_failures_total %llu\n",
		(unsigned long long)srv->reload_failures);

	family(f, "porter_capacity_refused_connections_total", "counter",
	       "Connections answered \"daemon at capacity\" because descriptors ran out.");
	fprintf(f, "porter_capacity_refused_connections_total %llu\n",
		(unsigned long long)srv->shed);
	family(f, "porter_quota_refused_connections_total", "counter",
	       "Connections refused because their uid held uid-max-connections.");
	fprintf(f, "porter_quota_refused_connections_total %llu\n",
		(unsigned long long)srv->quota_refused);
	family(f, "porter_output_buffered_bytes", "gauge",
	       "Reply bytes queued for all clients that have not read them yet.");
	fprintf(f, "porter_output_buffered_bytes %llu\n",
		(unsigned long long)clients_output_add(NULL, 0));
	family(f, "porter_memory_trims_total", "counter",
	       "Times freed memory was handed back to the system (malloc_trim).");
	fprintf(f, "porter_memory_trims_total %llu\n", (unsigned long long)srv->trims);
	/* Off unless the administrator asks: the file and the endpoint are
	 * readable by every client (porterd's group, every local user), and
	 * one uid's connections and requests over time tell when and how its
	 * owner works, which stats never show a foreign client. */
	write_uid_limits(f, srv);
	if (srv->cfg->metrics_uid_usage)
		write_uid_usage(f);

	static const struct {
		const char *name, *type, *help;
		size_t off;
	} per_worker[] = {
		{"porter_connections", "gauge", "Client connections open now, per worker.",
		 offsetof(stats_counters, connections)},
		{"porter_requests_total", "counter", "Requests received, per worker.",
		 offsetof(stats_counters, requests)},
		{"porter_inflight_requests", "gauge", "Requests being processed now, per worker.",
		 offsetof(stats_counters, inflight)},
		{"porter_errors_total", "counter", "Responses with a non-zero status, per worker.",
		 offsetof(stats_counters, errors)},
		{"porter_received_bytes_total", "counter", "Bytes read from clients, per worker.",
		 offsetof(stats_counters, bytes_in)},
		{"porter_sent_bytes_total", "counter", "Bytes written to clients, per worker.",
		 offsetof(stats_counters, bytes_out)},
	};
	for (size_t k = 0; k < sizeof(per_worker) / sizeof(per_worker[0]); k++) {
		family(f, per_worker[k].name, per_worker[k].type, per_worker[k].help);
		for (unsigned i = 0; i < srv->n_workers; i++) {
			_Atomic uint64_t *c =
				(_Atomic uint64_t *)((char *)&srv->workers[i].counters +
						     per_worker[k].off);
			fprintf(f, "%s{worker=\"%u\"} %llu\n", per_worker[k].name, i,
				(unsigned long long)stats_get(c));
		}
	}
	if (fclose(f) != 0 || !buf) {
		free(buf);
		return PORTER_E_NOMEM;
	}
	*out = buf;
	*len = n;
	return 0;
}

/* ---- the file ---- */

/* Thread pool: write a temp file next to the target, then rename, so a
 * reader sees the old or the new exposition, never half of one. */
static void file_work(uv_work_t *w)
{
	metrics *m = w->data;
	char tmp[4096];
	m->job_err = 0;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", m->job_path) >= (int)sizeof(tmp)) {
		m->job_err = ENAMETOOLONG;
		return;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		m->job_err = errno;
		return;
	}
	/* Counters are meant for a collector running as another user: 0644
	 * whatever the umask (the unit sets UMask=0077 for everything else). */
	if (fchmod(fd, 0644) < 0)
		m->job_err = errno;
	size_t off = 0;
	while (!m->job_err && off < m->job_len) {
		ssize_t n = write(fd, m->job_text + off, m->job_len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			m->job_err = errno;
			break;
		}
		off += (size_t)n;
	}
	if (close(fd) < 0 && !m->job_err)
		m->job_err = errno;
	if (!m->job_err && rename(tmp, m->job_path) < 0)
		m->job_err = errno;
	if (m->job_err)
		unlink(tmp);
}

static void file_done(uv_work_t *w, int status)
{
	metrics *m = w->data;
	if (status == 0 && m->job_err) {
		if (!m->file_warned)
			log_warn("metrics-file %s: %s", m->job_path, strerror(m->job_err));
		m->file_warned = 1;
	} else if (status == 0) {
		m->file_warned = 0;
	}
	free(m->job_path);
	free(m->job_text);
	m->job_path = m->job_text = NULL;
	m->writing = 0;
	maybe_free(m);
}

static void on_file_timer(uv_timer_t *t)
{
	metrics *m = t->data;
	if (m->writing || !m->file)
		return; /* the previous write is still going: skip a beat */
	if (metrics_render(m->srv, &m->job_text, &m->job_len) < 0)
		return;
	m->job_path = strdup(m->file);
	if (!m->job_path) {
		free(m->job_text);
		m->job_text = NULL;
		return;
	}
	m->work.data = m;
	if (uv_queue_work(t->loop, &m->work, file_work, file_done) == 0) {
		m->writing = 1;
	} else {
		free(m->job_path);
		free(m->job_text);
		m->job_path = m->job_text = NULL;
	}
}

static void set_file(metrics *m, const config *cfg)
{
	uv_timer_stop(&m->file_timer);
	free(m->file);
	m->file = cfg->metrics_file ? strdup(cfg->metrics_file) : NULL;
	m->interval_ms = cfg->metrics_interval_ms;
	if (m->file)
		uv_timer_start(&m->file_timer, on_file_timer, 0, m->interval_ms);
}

/* ---- the HTTP endpoint ---- */

static void on_client_closed(uv_handle_t *h)
{
	mclient *c = h->data;
	if (--c->open > 0)
		return;
	metrics *m = c->m;
	list_remove(&c->link);
	free(c->resp);
	free(c);
	maybe_free(m);
}

static void client_close(mclient *c)
{
	if (!uv_is_closing((uv_handle_t *)&c->tcp))
		uv_close((uv_handle_t *)&c->tcp, on_client_closed);
	if (!uv_is_closing((uv_handle_t *)&c->timer))
		uv_close((uv_handle_t *)&c->timer, on_client_closed);
}

static void on_client_timeout(uv_timer_t *t)
{
	client_close(t->data);
}

static void on_written(uv_write_t *w, int status)
{
	(void)status;
	client_close(w->data);
}

static void respond(mclient *c, const char *status, const char *body, size_t blen, int own_body)
{
	char head[256];
	int hl = snprintf(head, sizeof(head),
			  "HTTP/1.1 %s\r\n"
			  "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
			  "Content-Length: %zu\r\n"
			  "Connection: close\r\n\r\n",
			  status, blen);
	c->answered = 1;
	uv_read_stop((uv_stream_t *)&c->tcp);
	c->resp = malloc((size_t)hl + blen);
	if (c->resp) {
		memcpy(c->resp, head, (size_t)hl);
		memcpy(c->resp + hl, body, blen);
	}
	if (own_body)
		free((void *)body);
	if (!c->resp) {
		client_close(c);
		return;
	}
	uv_buf_t b = uv_buf_init(c->resp, (unsigned)((size_t)hl + blen));
	c->wr.data = c;
	if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0)
		client_close(c);
}

static void client_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	mclient *c = h->data;
	(void)hint;
	buf->base = c->req + c->len;
	buf->len = sizeof(c->req) - 1 - c->len;
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	mclient *c = s->data;
	(void)buf;
	if (n < 0) {
		client_close(c);
		return;
	}
	c->len += (size_t)n;
	c->req[c->len] = '\0';
	if (!strstr(c->req, "\r\n\r\n") && !strstr(c->req, "\n\n")) {
		if (c->len >= sizeof(c->req) - 1)
			respond(c, "431 Request Header Fields Too Large", "", 0, 0);
		return;
	}
	if (strncmp(c->req, "GET ", 4) != 0) {
		respond(c, "405 Method Not Allowed", "GET only\n", 9, 0);
		return;
	}
	const char *path = c->req + 4;
	size_t plen = strcspn(path, " ?\r\n");
	if (plen != 8 || strncmp(path, "/metrics", 8) != 0) {
		respond(c, "404 Not Found", "try /metrics\n", 13, 0);
		return;
	}
	char *text;
	size_t len;
	if (metrics_render(c->m->srv, &text, &len) < 0) {
		respond(c, "500 Internal Server Error", "out of memory\n", 14, 0);
		return;
	}
	respond(c, "200 OK", text, len, 1);
}

/* Connections not closing: all (`uid` NULL) or those of uid `*uid`. */
static size_t open_clients(metrics *m, const uid_t *uid)
{
	size_t n = 0;
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &m->clients) {
		mclient *o = list_entry(pos, mclient, link);
		n += !uv_is_closing((uv_handle_t *)&o->tcp) && (!uid || o->uid == *uid);
	}
	return n;
}

/* The connection to close to make room: the oldest still waiting for its
 * request of the uid holding the most connections (peers of unknown uid
 * count as one uid); NULL when all are being answered. Some MAX_CLIENTS
 * connections: the quadratic walk is a few hundred steps. */
static mclient *room_from(metrics *m)
{
	mclient *victim = NULL;
	size_t most = 0;
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &m->clients) {
		mclient *o = list_entry(pos, mclient, link);
		if (uv_is_closing((uv_handle_t *)&o->tcp) || o->answered)
			continue;
		size_t held = open_clients(m, &o->uid);
		if (held > most) {
			most = held;
			victim = o;
		}
	}
	return victim;
}

static void on_scrape(uv_stream_t *lst, int status)
{
	metrics *m = lst->data;
	if (status < 0)
		return;
	mclient *c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->m = m;
	uv_tcp_init(lst->loop, &c->tcp);
	uv_timer_init(lst->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	c->open = 2;
	list_push_back(&m->clients, &c->link);
	if (uv_accept(lst, (uv_stream_t *)&c->tcp) < 0) {
		client_close(c);
		return;
	}
	uv_os_fd_t fd;
	c->uid = (uid_t)-1;
	if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
		(void)peeruid_tcp(m->diag, fd, &c->uid);
	if (open_clients(m, NULL) > MAX_CLIENTS) {
		/* A scraper sends its request as soon as it connects, but
		 * porterd may accept many more connections before it reads
		 * it: room comes from whoever holds the most, so one uid's
		 * connections only ever push out its own. Only when every
		 * other one is being answered (and so closes soon) is the
		 * newcomer refused. */
		mclient *victim = room_from(m);
		client_close(victim ? victim : c);
		if (!victim || victim == c)
			return;
	}
	uv_timer_start(&c->timer, on_client_timeout, CLIENT_TIMEOUT_MS, 0);
	uv_read_start((uv_stream_t *)&c->tcp, client_alloc, on_client_read);
}

static void on_own_closed(uv_handle_t *h)
{
	metrics *m = h->data;
	m->open--;
	maybe_free(m);
}

int metrics_start(server *srv, const config *cfg, metrics **out)
{
	metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return PORTER_E_NOMEM;
	m->srv = srv;
	list_init(&m->clients);
	m->diag = -1;
	uv_timer_init(&srv->loop, &m->file_timer);
	m->file_timer.data = m;
	m->open = 1;
	set_file(m, cfg);
	*out = m;

	if (!cfg->metrics_listen)
		return 0;
	struct sockaddr_storage ss;
	int rc;
	m->listen_addr = strdup(cfg->metrics_listen);
	/* Without sock_diag every peer is of unknown uid, and room comes
	 * from the oldest waiting connection of all, as it did before. */
	if ((m->diag = peeruid_open()) < 0)
		log_warn("metrics-listen: no sock_diag (%s): peers' uids are unknown",
			 strerror(errno));
	uv_tcp_init(&srv->loop, &m->listener);
	m->listener.data = m;
	m->open++;
	if (!m->listen_addr || config_parse_loopback(cfg->metrics_listen, &ss) < 0) {
		log_error("metrics-listen %s: not a loopback HOST:PORT", cfg->metrics_listen);
		return PORTER_E_INVAL;
	}
	if ((rc = uv_tcp_bind(&m->listener, (struct sockaddr *)&ss, 0)) < 0 ||
	    (rc = uv_listen((uv_stream_t *)&m->listener, 16, on_scrape)) < 0) {
		log_error("metrics-listen %s: %s", cfg->metrics_listen, uv_strerror(rc));
		return PORTER_E_INVAL;
	}
	m->listening = 1;
	log_info("serving metrics on http://%s/metrics", cfg->metrics_listen);
	return 0;
}

void metrics_reconfigure(server *srv, metrics **mp, const config *cfg)
{
	metrics *m = *mp;
	(void)srv;
	if (!m)
		return;
	const char *was = m->listen_addr ? m->listen_addr : "";
	const char *now = cfg->metrics_listen ? cfg->metrics_listen : "";
	if (strcmp(was, now) != 0)
		log_warn("reload: metrics-listen changed to '%s'; restart porterd to apply it",
			 now);
	int same_file = (m->file && cfg->metrics_file && strcmp(m->file, cfg->metrics_file) == 0) ||
			(!m->file && !cfg->metrics_file);
	if (!same_file || m->interval_ms != cfg->metrics_interval_ms)
		set_file(m, cfg);
}

void metrics_close(metrics *m)
{
	if (!m || m->closing)
		return;
	m->closing = 1;
	uv_close((uv_handle_t *)&m->file_timer, on_own_closed);
	if (m->open > 1)
		uv_close((uv_handle_t *)&m->listener, on_own_closed);
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &m->clients)
		client_close(list_entry(pos, mclient, link));
	maybe_free(m);
}
