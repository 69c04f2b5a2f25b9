/*
 * fswatch - watches: streams of change events (created, modified, deleted,
 * moved) of a file or directory inside a root, read with FileWatchRead.
 *
 * Confinement: the path is resolved inside its root exactly as an open is
 * (fsconfine: openat2 RESOLVE_BENEATH, on the thread pool) into an O_PATH
 * descriptor, and the inotify watch is put on /proc/self/fd/N, a magic
 * link the kernel follows to that very object. So what is watched is the
 * object that was confined, whatever is renamed or swapped in at the path
 * afterwards (a symlink planted after the resolution is never followed).
 * When the watched object itself is deleted or moved, the watch reports it
 * and ends, so it never follows a directory moved elsewhere (out of the
 * root, say). A directory watch reports its entries, not their subtrees.
 *
 * Each worker has one inotify instance per client uid (made on its first
 * watch there, closed with its last) and a poll handle on each: one uid
 * that overflows its instance's kernel queue (fs.inotify.max_queued_events)
 * makes only its own watches report OVERFLOW; other uids' events are not
 * lost. Instances count against porterd's fs.inotify.max_user_instances,
 * so per-uid ones are bounded below it (one per worker and a few kept
 * back); past that bound, further uids share one overflow instance per
 * worker: their watches keep working, without the isolation (refusing
 * them would let a few uids with connections on every worker deny
 * watches to everyone else). Each instance is read one 64 KiB buffer per
 * wake-up. inotify gives the same watch descriptor for the same object in
 * one instance, so watches of one object share it: it is removed with the
 * last of them. Watches count against the fs.inotify.max_user_watches of
 * porterd's uid; file-max-streams-per-uid bounds what one client uid holds
 * (each watch is a file stream), and the kernel's own limit gives
 * PORTER_E_BUSY naming the sysctl.
 *
 * porterd's own atomic writes (fswork.c: an O_TMPFILE file, linked under
 * a temp name, renamed over the target) show in a directory watch as one
 * event, the creation of the target (a replaced file and a new one alike:
 * the kernel does not tell them apart), never as their temp files. The
 * kernel names an O_TMPFILE file '#' and its inode number, which a
 * client's file may also be called: the directory's entry tells them
 * apart (the client's has one), looked up from the root by the watched
 * path (fswatch.c, entry_cached; the stream's root, watch_dev, watch_ino).
 *
 * Memory: each watch queues at most FSWATCH_MAX_EVENTS events (and
 * FSWATCH_MAX_BYTES of names); past it events are dropped and one OVERFLOW
 * event says so (the client should look again). A modification of a name
 * whose last queued event, not yet sent, is already a modification of it is
 * coalesced. Events stay queued until the client acknowledges them (the
 * `ack` of its next read), so a reply lost to a client that gave up waiting
 * is sent again.
 *
 * Loop affinity: everything runs on the owning worker's loop thread.
 */
#ifndef PORTER_FSWATCH_H
#define PORTER_FSWATCH_H

#include <stddef.h>

#include "fsstream.h"
#include "req.h"

struct worker;

#define FSWATCH_MAX_EVENTS 1024
#define FSWATCH_MAX_BYTES (256 * 1024)

/*
 * Starts watching for stream `s` (a published watch stream of `w`, held
 * busy by its open request, with s->fd its O_PATH descriptor, s->rel and
 * s->watch_dir set); s->fd is closed either way. Returns 0 (s->watch set),
 * or a PORTER_E_* code with the reason in `msg` (`cap` bytes).
 */
int fswatch_start(struct worker *w, fs_stream *s, char *msg, size_t cap);

/* Stops and frees a watch (its stream is being destroyed, not busy with a
 * read). NULL is fine. */
void fswatch_stop(struct fswatch *x);

/*
 * Handles a FileWatchRead: forwards it to the watch's worker, or takes the
 * watch and answers with its queued events now, or parks until events
 * arrive or the deadline is near. Finishes `r` exactly once.
 */
void fswatch_handle_read(req *r);

/* Answers a parked read of `s` (if any) with `code` and `why`, and
 * releases `s` (which may free it when it was doomed). */
void fswatch_cancel_read(fs_stream *s, int code, const char *why);

/* Closes `w`'s inotify instances once its watches are gone. Loop thread,
 * after fsstream_worker_close. */
void fswatch_worker_close(struct worker *w);

#endif
