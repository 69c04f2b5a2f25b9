/*
 * Replies the kernel still holds for a client after porterd closed its
 * connection. What porterd wrote waits in the client's socket until the
 * client reads it or closes its end, charged to porterd's socket, and
 * closing porterd's end does not free it. Alice (raw frames, uid 61011)
 * asks for a 128 KiB reply, lets it arrive without reading it, half-closes
 * (porterd then closes its end) and keeps her end open, connection after
 * connection: each closed connection must still count for her as a
 * connection and its bytes as buffered bytes, so uid-max-connections
 * refuses her next connection instead of porterd's kernel memory growing
 * with her descriptor limit, and the count must go back once she reads
 * or closes. One worker, porterd as 61010.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"
#include "porter_errors.h"
#include "rawc.h"
#include "tenant.h"

#define CHILD_MS 90000
#define REPLY (128u * 1024u) /* fits the socket's default send buffer */
#define MAX_CONNS 12         /* uid-max-connections */
#define TRIES 24             /* connections alice tries to leave behind */
#define WAIT_MS 15000        /* generous: a bound on a wait, not a timing */

static th_daemon d;

/* Waits until `fd` holds at least `n` unread bytes. 0, or -1 when it did
 * not within WAIT_MS. */
static int wait_unread(int fd, size_t n)
{
	for (int ms = 0; ms < WAIT_MS; ms += 10) {
		int q = 0;
		if (ioctl(fd, FIONREAD, &q) == 0 && (size_t)q >= n)
			return 0;
		usleep(10 * 1000);
	}
	return -1;
}

/* Waits until porterd says alice holds at least `bytes` buffered bytes
 * and `conns` connections (`more`), or fewer than `bytes` and at most
 * `conns` (!`more`). Returns 0, or -1 after saying what it saw last. */
static int wait_usage(int more, uint64_t bytes, uint64_t conns, const char *what)
{
	porter_uid_usage u = PORTER_UID_USAGE_INIT;
	for (int ms = 0; ms < WAIT_MS; ms += 20) {
		if (th_own_usage(&u) == 0 &&
		    (more ? u.buffered_bytes >= bytes && u.connections >= conns
			  : u.buffered_bytes < bytes && u.connections <= conns))
			return 0;
		usleep(20 * 1000);
	}
	fprintf(stderr,
		"%s: alice holds %llu buffered bytes in %llu connections, want %s %llu in %s %llu\n",
		what, (unsigned long long)u.buffered_bytes, (unsigned long long)u.connections,
		more ? "at least" : "fewer than", (unsigned long long)bytes,
		more ? "at least" : "at most", (unsigned long long)conns);
	return -1;
}

/* Reads `fd` to its end. 0, or -1 when it did not end within WAIT_MS. */
static int drain(int fd)
{
	char buf[65536];
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, WAIT_MS) != 1)
			return -1;
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n == 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

static int alice_leaves_replies(void *arg)
{
	(void)arg;
	int fds[TRIES];
	int left = 0, refused = 0;
	/* Her own libporter connection (th_own_usage) counts as one. */
	if (th_own_buffered_below(1u << 20) != 0)
		return 1;
	for (int i = 0; i < TRIES && !refused; i++) {
		frame_reader rd;
		frame_reader_init(&rd, 1u << 20);
		Porter__V1__Response *hello = NULL;
		int fd = th_rc_open(d.socket, &rd, 5000, &hello);
		if (fd < 0) {
			/* Refused at accept: the refusal is written before
			 * her Hello, which may then fail on the closed
			 * socket, so the refusal may go unread. Either way it
			 * comes with her limit reached, counting the closed
			 * connections and her libporter one. */
			refused = 1;
			if ((hello && (hello->status != PORTER_E_BUSY ||
				       !strstr(hello->message, "uid-max-connections"))) ||
			    left + 1 != MAX_CONNS) {
				fprintf(stderr,
					"connection %d (%d left behind) refused with %s (%s), want "
					"PORTER_E_BUSY at uid-max-connections\n",
					i, left,
					hello ? porter_error_name(hello->status) : "no Hello",
					hello ? hello->message : "");
				refused = -1;
			}
		} else if (th_rc_ping(fd, 1, REPLY, 0) != 0 || wait_unread(fd, REPLY) != 0 ||
			   shutdown(fd, SHUT_WR) != 0) {
			fprintf(stderr, "connection %d: the ping's reply did not arrive\n", i);
			refused = -1;
			close(fd);
		} else {
			fds[left++] = fd;
			/* porterd saw the end and closed its side: the reply
			 * is still hers to read, and counts for her. */
			if (wait_usage(1, (uint64_t)left * REPLY, (uint64_t)left + 1,
				       "after a close") != 0)
				refused = -1;
		}
		if (hello)
			porter__v1__response__free_unpacked(hello, NULL);
		frame_reader_free(&rd);
	}
	if (refused != 1) {
		if (!refused)
			fprintf(stderr,
				"%d connections left %u bytes each unread in porterd's sockets, "
				"none refused\n",
				left, REPLY);
		return 1;
	}
	fprintf(stderr, "alice left %d replies unread; her next connection was refused\n", left);
	/* What she reads stops counting, as does what she throws away by
	 * closing her end; then she may connect again. */
	int bad = 0;
	for (int i = 0; i < left; i++) {
		if (i % 2 == 0 && drain(fds[i]) != 0) {
			fprintf(stderr, "connection %d did not end after its reply\n", i);
			bad = 1;
		}
		close(fds[i]);
	}
	if (bad || wait_usage(0, REPLY, 1, "after reading and closing") != 0)
		return 1;
	frame_reader rd;
	frame_reader_init(&rd, 1u << 20);
	int fd = th_rc_open(d.socket, &rd, 5000, NULL);
	frame_reader_free(&rd);
	if (fd < 0) {
		fprintf(stderr, "alice could not connect again\n");
		return 1;
	}
	close(fd);
	return 0;
}

/*
 * The old porterd welcomed all 24 connections and counted none of the
 * 3 MiB left in their sockets once closed.
 */
START_TEST(replies_left_in_closed_sockets_count_for_their_uid)
{
	char conns[16];
	snprintf(conns, sizeof(conns), "%u", MAX_CONNS);
	const char *const extra[] = {
		"--workers", "1", "--allow-uid", "61011", "--uid-max-connections", conns, NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, extra), 0);
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, CHILD_MS, alice_leaves_replies, NULL),
			 0);
	th_stop_clean(&d);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {replies_left_in_closed_sockets_count_for_their_uid, NULL};
	return th_suite("trust_linger", "linger", 180, tests);
}

TH_MAIN_ROOT(suite)
