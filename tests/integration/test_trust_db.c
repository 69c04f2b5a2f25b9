/*
 * The database side of the trust boundary (issue 15): porterd runs as
 * TH_UID_DAEMON, clients run as TH_UID_ALICE and TH_UID_BOB (foreign) or as
 * the daemon's own uid (local), against the throwaway PostgreSQL of
 * tests/support/pg.sh: its Unix socket trusts everyone but porter_pw (so it stands for
 * peer authentication: the server sees porterd's OS user), TCP asks the
 * role porter_pw for a SCRAM password and trusts the superuser.
 *
 * Each test is an attack that worked before dbpolicy (or a check that the
 * legitimate path still works): a foreign client borrowing porterd's
 * socket, its .pgpass, its service file, a passfile; a password harvested
 * through host/hostaddr; a FIFO named in an ssl* keyword freezing a
 * worker; an unlisted target; control characters; temp tables and
 * set_config leaking through a pooled connection to another uid; raw bytes
 * in error texts.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"
#include "rawc.h"
#include "steal.h"
#include "tenant.h"

#define ALL_UIDS "61010,61011,61012"

static th_daemon d;
static char ci_sock[512]; /* Unix socket, superuser: what peer auth would give porterd */
static char ci_tcp[512];  /* TCP, superuser, trusted: no password asked */
static char ci_pw[512];   /* TCP, porter_pw with its password */
static char pg_dir[256];
static char pg_port[16];

/* The value of `key` in "key=value ..." text `ci`, into `out`. */
static void ci_get(const char *ci, const char *key, char *out, size_t cap)
{
	char pat[32];
	snprintf(pat, sizeof(pat), "%s=", key);
	const char *p = strstr(ci, pat);
	ck_assert_ptr_nonnull(p);
	p += strlen(pat);
	size_t n = strcspn(p, " ");
	ck_assert_uint_lt(n, cap);
	memcpy(out, p, n);
	out[n] = 0;
}

/* Starts porterd as TH_UID_DAEMON with the targets foreign clients may
 * reach: the fixture's TCP port, and `more` (NULL or a list item). */
static void start_with(const char *more, const char *workers, const char *const *more_args);

static void start(const char *more, const char *workers)
{
	start_with(more, workers, NULL);
}

/* As start, plus the NULL-terminated `more_args` (NULL for none). */
static void start_with(const char *more, const char *workers, const char *const *more_args)
{
	th_pg_file("conninfo", ci_sock, sizeof(ci_sock));
	th_pg_file("conninfo_tcp", ci_tcp, sizeof(ci_tcp));
	th_pg_file("conninfo_pw", ci_pw, sizeof(ci_pw));
	ci_get(ci_sock, "host", pg_dir, sizeof(pg_dir));
	ci_get(ci_tcp, "port", pg_port, sizeof(pg_port));
	static char targets[512];
	snprintf(targets, sizeof(targets), "127.0.0.1:%s%s%s", pg_port, more ? "," : "",
		 more ? more : "");
	const char *extra[24] = {"--allow-uid", ALL_UIDS, "--db-allow-targets", targets,
				 "--workers",   workers,  "--db-pool-size",     "1",
				 "--log-level", "debug"};
	for (size_t n = 10; more_args && *more_args && n < 23; more_args++)
		extra[n++] = *more_args;
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, extra), 0);
}

static void stop(void)
{
	int st = th_daemon_stop(&d);
	if (st != 0)
		th_daemon_dump_log(&d);
	ck_assert_int_eq(st, 0);
	th_daemon_cleanup(&d);
}

/* One database call made by a child of another uid; results come back in
 * shared memory. */
typedef struct job {
	char conninfo[700];
	char sql[300];
	int session; /* DbOpen, then the query on the session */
	int timeout_ms;
	int rc;         /* out: what the call returned */
	char text[512]; /* out: first value, or the error message */
	long long ms;   /* out: how long it took */
} job;

static int run_job(void *arg)
{
	job *j = arg;
	long long t0 = th_now_ms();
	uint64_t s = 0;
	porter_db_result *r = NULL;
	int rc = 0;
	if (j->session)
		rc = porter_db_open(j->conninfo, 0, j->timeout_ms, &s);
	if (rc == 0)
		rc = porter_db_query(s, s ? NULL : j->conninfo, j->sql, NULL, 0, 0, j->timeout_ms,
				     &r);
	j->rc = rc;
	j->ms = th_now_ms() - t0;
	const char *text = porter_last_error_message();
	/* Of several statements, the last one's result. */
	if (rc == 0 && porter_db_nresults(r) > 1)
		porter_db_select(r, porter_db_nresults(r) - 1);
	if (rc == 0 && porter_db_ntuples(r) > 0)
		text = porter_db_getvalue(r, 0, 0);
	else if (rc == 0 && porter_db_nnotices(r) > 0) /* a statement without rows */
		text = porter_db_notice_field(r, 0, PORTER_DB_DIAG_MESSAGE_PRIMARY);
	else if (r && porter_db_message(r))
		text = porter_db_message(r);
	snprintf(j->text, sizeof(j->text), "%s", text ? text : "");
	porter_db_result_free(r);
	if (s)
		porter_db_close(s, 0, 5000);
	return 0;
}

static job *jobs;

/* Runs `sql` over `conninfo` as `uid` (pooled, or on a session); the
 * result is in the returned job. */
static job *as(uid_t uid, const char *conninfo, const char *sql, int session)
{
	if (!jobs)
		jobs = th_shared_alloc(sizeof(*jobs));
	ck_assert_ptr_nonnull(jobs);
	memset(jobs, 0, sizeof(*jobs));
	snprintf(jobs->conninfo, sizeof(jobs->conninfo), "%s", conninfo);
	snprintf(jobs->sql, sizeof(jobs->sql), "%s", sql);
	jobs->session = session;
	jobs->timeout_ms = 5000;
	int rc = th_as(uid, TH_GID_PORTER, 20000, run_job, jobs);
	ck_assert_msg(rc == 0, "the client of uid %u crashed or hung", (unsigned)uid);
	return jobs;
}

#define ck_refused(j, code)                                                                        \
	ck_assert_msg((j)->rc == (code), "expected %s, got %s: %s", porter_error_name(code),       \
		      porter_error_name((j)->rc), (j)->text)

#define ck_ok(j, want)                                                                             \
	do {                                                                                       \
		ck_assert_msg((j)->rc == 0, "failed: %s: %s", porter_error_name((j)->rc),          \
			      (j)->text);                                                          \
		if (want)                                                                          \
			ck_assert_str_eq((j)->text, (const char *)(want));                         \
	} while (0)

/* Writes `text` to `name` in the daemon's HOME, owned by the daemon. */
static void plant(const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", th_daemon_home(&d), name);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	ck_assert_int_eq(chmod(path, 0600), 0);
	ck_assert_int_eq(chown(path, TH_UID_DAEMON, TH_GID_PORTER), 0);
}

START_TEST(foreign_never_gets_porterds_socket_identity)
{
	start(NULL, "2");
	/* The fixture's socket trusts porterd's OS user (peer auth would
	 * too): a foreign client naming it was the superuser. */
	ck_refused(as(TH_UID_ALICE, ci_sock, "SELECT current_user", 0), PORTER_E_DENIED);
	ck_refused(as(TH_UID_ALICE, ci_sock, "SELECT current_user", 1), PORTER_E_DENIED);
	/* Without host= libpq picks its default socket directory. */
	ck_refused(as(TH_UID_BOB, "dbname=postgres user=postgres password=x", "SELECT 1", 0),
		   PORTER_E_DENIED);
	/* A trusted TCP role without a password: porterd's network
	 * position, not the client's credentials. */
	ck_refused(as(TH_UID_ALICE, ci_tcp, "SELECT current_user", 0), PORTER_E_DENIED);
	/* The legitimate way keeps working, pooled and on a session. */
	ck_ok(as(TH_UID_ALICE, ci_pw, "SELECT current_user", 0), "porter_pw");
	ck_ok(as(TH_UID_BOB, ci_pw, "SELECT current_user", 1), "porter_pw");
	/* porterd's own uid keeps today's freedom. */
	ck_ok(as(TH_UID_DAEMON, ci_sock, "SELECT current_user", 0), "postgres");
	ck_ok(as(TH_UID_DAEMON, ci_tcp, "SELECT current_user", 1), "postgres");
	stop();
}
END_TEST

START_TEST(unlisted_targets_refused_before_connecting)
{
	start(NULL, "2");
	char ci[600];
	/* Another port of a listed host: a port scan by error message. */
	snprintf(ci, sizeof(ci), "host=127.0.0.1 port=1 dbname=postgres user=u password=p");
	job *j = as(TH_UID_ALICE, ci, "SELECT 1", 0);
	ck_refused(j, PORTER_E_DENIED);
	ck_assert(strstr(j->text, "db-allow-targets") != NULL);
	snprintf(ci, sizeof(ci), "host=127.0.0.2 port=%s dbname=postgres user=u password=p",
		 pg_port);
	ck_refused(as(TH_UID_BOB, ci, "SELECT 1", 1), PORTER_E_DENIED);
	/* Localhost by name is another target than the address listed. */
	snprintf(ci, sizeof(ci), "host=localhost port=%s dbname=postgres user=u password=p",
		 pg_port);
	ck_refused(as(TH_UID_BOB, ci, "SELECT 1", 0), PORTER_E_DENIED);
	stop();
	/* A socket directory is reachable only when listed as such (and
	 * then only by a password the server checks: next test). */
	start(pg_dir, "2");
	snprintf(ci, sizeof(ci),
		 "host=%s port=%s dbname=postgres user=porter_pw password=porter-secret", pg_dir,
		 pg_port);
	ck_ok(as(TH_UID_ALICE, ci, "SELECT current_user", 0), "porter_pw");
	stop();
}
END_TEST

/*
 * A password the client brings but the server never asks for: the server
 * let the connection in on porterd's identity (trust for its address or
 * its socket directory, peer, ident, Kerberos), not on the client's. Before
 * porterd checked that the password was used, "user=postgres
 * password=anything" made a foreign client the superuser over a listed
 * target that trusts porterd.
 */
START_TEST(password_never_asked_for_is_refused)
{
	start(pg_dir, "2");
	char ci[700];
	snprintf(ci, sizeof(ci), "%s password=anything", ci_tcp);
	job *j = as(TH_UID_ALICE, ci, "SELECT current_user", 0);
	ck_refused(j, PORTER_E_DENIED);
	ck_assert_msg(strstr(j->text, "password") != NULL, "%s", j->text);
	ck_refused(as(TH_UID_BOB, ci, "SELECT current_user", 1), PORTER_E_DENIED);
	/* The listed socket directory: the server sees porterd's OS user. */
	snprintf(ci, sizeof(ci), "%s password=anything", ci_sock);
	ck_refused(as(TH_UID_ALICE, ci, "SELECT current_user", 0), PORTER_E_DENIED);
	ck_refused(as(TH_UID_BOB, ci, "SELECT current_user", 1), PORTER_E_DENIED);
	/* A password the server checked still works, on both targets... */
	ck_ok(as(TH_UID_ALICE, ci_pw, "SELECT current_user", 0), "porter_pw");
	snprintf(ci, sizeof(ci),
		 "host=%s port=%s dbname=postgres user=porter_pw password=porter-secret", pg_dir,
		 pg_port);
	ck_ok(as(TH_UID_BOB, ci, "SELECT current_user", 1), "porter_pw");
	/* ...and porterd's own uid keeps its freedom. */
	snprintf(ci, sizeof(ci), "%s password=anything", ci_tcp);
	ck_ok(as(TH_UID_DAEMON, ci, "SELECT current_user", 0), "postgres");
	ck_ok(as(TH_UID_DAEMON, ci_sock, "SELECT current_user", 1), "postgres");
	stop();
}
END_TEST

/* ---- sessions: their owner's only ---- */

/* Alice's session (steal.h): she opens it, bob queries and closes it
 * with her client instance, then she queries it again. */
static Porter__V1__DbOpen s_open = PORTER__V1__DB_OPEN__INIT;
static Porter__V1__DbQuery s_query = PORTER__V1__DB_QUERY__INIT;
static Porter__V1__DbClose s_close = PORTER__V1__DB_CLOSE__INIT;

static uint64_t session_of(const Porter__V1__Response *r)
{
	return r->body_case == PORTER__V1__RESPONSE__BODY_DB_OPEN ? r->db_open->session : 0;
}

static void aim_at_session(uint64_t id)
{
	s_query.session = s_close.session = id;
}

/* Bob knows alice's session id (ids are unguessable, but say he learnt
 * it) and her client instance: his queries on it and his closes are
 * refused from either worker, and the session is still hers. (This held
 * when tried: a session matches uid and client instance.) */
START_TEST(sessions_stay_with_their_owner)
{
	start(NULL, "2");
	s_open.conninfo = (char *)ci_pw;
	s_query.sql = "SELECT 1";
	Porter__V1__Request open = PORTER__V1__REQUEST__INIT, again = PORTER__V1__REQUEST__INIT;
	open.body_case = PORTER__V1__REQUEST__BODY_DB_OPEN;
	open.db_open = &s_open;
	again.body_case = PORTER__V1__REQUEST__BODY_DB_QUERY;
	again.db_query = &s_query;
	Porter__V1__Request tries[2] = {PORTER__V1__REQUEST__INIT, PORTER__V1__REQUEST__INIT};
	tries[0] = again;
	tries[1].body_case = PORTER__V1__REQUEST__BODY_DB_CLOSE;
	tries[1].db_close = &s_close;
	th_steal *s = th_steal_new();
	*s = (th_steal){.open = &open,
			.again = &again,
			.tries = tries,
			.n_tries = 2,
			.opened_id = session_of,
			.aim = aim_at_session,
			.timeout_ms = 30000};
	th_steal_refused(s, "session");
	stop();
}
END_TEST

START_TEST(daemon_files_never_lend_credentials)
{
	start(NULL, "2");
	char line[600], ci[700];
	snprintf(line, sizeof(line), "127.0.0.1:%s:*:porter_pw:porter-secret\n", pg_port);
	plant(".pgpass", line);
	snprintf(line, sizeof(line), "[svc]\nhost=%s\nport=%s\nuser=postgres\ndbname=postgres\n",
		 pg_dir, pg_port);
	plant(".pg_service.conf", line);
	snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%s dbname=postgres user=porter_pw", pg_port);
	/* .pgpass is not read at all: porterd gives libpq a passfile that
	 * cannot exist, so even its own uid must bring the password... */
	job *j = as(TH_UID_DAEMON, ci, "SELECT current_user", 0);
	ck_refused(j, PORTER_E_DB_CONNECT);
	ck_assert_msg(strstr(j->text, "password") != NULL, "%s", j->text);
	/* ...and a foreign client without a password is refused outright. */
	ck_refused(as(TH_UID_ALICE, ci, "SELECT current_user", 0), PORTER_E_DENIED);
	/* passfile= and service= name files: nobody may. */
	snprintf(ci, sizeof(ci),
		 "host=127.0.0.1 port=%s dbname=postgres user=porter_pw passfile=%s/.pgpass",
		 pg_port, th_daemon_home(&d));
	ck_refused(as(TH_UID_ALICE, ci, "SELECT 1", 0), PORTER_E_DENIED);
	ck_refused(as(TH_UID_DAEMON, ci, "SELECT 1", 0), PORTER_E_DENIED);
	ck_refused(as(TH_UID_BOB, "service=svc", "SELECT 1", 0), PORTER_E_DENIED);
	ck_refused(as(TH_UID_DAEMON, "service=svc", "SELECT 1", 1), PORTER_E_DENIED);
	stop();
}
END_TEST

/* ---- a fake PostgreSQL server on loopback ---- */

typedef struct fake_pg {
	int lfd;
	int port;
	pthread_t thread;
	int accept_tls;     /* answer 'S' to SSLRequest, then hold the connection */
	char password[128]; /* a password message received, if any */
	int clients;
} fake_pg;

static int read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 10000) <= 0)
			return -1;
		ssize_t k = read(fd, (char *)buf + got, n - got);
		if (k <= 0)
			return -1;
		got += (size_t)k;
	}
	return 0;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* One client: SSLRequest answered 'S' (then the connection is held until
 * the peer goes) or 'N'; a startup packet answered with a request for a
 * cleartext password, whatever arrives is kept. */
static void fake_client(fake_pg *f, int fd)
{
	unsigned char hdr[8], buf[1024];
	for (;;) {
		if (read_full(fd, hdr, 8) < 0)
			return;
		uint32_t len = be32(hdr), code = be32(hdr + 4);
		if (len == 8 && code == 80877103) { /* SSLRequest */
			if (f->accept_tls) {
				(void)!write(fd, "S", 1);
				/* libpq now reads its certificate files; the
				 * TLS handshake never comes back. */
				struct pollfd p = {fd, POLLIN, 0};
				poll(&p, 1, 15000);
				return;
			}
			(void)!write(fd, "N", 1);
			continue;
		}
		if (len < 8 || len > sizeof(buf) || read_full(fd, buf, len - 8) < 0)
			return;
		static const unsigned char ask[] = {'R', 0, 0, 0, 8, 0, 0, 0, 3};
		(void)!write(fd, ask, sizeof(ask));
		unsigned char t;
		if (read_full(fd, &t, 1) < 0 || t != 'p' || read_full(fd, hdr, 4) < 0)
			return;
		len = be32(hdr);
		if (len < 4 || len - 4 >= sizeof(f->password) ||
		    read_full(fd, f->password, len - 4) < 0)
			return;
		return;
	}
}

static void *fake_run(void *arg)
{
	fake_pg *f = arg;
	for (;;) {
		int fd = accept(f->lfd, NULL, NULL);
		if (fd < 0)
			return NULL;
		f->clients++;
		fake_client(f, fd);
		close(fd);
	}
}

static void fake_start(fake_pg *f, int accept_tls)
{
	memset(f, 0, sizeof(*f));
	f->accept_tls = accept_tls;
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(f->lfd, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	ck_assert_int_eq(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(f->lfd, 16), 0);
	ck_assert_int_eq(getsockname(f->lfd, (struct sockaddr *)&a, &al), 0);
	f->port = ntohs(a.sin_port);
	ck_assert_int_eq(pthread_create(&f->thread, NULL, fake_run, f), 0);
}

static void fake_stop(fake_pg *f)
{
	shutdown(f->lfd, SHUT_RDWR);
	close(f->lfd);
	pthread_join(f->thread, NULL);
}

START_TEST(hostaddr_cannot_harvest_a_stored_password)
{
	fake_pg f;
	fake_start(&f, 0);
	char listed[64];
	snprintf(listed, sizeof(listed), "127.0.0.1:%d", f.port);
	start(listed, "2");
	char line[300], ci[600];
	/* porterd's .pgpass holds a password for db.internal.test... */
	snprintf(line, sizeof(line), "db.internal.test:%d:*:porter_pw:porter-secret\n", f.port);
	plant(".pgpass", line);
	/* ...and the conninfo names that host while connecting to a
	 * listener that asks for a cleartext password. */
	snprintf(ci, sizeof(ci),
		 "host=db.internal.test hostaddr=127.0.0.1 port=%d dbname=x user=porter_pw",
		 f.port);
	job *j = as(TH_UID_DAEMON, ci, "SELECT 1", 0);
	ck_refused(j, PORTER_E_DB_CONNECT);
	ck_assert_int_ge(f.clients, 1); /* it did connect: libpq had nothing to send */
	ck_assert_msg(strstr(f.password, "porter-secret") == NULL, "harvested: %s", f.password);
	/* A foreign client must bring its own password, so there is none of
	 * porterd's to send anyway. */
	ck_refused(as(TH_UID_ALICE, ci, "SELECT 1", 0), PORTER_E_DENIED);
	ck_assert_msg(strstr(f.password, "porter-secret") == NULL, "harvested: %s", f.password);
	stop();
	fake_stop(&f);
}
END_TEST

/* A bystander's pings while a worker would be frozen: 0 when all were
 * answered within 1 s each, whatever the machine's load. */
static int bystander(void *arg)
{
	long long *worst = arg;
	for (int i = 0; i < 20; i++) {
		long long t0 = th_now_ms();
		if (porter_ping("x", 1, 0, 3000) != 0)
			return 1;
		long long dt = th_now_ms() - t0;
		if (dt > *worst)
			*worst = dt;
	}
	return *worst < 1000 ? 0 : 2;
}

START_TEST(ssl_file_keywords_never_reach_libpq)
{
	fake_pg f;
	fake_start(&f, 1);
	char listed[64];
	snprintf(listed, sizeof(listed), "127.0.0.1:%d", f.port);
	/* One worker: a frozen loop would freeze every client. */
	start(listed, "1");
	char fifo[300];
	snprintf(fifo, sizeof(fifo), "%s/fifo", d.dir);
	ck_assert_int_eq(mkfifo(fifo, 0666), 0);
	ck_assert_int_eq(chmod(fifo, 0666), 0);
	static const char *const kws[] = {"sslrootcert", "sslcert", "sslkey", "sslcrl",
					  "sslcrldir"};
	for (size_t i = 0; i < sizeof(kws) / sizeof(kws[0]); i++) {
		char ci[600];
		snprintf(ci, sizeof(ci),
			 "host=127.0.0.1 port=%d dbname=x user=u password=p sslmode=require %s=%s",
			 f.port, kws[i], fifo);
		job *j = as(i % 2 ? TH_UID_DAEMON : TH_UID_ALICE, ci, "SELECT 1", (int)(i % 2));
		ck_refused(j, PORTER_E_DENIED);
		ck_assert_msg(j->ms < 2000, "%s refused after %lld ms", kws[i], j->ms);
	}
	/* Unreadable files are refused the same way: libpq 15's message for
	 * them carried heap bytes. */
	char ci[600];
	snprintf(ci, sizeof(ci),
		 "host=127.0.0.1 port=%d dbname=x user=u password=p sslmode=require "
		 "sslrootcert=/etc/shadow",
		 f.port);
	ck_refused(as(TH_UID_BOB, ci, "SELECT 1", 0), PORTER_E_DENIED);
	long long *worst = th_shared_alloc(sizeof(*worst));
	ck_assert_ptr_nonnull(worst);
	ck_assert_int_eq(th_as(TH_UID_BOB, TH_GID_PORTER, 30000, bystander, worst), 0);
	/* TLS to the listener itself is attempted (it accepts TLS, then holds
	 * the line) and ends by the client's deadline, loop alive. */
	snprintf(ci, sizeof(ci),
		 "host=127.0.0.1 port=%d dbname=x user=u password=p sslmode=require", f.port);
	job *j = as(TH_UID_ALICE, ci, "SELECT 1", 0);
	ck_assert_int_ne(j->rc, 0);
	ck_assert_int_eq(th_as(TH_UID_BOB, TH_GID_PORTER, 30000, bystander, worst), 0);
	stop();
	fake_stop(&f);
}
END_TEST

/*
 * libpq verifies every host of a conninfo against the one sslrootcert it
 * is given, and porterd gave it the first host's db-tls-root-cert file: a
 * later host of the list was verified against another target's CA (one
 * whose issuer would vouch for it, say a public CA's bundle beside a
 * private one). Hosts with different files are refused before anything
 * connects; hosts sharing one still connect.
 */
START_TEST(hosts_with_different_root_certs_never_share_one)
{
	fake_pg f;
	fake_start(&f, 0);
	char listed[128], certs[600], ci[600];
	snprintf(listed, sizeof(listed), "127.0.0.1:%d,a.test:%d,a2.test:%d,b.test:%d", f.port,
		 f.port, f.port, f.port);
	snprintf(certs, sizeof(certs), "a.test:*=%s/a.pem,a2.test:*=%s/a.pem,b.test:*=%s/b.pem",
		 d.dir, d.dir, d.dir);
	const char *more[] = {"--db-tls-root-cert", certs, NULL};
	start_with(listed, "1", more);
	static const char *const lists[] = {"a.test,b.test", "b.test,a.test"};
	for (size_t i = 0; i < 2; i++) {
		snprintf(ci, sizeof(ci),
			 "host=%s hostaddr=127.0.0.1,127.0.0.1 port=%d dbname=x user=u password=p "
			 "sslmode=prefer",
			 lists[i], f.port);
		job *j = as(TH_UID_ALICE, ci, "SELECT 1", (int)i);
		ck_refused(j, PORTER_E_INVAL);
		ck_assert_msg(strstr(j->text, "db-tls-root-cert") != NULL, "%s", j->text);
		ck_assert_msg(f.clients == 0, "%s: porterd connected with one CA for both",
			      lists[i]);
	}
	/* The same file for both: it connects (the fake server then fails
	 * the login). */
	snprintf(ci, sizeof(ci),
		 "host=a.test,a2.test hostaddr=127.0.0.1,127.0.0.1 port=%d dbname=x user=u "
		 "password=p sslmode=prefer",
		 f.port);
	ck_refused(as(TH_UID_ALICE, ci, "SELECT 1", 0), PORTER_E_DB_CONNECT);
	ck_assert_int_ge(f.clients, 1);
	stop();
	fake_stop(&f);
}
END_TEST

START_TEST(control_characters_refused)
{
	start(NULL, "2");
	char ci[700];
	snprintf(ci, sizeof(ci), "%s application_name='app\r\nFORGED log line'", ci_pw);
	ck_refused(as(TH_UID_ALICE, ci, "SELECT 1", 0), PORTER_E_INVAL);
	snprintf(ci, sizeof(ci), "%s application_name='app\x1b[2J'", ci_sock);
	ck_refused(as(TH_UID_DAEMON, ci, "SELECT 1", 1), PORTER_E_INVAL);
	/* Error texts reach the client as clean text. */
	job *j = as(TH_UID_ALICE, ci_pw,
		    "DO $$ BEGIN RAISE EXCEPTION E'bad\\x01\\x1b[31mred\\x7f'; END $$", 0);
	ck_refused(j, PORTER_E_DB);
	ck_assert_msg(strstr(j->text, "bad") != NULL, "%s", j->text);
	for (const unsigned char *p = (const unsigned char *)j->text; *p; p++)
		ck_assert_msg(*p >= 0x20 && *p != 0x7f, "raw byte 0x%02x in \"%s\"", *p, j->text);
	/* A server's notices go back to the client that caused them, with
	 * its result: libpq's default printed them raw to stderr (porterd's
	 * log), where a newline in them started a forged line. */
	j = as(TH_UID_ALICE, ci_pw,
	       "DO $$ BEGIN RAISE WARNING E'x\\nFORGED-LINE porterd: fake\\x01'; END $$", 0);
	ck_ok(j, NULL);
	ck_assert_str_eq(j->text, "x\nFORGED-LINE porterd: fake\\x01");
	FILE *f = fopen(d.log, "r");
	ck_assert_ptr_nonnull(f);
	char line[2048];
	while (fgets(line, sizeof(line), f))
		ck_assert_msg(strncmp(line, "FORGED-LINE", 11) != 0, "forged log line: %s", line);
	fclose(f);
	stop();
}
END_TEST

START_TEST(pooled_state_never_crosses_uids)
{
	/* One worker, one pooled connection per pool: before pools were
	 * keyed by uid, Bob's query ran on the connection Alice had used. */
	start(NULL, "1");
	ck_ok(as(TH_UID_ALICE, ci_pw,
		 "CREATE TEMP TABLE users AS SELECT 'alice-secret'::text AS name", 0),
	      NULL);
	ck_ok(as(TH_UID_ALICE, ci_pw, "SELECT set_config('search_path', 'alice_was_here', false)",
		 0),
	      "alice_was_here");
	job *j = as(TH_UID_BOB, ci_pw, "SELECT name FROM users", 0);
	ck_assert_msg(j->rc == PORTER_E_DB, "Bob read Alice's temp table: %s", j->text);
	j = as(TH_UID_BOB, ci_pw, "SELECT current_setting('search_path')", 0);
	ck_ok(j, NULL);
	ck_assert_msg(strstr(j->text, "alice") == NULL, "Bob sees Alice's search_path: %s",
		      j->text);
	stop();
}
END_TEST

START_TEST(pooled_state_never_crosses_processes)
{
	/* The same uid, another process (each `as` is a new client
	 * instance): one pooled connection, reset in between. */
	start(NULL, "1");
	ck_ok(as(TH_UID_ALICE, ci_pw, "CREATE TEMP TABLE users AS SELECT 'first'::text AS name", 0),
	      NULL);
	/* Pipelined (a single SELECT): the reset runs ahead of it. */
	job *j = as(TH_UID_ALICE, ci_pw, "SELECT name FROM users", 0);
	ck_assert_msg(j->rc == PORTER_E_DB, "temp table survived: %s", j->text);
	ck_ok(as(TH_UID_ALICE, ci_pw,
		 "SELECT set_config('search_path', 'first_was_here', false) || "
		 "pg_advisory_lock(42)::text",
		 0),
	      "first_was_here");
	j = as(TH_UID_ALICE, ci_pw,
	       "SELECT current_setting('search_path') || ' ' || (SELECT count(*) FROM pg_locks "
	       "WHERE locktype = 'advisory' AND pid = pg_backend_pid())",
	       0);
	ck_ok(j, NULL);
	ck_assert_msg(strstr(j->text, "first") == NULL && strstr(j->text, " 0") != NULL,
		      "state survived: %s", j->text);
	/* Not pipelined (two statements): DISCARD ALL first. */
	ck_ok(as(TH_UID_ALICE, ci_pw,
		 "CREATE TEMP TABLE t2 AS SELECT 1 AS x; SELECT set_config('search_path', "
		 "'again', false)",
		 0),
	      NULL);
	j = as(TH_UID_ALICE, ci_pw, "SELECT 1; SELECT current_setting('search_path')", 0);
	ck_ok(j, NULL);
	ck_assert_msg(strstr(j->text, "again") == NULL, "setting survived: %s", j->text);
	ck_ok(as(TH_UID_ALICE, ci_pw,
		 "CREATE TEMP TABLE t3 AS SELECT 1 AS x; SELECT set_config('search_path', "
		 "'again', false)",
		 0),
	      "again");
	j = as(TH_UID_ALICE, ci_pw, "SELECT x FROM t3; SELECT 1", 0);
	ck_assert_msg(j->rc == PORTER_E_DB, "temp table survived: %s", j->text);
	stop();
}
END_TEST

/* Opens sessions until refused and leaves them open (they outlive the
 * process for db-session-grace); then a pooled query of a new pool. The
 * result is a count of sessions, then the two refusals' codes. */
typedef struct hog {
	char conninfo[600];
	int opened, refused, pooled;
	char text[256];
} hog;

/*
 * The reset between client processes of a uid (sent ahead of a pipelined
 * query) was RESET ALL and the DISCARDs: but RESET ALL leaves the role
 * (SET ROLE, or set_config('role') inside a SELECT) and the session
 * authorization alone, and nothing closed a LISTEN made inside a
 * function, so the next process's queries ran as the previous one's role
 * and heard its channels. Both paths (pipelined, and DISCARD ALL before a
 * query outside a pipeline) now forget them.
 */
START_TEST(pooled_role_and_listens_never_cross_processes)
{
	start(NULL, "1");
	ck_ok(as(TH_UID_DAEMON, ci_tcp,
		 "DROP ROLE IF EXISTS porter_other; CREATE ROLE porter_other; "
		 "GRANT porter_other TO porter_pw; "
		 "CREATE OR REPLACE FUNCTION porter_listen() RETURNS int LANGUAGE plpgsql AS "
		 "'BEGIN LISTEN porter_ch; RETURN 1; END'",
		 0),
	      NULL);
	static const char *const check[] = {
		/* pipelined: a single SELECT */
		"SELECT current_user || ' ' || (SELECT count(*) FROM pg_listening_channels()) || "
		"' ' || pg_backend_pid()",
		/* outside a pipeline: two statements */
		"SELECT 1; SELECT current_user || ' ' || (SELECT count(*) FROM "
		"pg_listening_channels()) || ' ' || pg_backend_pid()"};
	/* Known fast after a few runs: then pipelined, with the reset ahead. */
	for (int k = 0; k < 4; k++)
		ck_ok(as(TH_UID_ALICE, ci_pw, check[0], 0), NULL);
	for (int i = 0; i < 2; i++) {
		job *j = as(TH_UID_ALICE, ci_pw,
			    "SELECT set_config('role', 'porter_other', false) || ' ' || "
			    "porter_listen() || ' ' || pg_backend_pid()",
			    0);
		ck_ok(j, NULL);
		char first[512], pid[32];
		memcpy(first, j->text, sizeof(first));
		ck_assert_int_eq(sscanf(first, "porter_other 1 %31s", pid), 1);
		j = as(TH_UID_ALICE, ci_pw, check[i], 0);
		ck_ok(j, NULL);
		char want[64];
		snprintf(want, sizeof(want), "porter_pw 0 %s", pid);
		ck_assert_msg(strcmp(j->text, want) == 0,
			      "another process of alice's on backend %s (%s): %s", pid,
			      i ? "DISCARD ALL" : "pipelined reset", j->text);
	}
	stop();
}
END_TEST

static int hog_sessions(void *arg)
{
	hog *h = arg;
	for (int i = 0; i < 10; i++) {
		uint64_t s = 0;
		int rc = porter_db_open(h->conninfo, 0, 10000, &s);
		if (rc != 0) {
			h->refused = rc;
			snprintf(h->text, sizeof(h->text), "%s", porter_last_error_message());
			break;
		}
		h->opened++;
	}
	char ci[700];
	snprintf(ci, sizeof(ci), "%s application_name=another_pool", h->conninfo);
	porter_db_result *r = NULL;
	h->pooled = porter_db_query(0, ci, "SELECT 1", NULL, 0, 0, 5000, &r);
	porter_db_result_free(r);
	return 0;
}

START_TEST(one_uid_cannot_take_every_server_slot)
{
	const char *extra[] = {"--db-max-connections-per-uid", "4", "--db-session-grace", "30000",
			       NULL};
	start_with(NULL, "2", extra);
	hog *h = th_shared_alloc(sizeof(*h));
	ck_assert_ptr_nonnull(h);
	snprintf(h->conninfo, sizeof(h->conninfo), "%s", ci_pw);
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 30000, hog_sessions, h), 0);
	ck_assert_msg(h->opened == 4, "opened %d sessions", h->opened);
	ck_assert_int_eq(h->refused, PORTER_E_BUSY);
	ck_assert_msg(strstr(h->text, "db-max-connections-per-uid") != NULL, "%s", h->text);
	ck_assert_int_eq(h->pooled, PORTER_E_BUSY);
	/* Alice's sessions are still open (grace); Bob is not affected. */
	ck_ok(as(TH_UID_BOB, ci_pw, "SELECT current_user", 1), "porter_pw");
	ck_ok(as(TH_UID_BOB, ci_pw, "SELECT current_user", 0), "porter_pw");
	stop();
}
END_TEST

/* ---- reclaimed cursors are reported to their owner, whatever other uids do ---- */

typedef struct reclaim_run {
	char conninfo[700];
	volatile int alice_reclaimed, bob_done;
	int alice_open, alice_read;
	char alice_text[256];
	int bob_reclaims;
} reclaim_run;

#define BIG_SERIES "SELECT g FROM generate_series(1, 1000000) g"

/* Alice leaves a pooled cursor unread until it is reclaimed, waits for
 * Bob's flood, then reads it. */
static int alice_reads_late(void *arg)
{
	reclaim_run *x = arg;
	porter_db_cursor *cur = NULL;
	x->alice_open =
		porter_db_cursor_open(0, x->conninfo, BIG_SERIES, NULL, 0, 10, 0, 0, 10000, &cur);
	if (x->alice_open != 0)
		return 1;
	porter_db_result *chunk = NULL;
	porter_db_cursor_read(cur, 0, 5000, &chunk); /* the chunk that came with the open */
	porter_db_result_free(chunk);
	chunk = NULL;
	porter_uid_usage u = PORTER_UID_USAGE_INIT;
	for (int i = 0; i < 300 && th_own_usage(&u) == 0 && u.streams; i++)
		usleep(20 * 1000);
	x->alice_reclaimed = 1;
	th_wait_flag(&x->bob_done, 60000);
	x->alice_read = porter_db_cursor_read(cur, 0, 5000, &chunk);
	snprintf(x->alice_text, sizeof(x->alice_text), "%s", porter_last_error_message());
	porter_db_result_free(chunk);
	porter_db_cursor_free(cur);
	return 0;
}

/* Bob has 80 cursors of his reclaimed, 16 at a time. */
static int bob_floods_reclaims(void *arg)
{
	reclaim_run *x = arg;
	th_wait_flag(&x->alice_reclaimed, 60000);
	for (int round = 0; round < 5; round++) {
		porter_db_cursor *cur[16] = {NULL};
		for (int i = 0; i < 16; i++)
			if (porter_db_cursor_open(0, x->conninfo, BIG_SERIES, NULL, 0, 10, 0, 0,
						  10000, &cur[i]) == 0)
				x->bob_reclaims++;
		porter_uid_usage u = PORTER_UID_USAGE_INIT;
		for (int i = 0; i < 300 && th_own_usage(&u) == 0 && u.streams; i++)
			usleep(20 * 1000);
		for (int i = 0; i < 16; i++)
			porter_db_cursor_free(cur[i]);
	}
	x->bob_done = 1;
	return 0;
}

static void *alice_thread(void *arg)
{
	return (void *)(long)th_as(TH_UID_ALICE, TH_GID_PORTER, 90000, alice_reads_late, arg);
}

START_TEST(reclaimed_cursor_reported_whatever_others_do)
{
	const char *more[] = {"--db-pool-size", "20", "--db-stream-idle", "300", NULL};
	start_with(NULL, "1", more);
	reclaim_run *x = th_shared_alloc(sizeof(*x));
	ck_assert_ptr_nonnull(x);
	snprintf(x->conninfo, sizeof(x->conninfo), "%s", ci_pw);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, alice_thread, x), 0);
	int bob = th_as(TH_UID_BOB, TH_GID_PORTER, 90000, bob_floods_reclaims, x);
	void *alice;
	pthread_join(t, &alice);
	ck_assert_int_eq(bob, 0);
	ck_assert_int_eq((long)alice, 0);
	ck_assert_int_eq(x->alice_open, 0);
	ck_assert_msg(x->bob_reclaims > 64, "bob had %d cursors", x->bob_reclaims);
	/* More reclaims than the worker remembers, all Bob's: Alice still
	 * hears that hers was reclaimed, not that it never existed. */
	ck_assert_msg(x->alice_read == PORTER_E_TIMEOUT && strstr(x->alice_text, "reclaimed"),
		      "alice's read: %s: %s", porter_error_name(x->alice_read), x->alice_text);
	stop();
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {foreign_never_gets_porterds_socket_identity,
				unlisted_targets_refused_before_connecting,
				password_never_asked_for_is_refused,
				sessions_stay_with_their_owner,
				daemon_files_never_lend_credentials,
				hostaddr_cannot_harvest_a_stored_password,
				ssl_file_keywords_never_reach_libpq,
				hosts_with_different_root_certs_never_share_one,
				control_characters_refused,
				pooled_state_never_crosses_uids,
				pooled_state_never_crosses_processes,
				pooled_role_and_listens_never_cross_processes,
				one_uid_cannot_take_every_server_slot,
				reclaimed_cursor_reported_whatever_others_do,
				NULL};
	return th_suite("trust_db", "trust_db", 120, tests);
}

TH_MAIN_ROOT(suite)
