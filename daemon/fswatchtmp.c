/* fswatchtmp - porterd's unnamed temp files in watch events; see
 * fswatchtmp.h. */
#include "fswatchtmp.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fsconfine.h"
#include "fsroot.h"

/* Whether `s` is one or more decimal digits and nothing more. */
static int all_digits(const char *s)
{
	size_t i = 0;
	for (; s[i]; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return i > 0;
}

/* No openat2 RESOLVE_CACHED (before Linux 5.12): set once, by any loop. */
static atomic_int no_cached_lookup;

/* openat2 of `path` below `dir` from the kernel's lookup cache alone
 * (RESOLVE_CACHED: EAGAIN instead of anything that could wait on the disk
 * or on a remote file system, so it may run on the loop), confined as
 * fsconfine confines (RESOLVE_NO_XDEV unless `root` may span mounts).
 * Returns the descriptor, or -1 with errno set. */
static int open_cached(const fsroot *root, int dir, const char *path, int flags)
{
	struct open_how how;
	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)(flags | O_PATH | O_CLOEXEC);
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_CACHED |
		      (root->cross_mounts ? 0 : RESOLVE_NO_XDEV);
	long fd = syscall(SYS_openat2, dir, path, &how, sizeof(how));
	if (fd < 0 && (errno == ENOSYS || errno == EINVAL))
		atomic_store(&no_cached_lookup, 1);
	return fd < 0 ? -1 : (int)fd;
}

/* Whether the directory `s` watches has an entry `name` in the kernel's
 * lookup cache: 1 when it has (a mount point too: refused, but there), 0
 * when it has not, or when that cannot be told without waiting. */
static int entry_cached(const fs_stream *s, const char *name)
{
	if (!s->watch_dir || !s->root || s->root->fd < 0 || atomic_load(&no_cached_lookup))
		return 0;
	const char *rel = s->rel ? s->rel : "";
	char path[PATH_MAX + 16];
	int n;
	if (s->root->per_user)
		n = snprintf(path, sizeof(path), "%u%s%s", (unsigned)s->uid, rel[0] ? "/" : "",
			     rel);
	else
		n = snprintf(path, sizeof(path), "%s", rel[0] ? rel : ".");
	if (n < 0 || (size_t)n >= sizeof(path))
		return 0;
	int dir = open_cached(s->root, s->root->fd, path, O_DIRECTORY);
	if (dir < 0)
		return 0;
	int found = 0;
	/* By its cached attributes: fstat would ask a FUSE daemon for fresh
	 * ones (in a root that spans mounts), which may never answer. */
	struct statx sx;
	if (statx(dir, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_INO, &sx) < 0 ||
	    makedev(sx.stx_dev_major, sx.stx_dev_minor) != s->watch_dev ||
	    sx.stx_ino != s->watch_ino)
		goto out; /* not the directory watched: cannot tell */
	int fd = open_cached(s->root, dir, name, O_NOFOLLOW);
	if (fd >= 0)
		close(fd);
	found = fd >= 0 || errno == EXDEV;
out:
	close(dir);
	return found;
}

int fswatchtmp_unnamed(const fs_stream *s, const char *name)
{
	return name[0] == '#' && all_digits(name + 1) && !entry_cached(s, name);
}
