/* ctl_dbfmt - psql-like output of query results (see ctl_dbfmt.h). */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "ctl.h"
#include "ctl_dbfmt.h"

struct dbfmt {
	const dbfmt_opts *o;
	porter_db_result **chunks; /* aligned and expanded: every chunk */
	size_t n_chunks, cap_chunks;
	porter_db_result *first; /* the columns (first chunk; owned via chunks
				  * or freed at the end) */
	uint64_t rows;           /* rows printed or held */
	int began;               /* the header (streaming formats) is out */
};

/* ---- types ---- */

static const struct {
	uint32_t oid;
	const char *name;
} types[] = {
	{16, "boolean"},
	{17, "bytea"},
	{18, "\"char\""},
	{19, "name"},
	{20, "bigint"},
	{21, "smallint"},
	{23, "integer"},
	{24, "regproc"},
	{25, "text"},
	{26, "oid"},
	{27, "tid"},
	{28, "xid"},
	{29, "cid"},
	{114, "json"},
	{142, "xml"},
	{199, "json[]"},
	{143, "xml[]"},
	{600, "point"},
	{601, "lseg"},
	{602, "path"},
	{603, "box"},
	{604, "polygon"},
	{628, "line"},
	{650, "cidr"},
	{651, "cidr[]"},
	{700, "real"},
	{701, "double precision"},
	{705, "unknown"},
	{718, "circle"},
	{774, "macaddr8"},
	{790, "money"},
	{829, "macaddr"},
	{869, "inet"},
	{1000, "boolean[]"},
	{1001, "bytea[]"},
	{1002, "\"char\"[]"},
	{1003, "name[]"},
	{1005, "smallint[]"},
	{1007, "integer[]"},
	{1009, "text[]"},
	{1014, "character[]"},
	{1015, "character varying[]"},
	{1016, "bigint[]"},
	{1017, "point[]"},
	{1021, "real[]"},
	{1022, "double precision[]"},
	{1028, "oid[]"},
	{1041, "inet[]"},
	{1042, "character"},
	{1043, "character varying"},
	{1082, "date"},
	{1083, "time without time zone"},
	{1114, "timestamp without time zone"},
	{1115, "timestamp without time zone[]"},
	{1182, "date[]"},
	{1183, "time without time zone[]"},
	{1184, "timestamp with time zone"},
	{1185, "timestamp with time zone[]"},
	{1186, "interval"},
	{1187, "interval[]"},
	{1231, "numeric[]"},
	{1266, "time with time zone"},
	{1270, "time with time zone[]"},
	{1560, "bit"},
	{1562, "bit varying"},
	{1700, "numeric"},
	{1790, "refcursor"},
	{2202, "regprocedure"},
	{2205, "regclass"},
	{2206, "regtype"},
	{2249, "record"},
	{2275, "cstring"},
	{2278, "void"},
	{2287, "record[]"},
	{2950, "uuid"},
	{2951, "uuid[]"},
	{3220, "pg_lsn"},
	{3614, "tsvector"},
	{3615, "tsquery"},
	{3802, "jsonb"},
	{3807, "jsonb[]"},
	{3904, "int4range"},
	{3906, "numrange"},
	{3908, "tsrange"},
	{3910, "tstzrange"},
	{3912, "daterange"},
	{3926, "int8range"},
	{4072, "jsonpath"},
	{4089, "regnamespace"},
	{4096, "regrole"},
	{4451, "int4multirange"},
	{5069, "xid8"},
};

const char *dbfmt_type_name(uint32_t oid)
{
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (types[i].oid == oid)
			return types[i].name;
	return NULL;
}

/* psql's right-aligned types (print.c column_type_alignment). */
static int right_aligned(uint32_t oid)
{
	switch (oid) {
	case 20: /* int8 */
	case 21: /* int2 */
	case 23: /* int4 */
	case 26: /* oid */
	case 28: /* xid */
	case 29: /* cid */
	case 700:
	case 701:
	case 790: /* money */
	case 1700:
	case 5069: /* xid8 */
		return 1;
	default:
		return 0;
	}
}

static int numeric_json(uint32_t oid)
{
	return oid == 20 || oid == 21 || oid == 23 || oid == 26 || oid == 700 || oid == 701 ||
	       oid == 1700;
}

/* ---- display width ---- */

/* A growing byte buffer for a cell's rendering. */
static char *g_buf;
static size_t g_cap;

static int buf_reserve(size_t n)
{
	if (n <= g_cap)
		return 0;
	size_t nc = g_cap ? g_cap : 256;
	while (nc < n)
		nc *= 2;
	char *nb = realloc(g_buf, nc);
	if (!nb)
		return -1;
	g_buf = nb;
	g_cap = nc;
	return 0;
}

static int g_locale_ok = -1;

/* Columns taken by code point `cp` on a terminal: wcwidth() under a
 * UTF-8 locale (CJK and emoji take 2, combining marks 0), since the
 * values are UTF-8 whatever the user's locale is. */
int dbfmt_cp_width(unsigned cp)
{
	if (g_locale_ok < 0)
		g_locale_ok = setlocale(LC_CTYPE, "C.UTF-8") != NULL ||
			      setlocale(LC_CTYPE, "en_US.UTF-8") != NULL;
	if (cp < 0x80 || !g_locale_ok)
		return 1;
	int w = wcwidth((wchar_t)cp);
	return w < 0 ? 1 : w;
}

/*
 * Renders `s` (n bytes) for a table as psql does: a tab becomes spaces to
 * the next multiple of 8, a carriage return "\r", other control bytes
 * "\xHH"; newlines stay and split the cell into lines. The result is in
 * g_buf (NUL-terminated, returned); line widths go to `*max_w` (the
 * widest) and `*n_lines`. NULL when out of memory.
 */
static const char *render(const char *s, size_t n, size_t *max_w, size_t *n_lines)
{
	if (buf_reserve(n * 8 + 1) < 0)
		return NULL;
	char *o = g_buf;
	size_t w = 0, mw = 0, lines = 1;
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		unsigned cp;
		size_t k = ctl_utf8_len(u + i, n - i, &cp);
		if (k == 0) {
			/* Not UTF-8: shown as it is, one column. */
			*o++ = (char)u[i++];
			w++;
			continue;
		}
		if (cp == '\n') {
			*o++ = '\n';
			if (w > mw)
				mw = w;
			w = 0;
			lines++;
		} else if (cp == '\t') {
			size_t to = 8 - w % 8;
			memset(o, ' ', to);
			o += to;
			w += to;
		} else if (cp == '\r') {
			memcpy(o, "\\r", 2);
			o += 2;
			w += 2;
		} else if (cp < 0x20 || cp == 0x7F) {
			o += sprintf(o, "\\x%02X", cp);
			w += 4;
		} else {
			memcpy(o, u + i, k);
			o += k;
			w += (size_t)dbfmt_cp_width(cp);
		}
		i += k;
	}
	*o = 0;
	if (w > mw)
		mw = w;
	*max_w = mw;
	*n_lines = lines;
	return g_buf;
}

/* Display width of one rendered line (no newline inside). */
static size_t line_width(const char *s, size_t n)
{
	size_t w = 0;
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		unsigned cp;
		size_t k = ctl_utf8_len(u + i, n - i, &cp);
		if (k == 0) {
			w++;
			i++;
			continue;
		}
		w += (size_t)dbfmt_cp_width(cp);
		i += k;
	}
	return w;
}

static void spaces(size_t n)
{
	for (size_t i = 0; i < n; i++)
		putchar(' ');
}

/* Takes the next line of a rendered cell: `*pos` is where it starts (NULL
 * once the cell has no more lines) and moves past it. Returns 0 when there
 * is none; `*more` says whether another follows. */
static int next_line(const char **pos, const char **start, size_t *len, int *more)
{
	if (!*pos) {
		*more = 0;
		return 0;
	}
	const char *p = *pos, *e = strchr(p, '\n');
	*start = p;
	*len = e ? (size_t)(e - p) : strlen(p);
	*more = e != NULL;
	*pos = e ? e + 1 : NULL;
	return 1;
}

/* The text a cell shows (NULL as --null). */
static void cell(const dbfmt *f, porter_db_result *r, int i, int c, const char **s, size_t *n)
{
	if (porter_db_getisnull(r, i, c)) {
		*s = f->o->null_str;
		*n = strlen(*s);
	} else {
		*s = porter_db_getvalue(r, i, c);
		*n = (size_t)porter_db_getlength(r, i, c);
	}
}

/* ---- aligned tables ---- */

/* Prints the next line of a rendered cell (`*pos`, see next_line) in
 * width `w`; `right` aligns it right, `head` centres it (headers), `last`
 * is the table's last column. */
static void put_line(const char **pos, size_t w, int right, int head, int last)
{
	const char *p;
	size_t n;
	int more;
	if (!next_line(pos, &p, &n, &more)) {
		if (!last || head)
			spaces(w);
	} else {
		size_t lw = line_width(p, n), pad = w > lw ? w - lw : 0;
		size_t left = head ? pad / 2 : right ? pad : 0;
		spaces(left);
		fwrite(p, 1, n, stdout);
		if (!last || more || head)
			spaces(pad - left);
	}
	if (!last)
		fputs(more ? "+|" : " |", stdout);
	else if (more)
		putchar('+');
	else if (head)
		putchar(' ');
}

static size_t *col_widths(dbfmt *f, int nf)
{
	size_t *w = calloc((size_t)nf, sizeof(*w)), mw, nl;
	if (!w)
		return NULL;
	for (int c = 0; c < nf; c++) {
		const char *name = porter_db_fname(f->first, c);
		if (!render(name, strlen(name), &w[c], &nl))
			goto fail;
	}
	for (size_t k = 0; k < f->n_chunks; k++) {
		porter_db_result *r = f->chunks[k];
		int nt = porter_db_ntuples(r);
		for (int i = 0; i < nt; i++)
			for (int c = 0; c < nf; c++) {
				const char *s;
				size_t n;
				cell(f, r, i, c, &s, &n);
				if (!render(s, n, &mw, &nl))
					goto fail;
				if (mw > w[c])
					w[c] = mw;
			}
	}
	return w;
fail:
	free(w);
	return NULL;
}

/* Renders every cell of row `i` into its own copy (lines are printed
 * across cells). Returns the row's height, 0 when out of memory. */
static size_t render_row(dbfmt *f, porter_db_result *r, int i, int nf, char **cells)
{
	size_t h = 1;
	for (int c = 0; c < nf; c++) {
		const char *s;
		size_t n, mw, nl;
		if (i < 0) {
			s = porter_db_fname(r, c);
			n = strlen(s);
		} else {
			cell(f, r, i, c, &s, &n);
		}
		const char *out = render(s, n, &mw, &nl);
		cells[c] = out ? strdup(out) : NULL;
		if (!cells[c])
			return 0;
		if (nl > h)
			h = nl;
	}
	return h;
}

static int print_row(dbfmt *f, porter_db_result *r, int i, int nf, const size_t *w)
{
	char **cells = calloc((size_t)nf, sizeof(*cells));
	const char **pos = calloc((size_t)nf, sizeof(*pos));
	size_t h = cells && pos ? render_row(f, r, i, nf, cells) : 0;
	for (int c = 0; h && c < nf; c++)
		pos[c] = cells[c];
	for (size_t k = 0; k < h; k++) {
		putchar(' ');
		for (int c = 0; c < nf; c++) {
			int last = c == nf - 1;
			put_line(&pos[c], w[c], i >= 0 && right_aligned(porter_db_ftype(r, c)),
				 i < 0, last);
			if (!last)
				putchar(' ');
		}
		putchar('\n');
	}
	for (int c = 0; cells && c < nf; c++)
		free(cells[c]);
	free(cells);
	free(pos);
	return h ? 0 : PORTER_E_NOMEM;
}

static int print_aligned(dbfmt *f)
{
	int nf = porter_db_nfields(f->first);
	size_t *w = col_widths(f, nf);
	if (!w)
		return PORTER_E_NOMEM;
	int rc = 0;
	if (!f->o->tuples_only) {
		rc = print_row(f, f->first, -1, nf, w);
		for (int c = 0; c < nf; c++) {
			if (c)
				putchar('+');
			for (size_t k = 0; k < w[c] + 2; k++)
				putchar('-');
		}
		putchar('\n');
	}
	for (size_t k = 0; k < f->n_chunks && rc == 0; k++)
		for (int i = 0; i < porter_db_ntuples(f->chunks[k]) && rc == 0; i++)
			rc = print_row(f, f->chunks[k], i, nf, w);
	free(w);
	return rc;
}

/* psql's expanded records, border 1. */
static int print_expanded(dbfmt *f)
{
	int nf = porter_db_nfields(f->first);
	size_t hw = 0, dw = 0, mw, nl;
	for (int c = 0; c < nf; c++) {
		const char *name = porter_db_fname(f->first, c);
		if (!render(name, strlen(name), &mw, &nl))
			return PORTER_E_NOMEM;
		if (mw > hw)
			hw = mw;
	}
	size_t *w = col_widths(f, nf);
	if (!w)
		return PORTER_E_NOMEM;
	for (int c = 0; c < nf; c++)
		if (w[c] > dw)
			dw = w[c];
	free(w);
	uint64_t rec = 0;
	for (size_t k = 0; k < f->n_chunks; k++) {
		porter_db_result *r = f->chunks[k];
		for (int i = 0; i < porter_db_ntuples(r); i++) {
			char label[48];
			int len = snprintf(label, sizeof(label), "-[ RECORD %llu ]",
					   (unsigned long long)++rec);
			if (!f->o->tuples_only) {
				/* The label, then dashes to the width of the records, with
				 * the '+' of the column rule where it falls past the label. */
				fputs(label, stdout);
				long left = (long)len - (long)hw;
				for (long x = len; x < (long)hw; x++)
					putchar('-');
				if (left-- <= 0)
					putchar('-');
				if (left-- <= 0)
					putchar('+');
				if (left-- <= 0)
					putchar('-');
				for (long x = left; x < (long)dw; x++)
					putchar('-');
				putchar('\n');
			} else if (rec > 1) {
				/* Tuples only: a bare rule between records. */
				for (size_t x = 0; x < hw + 1; x++)
					putchar('-');
				putchar('+');
				for (size_t x = 0; x < dw + 1; x++)
					putchar('-');
				putchar('\n');
			}
			for (int c = 0; c < nf; c++) {
				char *cells[2] = {NULL, NULL};
				const char *s;
				size_t n, h1, h2;
				const char *name = porter_db_fname(r, c);
				const char *rn = render(name, strlen(name), &mw, &h1);
				cells[0] = rn ? strdup(rn) : NULL;
				cell(f, r, i, c, &s, &n);
				const char *rv = cells[0] ? render(s, n, &mw, &h2) : NULL;
				cells[1] = rv ? strdup(rv) : NULL;
				if (!cells[1]) {
					free(cells[0]);
					return PORTER_E_NOMEM;
				}
				const char *pn = cells[0], *pv = cells[1];
				for (size_t k2 = 0; k2 < (h1 > h2 ? h1 : h2); k2++) {
					put_line(&pn, hw, 0, 0, 0);
					/* psql leaves no blank after '|' when the value
					 * has no line here. */
					if (pv)
						putchar(' ');
					put_line(&pv, dw, 0, 0, 1);
					putchar('\n');
				}
				free(cells[0]);
				free(cells[1]);
			}
		}
	}
	return 0;
}

/* ---- streaming formats ---- */

static void csv_field(const char *s, size_t n, int is_null, const char *null_str)
{
	if (is_null) {
		fputs(null_str, stdout);
		return;
	}
	int quote = (n == 2 && memcmp(s, "\\.", 2) == 0);
	for (size_t i = 0; i < n && !quote; i++)
		quote = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
	if (!quote) {
		fwrite(s, 1, n, stdout);
		return;
	}
	putchar('"');
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"')
			putchar('"');
		putchar(s[i]);
	}
	putchar('"');
}

/* True when s[0..n) is one JSON number (PostgreSQL's NaN and Infinity
 * are not). */
static int json_number(const char *s, size_t n)
{
	size_t i = 0;
	if (i < n && s[i] == '-')
		i++;
	if (i >= n || s[i] < '0' || s[i] > '9')
		return 0;
	if (s[i] == '0')
		i++;
	else
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	if (i < n && s[i] == '.') {
		if (++i >= n || s[i] < '0' || s[i] > '9')
			return 0;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= n || s[i] < '0' || s[i] > '9')
			return 0;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	return i == n;
}

/* Skips one JSON value at s[*i..n); 0 when it is well formed. Depth is
 * bounded so a deep document is shown as a string instead. */
static int json_skip(const unsigned char *s, size_t n, size_t *i, int depth)
{
	while (*i < n && (s[*i] == ' ' || s[*i] == '\t' || s[*i] == '\n' || s[*i] == '\r'))
		(*i)++;
	if (*i >= n || depth > 256)
		return -1;
	unsigned char ch = s[*i];
	if (ch == '{' || ch == '[') {
		unsigned char close = ch == '{' ? '}' : ']';
		(*i)++;
		for (int first = 1;; first = 0) {
			while (*i < n &&
			       (s[*i] == ' ' || s[*i] == '\t' || s[*i] == '\n' || s[*i] == '\r'))
				(*i)++;
			if (*i < n && s[*i] == close && first) {
				(*i)++;
				return 0;
			}
			if (ch == '{') {
				if (*i >= n || s[*i] != '"' || json_skip(s, n, i, depth + 1))
					return -1;
				while (*i < n && (s[*i] == ' ' || s[*i] == '\n' || s[*i] == '\t' ||
						  s[*i] == '\r'))
					(*i)++;
				if (*i >= n || s[(*i)++] != ':')
					return -1;
			}
			if (json_skip(s, n, i, depth + 1))
				return -1;
			while (*i < n &&
			       (s[*i] == ' ' || s[*i] == '\t' || s[*i] == '\n' || s[*i] == '\r'))
				(*i)++;
			if (*i < n && s[*i] == close) {
				(*i)++;
				return 0;
			}
			if (*i >= n || s[(*i)++] != ',')
				return -1;
		}
	}
	if (ch == '"') {
		for ((*i)++; *i < n;) {
			unsigned cp;
			size_t k = ctl_utf8_len(s + *i, n - *i, &cp);
			if (k == 0 || cp < 0x20)
				return -1;
			*i += k;
			if (cp == '"')
				return 0;
			if (cp == '\\') {
				if (*i >= n || !strchr("\"\\/bfnrtu", s[*i]))
					return -1;
				if (s[(*i)++] == 'u')
					for (int h = 0; h < 4; h++, (*i)++)
						if (*i >= n ||
						    !strchr("0123456789abcdefABCDEF", s[*i]))
							return -1;
			}
		}
		return -1;
	}
	static const char *const words[] = {"true", "false", "null"};
	for (int k = 0; k < 3; k++) {
		size_t l = strlen(words[k]);
		if (n - *i >= l && memcmp(s + *i, words[k], l) == 0) {
			*i += l;
			return 0;
		}
	}
	size_t st = *i;
	while (*i < n && strchr("-+.eE0123456789", s[*i]))
		(*i)++;
	return *i > st && json_number((const char *)s + st, *i - st) ? 0 : -1;
}

static int json_embeddable(const char *s, size_t n)
{
	size_t i = 0;
	if (json_skip((const unsigned char *)s, n, &i, 0))
		return 0;
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i == n;
}

/* A value typed for JSON: numbers, booleans, embedded json/jsonb, null;
 * strings for the rest (and for what would not parse). */
static void json_value(porter_db_result *r, int i, int c)
{
	if (porter_db_getisnull(r, i, c)) {
		fputs("null", stdout);
		return;
	}
	const char *s = porter_db_getvalue(r, i, c);
	size_t n = (size_t)porter_db_getlength(r, i, c);
	uint32_t t = porter_db_ftype(r, c);
	if (t == 16 && n == 1 && (s[0] == 't' || s[0] == 'f'))
		fputs(s[0] == 't' ? "true" : "false", stdout);
	else if ((numeric_json(t) && json_number(s, n)) ||
		 ((t == 114 || t == 3802) && json_embeddable(s, n)))
		fwrite(s, 1, n, stdout);
	else
		ctl_json_str(stdout, s, n);
}

static void begin_stream(dbfmt *f, porter_db_result *r)
{
	int nf = porter_db_nfields(r);
	f->began = 1;
	if (f->o->format == DBFMT_JSON) {
		fputs("{\"columns\":[", stdout);
		for (int c = 0; c < nf; c++) {
			uint32_t t = porter_db_ftype(r, c);
			const char *tn = dbfmt_type_name(t);
			fputs(c ? ",{\"name\":" : "{\"name\":", stdout);
			ctl_json_cstr(stdout, porter_db_fname(r, c));
			fputs(",\"type\":", stdout);
			if (tn)
				ctl_json_cstr(stdout, tn);
			else
				fputs("null", stdout);
			printf(",\"type_oid\":%u}", t);
		}
		fputs("],\"rows\":[", stdout);
		return;
	}
	if (f->o->tuples_only || nf == 0 || f->o->expanded)
		return;
	for (int c = 0; c < nf; c++) {
		if (f->o->format == DBFMT_CSV) {
			if (c)
				putchar(',');
			const char *nm = porter_db_fname(r, c);
			csv_field(nm, strlen(nm), 0, "");
		} else {
			if (c)
				fputs(f->o->fieldsep, stdout);
			fputs(porter_db_fname(r, c), stdout);
		}
	}
	putchar('\n');
}

static void stream_rows(dbfmt *f, porter_db_result *r)
{
	int nf = porter_db_nfields(r), nt = porter_db_ntuples(r);
	for (int i = 0; i < nt; i++, f->rows++) {
		if (f->o->format == DBFMT_JSON) {
			fputs(f->rows ? ",[" : "[", stdout);
			for (int c = 0; c < nf; c++) {
				if (c)
					putchar(',');
				json_value(r, i, c);
			}
			putchar(']');
			continue;
		}
		if (f->o->expanded && f->rows)
			putchar('\n');
		for (int c = 0; c < nf; c++) {
			const char *s;
			size_t n;
			cell(f, r, i, c, &s, &n);
			if (f->o->format == DBFMT_CSV) {
				if (c)
					putchar(',');
				csv_field(s, n, porter_db_getisnull(r, i, c), f->o->null_str);
				continue;
			}
			if (f->o->expanded) {
				fputs(porter_db_fname(r, c), stdout);
				fputs(f->o->fieldsep, stdout);
			} else if (c) {
				fputs(f->o->fieldsep, stdout);
			}
			fwrite(s, 1, n, stdout);
			if (f->o->expanded)
				putchar('\n');
		}
		if (!f->o->expanded)
			putchar('\n');
	}
}

/* ---- the statement ---- */

dbfmt *dbfmt_begin(const dbfmt_opts *o)
{
	dbfmt *f = calloc(1, sizeof(*f));
	if (f)
		f->o = o;
	return f;
}

static int holds_chunks(const dbfmt *f)
{
	return f->o->format == DBFMT_ALIGNED;
}

int dbfmt_chunk(dbfmt *f, porter_db_result *chunk)
{
	if (holds_chunks(f)) {
		if (f->n_chunks == f->cap_chunks) {
			size_t nc = f->cap_chunks ? f->cap_chunks * 2 : 16;
			porter_db_result **nb = realloc(f->chunks, nc * sizeof(*nb));
			if (!nb) {
				porter_db_result_free(chunk);
				return PORTER_E_NOMEM;
			}
			f->chunks = nb;
			f->cap_chunks = nc;
		}
		f->chunks[f->n_chunks++] = chunk;
		if (!f->first)
			f->first = chunk;
		f->rows += (uint64_t)porter_db_ntuples(chunk);
		return 0;
	}
	if (!f->began)
		begin_stream(f, chunk);
	stream_rows(f, chunk);
	/* The first chunk is kept for its column names and types. */
	if (!f->first)
		f->first = chunk;
	else
		porter_db_result_free(chunk);
	return ctl_stdout_broken() ? DBFMT_STDOUT_FAILED : 0;
}

/* psql prints the tag after rows for these, and alone for the rest. */
static int tag_after_rows(const char *tag)
{
	return !strncmp(tag, "INSERT", 6) || !strncmp(tag, "UPDATE", 6) ||
	       !strncmp(tag, "DELETE", 6) || !strncmp(tag, "MERGE", 5);
}

int dbfmt_end(dbfmt *f, const char *cmdstatus, double ms, const char *json_extra)
{
	const dbfmt_opts *o = f->o;
	int nf = f->first ? porter_db_nfields(f->first) : 0;
	int rc = 0;
	if (o->format == DBFMT_JSON) {
		if (!f->began)
			fputs("{\"columns\":[],\"rows\":[", stdout);
		fputs("],\"command\":", stdout);
		if (cmdstatus)
			ctl_json_cstr(stdout, cmdstatus);
		else
			fputs("null", stdout);
		printf(",\"rows_count\":%llu,\"complete\":%s", (unsigned long long)f->rows,
		       cmdstatus ? "true" : "false");
		if (ms >= 0)
			printf(",\"time_ms\":%.3f", ms);
		if (json_extra)
			fputs(json_extra, stdout);
		putchar('}');
	} else if (!cmdstatus) {
		/* The statement failed after some chunks: a held table is not
		 * printed (psql shows only the error), streamed rows stay. */
	} else if (nf == 0) {
		/* A command without rows: its tag, as psql prints it. */
		if (cmdstatus[0])
			printf("%s\n", cmdstatus);
	} else {
		if (o->format == DBFMT_ALIGNED)
			rc = o->expanded ? print_expanded(f) : print_aligned(f);
		int footer = !o->tuples_only && o->format != DBFMT_CSV &&
			     !(o->expanded && (o->format != DBFMT_ALIGNED || f->rows));
		if (footer)
			printf("(%llu row%s)\n", (unsigned long long)f->rows,
			       f->rows == 1 ? "" : "s");
		if (o->format == DBFMT_ALIGNED)
			putchar('\n');
		if (tag_after_rows(cmdstatus))
			printf("%s\n", cmdstatus);
	}
	for (size_t k = 0; k < f->n_chunks; k++)
		porter_db_result_free(f->chunks[k]);
	if (!holds_chunks(f))
		porter_db_result_free(f->first);
	free(f->chunks);
	free(f);
	if (fflush(stdout) != 0 || ferror(stdout))
		return -1;
	return rc;
}
