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
static char conf[160];
static char ci_pw[512]; /* TCP, porter_pw with its password */
static char target[64]; /* the fixture's TCP port, as db-allow-targets names it */

static void write_conf(const char *text)
{
	/* Replaced by rename, so porterd never reads half a file. */
	char tmp[200];
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

/* Alice writes `arg` into her per-user root "home" as porterd.conf: a file
 * porterd owns, with her words in it. 0, or 1 with the error on stderr. */
static int alice_plants_conf(void *arg)
{
	int rc = porter_file_write("home", "porterd.conf", arg, strlen(arg),
				   PORTER_FILE_CREATE | PORTER_FILE_TRUNCATE, 0600, 0, 5000);
	if (rc)
		fprintf(stderr, "alice's write: %s: %s\n", porter_error_name(rc),
			porter_last_error_message());
	return rc ? 1 : 0;
}

/* Alice swaps the config's directory for a symlink to her per-user
 * directory (arg: the config's directory, then that of her files). */
static int alice_swaps_dir(void *arg)
{
	char **p = arg, old[256];
	snprintf(old, sizeof(old), "%s.old", p[0]);
	return rename(p[0], old) == 0 && symlink(p[1], p[0]) == 0 ? 0 : 1;
}

/*
 * The config file and its directory were checked, not the directories
 * above. One of those that a client owns lets her point the path anywhere
 * porterd can read, and porterd owns the files clients write through it:
 * alice wrote a config into her per-user root (porterd's file, mode
 * 0600), put a symlink to that directory in place of the config's, and
 * the next reload took her file (here letting bob in). Now every
 * directory on the way, symlinks followed, must be root's or porterd's.
 */
START_TEST(config_under_a_client_directory_is_refused)
{
	char base[64], users[96], adir[96], etc[128], mine[128];
	snprintf(base, sizeof(base), "/tmp/porter-trust-anc-%d", (int)getpid());
	snprintf(users, sizeof(users), "%s/users", base);
	snprintf(adir, sizeof(adir), "%s/alice", base);
	snprintf(etc, sizeof(etc), "%s/etc", adir);
	snprintf(mine, sizeof(mine), "%s/%u", users, (unsigned)TH_UID_ALICE);
	ck_assert_int_eq(mkdir(base, 0755), 0);
	ck_assert_int_eq(mkdir(users, 0700), 0);
	ck_assert_int_eq(chown(users, TH_UID_DAEMON, TH_GID_PORTER), 0);
	ck_assert_int_eq(mkdir(adir, 0755), 0);
	ck_assert_int_eq(mkdir(etc, 0755), 0);
	snprintf(conf, sizeof(conf), "%s/porterd.conf", etc);
	char text[256], planted[256];
	snprintf(text, sizeof(text), "allow-uid = 61010,61011\nfile-roots = home=%s/%%u\n", users);
	snprintf(planted, sizeof(planted),
		 "allow-uid = 61010,61011,61012\nfile-roots = home=%s/%%u\n", users);
	write_conf(text);
	const char *extra[] = {"--config", conf, NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, extra), 0);
	ck_assert_int_eq(th_as(TH_UID_BOB, TH_GID_PORTER, 10000, alice_ping, NULL), 1);
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 10000, alice_plants_conf, planted), 0);

	/* The directory above the config's becomes alice's... */
	ck_assert_int_eq(chown(adir, TH_UID_ALICE, TH_GID_PORTER), 0);
	char *swap[] = {etc, mine};
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 10000, alice_swaps_dir, swap), 0);
	ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
	wait_count("reload", 2); /* the reason and "reload failed" (old code: reloaded) */
	ck_assert_msg(th_as(TH_UID_BOB, TH_GID_PORTER, 10000, alice_ping, NULL) == 1,
		      "alice's file in her per-user root was read as the config: bob got in");
	ck_assert_int_ge(th_file_count(d.log, "belongs to uid 61011"), 1);

	/* Root's again, the real directory back: the same path reloads. */
	char old[160];
	snprintf(old, sizeof(old), "%s.old", etc);
	ck_assert_int_eq(unlink(etc), 0);
	ck_assert_int_eq(rename(old, etc), 0);
	ck_assert_int_eq(chown(adir, 0, 0), 0);
	write_conf(planted);
	ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
	wait_count("configuration reloaded", 1);
	ck_assert_int_eq(th_as(TH_UID_BOB, TH_GID_PORTER, 10000, alice_ping, NULL), 0);

	th_stop_clean(&d);
	th_rm_rf(base);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("trust_reload");
	TCase *tc = tcase_create("trust_reload");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, removed_target_is_gone_after_any_reload);
	tcase_add_test(tc, config_a_client_can_write_is_refused);
	tcase_add_test(tc, config_under_a_client_directory_is_refused);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN_ROOT(suite)
