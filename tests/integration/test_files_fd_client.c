/*
 * Files by descriptor (issue 17.1), the client side: what libporter
 * accepts, and what goes through it.
 *
 * A fake daemon in this process passes what porterd never would (a
 * directory, a writable descriptor for a read, extra descriptors):
 * libporter refuses and closes them all. Then byte-exact round trips
 * through the library, 0 B to 100 MiB, porter_file_read_into, and an
 * atomic write kept alive past porterd's file-stream-idle. What porterd
 * passes is checked in test_files_fd.c.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "files_fd_fixture.h"
#include "frame.h"
#include "porter.h"
#include "porter_version.h"

/* ------------------------------------------ a daemon that lies to us */

/*
 * A fake porterd on its own socket, one thread: answers Hello, then every
 * FileRead with fd_passed and what `mode` says to pass (a directory, a
 * read-write file, or three descriptors for one frame).
 */
enum fake_mode { FAKE_DIR, FAKE_RDWR, FAKE_EXTRA };

typedef struct fake {
	char path[108];
	int listen_fd;
	enum fake_mode mode;
	int served;
	pthread_t th;
} fake;

static void fake_reply(int fd, Porter__V1__Response *resp, const int *fds, int n)
{
	uint8_t *buf = NULL;
	size_t cap = 0, len = 0;
	ck_assert_int_eq(frame_pack_into(&resp->base, 1 << 20, &buf, &cap, &len), 0);
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(3 * sizeof(int))];
	} u;
	memset(&u, 0, sizeof(u));
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (n) {
		mh.msg_control = u.b;
		mh.msg_controllen = CMSG_SPACE((size_t)n * sizeof(int));
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN((size_t)n * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, (size_t)n * sizeof(int));
	}
	sendmsg(fd, &mh, MSG_NOSIGNAL);
	free(buf);
}

static void *fake_main(void *arg)
{
	fake *f = arg;
	for (;;) {
		int fd = accept(f->listen_fd, NULL, NULL);
		if (fd < 0)
			return NULL;
		frame_reader rd;
		frame_reader_init(&rd, 1 << 20);
		for (;;) {
			Porter__V1__Request *req = NULL;
			const uint8_t *p;
			size_t len;
			while (frame_reader_next(&rd, &p, &len) != 1) {
				uint8_t *space;
				size_t cap;
				frame_reader_space(&rd, &space, &cap);
				ssize_t n = recv(fd, space, cap, 0);
				if (n <= 0)
					goto next;
				frame_reader_commit(&rd, (size_t)n);
			}
			req = porter__v1__request__unpack(NULL, len, p);
			if (!req)
				goto next;
			Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
			Porter__V1__HelloReply hr = PORTER__V1__HELLO_REPLY__INIT;
			Porter__V1__FileReadReply rr = PORTER__V1__FILE_READ_REPLY__INIT;
			resp.id = req->id;
			if (req->body_case == PORTER__V1__REQUEST__BODY_HELLO) {
				hr.protocol = PORTER_PROTOCOL_VERSION;
				hr.daemon_version = PORTER_VERSION_STRING;
				hr.max_frame = 1 << 20;
				resp.body_case = PORTER__V1__RESPONSE__BODY_HELLO;
				resp.hello = &hr;
				fake_reply(fd, &resp, NULL, 0);
			} else if (req->body_case == PORTER__V1__REQUEST__BODY_FILE_READ) {
				rr.fd_passed = 1;
				rr.file_size = 17;
				resp.body_case = PORTER__V1__RESPONSE__BODY_FILE_READ;
				resp.file_read = &rr;
				char fp[256];
				snprintf(fp, sizeof(fp), "%s/f", root);
				int fds[3] = {-1, -1, -1}, n = 1;
				if (f->mode == FAKE_DIR) {
					fds[0] = open(root, O_RDONLY | O_DIRECTORY);
				} else if (f->mode == FAKE_RDWR) {
					fds[0] = open(fp, O_RDWR);
				} else {
					n = 3;
					for (int i = 0; i < 3; i++)
						fds[i] = open(fp, O_RDONLY);
				}
				fake_reply(fd, &resp, fds, n);
				for (int i = 0; i < n; i++)
					close(fds[i]);
				__atomic_add_fetch(&f->served, 1, __ATOMIC_SEQ_CST);
			} else {
				resp.status = PORTER_E_UNSUPPORTED;
				fake_reply(fd, &resp, NULL, 0);
			}
			porter__v1__request__free_unpacked(req, NULL);
		}
	next:
		frame_reader_free(&rd);
		close(fd);
	}
}

static void fake_start(fake *f, enum fake_mode mode)
{
	memset(f, 0, sizeof(*f));
	f->mode = mode;
	snprintf(f->path, sizeof(f->path), "%s/fake.sock", d.dir);
	unlink(f->path);
	f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	ck_assert_int_eq(bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(f->listen_fd, 4), 0);
	pthread_create(&f->th, NULL, fake_main, f);
}

static void fake_stop(fake *f)
{
	shutdown(f->listen_fd, SHUT_RDWR);
	close(f->listen_fd);
	pthread_join(f->th, NULL);
}

/* Counts this process's open descriptors. */
static int my_fds(void)
{
	return th_fd_count(getpid());
}

START_TEST(test_client_refuses_what_it_did_not_ask)
{
	porter_thread_disconnect();
	static const enum fake_mode modes[] = {FAKE_DIR, FAKE_RDWR, FAKE_EXTRA};
	for (size_t m = 0; m < 3; m++) {
		fake f;
		fake_start(&f, modes[m]);
		setenv("PORTER_SOCKET", f.path, 1);
		int base = my_fds();
		for (int i = 0; i < 5; i++) {
			porter_bytes *b = NULL;
			int rc = porter_file_read("main", "f", 0, 0, 0, 2000, &b);
			if (modes[m] == FAKE_EXTRA) {
				/* The one claimed is fine; the two extra ones are
				 * closed (and the connection dropped). */
				ck_assert_msg(rc == 0, "extra: %d (%s)", rc,
					      porter_last_error_message());
				ck_assert_uint_eq(b->len, 17);
				porter_bytes_free(b);
				/* Closed at once, not at the disconnect: what is
				 * open is our connection and the fake's end of
				 * it (the fake closes its copies of what it
				 * passed right after sending them). */
				int now = my_fds();
				for (int k = 0; k < 200 && now > base + 2; k++) {
					usleep(10000);
					now = my_fds();
				}
				ck_assert_msg(now <= base + 2,
					      "extra descriptors kept: %d, %d before", now, base);
			} else {
				ck_assert_msg(rc == PORTER_E_PROTOCOL, "mode %zu: %d (%s)", m, rc,
					      porter_last_error_message());
				ck_assert_ptr_null(b);
			}
			porter_file_reader *rd = NULL;
			rc = porter_file_reader_open("main", "f", 0, 0, 0, 0, 2000, &rd);
			ck_assert_int_eq(rc, modes[m] == FAKE_EXTRA ? 0 : PORTER_E_PROTOCOL);
			porter_file_reader_close(rd, 1000);
		}
		porter_thread_disconnect();
		/* Every descriptor the fake passed is closed again (the fake
		 * closes its end of the connection when it sees ours go). */
		int now = my_fds();
		for (int i = 0; i < 200 && now != base; i++) {
			usleep(10000);
			now = my_fds();
		}
		ck_assert_msg(now == base, "mode %zu: %d descriptors, %d before", m, now, base);
		ck_assert_int_ge(__atomic_load_n(&f.served, __ATOMIC_SEQ_CST), 10);
		fake_stop(&f);
		unlink(f.path);
	}
	setenv("PORTER_SOCKET", d.socket, 1);
}
END_TEST

/* ------------------------------------------------------ round trips */

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

/* Byte-exact round trips by descriptor, 0 B to 100 MiB: plain and atomic
 * writes, whole reads and readers. */
START_TEST(test_round_trips)
{
	static const size_t sizes[] = {0,         1,         4095, 4096, 65537, (1u << 20) + 3,
				       16u << 20, 100u << 20};
	uint8_t *buf = malloc(100u << 20);
	ck_assert_ptr_nonnull(buf);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		fill(buf, n, (uint32_t)i + 1);
		unsigned flags =
			i % 2 ? PORTER_FILE_ATOMIC : PORTER_FILE_CREATE | PORTER_FILE_TRUNCATE;
		ck_assert_msg(porter_file_write("main", "rt", buf, n, flags, 0, 0, 60000) == 0,
			      "write %zu: %s", n, porter_last_error_message());
		porter_bytes *got = NULL;
		ck_assert_int_eq(porter_file_read("main", "rt", 0, 0, 0, 60000, &got), 0);
		ck_assert_uint_eq(got->len, n);
		ck_assert_msg(n == 0 || memcmp(got->data, buf, n) == 0, "%zu bytes differ", n);
		porter_bytes_free(got);
		/* The other write kind through a writer, read back by a reader. */
		porter_file_writer *wr = NULL;
		flags = i % 2 ? PORTER_FILE_CREATE | PORTER_FILE_TRUNCATE : PORTER_FILE_ATOMIC;
		ck_assert_int_eq(porter_file_writer_open("main", "rt2", flags, 0, 0, T, &wr), 0);
		size_t half = n / 2;
		ck_assert_int_eq(porter_file_writer_write(wr, buf, half, 0, 60000), 0);
		ck_assert_int_eq(porter_file_writer_write(wr, buf + half, n - half, 0, 60000), 0);
		ck_assert_int_eq(porter_file_writer_commit(wr, 0, 60000), 0);
		porter_file_writer_close(wr, 1000);
		porter_file_reader *rd = NULL;
		ck_assert_int_eq(porter_file_reader_open("main", "rt2", 0, 0, 0, 0, T, &rd), 0);
		ck_assert_uint_eq(porter_file_reader_size(rd), n);
		size_t off = 0;
		const void *p;
		size_t len;
		int rc;
		while ((rc = porter_file_reader_read(rd, 0, T, &p, &len)) == 1) {
			ck_assert_uint_le(off + len, n);
			ck_assert(memcmp(p, buf + off, len) == 0);
			off += len;
		}
		ck_assert_int_eq(rc, 0);
		ck_assert_uint_eq(off, n);
		porter_file_reader_close(rd, 1000);
	}
	/* Ranges. */
	fill(buf, 100000, 99);
	ck_assert_int_eq(porter_file_write("main", "r", buf, 100000, PORTER_FILE_CREATE, 0, 0, T),
			 0);
	porter_bytes *got = NULL;
	ck_assert_int_eq(porter_file_read("main", "r", 1000, 5000, 0, T, &got), 0);
	ck_assert_uint_eq(got->len, 5000);
	ck_assert(memcmp(got->data, buf + 1000, 5000) == 0);
	porter_bytes_free(got);
	ck_assert_int_eq(porter_file_read("main", "r", 200000, 0, 0, T, &got), 0);
	ck_assert_uint_eq(got->len, 0);
	porter_bytes_free(got);
	free(buf);
	/* Nothing left behind but the files written. */
	ck_assert_uint_eq(th_dir_entries(root), 9); /* f big sub to_sub to_etc fifo rt rt2 r */
}
END_TEST

/*
 * porter_file_read_into reads into the caller's buffer as pread(2) would,
 * by descriptor (setup) and as bytes (setup_bytes): whole files from 1 B
 * to 3 MiB (several chunks of 64 KiB), ranges, a buffer smaller than the
 * file, the end of the file, and the same confinement and errors as
 * porter_file_read. Bytes past what was read stay untouched.
 */
START_TEST(test_read_into)
{
	static const size_t sizes[] = {1, 4096, 65537, (3u << 20) + 5};
	size_t big = (3u << 20) + 5;
	uint8_t *want = malloc(big), *buf = malloc(big + 16);
	ck_assert(want && buf);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		fill(want, n, (uint32_t)i + 7);
		ck_assert_int_eq(porter_file_write("main", "ri", want, n,
						   PORTER_FILE_CREATE | PORTER_FILE_TRUNCATE, 0, 0,
						   60000),
				 0);
		size_t got = 1;
		memset(buf, 0xA5, big + 16);
		ck_assert_msg(
			porter_file_read_into("main", "ri", 0, buf, big + 16, 0, 60000, &got) == 0,
			"read_into %zu: %s", n, porter_last_error_message());
		ck_assert_uint_eq(got, n);
		ck_assert_msg(memcmp(buf, want, n) == 0, "%zu bytes differ", n);
		ck_assert_uint_eq(buf[n], 0xA5);
		/* A buffer smaller than the rest of the file: exactly its size,
		 * from the offset, nothing written past it. */
		size_t off = n / 3, cap = n - off > 1 ? (n - off) / 2 : 1;
		memset(buf, 0xA5, big + 16);
		ck_assert_int_eq(porter_file_read_into("main", "ri", off, buf, cap, 0, 60000, &got),
				 0);
		ck_assert_uint_eq(got, cap);
		ck_assert(memcmp(buf, want + off, cap) == 0);
		ck_assert_uint_eq(buf[cap], 0xA5);
		/* At and past the end: 0 bytes, as pread(2). */
		ck_assert_int_eq(porter_file_read_into("main", "ri", n, buf, 10, 0, T, &got), 0);
		ck_assert_uint_eq(got, 0);
		ck_assert_int_eq(porter_file_read_into("main", "ri", n + 100, buf, 10, 0, T, &got),
				 0);
		ck_assert_uint_eq(got, 0);
	}
	/* Nothing asked: nothing read, no error. */
	size_t got = 9;
	ck_assert_int_eq(porter_file_read_into("main", "f", 0, NULL, 0, 0, T, &got), 0);
	ck_assert_uint_eq(got, 0);
	ck_assert_int_eq(porter_file_read_into("main", "f", 0, NULL, 5, 0, T, &got),
			 PORTER_E_INVAL);
	ck_assert_int_eq(porter_file_read_into("main", NULL, 0, buf, 5, 0, T, &got),
			 PORTER_E_INVAL);
	/* Confinement and errors: those of porter_file_read, nothing read. */
	static const struct {
		const char *path;
		int status;
	} cases[] = {
		{"sub", PORTER_E_FILE_ISDIR},          {"to_sub", PORTER_E_FILE_ISDIR},
		{"..", PORTER_E_FILE_ESCAPE},          {"to_etc/passwd", PORTER_E_FILE_ESCAPE},
		{"/etc/passwd", PORTER_E_FILE_ESCAPE}, {"fifo", PORTER_E_INVAL},
		{"absent", PORTER_E_FILE_NOT_FOUND},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		got = 7;
		memset(buf, 0xA5, 64);
		int rc = porter_file_read_into("main", cases[i].path, 0, buf, 64, 0, T, &got);
		ck_assert_msg(rc == cases[i].status, "read_into '%s': %d (%s)", cases[i].path, rc,
			      porter_last_error_message());
		ck_assert_uint_eq(got, 0);
		ck_assert_uint_eq(buf[0], 0xA5);
	}
	free(want);
	free(buf);
}
END_TEST

/*
 * An atomic write by descriptor that goes on for several of porterd's
 * file-stream-idle periods (1 s here): the bytes never reach porterd, so
 * only the writer's touches keep its stream and temp file alive. A write
 * every 50 ms for 4 s, then the commit: it succeeds and the file holds
 * every byte. Without the touches (43d704d), or with touches timed for the
 * default 10 s rather than what porterd says, the stream is reclaimed
 * after a second and the commit fails.
 */
/* How many descriptors of this process are unnamed files in the root
 * (an O_TMPFILE temp file shows as "<root>/#<inode> (deleted)"). */
static int tmpfiles_held(void)
{
	int n = 0;
	for (int fd = 0; fd < 1024; fd++) {
		char p[64], target[512];
		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		ssize_t len = readlink(p, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		if (strncmp(target, root, strlen(root)) == 0 && strstr(target, "(deleted)"))
			n++;
	}
	return n;
}

START_TEST(test_slow_atomic_write_kept_alive)
{
	porter_file_writer *wr = NULL;
	ck_assert_int_eq(
		porter_file_writer_open("main", "slow", PORTER_FILE_ATOMIC, 0600, 0, T, &wr), 0);
	/* By descriptor: the bytes below never reach porterd. */
	ck_assert_int_eq(tmpfiles_held(), 1);
	uint8_t piece[1000];
	size_t total = 0;
	double t0 = th_now_ns();
	for (int i = 0; th_now_ns() - t0 < 4e9; i++) {
		memset(piece, 'a' + i % 26, sizeof(piece));
		ck_assert_msg(porter_file_writer_write(wr, piece, sizeof(piece), 0, T) == 0,
			      "write %d: %s", i, porter_last_error_message());
		total += sizeof(piece);
		usleep(50 * 1000);
	}
	ck_assert_msg(porter_file_writer_commit(wr, 0, T) == 0, "commit after %zu bytes: %s", total,
		      porter_last_error_message());
	porter_file_writer_close(wr, 1000);
	porter_file_info fi = PORTER_FILE_INFO_INIT;
	ck_assert_int_eq(porter_file_stat("main", "slow", 0, T, &fi), 0);
	ck_assert_uint_eq(fi.size, total);
}
END_TEST

static Suite *suite(void)
{
	const TTest *fd[] = {test_client_refuses_what_it_did_not_ask, test_round_trips,
			     test_read_into, NULL};
	const TTest *bytes[] = {test_read_into, NULL};
	const TTest *idle[] = {test_slow_atomic_write_kept_alive, NULL};
	Suite *s = suite_create("files_fd_client");
	tcase_add_checked_fixture(th_tcase(s, "fd", 120, fd), setup, teardown);
	tcase_add_checked_fixture(th_tcase(s, "bytes", 0, bytes), setup_bytes, teardown);
	tcase_add_checked_fixture(th_tcase(s, "stream_idle", 60, idle), setup_idle, teardown);
	return s;
}

TH_MAIN(suite)
