/*
 * A reload takes a database target away from every client at once: porterd
 * runs as TH_UID_DAEMON with its targets in a config file, a client of
 * another uid (TH_UID_ALICE) has a pool on a target, the administrator
 * edits the file and sends SIGHUP, and the client's next query over that
 * pool is refused, after any number of reloads.
 *
 * Pools remembered the configuration they were last checked under by its
 * address; a reload frees the old configuration, and a later reload's
 * configuration could be allocated at the same address, so a pool checked
 * two reloads ago looked checked under the new one and the removed target
 * stayed reachable through it.
 *
 * And a config file a client can write is no administrator's word.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"
#include "tenant.h"

static th_daemon d;
static char conf[64];
static char ci_pw[512]; /* TCP, porter_pw with its password */
static char target[64]; /* the fixture's TCP port, as db-allow-targets names it */

static void write_conf(const char *text)
{
	/* Replaced by rename, so porterd never reads half a file. */
	char tmp[80];
	snprintf(tmp, sizeof(tmp), "%s.tmp", conf);
	FILE *f = fopen(tmp, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(tmp, 0644), 0);
	ck_assert_int_eq(rename(tmp, conf), 0);
}

/* The config file, with the fixture's target listed or not. */
static void targets(int listed)
{
	char text[256];
	snprintf(text, sizeof(text), "db-allow-targets = %s\n", listed ? target : "10.0.0.1:5432");
	write_conf(text);
}

/* One pooled query made by a child of another uid. */
typedef struct job {
	int rc;
	char text[256];
} job;

static int run_query(void *arg)
{
	job *j = arg;
	porter_db_result *r = NULL;
	j->rc = porter_db_query(0, ci_pw, "SELECT current_user", NULL, 0, 0, 5000, &r);
	const char *text = porter_last_error_message();
	if (j->rc == 0 && porter_db_ntuples(r) > 0)
		text = porter_db_getvalue(r, 0, 0);
	snprintf(j->text, sizeof(j->text), "%s", text ? text : "");
	porter_db_result_free(r);
	return 0;
}

static job *alice_query(void)
{
	static job *j;
	if (!j)
		j = th_shared_alloc(sizeof(*j));
	ck_assert_ptr_nonnull(j);
	memset(j, 0, sizeof(*j));
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 20000, run_query, j), 0);
	return j;
}

START_TEST(removed_target_is_gone_after_any_reload)
{
	char ci_tcp[512], port[16];
	th_pg_file("conninfo_pw", ci_pw, sizeof(ci_pw));
	th_pg_file("conninfo_tcp", ci_tcp, sizeof(ci_tcp));
	const char *p = strstr(ci_tcp, "port=");
	ck_assert_ptr_nonnull(p);
	snprintf(port, sizeof(port), "%.*s", (int)strcspn(p + 5, " "), p + 5);
	snprintf(target, sizeof(target), "127.0.0.1:%s", port);
	snprintf(conf, sizeof(conf), "/tmp/porter-trust-reload-%d.conf", (int)getpid());
	targets(1);
	const char *extra[] = {"--allow-uid", "61010,61011,61012", "--config", conf, "--workers",
			       "1",           "--log-level",       "debug",    NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, extra), 0);
	int reloads = 0;
	for (int round = 0; round < 8; round++) {
		/* Alice's pool is made (or checked again) under a list that
		 * names her target... */
		job *j = alice_query();
		ck_assert_msg(j->rc == 0, "round %d: listed target refused: %s: %s", round,
			      porter_error_name(j->rc), j->text);
		ck_assert_str_eq(j->text, "porter_pw");
		/* ...which a reload keeps, and the next takes away. */
		th_daemon_reload(&d, ++reloads);
		targets(0);
		th_daemon_reload(&d, ++reloads);
		j = alice_query();
		ck_assert_msg(j->rc == PORTER_E_DENIED,
			      "round %d, after %d reloads: a removed target still served alice "
			      "through her pool (%s: %s)",
			      round, reloads, porter_error_name(j->rc), j->text);
		targets(1);
		th_daemon_reload(&d, ++reloads);
	}
	th_stop_clean(&d);
	unlink(conf);
}
END_TEST

/* Alice's ping: 0 when porterd serves her, 1 when it refuses her, else
 * 2 (with the error on stderr). */
static int alice_ping(void *arg)
{
	(void)arg;
	int rc = porter_ping("x", 1, 0, 3000);
	if (rc && rc != PORTER_E_DENIED)
		fprintf(stderr, "alice's ping: %s: %s\n", porter_error_name(rc),
			porter_last_error_message());
	return rc == 0 ? 0 : rc == PORTER_E_DENIED ? 1 : 2;
}

/* Alice writes `text` over the config file (she may, or the test fails). */
static int alice_writes_conf(void *arg)
{
	FILE *f = fopen(conf, "w");
	if (!f)
		return 1;
	fputs(arg, f);
	return fclose(f) == 0 ? 0 : 1;
}

/* Waits until `needle` is in the log `n` times. */
static void wait_count(const char *needle, int n)
{
	long long until = th_now_ms() + 10000;
	while (th_file_count(d.log, needle) < n && th_now_ms() < until)
		usleep(10000);
	ck_assert_msg(th_file_count(d.log, needle) >= n, "'%s' not logged %d times", needle, n);
}

/*
 * The config file says who may use porterd. One a client can write (its
 * own, or of porterd's group, which the clients share, with group write)
 * was read as if the administrator had written it: alice put herself in
 * allow-uid, the next reload let her in. Now porterd refuses such a file
 * whole (at start, on reload, with --check-config) and keeps its running
 * settings; a file only root can change reloads as before.
 */
START_TEST(config_a_client_can_write_is_refused)
{
	snprintf(conf, sizeof(conf), "/tmp/porter-trust-conf-%d.conf", (int)getpid());
	write_conf("allow-uid = 61010\n");
	const char *extra[] = {"--config", conf, NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, extra), 0);
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 10000, alice_ping, NULL), 1);

	/* Hers: she lets herself in. */
	ck_assert_int_eq(chown(conf, TH_UID_ALICE, TH_GID_PORTER), 0);
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 10000, alice_writes_conf,
			       "allow-uid = 61010,61011\n"),
			 0);
	ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
	wait_count("reload", 2); /* the reason and "reload failed" (old code: reloaded) */
	ck_assert_msg(th_as(TH_UID_ALICE, TH_GID_PORTER, 10000, alice_ping, NULL) == 1,
		      "a config file of alice's let her in");
	ck_assert_int_ge(th_file_count(d.log, "belongs to uid 61011"), 1);

	/* Root's, but the porter group may write it. */
	ck_assert_int_eq(chown(conf, 0, TH_GID_PORTER), 0);
	ck_assert_int_eq(chmod(conf, 0664), 0);
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 10000, alice_writes_conf,
			       "allow-uid = 61010,61011\n"),
			 0);
	ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
	wait_count("reload failed", 2);
	ck_assert_msg(th_as(TH_UID_ALICE, TH_GID_PORTER, 10000, alice_ping, NULL) == 1,
		      "a group-writable config file let alice in");
	ck_assert_int_ge(th_file_count(d.log, "group or others may write it"), 1);

	/* Only root's: the same text reloads. */
	ck_assert_int_eq(chmod(conf, 0644), 0);
	ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
	wait_count("configuration reloaded", 1);
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 10000, alice_ping, NULL), 0);

	th_stop_clean(&d);
	unlink(conf);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("trust_reload");
	TCase *tc = tcase_create("trust_reload");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, removed_target_is_gone_after_any_reload);
	tcase_add_test(tc, config_a_client_can_write_is_refused);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN_ROOT(suite)
