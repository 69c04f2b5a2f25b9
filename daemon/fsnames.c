/* fsnames - deletes, stats, mkdir, renames and watch opens on the thread
 * pool; see fsnames.h. */
#include "fsnames.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "fsconfine.h"
#include "porter_errors.h"

void fsnames_delete(fs_job *j)
{
	Porter__V1__FileDelete *m = j->r->msg->file_delete;
	const char *base = NULL;
	int dfd = -1;
	if (fswork_open_parent(j, m->path, O_PATH, "delete", &dfd, &base))
		return;
	if (unlinkat(dfd, base, m->directory ? AT_REMOVEDIR : 0) < 0) {
		if (errno == ENOTDIR) /* its directory is open: the name itself */
			fswork_fail_code(j, PORTER_E_FILE_NOTDIR, "delete", "not a directory");
		else
			fswork_fail(j, errno, "delete", NULL, 0);
	}
	close(dfd);
}

/* FUSE's f_type (linux/magic.h), for fuse and fuseblk alike. */
#define FSNAMES_FUSE_MAGIC 0x65735546

/*
 * Whether the object `fd` (O_PATH) is on a FUSE file system, which only a
 * root that spans mounts reaches. The loop puts the inotify watch on it
 * (fswatch_start), and inotify_add_watch's permission check asks a FUSE
 * daemon mounted with default_permissions for fresh attributes: a daemon
 * of the client's that never answers would stop the worker's loop, every
 * client on it with it. A file system whose type cannot be read is taken
 * for FUSE.
 */
static int on_fuse(const fs_job *j, int fd)
{
	if (!(fswork_confine_opts(j) & FSCONFINE_CROSS_MOUNTS))
		return 0;
	struct statfs sf;
	return fstatfs(fd, &sf) != 0 || sf.f_type == FSNAMES_FUSE_MAGIC;
}

/* A watch's path confined like any open: its stream carries the O_PATH
 * descriptor the loop puts the inotify watch on (fswatch_start). */
void fsnames_watch_open(fs_job *j)
{
	const char *path = j->r->msg->file_watch_open->path;
	int fd = -1;
	int e = fsconfine_open(j->rootfd, path, O_PATH, 0, fswork_confine_opts(j), &fd);
	if (e || fstat(fd, &j->sb) < 0) {
		fswork_fail(j, e ? e : errno, "watch", NULL, 0);
		goto out;
	}
	if (!S_ISDIR(j->sb.st_mode) && !S_ISREG(j->sb.st_mode)) {
		fswork_fail_code(j, PORTER_E_INVAL, "watch", "not a regular file or a directory");
		goto out;
	}
	if (on_fuse(j, fd)) {
		fswork_fail_code(j, PORTER_E_UNSUPPORTED, "watch",
				 "it is on a FUSE file system, whose daemon a watch would wait on "
				 "(and whose changes inotify sees only when made on this machine)");
		goto out;
	}
	fs_stream *s = fswork_stream_new(j, FSSTREAM_WATCH);
	size_t n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--; /* "dir/" names its entries "dir/x" */
	if (s)
		s->rel = strndup(strcmp(path, ".") ? path : "", n);
	if (!s || !s->rel) {
		fsstream_destroy(s);
		fswork_fail(j, ENOMEM, "watch", NULL, 0);
		goto out;
	}
	s->fd = fd;
	fd = -1;
	s->watch_dir = S_ISDIR(j->sb.st_mode);
	s->root = j->root;
	s->watch_dev = j->sb.st_dev;
	s->watch_ino = j->sb.st_ino;
	j->found = s->watch_dir;
	j->new_stream = s;
out:
	if (fd >= 0)
		close(fd);
}

void fsnames_stat(fs_job *j)
{
	Porter__V1__FileStat *m = j->r->msg->file_stat;
	const char *base = NULL;
	int fd = -1, e;
	if (m->no_follow && m->path[0] && !fsconfine_escapes(m->path)) {
		/* lstat: the parent confined, the last name not followed. A
		 * name such as "." or ".." has no link to report: stat it as
		 * usual below. */
		char *dir = NULL;
		if (fsconfine_split(m->path, &dir, &base) == 0) {
			e = fsconfine_open(j->rootfd, dir, O_PATH | O_DIRECTORY, 0,
					   fswork_confine_opts(j), &fd);
			free(dir);
			if (e) {
				fswork_fail(j, e, "stat", NULL, 1);
				return;
			}
			if ((e = fsconfine_lstat(fd, base, fswork_confine_opts(j), &j->sb)) != 0)
				fswork_fail(j, e, "stat", NULL, 0);
			close(fd);
			return;
		}
	}
	e = fsconfine_open(j->rootfd, m->path, O_PATH, 0, fswork_confine_opts(j), &fd);
	if (e) {
		fswork_fail(j, e, "stat", NULL, 0);
		return;
	}
	if (fstat(fd, &j->sb) < 0)
		fswork_fail(j, errno, "stat", NULL, 0);
	close(fd);
}

/*
 * mkdir -p inside the root: each component is made with mkdirat from the
 * one before and then opened with the same confinement as any path, so a
 * symlink met on the way is followed only while it stays inside.
 */
static void mkdir_parents(fs_job *j, mode_t mode)
{
	if (strlen(j->path) >= PATH_MAX) {
		/* Every other path goes whole to the kernel, which refuses one
		 * this long; made a component at a time, it was a tree as deep
		 * as a frame allows (4 million levels in 16 MiB), a mkdirat
		 * and an openat2 per level on a pool thread. */
		fswork_fail(j, ENAMETOOLONG, "create directory", NULL, 0);
		return;
	}
	char *copy = strdup(j->path);
	if (!copy) {
		fswork_fail(j, ENOMEM, "create directory", NULL, 0);
		return;
	}
	int cur = -1;
	int e = fsconfine_open(j->rootfd, "", O_PATH | O_DIRECTORY, 0, fswork_confine_opts(j),
			       &cur);
	char *save = NULL;
	for (char *c = strtok_r(copy, "/", &save); !e && c; c = strtok_r(NULL, "/", &save)) {
		if (!strcmp(c, "."))
			continue;
		if (fswork_should_stop(j))
			break;
		j->found = 0;
		if (mkdirat(cur, c, mode) == 0)
			j->found = 1;
		else if (errno != EEXIST)
			e = errno;
		int next = -1;
		if (!e)
			e = fsconfine_open(cur, c, O_PATH | O_DIRECTORY, 0, fswork_confine_opts(j),
					   &next);
		close(cur);
		cur = next;
	}
	if (e)
		fswork_fail(j, e, "create directory", NULL, 1);
	if (cur >= 0)
		close(cur);
	free(copy);
}

void fsnames_mkdir(fs_job *j)
{
	Porter__V1__FileMkdir *m = j->r->msg->file_mkdir;
	mode_t mode = fsroot_dir_mode(m->mode);
	if (fsconfine_escapes(m->path)) {
		fswork_fail(j, EXDEV, "create directory", NULL, 0);
		return;
	}
	if (m->parents) {
		mkdir_parents(j, mode);
		return;
	}
	const char *base = NULL;
	int dfd = -1;
	if (fswork_open_parent(j, m->path, O_PATH, "create directory", &dfd, &base))
		return;
	if (mkdirat(dfd, base, mode) < 0)
		fswork_fail(j, errno, "create directory", NULL, 1);
	else
		j->found = 1;
	close(dfd);
}

void fsnames_rename(fs_job *j)
{
	Porter__V1__FileRename *m = j->r->msg->file_rename;
	const char *from = NULL, *to = NULL;
	int fd = -1, td = -1;
	if (fswork_open_parent(j, m->from, O_PATH, "rename", &fd, &from) == 0 &&
	    fswork_open_parent(j, m->to, O_PATH, "rename to", &td, &to) == 0 &&
	    renameat2(fd, from, td, to, m->no_replace ? RENAME_NOREPLACE : 0) < 0) {
		int e = errno;
		if (e == EXDEV) /* both names are inside: two file systems */
			fswork_fail_code(
				j, PORTER_E_FILE_IO, "rename",
				"the two names are on different file systems (copy instead)");
		else if (e == EINVAL) /* not "invalid path or name": both are fine */
			fswork_fail_code(
				j, PORTER_E_INVAL, "rename",
				m->no_replace ? "a directory cannot be moved into itself, or the "
						"file system cannot refuse to replace (no-replace)"
					      : "a directory cannot be moved into itself");
		else if (e == EEXIST || e == ENOTEMPTY || e == EISDIR || e == ENOTDIR)
			/* What is at `to` is in the way: a name taken (no-replace),
			 * a directory with entries, a directory where a file goes,
			 * a file where a directory goes. */
			fswork_fail(j, e, "rename to", m->to, 0);
		else /* both directories are open: ENOENT is `from` itself */
			fswork_fail(j, e, "rename", m->from, 0);
	}
	if (fd >= 0)
		close(fd);
	if (td >= 0)
		close(td);
}
