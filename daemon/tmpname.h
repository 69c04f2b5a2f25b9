/*
 * tmpname - the names of porterd's own temp files (an atomic write's,
 * fswork.c), made so that a watcher (fswatch.c) can tell them from a
 * client's file and nobody else can make one.
 *
 * A watch does not report an atomic write's temp file, only the rename
 * over its target. Recognising temp files by the form of their names let
 * any client sharing a directory hide a file's whole life from other
 * watchers by naming it that way. So a name carries 64 random bits and a
 * tag: SipHash-2-4 of those bits under a key porterd draws from the
 * kernel's CSPRNG once per run and never shows. A client sees the names
 * of her own atomic writes, but without the key she cannot tag a nonce of
 * her choosing (a guess holds with odds of 2^-64); a name she saw is
 * porterd's only until porterd is done with it (tmpname_state, below), so
 * she cannot use it again to hide a file of hers. Names made by an earlier
 * run of porterd do not verify: left over after a crash, they are a
 * client-visible file like any other.
 *
 * Form: ".porter-" + 16 hex digits (nonce) + 16 hex digits (tag) + ".tmp".
 *
 * Thread safe, any thread: the key is drawn once (pthread_once), the
 * record of names is under a mutex.
 */
#ifndef PORTER_TMPNAME_H
#define PORTER_TMPNAME_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of a name, its terminating NUL included. */
#define TMPNAME_SIZE (sizeof(".porter-") - 1 + 32 + sizeof(".tmp"))

/* Writes a new name into `out` (TMPNAME_SIZE bytes at least). Returns 0,
 * or EAGAIN when the kernel gives no random bytes (for the key or the
 * nonce): `out` is then "". */
int tmpname_make(char out[TMPNAME_SIZE]);

/* Whether `name` (a file name, not NULL) is one tmpname_make of this run
 * of porterd made: its tag verifies. A client who saw such a name (the
 * temp file of her own atomic write) can name a file of hers that way
 * again, so a watcher asks tmpname_state instead. */
int tmpname_is_ours(const char *name);

/*
 * Each name is porterd's once. tmpname_make records it as live;
 * tmpname_retire says porterd is done with it (renamed over its target,
 * unlinked, or never used), and from then on a file of that name is a
 * client's: a watcher that saw porterd's last event of the name reports
 * later ones (a client replaying it), and one whose watch began after the
 * retirement reports them all. A retired name is remembered for
 * TMPNAME_RETAIN_MS (at most TMPNAME_RETIRED_MAX of them), then it is
 * foreign like any other: porterd's own events of it still unread by then
 * are reported, never a client's hidden.
 */
#define TMPNAME_RETAIN_MS 60000u
#define TMPNAME_RETIRED_MAX 65536u

enum tmpname_state {
	TMPNAME_FOREIGN, /* not a name porterd holds or recently held */
	TMPNAME_LIVE,    /* porterd's temp file may carry it now */
	TMPNAME_RETIRED, /* porterd is done with it (at *retired_ms) */
};

/* The state of `name` (not NULL); for a name that is not foreign, its
 * nonce in `*nonce` and, retired, when (tmpname_now_ms) in `*retired_ms`
 * and its place in the order of retirements (tmpname_retired_count) in
 * `*retired_seq` (unless NULL). */
enum tmpname_state tmpname_state(const char *name, uint64_t *nonce, uint64_t *retired_ms,
				 uint64_t *retired_seq);

/* The state of the name whose nonce is `nonce`, as tmpname_state; its
 * place in the order of retirements in `*retired_seq` when retired. */
enum tmpname_state tmpname_nonce_state(uint64_t nonce, uint64_t *retired_seq);

/*
 * How many names were retired so far in this run: the k-th retirement
 * gives its name the retired_seq k. A name is retired after porterd's
 * last system call on it has returned, so once this count reads k, every
 * inotify event porterd's own use of the names retired up to k caused is
 * queued (a watcher that then reads its queue to the end has them all).
 */
uint64_t tmpname_retired_count(void);

/* The directory (device and inode) porterd gives the temp file of
 * `name` (made by tmpname_make) in, said before the name is used there:
 * a watch of another directory takes a file of that name for a
 * client's. */
void tmpname_place(const char *name, uint64_t dir_dev, uint64_t dir_ino);

/* 0 when the name of `nonce` was placed (tmpname_place) in a directory
 * other than (dir_dev, dir_ino); 1 when in that one, or not placed. */
int tmpname_in_dir(uint64_t nonce, uint64_t dir_dev, uint64_t dir_ino);

/* porterd is done with `name` (made by tmpname_make; anything else, or
 * "", is ignored). */
void tmpname_retire(const char *name);

/* The clock of retirements: monotonic milliseconds. */
uint64_t tmpname_now_ms(void);

#endif
