/*
 * Logins across the trust boundary: the CPU a PostgreSQL login costs
 * porterd is the server's to choose. A SCRAM login derives the salted
 * password with as many PBKDF2 rounds as the server's verifier names, and
 * libpq (15) computes them inside one PQconnectPoll, which nothing can
 * interrupt; a role may set its own verifier (ALTER ROLE ... PASSWORD
 * 'SCRAM-SHA-256$<rounds>:...', PostgreSQL stores it as given). So alice,
 * with nothing but a role of her own on an allowed server, makes every
 * login of that role cost porterd seconds (or, at 2^31 rounds, half an
 * hour) of a thread-pool thread, and bob's login must not wait for it.
 *
 * porterd runs as TH_UID_DAEMON with one worker; alice and bob are
 * foreign clients (TH_UID_ALICE, TH_UID_BOB). The fixture's server asks
 * the role porter_slow, made here, for its SCRAM password over TCP (a
 * line added to pg_hba.conf, reloaded).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"
#include "rawc.h"
#include "tenant.h"

/* Rounds of alice's verifier: some 5 s of a CPU here (4,096 is the
 * default), long enough that bob's login times out behind it, short
 * enough for the test to wait for at the end (the thread cannot be
 * stopped, and porterd's shutdown waits for it). Under ASan libpq's
 * rounds run some ten times slower (its allocations and copies are
 * intercepted): 8,000,000 took over 60 s. */
#ifdef PORTER_SANITIZED
#define SLOW_ROUNDS "1000000"
#else
#define SLOW_ROUNDS "8000000"
#endif

typedef struct login {
	int alice_sent;
	int bob_rc;
	long long bob_ms;
	char bob_msg[256];
} login;

static th_daemon d;
static login *shm;
static char ci_pw[512];   /* TCP, porter_pw: a role of the default 4,096 rounds */
static char ci_slow[512]; /* TCP, porter_slow: alice's role */

/* The value of NAME=value line `name` of the fixture's env file. */
static void pg_env(const char *name, char *out, size_t cap)
{
	char path[512], line[512];
	snprintf(path, sizeof(path), "%s/env", th_pg_state());
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = strlen(name);
	out[0] = 0;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, name, n) == 0 && line[n] == '=')
			snprintf(out, cap, "%.*s", (int)strcspn(line + n + 1, "\n"), line + n + 1);
	fclose(f);
	ck_assert_msg(out[0], "no %s in the fixture's env", name);
}

/* Runs `sql` as the fixture's superuser over its Unix socket (trusted),
 * with psql; asserts it succeeded. */
static void psql_super(const char *sql)
{
	char bin[512], dir[256], port[16], super[64];
	th_pg_file("pgbin", bin, sizeof(bin));
	pg_env("DIR", dir, sizeof(dir));
	pg_env("PORT", port, sizeof(port));
	pg_env("SUPER", super, sizeof(super));
	char psql[600];
	snprintf(psql, sizeof(psql), "%s/psql", bin);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		execl(psql, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", dir, "-p", port,
		      "-U", super, "-d", "postgres", "-c", sql, (char *)NULL);
		_exit(127);
	}
	int st = 0;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "psql failed: %s", sql);
}

/* The role porter_slow (SCRAM over TCP; a verifier of SLOW_ROUNDS rounds),
 * left in the fixture, where nothing else uses it. */
static void make_slow_role(void)
{
	char dir[256], hba[512];
	pg_env("DIR", dir, sizeof(dir));
	snprintf(hba, sizeof(hba), "%s/data/pg_hba.conf", dir);
	if (!th_file_has(hba, "porter_slow")) {
		FILE *f = fopen(hba, "a");
		ck_assert_ptr_nonnull(f);
		fputs("host all porter_slow 127.0.0.1/32 scram-sha-256\n", f);
		ck_assert_int_eq(fclose(f), 0);
	}
	/* What ALTER ROLE porter_slow PASSWORD 'SCRAM-SHA-256$...' would
	 * store when alice runs it as porter_slow, written straight into the
	 * catalog: the statement would cost the server the rounds once (it
	 * checks the verifier against an empty password), which is alice's
	 * price, not the test's. The salt and keys are any bytes of the
	 * right sizes: her logins fail, once the rounds are derived. */
	psql_super("DROP ROLE IF EXISTS porter_slow; "
		   "CREATE ROLE porter_slow LOGIN; "
		   "UPDATE pg_authid SET rolpassword = 'SCRAM-SHA-256$" SLOW_ROUNDS
		   ":c2FsdHNhbHRzYWx0c2FsdA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:"
		   "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' WHERE rolname = 'porter_slow'; "
		   "SELECT pg_reload_conf()");
}

static void setup(void)
{
	char ci_tcp[512], *port;
	static char targets[64];
	th_pg_file("conninfo_pw", ci_pw, sizeof(ci_pw));
	th_pg_file("conninfo_tcp", ci_tcp, sizeof(ci_tcp));
	ck_assert_ptr_nonnull(port = strstr(ci_tcp, "port="));
	int pl = (int)strcspn(port + 5, " ");
	snprintf(targets, sizeof(targets), "127.0.0.1:%.*s", pl, port + 5);
	snprintf(ci_slow, sizeof(ci_slow),
		 "host=127.0.0.1 port=%.*s dbname=postgres user=porter_slow password=any", pl,
		 port + 5);
	make_slow_role();
	const char *const extra[] = {"--workers",          "1",     "--allow-uid", "61011,61012",
				     "--db-allow-targets", targets, NULL};
	shm = th_tenant_up(&d, extra, sizeof(*shm));
}

static void teardown(void)
{
	th_stop_clean(&d);
}

/* As alice: a pooled query as porter_slow, whose login derives
 * SLOW_ROUNDS rounds; she leaves once porterd has begun it. */
static int alice_slows_logins(void *arg)
{
	login *l = arg;
	frame_reader rd;
	frame_reader_init(&rd, 1 << 20);
	int fd = th_rc_open(getenv("PORTER_SOCKET"), &rd, 5000, NULL);
	if (fd < 0)
		return 1;
	Porter__V1__Request r = PORTER__V1__REQUEST__INIT;
	Porter__V1__DbQuery q = PORTER__V1__DB_QUERY__INIT;
	q.conninfo = ci_slow;
	q.sql = "SELECT 1";
	r.id = 1;
	r.timeout_ms = 15000;
	r.body_case = PORTER__V1__REQUEST__BODY_DB_QUERY;
	r.db_query = &q;
	l->alice_sent = th_rc_send(fd, &r) == 0;
	/* Her login's key step is on the thread pool by now. */
	usleep(500 * 1000);
	close(fd);
	frame_reader_free(&rd);
	return 0;
}

/* As bob: a pooled query as porter_pw, whose login derives 4,096 rounds. */
static int bob_logs_in(void *arg)
{
	login *l = arg;
	porter_db_result *res = NULL;
	long long t0 = th_now_ms();
	l->bob_rc = porter_db_query(0, ci_pw, "SELECT 1", NULL, 0, 0, 3000, &res);
	l->bob_ms = th_now_ms() - t0;
	snprintf(l->bob_msg, sizeof(l->bob_msg), "%s",
		 l->bob_rc ? porter_last_error_message() : "");
	porter_db_result_free(res);
	return 0;
}

START_TEST(a_costly_login_never_holds_another_uids)
{
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 30000, alice_slows_logins, shm), 0);
	ck_assert_int_eq(shm->alice_sent, 1);
	ck_assert_int_eq(th_as(TH_UID_BOB, TH_GID_PORTER, 30000, bob_logs_in, shm), 0);
	ck_assert_msg(shm->bob_rc == 0, "bob's login waited for alice's (%s after %lld ms: %s)",
		      porter_error_name(shm->bob_rc), shm->bob_ms, shm->bob_msg);
	/* porterd's shutdown waits for the step (nothing can stop it). */
	for (long long until = th_now_ms() + 60000;
	     th_now_ms() < until && !th_file_has(d.log, "long login step ended");)
		usleep(50 * 1000);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("trust_login");
	const TTest *tests[] = {a_costly_login_never_holds_another_uids, NULL};
	TCase *tc = th_tcase(s, "trust_login", 120, tests);
	tcase_add_checked_fixture(tc, setup, teardown);
	return s;
}

TH_MAIN_ROOT(suite)
