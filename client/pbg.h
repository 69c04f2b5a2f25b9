/*
 * pbg - libporter's background thread, which makes the daemon round trips
 * that functions promising never to wait hand over: the closes behind
 * porter_*_free and the Cancel of porter_cancel_nowait.
 *
 * One thread per process, started on the first submission, detached, with
 * every signal blocked and its own daemon connection (a thread-local pconn
 * like any other, closed whenever the queue runs empty, so an idle process
 * holds no extra connection). Jobs run one at a time in submission order, each bounded
 * by PBG_JOB_TIMEOUT_MS, so a stopped daemon delays the queue but never a
 * caller. A forked child starts with an empty queue and no thread (the
 * parent's jobs name the parent's client instance).
 */
#ifndef PORTER_CLIENT_PBG_H
#define PORTER_CLIENT_PBG_H

#include <stdint.h>

/* How long one job may wait for the daemon. */
#define PBG_JOB_TIMEOUT_MS 1000
/* Jobs queued at most; past it a job is dropped (its arg freed unrun):
 * what it would have told the daemon, the daemon also learns when the
 * connection or stream idles out. */
#define PBG_MAX_QUEUED 4096

/*
 * Queues fn(arg) for the background thread, which then frees `arg` with
 * free(). Never blocks (beyond a short mutex hold). Takes `arg` (malloc'd,
 * not NULL) in every case: on failure it is freed unrun and the return is
 * PORTER_E_NOMEM (no memory, no thread, or the queue is full); 0 when
 * queued. Thread safe.
 */
int pbg_submit(void (*fn)(void *arg), void *arg);

/*
 * Queues fn(id, PBG_JOB_TIMEOUT_MS) for the background thread: the close of
 * stream `id` that a *_free hands over. Does nothing when `id` is 0. Never
 * blocks; on failure (as pbg_submit's) the close is dropped, and the
 * daemon's idle timeout ends the stream instead. Thread safe.
 */
void pbg_submit_id(int (*fn)(uint64_t id, int timeout_ms), uint64_t id);

#endif
