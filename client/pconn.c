/* pconn - the calling thread's connection and one blocking call; see pconn.h. */
#include "pconn.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "dbwire.h"
#include "frame.h"
#include "porter.h"
#include "psockdir.h"
#include "putf8.h"
#include "randid.h"

/* Frame limit for replies before Hello tells us the daemon's. */
#define HELLO_REPLY_LIMIT (1024 * 1024)
/* Read and write buffers above this are released between calls. */
#define KEEP_BUFFER (256 * 1024)
/* Descriptors received and not yet claimed by their frames. An honest
 * porterd passes one per frame and the kernel ends a read at each frame
 * that carries some, so more than one or two waiting means a daemon that
 * sends what nobody asked for: the connection is then dropped. */
#define FDQ_MAX 8
/* Room for descriptors in one recvmsg: more than an honest daemon sends
 * (one), so that a flood shows as MSG_CTRUNC or an overfull queue. */
#define RECV_FDS 4

struct pconn_fdlink {
	_Atomic uint32_t closed; /* closes not yet reported */
	_Atomic uint32_t refs;   /* the connection's while open, one per descriptor */
};

typedef struct tstate {
	int fd; /* -1 when not connected */
	frame_reader rd;
	uint8_t *wbuf; /* owned: the request being sent, reused */
	size_t wcap;
	/* Replies unpacked for pconn_call_scratch; reset by the next call. */
	arena scratch;
	uint32_t max_frame;  /* the daemon's request limit, from Hello */
	uint64_t generation; /* reset generation the connection was opened in */
	/* Files by descriptor: descriptors read from the socket, oldest
	 * first, each waiting for the frame that carries it (fd_passed). */
	int fdq[FDQ_MAX];
	int n_fdq;
	int fd_broken;           /* descriptors were lost (MSG_CTRUNC, overflow, a frame
				  * naming one that never came): drop the connection
				  * after this call */
	int resp_fd;             /* the descriptor of the last response returned, or -1 */
	pconn_fdlink *resp_link; /* resp_fd's reference to its connection's link */
	/* This connection's count of closed descriptors, made with the first
	 * one received (NULL before, or when out of memory: then closes go
	 * unreported and porterd stops passing past its limit, which is
	 * still correct). */
	pconn_fdlink *link;
	int last_error;
	char last_msg[512];
} tstate;

static pthread_key_t key;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static __thread tstate *ts;
static _Atomic uint64_t instance;
/* Bumped by porter_reset(); a connection opened in an older generation is
 * dropped by its own thread before its next call. */
static _Atomic uint64_t generation;
static _Atomic uint64_t next_id = 1;

/* A new client instance id, or 0 when the kernel gives no randomness:
 * pconn_instance then draws again, and the call that needs it fails if
 * that draw fails too (no id made from the clock and the pid, which
 * another local user could guess and use to cancel this process's
 * requests). */
static uint64_t draw_instance(void)
{
	uint64_t v = 0;
	return randid_new(64, &v) == 0 ? v : 0;
}

static pconn_fdlink *link_ref(pconn_fdlink *l)
{
	if (l)
		atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
	return l;
}

static void link_unref(pconn_fdlink *l)
{
	if (l && atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) == 1)
		free(l);
}

int pconn_fd_close(int fd, pconn_fdlink *link)
{
	int rc = fd >= 0 ? close(fd) : 0;
	if (link && fd >= 0)
		atomic_fetch_add_explicit(&link->closed, 1, memory_order_relaxed);
	link_unref(link);
	return rc;
}

int pconn_fd_close_declared(int fd, pconn_fdlink *link)
{
	int rc = fd >= 0 ? close(fd) : 0;
	link_unref(link);
	return rc;
}

/* Closes every received descriptor nobody has taken, counting the closes
 * for the connection they came on. */
static void close_fdq(tstate *t)
{
	for (int i = 0; i < t->n_fdq; i++)
		pconn_fd_close(t->fdq[i], link_ref(t->link));
	t->n_fdq = 0;
}

/* Closes the last response's descriptor if its caller did not take it. */
static void drop_resp_fd(tstate *t)
{
	pconn_fd_close(t->resp_fd, t->resp_link);
	t->resp_fd = -1;
	t->resp_link = NULL;
}

static void drop_conn(tstate *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	frame_reader_free(&t->rd);
	close_fdq(t);
	/* porterd gives back all the connection held when it closes: closes
	 * of descriptors it passed are no longer anyone's to report. */
	link_unref(t->link);
	t->link = NULL;
	t->fd_broken = 0;
}

int pconn_take_fd(pconn_fdlink **link)
{
	*link = NULL;
	if (!ts)
		return -1;
	int fd = ts->resp_fd;
	*link = ts->resp_link;
	ts->resp_fd = -1;
	ts->resp_link = NULL;
	return fd;
}

/* The number of closes to report with `req` on the thread's connection,
 * taken from its count (a FileRead or FileWriteOpen; anything else
 * reports none). Stored in the request, where an earlier attempt on a
 * connection that broke may have left another. */
static uint32_t report_closes(tstate *t, Porter__V1__Request *req)
{
	uint32_t *field = NULL;
	if (req->body_case == PORTER__V1__REQUEST__BODY_FILE_READ && req->file_read)
		field = &req->file_read->fds_closed;
	else if (req->body_case == PORTER__V1__REQUEST__BODY_FILE_WRITE_OPEN &&
		 req->file_write_open)
		field = &req->file_write_open->fds_closed;
	if (!field)
		return 0;
	*field = t->link ? atomic_exchange_explicit(&t->link->closed, 0, memory_order_relaxed) : 0;
	return *field;
}

/* Frees the buffers a thread keeps between calls. */
static void drop_buffers(tstate *t)
{
	free(t->wbuf);
	t->wbuf = NULL;
	t->wcap = 0;
	arena_free(&t->scratch);
}

static void thread_exit(void *arg)
{
	tstate *t = arg;
	drop_conn(t);
	drop_resp_fd(t);
	drop_buffers(t);
	free(t);
	ts = NULL;
}

/* A forked child must not share its parent's connections, and is a
 * different client. */
static void after_fork_child(void)
{
	atomic_store(&instance, draw_instance());
	if (ts) {
		drop_conn(ts);
		drop_resp_fd(ts);
	}
}

static void init_once(void)
{
	pthread_key_create(&key, thread_exit);
	atomic_store(&instance, draw_instance());
	pthread_atfork(NULL, NULL, after_fork_child);
}

static tstate *state(void)
{
	if (ts)
		return ts;
	pthread_once(&once, init_once);
	tstate *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->fd = -1;
	t->resp_fd = -1;
	arena_init(&t->scratch, 0);
	if (pthread_setspecific(key, t) != 0) {
		free(t);
		return NULL;
	}
	ts = t;
	return t;
}

uint64_t pconn_next_id(void)
{
	return atomic_fetch_add(&next_id, 1);
}

/* The caller's ids and the library's own come from one counter, so they
 * never collide; nothing is reserved in thread state (an isolate may make
 * its next call on another thread). */
uint64_t porter_call_id_new(void)
{
	return pconn_next_id();
}

int pconn_instance(uint64_t *out)
{
	pthread_once(&once, init_once);
	uint64_t v = atomic_load(&instance);
	if (v == 0) {
		uint64_t fresh;
		if (randid_new(64, &fresh) < 0)
			return pconn_set_error(PORTER_E_INTERNAL,
					       "no random bytes from the kernel for the "
					       "client instance id");
		/* Another thread may have drawn one meanwhile: the first
		 * wins, so all of this process's connections agree. */
		if (atomic_compare_exchange_strong(&instance, &v, fresh))
			v = fresh;
	}
	*out = v;
	return 0;
}

static int set_error_v(int code, const char *fmt, va_list ap)
{
	tstate *t = state();
	if (t) {
		t->last_error = code;
		vsnprintf(t->last_msg, sizeof(t->last_msg), fmt, ap);
		/* The cut at the buffer's size, or porterd's at its own, may
		 * fall inside a character: callers decode this as UTF-8. */
		putf8_tidy(t->last_msg, sizeof(t->last_msg));
	}
	return code;
}

int pconn_set_error(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	set_error_v(code, fmt, ap);
	va_end(ap);
	return code;
}

void pconn_clear_error(void)
{
	if (ts) {
		ts->last_error = 0;
		ts->last_msg[0] = '\0';
	}
}

int porter_last_error(void)
{
	return ts ? ts->last_error : 0;
}

const char *porter_last_error_message(void)
{
	if (!ts)
		return "";
	if (ts->last_msg[0] == '\0' && ts->last_error)
		return porter_strerror(ts->last_error);
	return ts->last_msg;
}

void porter_thread_disconnect(void)
{
	if (ts) {
		drop_conn(ts);
		drop_resp_fd(ts);
		drop_buffers(ts);
	}
}

/*
 * A new instance id first, then the generation: a thread that sees the new
 * generation in open_conn (which reads it before the instance) is then sure
 * to send the new instance id. Other threads' connections are never touched
 * from here (their fds are theirs alone); each notices the new generation
 * at its next call.
 */
void porter_reset(void)
{
	pthread_once(&once, init_once);
	atomic_store(&instance, draw_instance());
	atomic_fetch_add(&generation, 1);
	if (ts)
		drop_conn(ts);
}

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int64_t pconn_now_ms(void)
{
	return now_ms();
}

int64_t pconn_stream_deadline(uint32_t stream_timeout_ms)
{
	return stream_timeout_ms ? now_ms() + stream_timeout_ms : 0;
}

int pconn_bounded(int64_t deadline, int timeout_ms, int *wait)
{
	if (timeout_ms < 0)
		return pconn_set_error(PORTER_E_INVAL, "negative timeout");
	*wait = timeout_ms ? timeout_ms : PCONN_DEFAULT_TIMEOUT_MS;
	if (!deadline)
		return 0;
	int64_t left = deadline - now_ms();
	if (left <= 0)
		return pconn_set_error(PORTER_E_TIMEOUT, "the stream's deadline has passed");
	if (left < *wait)
		*wait = (int)left;
	return 0;
}

/* Waits for `events` on `fd` until `deadline`. 0, TIMEOUT or CONN_LOST. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return PORTER_E_TIMEOUT;
		struct pollfd p = {.fd = fd, .events = events};
		int n = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (n > 0)
			return 0; /* errors and hang-ups surface in send/recv */
		if (n == 0)
			return PORTER_E_TIMEOUT;
		if (errno != EINTR)
			return PORTER_E_CONN_LOST;
	}
}

/*
 * Writes all of buf. `*sent` counts the bytes the kernel took, so the
 * caller knows whether the daemon may have seen the request.
 */
static int write_all(int fd, const uint8_t *buf, size_t len, int64_t deadline, size_t *sent)
{
	*sent = 0;
	while (*sent < len) {
		ssize_t n = send(fd, buf + *sent, len - *sent, MSG_NOSIGNAL);
		if (n > 0) {
			*sent += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int rc = wait_fd(fd, POLLOUT, deadline);
			if (rc < 0)
				return rc;
			continue;
		}
		return PORTER_E_CONN_LOST;
	}
	return 0;
}

/*
 * recv that also takes descriptors porterd passes (SCM_RIGHTS), close-on-
 * exec from the first instant (MSG_CMSG_CLOEXEC), into the thread's queue.
 * Whatever does not fit the queue, and anything but SCM_RIGHTS, is closed
 * at once; a truncated control message (MSG_CTRUNC: the process is out of
 * descriptors, or the daemon sent more than we make room for) lost
 * descriptors the frames will name, so the connection is marked broken.
 */
static ssize_t recv_fds(tstate *t, uint8_t *buf, size_t cap)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(RECV_FDS * sizeof(int))];
	} u;
	struct iovec iov = {.iov_base = buf, .iov_len = cap};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	ssize_t n = recvmsg(t->fd, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return n;
	if (mh.msg_flags & MSG_CTRUNC)
		t->fd_broken = 1;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue; /* nothing else carries descriptors */
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (k && !t->link && (t->link = calloc(1, sizeof(*t->link))))
			atomic_init(&t->link->refs, 1);
		for (size_t i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (t->n_fdq < FDQ_MAX) {
				t->fdq[t->n_fdq++] = fd;
			} else {
				pconn_fd_close(fd, link_ref(t->link));
				t->fd_broken = 1;
			}
		}
	}
	return n;
}

/*
 * The descriptor frame `resp` carries, oldest first from the queue: the
 * file of a FileRead or FileWriteOpen reply that says fd_passed (no other
 * frame carries one). Stores it in `*fd`, or -1 when the frame carries
 * none, or when it never came (the connection is then marked broken).
 */
static void claim_fd(tstate *t, const Porter__V1__Response *resp, int *fd)
{
	*fd = -1;
	int carries = (resp->body_case == PORTER__V1__RESPONSE__BODY_FILE_READ && resp->file_read &&
		       resp->file_read->fd_passed) ||
		      (resp->body_case == PORTER__V1__RESPONSE__BODY_FILE_WRITE &&
		       resp->file_write && resp->file_write->fd_passed);
	if (!carries)
		return;
	if (t->n_fdq == 0) {
		t->fd_broken = 1;
		return;
	}
	*fd = t->fdq[0];
	t->n_fdq--;
	memmove(t->fdq, t->fdq + 1, (size_t)t->n_fdq * sizeof(int));
}

/*
 * Reads the next whole frame into the thread's reader: poll, then recvmsg.
 * Not one blocking recvmsg bounded by SO_RCVTIMEO, although that is one
 * system call fewer per call: a thread asleep in recvmsg on a Unix stream
 * socket is woken by every wake-up of the socket's one wait queue, and
 * porterd's read of the request makes one (freeing the request's buffer
 * makes the socket writable: unix_write_space), long before the reply.
 * poll (and epoll) filter wake-ups by the events waited for; recvmsg does
 * not. Measured with that variant (session 6, perf stat and the stacks of
 * sched_wakeup, ping): at 8 threads most wake-ups of the clients came from
 * unix_write_space, and being sync wake-ups they land on the CPU of the
 * porterd thread that made them and preempt it, only for the client to go
 * back to sleep; context switches per call rose from 1.0-1.1 to 1.3-1.5 in
 * the client, and at 1 thread from 1.0 to 1.7 in the client and porterd
 * alike, which outweighed the system call saved. test_client_wait's
 * a_waiting_thread_wakes_once_per_call fails on that variant (a call
 * slept twice).
 */
static int read_frame(tstate *t, int64_t deadline, const uint8_t **p, size_t *len)
{
	for (;;) {
		int rc = frame_reader_next(&t->rd, p, len);
		if (rc == 1)
			return 0;
		if (rc < 0)
			return PORTER_E_TOO_LARGE;
		rc = wait_fd(t->fd, POLLIN, deadline);
		if (rc < 0)
			return rc;
		uint8_t *space;
		size_t cap;
		rc = frame_reader_space(&t->rd, &space, &cap);
		if (rc < 0)
			return rc;
		ssize_t n = recv_fds(t, space, cap);
		if (n > 0)
			frame_reader_commit(&t->rd, (size_t)n);
		else if (n == 0)
			return PORTER_E_CONN_LOST;
		else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
			return PORTER_E_CONN_LOST;
	}
}

/*
 * Sends one request and reads responses until the one with its id. A
 * response with id 0 and an error status is the daemon closing the
 * connection on us (denied, protocol error) and ends the wait. With
 * `into` (NULL: malloc, for free_unpacked), responses are unpacked into
 * that arena, which each one read empties first, so a skipped late reply
 * costs nothing to drop: the thread's scratch arena is reset, any other
 * is sized for the frame (keep_block).
 */
/* The block of an arena that keeps one reply of `len` bytes past its call:
 * room for the structs and copies it unpacks to in one or two blocks
 * (a piece over a quarter of a block, a large body, gets its own), without
 * the 8 KiB default block for each small reply kept. */
static size_t keep_block(size_t len)
{
	return len < 64 * 1024 ? 2 * len + 1024 : 0;
}

static int exchange(tstate *t, Porter__V1__Request *req, int64_t deadline, size_t *sent,
		    arena *into, Porter__V1__Response **out)
{
	size_t len;
	size_t limit = t->max_frame ? t->max_frame : HELLO_REPLY_LIMIT;
	uint32_t closes = report_closes(t, req);
	/* Queries have an encoder of their own; the rest is protobuf-c's. */
	int rc = dbwire_pack_request(req, limit, &t->wbuf, &t->wcap, &len);
	if (rc == 0)
		rc = frame_pack_into(&req->base, limit, &t->wbuf, &t->wcap, &len);
	if (rc < 0) {
		/* Not sent: the closes wait for the next report. */
		if (closes)
			atomic_fetch_add_explicit(&t->link->closed, closes, memory_order_relaxed);
		*sent = 0;
		return rc;
	}
	rc = write_all(t->fd, t->wbuf, len, deadline, sent);
	if (t->wcap > KEEP_BUFFER) {
		free(t->wbuf);
		t->wbuf = NULL;
		t->wcap = 0;
	}
	/* Even when the write failed, a refusal may be waiting to be read. */
	if (rc < 0 && !(rc == PORTER_E_CONN_LOST && *sent == 0))
		return rc;
	int write_rc = rc;

	for (;;) {
		const uint8_t *p;
		size_t plen;
		rc = read_frame(t, deadline, &p, &plen);
		if (rc < 0)
			return write_rc < 0 ? write_rc : rc;
		/* Into the arena, query replies by their own decoder (which
		 * leaves anything else to protobuf-c). */
		Porter__V1__Response *resp = NULL;
		if (into) {
			if (into == &t->scratch) {
				arena_reset(into);
			} else {
				arena_free(into);
				arena_init(into, keep_block(plen));
				/* A large body is used where it was read. */
				frame_reader_lend(&t->rd, into, p, plen, KEEP_BUFFER);
			}
			resp = dbwire_unpack_response(&into->base, plen, p);
		}
		if (!resp)
			resp = porter__v1__response__unpack(into ? &into->base : NULL, plen, p);
		if (!resp)
			return PORTER_E_PROTOCOL;
		int fd;
		claim_fd(t, resp, &fd);
		if (resp->id == req->id || (resp->id == 0 && resp->status != 0)) {
			drop_resp_fd(t);
			t->resp_fd = fd;
			t->resp_link = fd >= 0 ? link_ref(t->link) : NULL;
			/* Descriptors left with no frame buffered to claim
			 * them were never asked for. */
			if (t->n_fdq && frame_reader_pending(&t->rd) == 0)
				close_fdq(t);
			*out = resp;
			return 0;
		}
		/* A late reply to an earlier call that timed out: skip it
		 * (with the file it may have passed). */
		pconn_fd_close(fd, link_ref(t->link));
		if (!into)
			porter__v1__response__free_unpacked(resp, NULL);
	}
}

/*
 * Whether the daemon reached at `path` may be talked to. The default path
 * is per user ($XDG_RUNTIME_DIR/porter, else /tmp/porter-$UID), and
 * /tmp/porter-$UID can be made by any user before the caller's porterd
 * starts (porterd then refuses the directory, but a client would talk to
 * whoever listens there and hand it conninfo passwords, request headers
 * and file contents). So the daemon there must run as the caller or as
 * root (SO_PEERCRED: the uid that made the listening socket). A path given
 * in PORTER_SOCKET may name another user's daemon (the system service),
 * but only at a path no other uid could have prepared (psockdir.h): a
 * name in /tmp (or any directory others can write), or in a directory
 * someone made there, is anyone's to bind once the daemon that used it is
 * gone, and PORTER_SOCKET=/tmp/porter.sock outlives it in scripts and unit
 * files. 0, or a negative code with the error set.
 */
static int check_daemon(int fd, const char *path)
{
	const char *env = getenv("PORTER_SOCKET");
	int named = env && env[0];
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return pconn_set_error(PORTER_E_UNREACHABLE, "cannot tell who listens at %s: %s",
				       path, strerror(errno));
	if (cred.uid == getuid() || cred.uid == geteuid() || cred.uid == 0)
		return 0;
	if (!named)
		return pconn_set_error(
			PORTER_E_DENIED,
			"the daemon at %s runs as uid %u, not as this user: another user may "
			"have taken the default path (set PORTER_SOCKET to use a daemon of "
			"another user on purpose)",
			path, (unsigned)cred.uid);
	char why[384];
	why[0] = '\0';
	if (psockdir_check(path, cred.uid, why, sizeof(why)) < 0)
		return pconn_set_error(PORTER_E_DENIED, "the daemon at %s runs as uid %u, and %s",
				       path, (unsigned)cred.uid, why);
	return 0;
}

/* Why connect(2) to `path` failed with `err`, in words a user can act
 * on: a connect to a file or a directory fails with ECONNREFUSED, as one
 * to a socket nobody listens on does, and "Connection refused" sent users
 * of `-S /etc/passwd` looking for a stopped daemon. */
static const char *connect_why(const char *path, int err, char *buf, size_t cap)
{
	struct stat sb;
	/* Nothing at the path is what a first run meets: say what to do. */
	if (err == ENOENT)
		return "No such file or directory (porterd is not running, or listens on "
		       "another socket: start it, or name its socket in PORTER_SOCKET)";
	if (err != ECONNREFUSED || stat(path, &sb) < 0)
		return strerror(err);
	if (!S_ISSOCK(sb.st_mode)) {
		snprintf(buf, cap, "not a socket (%s)",
			 S_ISDIR(sb.st_mode)    ? "a directory"
			 : S_ISREG(sb.st_mode)  ? "a regular file"
			 : S_ISFIFO(sb.st_mode) ? "a FIFO"
						: "a device");
		return buf;
	}
	return "Connection refused (no daemon listens on that socket: it stopped, or "
	       "has not started yet)";
}

static int open_conn(tstate *t, int64_t deadline)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	Porter__V1__Response *resp = NULL;
	int rc;

	if (porter_socket_path(path, sizeof(path)) < 0)
		return pconn_set_error(PORTER_E_INVAL, "socket path too long");
	memcpy(sa.sun_path, path, strlen(path) + 1);

	t->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (t->fd < 0)
		return pconn_set_error(PORTER_E_UNREACHABLE, "socket: %s", strerror(errno));
	frame_reader_init(&t->rd, HELLO_REPLY_LIMIT);
	t->max_frame = 0;
	/* Read before the instance id (see porter_reset). */
	t->generation = atomic_load(&generation);

	while (connect(t->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			/* The listen backlog is full: the daemon is busy but
			 * alive. Retry until the deadline. */
			struct timespec pause = {0, 1000000};
			if (now_ms() >= deadline) {
				rc = pconn_set_error(PORTER_E_TIMEOUT,
						     "daemon at %s did not accept in time", path);
				goto fail;
			}
			nanosleep(&pause, NULL);
			continue;
		}
		char why[64];
		rc = pconn_set_error(PORTER_E_UNREACHABLE, "cannot connect to porterd at %s: %s",
				     path, connect_why(path, errno, why, sizeof(why)));
		goto fail;
	}
	if ((rc = check_daemon(t->fd, path)) < 0)
		goto fail;

	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__Hello hello = PORTER__V1__HELLO__INIT;
	hello.protocol = PORTER_PROTOCOL_VERSION;
	rc = pconn_instance(&hello.client_instance);
	if (rc < 0)
		goto fail;
	hello.pid = (uint32_t)getpid();
	hello.client_name = program_invocation_short_name;
	req.id = pconn_next_id();
	req.body_case = PORTER__V1__REQUEST__BODY_HELLO;
	req.hello = &hello;

	size_t sent;
	rc = exchange(t, &req, deadline, &sent, 0, &resp);
	if (rc < 0) {
		if (rc == PORTER_E_CONN_LOST)
			rc = PORTER_E_UNREACHABLE;
		pconn_set_error(rc, "no Hello from porterd at %s: %s", path, porter_strerror(rc));
		goto fail;
	}
	if (resp->status != 0) {
		rc = pconn_set_error(resp->status, "%s", resp->message);
		goto fail;
	}
	if (resp->body_case != PORTER__V1__RESPONSE__BODY_HELLO ||
	    resp->hello->protocol != PORTER_PROTOCOL_VERSION) {
		rc = pconn_set_error(PORTER_E_PROTOCOL, "daemon at %s sent a bad Hello reply",
				     path);
		goto fail;
	}
	t->max_frame = resp->hello->max_frame;
	frame_reader_set_limit(&t->rd,
			       t->max_frame > HELLO_REPLY_LIMIT ? t->max_frame : HELLO_REPLY_LIMIT);
	porter__v1__response__free_unpacked(resp, NULL);
	return 0;

fail:
	if (resp)
		porter__v1__response__free_unpacked(resp, NULL);
	drop_conn(t);
	return rc;
}

static int call(Porter__V1__Request *req, int timeout_ms, enum pconn_retry retry, int scratch,
		arena *own, Porter__V1__Response **out)
{
	tstate *t = state();
	if (!t)
		return PORTER_E_NOMEM;
	arena *into = own ? own : scratch ? &t->scratch : NULL;
	if (timeout_ms < 0)
		return pconn_set_error(PORTER_E_INVAL, "negative timeout");
	if (timeout_ms == 0)
		timeout_ms = PCONN_DEFAULT_TIMEOUT_MS;
	int64_t deadline = now_ms() + timeout_ms;
	int rc = 0;

	/* A descriptor the last call's caller did not take is closed. */
	drop_resp_fd(t);
	/* A connection from before a porter_reset() belongs to the previous
	 * client instance: replace it. */
	if (t->fd >= 0 && t->generation != atomic_load(&generation))
		drop_conn(t);

	for (int attempt = 0; attempt < 2; attempt++) {
		int fresh = t->fd < 0;
		if (fresh && (rc = open_conn(t, deadline)) < 0)
			return rc;

		int64_t left = deadline - now_ms();
		if (left <= 0) {
			rc = PORTER_E_TIMEOUT;
			break;
		}
		if (!req->id)
			req->id = pconn_next_id();
		/* The daemon gets slightly less time than we wait, so that its
		 * own timeout reply (with whatever it cancelled) arrives
		 * before we give up and have to drop the connection. A caller
		 * may ask for an earlier daemon deadline still (a database
		 * query needs time for its server-side cancel). */
		int64_t margin = left / 10 < 50 ? left / 10 : 50;
		uint32_t daemon_ms = (uint32_t)(left - margin > 0 ? left - margin : 1);
		if (!req->timeout_ms || req->timeout_ms > daemon_ms)
			req->timeout_ms = daemon_ms;

		Porter__V1__Response *resp = NULL;
		size_t sent = 0;
		rc = exchange(t, req, deadline, &sent, into, &resp);
		if (rc == 0) {
			frame_reader_trim(&t->rd, KEEP_BUFFER);
			/* The daemon is closing this connection, or passed
			 * descriptors that cannot be matched with their
			 * frames any more. */
			if (resp->id == 0 || t->fd_broken)
				drop_conn(t);
			*out = resp;
			if (resp->status != 0)
				return pconn_set_error(resp->status, "%s",
						       resp->message && resp->message[0]
							       ? resp->message
							       : porter_strerror(resp->status));
			pconn_clear_error();
			return 0;
		}
		drop_conn(t);
		if (rc != PORTER_E_CONN_LOST)
			break;
		/* The connection broke. An old connection that broke before
		 * the daemon could have read anything (a restarted daemon)
		 * is always retried; one that broke after sending only for
		 * idempotent requests. */
		if (fresh && sent == 0)
			rc = PORTER_E_UNREACHABLE;
		if (fresh || (sent > 0 && retry != PCONN_IDEMPOTENT))
			break;
	}
	if (rc == PORTER_E_TIMEOUT)
		return pconn_set_error(rc, "no reply from porterd within %d ms", timeout_ms);
	if (rc == PORTER_E_CONN_LOST)
		return pconn_set_error(
			rc,
			"connection to porterd lost after the request was sent; its outcome is unknown");
	return pconn_set_error(rc, "%s", porter_strerror(rc));
}

int pconn_call_full(Porter__V1__Request *req, int timeout_ms, enum pconn_retry retry,
		    Porter__V1__Response **out)
{
	return call(req, timeout_ms, retry, 0, NULL, out);
}

int pconn_call_scratch(Porter__V1__Request *req, int timeout_ms, enum pconn_retry retry,
		       Porter__V1__Response **out)
{
	return call(req, timeout_ms, retry, 1, NULL, out);
}

int pconn_call_arena(Porter__V1__Request *req, int timeout_ms, enum pconn_retry retry, arena *into,
		     Porter__V1__Response **out)
{
	return call(req, timeout_ms, retry, 0, into, out);
}

void pconn_scratch_release(void)
{
	if (ts)
		arena_reset(&ts->scratch);
}

int pconn_call(Porter__V1__Request *req, int timeout_ms, enum pconn_retry retry,
	       Porter__V1__Response **out)
{
	Porter__V1__Response *resp = NULL;
	int rc = pconn_call_full(req, timeout_ms, retry, &resp);
	if (rc < 0) {
		if (resp)
			porter__v1__response__free_unpacked(resp, NULL);
		return rc;
	}
	*out = resp;
	return 0;
}

int pconn_call_ack(Porter__V1__Request *req, int timeout_ms, enum pconn_retry retry)
{
	Porter__V1__Response *resp = NULL;
	int rc = pconn_call(req, timeout_ms, retry, &resp);
	if (rc == 0)
		porter__v1__response__free_unpacked(resp, NULL);
	return rc;
}
