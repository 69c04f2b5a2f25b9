/*
 * ctl_batch - `porterctl batch [--first] [FILE]`: runs a JSON list of
 * operations as one Batch and prints each member's outcome.
 *
 * Input: a JSON array of objects, each with "op" and that op's fields:
 *   {"op":"ping", "payload":"...", "delay_ms":N}
 *   {"op":"db", "conninfo":"...", "session":N, "sql":"...", "params":["1",null]}
 *   {"op":"http", "method":"GET", "url":"...", "headers":["Name: value"], "body":"..."}
 *   {"op":"file_read", "root":"...", "path":"...", "offset":N, "length":N}
 * plus an optional "timeout_ms" each. The parser below knows exactly this
 * much JSON: objects, arrays, strings (all escapes), integers, true, false,
 * null.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "porter.h"

/* ---- a small JSON reader ---- */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct jval jval;
struct jval {
	enum jtype type;
	long long num; /* J_NUM, J_BOOL */
	char *str;     /* J_STR: bytes (may hold NULs), NUL-terminated */
	size_t len;    /* J_STR: bytes; J_ARR/J_OBJ: items */
	jval *items;   /* J_ARR, J_OBJ (values) */
	char **keys;   /* J_OBJ */
};

typedef struct jparser {
	const char *start, *p, *end;
	char err[128];
} jparser;

static void jfree(jval *v)
{
	free(v->str);
	for (size_t i = 0; v->items && i < v->len; i++) {
		jfree(&v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
}

static void skip_ws(jparser *jp)
{
	while (jp->p < jp->end &&
	       (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r'))
		jp->p++;
}

static int fail(jparser *jp, const char *what)
{
	if (!jp->err[0])
		snprintf(jp->err, sizeof(jp->err), "%s at byte %td", what, jp->p - jp->start);
	return -1;
}

static int parse_value(jparser *jp, jval *v, int depth);

static int put_utf8(char *out, size_t *n, unsigned cp)
{
	if (cp < 0x80) {
		out[(*n)++] = (char)cp;
	} else if (cp < 0x800) {
		out[(*n)++] = (char)(0xc0 | (cp >> 6));
		out[(*n)++] = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		out[(*n)++] = (char)(0xe0 | (cp >> 12));
		out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[(*n)++] = (char)(0x80 | (cp & 0x3f));
	} else {
		out[(*n)++] = (char)(0xf0 | (cp >> 18));
		out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
		out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[(*n)++] = (char)(0x80 | (cp & 0x3f));
	}
	return 0;
}

static int hex4(jparser *jp, unsigned *out)
{
	unsigned v = 0;
	if (jp->end - jp->p < 4)
		return fail(jp, "short \\u escape");
	for (int i = 0; i < 4; i++) {
		char c = *jp->p++;
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return fail(jp, "bad \\u escape");
	}
	*out = v;
	return 0;
}

static int parse_string(jparser *jp, char **out, size_t *outlen)
{
	jp->p++; /* the opening quote */
	/* Escapes only shrink text, except \u, which yields at most 4 bytes
	 * for its 6 (or 12 for a pair): the input length bounds the output. */
	char *s = malloc((size_t)(jp->end - jp->p) + 1);
	size_t n = 0;
	if (!s)
		return fail(jp, "out of memory");
	while (jp->p < jp->end && *jp->p != '"') {
		char c = *jp->p++;
		if ((unsigned char)c < 0x20) {
			free(s);
			return fail(jp, "control character in a string");
		}
		if (c != '\\') {
			s[n++] = c;
			continue;
		}
		if (jp->p >= jp->end)
			break;
		c = *jp->p++;
		switch (c) {
		case '"':
		case '\\':
		case '/':
			s[n++] = c;
			break;
		case 'b':
			s[n++] = '\b';
			break;
		case 'f':
			s[n++] = '\f';
			break;
		case 'n':
			s[n++] = '\n';
			break;
		case 'r':
			s[n++] = '\r';
			break;
		case 't':
			s[n++] = '\t';
			break;
		case 'u': {
			unsigned cp, lo;
			if (hex4(jp, &cp) < 0) {
				free(s);
				return -1;
			}
			if (cp >= 0xd800 && cp < 0xdc00 && jp->end - jp->p >= 6 &&
			    jp->p[0] == '\\' && jp->p[1] == 'u') {
				jp->p += 2;
				if (hex4(jp, &lo) < 0) {
					free(s);
					return -1;
				}
				if (lo >= 0xdc00 && lo < 0xe000)
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			put_utf8(s, &n, cp);
			break;
		}
		default:
			free(s);
			return fail(jp, "bad escape");
		}
	}
	if (jp->p >= jp->end) {
		free(s);
		return fail(jp, "unterminated string");
	}
	jp->p++;
	s[n] = '\0';
	*out = s;
	*outlen = n;
	return 0;
}

static int parse_items(jparser *jp, jval *v, int is_obj, int depth)
{
	char close = is_obj ? '}' : ']';
	size_t cap = 0;
	jp->p++;
	skip_ws(jp);
	if (jp->p < jp->end && *jp->p == close) {
		jp->p++;
		return 0;
	}
	for (;;) {
		if (v->len == cap) {
			cap = cap ? cap * 2 : 8;
			jval *items = realloc(v->items, cap * sizeof(*items));
			if (!items)
				return fail(jp, "out of memory");
			v->items = items;
			if (is_obj) {
				char **keys = realloc(v->keys, cap * sizeof(*keys));
				if (!keys)
					return fail(jp, "out of memory");
				v->keys = keys;
			}
		}
		jval *item = &v->items[v->len];
		memset(item, 0, sizeof(*item));
		if (is_obj) {
			size_t klen;
			skip_ws(jp);
			if (jp->p >= jp->end || *jp->p != '"')
				return fail(jp, "expected a key");
			if (parse_string(jp, &v->keys[v->len], &klen) < 0)
				return -1;
			skip_ws(jp);
			if (jp->p >= jp->end || *jp->p != ':') {
				free(v->keys[v->len]);
				return fail(jp, "expected ':'");
			}
			jp->p++;
		}
		v->len++;
		if (parse_value(jp, item, depth + 1) < 0)
			return -1;
		skip_ws(jp);
		if (jp->p < jp->end && *jp->p == ',') {
			jp->p++;
			continue;
		}
		if (jp->p < jp->end && *jp->p == close) {
			jp->p++;
			return 0;
		}
		return fail(jp, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

static int parse_value(jparser *jp, jval *v, int depth)
{
	memset(v, 0, sizeof(*v));
	if (depth > 8)
		return fail(jp, "nested too deeply");
	skip_ws(jp);
	if (jp->p >= jp->end)
		return fail(jp, "unexpected end of input");
	char c = *jp->p;
	if (c == '{') {
		v->type = J_OBJ;
		return parse_items(jp, v, 1, depth);
	}
	if (c == '[') {
		v->type = J_ARR;
		return parse_items(jp, v, 0, depth);
	}
	if (c == '"') {
		v->type = J_STR;
		return parse_string(jp, &v->str, &v->len);
	}
	static const struct {
		const char *word;
		enum jtype type;
		int num;
	} words[] = {{"null", J_NULL, 0}, {"true", J_BOOL, 1}, {"false", J_BOOL, 0}};
	for (size_t i = 0; i < 3; i++) {
		size_t n = strlen(words[i].word);
		if ((size_t)(jp->end - jp->p) >= n && memcmp(jp->p, words[i].word, n) == 0) {
			jp->p += n;
			v->type = words[i].type;
			v->num = words[i].num;
			return 0;
		}
	}
	if (c == '-' || (c >= '0' && c <= '9')) {
		char buf[32];
		size_t n = 0;
		while (jp->p < jp->end && n < sizeof(buf) - 1 &&
		       (*jp->p == '-' || (*jp->p >= '0' && *jp->p <= '9')))
			buf[n++] = *jp->p++;
		buf[n] = '\0';
		char *endp;
		errno = 0;
		v->num = strtoll(buf, &endp, 10);
		if (errno || *endp)
			return fail(jp, "bad number (integers only)");
		v->type = J_NUM;
		return 0;
	}
	return fail(jp, "unexpected character");
}

static const jval *field(const jval *obj, const char *key)
{
	for (size_t i = 0; i < obj->len; i++)
		if (strcmp(obj->keys[i], key) == 0)
			return &obj->items[i];
	return NULL;
}

/* A string field; NULL when absent. Sets `*len` when asked. */
static const char *str_field(const jval *obj, const char *key, size_t *len)
{
	const jval *v = field(obj, key);
	if (!v || v->type != J_STR)
		return NULL;
	if (len)
		*len = v->len;
	return v->str;
}

static long long num_field(const jval *obj, const char *key, long long def)
{
	const jval *v = field(obj, key);
	return v && v->type == J_NUM ? v->num : def;
}

/* ---- the command ---- */

/* All of `f` (at most 64 MiB) in a new buffer the caller frees, its size
 * in `*len`; NULL with the reason in `why` (`whylen` bytes). */
static char *read_all(FILE *f, size_t *len, char *why, size_t whylen)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	while (buf) {
		size_t k = fread(buf + n, 1, cap - n, f);
		n += k;
		if (k == 0)
			break;
		if (n == cap) {
			if (cap >= (64u << 20)) {
				snprintf(why, whylen, "over 64 MiB, the most a batch reads");
				free(buf);
				return NULL;
			}
			char *nb = realloc(buf, cap *= 2);
			if (!nb) {
				snprintf(why, whylen, "out of memory");
				free(buf);
				return NULL;
			}
			buf = nb;
		}
	}
	if (!buf) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	/* A read error (a directory named as FILE, a closed stdin) is not
	 * an empty list: it was reported as "not a JSON list". */
	if (ferror(f)) {
		snprintf(why, whylen, "%s", strerror(errno));
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

/* Adds one member; returns its index or a negative code with `why` set. */
static int add_member(porter_batch *b, const jval *m, char *why, size_t whylen)
{
	if (m->type != J_OBJ) {
		snprintf(why, whylen, "not an object");
		return PORTER_E_INVAL;
	}
	const char *op = str_field(m, "op", NULL);
	int timeout = (int)num_field(m, "timeout_ms", 0);
	if (!op) {
		snprintf(why, whylen, "no \"op\"");
		return PORTER_E_INVAL;
	}
	if (strcmp(op, "ping") == 0) {
		size_t len = 0;
		const char *payload = str_field(m, "payload", &len);
		return porter_batch_add_ping(b, payload ? payload : "", payload ? len : 0,
					     (uint32_t)num_field(m, "delay_ms", 0), timeout);
	}
	if (strcmp(op, "db") == 0) {
		const char *sql = str_field(m, "sql", NULL);
		const char *given = str_field(m, "conninfo", NULL);
		/* Completed as `porterctl db` completes it (PG* environment,
		 * login name): porterd's own environment and user are not the
		 * caller's. */
		char *conninfo = NULL;
		if (given) {
			db_target t = {.conninfo = given};
			conninfo = ctl_db_conninfo(&t, why, whylen);
			if (!conninfo)
				return PORTER_E_INVAL;
		}
		const jval *pv = field(m, "params");
		size_t n = pv && pv->type == J_ARR ? pv->len : 0;
		porter_db_param *params = calloc(n ? n : 1, sizeof(*params));
		if (!params) {
			free(conninfo);
			return PORTER_E_NOMEM;
		}
		for (size_t i = 0; i < n; i++) {
			const jval *p = &pv->items[i];
			if (p->type == J_STR) {
				params[i].value = p->str;
				params[i].len = p->len;
			} else if (p->type != J_NULL) {
				snprintf(why, whylen, "params must be strings or null");
				free(params);
				free(conninfo);
				return PORTER_E_INVAL;
			}
		}
		int rc = porter_batch_add_db_query(b, (uint64_t)num_field(m, "session", 0),
						   conninfo, sql, params, n, timeout);
		free(params);
		free(conninfo);
		if (rc < 0)
			snprintf(why, whylen,
				 "a db member needs \"sql\" and \"conninfo\" or \"session\"");
		return rc;
	}
	if (strcmp(op, "http") == 0) {
		const char *method = str_field(m, "method", NULL);
		const char *url = str_field(m, "url", NULL);
		size_t blen = 0;
		const char *body = str_field(m, "body", &blen);
		const jval *hv = field(m, "headers");
		size_t n = hv && hv->type == J_ARR ? hv->len : 0;
		const char **headers = calloc(n ? n : 1, sizeof(*headers));
		if (!headers)
			return PORTER_E_NOMEM;
		for (size_t i = 0; i < n; i++)
			headers[i] = hv->items[i].type == J_STR ? hv->items[i].str : "";
		porter_http_options opts = {.struct_size = sizeof(porter_http_options),
					    .follow_redirects = 1};
		int rc = porter_batch_add_http(b, method ? method : "GET", url, headers, n, body,
					       body ? blen : 0, &opts, timeout);
		free(headers);
		if (rc < 0)
			snprintf(why, whylen, "an http member needs a \"url\"");
		return rc;
	}
	if (strcmp(op, "file_read") == 0) {
		int rc = porter_batch_add_file_read(b, str_field(m, "root", NULL),
						    str_field(m, "path", NULL),
						    (uint64_t)num_field(m, "offset", 0),
						    (uint64_t)num_field(m, "length", 0), timeout);
		if (rc < 0)
			snprintf(why, whylen, "a file_read member needs a \"path\"");
		return rc;
	}
	snprintf(why, whylen, "unknown op \"%s\" (ping, db, http, file_read)", op);
	return PORTER_E_INVAL;
}

/* Prints `msg` and a newline, its own line breaks and the indent after
 * them (libpq's "...failed: No such file or directory\n\tIs the server
 * running...") as one space: a member is one line. */
static void one_line(const char *msg)
{
	for (const char *p = msg; *p; p++) {
		if (*p != '\n' && *p != '\r') {
			putchar(*p);
			continue;
		}
		while (p[1] == '\n' || p[1] == '\r' || p[1] == '\t' || p[1] == ' ')
			p++;
		if (p[1])
			putchar(' ');
	}
	putchar('\n');
}

/* One line (or JSON object) for member `i`. */
static void print_member(const ctl_opts *o, const porter_batch_result *r, size_t i, const char *op)
{
	int st = porter_batch_result_status(r, i);
	char summary[256] = "";
	porter_db_result *db = NULL;
	porter_http_response *h = NULL;
	const void *data;
	size_t len;
	uint64_t size;

	if (st == 0 && strcmp(op, "ping") == 0 && porter_batch_result_ping(r, i, &data, &len) == 0)
		snprintf(summary, sizeof(summary), "echoed %zu bytes", len);
	else if (strcmp(op, "db") == 0 && porter_batch_result_db(r, i, &db) == 0) {
		if (st == 0)
			snprintf(summary, sizeof(summary), "%s, %d row(s)%s%s",
				 porter_db_cmdstatus(db), porter_db_ntuples(db),
				 porter_db_ntuples(db) && porter_db_nfields(db) ? ", first value "
										: "",
				 porter_db_ntuples(db) && porter_db_nfields(db)
					 ? porter_db_getvalue(db, 0, 0)
					 : "");
		else if (porter_db_sqlstate(db)[0])
			/* A failed connection has none ("SQLSTATE ;" said nothing). */
			snprintf(summary, sizeof(summary), "SQLSTATE %s", porter_db_sqlstate(db));
		porter_db_result_free(db);
	} else if (st == 0 && strcmp(op, "http") == 0 && porter_batch_result_http(r, i, &h) == 0) {
		porter_http_response_body(h, &len);
		snprintf(summary, sizeof(summary), "HTTP %d, %zu body bytes",
			 porter_http_response_status(h), len);
		porter_http_response_free(h);
	} else if (st == 0 && porter_batch_result_file_read(r, i, &data, &len, &size) == 0) {
		snprintf(summary, sizeof(summary), "%zu of %llu bytes", len,
			 (unsigned long long)size);
	}
	const char *msg = st ? porter_batch_result_message(r, i) : "";
	if (o->json) {
		printf("%s{\"index\":%zu,\"op\":\"%s\",\"status\":%d,\"error\":\"%s\",\"message\":",
		       i ? "," : "", i, op, st, st ? porter_error_name(st) : "");
		ctl_json_cstr(stdout, msg);
		printf(",\"summary\":");
		ctl_json_cstr(stdout, summary);
		putchar('}');
	} else {
		printf("%-5zu %-10s %-26s %s%s", i, op, st ? porter_error_name(st) : "ok", summary,
		       st && summary[0] ? "; " : "");
		one_line(msg);
	}
}

static const char batch_help[] =
	"Usage: porterctl batch [--first] [FILE]\n"
	"Runs a JSON list of operations (stdin when no FILE or '-') as one batch:\n"
	"all of them (join), or with --first until one succeeds (select).\n"
	"  [{\"op\":\"db\",\"conninfo\":\"...\",\"sql\":\"...\",\"params\":[\"1\",null]},\n"
	"   {\"op\":\"http\",\"method\":\"GET\",\"url\":\"...\",\"headers\":[],\"body\":\"\"},\n"
	"   {\"op\":\"file_read\",\"root\":\"...\",\"path\":\"...\"},\n"
	"   {\"op\":\"ping\",\"payload\":\"x\",\"delay_ms\":10}]\n"
	"Each may add \"timeout_ms\". A db member's conninfo is completed as 'porterctl\n"
	"db' completes it (PG* environment, login name; see 'porterctl db --help').\n"
	"Prints one line per member (JSON with --json);\n"
	"exits 1 when a member failed (with --first: when none succeeded), or\n"
	"when the input is not such a list.\n";

int ctl_batch(const ctl_opts *o, int argc, char **argv)
{
	int mode = PORTER_BATCH_ALL;
	const char *path = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(batch_help, stdout);
			return EXIT_OK;
		}
		if (strcmp(argv[i], "--first") == 0)
			mode = PORTER_BATCH_FIRST;
		/* An option we do not know is a usage error (exit 2), not a file
		 * that cannot be opened (exit 1); "-" is stdin, and "--" ends
		 * the options for a FILE whose name starts with '-'. */
		else if (strcmp(argv[i], "--") == 0 && !path && i + 1 < argc)
			path = argv[++i];
		else if (argv[i][0] == '-' && argv[i][1] != '\0')
			return ctl_error(
				EXIT_USAGE, "usage",
				"batch: unknown option '%s' (see 'porterctl batch --help')",
				argv[i]);
		else if (!path)
			path = argv[i];
		else
			return ctl_error(EXIT_USAGE, "usage", "batch: expected [--first] [FILE]");
	}
	FILE *f = !path || strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	if (!f)
		return ctl_error(EXIT_FAILED, "io", "batch: %s: %s", path, strerror(errno));
	size_t len = 0;
	char unread[128] = "";
	const char *what = f == stdin ? "stdin" : path;
	char *text = read_all(f, &len, unread, sizeof(unread));
	if (f != stdin)
		fclose(f);
	if (!text)
		return ctl_error(EXIT_FAILED, "io", "batch: cannot read %s: %s", what, unread);

	jparser jp = {.start = text, .p = text, .end = text + len};
	jval root;
	int status = EXIT_OK;
	porter_batch *b = NULL;
	porter_batch_result *r = NULL;
	if (parse_value(&jp, &root, 0) < 0 || (skip_ws(&jp), jp.p != jp.end) ||
	    root.type != J_ARR) {
		/* The input is data, not the command line: a failed operation. */
		status = ctl_error(EXIT_FAILED, "input",
				   "batch: input is not a JSON list of operations: %s",
				   jp.err[0] ? jp.err : "expected one JSON array");
		goto out_root;
	}
	b = porter_batch_new(mode);
	if (!b) {
		status = ctl_error(EXIT_FAILED, "nomem", "batch: out of memory");
		goto out_root;
	}
	for (size_t i = 0; i < root.len; i++) {
		char why[160] = "";
		if (add_member(b, &root.items[i], why, sizeof(why)) < 0) {
			status = ctl_error(EXIT_FAILED, "input", "batch: operation %zu: %s", i,
					   why[0] ? why : porter_last_error_message());
			goto out;
		}
	}
	int rc = porter_batch_run(b, 0, o->timeout_ms, &r);
	if (rc < 0) {
		status = ctl_fail(rc);
		goto out;
	}
	int winner = porter_batch_result_winner(r);
	if (o->json)
		printf("{\"winner\":%d,\"results\":[", winner);
	else
		printf("%-5s %-10s %-26s %s\n", "#", "op", "status", "result");
	for (size_t i = 0; i < porter_batch_result_count(r); i++) {
		print_member(o, r, i, str_field(&root.items[i], "op", NULL));
		if (porter_batch_result_status(r, i) != 0 &&
		    !(mode == PORTER_BATCH_FIRST && winner >= 0))
			status = EXIT_FAILED;
	}
	if (o->json)
		printf("]}\n");
	else if (mode == PORTER_BATCH_FIRST)
		printf(winner >= 0 ? "winner: %d\n" : "no member succeeded\n", winner);
out:
	porter_batch_result_free(r);
	porter_batch_free(b);
out_root:
	jfree(&root);
	free(text);
	return status;
}
