/*
 * File watches (issue 17, item 3): a stream of change events of a file or
 * directory inside a root. Proven here: each kind of event (created,
 * modified, deleted, moved, with names relative to the root), a read that
 * waits and one that times out empty, the end of a watch whose object is
 * deleted or moved away (and nothing seen at its old path afterwards, even
 * a symlink planted there), paths escaping the root refused, a flood of
 * events bounded with an overflow event, a watch read from a thread whose
 * connection is on the other worker, and an unread watch reclaimed with
 * its owner told; an atomic write seen as the creation of its target,
 * never as porterd's temp files.
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"

#define T 10000
#define IDLE_MS 1500
/* The idle time, the sweep's period and plenty of slack for a busy
 * machine. */
#define RECLAIMED_AFTER_MS (IDLE_MS + 1000 + 2500)

static th_daemon d;
static char root[64];
static char outside[64];

static void at(char *buf, size_t cap, const char *dir, const char *rel)
{
	snprintf(buf, cap, "%s/%s", dir, rel);
}

static void put(const char *dir, const char *rel, const char *content, const char *mode)
{
	char p[256];
	at(p, sizeof(p), dir, rel);
	FILE *f = fopen(p, mode);
	ck_assert_ptr_nonnull(f);
	fputs(content, f);
	fclose(f);
}

/* porterd on the root, with `idle` ms before an unread watch is
 * reclaimed (long, but for the reclaim test: a flood of file creations
 * on a busy machine may take seconds). */
static void start_daemon(const char *idle)
{
	char roots[160];
	snprintf(roots, sizeof(roots), "r=%s", root);
	const char *args[] = {"--file-roots",       roots, "--workers", "2",
			      "--file-stream-idle", idle,  NULL};
	ck_assert_int_eq(th_daemon_start(&d, args), 0);
}

static void setup(void)
{
	strcpy(root, "/tmp/porter-watch-XXXXXX");
	strcpy(outside, "/tmp/porter-watch-out-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root));
	ck_assert_ptr_nonnull(mkdtemp(outside));
	char p[256];
	at(p, sizeof(p), root, "d");
	ck_assert_int_eq(mkdir(p, 0700), 0);
	at(p, sizeof(p), root, "out");
	ck_assert_int_eq(symlink(outside, p), 0); /* a directory link out */
	put(outside, "secret", "s", "w");
	start_daemon("60000");
}

static void teardown(void)
{
	porter_thread_disconnect();
	int st = th_daemon_stop(&d);
	th_daemon_cleanup(&d);
	ck_assert_int_eq(th_rm_rf(root), 0);
	ck_assert_int_eq(th_rm_rf(outside), 0);
	ck_assert_int_eq(st, 0);
}

/* Events seen so far by one watch. */
typedef struct seen {
	int n;
	int kind[2048];
	char name[2048][64], new_name[2048][64];
	int ended;
} seen;

static seen ev;

/* An atomic write that makes or replaces its target. */
#define ATOMIC (PORTER_FILE_CREATE | PORTER_FILE_TRUNCATE | PORTER_FILE_ATOMIC)

/* Bytes of 'b' (watch_d fills them), enough that an atomic write of them
 * goes by descriptor, written by libporter, not by porterd. */
static char big[256 * 1024];

/* A watch of the root's directory 'd', with no event seen yet. */
static porter_file_watch *watch_d(void)
{
	memset(&ev, 0, sizeof(ev));
	memset(big, 'b', sizeof(big));
	porter_file_watch *w = NULL;
	ck_assert_int_eq(porter_file_watch_open("r", "d", 0, T, &w), 0);
	return w;
}

/* Reads batches until `want` events in all, the end of the watch, or
 * `ms` passed. */
static void collect(porter_file_watch *w, int want, int ms)
{
	long long until = th_now_ms() + ms;
	while (ev.n < want && !ev.ended && th_now_ms() < until) {
		porter_file_events *b = NULL;
		ck_assert_int_eq(porter_file_watch_read(w, 0, 3000, &b), 0);
		for (size_t i = 0; i < porter_file_events_count(b) && ev.n < 2048; i++) {
			const char *name, *nn;
			ck_assert_int_eq(porter_file_events_get(b, i, &ev.kind[ev.n], &name, &nn),
					 0);
			snprintf(ev.name[ev.n], sizeof(ev.name[0]), "%s", name);
			snprintf(ev.new_name[ev.n], sizeof(ev.new_name[0]), "%s", nn);
			ev.n++;
		}
		ev.ended = porter_file_events_ended(b);
		porter_file_events_free(b);
	}
}

/* Index of the first event of `kind` named `name` (and `new_name`, unless
 * NULL), or -1. */
static int find(int kind, const char *name, const char *new_name)
{
	for (int i = 0; i < ev.n; i++)
		if (ev.kind[i] == kind && strcmp(ev.name[i], name) == 0 &&
		    (!new_name || strcmp(ev.new_name[i], new_name) == 0))
			return i;
	return -1;
}

static void dump(void)
{
	for (int i = 0; i < ev.n; i++)
		fprintf(stderr, "  event %d: kind %d '%s' -> '%s'\n", i, ev.kind[i], ev.name[i],
			ev.new_name[i]);
}

static void expect(int kind, const char *name, const char *new_name)
{
	if (find(kind, name, new_name) < 0)
		dump();
	ck_assert_msg(find(kind, name, new_name) >= 0, "no event %d '%s' -> '%s' among %d", kind,
		      name, new_name ? new_name : "", ev.n);
}

START_TEST(directory_events_of_each_kind)
{
	porter_file_watch *w = watch_d();
	ck_assert_int_eq(porter_file_watch_is_dir(w), 1);
	char p[256], q[256];
	put(root, "d/a.txt", "one", "w");
	collect(w, 1, T);
	expect(PORTER_FILE_EVENT_CREATED, "d/a.txt", NULL);
	put(root, "d/a.txt", "two", "a");
	collect(w, ev.n + 1, T);
	expect(PORTER_FILE_EVENT_MODIFIED, "d/a.txt", NULL);
	at(p, sizeof(p), root, "d/a.txt");
	at(q, sizeof(q), root, "d/b.txt");
	ck_assert_int_eq(rename(p, q), 0);
	collect(w, ev.n + 1, T);
	expect(PORTER_FILE_EVENT_MOVED, "d/a.txt", "d/b.txt");
	/* Out of the watched directory and in from outside it. */
	at(p, sizeof(p), root, "moved-out.txt");
	ck_assert_int_eq(rename(q, p), 0);
	collect(w, ev.n + 1, T);
	expect(PORTER_FILE_EVENT_MOVED, "d/b.txt", "");
	at(q, sizeof(q), root, "d/c.txt");
	ck_assert_int_eq(rename(p, q), 0);
	collect(w, ev.n + 1, T);
	expect(PORTER_FILE_EVENT_MOVED, "", "d/c.txt");
	ck_assert_int_eq(unlink(q), 0);
	collect(w, ev.n + 1, T);
	expect(PORTER_FILE_EVENT_DELETED, "d/c.txt", NULL);
	at(p, sizeof(p), root, "d/sub");
	ck_assert_int_eq(mkdir(p, 0700), 0);
	collect(w, ev.n + 1, T);
	expect(PORTER_FILE_EVENT_CREATED, "d/sub", NULL);
	ck_assert_int_eq(ev.ended, 0);
	ck_assert_int_eq(porter_file_watch_close(w, T), 0);
}
END_TEST

/* Makes d/end and reads `w` until its creation is seen (events come in
 * order: everything done before it is in), the watch ends or T passes. */
static void collect_to_end(porter_file_watch *w)
{
	put(root, "d/end", "", "w");
	long long until = th_now_ms() + T;
	while (find(PORTER_FILE_EVENT_CREATED, "d/end", NULL) < 0 && !ev.ended &&
	       th_now_ms() < until)
		collect(w, ev.n + 1, T);
}

/* An atomic write shows as the creation of its target, never as porterd's
 * own temp files: neither the O_TMPFILE file ('#' and its inode number,
 * modified as it is written), nor the name it is linked as and renamed
 * from ('.porter-...tmp'). A small write goes as bytes (porterd writes
 * the temp file), a large one by descriptor (libporter writes it); a
 * replace shows the same as a new file. */
START_TEST(atomic_write_is_one_event)
{
	porter_file_watch *w = watch_d();
	ck_assert_int_eq(porter_file_write("r", "d/w.txt", "hello", 5, ATOMIC, 0, 0, T), 0);
	ck_assert_int_eq(porter_file_write("r", "d/w.txt", big, sizeof(big), ATOMIC, 0, 0, T), 0);
	ck_assert_int_eq(porter_file_write("r", "d/v.txt", big, sizeof(big), ATOMIC, 0, 0, T), 0);
	/* Events come in order: once this one is seen, all of the writes'
	 * are. */
	collect_to_end(w);
	expect(PORTER_FILE_EVENT_CREATED, "d/end", NULL);
	int created = 0;
	for (int i = 0; i < ev.n; i++) {
		if (strstr(ev.name[i], "porter-") || strstr(ev.new_name[i], "porter-") ||
		    strchr(ev.name[i], '#') || strchr(ev.new_name[i], '#'))
			dump();
		ck_assert_msg(!strstr(ev.name[i], "porter-") && !strstr(ev.new_name[i], "porter-"),
			      "event %d names a temp file: '%s' -> '%s'", i, ev.name[i],
			      ev.new_name[i]);
		ck_assert_msg(!strchr(ev.name[i], '#') && !strchr(ev.new_name[i], '#'),
			      "event %d names an O_TMPFILE file: '%s'", i, ev.name[i]);
		created +=
			ev.kind[i] == PORTER_FILE_EVENT_CREATED && !strcmp(ev.name[i], "d/w.txt");
	}
	/* The new file and its replace, each one event. */
	if (created != 2)
		dump();
	ck_assert_int_eq(created, 2);
	expect(PORTER_FILE_EVENT_CREATED, "d/v.txt", NULL);
	ck_assert_int_eq(porter_file_watch_close(w, T), 0);
}
END_TEST

/* Many atomic writes in a row, each seen as the creation of its target.
 * The kernel queues the rename of porterd's temp file over the target as
 * two events, and a read of the queue between them (the worker loop
 * spinning while a pool thread commits) once made the write read as a
 * file moved in from outside ("moved '' -> 'd/w.txt'"): about 1 in 50 to
 * 1 in 400 on a busy machine. 300 writes (under the 512 temp names a
 * watch remembers for a minute) hit it in most runs of the old code. */
START_TEST(every_atomic_write_is_a_creation)
{
	enum { WRITES = 300 };
	porter_file_watch *w = watch_d();
	for (int i = 0; i < WRITES; i++) {
		/* Small ones by bytes, larger ones by descriptor. */
		size_t n = i % 2 ? 64 * 1024 : 5;
		ck_assert_int_eq(porter_file_write("r", "d/w.txt", big, n, ATOMIC, 0, 0, T), 0);
	}
	collect_to_end(w);
	expect(PORTER_FILE_EVENT_CREATED, "d/end", NULL);
	int created = 0, other = 0;
	for (int i = 0; i < ev.n; i++) {
		if (ev.kind[i] == PORTER_FILE_EVENT_CREATED && !strcmp(ev.name[i], "d/w.txt"))
			created++;
		else if (strcmp(ev.name[i], "d/end") && other++ < 5)
			fprintf(stderr, "  event %d: kind %d '%s' -> '%s'\n", i, ev.kind[i],
				ev.name[i], ev.new_name[i]);
	}
	ck_assert_msg(created == WRITES && other == 0,
		      "%d atomic writes: %d seen as creations, %d other events", WRITES, created,
		      other);
	ck_assert_int_eq(porter_file_watch_close(w, T), 0);
}
END_TEST

/*
 * Atomic writes far past what a watch once remembered of porterd's temp
 * names (512 names for a minute, then every name porterd was done with
 * counted as a client's) are still each one creation: a watch holds a
 * temp name it saw end only until it has read past everything queued
 * before the name was retired. Before, the writes after the 512th showed
 * their temp names (".porter-...tmp" created, then moved over the
 * target) whenever the worker read their events after the rename had
 * returned. Read in rounds, so that the watch's queue never overflows.
 */
START_TEST(temp_names_stay_hidden_past_many_writes)
{
	enum { ROUNDS = 6, PER_ROUND = 200 };
	porter_file_watch *w = watch_d();
	const int atomic = PORTER_FILE_CREATE | PORTER_FILE_TRUNCATE | PORTER_FILE_ATOMIC;
	int created = 0, other = 0;
	char p[256];
	at(p, sizeof(p), root, "d/end");
	for (int r = 0; r < ROUNDS; r++) {
		memset(&ev, 0, sizeof(ev));
		for (int i = 0; i < PER_ROUND; i++)
			ck_assert_int_eq(
				porter_file_write("r", "d/w.txt", "hello", 5, atomic, 0, 0, T), 0);
		collect_to_end(w);
		expect(PORTER_FILE_EVENT_CREATED, "d/end", NULL);
		for (int i = 0; i < ev.n; i++) {
			if (ev.kind[i] == PORTER_FILE_EVENT_CREATED &&
			    !strcmp(ev.name[i], "d/w.txt"))
				created++;
			else if (strcmp(ev.name[i], "d/end") && other++ < 5)
				fprintf(stderr, "  round %d event %d: kind %d '%s' -> '%s'\n", r, i,
					ev.kind[i], ev.name[i], ev.new_name[i]);
		}
		ck_assert_int_eq(unlink(p), 0);
	}
	ck_assert_msg(created == ROUNDS * PER_ROUND && other == 0,
		      "%d atomic writes: %d seen as creations, %d other events", ROUNDS * PER_ROUND,
		      created, other);
	ck_assert_int_eq(porter_file_watch_close(w, T), 0);
}
END_TEST

/* Makes a file called `name` in the root's d/ directly (not through
 * porterd), appends to it and deletes it, then makes d/end; reads `w`
 * until d/end is seen and checks that the three events of `name` were
 * reported. */
static void expect_life_seen(porter_file_watch *w, const char *name)
{
	char rel[128], p[256];
	snprintf(rel, sizeof(rel), "d/%s", name);
	memset(&ev, 0, sizeof(ev));
	put(root, rel, "hidden?", "w");
	put(root, rel, " no", "a");
	at(p, sizeof(p), root, rel);
	ck_assert_int_eq(unlink(p), 0);
	collect_to_end(w);
	expect(PORTER_FILE_EVENT_CREATED, rel, NULL);
	expect(PORTER_FILE_EVENT_MODIFIED, rel, NULL);
	expect(PORTER_FILE_EVENT_DELETED, rel, NULL);
	at(p, sizeof(p), root, "d/end");
	ck_assert_int_eq(unlink(p), 0);
}

/* An inotify descriptor watching the root's directory `rel` itself (not
 * through porterd), for the names of temp files. */
static int watch_directly(const char *rel)
{
	char p[256];
	at(p, sizeof(p), root, rel);
	int ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	ck_assert_int_ge(ifd, 0);
	ck_assert_int_ge(inotify_add_watch(ifd, p, IN_CREATE | IN_MOVED_FROM), 0);
	return ifd;
}

/* The name of the temp file of an atomic write just made, as the kernel
 * told `ifd` (watch_directly), which is closed. */
static void temp_name_seen(int ifd, char *name, size_t cap)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	name[0] = 0;
	ssize_t n = read(ifd, buf, sizeof(buf));
	for (char *q = buf; n > 0 && q < buf + n;) {
		const struct inotify_event *e = (const void *)q;
		if (e->len && !strncmp(e->name, ".porter-", 8))
			snprintf(name, cap, "%s", e->name);
		q += sizeof(*e) + e->len;
	}
	close(ifd);
	ck_assert_msg(name[0], "no temp name seen for the atomic write");
}

/*
 * A name porterd gave a temp file is its own once: a user of the
 * directory who saw it (watching the directory herself while she made an
 * atomic write) and names a file of hers that way afterwards is seen like
 * any other, by a watch that saw porterd's use of the name end and by one
 * begun after it. Before, the name's tag still verified and watches
 * reported nothing of that file's creation, writes or deletion.
 */
START_TEST(a_temp_name_used_again_is_seen)
{
	int ifd = watch_directly("d");
	porter_file_watch *before = NULL, *after = NULL;
	ck_assert_int_eq(porter_file_watch_open("r", "d", 0, T, &before), 0);
	ck_assert_int_eq(porter_file_write("r", "d/w.txt", "hello", 5, ATOMIC, 0, 0, T), 0);
	char name[NAME_MAX + 1];
	temp_name_seen(ifd, name, sizeof(name));
	ck_assert_int_eq(porter_file_watch_open("r", "d", 0, T, &after), 0);
	expect_life_seen(before, name);
	expect_life_seen(after, name);
	/* Through porterd too: an atomic write whose target has that name
	 * (porterd's rename of its new temp file to it) is its creation. */
	char rel[NAME_MAX + 3];
	snprintf(rel, sizeof(rel), "d/%s", name);
	memset(&ev, 0, sizeof(ev));
	ck_assert_int_eq(porter_file_write("r", rel, "hello", 5, ATOMIC, 0, 0, T), 0);
	collect_to_end(after);
	expect(PORTER_FILE_EVENT_CREATED, rel, NULL);
	ck_assert_int_eq(porter_file_watch_close(before, T), 0);
	ck_assert_int_eq(porter_file_watch_close(after, T), 0);
}
END_TEST

/* A client's file named like porterd's temp files (the form watches once
 * recognised them by: '.porter-', 16 hex digits, '.tmp'; or today's with a
 * tag of its own making) is a file like any other: its creation, writes
 * and deletion are all seen. Another user of the directory must not be
 * able to hide a file's life from watchers by its name. */
START_TEST(a_file_named_like_a_temp_file_is_seen)
{
	static const char *const names[] = {
		".porter-0123456789abcdef.tmp",
		".porter-0123456789abcdef0123456789abcdef.tmp",
	};
	porter_file_watch *w = NULL;
	ck_assert_int_eq(porter_file_watch_open("r", "d", 0, T, &w), 0);
	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
		expect_life_seen(w, names[k]);
	ck_assert_int_eq(porter_file_watch_close(w, T), 0);
}
END_TEST

/* A client's file named '#' and digits, the name the kernel gives an
 * unnamed (O_TMPFILE) file such as an atomic write's temp file, is a file
 * like any other: its writes and mode changes are seen, while porterd's
 * own unnamed temp files in the same directory still are not. (Watches
 * once took every modification of such a name for a temp file's.) */
START_TEST(a_file_named_like_an_unnamed_temp_file_is_seen)
{
	static const char *const names[] = {"d/#12345", "d/#7"};
	porter_file_watch *w = watch_d();
	char p[256];
	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		put(root, names[k], "one", "w");
		collect(w, ev.n + 1, T);
		expect(PORTER_FILE_EVENT_CREATED, names[k], NULL);
		int before = ev.n;
		/* Written by porterd (bytes, and by descriptor), and by hand. */
		ck_assert_int_eq(
			porter_file_write("r", names[k], "two", 3, PORTER_FILE_APPEND, 0, 0, T), 0);
		ck_assert_int_eq(
			porter_file_write("r", "d/atomic.txt", big, sizeof(big), ATOMIC, 0, 0, T),
			0);
		put(root, names[k], "three", "a");
		at(p, sizeof(p), root, names[k]);
		ck_assert_int_eq(chmod(p, 0640), 0);
		/* Events come in order: once this one is seen, all of the
		 * changes' are, read while the file is still there. */
		char end[32];
		snprintf(end, sizeof(end), "d/end%zu", k);
		put(root, end, "", "w");
		long long until = th_now_ms() + T;
		while (find(PORTER_FILE_EVENT_CREATED, end, NULL) < 0 && !ev.ended &&
		       th_now_ms() < until)
			collect(w, ev.n + 1, T);
		expect(PORTER_FILE_EVENT_CREATED, end, NULL);
		int modified = 0;
		for (int i = before; i < ev.n; i++)
			modified += ev.kind[i] == PORTER_FILE_EVENT_MODIFIED &&
				    !strcmp(ev.name[i], names[k]);
		if (!modified)
			dump();
		ck_assert_msg(modified > 0, "no modification of '%s' among %d events", names[k],
			      ev.n - before);
		ck_assert_int_eq(unlink(p), 0);
		collect(w, ev.n + 1, T);
		expect(PORTER_FILE_EVENT_DELETED, names[k], NULL);
	}
	/* porterd's own temp files stayed hidden. */
	for (int i = 0; i < ev.n; i++) {
		int ours = 0;
		for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
			ours |= !strcmp(ev.name[i], names[k]);
		if (!ours && (strchr(ev.name[i], '#') || strstr(ev.name[i], "porter-")))
			dump();
		ck_assert_msg(ours || (!strchr(ev.name[i], '#') && !strstr(ev.name[i], "porter-")),
			      "event %d names a temp file: '%s'", i, ev.name[i]);
	}
	/* Those look-ups left nothing holding the directory: its removal
	 * still ends the watch (the kernel reports a directory's deletion
	 * only as its last reference goes). */
	int before = ev.n;
	at(p, sizeof(p), root, "d");
	ck_assert_int_eq(th_rm_rf(p), 0);
	collect(w, ev.n + 100, T); /* up to the end */
	if (!ev.ended)
		dump();
	ck_assert_msg(ev.ended, "the watch outlived its directory (%d events since)",
		      ev.n - before);
	expect(PORTER_FILE_EVENT_DELETED, "d", NULL);
	ck_assert_int_eq(porter_file_watch_close(w, T), 0);
}
END_TEST

/* The same in a per-user root, where the watched directory is found
 * again below the uid's own directory. */
START_TEST(per_user_root_file_named_like_an_unnamed_temp_file_is_seen)
{
	th_stop_clean(&d);
	char roots[200];
	snprintf(roots, sizeof(roots), "r=%s,u=%s/users/%%u", root, outside);
	const char *args[] = {"--file-roots", roots, "--workers", "2", NULL};
	ck_assert_int_eq(th_daemon_start(&d, args), 0);
	memset(&ev, 0, sizeof(ev));
	ck_assert_int_eq(porter_file_mkdir("u", "d", 0, 0, 0, T), 0);
	const char *name = "d/#4242";
	ck_assert_int_eq(porter_file_write("u", name, "one", 3,
					   PORTER_FILE_CREATE | PORTER_FILE_TRUNCATE, 0, 0, T),
			 0);
	porter_file_watch *w = NULL;
	ck_assert_int_eq(porter_file_watch_open("u", "d", 0, T, &w), 0);
	char mine[128];
	snprintf(mine, sizeof(mine), "%s/users/%u", outside, (unsigned)getuid());
	put(mine, name, "two", "a");
	put(mine, "d/end", "", "w");
	long long until = th_now_ms() + T;
	while (find(PORTER_FILE_EVENT_CREATED, "d/end", NULL) < 0 && !ev.ended &&
	       th_now_ms() < until)
		collect(w, ev.n + 1, T);
	expect(PORTER_FILE_EVENT_CREATED, "d/end", NULL);
	expect(PORTER_FILE_EVENT_MODIFIED, name, NULL);
	ck_assert_int_eq(porter_file_watch_close(w, T), 0);
}
END_TEST

START_TEST(file_events_and_the_end_of_a_watch)
{
	memset(&ev, 0, sizeof(ev));
	put(root, "f.txt", "x", "w");
	porter_file_watch *w = NULL;
	ck_assert_int_eq(porter_file_watch_open("r", "f.txt", 0, T, &w), 0);
	ck_assert_int_eq(porter_file_watch_is_dir(w), 0);
	/* Nothing happens: the read waits its time and returns empty. */
	porter_file_events *b = NULL;
	long long t0 = th_now_ms();
	ck_assert_int_eq(porter_file_watch_read(w, 0, 3000, &b), 0);
	ck_assert_uint_eq(porter_file_events_count(b), 0);
	ck_assert_int_eq(porter_file_events_ended(b), 0);
	ck_assert_int_ge(th_now_ms() - t0, 1000);
	porter_file_events_free(b);
	put(root, "f.txt", "more", "a");
	collect(w, 1, T);
	expect(PORTER_FILE_EVENT_MODIFIED, "f.txt", NULL);
	char p[256];
	at(p, sizeof(p), root, "f.txt");
	int before = ev.n;
	ck_assert_int_eq(unlink(p), 0);
	collect(w, 100, T); /* up to the end */
	expect(PORTER_FILE_EVENT_DELETED, "f.txt", NULL);
	ck_assert_int_eq(ev.ended, 1);
	/* The unlink is one event: its drop of the link count (IN_ATTRIB,
	 * just before IN_DELETE_SELF) is no "modified" of its own. */
	if (ev.n != before + 1)
		dump();
	ck_assert_int_eq(ev.n, before + 1);
	ck_assert_int_eq(ev.kind[before], PORTER_FILE_EVENT_DELETED);
	/* After the end: empty ended batches, at once. */
	ck_assert_int_eq(porter_file_watch_read(w, 0, T, &b), 0);
	ck_assert_int_eq(porter_file_events_ended(b), 1);
	porter_file_events_free(b);
	ck_assert_int_eq(porter_file_watch_close(w, T), 0);
}
END_TEST

/* The watched directory is moved away and a symlink to a directory
 * outside the root planted at its path: the watch ends with the move and
 * never reports what happens outside. */
START_TEST(watch_follows_no_swapped_path)
{
	porter_file_watch *w = watch_d();
	char p[256], q[256];
	at(p, sizeof(p), root, "d");
	at(q, sizeof(q), root, "d-old");
	ck_assert_int_eq(rename(p, q), 0);
	ck_assert_int_eq(symlink(outside, p), 0);
	put(outside, "secret", "changed", "a");
	put(outside, "new-secret", "n", "w");
	collect(w, 100, T);
	expect(PORTER_FILE_EVENT_MOVED, "d", "");
	ck_assert_int_eq(ev.ended, 1);
	for (int i = 0; i < ev.n; i++)
		ck_assert_msg(!strstr(ev.name[i], "secret"), "saw '%s' outside the root",
			      ev.name[i]);
	porter_file_watch_close(w, T);
	/* A new watch of the path resolves it anew: the link leads out. */
	ck_assert_int_eq(porter_file_watch_open("r", "d", 0, T, &w), PORTER_E_FILE_ESCAPE);
	ck_assert_ptr_null(w);
}
END_TEST

START_TEST(escapes_refused)
{
	porter_file_watch *w = NULL;
	const char *bad[] = {"..", "../x", "/etc", "out", "out/secret", "d/../../x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = porter_file_watch_open("r", bad[i], 0, T, &w);
		ck_assert_msg(rc == PORTER_E_FILE_ESCAPE, "watch of '%s' gave %s '%s'", bad[i],
			      porter_error_name(rc), porter_last_error_message());
		ck_assert_ptr_null(w);
	}
	ck_assert_int_eq(porter_file_watch_open("r", "nope", 0, T, &w), PORTER_E_FILE_NOT_FOUND);
	ck_assert_int_eq(porter_file_watch_open("nosuchroot", "d", 0, T, &w), PORTER_E_FILE_ROOT);
	/* The root itself may be watched. */
	ck_assert_int_eq(porter_file_watch_open("r", "", 0, T, &w), 0);
	porter_file_watch_close(w, T);
}
END_TEST

/* Nobody reads while thousands of files appear: the daemon keeps a
 * bounded queue and says it overflowed. */
START_TEST(flood_is_bounded_with_an_overflow)
{
	porter_file_watch *w = watch_d();
	for (int i = 0; i < 1500; i++) {
		char name[32];
		snprintf(name, sizeof(name), "d/f%04d", i);
		put(root, name, "", "w");
	}
	usleep(300000); /* the daemon has read what inotify queued */
	collect(w, 2048, 3000);
	ck_assert_int_le(ev.n, 1025);
	ck_assert_int_gt(ev.n, 0);
	ck_assert_int_eq(ev.kind[ev.n - 1], PORTER_FILE_EVENT_OVERFLOW);
	ck_assert_int_eq(ev.kind[0], PORTER_FILE_EVENT_CREATED);
	ck_assert_str_eq(ev.name[0], "d/f0000");
	porter_file_watch_close(w, T);
}
END_TEST

typedef struct reader_arg {
	porter_file_watch *w;
} reader_arg;

static void *read_elsewhere(void *p)
{
	reader_arg *a = p;
	collect(a->w, 1, T);
	porter_thread_disconnect();
	return NULL;
}

/*
 * Nor can she use in another directory a name she saw porterd give a
 * temp file: a watch of that directory, begun before, never sees
 * porterd's use of the name end, and took her file's events for
 * porterd's until the name was forgotten (a minute). porterd now knows
 * which directory each name was given in.
 */
START_TEST(a_temp_name_used_in_another_directory_is_seen)
{
	char p[256];
	at(p, sizeof(p), root, "e");
	ck_assert_int_eq(mkdir(p, 0700), 0);
	int ifd = watch_directly("e");
	porter_file_watch *w = watch_d();
	ck_assert_int_eq(porter_file_write("r", "e/w.txt", "hello", 5, ATOMIC, 0, 0, T), 0);
	char name[NAME_MAX + 1];
	temp_name_seen(ifd, name, sizeof(name));
	expect_life_seen(w, name);
	ck_assert_int_eq(porter_file_watch_close(w, T), 0);
}
END_TEST

static void *resume_daemon(void *arg)
{
	(void)arg;
	usleep(200000);
	kill(d.pid, SIGCONT);
	return NULL;
}

/*
 * A read whose answer comes after its timeout, porterd being held up
 * (stopped here, as a loaded machine holds it), keeps the watch: the
 * read waits for the late answer instead of dropping its connection,
 * which would take the watch opened on it along, every later read then
 * failing with "no such file stream" and the events lost. Before, the
 * read gave PORTER_E_TIMEOUT and the watch was gone.
 */
START_TEST(a_late_answer_keeps_the_watch)
{
	porter_file_watch *w = watch_d();
	porter_file_events *b = NULL;
	pthread_t th;
	ck_assert_int_eq(kill(d.pid, SIGSTOP), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, resume_daemon, NULL), 0);
	int rc = porter_file_watch_read(w, 0, 50, &b);
	pthread_join(th, NULL);
	ck_assert_msg(rc == 0, "a read answered late gave %s: %s", porter_strerror(rc),
		      porter_last_error_message());
	porter_file_events_free(b);
	put(root, "d/after", "", "w");
	collect(w, 1, T);
	expect(PORTER_FILE_EVENT_CREATED, "d/after", NULL);
	ck_assert_int_eq(porter_file_watch_close(w, T), 0);
}
END_TEST

/* A read from a thread whose connection the acceptor gives to the other
 * worker waits there (forwarded to the watch's worker) for the event. */
START_TEST(read_from_another_worker)
{
	memset(&ev, 0, sizeof(ev));
	reader_arg a = {0};
	ck_assert_int_eq(porter_file_watch_open("r", "d", 0, T, &a.w), 0);
	pthread_t t;
	pthread_create(&t, NULL, read_elsewhere, &a);
	usleep(300000);
	put(root, "d/late.txt", "x", "w");
	pthread_join(t, NULL);
	expect(PORTER_FILE_EVENT_CREATED, "d/late.txt", NULL);
	ck_assert_int_eq(porter_file_watch_close(a.w, T), 0);
}
END_TEST

START_TEST(unread_watch_is_reclaimed)
{
	/* Up and serving before it is stopped for a restart. */
	ck_assert_int_eq(porter_ping("x", 1, 0, T), 0);
	th_stop_clean(&d);
	start_daemon("1500");
	porter_file_watch *w = NULL;
	ck_assert_int_eq(porter_file_watch_open("r", "d", 0, T, &w), 0);
	usleep(RECLAIMED_AFTER_MS * 1000);
	porter_file_events *b = NULL;
	ck_assert_int_eq(porter_file_watch_read(w, 0, T, &b), PORTER_E_TIMEOUT);
	ck_assert_ptr_null(b);
	const char *m = porter_last_error_message();
	ck_assert_msg(strstr(m, "reclaimed") && strstr(m, "file-stream-idle"), "message: %s", m);
	ck_assert_int_eq(porter_file_watch_close(w, T), 0);
}
END_TEST

/* porterctl file watch prints each event as a line, or as JSON. */
/* The inotify watches porterd holds (its inotify descriptors' fdinfo
 * lists one "inotify wd:" line each). */
static int porterd_watches(void)
{
	char p[320], link[64], line[256];
	snprintf(p, sizeof(p), "/proc/%d/fd", (int)d.pid);
	DIR *dir = opendir(p);
	ck_assert_ptr_nonnull(dir);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(dir))) {
		snprintf(p, sizeof(p), "/proc/%d/fd/%s", (int)d.pid, e->d_name);
		ssize_t len = readlink(p, link, sizeof(link) - 1);
		if (len < 0 || (size_t)len != strlen("anon_inode:inotify") ||
		    memcmp(link, "anon_inode:inotify", (size_t)len))
			continue;
		snprintf(p, sizeof(p), "/proc/%d/fdinfo/%s", (int)d.pid, e->d_name);
		FILE *f = fopen(p, "re");
		while (f && fgets(line, sizeof(line), f))
			n += !strncmp(line, "inotify wd:", 11);
		if (f)
			fclose(f);
	}
	closedir(dir);
	return n;
}

/* Waits until porterd holds `want` inotify watches (a watch that
 * porterctl opens, or the end of one whose porterctl exited), up to T. */
static void await_watches(int want)
{
	long long until = th_now_ms() + T;
	while (porterd_watches() != want && th_now_ms() < until)
		usleep(10000);
	ck_assert_int_eq(porterd_watches(), want);
}

START_TEST(porterctl_file_watch)
{
	char out[4096];
	int fd;
	const char *const lines[] = {PORTERCTL_PATH, "file", "watch", "-r", "r",
				     "-c",           "4",    "d",     NULL};
	pid_t p = th_spawn(lines, TH_ERR_KEEP, NULL, &fd);
	ck_assert_int_gt(p, 0);
	await_watches(1); /* porterctl's watch is open */
	put(root, "d/one", "1", "w");
	char a[256], b[256];
	at(a, sizeof(a), root, "d/one");
	at(b, sizeof(b), root, "d/two");
	ck_assert_int_eq(rename(a, b), 0);
	ck_assert_int_eq(unlink(b), 0);
	ck_assert_int_eq(th_collect(p, fd, out, sizeof(out), NULL), 0);
	ck_assert_str_eq(out,
			 "created d/one\nmodified d/one\nmoved d/one -> d/two\ndeleted d/two\n");

	const char *const json[] = {PORTERCTL_PATH, "--json", "file", "watch", "-r", "r",
				    "-c",           "1",      "d",    NULL};
	await_watches(0); /* the first one's is gone */
	p = th_spawn(json, TH_ERR_KEEP, NULL, &fd);
	ck_assert_int_gt(p, 0);
	await_watches(1);
	put(root, "d/q\"x", "1", "w");
	ck_assert_int_eq(th_collect(p, fd, out, sizeof(out), NULL), 0);
	ck_assert_str_eq(out, "{\"event\":\"created\",\"name\":\"d/q\\\"x\",\"new_name\":\"\"}\n");

	ck_assert_int_eq(th_ctl(NULL, 0, TH_ERR_OUT, out, sizeof(out), "file", "watch", "-r", "r",
				"../x", NULL),
			 1);
	ck_assert_ptr_nonnull(strstr(out, "PORTER_E_FILE_ESCAPE"));
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {directory_events_of_each_kind,
				atomic_write_is_one_event,
				every_atomic_write_is_a_creation,
				temp_names_stay_hidden_past_many_writes,
				a_file_named_like_a_temp_file_is_seen,
				a_temp_name_used_again_is_seen,
				a_temp_name_used_in_another_directory_is_seen,
				a_file_named_like_an_unnamed_temp_file_is_seen,
				per_user_root_file_named_like_an_unnamed_temp_file_is_seen,
				file_events_and_the_end_of_a_watch,
				watch_follows_no_swapped_path,
				escapes_refused,
				flood_is_bounded_with_an_overflow,
				read_from_another_worker,
				a_late_answer_keeps_the_watch,
				unread_watch_is_reclaimed,
				porterctl_file_watch,
				NULL};
	Suite *s = suite_create("files_watch");
	tcase_add_checked_fixture(th_tcase(s, "watch", 60, tests), setup, teardown);
	return s;
}

TH_MAIN(suite)
