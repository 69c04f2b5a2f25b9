/* porter - the public core calls of libporter; see porter.h. */
#include "porter.h"

#include <stdlib.h>
#include <string.h>

#include "pbg.h"
#include "pconn.h"
#include "pout.h"
#include "sockpath.h"

const char *porter_version(void)
{
	return PORTER_VERSION_STRING;
}

int porter_version_num(void)
{
	return PORTER_VERSION_NUM;
}

int porter_socket_path(char *buf, size_t cap)
{
	if (!buf)
		return PORTER_E_INVAL;
	const char *env = getenv("PORTER_SOCKET");
	if (env && env[0]) {
		size_t n = strlen(env);
		if (n >= cap)
			return PORTER_E_INVAL;
		memcpy(buf, env, n + 1);
		return (int)n;
	}
	return sockpath_default(buf, cap);
}

int porter_ping(const void *payload, size_t len, uint64_t call_id, int timeout_ms)
{
	return porter_ping_delay(payload, len, 0, call_id, timeout_ms);
}

int porter_ping_delay(const void *payload, size_t len, uint32_t delay_ms, uint64_t call_id,
		      int timeout_ms)
{
	if (!payload && len)
		return pconn_set_error(PORTER_E_INVAL, "payload is NULL but len is %zu", len);

	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__Ping ping = PORTER__V1__PING__INIT;
	Porter__V1__Response *resp = NULL;
	ping.payload.data = (uint8_t *)payload;
	ping.payload.len = len;
	ping.delay_ms = delay_ms;
	req.id = call_id;
	req.body_case = PORTER__V1__REQUEST__BODY_PING;
	req.ping = &ping;

	/* The echo is compared and dropped at once: the thread's scratch
	 * arena saves unpacking it with malloc. */
	int rc = pconn_call_scratch(&req, timeout_ms, PCONN_IDEMPOTENT, &resp);
	if (rc < 0)
		return rc;
	if (resp->body_case != PORTER__V1__RESPONSE__BODY_PING || resp->ping->payload.len != len ||
	    (len && memcmp(resp->ping->payload.data, payload, len) != 0))
		rc = pconn_set_error(PORTER_E_PROTOCOL, "ping echo differs from the payload sent");
	pconn_scratch_release();
	return rc;
}

struct porter_stats_snapshot {
	size_t n;
	porter_worker_stats *workers;
	uint64_t uptime_ms;
	char *version;
	uint64_t open_fds;
	uint64_t db_connections; /* summed over workers */
	uint64_t http_transfers; /* summed over workers */
	uint64_t file_fast;      /* summed over workers */
	size_t n_uids;
	porter_uid_usage *uids;
};

int porter_stats(uint64_t call_id, int timeout_ms, porter_stats_snapshot **out)
{
	if (!out)
		return pconn_set_error(PORTER_E_INVAL, "out is NULL");
	*out = NULL;

	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__StatsRequest sreq = PORTER__V1__STATS_REQUEST__INIT;
	Porter__V1__Response *resp = NULL;
	porter_stats_snapshot *s = NULL;
	req.id = call_id;
	req.body_case = PORTER__V1__REQUEST__BODY_STATS;
	req.stats = &sreq;

	int rc = pconn_call(&req, timeout_ms, PCONN_IDEMPOTENT, &resp);
	if (rc < 0)
		return rc;
	if (resp->body_case != PORTER__V1__RESPONSE__BODY_STATS) {
		rc = pconn_set_error(PORTER_E_PROTOCOL, "stats reply missing");
		goto out;
	}
	Porter__V1__StatsReply *sr = resp->stats;
	s = calloc(1, sizeof(*s));
	if (s) {
		s->workers = calloc(sr->n_workers ? sr->n_workers : 1, sizeof(*s->workers));
		s->uids = calloc(sr->n_uids ? sr->n_uids : 1, sizeof(*s->uids));
		s->version = strdup(sr->daemon_version ? sr->daemon_version : "");
	}
	if (!s || !s->workers || !s->uids || !s->version) {
		porter_stats_free(s);
		s = NULL;
		rc = pconn_set_error(PORTER_E_NOMEM, "out of memory");
		goto out;
	}
	s->n = sr->n_workers;
	s->uptime_ms = sr->uptime_ms;
	s->open_fds = sr->open_fds;
	for (size_t i = 0; i < sr->n_workers; i++) {
		Porter__V1__WorkerStats *w = sr->workers[i];
		s->workers[i] = (porter_worker_stats){
			.struct_size = sizeof(porter_worker_stats),
			.worker = w->worker,
			.connections = w->connections,
			.requests = w->requests,
			.inflight = w->inflight,
			.errors = w->errors,
			.bytes_in = w->bytes_in,
			.bytes_out = w->bytes_out,
		};
		s->db_connections += w->db_connections;
		s->http_transfers += w->http_transfers;
		s->file_fast += w->file_fast;
	}
	s->n_uids = sr->n_uids;
	for (size_t i = 0; i < sr->n_uids; i++) {
		Porter__V1__UidUsage *u = sr->uids[i];
		s->uids[i] = (porter_uid_usage){
			.struct_size = sizeof(porter_uid_usage),
			.uid = u->uid,
			.connections = u->connections,
			.inflight = u->inflight,
			.buffered_bytes = u->buffered_bytes,
			.sessions = u->sessions,
			.streams = u->streams,
			.max_connections = u->max_connections,
			.max_inflight = u->max_inflight,
			.max_buffered = u->max_buffered,
			.file_streams = u->file_streams,
			.max_file_streams = u->max_file_streams,
			.max_sessions = u->max_sessions,
			.http_streams = u->http_streams,
			.max_http_streams = u->max_http_streams,
		};
	}
	*out = s;
out:
	porter__v1__response__free_unpacked(resp, NULL);
	return rc;
}

size_t porter_stats_uids(const porter_stats_snapshot *s)
{
	return s ? s->n_uids : 0;
}

int porter_stats_uid(const porter_stats_snapshot *s, size_t i, porter_uid_usage *out)
{
	int rc = pout_check(out, POUT_V1(porter_uid_usage, max_file_streams), "porter_uid_usage");
	if (rc < 0)
		return rc;
	if (!s || i >= s->n_uids) {
		pout_put(out, NULL, sizeof(*out));
		return PORTER_E_INVAL;
	}
	pout_put(out, &s->uids[i], sizeof(*out));
	return 0;
}

size_t porter_stats_workers(const porter_stats_snapshot *s)
{
	return s ? s->n : 0;
}

int porter_stats_worker(const porter_stats_snapshot *s, size_t i, porter_worker_stats *out)
{
	int rc = pout_check(out, POUT_V1(porter_worker_stats, bytes_out), "porter_worker_stats");
	if (rc < 0)
		return rc;
	if (!s || i >= s->n) {
		pout_put(out, NULL, sizeof(*out));
		return PORTER_E_INVAL;
	}
	pout_put(out, &s->workers[i], sizeof(*out));
	return 0;
}

uint64_t porter_stats_uptime_ms(const porter_stats_snapshot *s)
{
	return s ? s->uptime_ms : 0;
}

uint64_t porter_stats_open_fds(const porter_stats_snapshot *s)
{
	return s ? s->open_fds : 0;
}

uint64_t porter_stats_db_connections(const porter_stats_snapshot *s)
{
	return s ? s->db_connections : 0;
}

uint64_t porter_stats_http_transfers(const porter_stats_snapshot *s)
{
	return s ? s->http_transfers : 0;
}

uint64_t porter_stats_file_fast(const porter_stats_snapshot *s)
{
	return s ? s->file_fast : 0;
}

const char *porter_stats_daemon_version(const porter_stats_snapshot *s)
{
	return s && s->version ? s->version : "";
}

void porter_stats_free(porter_stats_snapshot *s)
{
	if (!s)
		return;
	free(s->workers);
	free(s->uids);
	free(s->version);
	free(s);
}

static void fill_cancel(Porter__V1__Request *req, Porter__V1__Cancel *cancel, uint64_t id)
{
	cancel->target_id = id;
	req->body_case = PORTER__V1__REQUEST__BODY_CANCEL;
	req->cancel = cancel;
}

int porter_cancel(uint64_t id, int timeout_ms)
{
	if (id == 0)
		return pconn_set_error(PORTER_E_INVAL, "request id 0 names no request");

	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__Cancel cancel = PORTER__V1__CANCEL__INIT;
	Porter__V1__Response *resp = NULL;
	fill_cancel(&req, &cancel, id);

	/* Repeating a cancel is harmless, so it may be retried. */
	int rc = pconn_call(&req, timeout_ms, PCONN_IDEMPOTENT, &resp);
	if (rc < 0)
		return rc;
	if (resp->body_case != PORTER__V1__RESPONSE__BODY_CANCEL)
		rc = pconn_set_error(PORTER_E_PROTOCOL, "cancel reply missing");
	else if (!resp->cancel->found)
		rc = pconn_set_error(
			PORTER_E_NOT_FOUND,
			"request %llu is not in flight; it will be refused if it arrives",
			(unsigned long long)id);
	porter__v1__response__free_unpacked(resp, NULL);
	return rc;
}

/* A Cancel sent by the background thread; the reply is not wanted. */
static void cancel_job(void *arg)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__Cancel cancel = PORTER__V1__CANCEL__INIT;
	Porter__V1__Response *resp = NULL;
	fill_cancel(&req, &cancel, *(uint64_t *)arg);
	if (pconn_call(&req, PBG_JOB_TIMEOUT_MS, PCONN_IDEMPOTENT, &resp) == 0)
		porter__v1__response__free_unpacked(resp, NULL);
}

int porter_cancel_nowait(uint64_t id)
{
	if (id == 0)
		return pconn_set_error(PORTER_E_INVAL, "request id 0 names no request");
	uint64_t *arg = malloc(sizeof(*arg));
	if (!arg)
		return pconn_set_error(PORTER_E_NOMEM, "out of memory");
	*arg = id;
	int rc = pbg_submit(cancel_job, arg);
	return rc < 0 ? pconn_set_error(rc, "cannot queue the cancel") : 0;
}
