/*
 * Faults: PostgreSQL killed (SIGKILL of the postmaster and every backend)
 * and restarted while client threads drive transactions through porterd,
 * on sessions (BEGIN, INSERT..., COMMIT as separate calls) and on pooled
 * connections (single inserts and one-call multi-statement transactions).
 *
 * Afterwards every transaction whose COMMIT returned success is there in
 * full, every one that never got a successful COMMIT left no rows, and one
 * whose COMMIT failed in flight (outcome unknown) is all or nothing. Every
 * call returned within its timeout plus a slack, with a database error;
 * a session whose connection died reports errors until it is closed; the
 * pool serves again within a bounded window; and porterd holds no more
 * PostgreSQL connections than its pools allow, all of them alive on the
 * server.
 *
 * Uses the `pg` ctest fixture (tests/support/pg.sh, PORTER_PG_STATE), which
 * it kills and resumes; main() resumes it in any case so that later tests
 * find it running.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"

#define WORKERS 2
#define POOL_SIZE 4
#define SESSION_THREADS 6
#define POOL_THREADS 3
#define THREADS (SESSION_THREADS + POOL_THREADS)
#define TXN_ROWS 4   /* inserts per session transaction */
#define MULTI_ROWS 3 /* rows of a pooled multi-statement transaction */
#define KILLS 2
#define CALL_TIMEOUT_MS 3000
/* A call taking longer than its timeout plus this counts as a hang. */
#define HANG_SLACK_MS 1500
/* After the restart every thread must commit again within this window. */
#define RECOVER_MS 20000
#define MAX_TXNS 20000
#define MAX_CODE 64

/* What a transaction's client saw; the table must agree. */
enum txn_outcome {
	TXN_ABORTED = 1, /* failed before COMMIT was sent: no rows */
	TXN_COMMITTED,   /* COMMIT (or the autocommit insert) succeeded: all rows */
	TXN_UNKNOWN,     /* COMMIT failed in flight: all rows or none */
};

typedef struct txn_rec {
	long long id;
	int rows; /* rows it writes when committed */
	int outcome;
} txn_rec;

typedef struct loader {
	pthread_t th;
	int index;
	int n_txns;
	txn_rec *txns;
	atomic_llong calls, hangs, longest_ms;
	atomic_llong last_commit_start_ms; /* start of the latest committed txn */
	atomic_llong by_code[MAX_CODE];
	atomic_llong bad_errors;   /* errors that a dead server does not explain */
	atomic_llong broken_after; /* session calls failing after a failure */
	atomic_llong ok_after;     /* session calls succeeding after a failure */
} loader;

static th_daemon d;
static char conninfo[700];
static atomic_int stop;
static loader L[THREADS];

/*
 * One call, timed. A call that outlives its timeout by more than the slack
 * is a hang; a failure must be one that a vanished server explains.
 */
static int timed_query_params(loader *l, uint64_t s, const char *ci, const char *sql,
			      const porter_db_param *params, size_t n)
{
	porter_db_result *r = NULL;
	long long t0 = th_now_ms();
	int rc = porter_db_query(s, ci, sql, params, n, 0, CALL_TIMEOUT_MS, &r);
	long long took = th_now_ms() - t0;
	atomic_fetch_add(&l->calls, 1);
	if (took > atomic_load(&l->longest_ms))
		atomic_store(&l->longest_ms, took);
	if (took > CALL_TIMEOUT_MS + HANG_SLACK_MS)
		atomic_fetch_add(&l->hangs, 1);
	if (rc < 0) {
		int k = -rc;
		atomic_fetch_add(&l->by_code[k < MAX_CODE ? k : 0], 1);
		const char *state = r ? porter_db_sqlstate(r) : "";
		/* SQL errors only of the kinds a crash gives: 57P (shutdown,
		 * crash, starting up) and 08 (connection exceptions). */
		int ok = rc == PORTER_E_DB_BROKEN || rc == PORTER_E_DB_CONNECT ||
			 rc == PORTER_E_DB_SESSION || rc == PORTER_E_TIMEOUT ||
			 (rc == PORTER_E_DB &&
			  (!strncmp(state, "57P", 3) || !strncmp(state, "08", 2)));
		if (!ok) {
			atomic_fetch_add(&l->bad_errors, 1);
			fprintf(stderr, "unexpected failure of \"%.60s\": %s %s %s\n", sql,
				porter_error_name(rc), state,
				r ? porter_db_message(r) : porter_last_error_message());
		}
	}
	porter_db_result_free(r);
	return rc;
}

static int timed_query(loader *l, uint64_t s, const char *ci, const char *sql)
{
	return timed_query_params(l, s, ci, sql, NULL, 0);
}

static txn_rec *new_txn(loader *l, int rows)
{
	if (l->n_txns >= MAX_TXNS)
		return NULL;
	txn_rec *t = &l->txns[l->n_txns++];
	t->id = (long long)l->index * 1000000 + l->n_txns;
	t->rows = rows;
	t->outcome = TXN_ABORTED;
	return t;
}

/* Opens a session, retrying (the server may be down) until stopped. */
static uint64_t open_session(loader *l)
{
	while (!atomic_load(&stop)) {
		uint64_t s = 0;
		long long t0 = th_now_ms();
		int rc = porter_db_open(conninfo, 0, CALL_TIMEOUT_MS, &s);
		long long took = th_now_ms() - t0;
		atomic_fetch_add(&l->calls, 1);
		if (took > CALL_TIMEOUT_MS + HANG_SLACK_MS)
			atomic_fetch_add(&l->hangs, 1);
		if (rc == 0)
			return s;
		int k = -rc;
		atomic_fetch_add(&l->by_code[k < MAX_CODE ? k : 0], 1);
		if (rc != PORTER_E_DB_CONNECT && rc != PORTER_E_TIMEOUT) {
			atomic_fetch_add(&l->bad_errors, 1);
			fprintf(stderr, "unexpected open failure: %s %s\n", porter_error_name(rc),
				porter_last_error_message());
		}
		usleep(20000);
	}
	return 0;
}

/* Session transactions: BEGIN, TXN_ROWS inserts (each a little slow, so a
 * kill lands inside), COMMIT, each its own call. */
static void *session_main(void *arg)
{
	loader *l = arg;
	uint64_t s = 0;
	char sql[256];
	while (!atomic_load(&stop)) {
		if (!s && !(s = open_session(l)))
			break;
		txn_rec *t = new_txn(l, TXN_ROWS);
		if (!t)
			break;
		long long t0 = th_now_ms();
		int rc = timed_query(l, s, NULL, "BEGIN");
		for (int i = 0; rc == 0 && i < TXN_ROWS; i++) {
			snprintf(sql, sizeof(sql),
				 "INSERT INTO fault_txn SELECT %lld, %d, repeat('x', 100) "
				 "FROM pg_sleep(0.005)",
				 t->id, i);
			rc = timed_query(l, s, NULL, sql);
		}
		if (rc == 0) {
			rc = timed_query(l, s, NULL, "COMMIT");
			t->outcome = rc == 0 ? TXN_COMMITTED : TXN_UNKNOWN;
			if (rc == 0)
				atomic_store(&l->last_commit_start_ms, t0);
		}
		if (rc == 0)
			continue;
		/* The session lost its connection (or timed out): the next
		 * call must report an error too, unless the failure was a
		 * timeout, which leaves the session usable. */
		int rc2 = timed_query(l, s, NULL, "ROLLBACK");
		if (rc2 < 0)
			atomic_fetch_add(&l->broken_after, 1);
		else if (rc != PORTER_E_TIMEOUT)
			atomic_fetch_add(&l->ok_after, 1);
		porter_db_close(s, 0, CALL_TIMEOUT_MS);
		s = 0;
		usleep(20000);
	}
	if (s)
		porter_db_close(s, 0, CALL_TIMEOUT_MS);
	porter_thread_disconnect();
	return NULL;
}

/* Pooled writes: one autocommit insert (with a parameter: the same text
 * every time, so pooled connections keep it prepared, and the ones that
 * replace them after the crash must prepare it anew), or a whole
 * transaction in one multi-statement call. */
static void *pool_main(void *arg)
{
	loader *l = arg;
	char sql[512];
	for (unsigned n = 0; !atomic_load(&stop); n++) {
		int multi = n % 2;
		txn_rec *t = new_txn(l, multi ? MULTI_ROWS : 1);
		if (!t)
			break;
		if (multi)
			snprintf(sql, sizeof(sql),
				 "BEGIN; INSERT INTO fault_txn VALUES (%lld, 0, 'p'); "
				 "SELECT pg_sleep(0.005); INSERT INTO fault_txn VALUES (%lld, 1, "
				 "'p'); INSERT INTO fault_txn VALUES (%lld, 2, 'p'); COMMIT",
				 t->id, t->id, t->id);
		char idtext[24];
		int idlen = snprintf(idtext, sizeof(idtext), "%lld", t->id);
		porter_db_param p = {idtext, (size_t)idlen, 0, 0};
		long long t0 = th_now_ms();
		int rc = multi ? timed_query(l, 0, conninfo, sql)
			       : timed_query_params(
					 l, 0, conninfo,
					 "INSERT INTO fault_txn SELECT $1::bigint, 0, 'p' "
					 "FROM pg_sleep(0.005)",
					 &p, 1);
		/* A call that never got a connection sent nothing; any other
		 * failure may have committed before the reply was lost. */
		t->outcome = rc == 0                     ? TXN_COMMITTED
			     : rc == PORTER_E_DB_CONNECT ? TXN_ABORTED
							 : TXN_UNKNOWN;
		if (rc == 0)
			atomic_store(&l->last_commit_start_ms, t0);
		else
			usleep(20000);
	}
	porter_thread_disconnect();
	return NULL;
}

static porter_db_result *q_ok(const char *sql)
{
	porter_db_result *r = NULL;
	int rc = porter_db_query(0, conninfo, sql, NULL, 0, 0, 10000, &r);
	ck_assert_msg(rc == 0, "%s: %s (%s)", sql, porter_error_name(rc),
		      porter_last_error_message());
	return r;
}

static uint64_t db_connections(void)
{
	porter_stats_snapshot *st = NULL;
	ck_assert_int_eq(porter_stats(0, 5000, &st), 0);
	uint64_t n = porter_stats_db_connections(st);
	porter_stats_free(st);
	return n;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = ((const txn_rec *)a)->id, y = ((const txn_rec *)b)->id;
	return x < y ? -1 : x > y;
}

START_TEST(postgres_killed_mid_transaction)
{
	char base[512];
	th_pg_file("conninfo", base, sizeof(base));
	/* The fixture runs with synchronous_commit=off, under which a crash
	 * may lose acknowledged commits by design; this test is about what
	 * porter acknowledges, so its connections commit synchronously. */
	snprintf(conninfo, sizeof(conninfo), "%s options='-c synchronous_commit=on'", base);

	char workers[16], pool[16];
	snprintf(workers, sizeof(workers), "%d", WORKERS);
	snprintf(pool, sizeof(pool), "%d", POOL_SIZE);
	const char *args[] = {"--workers", workers, "--db-pool-size", pool, "--db-session-grace",
			      "500",       NULL};
	th_start(&d, args);
	porter_db_result_free(q_ok("DROP TABLE IF EXISTS fault_txn"));
	porter_db_result_free(
		q_ok("CREATE TABLE fault_txn (txn bigint NOT NULL, seq int NOT NULL, pad text, "
		     "PRIMARY KEY (txn, seq))"));

	memset(L, 0, sizeof(L));
	atomic_store(&stop, 0);
	for (int i = 0; i < THREADS; i++) {
		L[i].index = i + 1;
		L[i].txns = calloc(MAX_TXNS, sizeof(txn_rec));
		ck_assert_ptr_nonnull(L[i].txns);
		ck_assert_int_eq(pthread_create(&L[i].th, NULL,
						i < SESSION_THREADS ? session_main : pool_main,
						&L[i]),
				 0);
	}

	long long recover_ms[KILLS] = {0};
	int recovered[KILLS] = {0};
	for (int k = 0; k < KILLS; k++) {
		usleep(1500 * 1000);
		ck_assert_int_eq(th_pg_sh("kill"), 0);
		/* Down for a while: calls and opens meanwhile must fail fast. */
		usleep(700 * 1000);
		ck_assert_int_eq(th_pg_sh("resume"), 0);
		long long resumed = th_now_ms();
		/* Every thread commits again within the window. */
		recovered[k] = th_wait_stamps(TH_EACH(L, last_commit_start_ms), THREADS, resumed,
					      RECOVER_MS);
		recover_ms[k] = th_now_ms() - resumed;
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < THREADS; i++)
		pthread_join(L[i].th, NULL);

	/* The pool serves again (within a bounded retry window). */
	long long t0 = th_now_ms();
	porter_db_result *r = NULL;
	int rc;
	while ((rc = porter_db_query(0, conninfo, "SELECT 1", NULL, 0, 0, 3000, &r)) != 0 &&
	       th_now_ms() - t0 < 5000) {
		porter_db_result_free(r);
		r = NULL;
		usleep(50000);
	}
	ck_assert_msg(rc == 0, "the pool did not recover: %s", porter_error_name(rc));
	porter_db_result_free(r);

	/* What the table holds, per transaction. */
	r = q_ok("SELECT txn, count(*), count(DISTINCT seq), min(seq), max(seq) "
		 "FROM fault_txn GROUP BY txn ORDER BY txn");
	int groups = porter_db_ntuples(r);
	long long committed = 0, aborted = 0, unknown = 0, unknown_present = 0, lost = 0,
		  partial = 0, leaked = 0, stray = 0, txns = 0;
	/* Merge the sorted records of all threads with the sorted groups. */
	txn_rec *all = NULL;
	for (int i = 0; i < THREADS; i++)
		txns += L[i].n_txns;
	all = calloc((size_t)txns + 1, sizeof(*all));
	ck_assert_ptr_nonnull(all);
	size_t n = 0;
	for (int i = 0; i < THREADS; i++)
		for (int j = 0; j < L[i].n_txns; j++)
			all[n++] = L[i].txns[j];
	qsort(all, n, sizeof(*all), cmp_ll);
	size_t g = 0;
	for (size_t i = 0; i < n; i++) {
		txn_rec *t = &all[i];
		while (g < (size_t)groups && atoll(porter_db_getvalue(r, (int)g, 0)) < t->id) {
			stray++; /* rows of no transaction the test made */
			g++;
		}
		int rows = 0, distinct = 0, lo = 0, hi = 0;
		if (g < (size_t)groups && atoll(porter_db_getvalue(r, (int)g, 0)) == t->id) {
			rows = atoi(porter_db_getvalue(r, (int)g, 1));
			distinct = atoi(porter_db_getvalue(r, (int)g, 2));
			lo = atoi(porter_db_getvalue(r, (int)g, 3));
			hi = atoi(porter_db_getvalue(r, (int)g, 4));
			g++;
		}
		int whole = rows == t->rows && distinct == t->rows && lo == 0 && hi == t->rows - 1;
		switch (t->outcome) {
		case TXN_COMMITTED:
			committed++;
			if (!whole) {
				lost++;
				fprintf(stderr, "committed txn %lld has %d of %d rows\n", t->id,
					rows, t->rows);
			}
			break;
		case TXN_ABORTED:
			aborted++;
			if (rows) {
				leaked++;
				fprintf(stderr, "uncommitted txn %lld left %d rows\n", t->id, rows);
			}
			break;
		default:
			unknown++;
			if (rows)
				unknown_present++;
			if (rows && !whole) {
				partial++;
				fprintf(stderr, "txn %lld of unknown outcome has %d of %d rows\n",
					t->id, rows, t->rows);
			}
		}
	}
	stray += groups - (long long)g;
	porter_db_result_free(r);
	free(all);

	long long calls = 0, hangs = 0, longest = 0, bad = 0, broken_after = 0, ok_after = 0;
	long long by_code[MAX_CODE] = {0};
	for (int i = 0; i < THREADS; i++) {
		calls += L[i].calls;
		hangs += L[i].hangs;
		bad += L[i].bad_errors;
		broken_after += L[i].broken_after;
		ok_after += L[i].ok_after;
		if (L[i].longest_ms > longest)
			longest = L[i].longest_ms;
		for (int c = 0; c < MAX_CODE; c++)
			by_code[c] += L[i].by_code[c];
		free(L[i].txns);
	}
	long long failed = 0;
	for (int c = 0; c < MAX_CODE; c++)
		failed += by_code[c];
	fprintf(stderr,
		"PostgreSQL killed x%d: %lld calls, %lld failed, %lld hung, longest %lld ms; "
		"%lld txns: %lld committed (%lld lost), %lld rolled back (%lld left rows), "
		"%lld unknown (%lld present, %lld partial), %lld stray; "
		"sessions erroring after a failure %lld (succeeding %lld); recovered in",
		KILLS, calls, failed, hangs, longest, txns, committed, lost, aborted, leaked,
		unknown, unknown_present, partial, stray, broken_after, ok_after);
	for (int k = 0; k < KILLS; k++)
		fprintf(stderr, " %lld ms%s", recover_ms[k], recovered[k] ? "" : " (NOT)");
	fprintf(stderr, "\n");
	th_print_failures(by_code, MAX_CODE);

	ck_assert_int_eq(hangs, 0);
	ck_assert_int_eq(bad, 0);
	ck_assert_int_eq(lost, 0);
	ck_assert_int_eq(leaked, 0);
	ck_assert_int_eq(partial, 0);
	ck_assert_int_eq(stray, 0);
	for (int k = 0; k < KILLS; k++)
		ck_assert_msg(recovered[k], "not every thread committed within %d ms of restart %d",
			      RECOVER_MS, k + 1);
	/* The kills did land on work in flight, and the sessions that lost
	 * their connection said so on their next call. */
	ck_assert_int_gt(failed, 0);
	ck_assert_int_gt(aborted + unknown, 0);
	ck_assert_int_gt(broken_after, 0);
	ck_assert_int_eq(ok_after, 0);
	ck_assert_int_gt(committed, 100);

	/* No connection leaked: with every session closed porterd holds at
	 * most its pools, and each of them is a live backend on the server
	 * (the query runs on one of them, so the two counts must meet). */
	uint64_t conns = 0;
	long backends = -1;
	t0 = th_now_ms();
	do {
		conns = db_connections();
		r = q_ok("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client "
			 "backend' AND datname = current_database()");
		backends = atol(porter_db_getvalue(r, 0, 0));
		porter_db_result_free(r);
		if (conns <= WORKERS * POOL_SIZE && (long)conns == backends &&
		    conns == db_connections())
			break;
		usleep(100000);
	} while (th_now_ms() - t0 < 5000);
	fprintf(stderr,
		"porterd holds %llu PostgreSQL connections (pools: at most %d), server "
		"has %ld client backends\n",
		(unsigned long long)conns, WORKERS * POOL_SIZE, backends);
	ck_assert_uint_ge(conns, 1);
	ck_assert_uint_le(conns, WORKERS * POOL_SIZE);
	ck_assert_int_eq((long)conns, backends);

	/* Sessions work again, and nothing is left in flight. */
	uint64_t sess = 0;
	ck_assert_int_eq(porter_db_open(conninfo, 0, 5000, &sess), 0);
	r = NULL;
	ck_assert_int_eq(porter_db_query(sess, NULL, "SELECT 42", NULL, 0, 0, 5000, &r), 0);
	ck_assert_str_eq(porter_db_getvalue(r, 0, 0), "42");
	porter_db_result_free(r);
	ck_assert_int_eq(porter_db_close(sess, 0, 5000), 0);
	porter_db_result_free(q_ok("DROP TABLE fault_txn"));
	th_expect_idle();
	th_stop_clean(&d);
}
END_TEST

/* Runs in the test process after the test case, whatever happened in it:
 * the fixture's server is left running for the tests after this one. */
static void resume_fixture_server(void)
{
	const char *state = getenv("PORTER_PG_STATE");
	if (state && state[0])
		th_pg_sh("resume");
}

static Suite *suite(void)
{
	Suite *s = suite_create("db_faults");
	const TTest *tests[] = {postgres_killed_mid_transaction, NULL};
	tcase_add_unchecked_fixture(th_tcase(s, "db_faults", 150, tests), NULL,
				    resume_fixture_server);
	return s;
}

TH_MAIN(suite)
