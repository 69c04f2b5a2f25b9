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
 * descriptors): libporter refuses and closes them all. Then byte-exact
 * round trips through the library, 0 B to 100 MiB.
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

#include "frame.h"
#include "harness.h"
#include "porter.h"
#include "porter_version.h"

#define T 10000
#define MAXFD 8

static th_daemon d;
static char root[64];

static void put_local(const char *rel, const char *content)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	FILE *f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	fputs(content, f);
	fclose(f);
}

static void start_with(const char *pass, const char *opt, const char *val)
{
	strcpy(root, "/tmp/porter-fd-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root));
	char roots[128];
	snprintf(roots, sizeof(roots), "main=%s", root);
	const char *args[] = {
		"--file-roots", roots, "--file-chunk-size", "65536", pass, opt, val, NULL};
	ck_assert_msg(th_daemon_start(&d, args) == 0, "porterd did not start");
	put_local("f", "hello, descriptor");
	/* Past 64 KiB: a read of it passes the descriptor (smaller ones come
	 * as bytes, which cost less; see fspass_small_read). */
	char big[256];
	snprintf(big, sizeof(big), "%s/big", root);
	FILE *bf = fopen(big, "w");
	ck_assert_ptr_nonnull(bf);
	fputs("hello, descriptor", bf);
	for (int i = 0; i < 100000; i++)
		fputc('0' + i % 10, bf);
	fclose(bf);
	char p[256];
	snprintf(p, sizeof(p), "%s/sub", root);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/to_sub", root);
	ck_assert_int_eq(symlink("sub", p), 0);
	snprintf(p, sizeof(p), "%s/to_etc", root);
	ck_assert_int_eq(symlink("/etc", p), 0);
	snprintf(p, sizeof(p), "%s/fifo", root);
	ck_assert_int_eq(mkfifo(p, 0600), 0);
}

static void start(const char *pass)
{
	start_with(pass, NULL, NULL);
}

/* file-stream-idle of one second: a stream unused that long is reclaimed. */
static void setup_idle(void)
{
	start_with("--file-pass-fd=true", "--file-stream-idle", "1000");
}

static void setup(void)
{
	start("--file-pass-fd=true");
}

static void setup_bytes(void)
{
	start("--file-pass-fd=false");
}

static void teardown(void)
{
	int st = th_daemon_finish(&d);
	th_rm_rf(root);
	ck_assert_int_eq(st, 0);
}

/* ------------------------------------------------------ raw protocol */

typedef struct raw {
	int fd;
	frame_reader rd;
	int fds[MAXFD]; /* descriptors received and not yet claimed */
	int n_fds;
} raw;

/* A raw connection that said Hello with client instance `instance`. */
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
}

static void raw_close(raw *c)
{
	for (int i = 0; i < c->n_fds; i++)
		close(c->fds[i]);
	close(c->fd);
	frame_reader_free(&c->rd);
}

/* The next response, collecting every descriptor that arrives with it. */
static Porter__V1__Response *raw_recv(raw *c)
{
	return th_raw_recv_fds(c->fd, &c->rd, 5000, c->fds, &c->n_fds, MAXFD);
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
 * request is dropped by the kernel (the socket is read without recvmsg),
 * so porterd's descriptor count does not move. */
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
		ck_assert_int_eq(sendmsg(c.fd, &mh, MSG_NOSIGNAL), (ssize_t)len);
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
	porter_file_info fi;
	ck_assert_int_eq(porter_file_stat("main", "slow", 0, T, &fi), 0);
	ck_assert_uint_eq(fi.size, total);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("files_fd");
	TCase *tc = tcase_create("fd");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_read_passes_rdonly_regular_file);
	tcase_add_test(tc, test_never_a_directory);
	tcase_add_test(tc, test_write_descriptors);
	tcase_add_test(tc, test_atomic_tmpfile_commit);
	tcase_add_test(tc, test_client_descriptors_not_taken);
	tcase_add_test(tc, test_batch_member_gets_bytes);
	tcase_add_test(tc, test_client_refuses_what_it_did_not_ask);
	tcase_add_test(tc, test_round_trips);
	tcase_add_test(tc, test_read_into);
	suite_add_tcase(s, tc);
	tc = tcase_create("bytes");
	tcase_add_checked_fixture(tc, setup_bytes, teardown);
	tcase_add_test(tc, test_pass_fd_off);
	tcase_add_test(tc, test_read_into);
	suite_add_tcase(s, tc);
	tc = tcase_create("stream_idle");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup_idle, teardown);
	tcase_add_test(tc, test_slow_atomic_write_kept_alive);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
