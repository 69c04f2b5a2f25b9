/*
 * Unit tests of daemon/fsstream.c, the per-worker tables of open file
 * streams, on workers that are only a loop and a configuration (no
 * daemon, no files: the streams hold no descriptors). What is tested: ids
 * name their worker and are never 0; a stream is found only by its owner
 * (uid and client instance), anyone else reads it as unknown; one request
 * at a time; the wrong kind is refused unless any kind will do; the
 * per-connection and per-uid limits (the latter over all workers, in the
 * uid's counters) and the slots given back; a connection's close drops
 * its streams, a busy one when its request ends; the count leaves out
 * what was dropped; a closing worker refuses new streams and frees its
 * table once the busy ones are released.
 */
#include <check.h>
#include <string.h>
#include <uv.h>

#include "clients.h"
#include "config.h"
#include "fsstream.h"
#include "fwd.h"
#include "porter_errors.h"
#include "thmain.h"
#include "worker.h"

#define UID 61111
#define INST 7

/* A worker that is a loop, a configuration and a stream table. */
typedef struct fixture {
	config cfg;
	worker w;
} fixture;

static void fixture_init(fixture *f, unsigned index, uint32_t per_conn, uint32_t per_uid)
{
	memset(f, 0, sizeof(*f));
	f->cfg.file_max_streams = per_conn;
	f->cfg.file_max_streams_per_uid = per_uid;
	f->cfg.file_stream_idle_ms = 600000;
	f->w.index = index;
	f->w.cfg = &f->cfg;
	ck_assert_int_eq(uv_loop_init(&f->w.loop), 0);
	ck_assert_int_eq(fsstream_worker_init(&f->w), 0);
}

/* Closes the table (the busy streams must have been released) and the
 * loop, which fails if a handle were left. */
static void fixture_done(fixture *f)
{
	fsstream_worker_close(&f->w);
	ck_assert_ptr_null(f->w.fs_streams);
	uv_run(&f->w.loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&f->w.loop), 0);
}

/* Publishes a new stream of `kind` for (uid, INST) on connection `conn`
 * of `f`; returns publish's code and the stream (held busy) in `*out`. */
static int open_stream(fixture *f, uid_t uid, uint64_t conn, enum fsstream_kind kind,
		       fs_stream **out, char *msg, size_t cap)
{
	fs_stream *s = fsstream_new(uid, INST, f->w.index, conn, kind);
	ck_assert_ptr_nonnull(s);
	int rc = fsstream_publish(&f->w, s, msg, cap);
	*out = rc ? NULL : s;
	return rc;
}

static uint64_t uid_file_streams(uid_t uid)
{
	clients_uid_usage u;
	if (!clients_uid_usage_get(uid, &u))
		return 0;
	return u.use[CLIENTS_FILE_STREAMS];
}

START_TEST(ids_name_their_worker)
{
	for (unsigned owner = 0; owner < 70000; owner += 4999) {
		fs_stream *s = fsstream_new(UID, INST, owner % 65536, 1, FSSTREAM_READ);
		ck_assert_ptr_nonnull(s);
		ck_assert_uint_ne(s->id, 0);
		ck_assert_uint_eq(fwd_id_owner(s->id), owner % 65536);
		ck_assert_int_eq(s->fd, -1);
		ck_assert_int_eq(s->dirfd, -1);
		ck_assert_int_eq(s->writing, 0);
		fsstream_destroy(s);
	}
	fs_stream *w = fsstream_new(UID, INST, 3, 1, FSSTREAM_WRITE);
	ck_assert_int_eq(w->writing, 1);
	fs_stream *x = fsstream_new(UID, INST, 3, 1, FSSTREAM_WRITE);
	ck_assert_uint_ne(w->id, x->id);
	fsstream_destroy(w);
	fsstream_destroy(x);
	fsstream_destroy(NULL);
}
END_TEST

/* Only the owner finds its stream; another uid, or another process of the
 * same uid, reads exactly like an unknown id. One request at a time. */
START_TEST(only_the_owner_takes_one_request_at_a_time)
{
	fixture f;
	fixture_init(&f, 2, 8, 8);
	char msg[256], other[256];
	fs_stream *s, *got = NULL;
	ck_assert_int_eq(open_stream(&f, UID, 1, FSSTREAM_READ, &s, msg, sizeof(msg)), 0);
	ck_assert_int_eq(s->busy, 1);
	ck_assert_uint_eq(fsstream_count(&f.w), 1);
	/* Held by the publishing request. */
	ck_assert_int_eq(
		fsstream_take(&f.w, s->id, UID, INST, FSSTREAM_READ, 0, &got, msg, sizeof(msg)),
		PORTER_E_BUSY);
	fsstream_release(s, 0);
	ck_assert_int_eq(s->busy, 0);

	ck_assert_int_eq(
		fsstream_take(&f.w, s->id + 1, UID, INST, FSSTREAM_READ, 0, &got, msg, sizeof(msg)),
		PORTER_E_NOT_FOUND);
	ck_assert_int_eq(fsstream_take(&f.w, s->id, UID + 1, INST, FSSTREAM_READ, 0, &got, other,
				       sizeof(other)),
			 PORTER_E_NOT_FOUND);
	ck_assert_str_eq(other, msg); /* the same words as for an unknown id */
	ck_assert_int_eq(fsstream_take(&f.w, s->id, UID, INST + 1, FSSTREAM_READ, 0, &got, other,
				       sizeof(other)),
			 PORTER_E_NOT_FOUND);
	ck_assert_str_eq(other, msg);
	ck_assert_ptr_null(got);

	/* The wrong kind, unless any will do (a close). */
	ck_assert_int_eq(
		fsstream_take(&f.w, s->id, UID, INST, FSSTREAM_WRITE, 0, &got, msg, sizeof(msg)),
		PORTER_E_INVAL);
	ck_assert_int_eq(s->busy, 0);
	ck_assert_int_eq(
		fsstream_take(&f.w, s->id, UID, INST, FSSTREAM_WRITE, 1, &got, msg, sizeof(msg)),
		0);
	ck_assert_ptr_eq(got, s);
	ck_assert_int_eq(s->busy, 1);
	ck_assert_int_eq(
		fsstream_take(&f.w, s->id, UID, INST, FSSTREAM_READ, 0, &got, msg, sizeof(msg)),
		PORTER_E_BUSY);
	uint64_t id = s->id;
	fsstream_release(s, 1); /* ended */
	ck_assert_uint_eq(fsstream_count(&f.w), 0);
	ck_assert_int_eq(
		fsstream_take(&f.w, id, UID, INST, FSSTREAM_READ, 0, &got, msg, sizeof(msg)),
		PORTER_E_NOT_FOUND);
	fixture_done(&f);
}
END_TEST

/* One connection holds at most file-max-streams; another connection of
 * the same client is not held back by it, and a stream given back makes
 * room again. */
START_TEST(per_connection_limit)
{
	fixture f;
	fixture_init(&f, 0, 3, 100);
	char msg[256];
	fs_stream *s[3], *extra;
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(open_stream(&f, UID, 10, FSSTREAM_READ, &s[i], msg, sizeof(msg)),
				 0);
		fsstream_release(s[i], 0);
	}
	ck_assert_int_eq(open_stream(&f, UID, 10, FSSTREAM_WRITE, &extra, msg, sizeof(msg)),
			 PORTER_E_BUSY);
	ck_assert_ptr_nonnull(strstr(msg, "file-max-streams"));
	ck_assert_uint_eq(fsstream_count(&f.w), 3);
	ck_assert_uint_eq(uid_file_streams(UID), 3); /* the refused one gave its slot back */
	ck_assert_int_eq(open_stream(&f, UID, 11, FSSTREAM_READ, &extra, msg, sizeof(msg)), 0);
	fsstream_release(extra, 0);
	ck_assert_uint_eq(fsstream_count(&f.w), 4);
	/* A stream taken and dropped frees its connection's place. */
	fs_stream *got;
	ck_assert_int_eq(
		fsstream_take(&f.w, s[1]->id, UID, INST, FSSTREAM_READ, 0, &got, msg, sizeof(msg)),
		0);
	fsstream_release(got, 1);
	ck_assert_int_eq(open_stream(&f, UID, 10, FSSTREAM_READ, &extra, msg, sizeof(msg)), 0);
	fsstream_release(extra, 0);
	ck_assert_uint_eq(uid_file_streams(UID), 4);
	fixture_done(&f);
	/* Closing the worker gave every slot back. */
	ck_assert_uint_eq(uid_file_streams(UID), 0);
}
END_TEST

/* One uid holds at most file-max-streams-per-uid over all workers; other
 * uids are not held back by it. */
START_TEST(per_uid_limit_spans_workers)
{
	fixture a, b;
	fixture_init(&a, 0, 100, 3);
	fixture_init(&b, 1, 100, 3);
	char msg[256];
	fs_stream *s, *t;
	ck_assert_int_eq(open_stream(&a, UID, 1, FSSTREAM_READ, &s, msg, sizeof(msg)), 0);
	fsstream_release(s, 0);
	ck_assert_int_eq(open_stream(&a, UID, 2, FSSTREAM_READ, &s, msg, sizeof(msg)), 0);
	fsstream_release(s, 0);
	ck_assert_int_eq(open_stream(&b, UID, 1, FSSTREAM_WATCH, &t, msg, sizeof(msg)), 0);
	fsstream_release(t, 0);
	ck_assert_uint_eq(uid_file_streams(UID), 3);
	ck_assert_int_eq(open_stream(&b, UID, 2, FSSTREAM_READ, &t, msg, sizeof(msg)),
			 PORTER_E_BUSY);
	ck_assert_ptr_nonnull(strstr(msg, "file-max-streams-per-uid"));
	ck_assert_int_eq(open_stream(&a, UID, 3, FSSTREAM_READ, &t, msg, sizeof(msg)),
			 PORTER_E_BUSY);
	ck_assert_uint_eq(uid_file_streams(UID), 3);
	/* Another uid has its own. */
	ck_assert_int_eq(open_stream(&b, UID + 1, 2, FSSTREAM_READ, &t, msg, sizeof(msg)), 0);
	fsstream_release(t, 0);
	ck_assert_uint_eq(uid_file_streams(UID + 1), 1);
	/* A reload applies to the next open. */
	b.cfg.file_max_streams_per_uid = 4;
	ck_assert_int_eq(open_stream(&b, UID, 2, FSSTREAM_READ, &t, msg, sizeof(msg)), 0);
	fsstream_release(t, 0);
	ck_assert_uint_eq(uid_file_streams(UID), 4);
	fixture_done(&b);
	ck_assert_uint_eq(uid_file_streams(UID), 2);
	fixture_done(&a);
	ck_assert_uint_eq(uid_file_streams(UID), 0);
	ck_assert_uint_eq(uid_file_streams(UID + 1), 0);
}
END_TEST

/* A connection's close drops the streams it opened and no others; one
 * busy in a request goes when the request releases it, and is not found
 * meanwhile. */
START_TEST(conn_close_drops_its_streams)
{
	fixture f;
	fixture_init(&f, 0, 10, 10);
	char msg[256];
	fs_stream *idle1, *idle2, *busy, *other;
	ck_assert_int_eq(open_stream(&f, UID, 5, FSSTREAM_READ, &idle1, msg, sizeof(msg)), 0);
	fsstream_release(idle1, 0);
	ck_assert_int_eq(open_stream(&f, UID, 5, FSSTREAM_WRITE, &idle2, msg, sizeof(msg)), 0);
	fsstream_release(idle2, 0);
	ck_assert_int_eq(open_stream(&f, UID, 5, FSSTREAM_READ, &busy, msg, sizeof(msg)), 0);
	ck_assert_int_eq(open_stream(&f, UID, 6, FSSTREAM_READ, &other, msg, sizeof(msg)), 0);
	fsstream_release(other, 0);
	ck_assert_uint_eq(fsstream_count(&f.w), 4);
	uint64_t busy_id = busy->id;
	fsstream_conn_closed(&f.w, 5);
	ck_assert_uint_eq(fsstream_count(&f.w), 2); /* the busy one and the other's */
	ck_assert_uint_eq(uid_file_streams(UID), 2);
	ck_assert_int_eq(busy->doomed, 1);
	fs_stream *got = NULL;
	ck_assert_int_eq(
		fsstream_take(&f.w, busy_id, UID, INST, FSSTREAM_READ, 1, &got, msg, sizeof(msg)),
		PORTER_E_NOT_FOUND);
	fsstream_release(busy, 0); /* doomed: dropped now */
	ck_assert_uint_eq(fsstream_count(&f.w), 1);
	ck_assert_uint_eq(uid_file_streams(UID), 1);
	ck_assert_int_eq(
		fsstream_take(&f.w, other->id, UID, INST, FSSTREAM_READ, 0, &got, msg, sizeof(msg)),
		0);
	fsstream_release(got, 0);
	fsstream_conn_closed(&f.w, 999); /* nothing of it */
	ck_assert_uint_eq(fsstream_count(&f.w), 1);
	fixture_done(&f);
}
END_TEST

/* A closing worker takes no new stream; a stream busy at close goes (and
 * the table with it) when its request releases it; a stream never
 * published is just freed. */
START_TEST(closing_worker_refuses_and_frees_after_release)
{
	fixture f;
	fixture_init(&f, 0, 10, 10);
	char msg[256];
	fs_stream *busy, *late;
	ck_assert_int_eq(open_stream(&f, UID, 1, FSSTREAM_READ, &busy, msg, sizeof(msg)), 0);
	fsstream_worker_close(&f.w);
	ck_assert_ptr_null(f.w.fs_streams);
	ck_assert_uint_eq(fsstream_count(&f.w), 0);
	ck_assert_int_eq(busy->doomed, 1);
	ck_assert_int_eq(open_stream(&f, UID, 1, FSSTREAM_READ, &late, msg, sizeof(msg)),
			 PORTER_E_SHUTDOWN);
	fs_stream *got;
	ck_assert_int_eq(
		fsstream_take(&f.w, busy->id, UID, INST, FSSTREAM_READ, 0, &got, msg, sizeof(msg)),
		PORTER_E_NOT_FOUND);
	fsstream_conn_closed(&f.w, 1);     /* no table: nothing */
	uv_run(&f.w.loop, UV_RUN_DEFAULT); /* the timer closes */
	ck_assert_uint_eq(uid_file_streams(UID), 1);
	fsstream_release(busy, 0); /* the last: frees the table (LSan) */
	ck_assert_uint_eq(uid_file_streams(UID), 0);
	ck_assert_int_eq(uv_loop_close(&f.w.loop), 0);

	fs_stream *loose = fsstream_new(UID, INST, 0, 1, FSSTREAM_WATCH);
	fsstream_release(loose, 0); /* not in a table: destroyed */
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {ids_name_their_worker,
				only_the_owner_takes_one_request_at_a_time,
				per_connection_limit,
				per_uid_limit_spans_workers,
				conn_close_drops_its_streams,
				closing_worker_refuses_and_frees_after_release,
				NULL};
	return th_suite("fsstream", "fsstream", 30, tests);
}

TH_MAIN(suite)
