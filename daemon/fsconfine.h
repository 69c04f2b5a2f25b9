/*
 * fsconfine - confinement of client paths to a directory, and the one place
 * where errno values become PORTER_E_* codes and words.
 *
 * Every path is resolved inside its root with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS). "..", absolute paths,
 * symlinks that lead out and magic links (/proc/self/root ...) fail with
 * EXDEV or ELOOP, which fsconfine_code reads as PORTER_E_FILE_ESCAPE. On a
 * kernel without openat2 (ENOSYS), or with `file-resolve = walk`, the path
 * is walked one component at a time with O_NOFOLLOW; then every ".." and
 * every symlink is refused, even one that stays inside the root.
 *
 * Convention: functions here return 0 or a positive errno value, never a
 * PORTER_E_* code (negative errno values would collide with them: -ENOENT
 * is PORTER_E_NOMEM). fsconfine_code is the only translation.
 *
 * Thread safety: any thread. The resolution method is chosen at start-up
 * (fsconfine_init, main thread) and may switch once to walking if openat2
 * turns out to be missing (an atomic flag).
 */
#ifndef PORTER_FSCONFINE_H
#define PORTER_FSCONFINE_H

#include <sys/types.h>

/*
 * Picks the resolution method from the file-resolve setting (`mode`:
 * "auto" or NULL, or "walk") and probes openat2. Returns 0, or
 * PORTER_E_INVAL after logging a bad setting.
 */
int fsconfine_init(const char *mode);

/* 1 when paths are resolved by walking (no openat2), else 0. */
int fsconfine_walking(void);

/*
 * Opens `path` (not NULL; "" means the directory itself) below the
 * directory `dirfd`, with open(2) `flags` (O_CLOEXEC is added) and `mode`
 * for O_CREAT, never leaving `dirfd`. Stores the new descriptor in `*fd`
 * and returns 0, or returns a positive errno value (EXDEV or ELOOP for an
 * escape). May block on the disk: thread pool.
 */
int fsconfine_open(int dirfd, const char *path, int flags, mode_t mode, int *fd);

/*
 * Whether `path` leaves its root on its face: absolute, or more ".." than
 * names before them ("a/../../x"), whether or not the names exist. 1 or 0.
 */
int fsconfine_escapes(const char *path);

/*
 * Splits `path` into its directory (a new string in `*dir`, "" for the
 * root; the caller frees it) and its last component (`*base`, pointing
 * into `path`). Returns 0, or EXDEV for a final "..", EINVAL for an empty
 * or "." name or a trailing slash, ENOMEM.
 */
int fsconfine_split(const char *path, char **dir, const char **base);

/* The PORTER_E_* code for errno value `e` (positive). */
int fsconfine_code(int e);

/*
 * Words for errno value `e` in a message that already names the operation
 * and the path ("no such file or directory", "the path leaves the root"),
 * never the C library's text (which says "Invalid cross-device link" for
 * an escape). `creating`: the operation creates its target, so ENOENT means
 * a directory on the way is missing. Static storage.
 */
const char *fsconfine_reason(int e, int creating);

#endif
