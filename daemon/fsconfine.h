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
 * Mount points: a path never crosses into another file system mounted
 * inside its root (RESOLVE_NO_XDEV; when walking, each component's mount
 * is compared with its directory's) unless the caller passes
 * FSCONFINE_CROSS_MOUNTS (the root's `mounts` option). A user who can
 * change a directory inside a root outside porterd (a root granted at
 * /home/alice/docs) could otherwise mount a FUSE file system there, and
 * every open, stat and close porterd made below it would wait on her FUSE
 * daemon, holding a pool thread (or the worker loop, in fsfast) shared by
 * every client. Refusing happens on the mount's near side: nothing is
 * asked of the mounted file system. A refused crossing is
 * FSCONFINE_EMOUNT, an escape (PORTER_E_FILE_ESCAPE) in its own words.
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

#include <errno.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>

/* What older C library and kernel headers lack (openat2: Linux 5.6;
 * RESOLVE_CACHED: 5.12); the kernel answers ENOSYS or EINVAL then. */
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef RESOLVE_CACHED
#define RESOLVE_CACHED 0x20
#endif

/* Options of fsconfine_open and fsconfine_lstat. */
#define FSCONFINE_CROSS_MOUNTS 1u /* may cross mount points below the directory */

/* The errno value of a path refused because it crosses a mount point
 * (never returned with FSCONFINE_CROSS_MOUNTS). EREMOTE, "object is
 * remote": no call here returns it otherwise (a network file system might,
 * for what is then indeed another file system). */
#define FSCONFINE_EMOUNT EREMOTE

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
 * for O_CREAT, never leaving `dirfd` and, unless `opts` has
 * FSCONFINE_CROSS_MOUNTS, never crossing a mount point below it. Stores
 * the new descriptor in `*fd` and returns 0, or returns a positive errno
 * value (EXDEV or ELOOP for an escape, FSCONFINE_EMOUNT for a mount
 * point). May block on the disk: thread pool.
 */
int fsconfine_open(int dirfd, const char *path, int flags, mode_t mode, unsigned opts, int *fd);

/*
 * lstat(2) of the entry `name` (one component: no '/', not "" nor "..")
 * of the directory `dirfd`, into `*sb`: a symlink is reported itself. A
 * mount point gives FSCONFINE_EMOUNT unless `opts` has
 * FSCONFINE_CROSS_MOUNTS (fstatat would ask the mounted file system: its
 * root's attributes). Returns 0 or a positive errno value. Thread pool.
 */
int fsconfine_lstat(int dirfd, const char *name, unsigned opts, struct stat *sb);

/* The mount id of descriptor `fd` (as /proc/self/mountinfo numbers
 * mounts), read from /proc/self/fdinfo, which asks nothing of the file's
 * file system; -1 without /proc. Any thread. */
long fsconfine_mount_id(int fd);

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
