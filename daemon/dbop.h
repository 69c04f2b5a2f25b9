/*
 * dbop - one database operation (dbint.h): its lifetime and its reply.
 *
 * An op is answered exactly once: through its local req, back to the
 * worker that forwarded it, or not at all for an internal step (a reset),
 * and every reply frees it. The text of errors reaches the client as clean
 * UTF-8 (dbpolicy_clean).
 *
 * Loop affinity: the op's worker loop thread.
 */
#ifndef PORTER_DBOP_H
#define PORTER_DBOP_H

#include "dbint.h"

/* Forgets what `op` gathered (results, error), keeping the arrays. It may
 * then run again: a failed run's results did not happen. */
void dbop_clear(dbop *op);

/* Frees `op` (not NULL) and what it gathered, without answering anyone:
 * for internal ops, or after the reply went out. */
void dbop_free(dbop *op);

/* Sends `resp` (owned by the caller) for `op` to its req or back to the
 * forwarding worker, takes it off any queue, and frees `op`. */
void dbop_reply(dbop *op, Porter__V1__Response *resp);

/*
 * Answers `op` with error `code` (a PORTER_E_*) and the printf-style
 * message, cleaned and without libpq's trailing newline; `sqlstate`,
 * `detail` and `hint` (each NULL when absent) go into the error detail.
 * Frees `op`.
 */
void dbop_fail_detail(dbop *op, int code, const char *sqlstate, const char *detail,
		      const char *hint, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* dbop_fail_detail without the detail. */
#define dbop_fail(op, code, ...) dbop_fail_detail(op, code, NULL, NULL, NULL, __VA_ARGS__)

/* Replies with the op's gathered results (and, when `more`, the id of the
 * `stream` they continue in) or with its first error. Frees `op`. */
void dbop_finish(dbop *op, int more, uint64_t stream);

/* Records the op's first error (later ones are ignored); the texts are
 * copied, each may be NULL. The reply carries it (dbop_finish). */
void dbop_set_error(dbop *op, int code, const char *msg, const char *state, const char *detail,
		    const char *hint);

#endif
