/*
 * Integration tests of porter_reset(): after a reset every thread's next
 * call runs on a new connection that says Hello with a new client instance
 * id, while a thread that stays idle keeps nothing working against it;
 * and a pooled database connection forgets one client process's settings
 * before it serves the next.
 */
#include <check.h>
#include <dirent.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"

static th_daemon d;
static const char *const debug_log[] = {"--log-level", "debug", NULL};

/* The inodes of this process's open Unix sockets (the test opens no other
 * sockets, so these are libporter's connections). Returns how many. */
static int socket_inodes(unsigned long *out, int cap)
{
	DIR *dir = opendir("/proc/self/fd");
	ck_assert_ptr_nonnull(dir);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		char path[300], link[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		ssize_t len = readlink(path, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = '\0';
		unsigned long ino;
		if (sscanf(link, "socket:[%lu]", &ino) == 1 && n < cap)
			out[n++] = ino;
	}
	closedir(dir);
	return n;
}

static int has_inode(const unsigned long *set, int n, unsigned long ino)
{
	for (int i = 0; i < n; i++)
		if (set[i] == ino)
			return 1;
	return 0;
}

/* Distinct client instance ids in the daemon's Hello log lines. */
static int logged_instances(char ids[][17], int cap)
{
	FILE *f = fopen(d.log, "r");
	ck_assert_ptr_nonnull(f);
	char line[512];
	int n = 0;
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, " instance ");
		char id[17];
		if (!p || !strstr(line, "hello from") || sscanf(p, " instance %16s", id) != 1)
			continue;
		int seen = 0;
		for (int i = 0; i < n; i++)
			seen |= strcmp(ids[i], id) == 0;
		if (!seen && n < cap)
			strcpy(ids[n++], id);
	}
	fclose(f);
	return n;
}

/* Sum of the daemon's open client connections, as it reports them. */
static long daemon_connections(void)
{
	porter_stats_snapshot *s = NULL;
	ck_assert_int_eq(porter_stats(0, 2000, &s), 0);
	long total = 0;
	for (size_t i = 0; i < porter_stats_workers(s); i++) {
		porter_worker_stats w = PORTER_WORKER_STATS_INIT;
		ck_assert_int_eq(porter_stats_worker(s, i, &w), 0);
		total += (long)w.connections;
	}
	porter_stats_free(s);
	return total;
}

/* Waits (up to 5 s) for the daemon to count `want` connections. */
static long await_connections(long want)
{
	long n = -1;
	for (int i = 0; i < 500 && (n = daemon_connections()) != want; i++)
		usleep(10000);
	return n;
}

/* A second thread that pings when told to, so it keeps one connection of
 * its own across the reset. */
static sem_t go, done;
static atomic_int other_rc;
static atomic_int other_stop;

static void *other_thread(void *arg)
{
	(void)arg;
	for (;;) {
		sem_wait(&go);
		if (atomic_load(&other_stop))
			break;
		atomic_store(&other_rc, porter_ping("other", 5, 0, 2000));
		sem_post(&done);
	}
	return NULL;
}

static int other_ping(void)
{
	sem_post(&go);
	sem_wait(&done);
	return atomic_load(&other_rc);
}

START_TEST(reset_reconnects_every_thread_with_a_new_instance)
{
	ck_assert_int_eq(th_daemon_start(&d, debug_log), 0);
	sem_init(&go, 0, 0);
	sem_init(&done, 0, 0);
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, other_thread, NULL), 0);

	ck_assert_int_eq(porter_ping("main", 4, 0, 2000), 0);
	ck_assert_int_eq(other_ping(), 0);
	unsigned long before[16], after[16];
	int nb = socket_inodes(before, 16);
	ck_assert_int_eq(nb, 2);
	ck_assert_int_eq(await_connections(2), 2);

	porter_reset();
	/* The calling thread's connection is closed at once; the idle
	 * thread's is still open until it calls again. */
	ck_assert_int_eq(socket_inodes(after, 16), 1);
	ck_assert(has_inode(before, nb, after[0]));

	ck_assert_int_eq(porter_ping("main", 4, 0, 2000), 0);
	ck_assert_int_eq(other_ping(), 0);
	int na = socket_inodes(after, 16);
	ck_assert_int_eq(na, 2);
	for (int i = 0; i < na; i++)
		ck_assert_msg(!has_inode(before, nb, after[i]), "connection %lu survived the reset",
			      after[i]);
	/* The daemon saw the old connections close. */
	ck_assert_int_eq(await_connections(2), 2);

	char ids[8][17];
	ck_assert_int_eq(logged_instances(ids, 8), 2);

	/* A second reset gives yet another instance. */
	porter_reset();
	ck_assert_int_eq(porter_ping(NULL, 0, 0, 2000), 0);
	ck_assert_int_eq(logged_instances(ids, 8), 3);

	atomic_store(&other_stop, 1);
	sem_post(&go);
	pthread_join(th, NULL);
	porter_thread_disconnect();
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}
END_TEST

/* Threads calling while another resets again and again: every call
 * succeeds (a reset never breaks a call in flight). */
static atomic_int resetting;
static atomic_int failures;

static void *pinger(void *arg)
{
	(void)arg;
	while (atomic_load(&resetting)) {
		int rc = porter_ping("x", 1, 0, 5000);
		if (rc != 0) {
			fprintf(stderr, "ping during reset: %s\n", porter_last_error_message());
			atomic_fetch_add(&failures, 1);
		}
	}
	porter_thread_disconnect();
	return NULL;
}

START_TEST(reset_while_others_call)
{
	ck_assert_int_eq(th_daemon_start(&d, NULL), 0);
	enum { N = 8 };
	pthread_t th[N];
	atomic_store(&resetting, 1);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, pinger, NULL), 0);
	for (int i = 0; i < 200; i++) {
		porter_reset();
		usleep(2000);
	}
	atomic_store(&resetting, 0);
	for (int i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	ck_assert_int_eq(atomic_load(&failures), 0);
	/* Only this thread's stats connection is left open. */
	ck_assert_int_eq(await_connections(1), 1);
	porter_thread_disconnect();
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}
END_TEST

/* The one text value of a query's one row, copied into `out` (cap bytes);
 * the query's return code. */
static int query_text(const char *conninfo, const char *sql, char *out, size_t cap)
{
	porter_db_result *r = NULL;
	int rc = porter_db_query(0, conninfo, sql, NULL, 0, 0, 10000, &r);
	out[0] = 0;
	if (rc == 0 && porter_db_ntuples(r) == 1 && porter_db_getvalue(r, 0, 0))
		snprintf(out, cap, "%s", porter_db_getvalue(r, 0, 0));
	porter_db_result_free(r);
	return rc;
}

/*
 * A pooled connection forgets a client process's settings before it
 * serves the next process of the uid, even when that process's first
 * query fails: the reset sent ahead of that query must not be rolled back
 * with it. One worker and a pool of one connection, so both processes
 * (instances, here before and after porter_reset) share the connection.
 */
START_TEST(reset_survives_a_failed_first_query)
{
	char conninfo[512], v[128];
	th_pg_file("conninfo", conninfo, sizeof(conninfo));
	const char *args[] = {"--workers", "1", "--db-pool-size", "1", NULL};
	ck_assert_int_eq(th_daemon_start(&d, args), 0);
	for (int round = 0; round < 3; round++) {
		ck_assert_int_eq(query_text(conninfo,
					    "SELECT set_config('application_name', 'porter_leak', "
					    "false)",
					    v, sizeof(v)),
				 0);
		ck_assert_str_eq(v, "porter_leak");
		porter_reset(); /* the next call is another client process */
		ck_assert_int_ne(query_text(conninfo, "SELECT 1/0", v, sizeof(v)), 0);
		ck_assert_int_eq(query_text(conninfo, "SELECT current_setting('application_name')",
					    v, sizeof(v)),
				 0);
		ck_assert_msg(strcmp(v, "porter_leak") != 0,
			      "round %d: the previous process's setting leaked: %s", round, v);
		porter_reset();
	}
	porter_thread_disconnect();
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}
END_TEST

static Suite *suite(void)
{
	const TTest *core_tests[] = {reset_reconnects_every_thread_with_a_new_instance,
				     reset_while_others_call, NULL};
	const TTest *db_tests[] = {reset_survives_a_failed_first_query, NULL};
	Suite *s = suite_create("reset");
	th_tcase(s, "core", 60, core_tests);
	th_tcase(s, "db", 60, db_tests);
	return s;
}

TH_MAIN(suite)
