/*
 * ctl_file - porterctl's `file` commands: cat, put, rm, stat, ls, mkdir,
 * mv, cp, watch. Large
 * files stream through a reader or writer, so porterctl never holds a
 * whole file.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "porter.h"

#define PUT_CHUNK (1u << 20)

static const char *type_name(int t)
{
	switch (t) {
	case PORTER_FILE_TYPE_REGULAR:
		return "file";
	case PORTER_FILE_TYPE_DIRECTORY:
		return "dir";
	case PORTER_FILE_TYPE_SYMLINK:
		return "symlink";
	case PORTER_FILE_TYPE_OTHER:
		return "other";
	default:
		return "unknown";
	}
}

static const char file_help[] =
	"Usage: porterctl file cat [-r ROOT] PATH\n"
	"       porterctl file put [-r ROOT] [-a|-A] [-x] [-m MODE] PATH [LOCAL]\n"
	"       porterctl file rm [-r ROOT] [-d] PATH\n"
	"       porterctl file stat [-r ROOT] [-L] PATH\n"
	"       porterctl file ls [-r ROOT] [PATH]\n"
	"       porterctl file mkdir [-r ROOT] [-p] [-m MODE] PATH\n"
	"       porterctl file mv [-r ROOT] [-n] FROM TO\n"
	"       porterctl file cp [-r ROOT] [-n] FROM TO\n"
	"       porterctl file watch [-r ROOT] [-c COUNT] PATH\n"
	"Files under one of porterd's roots (-r ROOT; default: its first root).\n"
	"  cat   print a file (streamed)\n"
	"  put   write stdin (or LOCAL, '-' = stdin) to PATH: an atomic replace by\n"
	"        default; -a appends, -A overwrites in place; -x refuses an existing\n"
	"        file (with any of them); -m MODE sets the mode of a new file (octal)\n"
	"  rm    delete a file (-d: an empty directory)\n"
	"  stat  type, size, mode, mtime (ISO 8601, UTC), owner; a symlink is\n"
	"        reported as one, -L follows it (inside the root only)\n"
	"  ls    list a directory (default: the root)\n"
	"  mkdir make a directory; -p makes missing parents and accepts one that\n"
	"        exists; -m MODE (octal, masked by porterd's file-max-dir-mode)\n"
	"  mv    rename or move within the root; -n refuses to replace TO\n"
	"  cp    copy a file within the root (atomic at TO); -n refuses to replace TO\n"
	"  watch print changes of a file or directory (one line each: created,\n"
	"        modified, deleted, moved OLD -> NEW, overflow) until interrupted,\n"
	"        until it is deleted or moved away, or after -c COUNT events\n"
	"With --json every subcommand prints one JSON object (cat: the content as\n"
	"\"body\" or \"body_base64\", held in memory), errors included; watch prints\n"
	"one object per event ({\"event\":KIND,\"name\":...,\"new_name\":...}).\n";

/* One line naming what is wrong, as every other command answers: the whole
 * help ahead of it buried the reason under 27 lines. */
static int file_usage(const char *why)
{
	return ctl_error(EXIT_USAGE, "usage", "file: %s (see 'porterctl file --help')", why);
}

/* Each subcommand's arguments, for an error that says what it expects. */
static const struct {
	const char *name, *args;
} file_subs[] = {
	{"cat", "[-r ROOT] PATH"},
	{"put", "[-r ROOT] [-a|-A] [-x] [-m MODE] PATH [LOCAL]"},
	{"rm", "[-r ROOT] [-d] PATH"},
	{"stat", "[-r ROOT] [-L] PATH"},
	{"ls", "[-r ROOT] [PATH]"},
	{"mkdir", "[-r ROOT] [-p] [-m MODE] PATH"},
	{"mv", "[-r ROOT] [-n] FROM TO"},
	{"cp", "[-r ROOT] [-n] FROM TO"},
	{"watch", "[-r ROOT] [-c COUNT] PATH"},
};

/* What to do about a failure a first user meets, when the message (which
 * names the operation, the path and why) leaves it to guess; NULL when it
 * does not. */
static const char *file_hint(const char *sub, int rc, int dir, int parents)
{
	if (!strcmp(sub, "rm") && rc == PORTER_E_FILE_ISDIR && !dir)
		return "to delete an empty directory: porterctl file rm -d";
	if (!strcmp(sub, "rm") && rc == PORTER_E_FILE_NOTDIR && dir)
		return "to delete a file: porterctl file rm, without -d";
	if (!strcmp(sub, "mkdir") && rc == PORTER_E_FILE_EXISTS && !parents)
		return "-p accepts a directory that exists";
	if (!strcmp(sub, "put") && rc == PORTER_E_FILE_NOT_FOUND)
		return "make its directory first: porterctl file mkdir -p";
	if (!strcmp(sub, "cat") && rc == PORTER_E_FILE_ISDIR)
		return "to list a directory: porterctl file ls";
	if (!strcmp(sub, "ls") && rc == PORTER_E_FILE_NOTDIR)
		return "to read a file: porterctl file cat (file stat for what it is)";
	return NULL;
}

/* Under --json the file is gathered and printed as one object, so it must
 * fit in memory; without --json it streams. */
static int do_cat(const ctl_opts *o, const char *root, const char *path)
{
	porter_file_reader *rd = NULL;
	int rc = porter_file_reader_open(root, path, 0, 0, 0, 0, o->timeout_ms, &rd);
	const void *p;
	size_t n, len = 0, cap = 0;
	uint8_t *all = NULL;
	int status = EXIT_OK;
	while (rc == 0 && (rc = porter_file_reader_read(rd, 0, o->timeout_ms, &p, &n)) == 1) {
		rc = 0;
		if (o->json) {
			if (len + n > cap) {
				size_t nc = cap ? cap : 65536;
				while (nc < len + n)
					nc *= 2;
				uint8_t *nb = realloc(all, nc);
				if (!nb) {
					status = ctl_error(EXIT_FAILED, "nomem",
							   "file cat: out of memory");
					goto out;
				}
				all = nb;
				cap = nc;
			}
			memcpy(all + len, p, n);
			len += n;
		} else if (fwrite(p, 1, n, stdout) != n) {
			status = ctl_error(EXIT_FAILED, "io", "file cat: stdout: %s",
					   strerror(errno));
			goto out;
		}
	}
	if (rc < 0) {
		status = ctl_fail_hint(rc, file_hint("cat", rc, 0, 0));
		goto out;
	}
	if (o->json) {
		fputs("{\"path\":", stdout);
		ctl_json_cstr(stdout, path);
		printf(",\"size\":%zu,", len);
		ctl_json_body(stdout, all ? all : (const uint8_t *)"", len);
		fputs("}\n", stdout);
	}
	if (fflush(stdout) != 0)
		status = ctl_error(EXIT_FAILED, "io", "file cat: stdout: %s", strerror(errno));
out:
	porter_file_reader_close(rd, 1000);
	free(all);
	return status;
}

/* How long `file put` waits for its input before it keeps the writer
 * alive (below). */
#define PUT_QUIET_MS 250

/*
 * Reads what `fd` has, up to `cap` bytes, into `buf`: `*n` bytes, 0 at
 * the end of the input, or -1 with `*err` set on a read error. While the
 * input is quiet, every PUT_QUIET_MS it writes nothing to `wr`, which
 * libporter turns into the keep-alive the stream needs when one is due:
 * porterd reclaims a write stream not used for its file-stream-idle
 * (10 s by default), and a producer that paused that long (a dump
 * between two tables, a slow pipe) lost the whole put with "timed out".
 * Returns 0, or the code of a keep-alive that failed.
 */
static int read_input(int fd, uint8_t *buf, size_t cap, porter_file_writer *wr, int timeout_ms,
		      ssize_t *n, int *err)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, PUT_QUIET_MS);
		if (r < 0 && errno != EINTR) {
			*n = -1;
			*err = errno;
			return 0;
		}
		if (r <= 0) {
			int rc = porter_file_writer_write(wr, NULL, 0, 0, timeout_ms);
			if (rc < 0)
				return rc;
			continue;
		}
		*n = read(fd, buf, cap);
		if (*n >= 0)
			return 0;
		if (errno != EINTR && errno != EAGAIN) {
			*err = errno;
			return 0;
		}
	}
}

static int do_put(const ctl_opts *o, const char *root, const char *path, const char *local,
		  unsigned flags, unsigned mode)
{
	FILE *in = stdin;
	if (local && strcmp(local, "-") != 0) {
		in = fopen(local, "rb");
		if (!in)
			return ctl_error(EXIT_FAILED, "io", "file put: %s: %s", local,
					 strerror(errno));
	}
	uint8_t *buf = malloc(PUT_CHUNK);
	porter_file_writer *wr = NULL;
	int read_err = 0;
	unsigned long long written = 0;
	int rc = buf ? porter_file_writer_open(root, path, flags, mode, 0, o->timeout_ms, &wr)
		     : PORTER_E_NOMEM;
	while (rc == 0) {
		ssize_t n = 0;
		rc = read_input(fileno(in), buf, PUT_CHUNK, wr, o->timeout_ms, &n, &read_err);
		if (rc < 0 || n <= 0)
			break;
		rc = porter_file_writer_write(wr, buf, (size_t)n, 0, o->timeout_ms);
		written += (unsigned long long)n;
	}
	/* A local read error abandons the writer without a commit, so the
	 * target keeps its old content. */
	if (rc == 0 && !read_err)
		rc = porter_file_writer_commit(wr, 0, o->timeout_ms);
	porter_file_writer_close(wr, 1000);
	free(buf);
	if (in != stdin)
		fclose(in);
	if (read_err)
		return ctl_error(EXIT_FAILED, "io", "file put: %s: %s", local ? local : "stdin",
				 strerror(read_err));
	if (rc < 0)
		return ctl_fail_hint(rc, file_hint("put", rc, 0, 0));
	if (o->json) {
		fputs("{\"path\":", stdout);
		ctl_json_cstr(stdout, path);
		printf(",\"bytes\":%llu}\n", written);
	}
	return EXIT_OK;
}

/* `ns` since the epoch as ISO 8601 in UTC with nanoseconds:
 * 2026-12-06T22:51:25.123456789Z. */
static void iso8601(int64_t ns, char *buf, size_t cap)
{
	int64_t frac = ns % 1000000000;
	time_t sec = (time_t)(ns / 1000000000);
	if (frac < 0) {
		frac += 1000000000;
		sec--;
	}
	struct tm tm;
	char date[40];
	if (!gmtime_r(&sec, &tm) || !strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm)) {
		snprintf(buf, cap, "%lld", (long long)ns);
		return;
	}
	snprintf(buf, cap, "%s.%09lldZ", date, (long long)frac);
}

static int do_stat(const ctl_opts *o, const char *root, const char *path, int follow)
{
	porter_file_info fi = PORTER_FILE_INFO_INIT;
	int rc = follow ? porter_file_stat(root, path, 0, o->timeout_ms, &fi)
			: porter_file_lstat(root, path, 0, o->timeout_ms, &fi);
	if (rc < 0)
		return ctl_fail(rc);
	char when[64];
	iso8601(fi.mtime_ns, when, sizeof(when));
	if (o->json)
		printf("{\"type\":\"%s\",\"size\":%llu,\"mode\":%u,\"mtime\":\"%s\","
		       "\"mtime_ns\":%lld,\"uid\":%u,\"gid\":%u,\"nlink\":%llu}\n",
		       type_name(fi.type), (unsigned long long)fi.size, fi.mode, when,
		       (long long)fi.mtime_ns, fi.uid, fi.gid, (unsigned long long)fi.nlink);
	else
		printf("type: %s\nsize: %llu\nmode: %04o\nmtime: %s\nuid: %u\ngid: %u\nlinks: %llu\n",
		       type_name(fi.type), (unsigned long long)fi.size, fi.mode, when, fi.uid,
		       fi.gid, (unsigned long long)fi.nlink);
	return EXIT_OK;
}

/* rm, mkdir, mv, cp: one call, then `{"KEY":PATH}` under --json; `hint`
 * follows a failure's message (see file_hint). */
static int done(const ctl_opts *o, int rc, const char *key, const char *path, const char *hint)
{
	if (rc < 0)
		return ctl_fail_hint(rc, hint);
	if (o->json) {
		printf("{\"%s\":", key);
		ctl_json_cstr(stdout, path);
		fputs("}\n", stdout);
	}
	return EXIT_OK;
}

static const char *event_name(int kind)
{
	static const char *const names[] = {"?",       "created", "modified",
					    "deleted", "moved",   "overflow"};
	return kind > 0 && kind <= PORTER_FILE_EVENT_OVERFLOW ? names[kind] : "?";
}

/* Prints the events of `path` as they come, `count` of them (0: until the
 * watch ends or porterctl is interrupted). */
static int do_watch(const ctl_opts *o, const char *root, const char *path, long count)
{
	porter_file_watch *w = NULL;
	int rc = porter_file_watch_open(root, path, 0, o->timeout_ms, &w);
	if (rc < 0)
		return ctl_fail(rc);
	long seen = 0;
	int ended = 0, out_err = 0;
	while (rc == 0 && !ended && (!count || seen < count)) {
		porter_file_events *b = NULL;
		rc = porter_file_watch_read(w, 0, 5000, &b);
		for (size_t i = 0; rc == 0 && i < porter_file_events_count(b); i++) {
			int kind;
			const char *name, *nn;
			porter_file_events_get(b, i, &kind, &name, &nn);
			if (o->json) {
				printf("{\"event\":\"%s\",\"name\":", event_name(kind));
				ctl_json_cstr(stdout, name);
				fputs(",\"new_name\":", stdout);
				ctl_json_cstr(stdout, nn);
				fputs("}\n", stdout);
			} else if (kind == PORTER_FILE_EVENT_MOVED) {
				fputs("moved ", stdout);
				ctl_name(stdout, name);
				fputs(" -> ", stdout);
				ctl_name(stdout, nn);
				putchar('\n');
			} else {
				printf("%s ", event_name(kind));
				ctl_name(stdout, name);
				putchar('\n');
			}
			if (count && ++seen >= count)
				break;
		}
		/* Nobody reads on once stdout failed (a reader gone while
		 * SIGPIPE is ignored, a full disk): watching on would last for
		 * ever. glibc drops a buffer it could not write, so the reason
		 * is taken here, from the flush that failed. */
		if (fflush(stdout) != 0 || ctl_stdout_broken()) {
			out_err = errno ? errno : EIO;
			ended = 1;
		} else {
			ended = porter_file_events_ended(b);
		}
		porter_file_events_free(b);
	}
	porter_file_watch_close(w, o->timeout_ms);
	if (out_err) {
		/* On stderr under --json too: stdout is what failed. */
		fprintf(stderr, "porterctl file watch: cannot write the events to stdout: %s\n",
			strerror(out_err));
		return EXIT_FAILED;
	}
	return rc < 0 ? ctl_fail(rc) : EXIT_OK;
}

static int do_ls(const ctl_opts *o, const char *root, const char *path)
{
	porter_file_list *l = NULL;
	int rc = porter_file_list_dir(root, path, 0, o->timeout_ms, &l);
	if (rc < 0)
		return ctl_fail_hint(rc, file_hint("ls", rc, 0, 0));
	size_t n = porter_file_list_count(l);
	if (o->json)
		putchar('[');
	for (size_t i = 0; i < n; i++) {
		int type;
		uint64_t size;
		int64_t mt;
		porter_file_list_entry(l, i, &type, &size, &mt);
		if (o->json) {
			printf("%s{\"name\":", i ? "," : "");
			ctl_json_cstr(stdout, porter_file_list_name(l, i));
			printf(",\"type\":\"%s\",\"size\":%llu,\"mtime_ns\":%lld}", type_name(type),
			       (unsigned long long)size, (long long)mt);
		} else {
			printf("%-7s %12llu  ", type_name(type), (unsigned long long)size);
			ctl_name(stdout, porter_file_list_name(l, i));
			putchar('\n');
		}
	}
	if (o->json)
		printf("]\n");
	porter_file_list_free(l);
	return EXIT_OK;
}

int ctl_file(const ctl_opts *o, int argc, char **argv)
{
	if (argc < 2)
		return file_usage("expected a subcommand");
	const char *sub = argv[1];
	if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
		fputs(file_help, stdout);
		return EXIT_OK;
	}
	const char *root = NULL;
	unsigned mode = 0;
	/* Flags are collected, then combined once: -x with -a or -A keeps
	 * both meanings instead of the last flag winning. */
	int dir = 0, append = 0, in_place = 0, exclusive = 0, parents = 0, no_clobber = 0,
	    follow = 0, c;
	long v, count = 0;
	static const struct option lopts[] = {
		{"root", required_argument, NULL, 'r'}, {"append", no_argument, NULL, 'a'},
		{"in-place", no_argument, NULL, 'A'},   {"exclusive", no_argument, NULL, 'x'},
		{"mode", required_argument, NULL, 'm'}, {"dir", no_argument, NULL, 'd'},
		{"parents", no_argument, NULL, 'p'},    {"no-clobber", no_argument, NULL, 'n'},
		{"follow", no_argument, NULL, 'L'},     {"count", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
	};
	argc--;
	argv++;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":r:aAxm:dpnLc:h", lopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			root = optarg;
			break;
		case 'a':
			append = 1;
			break;
		case 'A':
			in_place = 1;
			break;
		case 'x':
			exclusive = 1;
			break;
		case 'm': {
			char *end;
			v = strtol(optarg, &end, 8);
			if (!*optarg || *end || v < 0 || v > 07777)
				return ctl_error(EXIT_USAGE, "usage",
						 "file: --mode: expected octal, got '%s'", optarg);
			mode = (unsigned)v;
			break;
		}
		case 'd':
			dir = 1;
			break;
		case 'p':
			parents = 1;
			break;
		case 'n':
			no_clobber = 1;
			break;
		case 'L':
			follow = 1;
			break;
		case 'c': {
			char *end;
			count = strtol(optarg, &end, 10);
			if (!*optarg || *end || count < 1)
				return ctl_error(
					EXIT_USAGE, "usage",
					"file: --count: expected a positive number, got '%s'",
					optarg);
			break;
		}
		case 'h':
			fputs(file_help, stdout);
			return EXIT_OK;
		default: {
			char why[128];
			return file_usage(ctl_opt_problem(c, argv, why, sizeof(why)));
		}
		}
	}
	if (append && in_place)
		return file_usage("-a (append) and -A (overwrite in place) exclude each other");
	unsigned flags = PORTER_FILE_CREATE | PORTER_FILE_TRUNCATE | PORTER_FILE_ATOMIC;
	if (append)
		flags = PORTER_FILE_CREATE | PORTER_FILE_APPEND;
	else if (in_place)
		flags = PORTER_FILE_CREATE | PORTER_FILE_TRUNCATE | PORTER_FILE_SYNC;
	if (exclusive)
		flags |= PORTER_FILE_EXCLUSIVE;
	int rest = argc - optind;
	char **args = argv + optind;
	if (!strcmp(sub, "cat") && rest == 1)
		return do_cat(o, root, args[0]);
	if (!strcmp(sub, "put") && (rest == 1 || rest == 2))
		return do_put(o, root, args[0], rest == 2 ? args[1] : NULL, flags, mode);
	unsigned nr = no_clobber ? PORTER_FILE_NO_REPLACE : 0;
	int rc;
	if (!strcmp(sub, "rm") && rest == 1) {
		rc = porter_file_delete(root, args[0], dir, 0, o->timeout_ms);
		return done(o, rc, "removed", args[0], file_hint(sub, rc, dir, parents));
	}
	if (!strcmp(sub, "stat") && rest == 1)
		return do_stat(o, root, args[0], follow);
	if (!strcmp(sub, "ls") && rest <= 1)
		return do_ls(o, root, rest ? args[0] : "");
	if (!strcmp(sub, "mkdir") && rest == 1) {
		rc = porter_file_mkdir(root, args[0], mode, parents ? PORTER_FILE_PARENTS : 0, 0,
				       o->timeout_ms);
		return done(o, rc, "created", args[0], file_hint(sub, rc, dir, parents));
	}
	if (!strcmp(sub, "mv") && rest == 2)
		return done(o, porter_file_rename(root, args[0], args[1], nr, 0, o->timeout_ms),
			    "moved", args[1], NULL);
	if (!strcmp(sub, "cp") && rest == 2)
		return done(o, porter_file_copy(root, args[0], args[1], nr, 0, o->timeout_ms, NULL),
			    "copied", args[1], NULL);
	if (!strcmp(sub, "watch") && rest == 1)
		return do_watch(o, root, args[0], count);
	for (size_t i = 0; i < sizeof(file_subs) / sizeof(file_subs[0]); i++)
		if (!strcmp(sub, file_subs[i].name))
			return ctl_error(EXIT_USAGE, "usage",
					 "file %s: expected %s (see 'porterctl file --help')", sub,
					 file_subs[i].args);
	return ctl_error(EXIT_USAGE, "usage",
			 "file: unknown subcommand '%s' (cat, put, rm, stat, ls, mkdir, mv, cp or "
			 "watch; see 'porterctl file --help')",
			 sub);
}
