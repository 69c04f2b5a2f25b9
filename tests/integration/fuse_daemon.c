/* fuse_daemon - a FUSE daemon for tests; see fuse_daemon.h. */
#include "fuse_daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tenant.h"

static void fuse_reply(int fd, uint64_t unique, int error, const void *p, size_t n)
{
	struct fuse_out_header h = {
		.len = (uint32_t)(sizeof(h) + n), .error = error, .unique = unique};
	char out[sizeof(h) + 256];
	memcpy(out, &h, sizeof(h));
	if (n)
		memcpy(out + sizeof(h), p, n);
	if (write(fd, out, h.len) < 0) {
		/* the connection is gone: its waiter failed */
	}
}

static void fuse_attr_of(const fuse_srv *f, uint64_t node, struct fuse_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = node;
	a->mode = node == FUSE_ROOT_ID ? S_IFDIR | 0770 : S_IFREG | (f->root_file ? 0644 : 0660);
	a->nlink = node == FUSE_ROOT_ID ? 2 : 1;
	a->uid = node != FUSE_ROOT_ID && f->root_file ? 0 : TH_UID_ALICE;
	if (node != FUSE_ROOT_ID)
		a->size = f->file_size;
	a->gid = TH_GID_PORTER;
	a->blksize = 4096;
}

void *fuse_serve(void *arg)
{
	fuse_srv *f = arg;
	static char buf[1 << 20]; /* at least the kernel's max_write and a page */
	for (;;) {
		struct pollfd pf[2] = {{f->fd, POLLIN, 0}, {f->stop[0], POLLIN, 0}};
		if (poll(pf, 2, -1) < 0 && errno != EINTR)
			break;
		if (pf[1].revents)
			break;
		if (!(pf[0].revents & POLLIN))
			continue;
		ssize_t n = read(f->fd, buf, sizeof(buf));
		if (n < (ssize_t)sizeof(struct fuse_in_header))
			break;
		struct fuse_in_header *in = (struct fuse_in_header *)buf;
		const char *arg_p = buf + sizeof(*in);
		uint64_t node = in->nodeid;
		switch (in->opcode) {
		case FUSE_INIT: {
			const struct fuse_init_in *ii = (const void *)arg_p;
			struct fuse_init_out o = {.major = FUSE_KERNEL_VERSION,
						  .minor = ii->minor < FUSE_KERNEL_MINOR_VERSION
								   ? ii->minor
								   : FUSE_KERNEL_MINOR_VERSION,
						  .max_write = 65536,
						  .max_background = 16,
						  .congestion_threshold = 12,
						  .time_gran = 1};
			fuse_reply(f->fd, in->unique, 0, &o, sizeof(o));
			break;
		}
		case FUSE_LOOKUP:
			if (node == FUSE_ROOT_ID && strcmp(arg_p, "#5") == 0) {
				struct fuse_entry_out e = {
					.nodeid = 2, .generation = 1, .entry_valid = 60};
				fuse_attr_of(f, 2, &e.attr);
				fuse_reply(f->fd, in->unique, 0, &e, sizeof(e));
			} else {
				fuse_reply(f->fd, in->unique, -ENOENT, NULL, 0);
			}
			break;
		case FUSE_GETATTR:
		case FUSE_SETATTR: {
			if (in->opcode == FUSE_SETATTR)
				atomic_store(&f->setattr_seen, 1);
			else if (atomic_load(&f->setattr_seen) ||
				 (f->getattrs > 0 && atomic_load(&f->answered) >= f->getattrs)) {
				atomic_fetch_add(&f->stalled, 1);
				break; /* never answered: the caller waits */
			}
			if (in->opcode == FUSE_GETATTR)
				atomic_fetch_add(&f->answered, 1);
			struct fuse_attr_out o = {0};
			fuse_attr_of(f, node, &o.attr);
			fuse_reply(f->fd, in->unique, 0, &o, sizeof(o));
			break;
		}
		case FUSE_READ: {
			/* Zeros, up to the file's size. */
			static const char zeros[1 << 17];
			const struct fuse_read_in *ri = (const void *)arg_p;
			uint64_t left = ri->offset < f->file_size ? f->file_size - ri->offset : 0;
			size_t len = ri->size < left ? ri->size : (size_t)left;
			if (len > sizeof(zeros))
				len = sizeof(zeros);
			struct fuse_out_header h = {.len = (uint32_t)(sizeof(h) + len),
						    .unique = in->unique};
			struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)zeros, len}};
			if (writev(f->fd, iov, 2) < 0) {
				/* the connection is gone: its waiter failed */
			}
			break;
		}
		case FUSE_OPENDIR:
		case FUSE_OPEN: {
			struct fuse_open_out o = {0};
			fuse_reply(f->fd, in->unique, 0, &o, sizeof(o));
			break;
		}
		case FUSE_STATFS: {
			struct fuse_statfs_out o = {
				.st = {.bsize = 4096, .namelen = 255, .frsize = 4096}};
			fuse_reply(f->fd, in->unique, 0, &o, sizeof(o));
			break;
		}
		case FUSE_FLUSH:
			if (f->hold_flush_uid && in->uid == f->hold_flush_uid) {
				atomic_fetch_add(&f->flushes_held, 1);
				break; /* never answered: the closer waits */
			}
			fuse_reply(f->fd, in->unique, 0, NULL, 0);
			break;
		case FUSE_RELEASE:
		case FUSE_RELEASEDIR:
		case FUSE_ACCESS:
			fuse_reply(f->fd, in->unique, 0, NULL, 0);
			break;
		case FUSE_FORGET:
		case FUSE_BATCH_FORGET:
		case FUSE_INTERRUPT:
			break;
		default:
			fuse_reply(f->fd, in->unique, -ENOSYS, NULL, 0);
		}
	}
	return NULL;
}

int fuse_mount_stalled(const char *dir, unsigned uid, unsigned gid)
{
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char opts[128];
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=%u,group_id=%u,allow_other", fd,
		 uid, gid);
	if (mount("porter-stalled", dir, "fuse.porter-stalled", MS_NOSUID | MS_NODEV, opts) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int fuse_srv_start(fuse_srv *f, pthread_t *t, const char *dir, const char *more_opts)
{
	f->fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (f->fd < 0)
		return -1;
	if (pipe2(f->stop, O_CLOEXEC) != 0)
		goto fail;
	char opts[160];
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=%u,group_id=%u,allow_other%s",
		 f->fd, TH_UID_ALICE, TH_GID_PORTER, more_opts);
	if (pthread_create(t, NULL, fuse_serve, f) != 0)
		goto fail_pipe;
	if (mount("porter-answers", dir, "fuse.porter-answers", MS_NOSUID | MS_NODEV, opts) == 0)
		return 0;
	int e = errno;
	fuse_srv_stop(f, *t);
	errno = e;
	return -1;
fail_pipe:
	close(f->stop[0]);
	close(f->stop[1]);
fail:
	close(f->fd);
	return -1;
}

void fuse_srv_stop(fuse_srv *f, pthread_t t)
{
	if (write(f->stop[1], "x", 1) == 1)
		pthread_join(t, NULL);
	close(f->fd);
	close(f->stop[0]);
	close(f->stop[1]);
}

int fuse_tree(const char *pattern, char *top, size_t cap)
{
	if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		return -1;
	snprintf(top, cap, "%s", pattern);
	if (!mkdtemp(top) || chmod(top, 0755) != 0)
		return -1;
	const char *dirs[] = {"docs", "docs/fuse"};
	for (int i = 0; i < 2; i++) {
		char p[256];
		snprintf(p, sizeof(p), "%s/%s", top, dirs[i]);
		if (mkdir(p, 0770) != 0 || chown(p, TH_UID_ALICE, TH_GID_PORTER) != 0 ||
		    chmod(p, 0770) != 0)
			return -1;
	}
	return 0;
}
