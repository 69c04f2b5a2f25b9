/* listen - porterd's own listening socket; see listen.h. */
#include "listen.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "clients.h"
#include "dirs.h"
#include "log.h"
#include "sockpath.h"

/*
 * The socket's directory must exist. When it is the default location (in a
 * shared /tmp), it must also be ours and writable by us alone, or another
 * user could have planted it to intercept clients. `*own_dir` is set when
 * the directory is ours to open up for allowed peers (we created it, or it
 * is the default one we just checked); its mode is set by apply_access.
 */
static int prepare_dir(const char *path, int must_be_private, int *own_dir)
{
	char copy[sizeof(((struct sockaddr_un *)0)->sun_path)];
	snprintf(copy, sizeof(copy), "%s", path);
	const char *dir = dirname(copy);
	struct stat st;

	int rc = dirs_make(dir);
	*own_dir = 0;
	if (rc < 0) {
		log_error("cannot create directory %s: %s", dir, strerror(-rc));
		return -1;
	}
	if (lstat(dir, &st) < 0) {
		log_error("cannot stat %s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_error("%s is not a directory", dir);
		return -1;
	}
	/* Group and others may search it (apply_access opens it up that far
	 * for allowed peers), never write to it. */
	if (must_be_private && (st.st_uid != clients_self() || (st.st_mode & 022))) {
		log_error(
			"refusing to listen in %s: not a directory of uid %u that only it can write to (owner %u, mode %03o)",
			dir, (unsigned)clients_self(), (unsigned)st.st_uid,
			(unsigned)(st.st_mode & 0777));
		return -1;
	}
	*own_dir = (rc == 1 || must_be_private) && st.st_uid == clients_self();
	return 0;
}

/* Who the socket file (and a directory porterd owns for it) lets connect:
 * the kernel's permission check comes first, the allow-lists are checked at
 * accept. A socket cannot be opened to a list of uids, so any other uid
 * opens it to everyone and accept refuses the unlisted with a clear
 * error; one group alone is expressed exactly with the file's group. */
typedef struct sock_access {
	mode_t sock_mode;
	mode_t dir_mode;
	gid_t group; /* (gid_t)-1: left as it is */
} sock_access;

static sock_access access_for(const config *cfg)
{
	int other_uid = cfg->allow_any_uid;
	for (size_t i = 0; i < cfg->n_allow_uids; i++)
		if (cfg->allow_uids[i] != clients_self())
			other_uid = 1;
	if (!other_uid && cfg->n_allow_gids == 0)
		return (sock_access){0600, 0700, (gid_t)-1};
	if (!other_uid && cfg->n_allow_gids == 1)
		return (sock_access){0660, 0710, cfg->allow_gids[0]};
	return (sock_access){0666, 0711, (gid_t)-1};
}

/* Sets mode (and group) of `path` if it is still the file (dev, ino) we
 * made. 0, or -1 with errno. */
static int set_access(const char *path, dev_t dev, ino_t ino, mode_t mode, gid_t group)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return -1;
	if (st.st_dev != dev || st.st_ino != ino) {
		errno = ESTALE;
		return -1;
	}
	if (group != (gid_t)-1 && st.st_gid != group && chown(path, (uid_t)-1, group) < 0)
		return -1;
	return chmod(path, mode);
}

/* Warns when an ancestor of the socket keeps the allowed peers out (a
 * private $XDG_RUNTIME_DIR does): the mode of the socket alone is not
 * enough for them to reach it. */
static void check_reachable(const char *dir, const sock_access *a)
{
	char buf[CONFIG_PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", dir);
	for (;;) {
		char *slash = strrchr(buf, '/');
		if (!slash)
			return;
		*(slash == buf ? slash + 1 : slash) = '\0';
		struct stat st;
		if (stat(buf, &st) == 0 && !(st.st_mode & S_IXOTH) &&
		    !(a->group != (gid_t)-1 && st.st_gid == a->group && (st.st_mode & S_IXGRP))) {
			log_warn(
				"allow-uid/allow-gid admit other users, but %s (mode %03o) keeps them from reaching the socket",
				buf, (unsigned)(st.st_mode & 0777));
			return;
		}
		if (slash == buf)
			return;
	}
}

/* Opens the socket we created (and its directory, if ours) to the peers
 * the current allow-lists name, or closes it back to our uid. At start-up
 * and after every reload; never on a socket from systemd. */
void listen_apply_access(server *srv)
{
	sock_access a = access_for(srv->cfg);
	const char *path = srv->cfg->socket_path;
	char group[32] = "", dir[40] = "";
	if (!srv->created_socket)
		return;
	if (set_access(path, srv->sock_dev, srv->sock_ino, a.sock_mode, a.group) < 0 &&
	    a.group != (gid_t)-1) {
		/* We may only give a file a group we are in: fall back to
		 * the open mode, where accept still checks the group. */
		log_warn(
			"cannot give %s group %u (%s); opening it to every uid, accept checks the group",
			path, (unsigned)a.group, strerror(errno));
		a = (sock_access){0666, 0711, (gid_t)-1};
		set_access(path, srv->sock_dev, srv->sock_ino, 0666, a.group);
	}
	if (srv->own_dir) {
		struct stat st;
		if (lstat(srv->sock_dir, &st) < 0 ||
		    set_access(srv->sock_dir, st.st_dev, st.st_ino, a.dir_mode, a.group) < 0)
			log_warn("cannot set the mode of %s: %s", srv->sock_dir, strerror(errno));
	}
	if (a.sock_mode != 0600)
		check_reachable(path, &a);
	if (a.group != (gid_t)-1)
		snprintf(group, sizeof(group), ", group %u", (unsigned)a.group);
	if (srv->own_dir)
		snprintf(dir, sizeof(dir), ", directory mode %04o", (unsigned)a.dir_mode);
	log_info("socket %s: mode %04o%s%s", path, (unsigned)a.sock_mode, group, dir);
}

/*
 * Replaces a stale socket file left by a dead daemon; refuses to touch a
 * live one or anything that is not a socket.
 */
static int clear_stale(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(st.st_mode)) {
		log_error("%s exists and is not a socket; not replacing it", path);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int live = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	int err = errno;
	close(fd);
	if (live) {
		log_error("another daemon is listening on %s", path);
		return -1;
	}
	if (err != ECONNREFUSED && err != ENOENT) {
		log_error("cannot probe %s: %s", path, strerror(err));
		return -1;
	}
	log_info("removing stale socket %s", path);
	if (unlink(path) < 0 && errno != ENOENT) {
		log_error("cannot remove stale socket %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int listen_open(server *srv)
{
	const config *cfg = srv->cfg;
	const char *path = cfg->socket_path;
	char def[sizeof(cfg->socket_path)];
	char lock_path[sizeof(cfg->socket_path) + 8];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;

	int is_default = sockpath_default(def, sizeof(def)) > 0 && strcmp(def, path) == 0;
	if (prepare_dir(path, is_default, &srv->own_dir) < 0)
		return -1;
	char copy[sizeof(cfg->socket_path)];
	snprintf(copy, sizeof(copy), "%s", path);
	snprintf(srv->sock_dir, sizeof(srv->sock_dir), "%s", dirname(copy));

	/* The lock makes "is a daemon alive here?" race-free between two
	 * daemons starting at once; it is held until the process exits. */
	snprintf(lock_path, sizeof(lock_path), "%s.lock", path);
	srv->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (srv->lock_fd < 0) {
		log_error("cannot open %s: %s", lock_path, strerror(errno));
		return -1;
	}
	if (flock(srv->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		log_error("another daemon owns %s (%s is locked)", path, lock_path);
		return -1;
	}
	if (clear_stale(path) < 0)
		return -1;

	srv->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (srv->listen_fd < 0) {
		log_error("socket: %s", strerror(errno));
		return -1;
	}
	/* Before anyone can connect: a connection takes its listener's
	 * setting when it is made. */
	listen_refuse_fds(srv->listen_fd, 1);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	/* Created 0600 from the start: no window where others could connect. */
	mode_t old = umask(0177);
	int rc = bind(srv->listen_fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0) {
		log_error("cannot bind %s: %s", path, strerror(errno));
		return -1;
	}
	srv->created_socket = 1;
	if (chmod(path, 0600) < 0 || stat(path, &st) < 0) {
		log_error("cannot set the mode of %s: %s", path, strerror(errno));
		return -1;
	}
	srv->sock_dev = st.st_dev;
	srv->sock_ino = st.st_ino;
	listen_apply_access(srv);
	if (listen(srv->listen_fd, SOMAXCONN) < 0) {
		log_error("listen: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Linux 6.16's SO_PASSRIGHTS, which older C libraries do not name (its
 * number on the architectures that use the generic socket numbers). */
#if !defined(SO_PASSRIGHTS) && !defined(__alpha__) && !defined(__mips__) && !defined(__hppa__) &&  \
	!defined(__sparc__)
#define SO_PASSRIGHTS 83
#endif

int listen_refuse_fds(int fd, int warn)
{
	/* A client never sends porterd a descriptor, and one it sent is
	 * released by porterd: the read that takes the bytes it rode on
	 * drops it there, as does closing a connection with it unread, and
	 * when porterd held the last reference, its release runs in that
	 * thread. A TCP socket with SO_LINGER and unsent data makes that
	 * close wait out its linger time, so a client could stall a worker
	 * (or, before being refused at accept, the acceptor) for as long as
	 * it liked. With SO_PASSRIGHTS off the kernel refuses the sender's
	 * sendmsg (EPERM); a listening socket's connections inherit it from
	 * the moment they connect. */
#ifdef SO_PASSRIGHTS
	int off = 0;
	if (setsockopt(fd, SOL_SOCKET, SO_PASSRIGHTS, &off, sizeof(off)) == 0)
		return 0;
	int e = errno;
#else
	int e = ENOPROTOOPT;
#endif
	if (warn)
		log_warn(
			"cannot make the socket refuse descriptors sent by clients (SO_PASSRIGHTS, "
			"Linux 6.16): %s; a client can stall a worker by sending one whose close waits "
			"(README: Who may connect)",
			strerror(e));
	return -1;
}

/* Closes a connection whose queue holds descriptors, on a thread of its
 * own: the release of one of them may wait (listen_refuse_fds). */
static void *close_apart(void *arg)
{
	close((int)(intptr_t)arg);
	return NULL;
}

int listen_screen(int fd)
{
#ifdef SO_PASSRIGHTS
	int on = 0;
	socklen_t l = sizeof(on);
	/* A connection takes its listener's setting when it connects: one
	 * that refuses descriptors already could never be sent any. */
	if (getsockopt(fd, SOL_SOCKET, SO_PASSRIGHTS, &on, &l) < 0 || !on)
		return 0;
	listen_refuse_fds(fd, 0);
	/* Made before porterd set it on systemd's socket: look through what
	 * it queued (peeked, so nothing is taken; a peek stops at each
	 * message carrying descriptors and says so with MSG_CTRUNC when
	 * given no room for them, the duplicates it made dropped at once). */
	int off = 0, found = 0;
	if (setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off)) < 0)
		found = 1;       /* cannot look: treated as the worst */
	static char sink[16384]; /* acceptor thread only */
	while (!found) {
		struct iovec iov = {.iov_base = sink, .iov_len = sizeof(sink)};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		ssize_t n = recvmsg(fd, &mh, MSG_PEEK | MSG_DONTWAIT);
		if (n <= 0)
			break;
		found = (mh.msg_flags & MSG_CTRUNC) != 0;
	}
	off = -1;
	setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off));
	if (!found)
		return 0;
	pthread_t t;
	pthread_attr_t a;
	if (pthread_attr_init(&a) == 0) {
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &a, close_apart, (void *)(intptr_t)fd) != 0)
			log_warn("cannot start a thread to close connection %d: kept open", fd);
		pthread_attr_destroy(&a);
	}
	return 1;
#else
	(void)fd;
	return 0;
#endif
}

/* Removes the socket file only if it is still the one we created. */
void listen_remove(server *srv)
{
	struct stat st;
	if (!srv->created_socket)
		return;
	srv->created_socket = 0;
	if (stat(srv->cfg->socket_path, &st) == 0 && st.st_dev == srv->sock_dev &&
	    st.st_ino == srv->sock_ino)
		unlink(srv->cfg->socket_path);
}
