/*
 * Files by descriptor (issue 17.1): what porterd passes, to whom, and what
 * libporter accepts.
 *
 * The daemon side is checked over the raw protocol, receiving with
 * recvmsg so that every descriptor that arrives is seen: a read passes an
 * O_RDONLY regular file (never a directory, never writable), a write open
 * an O_WRONLY one, an atomic write its O_TMPFILE temp file that only its
 * own client can commit, nothing is passed where it must not be (escapes,
 * directories, batch members, file-pass-fd=false), descriptors a client
 * sends are never taken in, and abandoned temp files leave nothing. The
 * client side is checked against a fake daemon in this process that passes
 * what it should not (a directory, a writable descriptor for a read, extra
 * descriptors): libporter refuses and closes them all; that side and
 * the byte-exact round trips through the library, 0 B to 100 MiB, are in
 * test_files_fd_client.c.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files_fd_fixture.h"
#include "frame.h"
#include "porter.h"

#define MAXFD 8

/* ------------------------------------------------------ raw protocol */

typedef struct raw {
	int fd;
	frame_reader rd;
	int fds[MAXFD]; /* descriptors received and not yet claimed */
	int n_fds;
} raw;

/* A raw connection that said Hello with client instance `instance`. */
/* The next response, collecting every descriptor that arrives with it. */
static Porter__V1__Response *raw_recv(raw *c)
{
	return th_raw_recv_fds(c->fd, &c->rd, 5000, c->fds, &c->n_fds, MAXFD);
}

static void raw_open(raw *c, uint64_t instance)
{
	memset(c, 0, sizeof(*c));
	c->fd = th_raw_connect(d.socket);
	frame_reader_init(&c->rd, 64u << 20);
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__Hello h = PORTER__V1__HELLO__INIT;
	h.protocol = PORTER_PROTOCOL_VERSION;
	h.client_instance = instance;
	h.pid = (uint32_t)getpid();
	h.client_name = "test_files_fd";
	req.id = 1;
	req.body_case = PORTER__V1__REQUEST__BODY_HELLO;
	req.hello = &h;
	th_raw_send(c->fd, &req);
	/* Read before any request: porterd passes a descriptor only to a
	 * client that has read every earlier reply. */
	Porter__V1__Response *r = raw_recv(c);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->status, 0);
	porter__v1__response__free_unpacked(r, NULL);
}

static void raw_close(raw *c)
{
	for (int i = 0; i < c->n_fds; i++)
		close(c->fds[i]);
	close(c->fd);
	frame_reader_free(&c->rd);
}

/* Sends `req` (id `id`) and returns its reply (the Hello reply, read
 * first, is skipped). */
static Porter__V1__Response *raw_call(raw *c, Porter__V1__Request *req, uint64_t id)
{
	req->id = id;
	th_raw_send(c->fd, req);
	for (;;) {
		Porter__V1__Response *r = raw_recv(c);
		ck_assert_ptr_nonnull(r);
		if (r->id == id)
			return r;
		porter__v1__response__free_unpacked(r, NULL);
	}
}

/* Takes the one descriptor that came, failing when there is not exactly
 * one. */
static int take_one(raw *c)
{
	ck_assert_int_eq(c->n_fds, 1);
	c->n_fds = 0;
	return c->fds[0];
}

static Porter__V1__Response *raw_read(raw *c, const char *path, int want_fd, uint64_t id)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileRead fr = PORTER__V1__FILE_READ__INIT;
	fr.root = "main";
	fr.path = (char *)path;
	fr.want_fd = want_fd;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_READ;
	req.file_read = &fr;
	return raw_call(c, &req, id);
}

static Porter__V1__Response *raw_write_open(raw *c, const char *path, uint32_t flags, uint64_t id)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileWriteOpen wo = PORTER__V1__FILE_WRITE_OPEN__INIT;
	wo.root = "main";
	wo.path = (char *)path;
	wo.flags = flags;
	wo.want_fd = 1;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_WRITE_OPEN;
	req.file_write_open = &wo;
	return raw_call(c, &req, id);
}

static int raw_commit(raw *c, uint64_t stream, uint64_t id)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileWriteCommit wc = PORTER__V1__FILE_WRITE_COMMIT__INIT;
	wc.stream_id = stream;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_WRITE_COMMIT;
	req.file_write_commit = &wc;
	Porter__V1__Response *r = raw_call(c, &req, id);
	int st = r->status;
	porter__v1__response__free_unpacked(r, NULL);
	return st;
}

/* ------------------------------------------------------- daemon side */

START_TEST(test_read_passes_rdonly_regular_file)
{
	raw c;
	raw_open(&c, 0x1111);
	Porter__V1__Response *r = raw_read(&c, "big", 1, 2);
	ck_assert_int_eq(r->status, 0);
	ck_assert(r->file_read->fd_passed);
	ck_assert_uint_eq(r->file_read->data.len, 0); /* the file, not its bytes */
	ck_assert_uint_eq(r->file_read->stream_id, 0);
	ck_assert_uint_eq(r->file_read->file_size, 100017);
	porter__v1__response__free_unpacked(r, NULL);
	int fd = take_one(&c);

	struct stat sb;
	ck_assert_int_eq(fstat(fd, &sb), 0);
	ck_assert(S_ISREG(sb.st_mode));
	int fl = fcntl(fd, F_GETFL);
	ck_assert_int_eq(fl & O_ACCMODE, O_RDONLY);
	ck_assert_int_eq(fl & (O_NONBLOCK | O_APPEND), 0);
	ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	/* Never writable when a read was asked. */
	errno = 0;
	ck_assert_int_eq(write(fd, "x", 1), -1);
	ck_assert_int_eq(errno, EBADF);
	ck_assert_int_eq(ftruncate(fd, 0), -1);
	/* Nothing opens relative to it. */
	ck_assert_int_eq(openat(fd, "x", O_RDONLY), -1);
	ck_assert_int_eq(errno, ENOTDIR);
	char buf[18] = {0};
	ck_assert_int_eq(pread(fd, buf, 17, 0), 17);
	ck_assert_str_eq(buf, "hello, descriptor");
	close(fd);

	/* Not asked: bytes as always, no descriptor (a chunk, then a
	 * stream). A small file asked by descriptor: its bytes, which cost
	 * less than a descriptor. */
	r = raw_read(&c, "big", 0, 3);
	ck_assert_int_eq(r->status, 0);
	ck_assert(!r->file_read->fd_passed);
	ck_assert_uint_eq(r->file_read->data.len, 65536);
	porter__v1__response__free_unpacked(r, NULL);
	r = raw_read(&c, "f", 1, 4);
	ck_assert_int_eq(r->status, 0);
	ck_assert(!r->file_read->fd_passed);
	ck_assert_uint_eq(r->file_read->data.len, 17);
	porter__v1__response__free_unpacked(r, NULL);
	ck_assert_int_eq(c.n_fds, 0);
	raw_close(&c);
}
END_TEST

/* Directories, escapes and what is not a regular file never come as a
 * descriptor: the same errors as the byte path, or bytes. */
START_TEST(test_never_a_directory)
{
	static const struct {
		const char *path;
		int status;
	} cases[] = {
		{"", PORTER_E_FILE_ISDIR},
		{".", PORTER_E_FILE_ISDIR},
		{"sub", PORTER_E_FILE_ISDIR},
		{"sub/", PORTER_E_FILE_ISDIR},
		{"to_sub", PORTER_E_FILE_ISDIR},
		{"..", PORTER_E_FILE_ESCAPE},
		{"to_etc", PORTER_E_FILE_ESCAPE},
		{"to_etc/passwd", PORTER_E_FILE_ESCAPE},
		{"/etc/passwd", PORTER_E_FILE_ESCAPE},
		{"fifo", PORTER_E_INVAL},
		{"absent", PORTER_E_FILE_NOT_FOUND},
	};
	raw c;
	raw_open(&c, 0x2222);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		Porter__V1__Response *r = raw_read(&c, cases[i].path, 1, 10 + i);
		ck_assert_msg(r->status == cases[i].status, "read '%s': %d (%s)", cases[i].path,
			      r->status, r->message);
		ck_assert_msg(c.n_fds == 0, "read '%s' passed a descriptor", cases[i].path);
		porter__v1__response__free_unpacked(r, NULL);
		/* The same for a write open (a directory or an escape). */
		if (cases[i].status == PORTER_E_FILE_NOT_FOUND || cases[i].status == PORTER_E_INVAL)
			continue;
		r = raw_write_open(&c, cases[i].path, PORTER_FILE_CREATE, 100 + i);
		ck_assert_msg(r->status != 0, "write open '%s' succeeded", cases[i].path);
		ck_assert_msg(c.n_fds == 0, "write open '%s' passed a descriptor", cases[i].path);
		porter__v1__response__free_unpacked(r, NULL);
	}
	raw_close(&c);
}
END_TEST

START_TEST(test_write_descriptors)
{
	raw c;
	raw_open(&c, 0x3333);
	/* Plain: O_WRONLY, no stream, not readable. */
	Porter__V1__Response *r =
		raw_write_open(&c, "w", PORTER_FILE_CREATE | PORTER_FILE_TRUNCATE, 2);
	ck_assert_int_eq(r->status, 0);
	ck_assert(r->file_write->fd_passed);
	ck_assert_uint_eq(r->file_write->stream_id, 0);
	porter__v1__response__free_unpacked(r, NULL);
	int fd = take_one(&c);
	ck_assert_int_eq(fcntl(fd, F_GETFL) & (O_ACCMODE | O_APPEND | O_NONBLOCK), O_WRONLY);
	char b;
	ck_assert_int_eq(read(fd, &b, 1), -1);
	ck_assert_int_eq(errno, EBADF);
	ck_assert_int_eq(write(fd, "abc", 3), 3);
	close(fd);
	/* Append: O_APPEND. */
	r = raw_write_open(&c, "w", PORTER_FILE_APPEND, 3);
	ck_assert_int_eq(r->status, 0);
	porter__v1__response__free_unpacked(r, NULL);
	fd = take_one(&c);
	ck_assert_int_eq(fcntl(fd, F_GETFL) & (O_ACCMODE | O_APPEND), O_WRONLY | O_APPEND);
	ck_assert_int_eq(pwrite(fd, "de", 2, 0), 2); /* O_APPEND: at the end anyway */
	close(fd);
	porter_bytes *got = NULL;
	ck_assert_int_eq(porter_file_read("main", "w", 0, 0, 0, T, &got), 0);
	ck_assert_uint_eq(got->len, 5);
	ck_assert(memcmp(got->data, "abcde", 5) == 0);
	porter_bytes_free(got);
	raw_close(&c);
}
END_TEST

/*
 * An atomic write's O_TMPFILE: nothing in the directory until the commit,
 * committed only by the client that opened it (another instance, even of
 * the same uid, is told the stream does not exist), an unknown id refused,
 * and a temp file whose connection closes leaves nothing behind.
 */
START_TEST(test_atomic_tmpfile_commit)
{
	size_t before = th_dir_entries(root);
	raw a, other;
	raw_open(&a, 0xaaaa);
	raw_open(&other, 0xbbbb);
	Porter__V1__Response *r = raw_write_open(&a, "atomic", PORTER_FILE_ATOMIC, 2);
	ck_assert_int_eq(r->status, 0);
	ck_assert(r->file_write->fd_passed);
	uint64_t sid = r->file_write->stream_id;
	ck_assert_uint_ne(sid, 0);
	porter__v1__response__free_unpacked(r, NULL);
	int fd = take_one(&a);
	struct stat sb;
	ck_assert_int_eq(fstat(fd, &sb), 0);
	ck_assert(S_ISREG(sb.st_mode));
	ck_assert_uint_eq(sb.st_nlink, 0); /* unnamed: O_TMPFILE */
	ck_assert_int_eq(fcntl(fd, F_GETFL) & O_ACCMODE, O_WRONLY);
	ck_assert_int_eq(write(fd, "new content", 11), 11);
	close(fd);
	ck_assert_uint_eq(th_dir_entries(root), before);

	/* Another client, an unknown id: refused, nothing linked. */
	ck_assert_int_eq(raw_commit(&other, sid, 3), PORTER_E_NOT_FOUND);
	ck_assert_int_eq(raw_commit(&a, sid ^ 0x5a5a5a5a5a5a5a5aull, 4), PORTER_E_NOT_FOUND);
	ck_assert_int_eq(raw_commit(&a, 0, 5), PORTER_E_NOT_FOUND);
	ck_assert_uint_eq(th_dir_entries(root), before);

	/* Its own client: fsync, link, rename. */
	ck_assert_int_eq(raw_commit(&a, sid, 6), 0);
	ck_assert_uint_eq(th_dir_entries(root), before + 1);
	porter_bytes *got = NULL;
	ck_assert_int_eq(porter_file_read("main", "atomic", 0, 0, 0, T, &got), 0);
	ck_assert_uint_eq(got->len, 11);
	ck_assert(memcmp(got->data, "new content", 11) == 0);
	porter_bytes_free(got);
	/* Committed once: the stream is gone. */
	ck_assert_int_eq(raw_commit(&a, sid, 7), PORTER_E_NOT_FOUND);

	/* Uncommitted temp files of a connection that closes leave nothing,
	 * and porterd gives back their descriptors. */
	int fds0 = th_fd_count(d.pid);
	for (int i = 0; i < 10; i++) {
		r = raw_write_open(&other, "abandoned", PORTER_FILE_ATOMIC, 10 + i);
		ck_assert_int_eq(r->status, 0);
		porter__v1__response__free_unpacked(r, NULL);
		fd = take_one(&other);
		ck_assert_int_eq(write(fd, "junk", 4), 4);
		close(fd);
	}
	ck_assert_int_ge(th_fd_count(d.pid), fds0 + 10);
	raw_close(&other);
	int n = 0;
	for (int i = 0; i < 200 && (n = th_fd_count(d.pid)) > fds0 - 1; i++)
		usleep(10000);
	ck_assert_int_le(n, fds0 - 1); /* and the connection's own */
	ck_assert_uint_eq(th_dir_entries(root), before + 1);
	raw_close(&a);
}
END_TEST

/* porterd never takes a descriptor from a client: one sent along with a
 * request is refused by the kernel at the send (SO_PASSRIGHTS off, Linux
 * 6.16) or dropped when porterd reads (without recvmsg), so porterd's
 * descriptor count does not move. */
START_TEST(test_client_descriptors_not_taken)
{
	raw c;
	raw_open(&c, 0x4444);
	Porter__V1__Response *r = raw_read(&c, "f", 0, 2); /* Hello done */
	porter__v1__response__free_unpacked(r, NULL);
	int fds0 = th_fd_count(d.pid);
	char p[256];
	snprintf(p, sizeof(p), "%s/f", root);
	int mine[4];
	for (int i = 0; i < 4; i++)
		mine[i] = open(p, O_RDWR);
	for (int k = 0; k < 50; k++) {
		/* A commit frame with four descriptors on its first byte. */
		Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
		Porter__V1__FileWriteCommit wc = PORTER__V1__FILE_WRITE_COMMIT__INIT;
		wc.stream_id = 12345;
		req.id = 100 + k;
		req.body_case = PORTER__V1__REQUEST__BODY_FILE_WRITE_COMMIT;
		req.file_write_commit = &wc;
		uint8_t *buf = NULL;
		size_t cap = 0, len = 0;
		ck_assert_int_eq(frame_pack_into(&req.base, 1 << 20, &buf, &cap, &len), 0);
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(mine))];
		} u;
		memset(&u, 0, sizeof(u));
		struct iovec iov = {.iov_base = buf, .iov_len = len};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = u.b,
				    .msg_controllen = sizeof(u.b)};
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(mine));
		memcpy(CMSG_DATA(cm), mine, sizeof(mine));
		/* porterd's socket refuses descriptors outright where the
		 * kernel can (SO_PASSRIGHTS off, Linux 6.16): the frame then
		 * goes without them, and nothing may change either way. */
		ssize_t sent = sendmsg(c.fd, &mh, MSG_NOSIGNAL);
		if (sent < 0 && errno == EPERM)
			sent = send(c.fd, buf, len, MSG_NOSIGNAL);
		ck_assert_msg(sent == (ssize_t)len, "sendmsg: %zd (%s)", sent, strerror(errno));
		free(buf);
		r = raw_recv(&c);
		ck_assert_ptr_nonnull(r);
		ck_assert_int_eq(r->status, PORTER_E_NOT_FOUND);
		porter__v1__response__free_unpacked(r, NULL);
	}
	ck_assert_int_eq(th_fd_count(d.pid), fds0);
	for (int i = 0; i < 4; i++)
		close(mine[i]);
	raw_close(&c);
}
END_TEST

/* A batch member never carries a descriptor (nobody would take it), and
 * file-pass-fd=false passes none at all. */
START_TEST(test_batch_member_gets_bytes)
{
	porter_batch *b = porter_batch_new(PORTER_BATCH_ALL);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(porter_batch_add_file_read(b, "main", "f", 0, 0, T), 0);
	porter_batch_result *res = NULL;
	ck_assert_int_eq(porter_batch_run(b, 0, T, &res), 0);
	const void *p;
	size_t len;
	ck_assert_int_eq(porter_batch_result_file_read(res, 0, &p, &len, NULL), 0);
	ck_assert_uint_eq(len, 17);
	ck_assert(memcmp(p, "hello, descriptor", 17) == 0);
	porter_batch_result_free(res);
	porter_batch_free(b);

	/* The same raw, with want_fd inside the member. */
	raw c;
	raw_open(&c, 0x5555);
	Porter__V1__Request member = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileRead fr = PORTER__V1__FILE_READ__INIT;
	fr.root = "main";
	fr.path = "f";
	fr.want_fd = 1;
	member.id = 1;
	member.body_case = PORTER__V1__REQUEST__BODY_FILE_READ;
	member.file_read = &fr;
	ProtobufCBinaryData packed;
	packed.len = porter__v1__request__get_packed_size(&member);
	packed.data = malloc(packed.len);
	porter__v1__request__pack(&member, packed.data);
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__Batch bt = PORTER__V1__BATCH__INIT;
	bt.n_members = 1;
	bt.members = &packed;
	req.body_case = PORTER__V1__REQUEST__BODY_BATCH;
	req.batch = &bt;
	Porter__V1__Response *r = raw_call(&c, &req, 2);
	ck_assert_int_eq(r->status, 0);
	ck_assert_int_eq(c.n_fds, 0);
	porter__v1__response__free_unpacked(r, NULL);
	free(packed.data);
	raw_close(&c);
}
END_TEST

START_TEST(test_pass_fd_off)
{
	raw c;
	raw_open(&c, 0x6666);
	Porter__V1__Response *r = raw_read(&c, "f", 1, 2);
	ck_assert_int_eq(r->status, 0);
	ck_assert(!r->file_read->fd_passed);
	ck_assert_uint_eq(r->file_read->data.len, 17);
	porter__v1__response__free_unpacked(r, NULL);
	r = raw_write_open(&c, "w", PORTER_FILE_CREATE, 3);
	ck_assert_int_eq(r->status, 0);
	ck_assert(!r->file_write->fd_passed);
	ck_assert_uint_ne(r->file_write->stream_id, 0);
	porter__v1__response__free_unpacked(r, NULL);
	ck_assert_int_eq(c.n_fds, 0);
	raw_close(&c);
	/* The library falls back to bytes by itself. */
	ck_assert_int_eq(porter_file_write("main", "g", "bytes", 5, PORTER_FILE_CREATE, 0, 0, T),
			 0);
	porter_bytes *got = NULL;
	ck_assert_int_eq(porter_file_read("main", "g", 0, 0, 0, T, &got), 0);
	ck_assert_uint_eq(got->len, 5);
	porter_bytes_free(got);
}
END_TEST

static Suite *suite(void)
{
	const TTest *fd[] = {test_read_passes_rdonly_regular_file,
			     test_never_a_directory,
			     test_write_descriptors,
			     test_atomic_tmpfile_commit,
			     test_client_descriptors_not_taken,
			     test_batch_member_gets_bytes,
			     NULL};
	const TTest *bytes[] = {test_pass_fd_off, NULL};
	Suite *s = suite_create("files_fd");
	tcase_add_checked_fixture(th_tcase(s, "fd", 120, fd), setup, teardown);
	tcase_add_checked_fixture(th_tcase(s, "bytes", 0, bytes), setup_bytes, teardown);
	return s;
}

TH_MAIN(suite)
