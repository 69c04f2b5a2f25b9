/* psockdir - who could have bound a named socket; see psockdir.h. */
#include "psockdir.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pathwalk.h"

static int caller_or_root(uid_t u)
{
	return u == 0 || u == getuid() || u == geteuid();
}

/*
 * Whether entry `e` may be on the path of a daemon of uid *(uid_t *)ctx:
 * -1 with the reason in `why` if not (pathwalk_fn).
 */
static int entry_ok(void *ctx, const pathwalk_entry *e, char *why, size_t cap)
{
	uid_t daemon = *(const uid_t *)ctx;
	mode_t dmode = e->dir->st_mode;
	if (e->last && !S_ISLNK(e->sb->st_mode)) {
		/* The socket: nobody but its directory's owner may add a
		 * name there, sticky or not. */
		if (!(dmode & (S_IWGRP | S_IWOTH)))
			return 0;
		const char *slash = strrchr(e->at, '/');
		int dlen = slash && slash != e->at ? (int)(slash - e->at) : 1;
		snprintf(why, cap,
			 "others may write %.*s: anyone could have bound that name (put another "
			 "user's socket in a directory of its own)",
			 dlen, e->at);
		return -1;
	}
	if ((dmode & (S_IWGRP | S_IWOTH)) &&
	    !((dmode & S_ISVTX) && caller_or_root(e->sb->st_uid))) {
		snprintf(why, cap,
			 "%s (uid %u) is in a directory others may write: anyone could have "
			 "made it",
			 e->at, (unsigned)e->sb->st_uid);
		return -1;
	}
	if (S_ISLNK(e->sb->st_mode))
		return 0; /* its target is walked next */
	if (!S_ISDIR(e->sb->st_mode)) {
		snprintf(why, cap, "%s is not a directory", e->at);
		return -1;
	}
	if (!caller_or_root(e->sb->st_uid) && e->sb->st_uid != daemon) {
		snprintf(why, cap, "%s belongs to uid %u, who could have bound the name", e->at,
			 (unsigned)e->sb->st_uid);
		return -1;
	}
	return 0;
}

int psockdir_check(const char *path, uid_t daemon, char *why, size_t cap)
{
	return pathwalk(path, entry_ok, &daemon, NULL, why, cap);
}
