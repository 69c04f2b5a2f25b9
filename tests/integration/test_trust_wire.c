/*
 * Trust boundary, the wire (issue 15): what one uid's frames can make
 * porterd do before any request runs. porterd runs as its own
 * unprivileged uid, the client as another (tenant.h), speaking raw frames.
 *
 * - A frame of millions of empty query parameters is refused before it is
 *   unpacked (dbwire_request_params counts them on the wire), however its
 *   other fields are encoded: an id in an over-long varint that porterd's
 *   counter could not read but protobuf-c could used to stop the count at
 *   0, and protobuf-c unpacked every parameter (some 64 bytes each, within
 *   the budget of 32 times the frame) on the worker's loop.
 * - A large frame of other tiny sub-messages (empty HTTP headers, which
 *   nothing counts ahead) is unpacked within twice its size and 8 MiB:
 *   a 16 MiB frame of them took 512 MiB, its budget of 32 times the frame.
 * - A descriptor sent along with the bytes (SCM_RIGHTS) never reaches
 *   porterd. A client never has a reason to send one, and the last close
 *   of a file is its release: a TCP socket with SO_LINGER and unsent data
 *   makes that close wait out the linger time. porterd read the bytes with
 *   read(2), which drops the descriptors in porterd's thread: alice's
 *   socket, closed on her side, froze the worker that read it (every
 *   client on it waited) for as long as she set; sent to porterd before it
 *   refused her connection at accept, it froze the acceptor, so no one
 *   could connect. The listening socket refuses descriptors
 *   (SO_PASSRIGHTS, Linux 6.16), which its connections inherit from the
 *   moment they connect: alice's sendmsg fails with EPERM.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"
#include "porter.h"
#include "rawc.h"
#include "tenant.h"

static th_daemon d;

/* porterd's peak resident memory so far, in KiB (VmHWM), or -1. */
static long peak_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

typedef struct gate_try {
	int headers; /* in: empty HTTP headers, not parameters behind an odd id */
	int status;  /* of porterd's reply */
	char message[160];
	int rc; /* 0, or where the child failed */
} gate_try;

/* Some 8 million empty parameters (a frame just under 16 MiB; 2 MiB under
 * a sanitizer, where porterd reads too slowly for more within the frame
 * timeout and its allocator says nothing about glibc's), with the request
 * id written as a 10-byte varint whose last byte carries bits past the
 * 64th. */
#ifdef PORTER_SANITIZED
#define GATE_BYTES (2u << 20)
#else
#define GATE_BYTES (16u << 20)
#endif

/* Puts the frame header for `payload` bytes at `f`. */
static void put_header(uint8_t *f, size_t payload)
{
	f[0] = (uint8_t)(payload >> 24);
	f[1] = (uint8_t)(payload >> 16);
	f[2] = (uint8_t)(payload >> 8);
	f[3] = (uint8_t)payload;
}

/* GATE_BYTES of empty query parameters behind the over-long id. */
static uint8_t *overlong_id_frame(size_t *len)
{
	size_t n;
	uint8_t *f = th_rc_params_frame("host=x", 9, (GATE_BYTES - 400) / 2, &n);
	/* th_rc_params_frame starts the payload with the id, 08 09. */
	uint8_t *o = f && f[4] == 0x08 && f[5] == 9 ? malloc(n + 9) : NULL;
	if (o) {
		put_header(o, n - 4 + 9);
		o[4] = 0x08;
		memset(o + 5, 0xff, 9);
		o[14] = 0x7f;
		memcpy(o + 15, f + 6, n - 6);
		*len = n + 9;
	}
	free(f);
	return o;
}

/* A frame of about `bytes` of Request{id 9, http: HttpRequest{url, empty
 * headers}}, encoded by hand. */
static uint8_t *headers_frame(size_t bytes, size_t *len)
{
	static const char url[] = "http://127.0.0.1:9/";
	size_t n = (bytes - 64) / 2, v = 2 + sizeof(url) - 1 + 2 * n;
	uint8_t *f = malloc(bytes);
	if (!f)
		return NULL;
	uint8_t *p = f + 4;
	*p++ = 0x08;
	*p++ = 9;
	*p++ = 0xf2; /* field 30 (http), length-delimited */
	*p++ = 0x01;
	for (; v >= 0x80; v >>= 7)
		*p++ = (uint8_t)(v | 0x80);
	*p++ = (uint8_t)v;
	*p++ = 0x12; /* HttpRequest.url */
	*p++ = sizeof(url) - 1;
	memcpy(p, url, sizeof(url) - 1);
	p += sizeof(url) - 1;
	for (size_t i = 0; i < n; i++) {
		*p++ = 0x1a; /* HttpRequest.headers, empty */
		*p++ = 0;
	}
	*len = (size_t)(p - f);
	put_header(f, *len - 4);
	return f;
}

/* As alice: the frame (headers or parameters, by g->headers), then
 * porterd's reply. */
static int send_gate_frame(void *arg)
{
	gate_try *g = arg;
	frame_reader rd;
	frame_reader_init(&rd, 1 << 20);
	int fd = th_rc_open(getenv("PORTER_SOCKET"), &rd, 5000, NULL);
	if (fd < 0)
		return g->rc = 1;
	size_t len;
	uint8_t *o = g->headers ? headers_frame(GATE_BYTES, &len) : overlong_id_frame(&len);
	if (!o)
		return g->rc = 2;
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, o + off, len - off);
		if (n <= 0)
			break; /* porterd may close once it has refused */
		off += (size_t)n;
	}
	free(o);
	Porter__V1__Response *r = th_rc_recv(fd, &rd, 20000);
	if (!r)
		return g->rc = 4;
	g->status = r->status;
	snprintf(g->message, sizeof(g->message), "%s", r->message ? r->message : "");
	porter__v1__response__free_unpacked(r, NULL);
	close(fd);
	frame_reader_free(&rd);
	return 0;
}

static int bob_pings(void *arg)
{
	(void)arg;
	return porter_ping("x", 1, 0, 5000) == 0 ? 0 : 1;
}

/* Starts porterd, sends alice's frame of kind `headers`, and checks it
 * was refused with porterd's peak memory bounded and the worker serving
 * bob after it. */
static void try_frame(int headers, const char *what)
{
	const char *args[] = {"--allow-uid", "61011,61012", "--workers", "1", NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, args), 0);
	long before = peak_kib(d.pid);
	ck_assert_int_gt(before, 0);
	gate_try *g = th_shared_alloc(sizeof(*g));
	ck_assert_ptr_nonnull(g);
	g->headers = headers;
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, 60000, send_gate_frame, g), 0);
	ck_assert_int_eq(g->rc, 0);
	long after = peak_kib(d.pid);
	printf("a %u KiB frame of %s: %s (%s); porterd's peak RSS %ld KiB before, %ld after\n",
	       GATE_BYTES / 1024, what, porter_error_name(g->status), g->message, before, after);
	/* Refused as malformed, before (parameters) or while (headers)
	 * unpacking. (The old code said the same, once protobuf-c had run
	 * out of its budget of 32 times the frame: the memory below tells
	 * the two apart.) */
	ck_assert_msg(g->status == PORTER_E_PROTOCOL, "expected PORTER_E_PROTOCOL, got %s: %s",
		      porter_error_name(g->status), g->message);
#ifndef PORTER_SANITIZED
	/* The frame's own buffer, and for headers what twice the frame and
	 * 8 MiB allow (17 and 48 MiB when tried); the old code's peak grew
	 * by 532,644 KiB (parameters) and 556,056 KiB (headers). */
	ck_assert_msg(after - before < 96 * 1024, "porterd's peak RSS grew %ld KiB",
		      after - before);
#endif
	/* The worker goes on serving. */
	ck_assert_int_eq(th_as(TH_UID_BOB, TH_GID_PORTER, 20000, bob_pings, NULL), 0);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}

START_TEST(parameter_gate_holds_for_any_encoding)
{
	try_frame(0, "empty parameters behind an over-long id");
}
END_TEST

START_TEST(large_frames_unpack_within_twice_their_size)
{
	try_frame(1, "empty HTTP headers");
}
END_TEST

/* ---- descriptors sent to porterd ---- */

/* How long alice's socket makes its last close wait. */
#define LINGER_S 30

typedef struct fd_try {
	volatile int ready; /* alice's descriptor is in flight to porterd */
	volatile int done;  /* the test has its answer: alice may go */
	int sent;           /* sendmsg's result */
	int err;            /* its errno */
	int rc;             /* 0, or where the child failed */
} fd_try;

/* As alice: connects to porterd and sends one byte (the first of a frame
 * header) carrying a lingering socket, closes her own copy of it (so the
 * one in flight is the last), and holds the socket's peer until the test
 * is done. */
static int send_lingering_fd(void *arg)
{
	fd_try *t = arg;
	int keep[2] = {-1, -1};
	int s = th_rc_lingering_socket(LINGER_S, keep);
	int fd = s < 0 ? -1 : th_rc_connect(getenv("PORTER_SOCKET"));
	if (fd >= 0) {
		t->sent = th_rc_send_fd(fd, s);
		t->err = t->sent < 0 ? errno : 0;
	}
	/* Refused: her own close of it is then the last, and must not wait. */
	struct linger now = {.l_onoff = 1, .l_linger = 0};
	if (s >= 0 && (fd < 0 || t->sent < 0))
		setsockopt(s, SOL_SOCKET, SO_LINGER, &now, sizeof(now));
	t->rc = s < 0 ? 1 : fd < 0 ? 2 : 0;
	if (s >= 0)
		close(s);
	t->ready = 1;
	th_wait_flag(&t->done, (LINGER_S + 10) * 1000);
	if (fd >= 0)
		close(fd);
	for (int i = 0; i < 2; i++)
		if (keep[i] >= 0)
			close(keep[i]);
	return 0;
}

typedef struct alice_thread {
	fd_try *t;
	int rc;
} alice_thread;

static void *run_alice(void *arg)
{
	alice_thread *a = arg;
	a->rc = th_as(TH_UID_ALICE, TH_GID_PORTER, (LINGER_S + 20) * 1000, send_lingering_fd, a->t);
	return NULL;
}

typedef struct bob_try {
	int rc;         /* porter_ping's */
	long long took; /* ms */
} bob_try;

static int bob_pings_once(void *arg)
{
	bob_try *b = arg;
	long long t0 = th_now_ms();
	b->rc = porter_ping("x", 1, 0, 5000);
	b->took = th_now_ms() - t0;
	return 0;
}

/* Alice sends her lingering socket to porterd (started with `args`, one
 * worker), then bob pings: he must be answered, and alice's sendmsg must
 * have been refused. */
static void try_fd(const char *const *args, const char *what)
{
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, args), 0);
	fd_try *t = th_shared_alloc(sizeof(*t));
	bob_try *b = th_shared_alloc(sizeof(*b));
	ck_assert_ptr_nonnull(t);
	ck_assert_ptr_nonnull(b);
	alice_thread a = {t, -1};
	pthread_t th;
	/* Stopped until alice has closed her copy: porterd's release of the
	 * one in flight must be the last (had porterd read or refused her
	 * connection first, her own close would be the one that waits). */
	ck_assert_int_eq(kill(d.pid, SIGSTOP), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, run_alice, &a), 0);
	int ready = th_wait_flag(&t->ready, 10000);
	ck_assert_int_eq(kill(d.pid, SIGCONT), 0);
	ck_assert_msg(ready, "alice's child never sent");
	/* Time for porterd to take alice's byte (and, on the old code, to
	 * start waiting on her socket's close). */
	usleep(300 * 1000);
	ck_assert_int_eq(th_as(TH_UID_BOB, TH_GID_PORTER, 20000, bob_pings_once, b), 0);
	t->done = 1;
	pthread_join(th, NULL);
	printf("%s: alice's sendmsg %d (%s); bob's ping %s in %lld ms\n", what, t->sent,
	       t->sent < 0 ? strerror(t->err) : "taken", porter_error_name(b->rc), b->took);
	ck_assert_int_eq(a.rc, 0);
	ck_assert_int_eq(t->rc, 0);
	ck_assert_msg(b->rc == 0, "%s: bob's ping got %s after %lld ms", what,
		      porter_error_name(b->rc), b->took);
	ck_assert_msg(t->sent < 0 && t->err == EPERM,
		      "%s: porterd's socket took alice's descriptor (sendmsg %d, %s)", what,
		      t->sent, strerror(t->err));
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_cleanup(&d);
}

START_TEST(a_lingering_descriptor_never_stalls_a_worker)
{
	const char *args[] = {"--allow-uid", "61011,61012", "--workers", "1", NULL};
	try_fd(args, "to alice's worker");
}
END_TEST

START_TEST(a_lingering_descriptor_never_stalls_the_acceptor)
{
	/* Alice may reach the socket (group) but is not let in: porterd
	 * closes her connection at accept, with her byte unread. */
	const char *args[] = {"--allow-uid", "61012", "--workers", "1", NULL};
	try_fd(args, "to the acceptor (alice refused)");
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {parameter_gate_holds_for_any_encoding,
				large_frames_unpack_within_twice_their_size,
				a_lingering_descriptor_never_stalls_a_worker,
				a_lingering_descriptor_never_stalls_the_acceptor, NULL};
	return th_suite("trust_wire", "trust_wire", 120, tests);
}

TH_MAIN_ROOT(suite)
