/*
 * dbdiag - what PostgreSQL says besides rows, for the reply of the op that
 * asked: every diagnostic field of its error (severity, position, context,
 * schema, table, column, datatype and constraint names) and the notices
 * (NOTICE, WARNING, INFO ...) that arrive while it runs. A function can
 * raise millions of notices: an op keeps the first DBDIAG_NOTICES_MAX, at
 * most DBDIAG_NOTICE_BYTES of their text, and counts the rest. Every text
 * is cleaned to valid UTF-8 (dbpolicy_clean) and cut at DBDIAG_FIELD_MAX.
 *
 * It also keeps the promise that text is UTF-8: porterd connects with
 * client_encoding UTF8 (dbpolicy.h), and a statement that changes it is
 * found here when the server reports it, at the end of its query.
 *
 * Loop affinity: the connection's worker loop thread.
 */
#ifndef PORTER_DBDIAG_H
#define PORTER_DBDIAG_H

#include "dbint.h"

#define DBDIAG_NOTICES_MAX 100
#define DBDIAG_NOTICE_BYTES (256u << 10)
#define DBDIAG_FIELD_MAX 8192

/*
 * Records the error `res` (a PGRES_FATAL_ERROR; not freed) as `op`'s,
 * unless it has one: message, SQLSTATE, detail, hint and the other fields.
 * PostgreSQL's message for a wrong parameter count, which names porterd's
 * prepared statement, is put in porter's words (dbsql.h).
 */
void dbdiag_error(dbop *op, const PGresult *res);

/* libpq's notice receiver on every connection porterd opens (`arg` is the
 * dbc): the notice goes with the reply of the query or fetch running on
 * it, or to the debug log when none does (a reset, an idle connection). */
void dbdiag_notice(void *arg, const PGresult *res);

/* Fills `ed` (initialised by the caller) with the fields of `op`'s error
 * that dbdiag_error kept beyond SQLSTATE, detail and hint; the strings
 * stay owned by `op`. */
void dbdiag_error_fields(const dbop *op, Porter__V1__ErrorDetail *ed);

/* Frees the error fields and notices `op` gathered. */
void dbdiag_clear(dbop *op);

/*
 * Whether `c`'s client_encoding is still UTF8. When a statement of the op
 * `op` (may be NULL) changed it, the op's results are dropped (they are
 * in another encoding) and it fails with PORTER_E_DB_BROKEN; the caller
 * then breaks `c`, so that no later query runs in that encoding. Returns
 * 1 when the encoding is UTF8, 0 when it was changed.
 */
int dbdiag_utf8_kept(dbc *c, dbop *op);

#endif
