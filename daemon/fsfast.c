/* fsfast - small file requests on the loop when nothing blocks; see fsfast.h. */
#include "fsfast.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fsconfine.h"
#include "fspass.h"
#include "fsroot.h"
#include "log.h"

static atomic_int enabled;

void fsfast_init(int on)
{
	atomic_store(&enabled, on != 0);
}

/* What the job's root adds to a resolution: RESOLVE_NO_XDEV unless it may
 * span mount points (fsconfine.h): a file on a FUSE mount inside a root
 * would make this loop wait on its daemon at the open, fstat or close. */
static uint64_t no_xdev(const fs_job *j)
{
	return j->root->cross_mounts ? 0 : RESOLVE_NO_XDEV;
}

/* openat2 with RESOLVE_CACHED below `dir` (the job's root, or its uid's
 * directory in a per-user root): a descriptor, or -1 (EAGAIN and every
 * failure alike: the pool decides, and words a refused mount point). */
static int open_cached(const fs_job *j, int dir, const char *path, int flags)
{
	if (!path[0])
		path = ".";
	if (fsconfine_escapes(path))
		return -1;
	struct open_how how;
	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)(flags | O_CLOEXEC);
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_CACHED | no_xdev(j);
	long fd = syscall(SYS_openat2, dir, path, &how, sizeof(how));
	if (fd < 0 && (errno == EINVAL || errno == ENOSYS) && atomic_exchange(&enabled, 0))
		log_info("openat2 has no RESOLVE_CACHED here: small file requests use the pool");
	return fd < 0 ? -1 : (int)fd;
}

/*
 * The directory the job's paths resolve in: the root's own descriptor, or
 * in a per-user root the uid's directory, with fsroot_dir's confinement:
 * its name in the root, never through a symlink (RESOLVE_NO_SYMLINKS and
 * O_NOFOLLOW; a file planted there fails O_DIRECTORY), and owned by
 * porterd (another owner could swap what is inside). Returns the
 * descriptor (the caller gives it back with put_dir) or -1: a missing
 * directory (the pool makes it), one not in the dentry cache, or anything
 * wrong with it (the pool refuses it in its own words).
 */
static int get_dir(const fs_job *j)
{
	if (!j->root->per_user)
		return j->root->fd;
	char name[16];
	snprintf(name, sizeof(name), "%u", (unsigned)j->uid);
	struct open_how how;
	memset(&how, 0, sizeof(how));
	how.flags = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_CACHED | no_xdev(j);
	long d = syscall(SYS_openat2, j->root->fd, name, &how, sizeof(how));
	if (d < 0)
		return -1;
	struct stat sb;
	if (fstat((int)d, &sb) < 0 || !S_ISDIR(sb.st_mode) || sb.st_uid != clients_self()) {
		close((int)d);
		return -1;
	}
	return (int)d;
}

static void put_dir(const fs_job *j, int dir)
{
	if (dir >= 0 && dir != j->root->fd)
		close(dir);
}

/* Opens `path` of job `j` cached (open_cached) in its directory (get_dir). */
static int open_in_dir(const fs_job *j, const char *path, int flags)
{
	int dir = get_dir(j);
	if (dir < 0)
		return -1;
	int fd = open_cached(j, dir, path, flags);
	put_dir(j, dir);
	return fd;
}

/* A read of a regular file: all its bytes when they are few
 * (fspass_small_read) and in the page cache, else its descriptor when
 * the client takes one. */
static int fast_read(fs_job *j)
{
	Porter__V1__FileRead *m = j->r->msg->file_read;
	const int of = O_RDONLY | O_NONBLOCK;
	int fd = open_in_dir(j, m->path, of);
	if (fd < 0)
		return 0;
	struct stat sb;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size == 0)
		goto pool; /* directories, FIFOs, /proc files: the pool's words */
	uint64_t size = (uint64_t)sb.st_size;
	int small = fspass_small_read(m, size);
	if (j->want_fd && !small && fspass_read(j, &fd, &sb, of) == 0)
		return 1;
	if (!small)
		goto pool; /* a larger copy dwarfs the trip, and would hold the loop */
	uint64_t pos = m->offset;
	uint64_t want = size - pos;
	if (m->length && m->length < want)
		want = m->length;
	uint8_t *data = malloc(want);
	if (!data)
		goto pool;
	struct iovec iov = {.iov_base = data, .iov_len = want};
	ssize_t n = preadv2(fd, &iov, 1, (off_t)pos, RWF_NOWAIT);
	if (n < 0 || (uint64_t)n != want) {
		free(data); /* not all cached (EAGAIN), or it changed: the pool */
		goto pool;
	}
	close(fd);
	j->data = data;
	j->len = want;
	j->offset = pos;
	j->file_size = size;
	return 1;
pool:
	close(fd);
	return 0;
}

static int fast_stat(fs_job *j)
{
	Porter__V1__FileStat *m = j->r->msg->file_stat;
	if (m->no_follow)
		return 0;
	int fd = open_in_dir(j, m->path, O_PATH);
	if (fd < 0)
		return 0;
	int ok = fstat(fd, &j->sb) == 0;
	close(fd);
	return ok;
}

int fsfast_try(fs_job *j)
{
	/* Walking has its own rules; a stopped or streamed job is the
	 * pool's, and so is a root that spans mounts: a file there may be on
	 * a client's FUSE file system, and the open or fstat of a name the
	 * cache resolves still asks its daemon, which may never answer. */
	if (!atomic_load(&enabled) || !j->root || j->root->cross_mounts || fsconfine_walking() ||
	    j->st)
		return 0;
	switch (j->kind) {
	case JOB_READ:
		return fast_read(j);
	case JOB_STAT:
		return fast_stat(j);
	default:
		return 0;
	}
}
