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
 * her choosing (a guess holds with odds of 2^-64). Names made by an earlier
 * run of porterd do not verify: left over after a crash, they are a
 * client-visible file like any other.
 *
 * Form: ".porter-" + 16 hex digits (nonce) + 16 hex digits (tag) + ".tmp".
 *
 * Thread safe, any thread: the key is drawn once (pthread_once).
 */
#ifndef PORTER_TMPNAME_H
#define PORTER_TMPNAME_H

#include <stddef.h>

/* Bytes of a name, its terminating NUL included. */
#define TMPNAME_SIZE (sizeof(".porter-") - 1 + 32 + sizeof(".tmp"))

/* Writes a new name into `out` (TMPNAME_SIZE bytes at least). Returns 0,
 * or EAGAIN when the kernel gives no random bytes (for the key or the
 * nonce): `out` is then "". */
int tmpname_make(char out[TMPNAME_SIZE]);

/* Whether `name` (a file name, not NULL) is one tmpname_make of this run
 * of porterd made. */
int tmpname_is_ours(const char *name);

#endif
