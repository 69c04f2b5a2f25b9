/*
 * ctl_httpout - how `porterctl http` shows a response's head: curl's
 * status line and header block (-i, -D, -v) and -w's variables.
 * Single-threaded; no state.
 */
#ifndef PORTER_CTL_HTTPOUT_H
#define PORTER_CTL_HTTPOUT_H

#include <stdint.h>
#include <stdio.h>

#include "porter.h"

/* What -w needs once the transfer is over. */
typedef struct ctl_http_outcome {
	const porter_http_response *head; /* NULL when none arrived */
	const char *method;               /* not NULL */
	uint64_t size_download;           /* body bytes from the server */
	double total_s;                   /* wall time, when porterd gave none */
	int exit;                         /* porterctl's exit status */
} ctl_http_outcome;

/* The standard reason phrase of `code` ("OK"), "" for codes it does not
 * know; static. */
const char *ctl_http_reason(int code);

/* The status line the server sent, or (from a porterd too old to pass
 * it on) one rebuilt as "HTTP/1.1 CODE REASON" in `buf` (`cap` bytes). */
const char *ctl_http_status_line(const porter_http_response *h, char *buf, size_t cap);

/* Writes the head of every redirect hop followed, then the final one:
 * status line and headers, CRLF-terminated as curl -i -L does, each line
 * after `prefix` ("" or "< "). `h` not NULL. */
void ctl_http_write_head(FILE *f, const porter_http_response *h, const char *prefix);

/* Bytes of those head blocks, for %{size_header}. */
size_t ctl_http_head_size(const porter_http_response *h);

/* Prints -w's FORMAT to stdout with curl's variables filled in. */
void ctl_http_write_out(const char *fmt, const ctl_http_outcome *oc);

#endif
