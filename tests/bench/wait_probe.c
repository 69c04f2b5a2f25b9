/*
 * wait_probe - what one request/reply round trip over a Unix stream socket
 * costs the waiting side, by how it waits, against an echo server in
 * another process (poll, then read and write: its wake-ups are filtered by
 * event, as porterd's epoll loop is). The client's CPU per round trip
 * (getrusage), its voluntary and involuntary context switches, and the
 * server's CPU. Methods:
 *   poll    send, poll, recvmsg: how libporter waits (client/pconn.c)
 *   block   send, one blocking recvmsg bounded by SO_RCVTIMEO: woken also
 *           when the server reads the request (unix_write_space)
 *   epoll   send, epoll_wait on an epoll descriptor of the connection's own,
 *           recvmsg
 *   uring   one io_uring_enter: a send linked to a recvmsg
 *   uringt  the same with a deadline (IORING_ENTER_EXT_ARG)
 *   uringd  the ring as a libporter waiting on io_uring would use it for a
 *           small call (one was built and gave no gain, README says; the
 *           library waits by poll): uringt on a ring made with
 *           IORING_SETUP_DEFER_TASKRUN, whose completions wake the waiter
 *           once, by a plain recv that waits for the reply before trying
 *           to read (IORING_RECVSEND_POLL_FIRST)
 *
 *   wait_probe METHOD [N]      (N round trips, default 100000)
 *
 * Built with the benchmarks, run by neither make target: a probe for the
 * next cut of libporter's wait (see the README's benchmark section).
 * Needs nothing but the kernel; io_uring may be disabled
 * (/proc/sys/kernel/io_uring_disabled), then the uring methods say so.
 */
#include <errno.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG 16

static double cpu_of(const struct rusage *r)
{
	return (double)(r->ru_utime.tv_sec + r->ru_stime.tv_sec) +
	       (double)(r->ru_utime.tv_usec + r->ru_stime.tv_usec) / 1e6;
}

/* The echo server: waits as porterd does (filtered wake-ups), then
 * reads and writes back. Exits when the client closes. */
static void server(int fd)
{
	char b[MSG];
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		poll(&p, 1, -1);
		ssize_t n = read(fd, b, sizeof(b));
		if (n <= 0)
			_exit(0);
		if (write(fd, b, (size_t)n) != n)
			_exit(0);
	}
}

/* io_uring through its system calls (no liburing): one ring, two entries
 * per round trip. */
static int ring_fd;
static unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
static struct io_uring_sqe *sqes;
static struct io_uring_cqe *cqes;

static int ring_setup(int defer)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	if (defer)
		p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	ring_fd = (int)syscall(__NR_io_uring_setup, 4, &p);
	if (ring_fd < 0)
		return -1;
	size_t sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	size_t cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	if (cq_sz > sq_sz)
		sq_sz = cq_sz;
	char *sq = mmap(0, sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_fd,
			IORING_OFF_SQ_RING);
	char *cq = sq; /* one mapping for both rings (IORING_FEAT_SINGLE_MMAP) */
	sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_POPULATE, ring_fd, IORING_OFF_SQES);
	if (!(p.features & IORING_FEAT_SINGLE_MMAP) || sq == MAP_FAILED || sqes == MAP_FAILED)
		return -1;
	sq_tail = (unsigned *)(sq + p.sq_off.tail);
	sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	sq_array = (unsigned *)(sq + p.sq_off.array);
	cq_head = (unsigned *)(cq + p.cq_off.head);
	cq_tail = (unsigned *)(cq + p.cq_off.tail);
	cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
	cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	return 0;
}

/* A send linked to a recvmsg, waited for in one io_uring_enter (with a
 * 5 s deadline when `with_timeout`). 0 when both moved MSG bytes. */
static int ring_roundtrip(int fd, char *out, char *in, int with_timeout, int as_lib)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} u;
	struct iovec iov = {.iov_base = in, .iov_len = MSG};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	unsigned tail = *sq_tail;
	for (int i = 0; i < 2; i++) {
		unsigned idx = (tail + i) & *sq_mask;
		struct io_uring_sqe *s = &sqes[idx];
		memset(s, 0, sizeof(*s));
		s->fd = fd;
		if (i == 0) {
			s->opcode = IORING_OP_SEND;
			s->addr = (uintptr_t)out;
			s->len = MSG;
			s->msg_flags = MSG_NOSIGNAL;
			s->flags = IOSQE_IO_LINK;
		} else if (as_lib) {
			s->opcode = IORING_OP_RECV;
			s->addr = (uintptr_t)in;
			s->len = MSG;
			s->ioprio = IORING_RECVSEND_POLL_FIRST;
		} else {
			s->opcode = IORING_OP_RECVMSG;
			s->addr = (uintptr_t)&mh;
			s->len = 1;
			s->msg_flags = MSG_CMSG_CLOEXEC;
		}
		s->user_data = i;
		sq_array[idx] = idx;
	}
	__atomic_store_n(sq_tail, tail + 2, __ATOMIC_RELEASE);
	int n;
	if (with_timeout) {
		struct __kernel_timespec ts = {.tv_sec = 5};
		struct io_uring_getevents_arg arg = {.ts = (uintptr_t)&ts};
		n = (int)syscall(__NR_io_uring_enter, ring_fd, 2, 2,
				 IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg, sizeof(arg));
	} else {
		n = (int)syscall(__NR_io_uring_enter, ring_fd, 2, 2, IORING_ENTER_GETEVENTS, NULL,
				 0);
	}
	if (n < 0)
		return -1;
	unsigned head = *cq_head;
	unsigned t = __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE);
	if (t - head < 2)
		return -1; /* interrupted or past the deadline: the probe stops counting */
	int ok = 1;
	for (int i = 0; i < 2; i++, head++)
		ok = ok && cqes[head & *cq_mask].res == MSG;
	__atomic_store_n(cq_head, head, __ATOMIC_RELEASE);
	return ok ? 0 : -1;
}

static ssize_t recv_cm(int fd, char *b)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} u;
	struct iovec iov = {.iov_base = b, .iov_len = MSG};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	return recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
}

enum method { POLL, BLOCK, EPOLL, URING, URINGT, URINGD };
static const char *const names[] = {"poll", "block", "epoll", "uring", "uringt", "uringd"};

/* One round trip by method `m`; 0 when the echo came back whole. */
static int round_trip(enum method m, int fd, int ep, char *out, char *in)
{
	if (m >= URING)
		return ring_roundtrip(fd, out, in, m != URING, m == URINGD);
	if (send(fd, out, MSG, MSG_NOSIGNAL | (m == BLOCK ? 0 : MSG_DONTWAIT)) != MSG)
		return -1;
	if (m == POLL) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 5000) != 1)
			return -1;
	} else if (m == EPOLL) {
		struct epoll_event e;
		if (epoll_wait(ep, &e, 1, 5000) != 1)
			return -1;
	}
	return recv_cm(fd, in) == MSG ? 0 : -1;
}

int main(int argc, char **argv)
{
	enum method m = POLL;
	while (argc > 1 && strcmp(argv[1], names[m]) != 0 && m < URINGD)
		m++;
	if (argc < 2 || strcmp(argv[1], names[m]) != 0) {
		fprintf(stderr, "usage: wait_probe poll|block|epoll|uring|uringt|uringd [N]\n");
		return 2;
	}
	long n = argc > 2 ? atol(argv[2]) : 100000;
	if (n <= 0)
		n = 100000;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		perror("socketpair");
		return 1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		close(sv[0]);
		server(sv[1]);
	}
	close(sv[1]);
	int fd = sv[0], ep = -1;
	if (m == BLOCK) {
		struct timeval tv = {5, 0};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	} else if (m == EPOLL) {
		ep = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event e = {.events = EPOLLIN};
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
	} else if (m >= URING && ring_setup(m == URINGD) < 0) {
		perror("wait_probe: io_uring_setup");
		close(fd);
		waitpid(pid, NULL, 0);
		return 1;
	}
	char out[MSG] = "0123456789abcde", in[MSG];
	struct rusage r0, r1, rc;
	struct timespec t0, t1;
	getrusage(RUSAGE_SELF, &r0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	long fails = 0;
	for (long i = 0; i < n; i++)
		fails += round_trip(m, fd, ep, out, in) != 0;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	getrusage(RUSAGE_SELF, &r1);
	close(fd);
	int st;
	wait4(pid, &st, 0, &rc);
	double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("%-6s client %.2f us cpu per round trip (voluntary switches %.2f, "
	       "involuntary %.2f), server %.2f us, wall %.2f us, %ld failed\n",
	       names[m], (cpu_of(&r1) - cpu_of(&r0)) * 1e6 / (double)n,
	       (double)(r1.ru_nvcsw - r0.ru_nvcsw) / (double)n,
	       (double)(r1.ru_nivcsw - r0.ru_nivcsw) / (double)n, cpu_of(&rc) * 1e6 / (double)n,
	       wall * 1e6 / (double)n, fails);
	return fails ? 1 : 0;
}
