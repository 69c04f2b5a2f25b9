/*
 * ctl_db - `porterctl db`: SQL through porterd, the way psql users expect.
 *
 * The SQL (argument, -c, -f FILE or stdin) is split into statements on the
 * client (quotes, dollar quotes, comments and parentheses respected), and
 * every statement runs on one session, in order, streamed through a
 * cursor: a result of any size passes through one chunk at a time (see
 * ctl_dbfmt.h for what each output format holds). The first error stops
 * the run, after the results before it were printed.
 *
 * The conninfo is completed on the client, from this user's PG*
 * environment and name, as libpq would do in psql; porterd's own
 * environment never fills the gaps. Keywords that name files (passfile,
 * service, ssl certificates and keys) are refused: porterd would open
 * them as itself. Single-threaded.
 */
#include <errno.h>
#include <getopt.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "ctl_dberr.h"
#include "ctl_dbfmt.h"
#include "porter.h"

/* Rows per streamed chunk; porterd also cuts chunks at 4 MiB. */
#define DB_CHUNK_ROWS 10000
/* Per-call timeout when -t is not given (see ctl_db). */
#define DB_DEFAULT_TIMEOUT_MS (3600 * 1000)

static const char db_help[] =
	"Usage: porterctl db [query] [OPTIONS] [CONNINFO [SQL [PARAM...]]]\n"
	"Runs SQL through porterd and prints the results as psql does.\n"
	"\n"
	"Where the SQL comes from (the first that applies):\n"
	"  -c, --command SQL      SQL to run (repeatable, run in order)\n"
	"  -f, --file FILE        SQL from FILE ('-': stdin)\n"
	"  SQL                    the argument after CONNINFO\n"
	"  (none of them)         stdin\n"
	"Statements are split on ';' (quotes, dollar quotes, comments and\n"
	"parentheses respected) and run one by one on one session, as psql -f\n"
	"does; the first error stops the run. PARAMs fill $1..$n of a single\n"
	"statement, in text form; \\N is NULL ('--' before PARAMs that start\n"
	"with '-'). Backslash meta-commands are not\n"
	"supported.\n"
	"\n"
	"Connection (libpq conninfo 'key=value ...' or a postgresql:// URI):\n"
	"  CONNINFO, -d, --dbname CONNINFO|DBNAME\n"
	"  -h, --host HOST   -p, --port PORT   -U, --username USER\n"
	"Keywords left out are taken from your environment on this side:\n"
	"PGHOST, PGHOSTADDR, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, PGOPTIONS,\n"
	"PGAPPNAME, PGSSLMODE, PGCONNECT_TIMEOUT, PGCLIENTENCODING,\n"
	"PGTARGETSESSIONATTRS, PGGSSENCMODE, PGCHANNELBINDING; the user\n"
	"defaults to your login name and the database to the user. Keywords that\n"
	"name files (passfile, service, sslcert, sslkey, sslrootcert, sslcrl,\n"
	"sslcrldir) are refused, and ~/.pgpass is not read.\n"
	"\n"
	"Output:\n"
	"  (default)              aligned table, like psql\n"
	"  -A, --no-align         unaligned, fields joined by -F (default '|')\n"
	"  -F, --field-separator SEP\n"
	"      --csv              CSV (RFC 4180)\n"
	"  -x, --expanded         one record per row\n"
	"  -t, --tuples-only      rows only: no header, no row count\n"
	"      --null STRING      how NULL is shown (default: empty, as psql)\n"
	"      --timing           the time of each statement (\"Time: 1.234 ms\")\n"
	"  --json (before 'db')   {\"results\":[{\"columns\":[{\"name\",\"type\",\n"
	"                         \"type_oid\"}],\"rows\":[[...]],\"command\",\n"
	"                         \"rows_count\"}],\"error\":{...}}; numbers,\n"
	"                         booleans, json/jsonb and NULL keep their type\n"
	"Aligned and expanded output hold the whole result to measure the columns\n"
	"(as psql does); -A, --csv and --json stream results of any size.\n"
	"porterctl's -t/--timeout bounds each round trip (the session, each\n"
	"statement's first chunk, each later chunk); without it, an hour.\n"
	"\n"
	"What the server says besides rows, as psql shows it: NOTICE, WARNING\n"
	"... messages on stderr as they arrive (\"NOTICE:  ...\"; porterd keeps\n"
	"the first 100 of a statement's chunk and says how many it dropped);\n"
	"an error with LINE n: and a caret under its position, DETAIL, HINT,\n"
	"QUERY and CONTEXT. Under --json each result has \"notices\" (objects\n"
	"with severity, sqlstate, message and the other fields present) and\n"
	"\"notices_dropped\"; \"error\" adds severity, position, context,\n"
	"schema, table, column, datatype, constraint when the server gave them.\n"
	"Text is UTF-8 whatever the database's encoding (porterd sets\n"
	"client_encoding; a statement that changes it fails and ends the\n"
	"session).\n";

/* ---- conninfo ---- */

static const struct {
	const char *key, *env;
} env_keys[] = {
	{"host", "PGHOST"},
	{"hostaddr", "PGHOSTADDR"},
	{"port", "PGPORT"},
	{"dbname", "PGDATABASE"},
	{"user", "PGUSER"},
	{"password", "PGPASSWORD"},
	{"options", "PGOPTIONS"},
	{"application_name", "PGAPPNAME"},
	{"sslmode", "PGSSLMODE"},
	{"connect_timeout", "PGCONNECT_TIMEOUT"},
	{"client_encoding", "PGCLIENTENCODING"},
	{"target_session_attrs", "PGTARGETSESSIONATTRS"},
	{"gssencmode", "PGGSSENCMODE"},
	{"channel_binding", "PGCHANNELBINDING"},
};

/* Keywords whose value libpq opens as a file: in porterd, as porterd. */
static int names_file(const char *key)
{
	static const char *const files[] = {"passfile",    "service", "sslcert",   "sslkey",
					    "sslrootcert", "sslcrl",  "sslcrldir", NULL};
	for (int i = 0; files[i]; i++)
		if (!strcmp(key, files[i]))
			return 1;
	return 0;
}

typedef struct strbuf {
	char *p;
	size_t len, cap;
	int oom;
} strbuf;

static void sb_add(strbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 256;
		while (nc < b->len + n + 1)
			nc *= 2;
		char *np = realloc(b->p, nc);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void sb_str(strbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

/* Appends key='value' with libpq's quoting. */
static void sb_kv(strbuf *b, const char *key, const char *val)
{
	if (b->len)
		sb_add(b, " ", 1);
	sb_str(b, key);
	sb_add(b, "='", 2);
	for (; *val; val++) {
		if (*val == '\\' || *val == '\'')
			sb_add(b, "\\", 1);
		sb_add(b, val, 1);
	}
	sb_add(b, "'", 1);
}

/* See ctl.h. */
char *ctl_db_conninfo(const db_target *t, char *why, size_t why_len)
{
	const char *given = t->conninfo ? t->conninfo : "";
	char *err = NULL;
	strbuf dbname_form = {0};
	/* A bare word is a database name, as in psql. */
	if (given[0] && !strchr(given, '=') && strncmp(given, "postgresql://", 13) &&
	    strncmp(given, "postgres://", 11)) {
		sb_kv(&dbname_form, "dbname", given);
		given = dbname_form.p ? dbname_form.p : "";
	}
	PQconninfoOption *opts = PQconninfoParse(given, &err);
	strbuf out = {0};
	char *result = NULL;
	if (!opts) {
		snprintf(why, why_len, "invalid conninfo: %s", err ? err : "out of memory");
		goto out;
	}
	const char *user = NULL, *dbname = NULL;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		const char *v = o->val;
		if (!strcmp(o->keyword, "host") && t->host)
			v = t->host;
		else if (!strcmp(o->keyword, "port") && t->port)
			v = t->port;
		else if (!strcmp(o->keyword, "user") && t->user)
			v = t->user;
		for (size_t i = 0; !v && i < sizeof(env_keys) / sizeof(env_keys[0]); i++)
			if (!strcmp(o->keyword, env_keys[i].key)) {
				const char *e = getenv(env_keys[i].env);
				if (e && e[0])
					v = e;
			}
		if (!v)
			continue;
		if (names_file(o->keyword)) {
			snprintf(why, why_len,
				 "conninfo keyword '%s' names a file, which porterd would open "
				 "as itself; it is not sent",
				 o->keyword);
			goto out;
		}
		if (!strcmp(o->keyword, "user"))
			user = v;
		if (!strcmp(o->keyword, "dbname"))
			dbname = v;
		sb_kv(&out, o->keyword, v);
	}
	if (!user) {
		struct passwd *pw = getpwuid(geteuid());
		if (pw) {
			user = pw->pw_name;
			sb_kv(&out, "user", user);
		}
	}
	if (!dbname && user)
		sb_kv(&out, "dbname", user);
	if (out.oom || !out.p) {
		snprintf(why, why_len, "out of memory");
		goto out;
	}
	result = out.p;
	out.p = NULL;
out:
	free(out.p);
	free(dbname_form.p);
	PQfreemem(err);
	PQconninfoFree(opts);
	return result;
}

/* ---- statements ---- */

static int is_word_start(char c)
{
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (unsigned char)c >= 0x80;
}

static int is_word_char(char c)
{
	return is_word_start(c) || (c >= '0' && c <= '9') || c == '$';
}

static int word_is(const char *s, size_t n, const char *w)
{
	return strlen(w) == n && strncasecmp(s, w, n) == 0;
}

/*
 * Splits `sql` into statements at top-level semicolons. Quoted strings
 * ('...', E'...' with backslashes, "..."), dollar quotes ($tag$...$tag$),
 * comments (-- and nested C-style) and parentheses do not end a statement.
 * Statements that hold only blanks and comments are dropped. Returns the
 * count; `*out` is a malloc'd array of malloc'd strings. -1 when out of
 * memory. `*max_param` gets the highest parameter placeholder $n outside
 * quotes, dollar quotes and comments (0: none), as PostgreSQL reads them.
 */
static long split_sql(const char *sql, char ***out, unsigned *max_param)
{
	size_t n = strlen(sql), cap = 0, count = 0, start = 0, i = 0;
	char **list = NULL;
	/* begin_depth and head follow psql's lexer: in a statement that starts
	 * CREATE [OR REPLACE] FUNCTION|PROCEDURE, BEGIN (ATOMIC bodies) opens a
	 * block, CASE inside one nests, END closes; ';' inside a block does not
	 * end the statement. head keeps the initials of those first words. */
	int depth = 0, content = 0, begin_depth = 0;
	/* Where the statement's text starts: psql drops the blanks and --
	 * comments ahead of it, so the server's error positions (LINE n and
	 * the caret) count from the same place. */
	size_t begin = 0;
	size_t words = 0;
	char head[4];
	*out = NULL;
	*max_param = 0;
	while (i <= n) {
		char ch = sql[i];
		if (i == n || (ch == ';' && depth == 0 && begin_depth == 0)) {
			if (content) {
				if (count == cap) {
					size_t nc = cap ? cap * 2 : 8;
					char **nl = realloc(list, nc * sizeof(*nl));
					if (!nl)
						goto oom;
					list = nl;
					cap = nc;
				}
				list[count] = strndup(sql + begin, i - begin);
				if (!list[count])
					goto oom;
				count++;
			}
			start = ++i;
			content = 0;
			words = 0;
			begin_depth = 0;
			continue;
		}
		if (ch == '-' && sql[i + 1] == '-') {
			while (i < n && sql[i] != '\n')
				i++;
			continue;
		}
		if (ch == '/' && sql[i + 1] == '*') {
			int nest = 1;
			for (i += 2; i < n && nest; i++) {
				if (sql[i] == '/' && sql[i + 1] == '*')
					nest++, i++;
				else if (sql[i] == '*' && sql[i + 1] == '/')
					nest--, i++;
			}
			continue;
		}
		if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f') {
			i++;
			continue;
		}
		if (!content)
			begin = i;
		content = 1;
		if (ch == '\'' || ch == '"') {
			/* E'...' takes backslash escapes; a letter E that ends an
			 * identifier (like "table" before a string) does not. */
			int esc = ch == '\'' && i > start &&
				  (sql[i - 1] == 'E' || sql[i - 1] == 'e') &&
				  (i - 1 == start || !(sql[i - 2] == '_' ||
						       (sql[i - 2] >= 'a' && sql[i - 2] <= 'z') ||
						       (sql[i - 2] >= 'A' && sql[i - 2] <= 'Z') ||
						       (sql[i - 2] >= '0' && sql[i - 2] <= '9')));
			for (i++; i < n; i++) {
				if (esc && sql[i] == '\\' && i + 1 < n) {
					i++;
				} else if (sql[i] == ch) {
					if (sql[i + 1] == ch)
						i++;
					else
						break;
				}
			}
			i++;
			continue;
		}
		if (ch == '$' &&
		    !(i > start && (sql[i - 1] == '_' || (sql[i - 1] >= 'a' && sql[i - 1] <= 'z') ||
				    (sql[i - 1] >= 'A' && sql[i - 1] <= 'Z') ||
				    (sql[i - 1] >= '0' && sql[i - 1] <= '9')))) {
			size_t j = i + 1;
			while (j < n && (sql[j] == '_' || (sql[j] >= 'a' && sql[j] <= 'z') ||
					 (sql[j] >= 'A' && sql[j] <= 'Z') ||
					 (j > i + 1 && sql[j] >= '0' && sql[j] <= '9') ||
					 (unsigned char)sql[j] >= 0x80))
				j++;
			if (j < n && sql[j] == '$') {
				size_t tl = j - i + 1;
				const char *end;
				for (end = sql + j + 1; (end = strchr(end, '$')) != NULL; end++)
					if (strncmp(end, sql + i, tl) == 0)
						break;
				i = end ? (size_t)(end - sql) + tl : n;
				continue;
			}
			if (sql[i + 1] >= '0' && sql[i + 1] <= '9') {
				/* A parameter; a tag cannot start with a digit. */
				unsigned v = 0;
				for (j = i + 1; j < n && sql[j] >= '0' && sql[j] <= '9'; j++)
					v = v < 1000000 ? v * 10 + (unsigned)(sql[j] - '0') : v;
				if (v > *max_param)
					*max_param = v;
				i = j;
				continue;
			}
		}
		if (is_word_start(ch) && !(i > start && is_word_char(sql[i - 1]))) {
			size_t j = i;
			while (j < n && is_word_char(sql[j]))
				j++;
			const char *w = sql + i;
			size_t wl = j - i;
			if (words == 0)
				memset(head, 0, sizeof(head));
			if (words < sizeof(head) &&
			    (word_is(w, wl, "create") || word_is(w, wl, "function") ||
			     word_is(w, wl, "procedure") || word_is(w, wl, "or") ||
			     word_is(w, wl, "replace")))
				head[words] = (char)(w[0] | 0x20);
			words++;
			int routine = head[0] == 'c' && (head[1] == 'f' || head[1] == 'p' ||
							 (head[1] == 'o' && head[2] == 'r' &&
							  (head[3] == 'f' || head[3] == 'p')));
			if (routine && depth == 0) {
				if (word_is(w, wl, "begin"))
					begin_depth++;
				else if (word_is(w, wl, "case") && begin_depth >= 1)
					begin_depth++;
				else if (word_is(w, wl, "end") && begin_depth > 0)
					begin_depth--;
			}
			i = j;
			continue;
		}
		if (ch == '(')
			depth++;
		else if (ch == ')' && depth > 0)
			depth--;
		i++;
	}
	*out = list;
	return (long)count;
oom:
	for (size_t k = 0; k < count; k++)
		free(list[k]);
	free(list);
	return -1;
}

static char *read_stream(FILE *f)
{
	strbuf b = {0};
	char tmp[65536];
	size_t k;
	while ((k = fread(tmp, 1, sizeof(tmp), f)) > 0)
		sb_add(&b, tmp, k);
	if (ferror(f) || b.oom) {
		free(b.p);
		return NULL;
	}
	if (!b.p)
		return strdup("");
	return b.p;
}

/* ---- running ---- */

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* Prints a database error: psql's lines on stderr, or the "error" member
 * of the JSON object, each with the notices that came with it. `r` (may
 * be NULL) carries the fields; `sql` (may be NULL) is the statement, for
 * the caret under the error's position. */
static int report_error(const ctl_opts *o, int rc, const porter_db_result *r, const char *sql)
{
	const char *msg =
		r && porter_db_message(r)[0] ? porter_db_message(r) : porter_last_error_message();
	if (!msg[0])
		msg = porter_strerror(rc);
	int status = ctl_exit_code(rc);
	if (o->json) {
		fputs("\"error\":{\"code\":", stdout);
		ctl_json_cstr(stdout, porter_error_name(rc));
		fputs(",\"message\":", stdout);
		ctl_json_cstr(stdout, msg);
		fputs(",\"sqlstate\":", stdout);
		ctl_json_cstr(stdout, r ? porter_db_sqlstate(r) : "");
		fputs(",\"detail\":", stdout);
		ctl_json_cstr(stdout, r ? porter_db_detail(r) : "");
		fputs(",\"hint\":", stdout);
		ctl_json_cstr(stdout, r ? porter_db_hint(r) : "");
		if (r) {
			dberr_json_error_fields(stdout, r);
			int none = 1;
			unsigned long long dropped = 0;
			fputs(",\"notices\":[", stdout);
			dberr_json_notices(stdout, r, &none, &dropped);
			printf("],\"notices_dropped\":%llu", dropped);
		}
		printf(",\"exit\":%d}", status);
		return status;
	}
	fflush(stdout);
	dberr_print_notices(stderr, r, sql);
	if (rc == PORTER_E_DB && r) {
		dberr_print_error(stderr, r, sql);
	} else if (rc == PORTER_E_DB) {
		fprintf(stderr, "ERROR:  %s\n", msg);
	} else {
		fprintf(stderr, "porterctl db: %s (%s)\n", msg, porter_error_name(rc));
	}
	return status;
}

/* A statement's notices under --json: the members gathered as chunks
 * come, written into its object at its end. */
typedef struct notices_json {
	FILE *mem; /* open_memstream over buf */
	char *buf;
	size_t len;
	int first;
	unsigned long long dropped;
} notices_json;

/* Hands on the notices of `chunk` (may be NULL): to stderr as psql prints
 * them as they come, or into `nj` under --json. */
static void take_notices(const ctl_opts *o, notices_json *nj, const porter_db_result *chunk,
			 const char *sql)
{
	if (o->json) {
		if (nj->mem)
			dberr_json_notices(nj->mem, chunk, &nj->first, &nj->dropped);
		return;
	}
	if (porter_db_nnotices(chunk) || porter_db_notices_dropped(chunk)) {
		/* Rows printed so far come first, as on psql's terminal. */
		fflush(stdout);
		dberr_print_notices(stderr, chunk, sql);
	}
}

/* The JSON members closing a statement's object: its notices. malloc'd,
 * or NULL (out of memory: the members are left out). */
static char *notices_close(notices_json *nj)
{
	char *out = NULL;
	if (nj->mem && fclose(nj->mem) == 0) {
		size_t cap = nj->len + 64;
		out = malloc(cap);
		if (out)
			snprintf(out, cap, ",\"notices\":[%s],\"notices_dropped\":%llu",
				 nj->buf ? nj->buf : "", nj->dropped);
	}
	nj->mem = NULL;
	free(nj->buf);
	nj->buf = NULL;
	return out;
}

/* Starts a statement's output (after a comma unless it is the `first`
 * under --json, where `nj` starts gathering its notices). NULL when out
 * of memory. */
static dbfmt *output_begin(const ctl_opts *o, const dbfmt_opts *fo, notices_json *nj, int first)
{
	dbfmt *f = dbfmt_begin(fo);
	if (f && o->json) {
		nj->mem = open_memstream(&nj->buf, &nj->len);
		if (!first)
			putchar(',');
	}
	return f;
}

/* Runs one statement on `session` and prints it. EXIT_OK or a status. */
static int run_one(const ctl_opts *o, const dbfmt_opts *fo, uint64_t session, const char *sql,
		   const porter_db_param *p, size_t np, int timing, int first)
{
	porter_db_cursor *cur = NULL;
	porter_db_result *chunk = NULL;
	dbfmt *f = NULL;
	notices_json nj = {.first = 1};
	char tag[128] = "";
	double t0 = now_ms();
	/* A database error comes with a read, the first one included, so its
	 * fields (position, context ...) are printed; the open fails only
	 * when porterd did not run the statement. */
	int rc = porter_db_cursor_open(session, NULL, sql, p, np, DB_CHUNK_ROWS, 0, 0,
				       o->timeout_ms, &cur);
	while (rc >= 0 && (rc = porter_db_cursor_read(cur, 0, o->timeout_ms, &chunk)) == 1) {
		/* The statement's output starts with its first chunk: one
		 * that fails at once shows only its error, as in psql. */
		if (!f && !(f = output_begin(o, fo, &nj, first))) {
			rc = PORTER_E_NOMEM;
			break;
		}
		snprintf(tag, sizeof(tag), "%s", porter_db_cmdstatus(chunk));
		take_notices(o, &nj, chunk, sql);
		int d = dbfmt_chunk(f, chunk);
		int err = errno;
		chunk = NULL;
		if (d == DBFMT_STDOUT_FAILED) {
			/* Nobody gets the rest: closing the cursor stops the
			 * query instead of pulling a result of any size into a
			 * full disk or a closed pipe. On stderr under --json
			 * too: stdout is what failed. */
			free(notices_close(&nj));
			dbfmt_end(f, NULL, -1, NULL);
			porter_db_cursor_close(cur, 1000);
			fprintf(stderr, "porterctl db: cannot write the rows to stdout: %s\n",
				strerror(err));
			return EXIT_FAILED;
		}
		if (d < 0) {
			rc = PORTER_E_NOMEM;
			break;
		}
	}
	double ms = now_ms() - t0;
	if (rc >= 0 && !f && !(f = output_begin(o, fo, &nj, first)))
		rc = PORTER_E_NOMEM; /* a statement without a chunk: none yet */
	char *extra = notices_close(&nj);
	int st = EXIT_OK;
	if (rc < 0) {
		/* Rows already printed stay printed; the error follows them,
		 * with the notices that came with it. */
		if (f)
			dbfmt_end(f, NULL, -1, extra);
		if (o->json)
			fputs("],", stdout);
		st = report_error(o, rc, chunk, sql);
	} else if (dbfmt_end(f, tag, o->json && timing ? ms : -1, extra) < 0) {
		st = ctl_error(EXIT_FAILED, "io", "db: stdout: %s", strerror(errno));
	} else if (timing && !o->json) {
		printf("Time: %.3f ms\n", ms);
	}
	free(extra);
	porter_db_result_free(chunk);
	porter_db_cursor_close(cur, 1000);
	return st;
}

typedef struct db_args {
	db_target target;
	const char *cmds[64];
	int n_cmds;
	const char *file;
	const char *sql;
	char **params;
	int n_params;
	int timing;
	dbfmt_opts fo;
} db_args;

/* `fmt` with one %s for `arg`; the pointer to the help follows on the
 * same line, as for the other commands. */
static int usage_error(const char *fmt, const char *arg)
{
	char msg[512];
	snprintf(msg, sizeof(msg), fmt, arg);
	return ctl_error(EXIT_USAGE, "usage", "%s (see 'porterctl db --help')", msg);
}

/* Parses the command line into `a`; EXIT_OK, or a status to exit with
 * (-1: --help was printed). */
static int parse_args(db_args *a, int argc, char **argv)
{
	enum { OPT_CSV = 1000, OPT_NULL, OPT_TIMING, OPT_HELP };
	static const struct option lopts[] = {
		{"command", required_argument, NULL, 'c'},
		{"file", required_argument, NULL, 'f'},
		{"dbname", required_argument, NULL, 'd'},
		{"host", required_argument, NULL, 'h'},
		{"port", required_argument, NULL, 'p'},
		{"username", required_argument, NULL, 'U'},
		{"no-align", no_argument, NULL, 'A'},
		{"field-separator", required_argument, NULL, 'F'},
		{"expanded", no_argument, NULL, 'x'},
		{"tuples-only", no_argument, NULL, 't'},
		{"csv", no_argument, NULL, OPT_CSV},
		{"null", required_argument, NULL, OPT_NULL},
		{"timing", no_argument, NULL, OPT_TIMING},
		{"help", no_argument, NULL, OPT_HELP},
		{NULL, 0, NULL, 0},
	};
	int c, csv = 0, unaligned = 0;
	char why[128];
	/* 0, not 1: GNU getopt then starts afresh, permuting again (main's
	 * parse stopped at the command with '+'). */
	optind = 0;
	opterr = 0;
	/* Options may follow CONNINFO, as in psql; a PARAM that starts with
	 * '-' comes after "--". */
	/* No '?' in it: psql's -? (help; -h is the host) is then an unknown
	 * option whose optopt is '?', which says it was -? (glibc sets optopt
	 * only for an error, so a '?' listed came back with optopt stale). */
	while ((c = getopt_long(argc, argv, ":c:f:d:h:p:U:AF:xt", lopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (a->n_cmds == (int)(sizeof(a->cmds) / sizeof(a->cmds[0])))
				return usage_error("db: at most %s -c options", "64");
			a->cmds[a->n_cmds++] = optarg;
			break;
		case 'f':
			a->file = optarg;
			break;
		case 'd':
			a->target.conninfo = optarg;
			break;
		case 'h':
			a->target.host = optarg;
			break;
		case 'p':
			a->target.port = optarg;
			break;
		case 'U':
			a->target.user = optarg;
			break;
		case 'A':
			unaligned = 1;
			break;
		case 'F':
			a->fo.fieldsep = optarg;
			break;
		case 'x':
			a->fo.expanded = 1;
			break;
		case 't':
			a->fo.tuples_only = 1;
			break;
		case OPT_CSV:
			csv = 1;
			break;
		case OPT_NULL:
			a->fo.null_str = optarg;
			break;
		case OPT_TIMING:
			a->timing = 1;
			break;
		case OPT_HELP:
			fputs(db_help, stdout);
			return -1;
		case '?':
			if (optopt == '?') {
				fputs(db_help, stdout);
				return -1;
			}
			/* fall through */
		default:
			return usage_error("db: %s", ctl_opt_problem(c, argv, why, sizeof(why)));
		}
	}
	if (csv && unaligned)
		return usage_error("db: %s", "--csv and -A exclude each other");
	a->fo.format = csv ? DBFMT_CSV : unaligned ? DBFMT_UNALIGNED : DBFMT_ALIGNED;
	int pos = optind;
	if (!a->target.conninfo && pos < argc)
		a->target.conninfo = argv[pos++];
	if (!a->n_cmds && !a->file && pos < argc)
		a->sql = argv[pos++];
	a->params = argv + pos;
	a->n_params = argc - pos;
	if (a->n_params && !a->sql && a->n_cmds != 1)
		return usage_error("db: %s", "PARAMs need exactly one SQL statement");
	if (a->file && a->n_cmds)
		return usage_error("db: %s", "-c and -f exclude each other");
	return EXIT_OK;
}

/* Gathers the statements to run, and the highest $n they use; EXIT_OK or
 * a status. */
static int gather(const db_args *a, char ***stmts, long *n, unsigned *max_param)
{
	strbuf all = {0};
	if (a->n_cmds) {
		for (int i = 0; i < a->n_cmds; i++) {
			sb_str(&all, a->cmds[i]);
			sb_str(&all, ";\n");
		}
	} else if (a->sql) {
		sb_str(&all, a->sql);
	} else {
		/* psql would prompt here; porterctl reads a script, so say what
		 * it waits for rather than sit silent on a terminal. */
		if (!a->file && isatty(STDIN_FILENO))
			fputs("porterctl db: reading SQL from the terminal until end of file "
			      "(Ctrl-D); see 'porterctl db --help'\n",
			      stderr);
		FILE *in = !a->file || !strcmp(a->file, "-") ? stdin : fopen(a->file, "r");
		if (!in)
			return ctl_error(EXIT_FAILED, "io", "db: %s: %s", a->file, strerror(errno));
		char *text = read_stream(in);
		int err = errno;
		if (in != stdin)
			fclose(in);
		if (!text)
			return ctl_error(EXIT_FAILED, "io", "db: %s: %s",
					 a->file ? a->file : "stdin", strerror(err));
		all.p = text;
	}
	if (all.oom)
		return ctl_error(EXIT_FAILED, "nomem", "db: out of memory");
	*n = split_sql(all.p ? all.p : "", stmts, max_param);
	free(all.p);
	if (*n < 0)
		return ctl_error(EXIT_FAILED, "nomem", "db: out of memory");
	return EXIT_OK;
}

int ctl_db(const ctl_opts *o_in, int argc, char **argv)
{
	db_args a = {.fo = {.null_str = "", .fieldsep = "|"}};
	/* psql waits for a query as long as it runs; porterctl's default of
	 * 5 s per call would cut a report short, so db takes an hour unless
	 * -t says otherwise. */
	ctl_opts lo = *o_in;
	if (!lo.timeout_set)
		lo.timeout_ms = DB_DEFAULT_TIMEOUT_MS;
	const ctl_opts *o = &lo;
	/* "db query ..." is the old spelling; the verb is optional. */
	if (argc >= 2 && !strcmp(argv[1], "query")) {
		argc--;
		argv++;
	}
	int status = parse_args(&a, argc, argv);
	if (status)
		return status < 0 ? EXIT_OK : status;
	if (o->json)
		a.fo.format = DBFMT_JSON;

	char why[256];
	char *conninfo = ctl_db_conninfo(&a.target, why, sizeof(why));
	if (!conninfo)
		return ctl_error(EXIT_USAGE, "usage", "db: %s", why);
	char **stmts = NULL;
	long n = 0;
	uint64_t session = 0;
	porter_db_param *p = NULL;
	unsigned used = 0;
	status = gather(&a, &stmts, &n, &used);
	if (status)
		goto out;
	if (a.n_params && n != 1) {
		status = ctl_error(EXIT_USAGE, "usage",
				   "db: PARAMs need exactly one statement, got %ld", n);
		goto out;
	}
	/* PARAMs go as text of no declared type: one the statement does not
	 * use would come back as PostgreSQL's "could not determine data type
	 * of parameter $2", and one too few as a refusal; both are a
	 * command-line slip, said in its terms. */
	if (a.n_params && used != (unsigned)a.n_params) {
		char uses[64];
		if (used)
			snprintf(uses, sizeof(uses), "uses $1..$%u", used);
		else
			snprintf(uses, sizeof(uses), "has no $1..$n placeholder");
		status = ctl_error(EXIT_USAGE, "usage",
				   "db: %d PARAM%s given but the statement %s (see 'porterctl db "
				   "--help')",
				   a.n_params, a.n_params == 1 ? "" : "s", uses);
		goto out;
	}
	p = calloc((size_t)a.n_params + 1, sizeof(*p));
	if (!p) {
		status = ctl_error(EXIT_FAILED, "nomem", "db: out of memory");
		goto out;
	}
	for (int i = 0; i < a.n_params; i++) {
		/* \N is SQL NULL, as in COPY's text format. */
		if (strcmp(a.params[i], "\\N") != 0) {
			p[i].value = a.params[i];
			p[i].len = strlen(a.params[i]);
		}
	}
	/* One session for all statements, so that they share it as in psql
	 * (temporary tables, SET, transactions). */
	int rc = porter_db_open(conninfo, 0, o->timeout_ms, &session);
	if (rc < 0) {
		if (o->json) {
			fputs("{\"results\":[],", stdout);
			status = report_error(o, rc, NULL, NULL);
			fputs("}\n", stdout);
		} else {
			status = report_error(o, rc, NULL, NULL);
		}
		session = 0;
		goto out;
	}
	if (o->json)
		fputs("{\"results\":[", stdout);
	for (long i = 0; i < n && status == EXIT_OK; i++)
		status = run_one(o, &a.fo, session, stmts[i], p, (size_t)a.n_params, a.timing,
				 i == 0);
	if (o->json)
		fputs(status == EXIT_OK ? "]}\n" : "}\n", stdout);
out:
	if (session)
		porter_db_close(session, 0, o->timeout_ms);
	for (long i = 0; i < n; i++)
		free(stmts[i]);
	free(stmts);
	free(p);
	free(conninfo);
	return status;
}
