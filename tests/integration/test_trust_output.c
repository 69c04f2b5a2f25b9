/*
 * The output limits every uid shares (output-soft-limit,
 * output-hard-limit) across the trust boundary: alice (raw frames, uid
 * 61011) asks for replies she never reads; bob (61012) has replies of his
 * own waiting for his socket, as any download to a slow reader does. What
 * alice holds must not get bob's connection dropped:
 *
 * - past the soft limit, only a uid holding more than an even share of it
 *   loses a connection (one uid may hold uid-max-buffered, by default as
 *   much as the soft limit itself);
 * - a connection dropped for going over a limit stops counting at once,
 *   not a loop turn later, when libuv cancels its writes: replies made in
 *   that same turn for others were dropped with it.
 *
 * One worker, porterd as 61010.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"
#include "rawc.h"
#include "tenant.h"

#define KIB 1024u
#define MIB (1024u * 1024u)

typedef struct outs {
	volatile int alice_ready; /* her replies are queued, or she is connected */
	volatile int alice_cmd;   /* bumped by the test: send a ping of `alice_payload` */
	volatile int alice_did;   /* the last alice_cmd she sent */
	volatile size_t alice_payload;
	volatile int alice_quit;
	volatile int bob_ready; /* his socket is full and replies wait */
	volatile int bob_go;    /* send one more ping */
	volatile int bob_sent;
	volatile int bob_read; /* read every reply now */
	volatile int bob_answered;
} outs;

static th_daemon d;
static outs *shm;
static char m_file[128]; /* the metrics file of the hard-limit case */
static char m_dir[64];

static void teardown(void)
{
	/* A test that failed while porterd was stopped leaves it stopped. */
	if (d.pid > 0)
		kill(d.pid, SIGCONT);
	th_stop_clean(&d);
	if (m_file[0])
		unlink(m_file);
	if (m_dir[0])
		rmdir(m_dir);
	m_file[0] = m_dir[0] = '\0';
}

/* The soft limit as deployed by default: equal to uid-max-buffered, 8 MiB
 * here instead of 256. */
static void setup_soft(void)
{
	const char *const extra[] = {"--workers",
				     "1",
				     "--allow-uid",
				     "61011,61012",
				     "--uid-max-buffered",
				     "8388608",
				     "--output-soft-limit",
				     "8388608",
				     NULL};
	shm = th_tenant_up(&d, extra, sizeof(*shm));
}

/* Both limits at 4 MiB, and the metrics file the test reads the global
 * total from. */
static void setup_hard(void)
{
	snprintf(m_dir, sizeof(m_dir), "/tmp/porter-trust-output-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(m_dir));
	ck_assert_int_eq(chown(m_dir, TH_UID_DAEMON, TH_GID_PORTER), 0);
	ck_assert_int_eq(chmod(m_dir, 0755), 0);
	snprintf(m_file, sizeof(m_file), "%s/porter.prom", m_dir);
	const char *const extra[] = {"--workers",
				     "1",
				     "--allow-uid",
				     "61011,61012",
				     "--output-soft-limit",
				     "4194304",
				     "--output-hard-limit",
				     "4194304",
				     "--metrics-file",
				     m_file,
				     "--metrics-interval",
				     "100",
				     NULL};
	shm = th_tenant_up(&d, extra, sizeof(*shm));
}

/* Sends `n` pings of `size` zero bytes, ids from `id`, reading nothing.
 * 0 or -1. */
static int pings(int fd, uint64_t id, int n, size_t size)
{
	for (int i = 0; i < n; i++)
		if (th_rc_ping(fd, id + (uint64_t)i, size, 0) != 0)
			return -1;
	return 0;
}

/* Reads replies until `want` came or none comes for 5 s; counts those
 * answered with status 0 into shm->bob_answered. */
static void read_replies(int fd, frame_reader *rd, int want)
{
	for (int i = 0; i < want; i++) {
		Porter__V1__Response *r = th_rc_recv(fd, rd, 5000);
		if (!r)
			return;
		if (r->status == 0)
			shm->bob_answered++;
		porter__v1__response__free_unpacked(r, NULL);
	}
}

/* Runs `body` on a raw connection of the calling process (Hello said),
 * read through a frame reader of 1 MiB frames, then closes it: body's
 * return, or 1 when porterd did not welcome the connection. */
static int on_connection(int (*body)(int fd, frame_reader *rd))
{
	frame_reader rd;
	frame_reader_init(&rd, 1 << 20);
	int fd = th_rc_open(getenv("PORTER_SOCKET"), &rd, 5000, NULL);
	int rc = fd < 0 ? 1 : body(fd, &rd);
	if (fd >= 0)
		close(fd);
	frame_reader_free(&rd);
	return rc;
}

/* ---- the soft limit ---- */

/* As alice: 7 MiB of replies she never reads, held until told to go. */
static int alice_holds_on(int fd, frame_reader *rd)
{
	(void)rd;
	if (pings(fd, 100, 112, 64 * KIB) != 0)
		return 2;
	/* porterd has queued them once her uid holds most of them (the
	 * socket itself takes some 200 KiB). */
	for (long long until = th_now_ms() + 10000; th_now_ms() < until; usleep(20 * 1000)) {
		porter_uid_usage u = PORTER_UID_USAGE_INIT;
		if (th_own_usage(&u) == 0 && u.buffered_bytes >= 6 * MIB + 512 * KIB) {
			shm->alice_ready = 1;
			th_wait_flag(&shm->alice_quit, 60000);
			return 0;
		}
	}
	return 3;
}

static int alice_holds(void *arg)
{
	(void)arg;
	return on_connection(alice_holds_on);
}

/* As bob: 1.75 MiB of pings sent before reading any reply, as a client
 * downloads to a slow reader; then every reply read. */
static int bob_downloads_on(int fd, frame_reader *rd)
{
	/* A send that fails (porterd closed the connection meanwhile) shows
	 * in the replies counted. */
	pings(fd, 100, 28, 64 * KIB);
	usleep(300 * 1000);
	read_replies(fd, rd, 28);
	return 0;
}

static int bob_downloads(void *arg)
{
	(void)arg;
	return on_connection(bob_downloads_on);
}

/* Forks a process running `fn` as `uid` (th_as); its pid. */
static pid_t spawn(uid_t uid, int (*fn)(void *))
{
	fflush(NULL);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(th_as(uid, TH_GID_PORTER, 90000, fn, shm) & 0xff);
	return pid;
}

/* The exit code of child `pid` (its function's return), or -1. */
static int reap(pid_t pid)
{
	int status;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/*
 * Alice holds 7 MiB of replies (under her uid-max-buffered, under the
 * soft limit, both 8 MiB); bob's replies then take the total past the
 * soft limit. Bob holds 1.5-1.75 MiB, alice four times as much: bob keeps
 * his connection. Before, any connection holding over 1 MiB was dropped
 * when it added past the soft limit, whoever held the rest, so alice,
 * with one uid and the defaults, could keep every other uid from
 * receiving a large reply it did not read at once.
 */
START_TEST(one_uid_at_the_soft_limit_drops_no_other)
{
	pid_t alice = spawn(TH_UID_ALICE, alice_holds);
	ck_assert_msg(th_wait_flag(&shm->alice_ready, 20000), "alice's replies were not queued");
	int bob_rc = th_as(TH_UID_BOB, TH_GID_PORTER, 60000, bob_downloads, NULL);
	shm->alice_quit = 1;
	int alice_rc = reap(alice);
	if (shm->bob_answered != 28)
		th_daemon_dump_log(&d);
	ck_assert_int_eq(bob_rc, 0);
	ck_assert_int_eq(alice_rc, 0);
	ck_assert_msg(shm->bob_answered == 28,
		      "bob got %d of 28 replies: porterd dropped his connection for what "
		      "alice holds",
		      shm->bob_answered);
}
END_TEST

/* ---- the hard limit, one loop turn ---- */

/* porterd's unsent reply bytes, all connections (its metrics file), once
 * two reads 250 ms apart (two rewrites) agree; -1 if never within 10 s. */
static long long output_total(void)
{
	long long last = -2;
	for (long long until = th_now_ms() + 10000; th_now_ms() < until;) {
		long long v = -1;
		FILE *f = fopen(m_file, "r");
		if (f) {
			char line[256];
			while (fgets(line, sizeof(line), f))
				if (strncmp(line, "porter_output_buffered_bytes ", 29) == 0)
					v = atoll(line + 29);
			fclose(f);
		}
		if (v >= 0 && v == last)
			return v;
		last = v;
		usleep(250 * 1000);
	}
	return -1;
}

/* As alice: sends a ping of shm->alice_payload each time shm->alice_cmd
 * moves, reading nothing, until told to quit. */
static int alice_obeys_on(int fd, frame_reader *rd)
{
	(void)rd;
	shm->alice_ready = 1;
	int rc = 0;
	uint64_t id = 100;
	for (long long until = th_now_ms() + 80000; !shm->alice_quit && th_now_ms() < until;) {
		int cmd = shm->alice_cmd;
		if (cmd == shm->alice_did) {
			usleep(2000);
			continue;
		}
		if (th_rc_ping(fd, id++, shm->alice_payload, 0) != 0) {
			rc = 2;
			break;
		}
		shm->alice_did = cmd;
	}
	return rc;
}

static int alice_obeys(void *arg)
{
	(void)arg;
	return on_connection(alice_obeys_on);
}

/* As bob: 1 MiB of pings unread (his socket full, the rest queued in
 * porterd), then, when told, one more; then, when told, every reply
 * read. */
static int bob_waits_on(int fd, frame_reader *rd)
{
	if (pings(fd, 100, 16, 64 * KIB) != 0)
		return 2;
	shm->bob_ready = 1;
	if (!th_wait_flag(&shm->bob_go, 60000) || th_rc_ping(fd, 999, 0, 0) != 0)
		return 3;
	shm->bob_sent = 1;
	if (!th_wait_flag(&shm->bob_read, 30000))
		return 4;
	read_replies(fd, rd, 17);
	return 0;
}

static int bob_waits(void *arg)
{
	(void)arg;
	return on_connection(bob_waits_on);
}

/* Waits up to 5 s until every thread of porterd is stopped (SIGSTOP). */
static int stopped(pid_t pid)
{
	char path[64], st[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (long long until = th_now_ms() + 5000; th_now_ms() < until; usleep(5000)) {
		FILE *f = fopen(path, "r");
		if (!f)
			return 0;
		size_t n = fread(st, 1, sizeof(st) - 1, f);
		fclose(f);
		st[n] = '\0';
		const char *p = strrchr(st, ')');
		if (p && p[1] == ' ' && p[2] == 'T')
			return 1;
	}
	return 0;
}

/* Has alice send a ping of `payload` bytes and waits until she did. */
static void alice_ping(size_t payload)
{
	shm->alice_payload = payload;
	int cmd = ++shm->alice_cmd;
	long long until = th_now_ms() + 10000;
	while (shm->alice_did != cmd && th_now_ms() < until)
		usleep(2000);
	ck_assert_msg(shm->alice_did == cmd, "alice did not send her ping");
}

/*
 * Bob holds some 800 KiB of replies; alice fills porterd's output to
 * within 48-96 KiB of output-hard-limit (4 MiB). porterd is stopped while
 * alice sends one more ping, which takes the total past the limit, and
 * bob one more: on resuming, one loop turn reads both. Alice's connection
 * goes (closed from its timer); bob's tiny reply, added in the same turn,
 * must not find her bytes still counted. Before, it did: bob was dropped
 * too ('all connections together are over output-hard-limit' twice).
 */
START_TEST(a_dropped_connection_stops_counting_at_once)
{
	pid_t bob = spawn(TH_UID_BOB, bob_waits);
	ck_assert(th_wait_flag(&shm->bob_ready, 20000));
	pid_t alice = spawn(TH_UID_ALICE, alice_obeys);
	ck_assert(th_wait_flag(&shm->alice_ready, 20000));
	long long total = -1, gap = 0;
	for (int i = 0; i < 100; i++) {
		total = output_total();
		ck_assert_int_ge(total, 0);
		gap = (long long)4 * MIB - total;
		ck_assert_int_gt(gap, 16 * (long long)KIB);
		if (gap <= 96 * (long long)KIB)
			break;
		alice_ping((size_t)(gap - 48 * (long long)KIB));
	}
	ck_assert_msg(gap <= 96 * (long long)KIB, "output at %lld, not near the limit", total);

	ck_assert_int_eq(kill(d.pid, SIGSTOP), 0);
	ck_assert(stopped(d.pid));
	alice_ping((size_t)(gap + 16 * (long long)KIB));
	shm->bob_go = 1;
	ck_assert(th_wait_flag(&shm->bob_sent, 10000));
	ck_assert_int_eq(kill(d.pid, SIGCONT), 0);

	usleep(300 * 1000);
	shm->bob_read = 1;
	int bob_rc = reap(bob);
	shm->alice_quit = 1;
	int alice_rc = reap(alice);
	int drops = th_file_count(d.log, "over output-hard-limit");
	if (shm->bob_answered != 17 || drops != 1)
		th_daemon_dump_log(&d);
	ck_assert_int_eq(bob_rc, 0);
	ck_assert_int_eq(alice_rc, 0);
	ck_assert_msg(shm->bob_answered == 17,
		      "bob got %d of 17 replies: dropped in the turn alice went over "
		      "output-hard-limit (%d connections dropped for it)",
		      shm->bob_answered, drops);
	ck_assert_msg(drops == 1, "%d connections dropped over output-hard-limit, want alice's",
		      drops);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("trust_output");
	const TTest *soft[] = {one_uid_at_the_soft_limit_drops_no_other, NULL};
	TCase *tc = th_tcase(s, "trust_output_soft", 120, soft);
	tcase_add_checked_fixture(tc, setup_soft, teardown);
	const TTest *hard[] = {a_dropped_connection_stops_counting_at_once, NULL};
	tc = th_tcase(s, "trust_output_hard", 120, hard);
	tcase_add_checked_fixture(tc, setup_hard, teardown);
	return s;
}

TH_MAIN_ROOT(suite)
