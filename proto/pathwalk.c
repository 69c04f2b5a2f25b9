/* pathwalk - a path's entries as the kernel resolves it; see pathwalk.h. */
#include "pathwalk.h"

#include <errno.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

/* Symlinks followed on one path at most (the kernel's own bound). */
#define MAX_LINKS 40

/* Drops the last component of resolved path `res` ("" is "/"). */
static void pop(char *res)
{
	char *s = strrchr(res, '/');
	if (s)
		*s = '\0';
}

static int too_long(char *why, size_t cap)
{
	snprintf(why, cap, "the path is too long to check");
	return -1;
}

/* Replaces `rest` with symlink `at`'s target followed by `next` (what came
 * after the link), checking that the link is not one of /proc's, whose
 * directory is `res`. 0, or -1 with the reason. */
static int follow(const char *at, const char *res, const char *next, char *rest, char *why,
		  size_t cap)
{
	struct statfs fs;
	if (statfs(res[0] ? res : "/", &fs) < 0) {
		snprintf(why, cap, "%s: %s", at, strerror(errno));
		return -1;
	}
	if (fs.f_type == PROC_SUPER_MAGIC) {
		snprintf(why, cap,
			 "%s is a link of /proc: the kernel follows what it stands for, not "
			 "its text",
			 at);
		return -1;
	}
	char link[PATH_MAX], tail[PATH_MAX];
	ssize_t k = readlink(at, link, sizeof(link) - 1);
	if (k < 0) {
		snprintf(why, cap, "%s: %s", at, strerror(errno));
		return -1;
	}
	link[k] = '\0';
	int n = snprintf(tail, sizeof(tail), "%s/%s", link, next);
	if (n < 0 || (size_t)n >= sizeof(tail))
		return too_long(why, cap);
	memcpy(rest, tail, (size_t)n + 1);
	return 0;
}

int pathwalk(const char *path, pathwalk_fn fn, void *ctx, struct stat *last, char *why, size_t cap)
{
	/* `rest` holds what is still to walk, `res` the walked part with
	 * every symlink resolved ("" for "/"). */
	char rest[PATH_MAX], res[PATH_MAX], at[PATH_MAX];
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
	if (n < 0 || (size_t)n >= sizeof(rest))
		return too_long(why, cap);
	res[0] = '\0';
	snprintf(at, sizeof(at), "/");
	struct stat dir, sb;
	if (lstat("/", &dir) < 0)
		goto gone;
	int links = 0, judged = 0; /* judged: the last component was an entry */
	char *p = rest;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		char *e = strchr(p, '/');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		char *next = e ? e + 1 : p + len;
		judged = 0;
		if (len == 1 && p[0] == '.') {
			p = next;
			continue;
		}
		if (len == 2 && p[0] == '.' && p[1] == '.') {
			pop(res); /* `res` has no symlinks: ".." is its parent */
			snprintf(at, sizeof(at), "%s", res[0] ? res : "/");
			if (lstat(at, &dir) < 0)
				goto gone;
			p = next;
			continue;
		}
		n = snprintf(at, sizeof(at), "%s/%.*s", res, (int)len, p);
		if (n < 0 || (size_t)n >= sizeof(at))
			return too_long(why, cap);
		if (lstat(at, &sb) < 0)
			goto gone;
		const char *after = next + strspn(next, "/");
		pathwalk_entry ent = {.at = at, .sb = &sb, .dir = &dir, .last = !*after};
		if (fn(ctx, &ent, why, cap) < 0)
			return -1;
		if (S_ISLNK(sb.st_mode)) {
			if (++links > MAX_LINKS) {
				snprintf(why, cap, "too many symlinks on the path");
				return -1;
			}
			if (follow(at, res, next, rest, why, cap) < 0)
				return -1;
			if (rest[0] == '/') {
				res[0] = '\0';
				snprintf(at, sizeof(at), "/");
				if (lstat("/", &dir) < 0)
					goto gone;
			}
			p = rest;
			continue;
		}
		judged = 1;
		memcpy(res, at, (size_t)n + 1);
		dir = sb;
		p = next;
	}
	if (!judged) {
		snprintf(why, cap, "the path ends in no entry ('/', '.' or '..')");
		return -1;
	}
	if (last)
		*last = dir;
	return 0;
gone:
	snprintf(why, cap, "%s: %s", at, strerror(errno));
	return -1;
}
