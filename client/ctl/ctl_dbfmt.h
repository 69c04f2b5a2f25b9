/*
 * ctl_dbfmt - how `porterctl db` prints a query's result, psql's way:
 * aligned tables (display width, `+` continuation lines, numbers to the
 * right, "(N rows)", command tags), expanded records (-x), unaligned (-A),
 * CSV, and typed JSON.
 *
 * A result arrives in chunks (porter_db_cursor); unaligned, CSV and JSON
 * print each chunk as it comes, so their memory stays one chunk whatever
 * the result's size. Aligned tables and expanded records hold every chunk
 * to measure the columns, as psql does. Single-threaded; writes stdout.
 */
#ifndef PORTER_CTL_DBFMT_H
#define PORTER_CTL_DBFMT_H

#include <stdint.h>

#include "porter.h"

typedef enum dbfmt_format {
	DBFMT_ALIGNED,   /* psql's default table */
	DBFMT_UNALIGNED, /* -A: fields joined by the separator */
	DBFMT_CSV,       /* --csv: RFC 4180 */
	DBFMT_JSON,      /* --json: one object per statement */
} dbfmt_format;

typedef struct dbfmt_opts {
	dbfmt_format format;
	int expanded;         /* -x: one record per row */
	int tuples_only;      /* -t: no header, no footer */
	const char *null_str; /* --null: how NULL looks (not in JSON); not NULL */
	const char *fieldsep; /* -F: unaligned separator ("|"); not NULL */
} dbfmt_opts;

/* One statement's result being printed. */
typedef struct dbfmt dbfmt;

/* Starts a statement's output; `o` must outlive it. NULL when out of
 * memory. */
dbfmt *dbfmt_begin(const dbfmt_opts *o);

/* Adds a chunk: takes ownership of `chunk` (not NULL), which has the
 * statement's columns and some of its rows. Returns 0, PORTER_E_NOMEM, or
 * DBFMT_STDOUT_FAILED once rows streamed to stdout could not be written
 * (the caller stops pulling: the rest would be read for nothing). */
#define DBFMT_STDOUT_FAILED (-1000)
int dbfmt_chunk(dbfmt *f, porter_db_result *chunk);

/* Ends the statement: prints what is left (the whole table for aligned
 * output), the footer and the command tag `cmdstatus` ("" when unknown),
 * then frees `f`. `cmdstatus` NULL means the statement failed: no held
 * table, no footer, and JSON's object says "complete":false. `ms` >= 0 adds the statement's time in
 * JSON (the caller prints it otherwise). `json_extra` (NULL: none) is
 * written into JSON's object last: members, each led by a comma. Returns
 * 0, or -1 when stdout failed. */
int dbfmt_end(dbfmt *f, const char *cmdstatus, double ms, const char *json_extra);

/* Columns taken by code point `cp` on a terminal: wcwidth() under a
 * UTF-8 locale (CJK and emoji 2, combining marks 0; -1 never). */
int dbfmt_cp_width(unsigned cp);

/* SQL name of a built-in type ("integer", "text[]"), or NULL for an OID
 * this table does not know (user-defined types). */
const char *dbfmt_type_name(uint32_t oid);

#endif
