/*
 * Passed descriptors count as open file streams (issue 17: "a passed
 * descriptor counts as an open stream until it is returned or closed").
 *
 * porterd counts every descriptor it passes against the connection that
 * received it (file-max-streams) and its uid (file-max-streams-per-uid,
 * with its streams) until the client reports it closed (fds_closed in its
 * next FileRead or FileWriteOpen) or the connection closes; past a limit it
 * passes none and serves the request by bytes. Checked over the raw
 * protocol (a client that never reports is capped, a report is clamped to
 * what the connection holds, a closed connection gives all back) and
 * through libporter (sequential reads, reads into a buffer, readers and
 * writes by descriptor never reach a limit of 4). The other uid left
 * unaffected is in test_trust_fd_count.c.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "files_fd_fixture.h"
#include "frame.h"
#include "porter.h"

#define MAXFD 64

typedef struct raw {
	int fd;
	frame_reader rd;
	int fds[MAXFD]; /* descriptors received, kept open until raw_close */
	int n_fds;
} raw;

static void raw_open(raw *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = th_raw_connect(d.socket);
	frame_reader_init(&c->rd, 64u << 20);
	th_raw_hello(c->fd, &c->rd, PORTER_PROTOCOL_VERSION, 0);
}

static void raw_close(raw *c)
{
	for (int i = 0; i < c->n_fds; i++)
		close(c->fds[i]);
	close(c->fd);
	frame_reader_free(&c->rd);
}

/* A FileRead of `path` in "main" with request id `id`, asking for the
 * descriptor and reporting `closed` closes; returns its reply
 * (descriptors collected in `c`). */
static Porter__V1__Response *raw_read_id(raw *c, uint64_t id, const char *path, uint32_t closed)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileRead fr = PORTER__V1__FILE_READ__INIT;
	fr.root = "main";
	fr.path = (char *)path;
	fr.want_fd = 1;
	fr.fds_closed = closed;
	req.id = id;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_READ;
	req.file_read = &fr;
	th_raw_send(c->fd, &req);
	Porter__V1__Response *r = th_raw_recv_fds(c->fd, &c->rd, T, c->fds, &c->n_fds, MAXFD);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->id, req.id);
	return r;
}

/* raw_read_id with the next of the suite's ids. */
static Porter__V1__Response *raw_read(raw *c, const char *path, uint32_t closed)
{
	static uint64_t id = 100;
	return raw_read_id(c, ++id, path, closed);
}

/* Reads "big" by descriptor on `c` (reporting `closed`), asserting one
 * came. */
static void take_fd(raw *c, uint32_t closed)
{
	int had = c->n_fds;
	Porter__V1__Response *r = raw_read(c, "big", closed);
	ck_assert_msg(r->status == 0, "read by descriptor: %s", r->message);
	ck_assert(r->file_read->fd_passed);
	ck_assert_int_eq(c->n_fds, had + 1);
	porter__v1__response__free_unpacked(r, NULL);
}

/* Reads "big" asking for the descriptor on `c`, asserting that none came
 * and the read was refused with PORTER_E_BUSY naming `limit`. */
static void refused(raw *c, const char *limit)
{
	int had = c->n_fds;
	Porter__V1__Response *r = raw_read(c, "big", 0);
	ck_assert_int_eq(c->n_fds, had);
	ck_assert_msg(r->status == PORTER_E_BUSY, "status %d (%s)", r->status,
		      r->message ? r->message : "");
	ck_assert_msg(strstr(r->message, limit), "message '%s' does not name %s", r->message,
		      limit);
	porter__v1__response__free_unpacked(r, NULL);
}

/* This uid's file_streams as porterd counts them. */
static uint64_t uid_file_streams(void)
{
	porter_stats_snapshot *s = NULL;
	ck_assert_int_eq(porter_stats(0, T, &s), 0);
	uint64_t n = 0;
	for (size_t i = 0; i < porter_stats_uids(s); i++) {
		porter_uid_usage u = PORTER_UID_USAGE_INIT;
		ck_assert_int_eq(porter_stats_uid(s, i, &u), 0);
		if (u.uid == getuid())
			n = u.file_streams;
	}
	porter_stats_free(s);
	return n;
}

/*
 * A client that never reports its closes gets file-max-streams-per-uid (4)
 * descriptors over all its connections and no more: then a read that needs
 * a stream is refused naming the limit, while one chunk still comes as
 * bytes. A report gives back what it names, never more than the
 * connection holds.
 */
START_TEST(raw_client_capped_per_uid)
{
	raw a, b;
	raw_open(&a);
	raw_open(&b);
	for (int i = 0; i < 3; i++)
		take_fd(&a, 0);
	take_fd(&b, 0);
	ck_assert_uint_eq(uid_file_streams(), 4);
	refused(&a, "file-max-streams-per-uid");
	refused(&b, "file-max-streams-per-uid");
	/* One chunk needs no stream: it comes as bytes, with no descriptor. */
	Porter__V1__Response *r = raw_read(&a, "f", 0);
	ck_assert_int_eq(r->status, 0);
	ck_assert(!r->file_read->fd_passed);
	ck_assert_uint_eq(r->file_read->data.len, 17);
	porter__v1__response__free_unpacked(r, NULL);
	ck_assert_int_eq(a.n_fds, 3);

	/* a closes one and says so: one more comes. */
	close(a.fds[--a.n_fds]);
	take_fd(&a, 1);
	refused(&a, "file-max-streams-per-uid");
	/* A report of more closes than a connection holds gives back only
	 * what it holds: a (3) may take 3 again, b's 1 still counts. */
	for (int i = 0; i < 3; i++)
		close(a.fds[--a.n_fds]);
	take_fd(&a, 1000);
	take_fd(&a, 0);
	take_fd(&a, 0);
	refused(&a, "file-max-streams-per-uid");
	/* b's report cannot give back a's. */
	take_fd(&b, 1000); /* its 1 back, then 1 again */
	refused(&b, "file-max-streams-per-uid");
	ck_assert_uint_eq(uid_file_streams(), 4);
	raw_close(&a);
	raw_close(&b);
}
END_TEST

/*
 * A connection holds at most file-max-streams (2) passed descriptors; past
 * that it is served by bytes (a stream of its own, which is under its
 * limit), and another connection still gets descriptors.
 */
START_TEST(raw_client_capped_per_connection)
{
	raw a, b;
	raw_open(&a);
	raw_open(&b);
	take_fd(&a, 0);
	take_fd(&a, 0);
	Porter__V1__Response *r = raw_read(&a, "big", 0);
	ck_assert_int_eq(r->status, 0);
	ck_assert(!r->file_read->fd_passed);
	ck_assert_int_eq(a.n_fds, 2);
	ck_assert_uint_eq(r->file_read->data.len, 65536); /* the first chunk */
	ck_assert_uint_ne(r->file_read->stream_id, 0);
	porter__v1__response__free_unpacked(r, NULL);
	take_fd(&b, 0);
	raw_close(&a);
	raw_close(&b);
}
END_TEST

/* A connection's close gives back all it was counted for, though the
 * process keeps the descriptors (the count is the connection's). */
START_TEST(connection_close_gives_back)
{
	raw a;
	raw_open(&a);
	for (int i = 0; i < 4; i++)
		take_fd(&a, 0);
	refused(&a, "file-max-streams-per-uid");
	int kept[4];
	memcpy(kept, a.fds, sizeof(kept));
	a.n_fds = 0;
	raw_close(&a);
	/* porterd sees the close when its loop reads the end of the
	 * connection: a generous bound. */
	uint64_t n = 4;
	for (int i = 0; i < 1000 && (n = uid_file_streams()) != 0; i++)
		usleep(10000);
	ck_assert_uint_eq(n, 0);
	raw b;
	raw_open(&b);
	for (int i = 0; i < 4; i++)
		take_fd(&b, 0);
	refused(&b, "file-max-streams-per-uid");
	raw_close(&b);
	for (int i = 0; i < 4; i++)
		close(kept[i]);
}
END_TEST

/* Closes every descriptor `c` received (the client's side of a report). */
static uint32_t close_all(raw *c)
{
	uint32_t n = (uint32_t)c->n_fds;
	while (c->n_fds)
		close(c->fds[--c->n_fds]);
	return n;
}

/*
 * A report of closes counts even when the request carrying it is refused
 * before any file code sees it, here because its id was cancelled first
 * (the client sends each close once: a lost report would keep the
 * descriptors counted until the connection closes).
 */
START_TEST(report_counts_when_cancelled_first)
{
	raw a;
	raw_open(&a);
	for (int i = 0; i < 4; i++)
		take_fd(&a, 0);
	refused(&a, "file-max-streams-per-uid");
	uint32_t closed = close_all(&a);
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__Cancel cn = PORTER__V1__CANCEL__INIT;
	cn.target_id = 7777;
	req.id = 7776;
	req.body_case = PORTER__V1__REQUEST__BODY_CANCEL;
	req.cancel = &cn;
	th_raw_send(a.fd, &req);
	Porter__V1__Response *r = th_raw_recv(a.fd, &a.rd, T);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->status, 0);
	ck_assert(!r->cancel->found);
	porter__v1__response__free_unpacked(r, NULL);
	r = raw_read_id(&a, 7777, "big", closed);
	ck_assert_msg(r->status == PORTER_E_CANCELLED, "status %d (%s)", r->status,
		      r->message ? r->message : "");
	ck_assert_int_eq(a.n_fds, 0);
	porter__v1__response__free_unpacked(r, NULL);
	ck_assert_uint_eq(uid_file_streams(), 0);
	for (int i = 0; i < 4; i++)
		take_fd(&a, 0);
	raw_close(&a);
}
END_TEST

/*
 * The same when the uid's in-flight limit (uid-max-inflight 1) refuses it:
 * b's delayed ping fills it while a's report arrives.
 */
START_TEST(report_counts_when_over_inflight)
{
	raw a, b;
	raw_open(&a);
	raw_open(&b);
	for (int i = 0; i < 3; i++)
		take_fd(&a, 0);
	uint32_t closed = close_all(&a);
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__Ping pg = PORTER__V1__PING__INIT;
	pg.delay_ms = 1500;
	req.id = 9;
	req.body_case = PORTER__V1__REQUEST__BODY_PING;
	req.ping = &pg;
	th_raw_send(b.fd, &req);
	/* b's ping is in flight once a read of a is refused for it. */
	Porter__V1__Response *r = NULL;
	int busy = 0;
	for (int i = 0; i < 1000 && !busy; i++) {
		r = raw_read(&a, "f", 0);
		busy = r->status == PORTER_E_BUSY;
		ck_assert(busy || r->status == 0);
		porter__v1__response__free_unpacked(r, NULL);
		if (!busy)
			usleep(1000);
	}
	ck_assert(busy);
	/* The report comes with a request refused the same way. */
	r = raw_read(&a, "f", closed);
	ck_assert_int_eq(r->status, PORTER_E_BUSY);
	ck_assert_msg(strstr(r->message, "uid-max-inflight"), "message '%s'", r->message);
	porter__v1__response__free_unpacked(r, NULL);
	r = th_raw_recv(b.fd, &b.rd, T);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->status, 0);
	porter__v1__response__free_unpacked(r, NULL);
	ck_assert_uint_eq(uid_file_streams(), 0);
	raw_close(&a);
	raw_close(&b);
}
END_TEST

/* The descriptors this process has open. */
static int open_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	ck_assert_ptr_nonnull(dir);
	int n = 0;
	while (readdir(dir))
		n++;
	closedir(dir);
	return n;
}

/* Sends request `req` (id set) on `c` and returns its reply, descriptors
 * collected in `c`. */
static Porter__V1__Response *raw_call(raw *c, Porter__V1__Request *req)
{
	th_raw_send(c->fd, req);
	Porter__V1__Response *r = th_raw_recv_fds(c->fd, &c->rd, T, c->fds, &c->n_fds, MAXFD);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->id, req->id);
	ck_assert_msg(r->status == 0, "status %d (%s)", r->status, r->message);
	return r;
}

/* Opens an atomic write of `path` by descriptor on `c`; returns its
 * stream id, the temp file's descriptor the last of c->fds. */
static uint64_t raw_atomic_open(raw *c, const char *path)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileWriteOpen wo = PORTER__V1__FILE_WRITE_OPEN__INIT;
	wo.root = "main";
	wo.path = (char *)path;
	wo.flags = PORTER_FILE_ATOMIC;
	wo.mode = 0600;
	wo.want_fd = 1;
	req.id = 500 + (uint64_t)c->n_fds;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_WRITE_OPEN;
	req.file_write_open = &wo;
	int had = c->n_fds;
	Porter__V1__Response *r = raw_call(c, &req);
	ck_assert(r->file_write->fd_passed);
	ck_assert_int_eq(c->n_fds, had + 1);
	uint64_t sid = r->file_write->stream_id;
	ck_assert_uint_ne(sid, 0);
	porter__v1__response__free_unpacked(r, NULL);
	return sid;
}

/* Commits stream `sid` on `c`, saying `fd_closed`. */
static void raw_commit(raw *c, uint64_t sid, int fd_closed)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileWriteCommit wc = PORTER__V1__FILE_WRITE_COMMIT__INIT;
	wc.stream_id = sid;
	wc.fd_closed = fd_closed;
	req.id = 600;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_WRITE_COMMIT;
	req.file_write_commit = &wc;
	porter__v1__response__free_unpacked(raw_call(c, &req), NULL);
}

/*
 * An atomic write by descriptor is one file: its stream and the temp
 * file's descriptor count once. A client that does not say it closed the
 * descriptor at the commit keeps it counted (it may still hold it) until
 * its report; one that says so frees the slot with the commit.
 */
START_TEST(raw_atomic_counts_once)
{
	raw a;
	raw_open(&a);
	uint64_t sid = raw_atomic_open(&a, "at1");
	ck_assert_uint_eq(uid_file_streams(), 1);
	ck_assert(write(a.fds[a.n_fds - 1], "one", 3) == 3);
	raw_commit(&a, sid, 0);
	ck_assert_uint_eq(uid_file_streams(), 1); /* the descriptor, still open */
	close(a.fds[--a.n_fds]);
	porter__v1__response__free_unpacked(raw_read(&a, "f", 1), NULL);
	ck_assert_uint_eq(uid_file_streams(), 0);

	sid = raw_atomic_open(&a, "at2");
	ck_assert(write(a.fds[a.n_fds - 1], "two", 3) == 3);
	close(a.fds[--a.n_fds]);
	raw_commit(&a, sid, 1);
	ck_assert_uint_eq(uid_file_streams(), 0);
	/* Nothing is owed: a itself gets the whole limit. */
	for (int i = 0; i < 4; i++)
		take_fd(&a, 0);
	refused(&a, "file-max-streams-per-uid");
	char p[128], got[8] = {0};
	snprintf(p, sizeof(p), "%s/at2", root);
	FILE *f = fopen(p, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fread(got, 1, sizeof(got), f), 3);
	fclose(f);
	ck_assert_str_eq(got, "two");
	raw_close(&a);
}
END_TEST

/*
 * libporter: under a limit of 4, four atomic writers by descriptor are
 * open at once (each holds one descriptor of this process: by
 * descriptor), and their commits leave nothing counted.
 */
START_TEST(libporter_atomic_writers_count_once)
{
	porter_file_writer *w[4];
	/* The thread's connection is open before counting. */
	ck_assert_uint_eq(uid_file_streams(), 0);
	int before = open_fds();
	for (int i = 0; i < 4; i++) {
		char name[16];
		snprintf(name, sizeof(name), "aw%d", i);
		int rc = porter_file_writer_open("main", name, PORTER_FILE_ATOMIC, 0600, 0, T,
						 &w[i]);
		ck_assert_msg(rc == 0, "writer %d: %s", i, porter_last_error_message());
	}
	ck_assert_int_eq(open_fds(), before + 4);
	ck_assert_uint_eq(uid_file_streams(), 4);
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(porter_file_writer_write(w[i], "data", 4, 0, T), 0);
		ck_assert_int_eq(porter_file_writer_commit(w[i], 0, T), 0);
		ck_assert_int_eq(porter_file_writer_close(w[i], T), 0);
	}
	ck_assert_uint_eq(uid_file_streams(), 0);
	/* One given up: its close says the descriptor is closed too. */
	ck_assert_int_eq(
		porter_file_writer_open("main", "aw", PORTER_FILE_ATOMIC, 0600, 0, T, &w[0]), 0);
	ck_assert_uint_eq(uid_file_streams(), 1);
	ck_assert_int_eq(porter_file_writer_close(w[0], T), 0);
	ck_assert_uint_eq(uid_file_streams(), 0);
}
END_TEST

/* A file of `n` bytes for the writes, filled with a pattern. */
static char *pattern(size_t n)
{
	char *p = malloc(n);
	ck_assert_ptr_nonnull(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (char)('a' + i % 26);
	return p;
}

/*
 * libporter reports every close: with a limit of 4, 1,000 sequential
 * reads by descriptor, 200 reads into a buffer, 100 readers and 200 plain
 * writes by descriptor all succeed. After them this connection is counted
 * for exactly one descriptor (the last, closed and not yet reported: the
 * proof they went by descriptor), and the next read reports it.
 */
START_TEST(libporter_never_hits_it)
{
	char want[100017];
	FILE *f;
	char p[128];
	snprintf(p, sizeof(p), "%s/big", root);
	ck_assert_ptr_nonnull(f = fopen(p, "r"));
	ck_assert_uint_eq(fread(want, 1, sizeof(want), f), sizeof(want));
	fclose(f);

	for (int i = 0; i < 1000; i++) {
		porter_bytes *b = NULL;
		int rc = porter_file_read("main", "big", 0, 0, 0, T, &b);
		ck_assert_msg(rc == 0, "read %d: %s", i, porter_last_error_message());
		ck_assert_uint_eq(b->len, sizeof(want));
		ck_assert(memcmp(b->data, want, sizeof(want)) == 0);
		porter_bytes_free(b);
	}
	ck_assert_uint_eq(uid_file_streams(), 1);
	static char buf[200000];
	for (int i = 0; i < 200; i++) {
		size_t got = 0;
		int rc = porter_file_read_into("main", "big", 0, buf, sizeof(buf), 0, T, &got);
		ck_assert_msg(rc == 0, "read_into %d: %s", i, porter_last_error_message());
		ck_assert_uint_eq(got, sizeof(want));
	}
	for (int i = 0; i < 100; i++) {
		porter_file_reader *rd = NULL;
		ck_assert_int_eq(porter_file_reader_open("main", "big", 0, 0, 0, 0, T, &rd), 0);
		const void *data;
		size_t len, total = 0;
		int rc;
		while ((rc = porter_file_reader_read(rd, 0, T, &data, &len)) == 1)
			total += len;
		ck_assert_int_eq(rc, 0);
		ck_assert_uint_eq(total, sizeof(want));
		ck_assert_int_eq(porter_file_reader_close(rd, T), 0);
	}
	char *w = pattern(200000);
	for (int i = 0; i < 200; i++) {
		int rc = porter_file_write("main", "w", w, 200000,
					   PORTER_FILE_CREATE | PORTER_FILE_TRUNCATE, 0600, 0, T);
		ck_assert_msg(rc == 0, "write %d: %s", i, porter_last_error_message());
	}
	free(w);
	ck_assert_uint_eq(uid_file_streams(), 1);
	porter_bytes *b = NULL;
	ck_assert_int_eq(porter_file_read("main", "f", 0, 0, 0, T, &b), 0);
	porter_bytes_free(b);
	ck_assert_uint_eq(uid_file_streams(), 0);
}
END_TEST

static void setup_per_uid(void)
{
	setup_with("--file-max-streams-per-uid", "4");
}

static void setup_inflight(void)
{
	setup_with("--uid-max-inflight", "1");
}

static void setup_per_conn(void)
{
	setup_with("--file-max-streams", "2");
}

static Suite *suite(void)
{
	const TTest *const per_uid[] = {raw_client_capped_per_uid,
					connection_close_gives_back,
					report_counts_when_cancelled_first,
					raw_atomic_counts_once,
					libporter_atomic_writers_count_once,
					libporter_never_hits_it,
					NULL};
	const TTest *const per_conn[] = {raw_client_capped_per_connection, NULL};
	const TTest *const inflight[] = {report_counts_when_over_inflight, NULL};
	Suite *s = suite_create("files_fd_count");
	tcase_add_checked_fixture(th_tcase(s, "per_uid", 120, per_uid), setup_per_uid, teardown);
	tcase_add_checked_fixture(th_tcase(s, "per_conn", 60, per_conn), setup_per_conn, teardown);
	tcase_add_checked_fixture(th_tcase(s, "inflight", 60, inflight), setup_inflight, teardown);
	return s;
}

TH_MAIN(suite)
