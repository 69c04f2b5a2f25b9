/*
 * Unit tests of daemon/fspass.c, files by descriptor: which reads are small
 * enough to go as bytes, which files a foreign uid may get as a descriptor
 * (none it could reopen or hard-link wider than asked), and handing a read
 * or write descriptor to the job: access mode checked, O_NONBLOCK cleared,
 * O_APPEND kept, an atomic write's temp file duplicated rather than moved.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "fspass.h"
#include "fsroot.h"
#include "fswork.h"
#include "thmain.h"
#include "thsys.h"

#define KIB 1024u
#define FOREIGN_UID 61011 /* a client that is not porterd's uid */

static char top[64];

/* A temp directory that is also the one file root; this process's uid is
 * clients_self(), porterd's own, as in porterd. */
static void setup(void)
{
	char item[128];
	snprintf(top, sizeof(top), "/tmp/porter-fspass-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(top));
	snprintf(item, sizeof(item), "t=%s", top);
	char *items[] = {item};
	config c;
	memset(&c, 0, sizeof(c));
	c.file_roots.items = items;
	c.file_roots.n = 1;
	ck_assert_int_eq(fsroot_init(&c), 0);
	ck_assert_uint_eq(clients_self(), geteuid());
	fswork_init(1u << 20);
}

static void teardown(void)
{
	fsroot_shutdown();
	ck_assert_int_eq(th_rm_rf(top), 0);
}

/* Creates top/name with `mode` (set by fchmod, past the umask), `size`
 * bytes long, owned by `uid`; opens it with `flags`. */
static int make_file(const char *name, mode_t mode, off_t size, uid_t uid, int flags)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/%s", top, name);
	int fd = open(p, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, size), 0);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	if (uid != geteuid())
		ck_assert_int_eq(fchown(fd, uid, (gid_t)-1), 0);
	close(fd);
	fd = open(p, flags | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	return fd;
}

static int small(uint64_t offset, uint64_t length, uint32_t chunk, uint64_t size)
{
	Porter__V1__FileRead m = PORTER__V1__FILE_READ__INIT;
	m.offset = offset;
	m.length = length;
	m.chunk_size = chunk;
	return fspass_small_read(&m, size);
}

/* Small: the whole range, at least one byte, fits one chunk of <= 64 KiB. */
START_TEST(small_read_bounds)
{
	ck_assert_int_eq(small(0, 0, 0, 0), 0);        /* empty file: nothing to read */
	ck_assert_int_eq(small(10, 0, 0, 10), 0);      /* offset at the end */
	ck_assert_int_eq(small(11, 0, 0, 10), 0);      /* and past it */
	ck_assert_int_eq(small(9, 0, 0, 10), 1);       /* the last byte */
	ck_assert_int_eq(small(0, 0, 0, 4 * KIB), 1);  /* a whole small file */
	ck_assert_int_eq(small(0, 0, 0, 64 * KIB), 1); /* exactly 64 KiB */
	ck_assert_int_eq(small(0, 0, 0, 64 * KIB + 1), 0);
	/* The range, not the file, is what counts. */
	ck_assert_int_eq(small(0, 100, 0, 1u << 30), 1);
	ck_assert_int_eq(small(0, 64 * KIB, 0, 1u << 30), 1);
	ck_assert_int_eq(small(0, 64 * KIB + 1, 0, 1u << 30), 0);
	ck_assert_int_eq(small((1u << 30) - 64 * KIB, 0, 0, 1u << 30), 1);
	ck_assert_int_eq(small((1u << 30) - 64 * KIB - 1, 0, 0, 1u << 30), 0);
	/* A length past the end is cut at the end. */
	ck_assert_int_eq(small(100, 1u << 30, 0, 200), 1);
	/* More than one chunk is not small, however few bytes. */
	ck_assert_int_eq(small(0, 0, 100, 100), 1);
	ck_assert_int_eq(small(0, 0, 100, 101), 0);
	/* file-chunk-size caps the client's chunk. */
	fswork_init(1 * KIB);
	ck_assert_int_eq(small(0, 0, 0, 1 * KIB), 1);
	ck_assert_int_eq(small(0, 0, 8 * KIB, 1 * KIB + 1), 0);
}
END_TEST

/* Read descriptors: never of a file the client owns or one whose group or
 * other bits give write; porterd's own uid gets any. */
START_TEST(passable_read)
{
	struct stat sb;
	memset(&sb, 0, sizeof(sb));
	sb.st_mode = S_IFREG | 0644;
	sb.st_uid = geteuid();
	ck_assert_int_eq(fspass_passable(&sb, FOREIGN_UID, 0), 1);
	sb.st_mode = S_IFREG | 0600;
	ck_assert_int_eq(fspass_passable(&sb, FOREIGN_UID, 0), 1);
	sb.st_mode = S_IFREG | 0664; /* group write: a reopen could write */
	ck_assert_int_eq(fspass_passable(&sb, FOREIGN_UID, 0), 0);
	sb.st_mode = S_IFREG | 0646; /* other write */
	ck_assert_int_eq(fspass_passable(&sb, FOREIGN_UID, 0), 0);
	sb.st_mode = S_IFREG | 0400;
	sb.st_uid = FOREIGN_UID; /* the client's own file: it can chmod it */
	ck_assert_int_eq(fspass_passable(&sb, FOREIGN_UID, 0), 0);
	ck_assert_int_eq(fspass_passable(&sb, FOREIGN_UID + 1, 0), 1);
	/* porterd's own uid: nothing to widen, whatever the bits. */
	sb.st_mode = S_IFREG | 0666;
	sb.st_uid = FOREIGN_UID;
	ck_assert_int_eq(fspass_passable(&sb, geteuid(), 0), 1);
}
END_TEST

/* Write descriptors: never one whose group or other bits give read. */
START_TEST(passable_write)
{
	struct stat sb;
	memset(&sb, 0, sizeof(sb));
	sb.st_uid = geteuid();
	sb.st_mode = S_IFREG | 0600;
	ck_assert_int_eq(fspass_passable(&sb, FOREIGN_UID, 1), 1);
	sb.st_mode = S_IFREG | 0622; /* others may write anyway: nothing wider */
	ck_assert_int_eq(fspass_passable(&sb, FOREIGN_UID, 1), 1);
	sb.st_mode = S_IFREG | 0640; /* group read */
	ck_assert_int_eq(fspass_passable(&sb, FOREIGN_UID, 1), 0);
	sb.st_mode = S_IFREG | 0604; /* other read */
	ck_assert_int_eq(fspass_passable(&sb, FOREIGN_UID, 1), 0);
	sb.st_mode = S_IFREG | 0644; /* fine to read, not to write-pass */
	ck_assert_int_eq(fspass_passable(&sb, FOREIGN_UID, 0), 1);
	ck_assert_int_eq(fspass_passable(&sb, FOREIGN_UID, 1), 0);
	sb.st_mode = S_IFREG | 0200;
	sb.st_uid = FOREIGN_UID;
	ck_assert_int_eq(fspass_passable(&sb, FOREIGN_UID, 1), 0);
	ck_assert_int_eq(fspass_passable(&sb, geteuid(), 1), 1);
}
END_TEST

/* A read job of a foreign client whose request asked chunks of `chunk`. */
typedef struct read_job {
	Porter__V1__FileRead fr;
	Porter__V1__Request msg;
	req r;
	fs_job j;
} read_job;

static void read_job_init(read_job *rj, uint32_t chunk, uid_t uid)
{
	memset(rj, 0, sizeof(*rj));
	porter__v1__file_read__init(&rj->fr);
	porter__v1__request__init(&rj->msg);
	rj->fr.chunk_size = chunk;
	rj->msg.file_read = &rj->fr;
	rj->r.msg = &rj->msg;
	rj->j.r = &rj->r;
	rj->j.uid = uid;
	rj->j.pass_fd = -1;
}

START_TEST(read_moves_descriptor)
{
	read_job rj;
	read_job_init(&rj, 4 * KIB, FOREIGN_UID);
	const int flags = O_RDONLY | O_NONBLOCK;
	int fd = make_file("f", 0644, 12345, geteuid(), flags);
	const int orig = fd;
	struct stat sb;
	ck_assert_int_eq(fstat(fd, &sb), 0);
	ck_assert_int_eq(fspass_read(&rj.j, &fd, &sb, flags), 0);
	ck_assert_int_eq(fd, -1);
	ck_assert_int_eq(rj.j.pass_fd, orig);
	ck_assert_uint_eq(rj.j.file_size, 12345);
	ck_assert_uint_eq(rj.j.chunk, 4 * KIB);
	int fl = fcntl(rj.j.pass_fd, F_GETFL);
	ck_assert_int_ge(fl, 0);
	ck_assert_int_eq(fl & O_NONBLOCK, 0); /* the client would see it */
	ck_assert_int_eq(fl & O_ACCMODE, O_RDONLY);
	close(rj.j.pass_fd);

	/* The chunk told is capped by file-chunk-size. */
	read_job_init(&rj, 0, geteuid());
	fswork_init(2 * KIB);
	fd = make_file("g", 0600, 1, geteuid(), O_RDONLY);
	ck_assert_int_eq(fstat(fd, &sb), 0);
	ck_assert_int_eq(fspass_read(&rj.j, &fd, &sb, O_RDONLY), 0);
	ck_assert_uint_eq(rj.j.chunk, 2 * KIB);
	ck_assert_uint_eq(rj.j.file_size, 1);
	close(rj.j.pass_fd);
}
END_TEST

/* Refusals leave the descriptor with the caller and the job untouched. */
static void check_read_refused(read_job *rj, int *fd, const struct stat *sb, int flags)
{
	const int orig = *fd;
	ck_assert_int_eq(fspass_read(&rj->j, fd, sb, flags), -1);
	ck_assert_int_eq(*fd, orig);
	ck_assert_int_eq(rj->j.pass_fd, -1);
	ck_assert_int_ge(fcntl(orig, F_GETFD), 0); /* still open */
	close(orig);
}

START_TEST(read_refusals)
{
	read_job rj;
	read_job_init(&rj, 0, FOREIGN_UID);
	struct stat sb;
	/* Opened for anything but O_RDONLY. */
	int fd = make_file("rw", 0600, 10, geteuid(), O_RDWR);
	ck_assert_int_eq(fstat(fd, &sb), 0);
	check_read_refused(&rj, &fd, &sb, O_RDWR);
	fd = make_file("wo", 0600, 10, geteuid(), O_WRONLY);
	ck_assert_int_eq(fstat(fd, &sb), 0);
	check_read_refused(&rj, &fd, &sb, O_WRONLY);
	/* A file others may write. */
	fd = make_file("ww", 0666, 10, geteuid(), O_RDONLY);
	ck_assert_int_eq(fstat(fd, &sb), 0);
	check_read_refused(&rj, &fd, &sb, O_RDONLY);
	/* The client's own file. */
	fd = make_file("own", 0400, 10, FOREIGN_UID, O_RDONLY);
	ck_assert_int_eq(fstat(fd, &sb), 0);
	check_read_refused(&rj, &fd, &sb, O_RDONLY);
	/* Not a regular file: a directory, and a character device. */
	fd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &sb), 0);
	check_read_refused(&rj, &fd, &sb, O_RDONLY);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &sb), 0);
	check_read_refused(&rj, &fd, &sb, O_RDONLY);
}
END_TEST

static void write_job_init(fs_job *j, fs_stream *s, int fd, uint32_t flags)
{
	memset(j, 0, sizeof(*j));
	memset(s, 0, sizeof(*s));
	j->uid = FOREIGN_UID;
	j->pass_fd = -1;
	s->fd = fd;
	s->dirfd = -1;
	s->flags = flags;
}

START_TEST(write_plain_moves_descriptor)
{
	fs_job j;
	fs_stream s;
	int fd = make_file("w", 0600, 0, geteuid(), O_WRONLY | O_APPEND | O_NONBLOCK);
	const int orig = fd;
	write_job_init(&j, &s, fd, 0);
	ck_assert_int_eq(fspass_write(&j, &s), 0);
	ck_assert_int_eq(s.fd, -1);
	ck_assert_int_eq(j.pass_fd, orig);
	int fl = fcntl(j.pass_fd, F_GETFL);
	ck_assert_int_ge(fl, 0);
	ck_assert_int_eq(fl & O_NONBLOCK, 0);
	ck_assert_int_ne(fl & O_APPEND, 0); /* kept */
	ck_assert_int_eq(fl & O_ACCMODE, O_WRONLY);
	close(j.pass_fd);
}
END_TEST

START_TEST(write_atomic_duplicates)
{
	fs_job j;
	fs_stream s;
	int fd = make_file("tmp", 0600, 0, geteuid(), O_WRONLY);
	write_job_init(&j, &s, fd, PORTER__V1__FILE_WRITE_FLAG__FILE_ATOMIC);
	ck_assert_int_eq(fspass_write(&j, &s), 0);
	/* The stream keeps its temp file for the commit. */
	ck_assert_int_eq(s.fd, fd);
	ck_assert_int_ge(j.pass_fd, 0);
	ck_assert_int_ne(j.pass_fd, fd);
	struct stat a, b;
	ck_assert_int_eq(fstat(fd, &a), 0);
	ck_assert_int_eq(fstat(j.pass_fd, &b), 0);
	ck_assert(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
	ck_assert_int_ne(fcntl(j.pass_fd, F_GETFD) & FD_CLOEXEC, 0);
	close(j.pass_fd);
	close(fd);
}
END_TEST

/* Write refusals keep the descriptor in the stream. */
static void check_write_refused(int fd, uint32_t flags)
{
	fs_job j;
	fs_stream s;
	write_job_init(&j, &s, fd, flags);
	ck_assert_int_eq(fspass_write(&j, &s), -1);
	ck_assert_int_eq(s.fd, fd);
	ck_assert_int_eq(j.pass_fd, -1);
	ck_assert_int_ge(fcntl(fd, F_GETFD), 0);
	close(fd);
}

START_TEST(write_refusals)
{
	const uint32_t atomic = PORTER__V1__FILE_WRITE_FLAG__FILE_ATOMIC;
	/* Readable by its group or others: the descriptor could be reopened
	 * for reading. */
	check_write_refused(make_file("gr", 0640, 0, geteuid(), O_WRONLY), 0);
	check_write_refused(make_file("or", 0604, 0, geteuid(), O_WRONLY), atomic);
	/* The client's own file. */
	check_write_refused(make_file("own", 0200, 0, FOREIGN_UID, O_WRONLY), 0);
	/* Not write-only. */
	check_write_refused(make_file("rw", 0600, 0, geteuid(), O_RDWR), 0);
	check_write_refused(make_file("ro", 0600, 0, geteuid(), O_RDONLY), atomic);
	/* Not a regular file. */
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	check_write_refused(fd, 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("fspass");
	const TTest *const tests[] = {
		small_read_bounds,       passable_read,  passable_write,
		read_moves_descriptor,   read_refusals,  write_plain_moves_descriptor,
		write_atomic_duplicates, write_refusals, NULL,
	};
	TCase *tc = th_tcase(s, "fspass", 10, tests);
	tcase_add_checked_fixture(tc, setup, teardown);
	return s;
}

TH_MAIN(suite)
