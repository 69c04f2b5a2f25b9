/*
 * fuse_daemon - a FUSE daemon for tests, served over /dev/fuse by a thread
 * of the test process (no libfuse): an owner's own file system inside a
 * file root, whose daemon stops answering at a moment the test chooses.
 */
#ifndef PORTER_TEST_FUSE_DAEMON_H
#define PORTER_TEST_FUSE_DAEMON_H

#include <stdatomic.h>

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
	int getattrs;        /* > 0: answers no more stats than that either */
	atomic_int answered; /* stats answered */
	atomic_int stalled;  /* stats left unanswered */
} fuse_srv;

/* The thread's body (pthread_create with a fuse_srv whose fd is an open
 * /dev/fuse mounted with it and whose stop is a pipe). */
void *fuse_serve(void *arg);

#endif
