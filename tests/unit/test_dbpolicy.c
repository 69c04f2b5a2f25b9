/* Unit tests of dbpolicy: which conninfos a local and a foreign client may
 * use, what porterd adds, and how text from libpq and servers is cleaned. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "dbpolicy.h"
#include "porter_errors.h"
#include "thmain.h"

static char *target_items[] = {"db.example.com:5432", "127.0.0.1:*", "*.corp.example:6432",
			       "[::1]:5433", "/run/postgresql"};
static const config_list targets = {target_items, 5};

static int check(const char *ci, int foreign)
{
	char why[256];
	int rc = dbpolicy_check(ci, foreign, &targets, why, sizeof(why));
	/* A refusal always says why, and never quotes a password. */
	if (rc)
		ck_assert(why[0] != 0);
	ck_assert(strstr(why, "s3cret") == NULL);
	return rc;
}

START_TEST(file_keywords_refused_for_everyone)
{
	static const char *const bad[] = {
		"host=db.example.com passfile=/home/porter/.pgpass",
		"service=prod",
		"host=db.example.com sslrootcert=/tmp/fifo sslmode=verify-ca",
		"host=db.example.com sslcert=/etc/shadow",
		"host=db.example.com sslkey=/proc/self/fd/0",
		"host=db.example.com sslcrl=/x",
		"host=db.example.com sslcrldir=/x",
		"host=db.example.com sslpassword=s3cret",
		"postgresql://db.example.com/x?sslrootcert=/tmp/fifo",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(check(bad[i], 0), PORTER_E_DENIED);
		ck_assert_int_eq(check(bad[i], 1), PORTER_E_DENIED);
	}
}
END_TEST

START_TEST(local_keeps_its_freedom)
{
	ck_assert_int_eq(check("dbname=postgres", 0), 0);
	ck_assert_int_eq(check("host=/tmp/pg port=5999 user=postgres", 0), 0);
	ck_assert_int_eq(check("host=elsewhere.example hostaddr=10.1.2.3 krbsrvname=pg", 0), 0);
	ck_assert_int_eq(check("host=x application_name=app sslmode=require "
			       "target_session_attrs=read-write options='-c work_mem=4MB'",
			       0),
			 0);
}
END_TEST

START_TEST(foreign_needs_listed_targets_and_credentials)
{
	ck_assert_int_eq(check("host=db.example.com user=u password=s3cret dbname=d", 1), 0);
	ck_assert_int_eq(check("host=DB.Example.COM port=5432 user=u password=s3cret", 1), 0);
	ck_assert_int_eq(check("host=127.0.0.1 port=7777 user=u password=s3cret", 1), 0);
	ck_assert_int_eq(check("host=a.corp.example port=6432 user=u password=s3cret", 1), 0);
	ck_assert_int_eq(check("host=/run/postgresql user=u password=s3cret", 1), 0);
	ck_assert_int_eq(check("hostaddr=::1 port=5433 user=u password=s3cret", 1), 0);
	/* Multiple hosts: each one must be listed. */
	ck_assert_int_eq(check("host=db.example.com,127.0.0.1 user=u password=s3cret", 1), 0);
	ck_assert_int_eq(check("host=db.example.com,evil.example user=u password=s3cret", 1),
			 PORTER_E_DENIED);
	ck_assert_int_eq(
		check("host=db.example.com hostaddr=127.0.0.1,10.9.9.9 user=u password=s3cret", 1),
		PORTER_E_INVAL);
	/* No password, no user: porterd's own credentials would fill them. */
	ck_assert_int_eq(check("host=db.example.com user=u", 1), PORTER_E_DENIED);
	ck_assert_int_eq(check("host=db.example.com password=s3cret", 1), PORTER_E_DENIED);
	ck_assert_int_eq(check("host=db.example.com user=u password=", 1), PORTER_E_DENIED);
	/* Unlisted host, port, socket directory; the default socket. */
	ck_assert_int_eq(check("host=other.example user=u password=s3cret", 1), PORTER_E_DENIED);
	ck_assert_int_eq(check("host=db.example.com port=5433 user=u password=s3cret", 1),
			 PORTER_E_DENIED);
	ck_assert_int_eq(check("host=corp.example port=6432 user=u password=s3cret", 1),
			 PORTER_E_DENIED);
	ck_assert_int_eq(check("host=/tmp user=u password=s3cret", 1), PORTER_E_DENIED);
	ck_assert_int_eq(check("host=/run/postgresql/../../tmp user=u password=s3cret", 1),
			 PORTER_E_DENIED);
	ck_assert_int_eq(check("user=u password=s3cret dbname=x", 1), PORTER_E_DENIED);
	ck_assert_int_eq(check("host=,db.example.com user=u password=s3cret", 1), PORTER_E_DENIED);
	/* hostaddr elsewhere: the name is listed, the address is not. */
	ck_assert_int_eq(check("host=db.example.com hostaddr=10.9.9.9 user=u password=s3cret", 1),
			 PORTER_E_DENIED);
	/* Kerberos and replication use porterd's identity. */
	ck_assert_int_eq(check("host=db.example.com user=u password=s3cret krbsrvname=x", 1),
			 PORTER_E_DENIED);
	ck_assert_int_eq(check("host=db.example.com user=u password=s3cret gssencmode=prefer", 1),
			 PORTER_E_DENIED);
	/* Nothing is listed: nothing is reachable. */
	char why[128];
	ck_assert_int_eq(
		dbpolicy_check("host=db.example.com user=u password=p", 1, NULL, why, sizeof(why)),
		PORTER_E_DENIED);
}
END_TEST

START_TEST(control_characters_and_garbage_refused)
{
	ck_assert_int_eq(check("host=x application_name='a\r\nSET x'", 0), PORTER_E_INVAL);
	ck_assert_int_eq(check("host=x application_name='a\x1b[31m'", 0), PORTER_E_INVAL);
	ck_assert_int_eq(check("host=x options='\x7f'", 0), PORTER_E_INVAL);
	ck_assert_int_eq(check("password='s3cret", 0), PORTER_E_INVAL);
	ck_assert_int_eq(check("nosuchkeyword=1", 0), PORTER_E_INVAL);
	ck_assert_int_eq(dbpolicy_check(NULL, 0, &targets, NULL, 0), PORTER_E_INVAL);
}
END_TEST

START_TEST(target_patterns)
{
	ck_assert(dbpolicy_target_match("db:5432", "db", NULL));
	ck_assert(dbpolicy_target_match("db:5432", "db", ""));
	ck_assert(!dbpolicy_target_match("db:5432", "db", "5433"));
	ck_assert(dbpolicy_target_match("db:*", "db", "1"));
	ck_assert(!dbpolicy_target_match("db", "db", NULL)); /* a port is required */
	ck_assert(!dbpolicy_target_match("db:5432", "xdb", NULL));
	ck_assert(!dbpolicy_target_match("*.x.org:*", "x.org", NULL));
	ck_assert(dbpolicy_target_match("*.x.org:*", "a.b.x.org", NULL));
	ck_assert(!dbpolicy_target_match("*.x.org:*", "a.evilx.org", NULL));
	ck_assert(dbpolicy_target_match("[fe80::1]:5432", "fe80::1", "5432"));
	ck_assert(dbpolicy_target_match("/run/pg", "/run/pg", "1234"));
	ck_assert(!dbpolicy_target_match("/run/pg", "/run/pg/", NULL));
	ck_assert(!dbpolicy_target_match("db:5432", "/run/pg", NULL));
	ck_assert(!dbpolicy_target_match("*:*", "/tmp", NULL));
}
END_TEST

START_TEST(params_carry_porterds_own_files)
{
	dbpolicy_params p;
	ck_assert_int_eq(dbpolicy_params_build("host=h hostaddr=1.2.3.4 user=u password=pw",
					       "5.6.7.8", "/etc/porter/ca.pem", 0, &p),
			 0);
	int saw_addr = 0, saw_passfile = 0, saw_root = 0, saw_cert = 0;
	for (size_t i = 0; p.keywords[i]; i++) {
		if (!strcmp(p.keywords[i], "hostaddr")) {
			ck_assert_str_eq(p.values[i], "5.6.7.8");
			saw_addr++;
		}
		if (!strcmp(p.keywords[i], "passfile")) {
			ck_assert_str_eq(p.values[i], DBPOLICY_NO_FILE);
			saw_passfile++;
		}
		if (!strcmp(p.keywords[i], "sslrootcert")) {
			ck_assert_str_eq(p.values[i], "/etc/porter/ca.pem");
			saw_root++;
		}
		if (!strcmp(p.keywords[i], "sslcert") || !strcmp(p.keywords[i], "sslkey")) {
			ck_assert_str_eq(p.values[i], DBPOLICY_NO_FILE);
			saw_cert++;
		}
	}
	ck_assert_int_eq(saw_addr, 1);
	ck_assert_int_eq(saw_passfile, 1);
	ck_assert_int_eq(saw_root, 1);
	ck_assert_int_eq(saw_cert, 2);
	dbpolicy_params_free(&p);
	/* Without a configured root certificate: none, not ~/.postgresql's. */
	ck_assert_int_eq(dbpolicy_params_build("host=h", NULL, NULL, 0, &p), 0);
	for (size_t i = 0; p.keywords[i]; i++)
		if (!strcmp(p.keywords[i], "sslrootcert"))
			ck_assert_str_eq(p.values[i], DBPOLICY_NO_FILE);
	dbpolicy_params_free(&p);
	ck_assert_int_eq(dbpolicy_params_build("host='x", NULL, NULL, 0, &p), PORTER_E_INVAL);
	/* A foreign client's connection never sets up GSS encryption with
	 * porterd's Kerberos credentials. */
	ck_assert_int_eq(dbpolicy_params_build("host=h gssencmode=prefer", NULL, NULL, 1, &p), 0);
	int gss = 0;
	for (size_t i = 0; p.keywords[i]; i++)
		if (!strcmp(p.keywords[i], "gssencmode")) {
			ck_assert_str_eq(p.values[i], "disable");
			gss++;
		}
	ck_assert_int_eq(gss, 1);
	dbpolicy_params_free(&p);
	/* client_encoding is UTF8, once, whatever the client asked for. */
	const char *given[] = {"host=h", "host=h client_encoding=LATIN1",
			       "host=h client_encoding=auto"};
	for (size_t g = 0; g < sizeof(given) / sizeof(given[0]); g++) {
		ck_assert_int_eq(dbpolicy_params_build(given[g], NULL, NULL, 0, &p), 0);
		int enc = 0;
		for (size_t i = 0; p.keywords[i]; i++)
			if (!strcmp(p.keywords[i], "client_encoding")) {
				ck_assert_str_eq(p.values[i], "UTF8");
				enc++;
			}
		ck_assert_int_eq(enc, 1);
		dbpolicy_params_free(&p);
	}
}
END_TEST

/* The file for `conninfo`, "" for none, "!" when refused. */
static const char *root_of(const char *conninfo, const config_list *certs)
{
	const char *f = (const char *)1;
	int rc = dbpolicy_root_cert(conninfo, certs, &f);
	ck_assert(rc == 0 || (rc == PORTER_E_INVAL && f == NULL));
	return rc < 0 ? "!" : f ? f : "";
}

START_TEST(root_cert_per_target)
{
	char *items[] = {"db.example.com:5432=/etc/porter/a.pem", "*.corp.example:*=/etc/b.pem",
			 "10.0.0.7:*=/etc/porter/a.pem", "broken"};
	config_list certs = {items, 4};
	ck_assert_str_eq(root_of("host=db.example.com", &certs), "/etc/porter/a.pem");
	ck_assert_str_eq(root_of("host=x.corp.example port=1", &certs), "/etc/b.pem");
	ck_assert_str_eq(root_of("host=db.example.com port=1", &certs), "");
	ck_assert_str_eq(root_of("host=other", &certs), "");
	ck_assert_str_eq(root_of("host=db.example.com", NULL), "");
	/* Every host of a list needs the same file, or none for all: libpq
	 * verifies them all against the one it is given. */
	ck_assert_str_eq(root_of("host=x.corp.example,y.corp.example port=1,2", &certs),
			 "/etc/b.pem");
	ck_assert_str_eq(root_of("host=db.example.com,10.0.0.7", &certs), "/etc/porter/a.pem");
	ck_assert_str_eq(root_of("host=other,another", &certs), "");
	ck_assert_str_eq(root_of("host=db.example.com,x.corp.example", &certs), "!");
	ck_assert_str_eq(root_of("host=x.corp.example,db.example.com", &certs), "!");
	ck_assert_str_eq(root_of("host=db.example.com,other", &certs), "!");
	ck_assert_str_eq(root_of("host=other,db.example.com", &certs), "!");
	ck_assert_str_eq(root_of("host=db.example.com,db.example.com port=5432,1", &certs), "!");
	/* Without host names, the addresses are what is looked up. */
	ck_assert_str_eq(root_of("hostaddr=10.0.0.7", &certs), "/etc/porter/a.pem");
	ck_assert_str_eq(root_of("hostaddr=10.0.0.7,10.0.0.8", &certs), "!");
	ck_assert_str_eq(root_of("host=db.example.com,x.corp.example", NULL), "");
	ck_assert_str_eq(root_of("not a conninfo", &certs), "!");
}
END_TEST

START_TEST(mask_hides_every_secret)
{
	char out[256];
	dbpolicy_mask("host=h password=s3cret sslpassword=k3y application_name='a\nb'", out,
		      sizeof(out));
	ck_assert(strstr(out, "s3cret") == NULL);
	ck_assert(strstr(out, "k3y") == NULL);
	ck_assert(strstr(out, "password=***") != NULL);
	ck_assert(strchr(out, '\n') == NULL);
	ck_assert(strstr(out, "application_name=a\\nb") != NULL);
	dbpolicy_mask("password='s3cret", out, sizeof(out));
	ck_assert_str_eq(out, "(unparsable conninfo)");
	char tiny[12];
	dbpolicy_mask("host=h password=s3cret", tiny, sizeof(tiny));
	ck_assert(strstr(tiny, "s3c") == NULL);
}
END_TEST

START_TEST(clean_escapes_and_drops_raw_bytes)
{
	char out[64];
	ck_assert_str_eq(dbpolicy_clean("plain text\n", out, sizeof(out)), "plain text");
	ck_assert_str_eq(dbpolicy_clean("two\nlines\tok", out, sizeof(out)), "two\nlines\tok");
	ck_assert_str_eq(dbpolicy_clean_line("two\nlines", out, sizeof(out)), "two\\nlines");
	ck_assert_str_eq(dbpolicy_clean("bell\a esc\x1b", out, sizeof(out)), "bell\\x07 esc\\x1b");
	ck_assert_str_eq(dbpolicy_clean("caf\xc3\xa9 \xe2\x82\xac", out, sizeof(out)),
			 "caf\xc3\xa9 \xe2\x82\xac");
	/* Stray and overlong bytes, surrogates, truncated sequences. */
	ck_assert_str_eq(dbpolicy_clean("a\xff\xfe", out, sizeof(out)), "a\\xff\\xfe");
	ck_assert_str_eq(dbpolicy_clean("\xc0\xaf", out, sizeof(out)), "\\xc0\\xaf");
	ck_assert_str_eq(dbpolicy_clean("\xed\xa0\x80", out, sizeof(out)), "\\xed\\xa0\\x80");
	ck_assert_str_eq(dbpolicy_clean("x\xe2\x82", out, sizeof(out)), "x\\xe2\\x82");
	ck_assert_str_eq(dbpolicy_clean(NULL, out, sizeof(out)), "");
	/* Truncation never splits an escape or a character. */
	char small[6];
	ck_assert_str_eq(dbpolicy_clean("ab\x01zz", small, sizeof(small)), "ab");
	ck_assert_str_eq(dbpolicy_clean("abcd\xc3\xa9", small, sizeof(small)), "abcd");
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {file_keywords_refused_for_everyone,
				local_keeps_its_freedom,
				foreign_needs_listed_targets_and_credentials,
				control_characters_and_garbage_refused,
				target_patterns,
				params_carry_porterds_own_files,
				root_cert_per_target,
				mask_hides_every_secret,
				clean_escapes_and_drops_raw_bytes,
				NULL};
	return th_suite("dbpolicy", "pure", 0, tests);
}

TH_MAIN(suite)
