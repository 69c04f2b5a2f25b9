/*
 * One client's flood of refused requests never holds a worker's loop for
 * long (issue 16): every other client of that worker waits as long as the
 * loop turn its request arrived in. Measured as the CPU each turn of
 * porterd's loop uses (PORTER_TEST_TURN_CPU_US, daemon/loopcpu.h: porterd
 * logs every turn over the bound), which does not depend on how busy the
 * machine is:
 *
 * - 96 queries of 65,536 parameters (one past PostgreSQL's limit), pipelined
 *   on one connection: each is refused after counting its parameters on
 *   the wire, twice. The count took some 400 us a pass, and a turn took in
 *   up to 1 MiB of them (8 frames): turns of several milliseconds. Now a
 *   run of short parameters is counted in a tight loop (empty ones four
 *   at a time) and a turn takes in at most 256 KiB;
 * - frames of 16 MiB of empty parameters, refused from their first
 *   256 KiB and the rest thrown away as it arrives, in turns of 256 KiB;
 *   the connection serves a ping afterwards.
 *
 * - 1,000 connections whose Hellos arrive at once, then close at once:
 *   the worker answered every Hello that had arrived in one turn (351 in
 *   3 ms of CPU at load 14), and closed every connection that had gone
 *   in one (317 in 1.8 ms). Now the worker's connections together handle
 *   at most 128 frames or closes per turn, the rest waiting in order.
 *
 * - 8 frames of 16 MiB of empty parameters written back to back: the rest
 *   of each refused frame is read at a bounded pace per uid, not as fast
 *   as it is written (a lower bound on the time, below).
 *
 * A bystander pings all along; its latencies are printed, not asserted
 * (they depend on the machine's load). No database is involved: the
 * queries are refused before anything connects.
 */
#include <check.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"
#include "turns.h"
#include "porter.h"
#include "porter_errors.h"
#include "rawc.h"
#include "tenant.h"

/* The most CPU one loop turn may use, in microseconds. New code: a turn
 * counts at most two refused frames' parameters and copies 256 KiB, some
 * 0.1-0.3 ms; the old code's turns counted up to eight frames' (0.8 ms
 * each): 4.6-7.5 ms at most at load 13, three turns in three over 3 ms
 * for every 24 frames. On a machine at load 13-24 a turn that does little
 * now and then counts 1-3 ms (each switch to and from the thread counts in
 * its CPU), so up to NOISY_TURNS may pass the bound; the old code passed
 * it in some twelve turns of the PIPELINED frames. A sanitized porterd
 * runs its own code several times slower. */
#ifdef PORTER_SANITIZED
#define TURN_US "20000"
#else
#define TURN_US "3000"
#endif
#define NOISY_TURNS 2

#define OVER_PARAMS 65536 /* one past PostgreSQL's limit */
#define PIPELINED 96      /* refused frames sent at once on one connection */
#define HUGE_FRAMES 2
#define CONNINFO "host=/nonexistent dbname=never"
#define BURST_CONNS 1000 /* connections whose Hellos arrive at once */
#define BURST_ROUNDS 2   /* the old code had one long turn per burst */

static th_daemon d;

/* Starts porterd with one worker, logging every turn over TURN_US. */
static void start(void)
{
	const char *args[] = {"--workers", "1", NULL};
	setenv("PORTER_TEST_TURN_CPU_US", TURN_US, 1);
	th_start(&d, args);
}

/* Stops the bystander (its pings printed under `what`), asserts that at
 * most NOISY_TURNS turns logged since `from` were over the bound, and
 * stops porterd. */
static void finish(const char *what, long from)
{
	th_bystander_stop(what);
	long max_us;
	int n = th_long_turns(&d, from, &max_us);
	ck_assert_msg(n <= NOISY_TURNS,
		      "%d loop turns used more than %s us of CPU (the most %ld us)", n, TURN_US,
		      max_us);
	th_stop_clean(&d);
}

/* ---- the flood ---- */

/* Writes `len` bytes whole (blocking). */
static void send_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		ck_assert_msg(n > 0, "send to porterd failed");
		p += n;
		len -= (size_t)n;
	}
}

/* Reads the next reply on `fd`: the refusal of request `id` over the
 * parameter limit. */
static void expect_refusal(int fd, frame_reader *rd, uint64_t id)
{
	Porter__V1__Response *r = th_rc_recv(fd, rd, 20000);
	ck_assert_msg(r != NULL, "no reply to request %llu", (unsigned long long)id);
	ck_assert_uint_eq(r->id, id);
	ck_assert_int_eq(r->status, PORTER_E_INVAL);
	ck_assert_ptr_nonnull(strstr(r->message, "65535"));
	porter__v1__response__free_unpacked(r, NULL);
}

START_TEST(refused_parameter_floods_take_short_turns)
{
	start();
	th_bystander_start();

	/* One refused first: what a worker does once (its heap, lazy
	 * binding) is not what is measured. */
	frame_reader rd;
	frame_reader_init(&rd, 1 << 20);
	int fd = th_rc_open(d.socket, &rd, 5000, NULL);
	ck_assert_int_ge(fd, 0);
	size_t one_len;
	uint8_t *one = th_rc_params_frame(CONNINFO, 1, OVER_PARAMS, &one_len);
	ck_assert_ptr_nonnull(one);
	send_all(fd, one, one_len);
	expect_refusal(fd, &rd, 1);
	usleep(100 * 1000);
	long from = th_log_size(&d);

	/* PIPELINED queries over the limit, written at once. The socket
	 * holds them all (root may raise its buffer past wmem_max), so
	 * porterd finds more than a turn's worth whenever it reads. */
	int sndbuf = 32 << 20;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) != 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	uint8_t *all = malloc(one_len * PIPELINED);
	ck_assert_ptr_nonnull(all);
	for (int i = 0; i < PIPELINED; i++) {
		size_t l;
		uint8_t *f = th_rc_params_frame(CONNINFO, 10 + (uint64_t)i, OVER_PARAMS, &l);
		ck_assert_ptr_nonnull(f);
		ck_assert_uint_eq(l, one_len);
		memcpy(all + (size_t)i * one_len, f, l);
		free(f);
	}
	free(one);
	send_all(fd, all, one_len * PIPELINED);
	free(all);
	for (int i = 0; i < PIPELINED; i++)
		expect_refusal(fd, &rd, 10 + (uint64_t)i);

	/* Frames of 16 MiB of empty parameters, each on a connection that
	 * serves a ping once its frame is refused and thrown away. */
	size_t huge_len;
	uint8_t *huge = th_rc_params_frame(CONNINFO, 7, ((16u << 20) - 400 - strlen(CONNINFO)) / 2,
					   &huge_len);
	ck_assert_ptr_nonnull(huge);
	for (int i = 0; i < HUGE_FRAMES; i++) {
		send_all(fd, huge, huge_len);
		expect_refusal(fd, &rd, 7);
		ck_assert_int_eq(th_rc_ping(fd, 8, 16, 0), 0);
		Porter__V1__Response *r = th_rc_recv(fd, &rd, 20000);
		ck_assert_ptr_nonnull(r);
		ck_assert_uint_eq(r->id, 8);
		ck_assert_int_eq(r->status, 0);
		porter__v1__response__free_unpacked(r, NULL);
	}
	free(huge);
	close(fd);
	frame_reader_free(&rd);

	finish("refused parameter floods", from);
}
END_TEST

/*
 * The rest of a refused frame is read at a bounded pace (32 MiB/s per
 * uid), not as fast as its sender writes it: at full speed the sender's
 * copying into the socket and porterd's out of it kept both CPUs of a
 * 2-CPU machine busy for as long as the flood lasted, and every other
 * client waited for a CPU though no turn of porterd's loop was long. The
 * bytes are still read, so the connection answers the ping after them.
 * Only a lower bound on the time is asserted: a busy machine makes the
 * reading slower, never faster. The old porterd took in 128 MiB of such
 * frames in well under a second.
 */
#define PACED_FRAMES 8
#define PACE_MIB_S 32

START_TEST(refused_frames_are_read_at_a_bounded_pace)
{
	ck_assert_int_eq(th_daemon_start(&d, NULL), 0);
	frame_reader rd;
	frame_reader_init(&rd, 1 << 20);
	int fd = th_rc_open(d.socket, &rd, 5000, NULL);
	ck_assert_int_ge(fd, 0);
	size_t huge_len;
	uint8_t *huge = th_rc_params_frame(CONNINFO, 7, ((16u << 20) - 400 - strlen(CONNINFO)) / 2,
					   &huge_len);
	ck_assert_ptr_nonnull(huge);
	long long t0 = th_now_ms();
	for (int i = 0; i < PACED_FRAMES; i++)
		send_all(fd, huge, huge_len);
	for (int i = 0; i < PACED_FRAMES; i++)
		expect_refusal(fd, &rd, 7);
	ck_assert_int_eq(th_rc_ping(fd, 8, 16, 0), 0);
	Porter__V1__Response *r = th_rc_recv(fd, &rd, 20000);
	long long took = th_now_ms() - t0;
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->id, 8);
	ck_assert_int_eq(r->status, 0);
	porter__v1__response__free_unpacked(r, NULL);
	/* Allowed: 16 MiB a frame at the pace, less the first 256 KiB of each
	 * (read before it is refused) and a margin; half of it is asserted. */
	long long paced_ms = (long long)PACED_FRAMES * 16 * 1000 / PACE_MIB_S;
	fprintf(stderr, "%d refused frames of 16 MiB and a ping: %lld ms (the pace allows %lld)\n",
		PACED_FRAMES, took, paced_ms);
	ck_assert_msg(took >= paced_ms / 2,
		      "porterd read %d refused 16 MiB frames in %lld ms: faster than %d MiB/s",
		      PACED_FRAMES, took, PACE_MIB_S);
	free(huge);
	close(fd);
	frame_reader_free(&rd);
	th_stop_clean(&d);
}
END_TEST

/*
 * Hundreds of connections that say Hello at once, then close at once, are
 * served in turns too: the worker's loop handles at most a budget of
 * frames (and of closes) for all its connections together per turn.
 * Before, every connection whose Hello had arrived was answered in the
 * same turn, and every one that closed was closed in one.
 */
/* Lines of d's log containing `needle`. */
static int log_count(const char *needle)
{
	FILE *f = fopen(d.log, "r");
	ck_assert_ptr_nonnull(f);
	char line[512];
	int n = 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

/* Waits until d's log holds `n` lines containing `needle`. */
static int wait_log_count(const char *needle, int n, int ms)
{
	long long until = th_now_ms() + ms;
	while (log_count(needle) < n && th_now_ms() < until)
		usleep(10 * 1000);
	return log_count(needle) >= n;
}

/* Stalls worker 0's loop for 3 s (PORTER_TEST_HOOKS) and returns once it
 * is asleep. */
static int stalls; /* asked for so far */

static void stall_worker(void)
{
	ck_assert_int_eq(kill(d.pid, SIGUSR2), 0);
	ck_assert(wait_log_count("test hook: stalling the loop", ++stalls, 5000));
}

static void burst(int conns, int *fds);

/* How many connections a burst makes: BURST_CONNS, or fewer when the
 * descriptor limit (raised to its hard limit first) would not let this
 * process hold them, or porterd admit them for one uid (half its limit,
 * which it inherits). */
static int burst_conns(void)
{
	struct rlimit rl;
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	getrlimit(RLIMIT_NOFILE, &rl);
	int conns = BURST_CONNS;
	if ((rlim_t)conns > rl.rlim_cur / 2 - 32)
		conns = (int)(rl.rlim_cur / 2 - 32);
	return conns;
}

START_TEST(hello_burst_and_mass_close_take_short_turns)
{
	int conns = burst_conns();
	/* The test hook (SIGUSR2 stalls the worker's loop for 3 s, asleep,
	 * which uses no CPU) holds the worker while the Hellos, then the
	 * closes, arrive, so that it finds them all at once. */
	setenv("PORTER_TEST_HOOKS", "1", 1);
	start();
	unsetenv("PORTER_TEST_HOOKS");
	th_bystander_start();
	static int fds[BURST_CONNS];
	long from = th_log_size(&d);
	for (int round = 0; round < BURST_ROUNDS; round++)
		burst(conns, fds);
	printf("%d connections said Hello at once, then closed, %d times\n", conns, BURST_ROUNDS);
	finish("a burst of Hellos, then closes", from);
}
END_TEST

/* One round: `conns` connections made, their Hellos sent while the worker
 * sleeps, answered, then closed while it sleeps. */
static void burst(int conns, int *fds)
{
	for (int i = 0; i < conns; i++) {
		fds[i] = th_rc_connect(d.socket);
		ck_assert_int_ge(fds[i], 0);
	}
	/* Every connection reaches the worker before the first Hello. */
	usleep(500 * 1000);
	stall_worker();
	for (int i = 0; i < conns; i++)
		ck_assert_int_eq(th_rc_hello(fds[i]), 0);
	frame_reader rd;
	for (int i = 0; i < conns; i++) {
		frame_reader_init(&rd, 1 << 16);
		Porter__V1__Response *r = th_rc_recv(fds[i], &rd, 20000);
		ck_assert_msg(r != NULL, "no Hello reply on connection %d", i);
		ck_assert_int_eq(r->status, 0);
		porter__v1__response__free_unpacked(r, NULL);
		frame_reader_free(&rd);
	}
	stall_worker();
	for (int i = 0; i < conns; i++)
		close(fds[i]);
	/* The stall ends and the closes are taken up. */
	ck_assert(wait_log_count("test hook: stall over", stalls, 10000));
	usleep(500 * 1000);
}

/*
 * Replies a client reads late go out in a write per socket's worth: each
 * one queued behind a write in flight used to be a write request of its
 * own, and libuv made a system call for each (thousands in one turn of
 * the loop once the client read, 3.6-3.9 ms). Counted as porterd's write
 * system calls (syscw in /proc/PID/io) over the whole exchange; the
 * replies must come in order.
 */
#define LATE_PINGS 20000

/* Write system calls `pid` has made. */
static long write_calls(pid_t pid)
{
	char path[64], line[128];
	long n = -1;
	snprintf(path, sizeof(path), "/proc/%d/io", (int)pid);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "syscw: %ld", &n) == 1)
			break;
	fclose(f);
	ck_assert_int_ge(n, 0);
	return n;
}

START_TEST(replies_read_late_go_out_in_few_writes)
{
	const char *args[] = {"--workers", "1", NULL};
	th_start(&d, args);
	frame_reader rd;
	frame_reader_init(&rd, 1 << 20);
	int fd = th_rc_open(d.socket, &rd, 5000, NULL);
	ck_assert_int_ge(fd, 0);
	long w0 = write_calls(d.pid);
	/* Sent without reading: the socket towards the client fills after
	 * a few hundred replies and the rest wait in porterd. */
	for (int i = 0; i < LATE_PINGS; i++)
		ck_assert_int_eq(th_rc_ping(fd, 100 + (uint64_t)i, 16, 0), 0);
	for (int i = 0; i < LATE_PINGS; i++) {
		Porter__V1__Response *r = th_rc_recv(fd, &rd, 20000);
		ck_assert_msg(r != NULL, "no reply %d", i);
		ck_assert_uint_eq(r->id, 100 + (uint64_t)i);
		ck_assert_int_eq(r->status, 0);
		porter__v1__response__free_unpacked(r, NULL);
	}
	long writes = write_calls(d.pid) - w0;
	printf("%d pings answered to a client reading late: %ld write calls\n", LATE_PINGS, writes);
	ck_assert_msg(writes <= LATE_PINGS / 4, "%ld write calls for %d replies", writes,
		      LATE_PINGS);
	close(fd);
	frame_reader_free(&rd);
	th_stop_clean(&d);
}
END_TEST

/*
 * The connections waiting for a turn are served one uid's after another's:
 * hundreds of alice's connections with a Hello each found at once, then
 * bob's, and bob's Hello is answered after a turn's worth of alice's, not
 * after all of them (the turn list was one queue of connections, oldest
 * first). Counted from porterd's log, in the order it handled them; no
 * time is measured. Alice and bob are two uids: the test connects with its
 * effective uid set to each (SO_PEERCRED takes it at connect).
 */
#define BYSTANDER_AFTER 300 /* alice's Hellos that may come before bob's */

/* A connection to d made as `uid` (of group TH_GID_PORTER). */
static int connect_as(uid_t uid)
{
	ck_assert_int_eq(setegid(TH_GID_PORTER), 0);
	ck_assert_int_eq(seteuid(uid), 0);
	int fd = th_rc_connect(d.socket);
	ck_assert_int_eq(seteuid(0), 0);
	ck_assert_int_eq(setegid(0), 0);
	ck_assert_int_ge(fd, 0);
	return fd;
}

START_TEST(waiting_connections_served_uid_by_uid)
{
	int conns = burst_conns();
	ck_assert_int_gt(conns, 2 * BYSTANDER_AFTER);
	setenv("PORTER_TEST_HOOKS", "1", 1);
	const char *args[] = {"--workers",   "1",     "--allow-uid", "61011,61012",
			      "--log-level", "debug", NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, args), 0);
	unsetenv("PORTER_TEST_HOOKS");
	static int fds[BURST_CONNS + 1];
	for (int i = 0; i < conns; i++)
		fds[i] = connect_as(TH_UID_ALICE);
	fds[conns] = connect_as(TH_UID_BOB);
	/* Every connection reaches the worker before the first Hello. */
	usleep(500 * 1000);
	long from = th_log_size(&d);
	stall_worker();
	for (int i = 0; i <= conns; i++)
		ck_assert_int_eq(th_rc_hello(fds[i]), 0);
	for (int i = 0; i <= conns; i++) {
		frame_reader rd;
		frame_reader_init(&rd, 1 << 16);
		Porter__V1__Response *r = th_rc_recv(fds[i], &rd, 20000);
		ck_assert_msg(r != NULL, "no Hello reply on connection %d", i);
		ck_assert_int_eq(r->status, 0);
		porter__v1__response__free_unpacked(r, NULL);
		frame_reader_free(&rd);
	}
	/* Alice's Hellos porterd handled before bob's. */
	FILE *f = fopen(d.log, "r");
	ck_assert_ptr_nonnull(f);
	fseek(f, from, SEEK_SET);
	char line[512];
	int before = 0, bob = 0;
	while (!bob && fgets(line, sizeof(line), f)) {
		if (!strstr(line, ": hello from pid"))
			continue;
		if (strstr(line, " uid 61012 "))
			bob = 1;
		else if (strstr(line, " uid 61011 "))
			before++;
	}
	fclose(f);
	printf("%d connections of one uid and one of another said Hello at once: %d of the "
	       "first's answered before the other's\n",
	       conns, before);
	ck_assert_msg(bob, "bob's Hello is not in porterd's log");
	ck_assert_msg(before <= BYSTANDER_AFTER,
		      "%d of alice's %d Hellos were handled before bob's (at most %d)", before,
		      conns, BYSTANDER_AFTER);
	for (int i = 0; i <= conns; i++)
		close(fds[i]);
	th_stop_clean(&d);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {refused_parameter_floods_take_short_turns,
				hello_burst_and_mass_close_take_short_turns,
				refused_frames_are_read_at_a_bounded_pace,
				waiting_connections_served_uid_by_uid,
				replies_read_late_go_out_in_few_writes,
				NULL};
	return th_suite("flood_turns", "flood_turns", 180, tests);
}

TH_MAIN(suite)
