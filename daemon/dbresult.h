/*
 * dbresult - what PostgreSQL answers, turned into the reply of the op that
 * asked: each PGresult becomes a DbResult (columns, rows, command tag) or
 * the op's error. Row values point into the PGresult, kept with the op,
 * except rows that arrive one PGresult each (single-row mode, streams),
 * which are copied so the PGresult is freed at once. Rows that would not
 * fit a frame mark the op too large instead of growing without bound.
 *
 * Loop affinity: the connection's worker loop thread.
 */
#ifndef PORTER_DBRESULT_H
#define PORTER_DBRESULT_H

#include "dbint.h"

/* Takes `res` (owned; freed or kept with the op) into c->cur's reply, or
 * frees it when c->cur is NULL (an abandoned query draining). A COPY is
 * refused: it fails the op and may break `c`. */
void dbresult_take(dbc *c, PGresult *res);

/* The bytes of rows one reply may gather under a frame limit of
 * `max_frame`: the limit less room for the rest of the reply (1 MiB, or
 * half of a frame of 2 MiB or less). A reply is cut or refused once its
 * rows pass it, so it ends within this plus one row. Any thread. */
size_t dbresult_frame_cap(uint32_t max_frame);

/* Gives `op` one empty DbResult (a streamed chunk without rows); when
 * memory is short it stays without one. */
void dbresult_empty(dbop *op);

#endif
