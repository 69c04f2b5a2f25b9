/*
 * peeruid: the uid of a loopback TCP peer, asked of the kernel by
 * sock_diag (the metrics endpoint makes room from whoever holds the most
 * of its slots with it). The peer's socket is what is looked up, not the
 * accepted one: a connection from a child that dropped to another uid
 * reads as that uid, not the acceptor's.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "peeruid.h"
#include "thmain.h"

/* A uid nobody on a test machine holds (tenant.h's alice). */
#define OTHER_UID 61011

typedef struct pair {
	int lst, acc; /* listener and the accepted end */
	pid_t kid;    /* the process holding the other end, 0: this one */
	int own;      /* our end, when it is ours */
} pair;

/* A loopback listener of `family`; its address into `sa`/`len`. */
static int listener(int family, struct sockaddr_storage *sa, socklen_t *len)
{
	memset(sa, 0, sizeof(*sa));
	sa->ss_family = (sa_family_t)family;
	if (family == AF_INET)
		((struct sockaddr_in *)sa)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		((struct sockaddr_in6 *)sa)->sin6_addr = in6addr_loopback;
	*len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)sa, *len), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)sa, len), 0);
	return fd;
}

/* Connects to a new listener of `family`, from a child running as `uid`
 * (which holds its end until killed) when `uid` is not ours. */
static void connect_pair(pair *p, int family, uid_t uid)
{
	struct sockaddr_storage sa;
	socklen_t len;
	int go[2];
	p->lst = listener(family, &sa, &len);
	p->kid = 0;
	p->own = -1;
	if (uid == geteuid()) {
		p->own = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ck_assert_int_eq(connect(p->own, (struct sockaddr *)&sa, len), 0);
	} else {
		ck_assert_int_eq(pipe(go), 0);
		p->kid = fork();
		ck_assert_int_ge(p->kid, 0);
		if (p->kid == 0) {
			int fd = -1;
			if (setgid(uid) == 0 && setuid(uid) == 0 &&
			    (fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0 &&
			    connect(fd, (struct sockaddr *)&sa, len) == 0)
				(void)write(go[1], "k", 1);
			pause();
			_exit(0);
		}
		char b;
		close(go[1]);
		ck_assert_int_eq(read(go[0], &b, 1), 1);
		close(go[0]);
	}
	p->acc = accept(p->lst, NULL, NULL);
	ck_assert_int_ge(p->acc, 0);
}

static void pair_close(pair *p)
{
	if (p->kid > 0) {
		kill(p->kid, SIGKILL);
		waitpid(p->kid, NULL, 0);
	}
	if (p->own >= 0)
		close(p->own);
	close(p->acc);
	close(p->lst);
}

START_TEST(own_connection_reads_as_own_uid)
{
	int nl = peeruid_open();
	ck_assert_int_ge(nl, 0);
	for (int family = AF_INET; family; family = family == AF_INET ? AF_INET6 : 0) {
		pair p;
		uid_t uid = (uid_t)-1;
		connect_pair(&p, family, geteuid());
		ck_assert_int_eq(peeruid_tcp(nl, p.acc, &uid), 0);
		ck_assert_uint_eq(uid, geteuid());
		/* Our own end looks up the accepted socket, ours too. */
		ck_assert_int_eq(peeruid_tcp(nl, p.own, &uid), 0);
		ck_assert_uint_eq(uid, geteuid());
		pair_close(&p);
	}
	close(nl);
}
END_TEST

START_TEST(another_uids_connection_reads_as_its_uid)
{
	int nl = peeruid_open();
	ck_assert_int_ge(nl, 0);
	for (int family = AF_INET; family; family = family == AF_INET ? AF_INET6 : 0) {
		pair p;
		uid_t uid = (uid_t)-1;
		connect_pair(&p, family, OTHER_UID);
		ck_assert_int_eq(peeruid_tcp(nl, p.acc, &uid), 0);
		ck_assert_uint_eq(uid, OTHER_UID);
		pair_close(&p);
	}
	close(nl);
}
END_TEST

/* Another uid's connection, closed by its owner before porterd looked it
 * up, is of no known uid: read as uid 0, anyone's closed connections
 * counted as root's at the metrics endpoint, where a scraper running as
 * root could then be the one made room from. */
START_TEST(closed_peer_reads_as_no_uid)
{
	int nl = peeruid_open();
	ck_assert_int_ge(nl, 0);
	struct sockaddr_storage sa;
	socklen_t len;
	int lst = listener(AF_INET, &sa, &len);
	pid_t kid = fork();
	ck_assert_int_ge(kid, 0);
	if (kid == 0) {
		int fd = -1;
		if (setgid(OTHER_UID) == 0 && setuid(OTHER_UID) == 0 &&
		    (fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0 &&
		    connect(fd, (struct sockaddr *)&sa, len) == 0 &&
		    send(fd, "GET /met", 8, 0) == 8)
			_exit(0);
		_exit(1);
	}
	int st;
	ck_assert_int_eq(waitpid(kid, &st, 0), kid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	int acc = accept(lst, NULL, NULL);
	ck_assert_int_ge(acc, 0);
	uid_t uid = 12345;
	ck_assert_int_eq(peeruid_tcp(nl, acc, &uid), -1);
	ck_assert_uint_eq(uid, 12345);
	close(acc);
	close(lst);
	close(nl);
}
END_TEST

START_TEST(no_answer_without_a_tcp_peer)
{
	int nl = peeruid_open();
	uid_t uid = 12345;
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(peeruid_tcp(nl, sv[0], &uid), -1);
	ck_assert_int_eq(peeruid_tcp(-1, sv[0], &uid), -1);
	ck_assert_uint_eq(uid, 12345);
	/* A peer closed: its socket waits out FIN_WAIT2 held by no process,
	 * and the kernel says uid 0 for it. */
	pair p;
	connect_pair(&p, AF_INET, geteuid());
	close(p.own);
	p.own = -1;
	ck_assert_int_eq(peeruid_tcp(nl, p.acc, &uid), -1);
	ck_assert_uint_eq(uid, 12345);
	pair_close(&p);
	close(sv[0]);
	close(sv[1]);
	close(nl);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {own_connection_reads_as_own_uid,
				another_uids_connection_reads_as_its_uid,
				closed_peer_reads_as_no_uid, no_answer_without_a_tcp_peer, NULL};
	return th_suite("peeruid", "peeruid", 0, tests);
}

TH_MAIN_ROOT(suite)
