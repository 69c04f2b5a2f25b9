/*
 * inbox - the only way work crosses from one thread to a worker loop: a
 * mutex-protected queue plus a uv_async_t doorbell.
 *
 * inbox_push() may be called from any thread. uv_async_send() coalesces, so
 * every wake-up drains the whole queue. The owner closes the inbox on its own
 * loop thread; after that, pushes fail and the sender keeps its message, so
 * nobody ever signals an async handle that is closing.
 */
#ifndef PORTER_INBOX_H
#define PORTER_INBOX_H

#include <pthread.h>
#include <uv.h>

typedef struct inbox_msg inbox_msg;

/*
 * A message. Senders embed it first in a larger struct and allocate that on
 * the heap; ownership passes to the inbox on a successful push. `run` is
 * called on the owner's loop thread and takes ownership (it frees the
 * message). `drop` frees an undelivered message when the inbox closes with
 * it still queued.
 */
struct inbox_msg {
	inbox_msg *next;
	void (*run)(void *owner, inbox_msg *m);
	void (*drop)(inbox_msg *m);
};

typedef struct inbox {
	pthread_mutex_t mu;
	inbox_msg *head, *tail; /* guarded by mu */
	int closed;             /* guarded by mu */
	uv_async_t async;       /* owned; belongs to the owner's loop */
	void *owner;            /* passed to run() */
} inbox;

/* Initialises `ib` on `loop` (before the loop's thread runs it). 0 or <0. */
int inbox_init(inbox *ib, uv_loop_t *loop, void *owner);

/*
 * Queues `m` and rings the doorbell. Returns 0 (the inbox owns `m`), or
 * PORTER_E_SHUTDOWN when the inbox is closed (the caller still owns `m`).
 * Any thread.
 */
int inbox_push(inbox *ib, inbox_msg *m);

/*
 * Closes the inbox on its owner's thread: refuses further pushes, drops the
 * queued messages and closes the async handle; `cb` runs when it is closed
 * (may be NULL).
 */
void inbox_close(inbox *ib, uv_close_cb cb);

/* Destroys the mutex once the handle is closed and no thread can push. */
void inbox_destroy(inbox *ib);

#endif
