/* psockdir - who could have bound a named socket; see psockdir.h. */
#include "psockdir.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Symlinks followed on one path at most (the kernel's own bound). */
#define MAX_LINKS 40

static int caller_or_root(uid_t u)
{
	return u == 0 || u == getuid() || u == geteuid();
}

/*
 * Whether entry `sb` (at `at`, just below directory `psb`) may be on the
 * path of a daemon of uid `daemon`: -1 with the reason in `why` if not.
 */
static int entry_ok(const char *at, const struct stat *sb, const struct stat *psb, uid_t daemon,
		    char *why, size_t cap)
{
	if ((psb->st_mode & (S_IWGRP | S_IWOTH)) &&
	    !((psb->st_mode & S_ISVTX) && caller_or_root(sb->st_uid))) {
		snprintf(why, cap,
			 "%s (uid %u) is in a directory others may write: anyone could have "
			 "made it",
			 at, (unsigned)sb->st_uid);
		return -1;
	}
	if (S_ISLNK(sb->st_mode))
		return 0; /* its target is walked next */
	if (!S_ISDIR(sb->st_mode)) {
		snprintf(why, cap, "%s is not a directory", at);
		return -1;
	}
	if (!caller_or_root(sb->st_uid) && sb->st_uid != daemon) {
		snprintf(why, cap, "%s belongs to uid %u, who could have bound the name", at,
			 (unsigned)sb->st_uid);
		return -1;
	}
	return 0;
}

/* Drops the last component of resolved path `res` ("" is "/"). */
static void pop(char *res)
{
	char *s = strrchr(res, '/');
	if (s)
		*s = '\0';
}

int psockdir_check(const char *path, uid_t daemon, char *why, size_t cap)
{
	/* `rest` holds what is still to walk, `res` the walked part with
	 * every symlink resolved ("" for "/"). */
	char rest[PATH_MAX], res[PATH_MAX], at[PATH_MAX], link[PATH_MAX];
	int n;
	if (path[0] == '/') {
		n = snprintf(rest, sizeof(rest), "%s", path);
	} else {
		if (!getcwd(res, sizeof(res))) {
			snprintf(why, cap, "the current directory cannot be read: %s",
				 strerror(errno));
			return -1;
		}
		n = snprintf(rest, sizeof(rest), "%s/%s", res, path);
	}
	if (n < 0 || (size_t)n >= sizeof(rest)) {
		snprintf(why, cap, "the path is too long to check");
		return -1;
	}
	/* The socket's own name is not walked: its directory is. */
	char *slash = strrchr(rest, '/');
	*slash = '\0';
	res[0] = '\0';
	struct stat psb, sb;
	snprintf(at, sizeof(at), "/");
	if (lstat("/", &psb) < 0)
		goto gone;
	int links = 0;
	char *p = rest;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		char *e = strchr(p, '/');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		char *next = e ? e + 1 : p + len;
		if (len == 1 && p[0] == '.') {
			p = next;
			continue;
		}
		if (len == 2 && p[0] == '.' && p[1] == '.') {
			pop(res); /* `res` has no symlinks: ".." is its parent */
			snprintf(at, sizeof(at), "%s", res[0] ? res : "/");
			if (lstat(at, &psb) < 0)
				goto gone;
			p = next;
			continue;
		}
		n = snprintf(at, sizeof(at), "%s/%.*s", res, (int)len, p);
		if (n < 0 || (size_t)n >= sizeof(at)) {
			snprintf(why, cap, "the path is too long to check");
			return -1;
		}
		if (lstat(at, &sb) < 0)
			goto gone;
		if (entry_ok(at, &sb, &psb, daemon, why, cap) < 0)
			return -1;
		if (S_ISLNK(sb.st_mode)) {
			ssize_t k = readlink(at, link, sizeof(link) - 1);
			if (k < 0)
				goto gone;
			link[k] = '\0';
			if (++links > MAX_LINKS) {
				snprintf(why, cap, "too many symlinks on the path");
				return -1;
			}
			/* The target, then what followed the link. */
			char tail[PATH_MAX];
			n = snprintf(tail, sizeof(tail), "%s/%s", link, next);
			if (n < 0 || (size_t)n >= sizeof(tail)) {
				snprintf(why, cap, "the path is too long to check");
				return -1;
			}
			memcpy(rest, tail, (size_t)n + 1);
			if (link[0] == '/') {
				res[0] = '\0';
				snprintf(at, sizeof(at), "/");
				if (lstat("/", &psb) < 0)
					goto gone;
			}
			p = rest;
			continue;
		}
		memcpy(res, at, (size_t)n + 1);
		psb = sb;
		p = next;
	}
	/* The socket's directory: nobody but its owner may add a name. */
	if (psb.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(why, cap,
			 "others may write %s: anyone could have bound that name (put another "
			 "user's socket in a directory of its own)",
			 res[0] ? res : "/");
		return -1;
	}
	return 0;
gone:
	snprintf(why, cap, "%s cannot be checked: %s", at, strerror(errno));
	return -1;
}
