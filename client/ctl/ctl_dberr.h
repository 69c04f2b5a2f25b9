/*
 * ctl_dberr - how `porterctl db` shows what the server says besides rows:
 * errors and notices, in psql's words (libpq's default verbosity: the
 * severity and message, `LINE n:` with a caret under the error position,
 * DETAIL, HINT, QUERY, and CONTEXT for errors), and the same fields as
 * JSON members. Single-threaded; writes the FILE it is given.
 */
#ifndef PORTER_CTL_DBERR_H
#define PORTER_CTL_DBERR_H

#include <stdio.h>

#include "porter.h"

/* Prints the error `r` carries (not NULL) as psql does, the caret placed
 * in `sql` (the statement sent; NULL: no LINE display). */
void dberr_print_error(FILE *f, const porter_db_result *r, const char *sql);

/* Prints every notice of `r` (NULL: none) as psql does ("NOTICE:  ..."),
 * then how many porterd dropped, if any. */
void dberr_print_notices(FILE *f, const porter_db_result *r, const char *sql);

/* Writes the error's diagnostic fields other than message, SQLSTATE,
 * DETAIL and HINT as JSON members, each preceded by a comma
 * (,"severity":"ERROR",,"position":8 ...); absent ones are left out. */
void dberr_json_error_fields(FILE *f, const porter_db_result *r);

/* Writes the notices of `r` (NULL: none) as JSON array elements, each
 * object preceded by a comma unless `*first`, which it clears; adds their
 * dropped count to `*dropped`. */
void dberr_json_notices(FILE *f, const porter_db_result *r, int *first,
			unsigned long long *dropped);

#endif
