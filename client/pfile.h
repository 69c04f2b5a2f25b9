/*
 * pfile - what the file calls of libporter (file.c, fileops.c) share.
 * No state; any thread.
 */
#ifndef PORTER_CLIENT_PFILE_H
#define PORTER_CLIENT_PFILE_H

#include "pconn.h"
#include "porter.h"

/* The wire's root name for `root` (NULL: "", the first root). Borrowed. */
static inline char *pfile_root(const char *root)
{
	return (char *)(root ? root : "");
}

/* Frees `resp` (a reply of the wrong kind) and records PORTER_E_PROTOCOL
 * naming `what`; returns it. */
static inline int pfile_bad_reply(Porter__V1__Response *resp, const char *what)
{
	porter__v1__response__free_unpacked(resp, NULL);
	return pconn_set_error(PORTER_E_PROTOCOL, "%s reply missing", what);
}

/* Closes file stream `id` (a reader's, writer's or watch's) in the daemon,
 * waiting up to `timeout_ms`. Returns 0 (an unknown stream too) or a
 * code. Any thread. */
int pfile_stream_close(uint64_t id, int timeout_ms);

/* Hands the close of stream `id` (0: none) to the background thread;
 * never waits. */
void pfile_stream_close_later(uint64_t id);

#endif
