/*
 * db - PostgreSQL through libpq's non-blocking API on the worker loops:
 * sessions (DbOpen/DbQuery/DbClose), pooled stateless queries, streamed
 * results (DbFetch) and server-side cancel on deadlines.
 *
 * Per-worker state (`w->db`) is touched only by its worker's loop thread.
 * A session or stream lives on the worker that created it; its 64-bit id
 * names that worker in fwd.h's owner encoding (fwd_new_id). A request
 * naming it that arrives on another worker runs there as a remote req
 * (fwd_to_owner), with the client's identity the req carries.
 *
 * Whether every connection of a session's client has gone, whichever
 * workers they were on, comes from the client registry (clients.h).
 *
 * The work is split by concern over the db* modules (dbint.h lists them):
 * this one holds sessions and streams, dispatch, forwarding and the
 * worker's part.
 */
#ifndef PORTER_DB_H
#define PORTER_DB_H

#include <stdint.h>
#include <sys/types.h>

#include "req.h"

struct worker;
typedef struct db_worker db_worker;

/* Allocates `w->db`. 0 or PORTER_E_NOMEM. Before the loop runs. */
int db_worker_init(struct worker *w);

/*
 * Closes every database connection of `w` and fails what is pending; frees
 * `w->db` once the last handle has closed (the loop must run on). Called
 * when the worker stops, on its loop thread.
 */
void db_worker_close(struct worker *w);

/* Performs DbOpen, DbQuery, DbFetch or DbClose; finishes `r`. */
void db_handle(req *r);

/*
 * Copies `conninfo` into `out` (capacity `cap`) with any password replaced
 * by "***", for logs and messages. Never fails; truncates.
 */
void db_mask_conninfo(const char *conninfo, char *out, size_t cap);

#endif
