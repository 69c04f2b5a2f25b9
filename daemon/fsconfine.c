/* fsconfine - paths confined to a root; errno to PORTER_E_*; see fsconfine.h. */
#include "fsconfine.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "porter_errors.h"

static atomic_int walk; /* resolve by walking (no openat2) */

/* The mount id of descriptor `fd`, from /proc/self/fdinfo, which asks
 * nothing of the file's file system (fstat and statx would: a FUSE
 * daemon's answer), or -1. */
long fsconfine_mount_id(int fd)
{
	char p[48], buf[512];
	snprintf(p, sizeof(p), "/proc/self/fdinfo/%d", fd);
	int f = open(p, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return -1;
	ssize_t n = read(f, buf, sizeof(buf) - 1);
	close(f);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	const char *m = strstr(buf, "\nmnt_id:");
	return m ? strtol(m + 8, NULL, 10) : -1;
}

/* Whether `fd` is on the mount of the directory `dirfd`: 1 or 0. Without
 * /proc, by device numbers (fstat: the file system is asked). */
static int same_mount(int dirfd, int fd)
{
	long a = fsconfine_mount_id(dirfd), b = fsconfine_mount_id(fd);
	if (a >= 0 && b >= 0)
		return a == b;
	struct stat x, y;
	return fstat(dirfd, &x) == 0 && fstat(fd, &y) == 0 && x.st_dev == y.st_dev;
}

/* For the walk: -FSCONFINE_EMOUNT (and `fd` closed) when `fd` is not on
 * the mount of `dirfd` and `opts` does not allow crossing, else 0. */
static int walk_check_mount(int dirfd, int fd, unsigned opts)
{
	if ((opts & FSCONFINE_CROSS_MOUNTS) || same_mount(dirfd, fd))
		return 0;
	close(fd);
	return -FSCONFINE_EMOUNT;
}

/* Tries of open_last when the name keeps appearing and going. */
#define LAST_TRIES 8

/*
 * The walk's last step, where mount points are not crossed: the name
 * `last` in the directory `cur` opened with `flags` (and `mode`), as the
 * very object whose mount was checked. It is first opened O_PATH |
 * O_NOFOLLOW (nothing is asked of a file system mounted there) and its
 * mount compared with the directory's; then that descriptor is opened
 * again as asked through /proc/self/fd, which reaches the object it holds
 * and nothing mounted on its name since. (Checking the name and then
 * opening the name, a mount placed on it in between was entered: an open
 * of a directory a stalled FUSE daemon had just covered waited on it.) A
 * name that is not there is created with O_EXCL, so that whatever
 * appeared there meanwhile is never opened, and looked at again. Returns
 * a descriptor or -errno.
 */
static int open_last(int cur, const char *last, int flags, mode_t mode, unsigned opts)
{
	for (int tries = 0; tries < LAST_TRIES; tries++) {
		int pf = openat(cur, last, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (pf < 0) {
			if (errno != ENOENT || !(flags & O_CREAT))
				return -errno;
			int fd = openat(cur, last, flags | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
			if (fd >= 0)
				return fd;
			if (errno != EEXIST || (flags & O_EXCL))
				return -errno;
			continue; /* made meanwhile: look again */
		}
		int rc = walk_check_mount(cur, pf, opts);
		if (rc)
			return rc;
		struct stat sb;
		if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL))
			rc = -EEXIST;
		else if (fstat(pf, &sb) < 0)
			rc = -errno;
		else if (S_ISLNK(sb.st_mode))
			rc = -ELOOP; /* never followed when walking */
		if (rc) {
			close(pf);
			return rc;
		}
		char p[48];
		snprintf(p, sizeof(p), "/proc/self/fd/%d", pf);
		int fd = open(p, (flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW)) | O_CLOEXEC);
		rc = fd < 0 ? -errno : fd;
		close(pf);
		if (rc == -ENOENT && fsconfine_mount_id(cur) < 0) {
			/* No /proc: the name it is (same_mount compared
			 * device numbers instead). */
			fd = openat(cur, last, flags | O_NOFOLLOW | O_CLOEXEC, mode);
			rc = fd < 0 ? -errno : fd;
		}
		return rc;
	}
	return -EEXIST;
}

/*
 * Fallback resolution: walks `path` below `rootfd` one component at a
 * time, refusing "..", absolute paths and every symlink, and (unless
 * `opts` allows it) every mount point: each component is opened O_PATH,
 * which asks nothing of a file system mounted there, and compared with
 * its directory's mount before anything is looked up in it. Returns an fd
 * or -errno (private to this file; fsconfine_open turns it around).
 */
static int walk_open(int rootfd, const char *path, int flags, mode_t mode, unsigned opts)
{
	if (path[0] == '/')
		return -EXDEV;
	char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	int cur = openat(rootfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	int rc = cur < 0 ? -errno : 0;
	char *save = NULL, *comp = strtok_r(copy, "/", &save);
	char *last = NULL;

	while (rc == 0 && comp) {
		char *next = strtok_r(NULL, "/", &save);
		if (strcmp(comp, "..") == 0) {
			rc = -EXDEV;
			break;
		}
		if (strcmp(comp, ".") == 0) {
			comp = next;
			continue;
		}
		if (!next) {
			last = comp;
			break;
		}
		int nfd = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0) {
			struct stat sb;
			rc = -errno;
			if (rc == -ENOTDIR && fsconfine_lstat(cur, comp, opts, &sb) == 0 &&
			    S_ISLNK(sb.st_mode))
				rc = -ELOOP;
			break;
		}
		if ((rc = walk_check_mount(cur, nfd, opts)) != 0)
			break;
		close(cur);
		cur = nfd;
		comp = next;
	}
	int fd = -1;
	if (rc == 0 && last && !(opts & FSCONFINE_CROSS_MOUNTS)) {
		rc = open_last(cur, last, flags, mode, opts);
		fd = rc >= 0 ? rc : -1;
		rc = rc >= 0 ? 0 : rc;
	} else if (rc == 0) {
		fd = openat(cur, last ? last : ".", flags | O_NOFOLLOW | O_CLOEXEC, mode);
		struct stat lsb;
		if (fd < 0) {
			rc = -errno;
			/* O_DIRECTORY | O_NOFOLLOW on a symlink says ENOTDIR. */
			if (rc == -ENOTDIR && last && fsconfine_lstat(cur, last, opts, &lsb) == 0 &&
			    S_ISLNK(lsb.st_mode))
				rc = -ELOOP;
		} else if (flags & O_PATH) {
			/* O_PATH | O_NOFOLLOW opens the link itself. */
			struct stat sb;
			if (fstat(fd, &sb) == 0 && S_ISLNK(sb.st_mode)) {
				close(fd);
				fd = -1;
				rc = -ELOOP;
			}
		}
	}
	if (cur >= 0)
		close(cur);
	free(copy);
	return rc < 0 ? rc : fd;
}

/* Checked before any lookup so that "a/../../x" is an escape whether or not
 * "a" exists; the kernel checks the rest. */
int fsconfine_escapes(const char *path)
{
	if (path[0] == '/')
		return 1;
	long depth = 0;
	const char *p = path;
	while (*p) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (--depth < 0)
				return 1;
		} else if (n && !(n == 1 && p[0] == '.')) {
			depth++;
		}
		p += n;
		if (*p)
			p++;
	}
	return 0;
}

/* O_PATH resolution of `path` below `dirfd` with `resolve`: 0 or errno. */
static int resolves(int dirfd, const char *path, uint64_t resolve)
{
	struct open_how how;
	memset(&how, 0, sizeof(how));
	how.flags = O_PATH | O_CLOEXEC;
	how.resolve = resolve;
	long r = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	if (r < 0)
		return errno;
	close((int)r);
	return 0;
}

/* Tries of an openat2 refused with EXDEV where no mount and no escape is
 * found right after (a mount that went meanwhile). */
#define EXDEV_TRIES 3

/*
 * openat2 says EXDEV both for a path that leaves its root and for one that
 * crosses a mount point under RESOLVE_NO_XDEV. Resolved again scoped to
 * the root (RESOLVE_IN_ROOT: "..", absolute symlinks and links that point
 * out stay inside, so nothing leaves), still refusing mounts, and O_PATH
 * (nothing is opened for I/O nor created): EXDEV again means that a mount
 * point is on the way. Otherwise, when the path now resolves beneath the
 * root without crossing anything, the mount that refused it has gone
 * meanwhile (one mounted and unmounted over and over): -1, to open it
 * again (it was called "the path leaves the root"). Only after a refusal,
 * so it costs nothing else.
 */
static int exdev_reason(int dirfd, const char *path)
{
	const uint64_t safe = RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
	if (resolves(dirfd, path, RESOLVE_IN_ROOT | safe) == EXDEV)
		return FSCONFINE_EMOUNT;
	return resolves(dirfd, path, RESOLVE_BENEATH | safe) == EXDEV ? EXDEV : -1;
}

int fsconfine_open(int dirfd, const char *path, int flags, mode_t mode, unsigned opts, int *fd)
{
	if (!path[0])
		path = ".";
	if (fsconfine_escapes(path))
		return EXDEV;
	int cross = (opts & FSCONFINE_CROSS_MOUNTS) != 0;
	for (int tries = 0; !atomic_load(&walk); tries++) {
		struct open_how how;
		memset(&how, 0, sizeof(how));
		how.flags = (uint64_t)(flags | O_CLOEXEC);
		how.mode = (flags & O_CREAT) ? mode : 0;
		how.resolve =
			RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | (cross ? 0 : RESOLVE_NO_XDEV);
		long r = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
		if (r >= 0) {
			*fd = (int)r;
			return 0;
		}
		if (errno == EXDEV && !cross) {
			int why = exdev_reason(dirfd, path);
			if (why >= 0 || tries + 1 >= EXDEV_TRIES)
				return why >= 0 ? why : FSCONFINE_EMOUNT;
			continue;
		}
		if (errno != ENOSYS)
			return errno;
		atomic_store(&walk, 1);
		log_warn("openat2 is not available: resolving paths by walking them");
	}
	int r = walk_open(dirfd, path, flags, mode, opts);
	if (r < 0)
		return -r;
	*fd = r;
	return 0;
}

int fsconfine_lstat(int dirfd, const char *name, unsigned opts, struct stat *sb)
{
	if (!name[0] || strchr(name, '/') || !strcmp(name, ".."))
		return EINVAL;
	if (opts & FSCONFINE_CROSS_MOUNTS)
		return fstatat(dirfd, name, sb, AT_SYMLINK_NOFOLLOW) < 0 ? errno : 0;
	/* O_PATH | O_NOFOLLOW opens a symlink itself and asks nothing of a
	 * file system mounted at the name; its fstat is then the lstat. */
	int fd;
	if (!atomic_load(&walk)) {
		struct open_how how;
		memset(&how, 0, sizeof(how));
		how.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
		how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
		long r = syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
		/* One name, not "..": EXDEV can only be a mount point. */
		if (r < 0)
			return errno == EXDEV ? FSCONFINE_EMOUNT : errno;
		fd = (int)r;
	} else {
		fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return errno;
		int e = walk_check_mount(dirfd, fd, opts);
		if (e)
			return -e;
	}
	int e = fstat(fd, sb) < 0 ? errno : 0;
	close(fd);
	return e;
}

int fsconfine_split(const char *path, char **dir, const char **base)
{
	size_t n = strlen(path);
	while (n > 0 && path[n - 1] == '/')
		n--;
	size_t b = n;
	while (b > 0 && path[b - 1] != '/')
		b--;
	size_t blen = n - b;
	if (blen == 0 || (blen == 1 && path[b] == '.'))
		return EINVAL;
	if (blen == 2 && path[b] == '.' && path[b + 1] == '.')
		return EXDEV;
	if (n != strlen(path))
		return EINVAL; /* a trailing slash names a directory */
	*dir = strndup(path, b);
	if (!*dir)
		return ENOMEM;
	*base = path + b;
	return 0;
}

int fsconfine_code(int e)
{
	switch (e) {
	case ENOENT:
		return PORTER_E_FILE_NOT_FOUND;
	case EACCES:
	case EPERM:
	case EROFS:
	case ETXTBSY:
		return PORTER_E_FILE_PERM;
	case EISDIR:
		return PORTER_E_FILE_ISDIR;
	case EEXIST:
	case ENOTEMPTY:
		return PORTER_E_FILE_EXISTS;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return PORTER_E_FILE_NOSPACE;
	case EXDEV:
	case ELOOP:
	case FSCONFINE_EMOUNT:
		return PORTER_E_FILE_ESCAPE;
	case ENOTDIR:
		return PORTER_E_FILE_NOTDIR;
	case ENAMETOOLONG:
	case EINVAL:
		return PORTER_E_INVAL;
	case ENOMEM:
		return PORTER_E_NOMEM;
	default:
		return PORTER_E_FILE_IO;
	}
}

const char *fsconfine_reason(int e, int creating)
{
	switch (e) {
	case ENOENT:
		return creating ? "no such directory" : "no such file or directory";
	case EACCES:
	case EPERM:
		return "permission denied";
	case EROFS:
		return "read-only file system";
	case ETXTBSY:
		return "file busy";
	case EISDIR:
		return "is a directory";
	case EEXIST:
		return "already exists";
	case ENOTEMPTY:
		return "directory not empty";
	case ENOSPC:
	case EDQUOT:
		return "no space left";
	case EFBIG:
		return "file too large";
	case EXDEV:
		return "the path leaves the root";
	case ELOOP:
		return "the path leaves the root or crosses a symlink that may not be followed";
	case FSCONFINE_EMOUNT:
		return "it is on another file system (a mount point inside the root), which porterd "
		       "does not enter unless the root has the file-roots option 'mounts'";
	case ENOTDIR:
		return "a component of the path is not a directory";
	case ENAMETOOLONG:
		return "name too long";
	case EINVAL:
		return "invalid path or name";
	case ENOMEM:
		return "out of memory";
	case ENXIO:
		return "no reader on the other end";
	case EIO:
		return "input/output error";
	default:
		return "file system error";
	}
}

int fsconfine_walking(void)
{
	return atomic_load(&walk);
}

int fsconfine_init(const char *mode)
{
	if (mode && !strcmp(mode, "walk")) {
		atomic_store(&walk, 1);
	} else if (mode && strcmp(mode, "auto") != 0) {
		log_error("file-resolve: expected auto or walk, got '%s'", mode);
		return PORTER_E_INVAL;
	} else {
		atomic_store(&walk, 0);
		struct open_how how = {.flags = O_PATH | O_CLOEXEC,
				       .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
		long fd = syscall(SYS_openat2, AT_FDCWD, ".", &how, sizeof(how));
		if (fd >= 0)
			close((int)fd);
		else if (errno == ENOSYS)
			atomic_store(&walk, 1);
	}
	log_info("file paths are confined with %s",
		 atomic_load(&walk) ? "a component walk (O_NOFOLLOW; no symlinks, no '..')"
				    : "openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)");
	return 0;
}
