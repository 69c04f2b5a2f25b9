/* stats - per-worker counters and the Stats request; see stats.h. */
#include "stats.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clients.h"
#include "dalloc.h"
#include "httpglue.h"
#include "porter_errors.h"
#include "porter_version.h"
#include "req.h"
#include "server.h"
#include "worker.h"

/*
 * Descriptors the process holds: what a leak of sockets or files shows up
 * in first. /proc/self/fd is opened once and re-read with getdents64 under
 * a lock, rather than opened and closed per request: a descriptor closed on
 * a worker while another worker's accept4 reuses its number is harmless to
 * the kernel but reads as a race to ThreadSanitizer.
 */
static pthread_once_t fd_dir_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t fd_dir_lock = PTHREAD_MUTEX_INITIALIZER;
static int fd_dir = -1;

static void open_fd_dir(void)
{
	fd_dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static uint64_t count_fds(void)
{
	char buf[8192];
	uint64_t n = 0;

	pthread_once(&fd_dir_once, open_fd_dir);
	if (fd_dir < 0)
		return 0;
	pthread_mutex_lock(&fd_dir_lock);
	if (lseek(fd_dir, 0, SEEK_SET) == 0) {
		long got;
		while ((got = syscall(SYS_getdents64, fd_dir, buf, sizeof(buf))) > 0) {
			for (long off = 0; off < got;) {
				struct dirent64 *e = (struct dirent64 *)(buf + off);
				n += e->d_name[0] != '.';
				off += e->d_reclen;
			}
		}
	}
	pthread_mutex_unlock(&fd_dir_lock);
	return n > 0 ? n - 1 : 0; /* not the directory's own descriptor */
}

/* Uids listed in one Stats reply, at most (only a local caller sees more
 * than its own). */
#define STATS_MAX_UIDS 64

void stats_handle(req *r)
{
	server *srv = r->w->srv;
	unsigned n = srv->n_workers;
	Porter__V1__WorkerStats *ws = dcalloc(n, sizeof(*ws));
	Porter__V1__WorkerStats **wp = dcalloc(n, sizeof(*wp));
	if (!ws || !wp) {
		free(ws);
		free(wp);
		req_fail(r, PORTER_E_NOMEM, "out of memory");
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		stats_counters *sc = &srv->workers[i].counters;
		porter__v1__worker_stats__init(&ws[i]);
		ws[i].worker = i;
		ws[i].connections = stats_get(&sc->connections);
		ws[i].requests = stats_get(&sc->requests);
		ws[i].inflight = stats_get(&sc->inflight);
		ws[i].errors = stats_get(&sc->errors);
		ws[i].bytes_in = stats_get(&sc->bytes_in);
		ws[i].bytes_out = stats_get(&sc->bytes_out);
		ws[i].db_connections = stats_get(&sc->db_conns);
		ws[i].http_transfers = stats_get(&sc->http_transfers);
		ws[i].file_fast = stats_get(&sc->file_fast);
		wp[i] = &ws[i];
	}

	/* Per uid: a foreign caller sees its own uid only. */
	clients_uid_usage uu[STATS_MAX_UIDS];
	Porter__V1__UidUsage us[STATS_MAX_UIDS], *up[STATS_MAX_UIDS];
	size_t nu = r->uid == clients_self() ? clients_uid_snapshot(uu, STATS_MAX_UIDS)
					     : (size_t)clients_uid_usage_get(r->uid, &uu[0]);
	size_t kept = 0;
	const config *cfg = r->w->cfg;
	for (size_t i = 0; i < nu && i < STATS_MAX_UIDS; i++) {
		porter__v1__uid_usage__init(&us[kept]);
		us[kept].uid = uu[i].uid;
		us[kept].connections = uu[i].use[CLIENTS_CONNS];
		us[kept].inflight = uu[i].use[CLIENTS_INFLIGHT];
		us[kept].buffered_bytes = uu[i].use[CLIENTS_BUFFERED];
		us[kept].sessions = uu[i].use[CLIENTS_SESSIONS];
		us[kept].streams = uu[i].use[CLIENTS_STREAMS];
		us[kept].max_connections = cfg->uid_max_connections ? cfg->uid_max_connections
								    : srv->auto_uid_connections;
		us[kept].max_inflight = cfg->uid_max_inflight;
		us[kept].max_buffered = cfg->uid_max_buffered;
		us[kept].file_streams = uu[i].use[CLIENTS_FILE_STREAMS];
		us[kept].max_file_streams = cfg->file_max_streams_per_uid;
		us[kept].max_sessions = cfg->db_max_connections_per_uid;
		us[kept].http_streams = httpglue_streams_count(uu[i].uid);
		us[kept].max_http_streams = cfg->http_max_streams_per_uid;
		up[kept] = &us[kept];
		kept++;
	}

	Porter__V1__StatsReply sr = PORTER__V1__STATS_REPLY__INIT;
	sr.n_uids = kept;
	sr.uids = up;
	sr.n_workers = n;
	sr.workers = wp;
	sr.uptime_ms = uv_hrtime() / 1000000 - srv->start_ms;
	sr.daemon_version = PORTER_VERSION_STRING;
	sr.open_fds = count_fds();

	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	resp.body_case = PORTER__V1__RESPONSE__BODY_STATS;
	resp.stats = &sr;
	req_reply(r, &resp);
	free(ws);
	free(wp);
}
