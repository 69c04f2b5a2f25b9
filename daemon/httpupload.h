/*
 * httpupload - a request body of any size, streamed from the client to
 * libcurl (HttpRequest.body_stream, then HttpUpload pieces).
 *
 * The transfer reads its body through CURLOPT_READFUNCTION. Each piece the
 * client sends stays in its own request message (no copy) while libcurl
 * reads it; the piece is answered once libcurl has taken all of it, and
 * the client sends the next one then, so porterd holds at most one piece
 * per stream, counted in the uid's buffered bytes (uid-max-buffered).
 * While no piece is there the read callback pauses the upload
 * (CURL_READFUNC_PAUSE) and the next piece resumes it. A piece is never
 * answered from inside a libcurl callback: the read callback queues it and
 * httpupload_answer_read runs after curl returns (http.c's drain).
 *
 * A server that answers before taking the whole body (or a redirect that
 * turns the request into a GET) ends the upload: the pending and every
 * later piece are answered with `done` set, so the client stops sending and
 * pulls the response. A piece that is cancelled, or not taken before its
 * deadline, aborts the transfer: the body would be cut.
 *
 * Owned by one worker loop; not thread safe.
 */
#ifndef PORTER_HTTPUPLOAD_H
#define PORTER_HTTPUPLOAD_H

#include <stddef.h>

#include "httpxfer.h"

/* CURLOPT_READFUNCTION with the transfer as user data. */
size_t httpupload_on_read(char *b, size_t size, size_t n, void *ud);

/* Sets up the read side of `x` (its easy handle set) for this hop. */
void httpupload_set_hop(http_xfer *x);

/*
 * Handles piece `r` (an HttpUpload request) of upload stream `x`. Returns
 * 0 when `r` was answered, 1 when it is held until libcurl has read it
 * (the caller then makes the sweep watch its deadline and drains). Not
 * inside a libcurl callback (it may resume the transfer).
 */
int httpupload_piece(http_xfer *x, struct req *r);

/* Answers the pieces libcurl has read since the last call (queued on
 * `acks`, the worker's list). Not inside a libcurl callback. */
void httpupload_answer_read(list *acks);

/* The transfer ended or is going away: answers the piece still held (an
 * error when x->err is set, else `done`) and releases its bytes. */
void httpupload_end(http_xfer *x);

/* 1 when the piece held by `x` is past its deadline (less than `margin`
 * ms left). */
int httpupload_overdue(const http_xfer *x, uint64_t margin);

#endif
