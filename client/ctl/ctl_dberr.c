/* ctl_dberr - errors and notices of `porterctl db`, psql's way; see ctl_dberr.h. */
#include "ctl_dberr.h"

#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ctl_dbfmt.h"

/* libpq cuts a LINE display to this many columns, keeping the caret at
 * least MIN_RIGHT_CUT columns from a cut end. */
#define DISPLAY_COLS 60
#define MIN_RIGHT_CUT 10

/* The fields of one error or notice, whichever accessor reads them. */
typedef struct diag_src {
	const porter_db_result *r;
	long notice; /* index of the notice, or -1 for the error */
} diag_src;

static const char *field(const diag_src *d, int code)
{
	return d->notice < 0 ? porter_db_error_field(d->r, code)
			     : porter_db_notice_field(d->r, (size_t)d->notice, code);
}

/*
 * Prints "LINE n: ..." and a caret under the 1-based character position
 * `loc` of `q`, as libpq does: \r, \n and \r\n end a line, a tab shows as
 * a space, columns are display columns (a CJK character or an emoji takes
 * two, anything narrower one) and a line wider than 60 columns is cut
 * around the position, "..." marking each cut. Nothing when `loc` lies
 * past the end of `q`.
 */
static void print_position(FILE *f, const char *q, long loc)
{
	size_t n = strlen(q);
	size_t *at = malloc((n + 1) * sizeof(*at)); /* byte offset of each character */
	long *col = malloc((n + 1) * sizeof(*col)); /* and its first column */
	long line = 1, beg = 0, end = -1, cno = 0, c = 0;
	size_t off = 0;
	loc--;
	if (!at || !col || loc < 0)
		goto out;
	for (; off < n; cno++) {
		unsigned char ch = (unsigned char)q[off];
		at[cno] = off;
		col[cno] = c;
		if (ch == '\r' || ch == '\n') {
			if (cno >= loc) {
				end = cno;
				break;
			}
			if (ch == '\r' || cno == 0 || q[at[cno - 1]] != '\r')
				line++;
			beg = cno + 1;
		}
		unsigned cp = ch;
		size_t k = ctl_utf8_len((const unsigned char *)q + off, n - off, &cp);
		int w = k && cp >= 0x80 ? dbfmt_cp_width(cp) : 1;
		c += w > 0 ? w : 1;
		off += k ? k : 1;
	}
	if (end < 0) {
		end = cno;
		at[end] = off;
		col[end] = c;
	}
	if (loc > end)
		goto out;
	int cut_left = 0, cut_right = 0;
	if (col[end] - col[beg] > DISPLAY_COLS) {
		if (col[beg] + DISPLAY_COLS >= col[loc] + MIN_RIGHT_CUT) {
			while (col[end] - col[beg] > DISPLAY_COLS)
				end--;
			cut_right = 1;
		} else {
			for (; col[loc] + MIN_RIGHT_CUT < col[end]; end--)
				cut_right = 1;
			for (; col[end] - col[beg] > DISPLAY_COLS; beg++)
				cut_left = 1;
		}
	}
	int prefix = fprintf(f, "LINE %ld: %s", line, cut_left ? "..." : "");
	for (size_t i = at[beg]; i < at[end]; i++)
		putc(q[i] == '\t' ? ' ' : q[i], f);
	fprintf(f, "%s\n%*s^\n", cut_right ? "..." : "", (int)(prefix + col[loc] - col[beg]), "");
out:
	free(at);
	free(col);
}

/* libpq's message for one error or notice at the default verbosity. */
static void print_diag(FILE *f, const diag_src *d, const char *sql, int is_error)
{
	const char *sev = field(d, PORTER_DB_DIAG_SEVERITY);
	const char *pos = field(d, PORTER_DB_DIAG_STATEMENT_POSITION);
	const char *ipos = field(d, PORTER_DB_DIAG_INTERNAL_POSITION);
	const char *iquery = field(d, PORTER_DB_DIAG_INTERNAL_QUERY);
	const char *q = NULL, *at = NULL;
	fprintf(f, "%s:  %s",
		sev[0]     ? sev
		: is_error ? "ERROR"
			   : "NOTICE",
		field(d, PORTER_DB_DIAG_MESSAGE_PRIMARY));
	if (pos[0]) {
		q = sql;
		at = pos;
	} else if (ipos[0]) {
		q = iquery[0] ? iquery : NULL;
		at = ipos;
	}
	if (at && !q)
		fprintf(f, " at character %s", at);
	putc('\n', f);
	if (q)
		print_position(f, q, atol(at));
	static const struct {
		int code;
		const char *label;
	} lines[] = {
		{PORTER_DB_DIAG_MESSAGE_DETAIL, "DETAIL"},
		{PORTER_DB_DIAG_MESSAGE_HINT, "HINT"},
		{PORTER_DB_DIAG_INTERNAL_QUERY, "QUERY"},
		{PORTER_DB_DIAG_CONTEXT, "CONTEXT"},
	};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		const char *v = field(d, lines[i].code);
		/* psql shows a notice's CONTEXT only with SHOW_CONTEXT always. */
		if (v[0] && (is_error || lines[i].code != PORTER_DB_DIAG_CONTEXT))
			fprintf(f, "%s:  %s\n", lines[i].label, v);
	}
}

void dberr_print_error(FILE *f, const porter_db_result *r, const char *sql)
{
	diag_src d = {r, -1};
	print_diag(f, &d, sql, 1);
}

void dberr_print_notices(FILE *f, const porter_db_result *r, const char *sql)
{
	size_t n = porter_db_nnotices(r);
	for (size_t i = 0; i < n; i++) {
		diag_src d = {r, (long)i};
		print_diag(f, &d, sql, 0);
	}
	unsigned long long dropped = (unsigned long long)porter_db_notices_dropped(r);
	if (dropped)
		fprintf(f, "porterctl db: %llu more notice%s dropped by porterd\n", dropped,
			dropped == 1 ? "" : "s");
}

/* The JSON members of the diagnostic fields, in this order; `num` ones
 * are numbers. */
static const struct {
	int code;
	const char *name;
	int num;
} members[] = {
	{PORTER_DB_DIAG_SEVERITY, "severity", 0},
	{PORTER_DB_DIAG_SQLSTATE, "sqlstate", 0},
	{PORTER_DB_DIAG_MESSAGE_PRIMARY, "message", 0},
	{PORTER_DB_DIAG_MESSAGE_DETAIL, "detail", 0},
	{PORTER_DB_DIAG_MESSAGE_HINT, "hint", 0},
	{PORTER_DB_DIAG_STATEMENT_POSITION, "position", 1},
	{PORTER_DB_DIAG_INTERNAL_POSITION, "internal_position", 1},
	{PORTER_DB_DIAG_INTERNAL_QUERY, "internal_query", 0},
	{PORTER_DB_DIAG_CONTEXT, "context", 0},
	{PORTER_DB_DIAG_SCHEMA_NAME, "schema", 0},
	{PORTER_DB_DIAG_TABLE_NAME, "table", 0},
	{PORTER_DB_DIAG_COLUMN_NAME, "column", 0},
	{PORTER_DB_DIAG_DATATYPE_NAME, "datatype", 0},
	{PORTER_DB_DIAG_CONSTRAINT_NAME, "constraint", 0},
};

/* Writes the members of `d` from index `from` of `members` on, present
 * ones only, each as ,"name":value (the first without the comma when
 * `bare`). */
static void json_members(FILE *f, const diag_src *d, size_t from, int bare)
{
	for (size_t i = from; i < sizeof(members) / sizeof(members[0]); i++) {
		const char *v = field(d, members[i].code);
		if (!v[0])
			continue;
		fprintf(f, "%s\"%s\":", bare ? "" : ",", members[i].name);
		bare = 0;
		if (members[i].num)
			fputs(v, f); /* digits: porter_db_*_field writes them */
		else
			ctl_json_cstr(f, v);
	}
}

void dberr_json_error_fields(FILE *f, const porter_db_result *r)
{
	diag_src d = {r, -1};
	/* Severity first; message, sqlstate, detail and hint are the
	 * caller's, always present. */
	const char *sev = field(&d, PORTER_DB_DIAG_SEVERITY);
	if (sev[0]) {
		fputs(",\"severity\":", f);
		ctl_json_cstr(f, sev);
	}
	json_members(f, &d, 5, 0);
}

void dberr_json_notices(FILE *f, const porter_db_result *r, int *first, unsigned long long *dropped)
{
	size_t n = porter_db_nnotices(r);
	for (size_t i = 0; i < n; i++) {
		diag_src d = {r, (long)i};
		fputs(*first ? "{" : ",{", f);
		*first = 0;
		json_members(f, &d, 0, 1);
		putc('}', f);
	}
	*dropped += (unsigned long long)porter_db_notices_dropped(r);
}
