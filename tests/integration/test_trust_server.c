/*
 * Trust boundary, server side (issue 15, items 5 and 6): porterd runs as its
 * own unprivileged uid, clients as two others (tenant.h).
 *
 * - A reload that drops a uid closes that uid's open connections with a
 *   clear error and refuses its new ones, while another uid's connection
 *   keeps working.
 * - Without socket activation, allow-uid and allow-gid open porterd's own
 *   socket (mode, group, and the directory it creates) to exactly the
 *   peers that need it; the unlisted are refused by the kernel or at
 *   accept.
 * - Text a client sends cannot forge a line in porterd's log.
 * - Stats and metrics show no client another uid's activity (metrics only
 *   when the administrator sets metrics-uid-usage).
 * - A cancel never stops another uid's request, even naming its client
 *   instance.
 * - A client never talks to another user's daemon at its default socket
 *   path (/tmp/porter-$UID, which anyone can create first), nor at a
 *   named path in a directory others can write (a stale name in /tmp).
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"
#include "rawc.h"
#include "tenant.h"

#define TH_UID_STRANGER 61013 /* in no allowed group, on no list */
#define TH_GID_STRANGER 61013

static th_daemon d;
static char conf[64];

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

static void setup(void)
{
	snprintf(conf, sizeof(conf), "/tmp/porter-trust-%d.conf", (int)getpid());
}

static void teardown(void)
{
	unlink(conf);
}

static int file_has(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	int found = 0;
	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

/* Waits up to 5 s for `needle` in the daemon's log. */
static int wait_log(const char *needle)
{
	long long until = th_now_ms() + 5000;
	while (th_now_ms() < until) {
		if (file_has(d.log, needle))
			return 1;
		usleep(10000);
	}
	return 0;
}

/* Counts lines of the daemon's log that contain `needle`. */
static int log_count(const char *needle)
{
	FILE *f = fopen(d.log, "r");
	char line[4096];
	int n = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

/* Sends SIGHUP and waits for the reload to be logged (the n-th time). */
static void reload(int nth)
{
	ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
	long long until = th_now_ms() + 5000;
	while (log_count("configuration reloaded") < nth && th_now_ms() < until)
		usleep(10000);
	ck_assert_int_ge(log_count("configuration reloaded"), nth);
}

/* ---- reload revocation ---- */

/* What one client saw, in memory shared with the test. */
typedef struct hold {
	volatile int ready; /* the first call went through on its connection */
	volatile int go;    /* the reload is done */
	int before, after, fresh;
} hold;

/* A client holding its connection open across the reload: a call before,
 * one on the same connection after, and one on a new connection. */
static int hold_across_reload(void *arg)
{
	hold *h = arg;
	h->before = porter_ping("a", 1, 0, 3000);
	h->ready = 1;
	if (!th_wait_flag(&h->go, 10000))
		return 2;
	h->after = porter_ping("b", 1, 0, 3000);
	porter_thread_disconnect();
	h->fresh = porter_ping("c", 1, 0, 3000);
	return 0;
}

typedef struct as_thread {
	uid_t uid;
	hold *h;
	int rc;
} as_thread;

static void *run_as(void *arg)
{
	as_thread *t = arg;
	t->rc = th_as(t->uid, TH_GID_PORTER, 20000, hold_across_reload, t->h);
	return NULL;
}

/*
 * Alice and bob each hold a connection (one call made) while the
 * configuration is rewritten to `conf_after`, which lists alice alone, and
 * reloaded. Alice keeps working, on her connection and on a new one; bob's
 * open connection is closed with the reason, and a new one is refused.
 */
static void reload_revokes_bob(const char *conf_after)
{
	hold *h = th_shared_alloc(2 * sizeof(hold));
	ck_assert_ptr_nonnull(h);
	as_thread alice = {TH_UID_ALICE, &h[0], -1}, bob = {TH_UID_BOB, &h[1], -1};
	pthread_t ta, tb;
	ck_assert_int_eq(pthread_create(&ta, NULL, run_as, &alice), 0);
	ck_assert_int_eq(pthread_create(&tb, NULL, run_as, &bob), 0);
	ck_assert(th_wait_flag(&h[0].ready, 10000) && th_wait_flag(&h[1].ready, 10000));
	write_conf(conf_after);
	reload(1);
	h[0].go = h[1].go = 1;
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	ck_assert_int_eq(alice.rc, 0);
	ck_assert_int_eq(bob.rc, 0);
	ck_assert_int_eq(h[0].before, 0);
	ck_assert_int_eq(h[0].after, 0);
	ck_assert_int_eq(h[0].fresh, 0);
	ck_assert_int_eq(h[1].before, 0);
	ck_assert_int_eq(h[1].after, PORTER_E_DENIED);
	ck_assert_int_eq(h[1].fresh, PORTER_E_DENIED);
}

START_TEST(reload_revokes_open_connections)
{
	write_conf("allow-uid = 61011,61012\nlog-level = info\n");
	const char *args[] = {"--config", conf, "--workers", "2", NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, args), 0);
	/* Bob is taken off the list while both hold a connection. */
	reload_revokes_bob("allow-uid = 61011\nlog-level = info\n");
	ck_assert(wait_log("uid 61012 is no longer allowed to use this daemon"));
	ck_assert_int_eq(log_count("uid 61011 is no longer allowed"), 0);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}
END_TEST

START_TEST(reload_revokes_by_group)
{
	/* Admitted as members of the group; the group is then dropped and
	 * only alice is listed by uid. */
	write_conf("allow-gid = 61020\n");
	const char *args[] = {"--config", conf, NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, args), 0);
	reload_revokes_bob("allow-uid = 61011\n");
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}
END_TEST

/* ---- porterd's own socket: mode, group, directory ---- */

static int ping_rc(void *arg)
{
	int *rc = arg;
	*rc = porter_ping("x", 1, 0, 3000);
	return 0;
}

/* porter_ping's result for `uid`/`gid`, run in a child. */
static int ping_as(uid_t uid, gid_t gid)
{
	int *rc = th_shared_alloc(sizeof(int));
	ck_assert_ptr_nonnull(rc);
	ck_assert_int_eq(th_as(uid, gid, 10000, ping_rc, rc), 0);
	return *rc;
}

static mode_t mode_of(const char *path, gid_t *group)
{
	struct stat st;
	ck_assert_int_eq(lstat(path, &st), 0);
	if (group)
		*group = st.st_gid;
	return st.st_mode & 07777;
}

/* The directory porterd made for its socket. */
static const char *sock_dir(void)
{
	static char dir[sizeof(d.dir) + 8];
	snprintf(dir, sizeof(dir), "%s/run", d.dir);
	return dir;
}

START_TEST(socket_open_to_a_group)
{
	/* The socket and the directory porterd made for it are opened to
	 * the group, no further. */
	const char *args[] = {"--allow-gid", "61020", NULL};
	ck_assert_int_eq(th_daemon_start_as_own_socket(&d, TH_UID_DAEMON, TH_GID_PORTER, args), 0);
	gid_t g;
	ck_assert_uint_eq(mode_of(d.socket, &g), 0660);
	ck_assert_uint_eq(g, TH_GID_PORTER);
	ck_assert_uint_eq(mode_of(sock_dir(), &g), 0710);
	ck_assert_uint_eq(g, TH_GID_PORTER);
	ck_assert_int_eq(ping_as(TH_UID_ALICE, TH_GID_PORTER), 0);
	ck_assert_int_eq(ping_as(TH_UID_BOB, TH_GID_PORTER), 0);
	/* Not in the group: the kernel refuses the connect itself. */
	int rc = ping_as(TH_UID_STRANGER, TH_GID_STRANGER);
	ck_assert_int_ne(rc, 0);
	ck_assert_int_ne(rc, PORTER_E_DENIED);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}
END_TEST

START_TEST(socket_open_to_listed_uids)
{
	/* Single uids cannot be expressed in a file mode: the socket is
	 * opened to all and accept refuses the unlisted with a reason. */
	const char *args[] = {"--allow-uid", "61011", NULL};
	ck_assert_int_eq(th_daemon_start_as_own_socket(&d, TH_UID_DAEMON, TH_GID_PORTER, args), 0);
	ck_assert_uint_eq(mode_of(d.socket, NULL), 0666);
	ck_assert_uint_eq(mode_of(sock_dir(), NULL), 0711);
	ck_assert_int_eq(ping_as(TH_UID_ALICE, TH_GID_PORTER), 0);
	ck_assert_int_eq(ping_as(TH_UID_BOB, TH_GID_PORTER), PORTER_E_DENIED);
	ck_assert_int_eq(ping_as(TH_UID_STRANGER, TH_GID_STRANGER), PORTER_E_DENIED);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}
END_TEST

START_TEST(socket_private_by_default_and_opened_on_reload)
{
	write_conf("log-level = info\n");
	const char *args[] = {"--config", conf, NULL};
	ck_assert_int_eq(th_daemon_start_as_own_socket(&d, TH_UID_DAEMON, TH_GID_PORTER, args), 0);
	ck_assert_uint_eq(mode_of(d.socket, NULL), 0600);
	ck_assert_uint_eq(mode_of(sock_dir(), NULL), 0700);
	int rc = ping_as(TH_UID_ALICE, TH_GID_PORTER);
	ck_assert_int_ne(rc, 0);
	ck_assert_int_ne(rc, PORTER_E_DENIED); /* refused by the kernel */

	write_conf("allow-gid = 61020\n");
	reload(1);
	gid_t g;
	ck_assert_uint_eq(mode_of(d.socket, &g), 0660);
	ck_assert_uint_eq(g, TH_GID_PORTER);
	ck_assert_int_eq(ping_as(TH_UID_ALICE, TH_GID_PORTER), 0);

	/* And closed again. */
	write_conf("log-level = info\n");
	reload(2);
	ck_assert_uint_eq(mode_of(d.socket, NULL), 0600);
	ck_assert_int_ne(ping_as(TH_UID_ALICE, TH_GID_PORTER), 0);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}
END_TEST

/* ---- stats: per uid, and only one's own ---- */

typedef struct seen_uids {
	volatile int ready, go;
	int n;
	uint32_t uid[8];
	uint64_t conns[8];
} seen_uids;

static int stats_uids(void *arg)
{
	seen_uids *s = arg;
	porter_stats_snapshot *st;
	if (porter_stats(0, 3000, &st) != 0)
		return 1;
	s->n = (int)porter_stats_uids(st);
	for (int i = 0; i < s->n && i < 8; i++) {
		porter_uid_usage u;
		if (porter_stats_uid(st, (size_t)i, &u) != 0)
			return 2;
		s->uid[i] = u.uid;
		s->conns[i] = u.connections;
	}
	porter_stats_free(st);
	return 0;
}

/* Bob holds a connection open until told to let go. */
static int hold_open(void *arg)
{
	seen_uids *s = arg;
	if (porter_ping("b", 1, 0, 3000) != 0)
		return 1;
	s->ready = 1;
	th_wait_flag(&s->go, 10000);
	return 0;
}

static void *run_bob_hold(void *arg)
{
	th_as(TH_UID_BOB, TH_GID_PORTER, 20000, hold_open, arg);
	return NULL;
}

static int find_uid(const seen_uids *s, uint32_t uid)
{
	for (int i = 0; i < s->n && i < 8; i++)
		if (s->uid[i] == uid)
			return i;
	return -1;
}

START_TEST(stats_show_only_own_uid)
{
	const char *args[] = {"--allow-uid", "61010,61011,61012", NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, args), 0);
	seen_uids *bob = th_shared_alloc(sizeof(*bob));
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, run_bob_hold, bob), 0);
	ck_assert(th_wait_flag(&bob->ready, 10000));

	/* Alice (foreign) sees her own uid, never bob's. */
	seen_uids *a = th_shared_alloc(sizeof(*a));
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 10000, stats_uids, a), 0);
	ck_assert_int_eq(a->n, 1);
	ck_assert_uint_eq(a->uid[0], TH_UID_ALICE);
	ck_assert_uint_ge(a->conns[0], 1);
	/* porterd's own uid (local) sees every uid holding something. */
	seen_uids *l = th_shared_alloc(sizeof(*l));
	ck_assert_int_eq(th_as(TH_UID_DAEMON, TH_GID_PORTER, 10000, stats_uids, l), 0);
	int b = find_uid(l, TH_UID_BOB);
	ck_assert_int_ge(b, 0);
	ck_assert_uint_eq(l->conns[b], 1);
	ck_assert_int_ge(find_uid(l, TH_UID_DAEMON), 0);

	bob->go = 1;
	pthread_join(t, NULL);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}
END_TEST

/* ---- metrics: no uid's activity for every reader ---- */

typedef struct metrics_seen {
	int file_ok, http_ok;   /* a whole exposition was read */
	int file_bob, http_bob; /* bob's uid is in it */
} metrics_seen;

static char m_file[128]; /* set before the children fork */
static int m_port;

static void fill_metrics_seen(const char *text, int *ok, int *bob)
{
	char pat[32];
	snprintf(pat, sizeof(pat), "uid=\"%u\"", (unsigned)TH_UID_BOB);
	*ok = strstr(text, "porter_workers 1") != NULL;
	*bob = strstr(text, pat) != NULL;
}

/* As alice: the metrics file, then GET /metrics. */
static int read_metrics(void *arg)
{
	metrics_seen *s = arg;
	static char text[65536];
	size_t got = 0;
	FILE *f = fopen(m_file, "r");
	if (f) {
		got = fread(text, 1, sizeof(text) - 1, f);
		fclose(f);
	}
	text[got] = '\0';
	fill_metrics_seen(text, &s->file_ok, &s->file_bob);
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)m_port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return 1;
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n";
	if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(req) - 1)
		return 2;
	got = 0;
	for (long long until = th_now_ms() + 5000; got < sizeof(text) - 1 && th_now_ms() < until;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t r = recv(fd, text + got, sizeof(text) - 1 - got, 0);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	text[got] = '\0';
	fill_metrics_seen(text, &s->http_ok, &s->http_bob);
	return 0;
}

/* Starts porterd with metrics (plus `more`, NULL-terminated), bob holding
 * a connection, and returns what alice read once the metrics show bob's
 * connection. */
static metrics_seen *metrics_with_bob(const char *const *more, seen_uids *bob, pthread_t *t)
{
	char listen[32];
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", m_port);
	const char *args[16] = {"--allow-uid",        "61010,61011,61012",
				"--workers",          "1",
				"--metrics-file",     m_file,
				"--metrics-interval", "100",
				"--metrics-listen",   listen};
	for (size_t n = 10; more && *more && n < 15; more++)
		args[n++] = *more;
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, args), 0);
	ck_assert_int_eq(pthread_create(t, NULL, run_bob_hold, bob), 0);
	ck_assert(th_wait_flag(&bob->ready, 10000));
	/* Bob's connection is the only one: the file shows it once it was
	 * rewritten after bob connected. */
	long long until = th_now_ms() + 10000;
	while (th_now_ms() < until && !file_has(m_file, "porter_connections{worker=\"0\"} 1"))
		usleep(50 * 1000);
	ck_assert(file_has(m_file, "porter_connections{worker=\"0\"} 1"));
	metrics_seen *s = th_shared_alloc(sizeof(*s));
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 10000, read_metrics, s), 0);
	ck_assert_msg(s->file_ok && s->http_ok, "alice read no metrics (file %d, endpoint %d)",
		      s->file_ok, s->http_ok);
	return s;
}

/*
 * The metrics file is readable by porterd's group (which holds its clients
 * under the system unit) and the endpoint by every local user. Before,
 * both listed what every uid held (connections, requests in flight, bytes,
 * sessions, streams): alice watched bob's activity, which porter_stats
 * never shows her. Now porter_uid_usage is there only when the
 * administrator sets metrics-uid-usage.
 */
START_TEST(metrics_hide_other_uids_by_default)
{
	char dir[] = "/tmp/porter-trust-metrics-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(chown(dir, TH_UID_DAEMON, TH_GID_PORTER), 0);
	ck_assert_int_eq(chmod(dir, 0755), 0);
	snprintf(m_file, sizeof(m_file), "%s/porter.prom", dir);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	m_port = ntohs(sa.sin_port);

	seen_uids *bob = th_shared_alloc(sizeof(*bob));
	pthread_t t;
	metrics_seen *s = metrics_with_bob(NULL, bob, &t);
	ck_assert_msg(!s->file_bob, "the metrics file shows bob's uid to alice");
	ck_assert_msg(!s->http_bob, "GET /metrics shows bob's uid to alice");
	bob->go = 1;
	pthread_join(t, NULL);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);

	/* The administrator's choice: then every reader sees every uid. */
	memset(bob, 0, sizeof(*bob));
	const char *more[] = {"--metrics-uid-usage=true", NULL};
	s = metrics_with_bob(more, bob, &t);
	ck_assert(s->file_bob && s->http_bob);
	bob->go = 1;
	pthread_join(t, NULL);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
	unlink(m_file);
	rmdir(dir);
}
END_TEST

/* ---- cancels: one's own only ---- */

typedef struct cancel_race {
	volatile int bob_ready, alice_done;
	int bob_pid;
	int alice_found[2]; /* CancelReply.found for bob's ids 77 and 78 */
	int alice_replies;  /* CancelReplies alice got */
	int bob_status[2];  /* bob's pings 77 (running) and 78 (sent after) */
	int bob_replies;
	int bob_rc; /* what bob's child returned */
} cancel_race;

/* Bob: ping 77 answered after 1.5 s; once alice has tried to cancel it
 * (and 78 before it exists), ping 78. */
static int bob_pings(void *arg)
{
	cancel_race *x = arg;
	frame_reader rd;
	frame_reader_init(&rd, 1 << 20);
	int fd = th_rc_open(getenv("PORTER_SOCKET"), &rd, 5000, NULL);
	if (fd < 0 || th_rc_ping(fd, 77, 0, 1500) != 0)
		return 1;
	x->bob_pid = (int)getpid();
	x->bob_ready = 1;
	if (!th_wait_flag(&x->alice_done, 10000) || th_rc_ping(fd, 78, 0, 0) != 0)
		return 2;
	for (int i = 0; i < 2; i++) {
		Porter__V1__Response *r = th_rc_recv(fd, &rd, 10000);
		if (!r)
			return 3;
		if (r->id == 77 || r->id == 78) {
			x->bob_status[r->id - 77] = r->status;
			x->bob_replies++;
		}
		porter__v1__response__free_unpacked(r, NULL);
	}
	close(fd);
	frame_reader_free(&rd);
	return 0;
}

/* Alice: says Hello with bob's client instance (she can guess or learn
 * it: it is no secret), then cancels bob's ids 77 and 78. */
static int alice_cancels(void *arg)
{
	cancel_race *x = arg;
	frame_reader rd;
	frame_reader_init(&rd, 1 << 20);
	if (!th_wait_flag(&x->bob_ready, 10000))
		return 1;
	int fd = th_rc_open_as(getenv("PORTER_SOCKET"), &rd, 5000, th_rc_instance(x->bob_pid));
	if (fd < 0)
		return 2;
	Porter__V1__Response *r = NULL;
	for (uint64_t target = 77; target <= 78; target++) {
		Porter__V1__Request c = PORTER__V1__REQUEST__INIT;
		Porter__V1__Cancel cb = PORTER__V1__CANCEL__INIT;
		cb.target_id = target;
		c.id = target + 100;
		c.body_case = PORTER__V1__REQUEST__BODY_CANCEL;
		c.cancel = &cb;
		if (th_rc_send(fd, &c) != 0 || !(r = th_rc_recv(fd, &rd, 5000)))
			return 4;
		if (r->status == 0 && r->body_case == PORTER__V1__RESPONSE__BODY_CANCEL) {
			x->alice_found[target - 77] = r->cancel->found;
			x->alice_replies++;
		}
		porter__v1__response__free_unpacked(r, NULL);
	}
	close(fd);
	frame_reader_free(&rd);
	x->alice_done = 1;
	return 0;
}

static void *run_bob_pings(void *arg)
{
	cancel_race *x = arg;
	x->bob_rc = th_as(TH_UID_BOB, TH_GID_PORTER, 20000, bob_pings, x);
	return NULL;
}

/* Alice cancels bob's request in flight, and one he is about to send,
 * naming his ids and even his client instance: neither is found, neither
 * is remembered against him, both of his requests succeed. (This held
 * when tried: a cancel matches uid, instance and id.) */
START_TEST(cancel_never_crosses_uids)
{
	const char *args[] = {"--allow-uid", "61011,61012", "--workers", "2", NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, args), 0);
	cancel_race *x = th_shared_alloc(sizeof(*x));
	ck_assert_ptr_nonnull(x);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, run_bob_pings, x), 0);
	int rc = th_as(TH_UID_ALICE, TH_GID_PORTER, 20000, alice_cancels, x);
	x->alice_done = 1; /* bob never waits for a crashed alice */
	pthread_join(t, NULL);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(x->bob_rc, 0);
	ck_assert_int_eq(x->alice_replies, 2);
	ck_assert_msg(!x->alice_found[0] && !x->alice_found[1], "alice found bob's requests");
	ck_assert_int_eq(x->bob_replies, 2);
	ck_assert_msg(x->bob_status[0] == 0 && x->bob_status[1] == 0, "bob's pings: %s, %s",
		      porter_error_name(x->bob_status[0]), porter_error_name(x->bob_status[1]));
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}
END_TEST

/* ---- the default socket path, taken by another user ---- */

typedef struct squat {
	char path[108]; /* /tmp/porter-V/porter.sock */
	volatile int listening;
	int frames;     /* frames the listener got from the client */
	int got_secret; /* the conninfo's password was among them */
	int client_rc;  /* what the client's call returned */
	int named;      /* the victim names path in PORTER_SOCKET */
} squat;

#define SQUAT_SECRET "victim-secret-7d1c"

/* Reads one frame into buf (capacity cap) within 3 s: its length, or -1. */
static ssize_t read_frame(int fd, uint8_t *buf, size_t cap)
{
	size_t got = 0, want = FRAME_HEADER_SIZE;
	long long until = th_now_ms() + 3000;
	while (got < want && th_now_ms() < until) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t r = recv(fd, buf + got, want - got, 0);
		if (r <= 0)
			return -1;
		got += (size_t)r;
		if (got == FRAME_HEADER_SIZE && want == FRAME_HEADER_SIZE) {
			size_t len = frame_get_header(buf);
			if (len > cap - FRAME_HEADER_SIZE)
				return -1;
			want += len;
		}
	}
	return got == want ? (ssize_t)got : -1;
}

/* A fake porterd at s->path: answers Hello as porterd would, then reads
 * the next request, looking for the password in it. */
static int fake_porterd(void *arg)
{
	squat *s = arg;
	static uint8_t buf[1 << 16];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->path);
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unlink(s->path);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(s->path, 0777) < 0 ||
	    listen(l, 4) < 0)
		return 1;
	s->listening = 1;
	struct pollfd p = {.fd = l, .events = POLLIN};
	if (poll(&p, 1, 10000) <= 0)
		return 2;
	int c = accept(l, NULL, NULL);
	if (c < 0 || read_frame(c, buf, sizeof(buf)) < 0)
		return 0; /* the client went away before Hello: nothing taken */
	s->frames = 1;
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	Porter__V1__HelloReply hr = PORTER__V1__HELLO_REPLY__INIT;
	hr.protocol = PORTER_PROTOCOL_VERSION;
	hr.daemon_version = "fake";
	hr.max_frame = 1 << 20;
	hr.max_inflight = 16;
	resp.id = 0;
	resp.body_case = PORTER__V1__RESPONSE__BODY_HELLO;
	resp.hello = &hr;
	Porter__V1__Request *hello =
		porter__v1__request__unpack(NULL, frame_get_header(buf), buf + FRAME_HEADER_SIZE);
	if (hello)
		resp.id = hello->id;
	porter__v1__request__free_unpacked(hello, NULL);
	uint8_t *out;
	size_t outlen;
	if (frame_pack(&resp.base, 1 << 20, &out, &outlen) != 0)
		return 3;
	send(c, out, outlen, MSG_NOSIGNAL);
	free(out);
	ssize_t n = read_frame(c, buf, sizeof(buf));
	if (n > 0) {
		s->frames = 2;
		s->got_secret = memmem(buf, (size_t)n, SQUAT_SECRET, strlen(SQUAT_SECRET)) != NULL;
	}
	close(c);
	close(l);
	return 0;
}

/* The victim: an app without XDG_RUNTIME_DIR (cron, su, a container) and
 * without PORTER_SOCKET, so libporter uses /tmp/porter-$UID; or, with
 * s->named, one whose PORTER_SOCKET names s->path. */
static int victim_queries(void *arg)
{
	squat *s = arg;
	if (s->named)
		setenv("PORTER_SOCKET", s->path, 1);
	else
		unsetenv("PORTER_SOCKET");
	unsetenv("XDG_RUNTIME_DIR");
	if (!th_wait_flag(&s->listening, 10000))
		return 1;
	porter_db_result *r = NULL;
	s->client_rc =
		porter_db_query(0, "host=127.0.0.1 dbname=app user=victim password=" SQUAT_SECRET,
				"SELECT 1", NULL, 0, 0, 3000, &r);
	porter_db_result_free(r);
	return 0;
}

typedef struct squat_run {
	squat *s;
	uid_t uid;
	int rc;
} squat_run;

static void *run_fake(void *arg)
{
	squat_run *f = arg;
	f->rc = th_as(f->uid, TH_GID_PORTER, 20000, fake_porterd, f->s);
	return NULL;
}

/* Runs the fake porterd at s->path as `owner` and the victim as
 * `victim`, then removes the socket file and `dir` (NULL: none). */
static void squat_run_both(squat *s, uid_t owner, uid_t victim, const char *dir)
{
	squat_run f = {.s = s, .uid = owner};
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, run_fake, &f), 0);
	int rc = th_as(victim, TH_GID_PORTER, 20000, victim_queries, s);
	s->listening = 1;
	pthread_join(t, NULL);
	unlink(s->path);
	if (dir)
		rmdir(dir);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(f.rc, 0);
}

/* Runs the fake porterd as `owner` (who also owns the directory) and the
 * victim as `victim`. */
static void squat_once(squat *s, uid_t owner, uid_t victim)
{
	char dir[64];
	snprintf(dir, sizeof(dir), "/tmp/porter-%u", (unsigned)victim);
	snprintf(s->path, sizeof(s->path), "%s/porter.sock", dir);
	unlink(s->path);
	rmdir(dir);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	ck_assert_int_eq(chown(dir, owner, TH_GID_PORTER), 0);
	squat_run_both(s, owner, victim, dir);
}

/*
 * /tmp/porter-$UID, libporter's default when XDG_RUNTIME_DIR is unset, can
 * be made by any user before the victim's porterd starts (which then
 * refuses the directory). Before, the victim's app talked to whoever
 * listened there: bob's fake daemon answered Hello and read the next
 * request, the conninfo's password in it. Now libporter checks who it
 * reached at the default path (SO_PEERCRED): the caller's own uid or root.
 */
START_TEST(default_socket_path_taken_by_another_user)
{
	/* A uid of this run alone: two runs of this suite at once must not
	 * share /tmp/porter-V. */
	uid_t victim = 62000 + (uid_t)(getpid() % 1000);
	squat *s = th_shared_alloc(sizeof(*s));
	ck_assert_ptr_nonnull(s);
	squat_once(s, TH_UID_BOB, victim);
	ck_assert_msg(!s->got_secret, "bob's fake porterd read the victim's password");
	ck_assert_msg(s->frames == 0, "the victim said Hello to bob's fake porterd");
	ck_assert_msg(s->client_rc == PORTER_E_DENIED, "the victim's call: %s",
		      porter_error_name(s->client_rc));

	/* The victim's own daemon at the same path is trusted as before. */
	memset(s, 0, sizeof(*s));
	squat_once(s, victim, victim);
	ck_assert_int_eq(s->frames, 2);
	ck_assert(s->got_secret);
}
END_TEST

/*
 * PORTER_SOCKET naming a socket right in /tmp (or any directory others
 * may write) is as open as the default path: once the daemon that used
 * the name is gone, anyone can bind it, and scripts and unit files keep
 * the variable. Before, the victim talked to bob's fake porterd there;
 * now another uid's daemon at a named path is trusted only in a
 * directory of its own (root's, its or the caller's, writable by the
 * owner alone).
 */
START_TEST(named_socket_in_a_shared_directory)
{
	squat *s = th_shared_alloc(sizeof(*s));
	ck_assert_ptr_nonnull(s);
	s->named = 1;
	snprintf(s->path, sizeof(s->path), "/tmp/porter-stale-%d.sock", (int)getpid());
	squat_run_both(s, TH_UID_BOB, TH_UID_ALICE, NULL);
	ck_assert_msg(!s->got_secret, "bob's fake porterd read alice's password");
	ck_assert_msg(s->frames == 0, "alice said Hello to bob's fake porterd in /tmp");
	ck_assert_msg(s->client_rc == PORTER_E_DENIED, "alice's call: %s",
		      porter_error_name(s->client_rc));

	/* The same daemon in a directory of its own is what PORTER_SOCKET
	 * is for (the system service's /run/porter). */
	memset(s, 0, sizeof(*s));
	s->named = 1;
	char dir[64];
	snprintf(dir, sizeof(dir), "/tmp/porter-own-%d", (int)getpid());
	snprintf(s->path, sizeof(s->path), "%s/porter.sock", dir);
	rmdir(dir);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	ck_assert_int_eq(chown(dir, TH_UID_BOB, TH_GID_PORTER), 0);
	squat_run_both(s, TH_UID_BOB, TH_UID_ALICE, dir);
	ck_assert_int_eq(s->frames, 2);
	ck_assert(s->got_secret);
}
END_TEST

/* ---- logs ---- */

#define FORGED "2026-01-01T00:00:00.000Z porterd error: FORGED by a client"

static int ping_named(void *arg)
{
	/* libporter sends its program name in Hello, and porterd logs it. */
	program_invocation_short_name = arg;
	return porter_ping("x", 1, 0, 3000) == 0 ? 0 : 1;
}

START_TEST(client_text_cannot_forge_log_lines)
{
	const char *args[] = {"--allow-uid", "61011", "--log-level", "debug", NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, args), 0);
	char *name = th_shared_alloc(256);
	ck_assert_ptr_nonnull(name);
	snprintf(name, 256, "app\n" FORGED "\r\x1b[2K\xc2\x9b");
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 10000, ping_named, name), 0);
	ck_assert(wait_log("hello from pid"));

	/* The name is in the log, on the hello line, escaped. */
	ck_assert(file_has(d.log, "(app\\x0a" FORGED "\\x0d\\x1b[2K\\xc2\\x9b)"));
	/* No line starts with the forged text, and no raw control bytes
	 * other than the newlines ending lines made it into the file. */
	FILE *f = fopen(d.log, "r");
	ck_assert_ptr_nonnull(f);
	char line[4096];
	while (fgets(line, sizeof(line), f)) {
		ck_assert_msg(strncmp(line, FORGED, strlen(FORGED)) != 0, "forged line: %s", line);
		for (const char *p = line; *p; p++)
			ck_assert_msg((unsigned char)*p >= 0x20 || *p == '\n' || *p == '\t',
				      "control byte 0x%02x in: %s", (unsigned char)*p, line);
		ck_assert_ptr_null(strstr(line, "\xc2\x9b"));
	}
	fclose(f);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("trust_server");
	TCase *tc = tcase_create("trust_server");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, reload_revokes_open_connections);
	tcase_add_test(tc, reload_revokes_by_group);
	tcase_add_test(tc, socket_open_to_a_group);
	tcase_add_test(tc, socket_open_to_listed_uids);
	tcase_add_test(tc, socket_private_by_default_and_opened_on_reload);
	tcase_add_test(tc, client_text_cannot_forge_log_lines);
	tcase_add_test(tc, stats_show_only_own_uid);
	tcase_add_test(tc, metrics_hide_other_uids_by_default);
	tcase_add_test(tc, cancel_never_crosses_uids);
	tcase_add_test(tc, default_socket_path_taken_by_another_user);
	tcase_add_test(tc, named_socket_in_a_shared_directory);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN_ROOT(suite)
