/* rawc - raw protocol for test children; see rawc.h. */
#include "rawc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"

int th_rc_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int th_rc_send_fd(int fd, int passed)
{
	char byte = 0;
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	memset(&u, 0, sizeof(u));
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &passed, sizeof(int));
	return sendmsg(fd, &mh, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

int th_rc_lingering_socket(int linger_s, int keep[2])
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	int small = 4096;
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	keep[0] = l;
	keep[1] = -1;
	if (l < 0 || c < 0 || setsockopt(l, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)) < 0 ||
	    bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&sa, &sl) < 0 ||
	    setsockopt(c, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)) < 0 ||
	    connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto fail;
	keep[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (keep[1] < 0 || fcntl(c, F_SETFL, O_NONBLOCK) < 0)
		goto fail;
	static char junk[4096];
	while (write(c, junk, sizeof(junk)) > 0)
		;
	struct linger lg = {.l_onoff = 1, .l_linger = linger_s};
	if (errno != EAGAIN || setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0)
		goto fail;
	return c;
fail:
	for (int i = 0; i < 2; i++)
		if (keep[i] >= 0)
			close(keep[i]);
	keep[0] = keep[1] = -1;
	if (c >= 0)
		close(c);
	return -1;
}

int th_rc_send(int fd, Porter__V1__Request *req)
{
	uint8_t *buf;
	size_t len;
	if (frame_pack(&req->base, 64u << 20, &buf, &len) < 0)
		return -1;
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
		if (n <= 0) {
			free(buf);
			return -1;
		}
		off += (size_t)n;
	}
	free(buf);
	return 0;
}

uint64_t th_rc_instance(pid_t pid)
{
	return 0x51ull << 32 | (uint64_t)pid;
}

int th_rc_hello_as(int fd, uint64_t instance)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__Hello h = PORTER__V1__HELLO__INIT;
	h.protocol = PORTER_PROTOCOL_VERSION;
	h.client_instance = instance;
	h.client_name = "flood";
	req.id = 1;
	req.body_case = PORTER__V1__REQUEST__BODY_HELLO;
	req.hello = &h;
	return th_rc_send(fd, &req);
}

int th_rc_hello(int fd)
{
	return th_rc_hello_as(fd, th_rc_instance(getpid()));
}

int th_rc_ping(int fd, uint64_t id, size_t payload, uint32_t delay_ms)
{
	uint8_t *zeros = payload ? calloc(1, payload) : NULL;
	if (payload && !zeros)
		return -1;
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__Ping p = PORTER__V1__PING__INIT;
	p.payload.data = zeros;
	p.payload.len = payload;
	p.delay_ms = delay_ms;
	req.id = id;
	req.body_case = PORTER__V1__REQUEST__BODY_PING;
	req.ping = &p;
	int rc = th_rc_send(fd, &req);
	free(zeros);
	return rc;
}

Porter__V1__Response *th_rc_recv(int fd, frame_reader *r, int timeout_ms)
{
	long long until = th_now_ms() + timeout_ms;
	for (;;) {
		const uint8_t *p;
		size_t len;
		int rc = frame_reader_next(r, &p, &len);
		if (rc < 0)
			return NULL;
		if (rc > 0)
			return porter__v1__response__unpack(NULL, len, p);
		long long left = until - th_now_ms();
		struct pollfd pfd = {fd, POLLIN, 0};
		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return NULL;
		uint8_t *space;
		size_t n;
		if (frame_reader_space(r, &space, &n) < 0)
			return NULL;
		ssize_t got = recv(fd, space, n, 0);
		if (got <= 0)
			return NULL;
		frame_reader_commit(r, (size_t)got);
	}
}

static int open_as(const char *path, frame_reader *rd, int timeout_ms, uint64_t instance,
		   Porter__V1__Response **hello)
{
	Porter__V1__Response *resp = NULL;
	int fd = th_rc_connect(path);
	if (fd >= 0 && th_rc_hello_as(fd, instance) == 0)
		resp = th_rc_recv(fd, rd, timeout_ms);
	int welcomed = resp && resp->status == 0;
	if (hello)
		*hello = resp;
	else if (resp)
		porter__v1__response__free_unpacked(resp, NULL);
	if (!welcomed && fd >= 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

int th_rc_open(const char *path, frame_reader *rd, int timeout_ms, Porter__V1__Response **hello)
{
	return open_as(path, rd, timeout_ms, th_rc_instance(getpid()), hello);
}

int th_rc_open_as(const char *path, frame_reader *rd, int timeout_ms, uint64_t instance)
{
	return open_as(path, rd, timeout_ms, instance, NULL);
}

Porter__V1__Response *th_rc_call(int fd, frame_reader *rd, Porter__V1__Request *req, int timeout_ms)
{
	return th_rc_send(fd, req) == 0 ? th_rc_recv(fd, rd, timeout_ms) : NULL;
}

int th_rc_tries(int fd, frame_reader *rd, Porter__V1__Request *reqs, size_t n, int *ok)
{
	int answered = 0;
	for (size_t k = 0; k < n; k++) {
		reqs[k].id = 10 + k;
		reqs[k].timeout_ms = 5000;
		Porter__V1__Response *r = th_rc_call(fd, rd, &reqs[k], 10000);
		if (!r)
			return -1;
		answered++;
		*ok += r->status == 0;
		porter__v1__response__free_unpacked(r, NULL);
	}
	return answered;
}

int th_rc_tries_as(const char *path, uint64_t instance, int conns, Porter__V1__Request *reqs,
		   size_t n, int *ok)
{
	int answered = 0;
	for (int i = 0; i < conns; i++) {
		frame_reader rd;
		frame_reader_init(&rd, 1 << 22);
		int fd = th_rc_open_as(path, &rd, 5000, instance);
		int got = fd < 0 ? -1 : th_rc_tries(fd, &rd, reqs, n, ok);
		if (fd >= 0)
			close(fd);
		frame_reader_free(&rd);
		if (got < 0)
			return -1;
		answered += got;
	}
	return answered;
}

int th_wait_flag(volatile int *flag, int ms)
{
	long long until = th_now_ms() + ms;
	while (!*flag && th_now_ms() < until)
		usleep(2000);
	return *flag;
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	do {
		p[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	return n;
}

uint8_t *th_rc_params_frame(const char *conninfo, uint64_t id, size_t n, size_t *len)
{
	static const char sql[] = "SELECT 1";
	size_t cil = strlen(conninfo);
	size_t body = 1 + 2 + cil + 1 + 1 + sizeof(sql) - 1 + 2 * n;
	uint8_t *f = malloc(4 + 32 + body);
	if (!f)
		return NULL;
	uint8_t *p = f + 4;
	*p++ = 0x08;
	p += put_varint(p, id);
	*p++ = 0x10;
	p += put_varint(p, 10000);
	*p++ = 0xaa; /* field 21 (db_query), length-delimited */
	*p++ = 0x01;
	uint8_t *b = p + 8; /* leaves room for the length */
	uint8_t *q = b;
	*q++ = 0x12;
	q += put_varint(q, cil);
	memcpy(q, conninfo, cil);
	q += cil;
	*q++ = 0x1a;
	q += put_varint(q, sizeof(sql) - 1);
	memcpy(q, sql, sizeof(sql) - 1);
	q += sizeof(sql) - 1;
	for (size_t i = 0; i < n; i++) {
		*q++ = 0x22;
		*q++ = 0x00;
	}
	size_t bl = (size_t)(q - b);
	size_t vl = put_varint(p, bl);
	memmove(p + vl, b, bl);
	p += vl + bl;
	size_t payload = (size_t)(p - (f + 4));
	f[0] = (uint8_t)(payload >> 24);
	f[1] = (uint8_t)(payload >> 16);
	f[2] = (uint8_t)(payload >> 8);
	f[3] = (uint8_t)payload;
	*len = payload + 4;
	return f;
}
