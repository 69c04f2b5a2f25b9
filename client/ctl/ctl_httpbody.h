/*
 * ctl_httpbody - the request body of `porterctl http`: the -d family and
 * -T, gathered in memory when they are short literals, streamed to porterd
 * piece by piece (porter_http_upload_*) when they read a file or stdin,
 * so a body of any size goes through without being held whole.
 * Single-threaded.
 */
#ifndef PORTER_CTL_HTTPBODY_H
#define PORTER_CTL_HTTPBODY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "porter.h"

/* A growing byte buffer, always NUL-terminated past `len`. */
typedef struct ctl_buf {
	unsigned char *p;
	size_t len, cap;
} ctl_buf;

/* Appends `n` bytes of `p`. 0, or -1 when out of memory. */
int ctl_buf_add(ctl_buf *b, const void *p, size_t n);

/* One body argument as given: -d 'd', --data-binary 'b', --data-raw 'r',
 * --data-urlencode 'u', -T 'T'. */
typedef struct ctl_body_arg {
	const char *arg;
	int kind;
} ctl_body_arg;

/* A piece of a streamed body: literal bytes, or a file read as it goes. */
typedef struct ctl_body_part {
	ctl_buf lit;
	FILE *f;          /* NULL for a literal; stdin for "-" */
	const char *name; /* for messages */
	int strip;        /* -d @FILE: CR and LF are left out */
} ctl_body_part;

typedef struct ctl_body {
	int streamed;         /* send with porter_http_upload_* (parts, size) */
	ctl_buf mem;          /* !streamed: the whole body */
	ctl_body_part *parts; /* streamed: in order, '&' between -d arguments */
	size_t n_parts;
	int64_t size; /* streamed: total bytes, -1 when a pipe makes it unknown */
} ctl_body;

/*
 * Prepares the body of `args` (n of them) in `b` (zeroed by the caller):
 * in memory when none reads a file or stdin, or when `in_memory` (-G puts
 * the data in the URL), else as parts to stream (files opened now). 0, or
 * -1 with the reason in `why`. Free with ctl_body_free either way.
 */
int ctl_body_prepare(ctl_body *b, const ctl_body_arg *args, size_t n, int in_memory, char *why,
		     size_t why_len);

/* Outcome of ctl_body_send beyond libporter's codes: a local read failed. */
#define CTL_BODY_READ_FAILED (-100000)

/*
 * Streams the parts of `b` into `u`, each write waiting at most
 * timeout(arg) ms. Returns 0 when all was sent, 1 when the server wanted
 * no more, a negative libporter code, or CTL_BODY_READ_FAILED with the
 * reason in `why`. `sent` (not NULL) gets the bytes written.
 */
int ctl_body_send(ctl_body *b, porter_http_upload *u, int (*timeout)(void *arg), void *arg,
		  uint64_t *sent, char *why, size_t why_len);

/* Closes the files and frees the buffers of `b`. */
void ctl_body_free(ctl_body *b);

#endif
