/*
 * Unit tests of daemon/stats.c on the worker rig (tests/support/wrig.h):
 * the counter helpers add, subtract and read; a Stats reply carries every
 * worker's counters under its index, the daemon's version, its uptime and
 * the descriptors the process holds; a foreign caller sees its own uid's
 * usage only (none when it holds nothing), porterd's own uid sees every uid
 * holding something, at most 64; each uid's limits come from the
 * configuration, the automatic connection bound when that is 0.
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <uv.h>

#include "clients.h"
#include "config.h"
#include "porter_version.h"
#include "server.h"
#include "stats.h"
#include "thmain.h"
#include "wrig.h"

enum { UID = 4001, OTHER_UID = 4002, NOBODY_UID = 4003, INST = 7 };

static void store(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, v, memory_order_relaxed);
}

/* Runs a Stats request `id` of `c` (client end `fd`) and returns its
 * reply (free with porter__v1__response__free_unpacked). `before` runs
 * after the request was created (it counts itself), before it is handled. */
static Porter__V1__Response *stats_of(conn *c, int fd, uint64_t id, void (*before)(void))
{
	Porter__V1__Request m = PORTER__V1__REQUEST__INIT;
	Porter__V1__StatsRequest s = PORTER__V1__STATS_REQUEST__INIT;
	m.id = id;
	m.body_case = PORTER__V1__REQUEST__BODY_STATS;
	m.stats = &s;
	req *r = wrig_request(c, &m);
	if (before)
		before();
	stats_handle(r);
	Porter__V1__Response *resp = wrig_reply(fd, id);
	ck_assert_int_eq(resp->status, 0);
	ck_assert_int_eq(resp->body_case, PORTER__V1__RESPONSE__BODY_STATS);
	ck_assert_ptr_nonnull(resp->stats);
	return resp;
}

START_TEST(counters_add_subtract_and_read)
{
	_Atomic uint64_t c = 0;
	stats_add(&c, 5);
	stats_add(&c, UINT64_C(1) << 40);
	ck_assert_uint_eq(stats_get(&c), (UINT64_C(1) << 40) + 5);
	stats_sub(&c, 4);
	ck_assert_uint_eq(stats_get(&c), (UINT64_C(1) << 40) + 1);
	stats_sub(&c, (UINT64_C(1) << 40) + 1);
	ck_assert_uint_eq(stats_get(&c), 0);
}
END_TEST

/* Distinct values in every counter of both workers: worker i, field f
 * holds 1000 * (i + 1) + f. */
static void set_counters(void)
{
	for (unsigned i = 0; i < 2; i++) {
		stats_counters *sc = &wrig_worker(i)->counters;
		uint64_t b = 1000 * (i + 1);
		store(&sc->connections, b + 1);
		store(&sc->requests, b + 2);
		store(&sc->inflight, b + 3);
		store(&sc->errors, b + 4);
		store(&sc->bytes_in, b + 5);
		store(&sc->bytes_out, b + 6);
		store(&sc->db_conns, b + 7);
		store(&sc->http_transfers, b + 8);
		store(&sc->file_fast, b + 9);
	}
}

START_TEST(reply_carries_every_workers_counters)
{
	wrig_up(2);
	int fd;
	conn *c = wrig_client(wrig_worker(1), UID, INST, &fd);
	uint64_t now_ms = uv_hrtime() / 1000000;
	wrig_worker(0)->srv->start_ms = now_ms - 5000;
	Porter__V1__Response *resp = stats_of(c, fd, 1, set_counters);
	const Porter__V1__StatsReply *sr = resp->stats;
	ck_assert_uint_eq(sr->n_workers, 2);
	for (unsigned i = 0; i < 2; i++) {
		const Porter__V1__WorkerStats *ws = sr->workers[i];
		uint64_t b = 1000 * (i + 1);
		ck_assert_uint_eq(ws->worker, i);
		ck_assert_uint_eq(ws->connections, b + 1);
		ck_assert_uint_eq(ws->requests, b + 2);
		ck_assert_uint_eq(ws->inflight, b + 3);
		ck_assert_uint_eq(ws->errors, b + 4);
		ck_assert_uint_eq(ws->bytes_in, b + 5);
		ck_assert_uint_eq(ws->bytes_out, b + 6);
		ck_assert_uint_eq(ws->db_connections, b + 7);
		ck_assert_uint_eq(ws->http_transfers, b + 8);
		ck_assert_uint_eq(ws->file_fast, b + 9);
	}
	ck_assert_str_eq(sr->daemon_version, PORTER_VERSION_STRING);
	/* Started 5 s ago; generous above (a busy machine). */
	ck_assert_uint_ge(sr->uptime_ms, 5000);
	ck_assert_uint_lt(sr->uptime_ms, 5000 + 600000);
	porter__v1__response__free_unpacked(resp, NULL);
	wrig_down();
}
END_TEST

/* The descriptors this process holds, counted apart from stats.c: the
 * entries of /proc/self/fd but the one this listing opens and the one
 * stats.c keeps open for its own count (both are no leak). */
static uint64_t fds_held(void)
{
	DIR *d = opendir("/proc/self/fd");
	ck_assert_ptr_nonnull(d);
	uint64_t n = 0;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 2;
}

START_TEST(open_fds_counts_the_process_descriptors)
{
	wrig_up(1);
	int fd;
	conn *c = wrig_client(wrig_worker(0), UID, INST, &fd);
	Porter__V1__Response *resp = stats_of(c, fd, 1, NULL);
	uint64_t before = resp->stats->open_fds;
	porter__v1__response__free_unpacked(resp, NULL);
	ck_assert_uint_gt(before, 2); /* stdio and the socketpair at least */
	ck_assert_uint_eq(before, fds_held());
	int extra[10];
	for (int i = 0; i < 10; i++)
		ck_assert_int_ge(extra[i] = fcntl(0, F_DUPFD_CLOEXEC, 0), 0);
	resp = stats_of(c, fd, 2, NULL);
	ck_assert_uint_eq(resp->stats->open_fds, before + 10);
	porter__v1__response__free_unpacked(resp, NULL);
	for (int i = 0; i < 10; i++)
		close(extra[i]);
	resp = stats_of(c, fd, 3, NULL);
	ck_assert_uint_eq(resp->stats->open_fds, before);
	porter__v1__response__free_unpacked(resp, NULL);
	wrig_down();
}
END_TEST

/* Accounts the test holds (hold), given back by release_all, so that no
 * test leaves usage behind for the next (also with CK_FORK=no). */
static clients_acct *held[80];
static uint64_t held_base[80];
static size_t n_held;

/* An account of `uid` holding `base + res` of each resource. */
static void hold(uid_t uid, uint64_t base)
{
	ck_assert_uint_lt(n_held, sizeof(held) / sizeof(held[0]));
	clients_acct *a = clients_acct_ref(uid);
	ck_assert_ptr_nonnull(a);
	for (int res = 0; res < CLIENTS_RES_N; res++)
		ck_assert_int_eq(clients_take(a, (enum clients_res)res, base + (uint64_t)res, 0),
				 1);
	held_base[n_held] = base;
	held[n_held++] = a;
}

static void release_all(void)
{
	for (size_t i = 0; i < n_held; i++) {
		for (int res = 0; res < CLIENTS_RES_N; res++)
			clients_put(held[i], (enum clients_res)res, held_base[i] + (uint64_t)res);
		clients_acct_unref(held[i]);
	}
	n_held = 0;
}

static void check_usage(const Porter__V1__UidUsage *u, uid_t uid, uint64_t base)
{
	ck_assert_uint_eq(u->uid, uid);
	ck_assert_uint_eq(u->connections, base + CLIENTS_CONNS);
	ck_assert_uint_eq(u->inflight, base + CLIENTS_INFLIGHT);
	ck_assert_uint_eq(u->buffered_bytes, base + CLIENTS_BUFFERED);
	ck_assert_uint_eq(u->sessions, base + CLIENTS_SESSIONS);
	ck_assert_uint_eq(u->streams, base + CLIENTS_STREAMS);
	ck_assert_uint_eq(u->file_streams, base + CLIENTS_FILE_STREAMS);
}

START_TEST(a_foreign_caller_sees_its_own_uid_only)
{
	ck_assert_uint_ne(geteuid(), UID);
	wrig_up(1);
	config *cfg = wrig_config();
	cfg->uid_max_connections = 7;
	cfg->uid_max_inflight = 8;
	cfg->uid_max_buffered = 9;
	cfg->file_max_streams_per_uid = 10;
	hold(UID, 100);
	hold(OTHER_UID, 200);
	hold(geteuid(), 300);
	int fd;
	conn *c = wrig_client(wrig_worker(0), UID, INST, &fd);
	Porter__V1__Response *resp = stats_of(c, fd, 1, NULL);
	ck_assert_uint_eq(resp->stats->n_uids, 1);
	const Porter__V1__UidUsage *u = resp->stats->uids[0];
	check_usage(u, UID, 100);
	ck_assert_uint_eq(u->max_connections, 7);
	ck_assert_uint_eq(u->max_inflight, 8);
	ck_assert_uint_eq(u->max_buffered, 9);
	ck_assert_uint_eq(u->max_file_streams, 10);
	porter__v1__response__free_unpacked(resp, NULL);
	release_all();
	wrig_down();
}
END_TEST

START_TEST(a_foreign_caller_holding_nothing_sees_no_uid)
{
	wrig_up(1);
	hold(OTHER_UID, 200);
	int fd;
	conn *c = wrig_client(wrig_worker(0), NOBODY_UID, INST, &fd);
	Porter__V1__Response *resp = stats_of(c, fd, 1, NULL);
	ck_assert_uint_eq(resp->stats->n_uids, 0);
	porter__v1__response__free_unpacked(resp, NULL);
	release_all();
	wrig_down();
}
END_TEST

enum { MANY = 70, LISTED = 64 };

START_TEST(the_daemons_own_uid_sees_every_uid_up_to_64)
{
	wrig_up(1);
	/* uid-max-connections 0: the automatic bound is listed. */
	wrig_worker(0)->srv->auto_uid_connections = 4242;
	for (uid_t i = 0; i < MANY; i++)
		hold(5000 + i, 10 * (uint64_t)i);
	int fd;
	conn *c = wrig_client(wrig_worker(0), geteuid(), INST, &fd);
	Porter__V1__Response *resp = stats_of(c, fd, 1, NULL);
	const Porter__V1__StatsReply *sr = resp->stats;
	ck_assert_uint_eq(sr->n_uids, LISTED);
	char seen[MANY] = {0};
	for (size_t k = 0; k < sr->n_uids; k++) {
		const Porter__V1__UidUsage *u = sr->uids[k];
		ck_assert(u->uid >= 5000 && u->uid < 5000 + MANY);
		unsigned i = u->uid - 5000;
		ck_assert_int_eq(seen[i], 0);
		seen[i] = 1;
		check_usage(u, u->uid, 10 * (uint64_t)i);
		ck_assert_uint_eq(u->max_connections, 4242);
	}
	porter__v1__response__free_unpacked(resp, NULL);
	release_all();
	wrig_down();
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {counters_add_subtract_and_read,
				reply_carries_every_workers_counters,
				open_fds_counts_the_process_descriptors,
				a_foreign_caller_sees_its_own_uid_only,
				a_foreign_caller_holding_nothing_sees_no_uid,
				the_daemons_own_uid_sees_every_uid_up_to_64,
				NULL};
	return th_suite("stats", "stats", 10, tests);
}

TH_MAIN(suite)
