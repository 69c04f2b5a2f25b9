/*
 * pathwalk - walks a path entry by entry as the kernel resolves it, so a
 * caller can judge who could have changed where it leads: libporter's
 * check of a named socket's path (client/psockdir.c) and porterd's check
 * of its config file (daemon/confsafe.c).
 *
 * Each entry is looked at with lstat. A symlink's target is walked in its
 * place, as the kernel follows it ("/" again for an absolute target), and
 * ".." drops the last entry of the part already resolved, which holds no
 * symlink. At most 40 symlinks (the kernel's own bound). A symlink in
 * /proc is refused: there the kernel follows the descriptor or process a
 * "magic link" stands for, not the text readlink shows (/proc/self/fd/N,
 * /dev/fd/N through /proc/self), so no check of that text would hold. A
 * path ending in "." or ".." is refused too (no entry would be judged
 * last).
 *
 * No state, no allocation; any thread. Uses about 20 KiB of stack.
 */
#ifndef PORTER_PATHWALK_H
#define PORTER_PATHWALK_H

#include <stddef.h>
#include <sys/stat.h>

/* One entry met on the walk; every pointer lives only during the call. */
typedef struct pathwalk_entry {
	const char *at;         /* its path, every symlink before it resolved */
	const struct stat *sb;  /* the entry itself (lstat: a symlink is one) */
	const struct stat *dir; /* the directory holding it */
	int last;               /* 1 when nothing follows it on the path (when it
				 * is a symlink, its target's entries still do) */
} pathwalk_entry;

/* Judges entry `e` for the walk's caller (`ctx` is the caller's): 0 to go
 * on, or -1 after writing the reason into `why` (`cap` bytes). */
typedef int (*pathwalk_fn)(void *ctx, const pathwalk_entry *e, char *why, size_t cap);

/*
 * Walks `path` (not NULL; relative to the current directory unless
 * absolute), calling `fn` for every entry from the first below "/" to the
 * path's last, symlinks followed. Stores the last entry's lstat in `*last`
 * (may be NULL). Returns 0 when `fn` accepted every entry; otherwise -1
 * with the reason in `why` (`cap` bytes, not NULL): `fn`'s, or the walk's
 * own (an entry missing, too many symlinks, a link in /proc, a path too
 * long).
 */
int pathwalk(const char *path, pathwalk_fn fn, void *ctx, struct stat *last, char *why, size_t cap);

#endif
