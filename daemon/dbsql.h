/*
 * dbsql - what porterd reads in a query's text before sending it: the
 * highest parameter ($n) the statement refers to, so that a call with too
 * few parameters is refused in porter's words instead of PostgreSQL's,
 * which name porterd's internal prepared statements ("prepared statement
 * \"porter_s3\" requires 2").
 *
 * The scan follows PostgreSQL's lexer where it matters: $n inside string
 * constants ('...', E'...' with backslash escapes, U&'...', B'...',
 * X'...'), dollar-quoted strings ($tag$...$tag$), quoted identifiers
 * ("..."), comments (-- and nested C-style) and identifiers (a$1 is one
 * identifier) is not a parameter. It assumes standard_conforming_strings
 * on (the default since PostgreSQL 9.1): with it off, a backslash before a
 * quote in a plain '...' string would be read differently.
 *
 * Pure functions: any thread.
 */
#ifndef PORTER_DBSQL_H
#define PORTER_DBSQL_H

#include <stddef.h>

/* A statement refers to $1..$65535 at most (PostgreSQL counts parameters
 * in 16 bits); larger numbers are reported as this plus one. */
#define DBSQL_MAX_PARAM 65535u

/* The highest $n in `sql` (NUL-terminated, not NULL), 0 when none. */
unsigned dbsql_max_param(const char *sql);

/*
 * When `msg` is PostgreSQL's "bind message supplies N parameters, but
 * prepared statement \"NAME\" requires M", writes porter's message for the
 * same mismatch to `out` (`cap` bytes, NUL-terminated) and returns 1;
 * otherwise returns 0 and leaves `out` alone. A backstop for what the scan
 * above did not catch: the name never reaches a client.
 */
int dbsql_bind_message(const char *msg, char *out, size_t cap);

/* Writes porter's message for a statement that uses `used` parameters
 * while `given` were given. */
void dbsql_count_message(unsigned used, size_t given, char *out, size_t cap);

#endif
