/*
 * Unit tests of proto/randid.c, the one random-id generator of porterd and
 * libporter: ids have the bits asked for and are never 0, and when the
 * kernel gives no randomness the caller gets an error, never an id made of
 * something weaker (that 48-bit ids do not repeat is test_fwd's
 * ids_name_their_worker). libporter's client instance id goes through it too: a
 * client whose kernel gives no random bytes fails its call with
 * PORTER_E_INTERNAL instead of sending Hello with a guessable instance id.
 *
 * The kernel's failures are staged by defining getrandom here: the
 * executable's definition is the one randid.o and pconn.o bind to.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "porter.h"
#include "randid.h"
#include "thmain.h"

/* How the staged kernel answers getrandom. */
enum stage {
	REAL,       /* the real system call */
	NO_ENTROPY, /* -1 EAGAIN: the pool is not seeded yet */
	SHORT,      /* fewer bytes than asked */
	ZEROS,      /* "random" bytes that are all zero */
	LOW_ZERO,   /* 0x100 (its low byte 0), then all ones */
	ONES,       /* all bits set */
	EINTR_ONCE, /* -1 EINTR, then real bytes */
};
static enum stage stage = REAL;
static unsigned last_flags;
static int calls;

ssize_t getrandom(void *buf, size_t len, unsigned flags)
{
	last_flags = flags;
	calls++;
	switch (stage) {
	case NO_ENTROPY:
		errno = EAGAIN;
		return -1;
	case SHORT:
		memset(buf, 0xa5, len / 2);
		return (ssize_t)(len / 2);
	case ZEROS:
		memset(buf, 0, len);
		return (ssize_t)len;
	case LOW_ZERO:
		stage = ONES;
		memset(buf, 0, len);
		((unsigned char *)buf)[1] = 1; /* little endian: 0x100 */
		return (ssize_t)len;
	case ONES:
		memset(buf, 0xff, len);
		return (ssize_t)len;
	case EINTR_ONCE:
		stage = REAL;
		errno = EINTR;
		return -1;
	case REAL:
		break;
	}
	return syscall(SYS_getrandom, buf, len, flags);
}

START_TEST(ids_have_the_bits_asked_for)
{
	static const unsigned widths[] = {1, 2, 8, 16, 48, 63, 64};
	for (size_t i = 0; i < sizeof(widths) / sizeof(widths[0]); i++) {
		unsigned bits = widths[i];
		uint64_t seen = 0;
		for (int n = 0; n < 200; n++) {
			uint64_t id = 0;
			ck_assert_int_eq(randid_new(bits, &id), 0);
			ck_assert_uint_ne(id, 0);
			if (bits < 64)
				ck_assert_uint_eq(id >> bits, 0);
			seen |= id;
		}
		/* Every bit asked for turns up in 200 draws (each is missed
		 * with probability 2^-200). */
		uint64_t all = bits == 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
		ck_assert_uint_eq(seen, all);
	}
	/* Never blocks: a worker loop calls it. */
	ck_assert(last_flags & GRND_NONBLOCK);
}
END_TEST

START_TEST(widths_out_of_range_are_refused)
{
	uint64_t id = 7;
	ck_assert_int_eq(randid_new(0, &id), PORTER_E_INVAL);
	ck_assert_int_eq(randid_new(65, &id), PORTER_E_INVAL);
	ck_assert_uint_eq(id, 7);
}
END_TEST

/* No fallback to the clock or the pid: each way the kernel can fail is an
 * error, and the out value stays untouched. */
START_TEST(no_randomness_is_an_error)
{
	static const enum stage fails[] = {NO_ENTROPY, SHORT, ZEROS};
	for (size_t i = 0; i < sizeof(fails) / sizeof(fails[0]); i++) {
		stage = fails[i];
		uint64_t id = 7;
		ck_assert_int_eq(randid_new(48, &id), PORTER_E_INTERNAL);
		/* 64 zero bits are no randomness, even for a 1-bit id. */
		ck_assert_int_eq(randid_new(1, &id), PORTER_E_INTERNAL);
		ck_assert_uint_eq(id, 7);
	}
	stage = REAL;
}
END_TEST

START_TEST(passing_troubles_are_retried)
{
	uint64_t id = 0;
	stage = EINTR_ONCE;
	calls = 0;
	ck_assert_int_eq(randid_new(64, &id), 0);
	ck_assert_uint_ne(id, 0);
	ck_assert_int_eq(calls, 2);
	/* A draw whose low 8 bits are 0 is drawn again for an 8-bit id, not
	 * refused (a 1-bit id meets that every other draw). */
	stage = LOW_ZERO;
	calls = 0;
	ck_assert_int_eq(randid_new(8, &id), 0);
	ck_assert_uint_eq(id, 0xff);
	ck_assert_int_eq(calls, 2);
	stage = REAL;
}
END_TEST

/*
 * A socket that accepts connections (the kernel's backlog does) and never
 * answers: a client that sends Hello waits for its timeout there. Its path
 * goes into PORTER_SOCKET; returns the listening fd.
 */
static int mute_daemon(char *path, size_t cap)
{
	char dir[] = "/tmp/porter-randid-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, cap, "%s/porter.sock", dir);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	ck_assert_uint_lt(strlen(path), sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	setenv("PORTER_SOCKET", path, 1);
	return fd;
}

START_TEST(client_without_randomness_fails_its_call)
{
	char path[108];
	int fd = mute_daemon(path, sizeof(path));
	stage = NO_ENTROPY;
	ck_assert_int_eq(porter_ping("x", 1, 0, 2000), PORTER_E_INTERNAL);
	ck_assert_int_eq(porter_last_error(), PORTER_E_INTERNAL);
	ck_assert_ptr_nonnull(strstr(porter_last_error_message(), "random"));
	/* Once the kernel has randomness the client goes on to Hello (and
	 * waits for the mute daemon until its timeout). */
	stage = REAL;
	ck_assert_int_eq(porter_ping("x", 1, 0, 50), PORTER_E_TIMEOUT);
	close(fd);
	unlink(path);
	*strrchr(path, '/') = '\0';
	rmdir(path);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {ids_have_the_bits_asked_for,
				widths_out_of_range_are_refused,
				no_randomness_is_an_error,
				passing_troubles_are_retried,
				client_without_randomness_fails_its_call,
				NULL};
	return th_suite("randid", "randid", 0, tests);
}

TH_MAIN(suite)
