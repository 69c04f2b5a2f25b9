/*
 * fuse_daemon - a FUSE daemon for tests, served over /dev/fuse by a thread
 * of the test process (no libfuse): an owner's own file system inside a
 * file root, whose daemon stops answering at a moment the test chooses.
 */
#ifndef PORTER_TEST_FUSE_DAEMON_H
#define PORTER_TEST_FUSE_DAEMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A FUSE daemon of alice's that answers until it has seen a mode change
 * (FUSE_SETATTR), and from then on never answers a stat (FUSE_GETATTR):
 * what her real daemon could do. Its root holds one file, "#5", named as
 * the kernel names an unnamed file; its name stays cached for a minute.
 */
typedef struct fuse_srv {
	int fd;
	int stop[2]; /* a byte on stop[1] ends the thread */
	atomic_int setattr_seen;
	int getattrs;            /* > 0: answers no more stats than that either */
	atomic_int answered;     /* stats answered */
	atomic_int stalled;      /* stats left unanswered */
	int root_file;           /* set before the thread starts: "#5" is root's,
				  * mode 0644 (porterd may pass it to alice) */
	uint64_t file_size;      /* set before the thread starts: "#5"'s size
				  * (its bytes are zeros) */
	unsigned hold_flush_uid; /* set before the thread starts, not 0: answers
				  * no close (FUSE_FLUSH) made by this uid */
	atomic_int flushes_held; /* closes left unanswered */
} fuse_srv;

/* The thread's body (pthread_create with a fuse_srv whose fd is an open
 * /dev/fuse mounted with it and whose stop is a pipe). */
void *fuse_serve(void *arg);

/*
 * Mounts a FUSE file system on `dir` whose daemon never answers (this
 * process holds /dev/fuse and never reads it): every request the kernel
 * makes of it waits, killably, until the descriptor closes, as a stalled
 * daemon of its owner `uid`/`gid` would. allow_other, as fusermount gives
 * it where /etc/fuse.conf has user_allow_other (without it the kernel
 * refuses other uids, porterd's included, at once). Returns the
 * descriptor, or -1 when this machine has no FUSE.
 */
int fuse_mount_stalled(const char *dir, unsigned uid, unsigned gid);

/* Mounts on `dir` a FUSE file system of alice's served by `f` (its options
 * set, fd and stop made here) from a new thread `*t`, with `more_opts`
 * ("" or ",option...") added to the mount options. 0, or -1 with errno
 * (ENODEV or ENOENT: no FUSE here). */
int fuse_srv_start(fuse_srv *f, pthread_t *t, const char *dir, const char *more_opts);

/* Ends `f`'s thread `t`, then its connection (whatever waits on it
 * fails). */
void fuse_srv_stop(fuse_srv *f, pthread_t t);

/* A mount namespace of the calling process's own, with / private (nothing
 * mounted in it reaches the host), and a new directory (mkdtemp of
 * `pattern`, into `top`, `cap` bytes; 0755) holding alice's docs/ and
 * docs/fuse/ (0770). 0, or -1 with errno. */
int fuse_tree(const char *pattern, char *top, size_t cap);

#endif
