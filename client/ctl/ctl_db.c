/* ctl_db - porterctl's `db` command group: run SQL through porterd. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "porter.h"

static void json_str(const char *s, size_t len)
{
	putchar('"');
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch == '\n')
			fputs("\\n", stdout);
		else if (ch == '\t')
			fputs("\\t", stdout);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void json_cstr(const char *s)
{
	json_str(s, strlen(s));
}

/* Display width of UTF-8 text: one column per character. */
static size_t width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			w++;
	return w;
}

static void pad(const char *s, size_t w, int right)
{
	size_t n = width(s);
	if (right)
		for (size_t i = n; i < w; i++)
			putchar(' ');
	fputs(s, stdout);
	if (!right)
		for (size_t i = n; i < w; i++)
			putchar(' ');
}

/* Numbers are right-aligned, as psql does. */
static int numeric_type(uint32_t oid)
{
	return oid == 20 || oid == 21 || oid == 23 || oid == 26 || oid == 700 || oid == 701 ||
	       oid == 1700;
}

static void print_table(const porter_db_result *r)
{
	int nf = porter_db_nfields(r), nt = porter_db_ntuples(r);
	if (nf == 0) {
		printf("%s\n", porter_db_cmdstatus(r));
		return;
	}
	size_t *w = calloc((size_t)nf, sizeof(*w));
	if (!w)
		return;
	for (int c = 0; c < nf; c++) {
		w[c] = width(porter_db_fname(r, c));
		for (int i = 0; i < nt; i++) {
			size_t n = width(porter_db_getvalue(r, i, c));
			if (n > w[c])
				w[c] = n;
		}
	}
	for (int c = 0; c < nf; c++) {
		/* Headers are centred. */
		size_t n = width(porter_db_fname(r, c)), left = (w[c] - n) / 2;
		printf("%s", c ? " | " : " ");
		for (size_t k = 0; k < left; k++)
			putchar(' ');
		pad(porter_db_fname(r, c), w[c] - left, 0);
	}
	printf("\n");
	for (int c = 0; c < nf; c++) {
		printf("%s", c ? "-+-" : "-");
		for (size_t k = 0; k < w[c]; k++)
			putchar('-');
	}
	printf("-\n");
	for (int i = 0; i < nt; i++) {
		for (int c = 0; c < nf; c++) {
			printf("%s", c ? " | " : " ");
			int right = numeric_type(porter_db_ftype(r, c));
			/* Like psql: no trailing blanks after the last column. */
			if (c == nf - 1 && !right)
				fputs(porter_db_getvalue(r, i, c), stdout);
			else
				pad(porter_db_getvalue(r, i, c), w[c], right);
		}
		printf("\n");
	}
	printf("(%d row%s)\n", nt, nt == 1 ? "" : "s");
	free(w);
}

static void print_json(const porter_db_result *r)
{
	int nf = porter_db_nfields(r), nt = porter_db_ntuples(r);
	printf("{\"command\":");
	json_cstr(porter_db_cmdstatus(r));
	printf(",\"affected\":%llu,\"columns\":[", (unsigned long long)porter_db_cmdtuples(r));
	for (int c = 0; c < nf; c++) {
		printf("%s{\"name\":", c ? "," : "");
		json_cstr(porter_db_fname(r, c));
		printf(",\"type\":%u}", porter_db_ftype(r, c));
	}
	printf("],\"rows\":[");
	for (int i = 0; i < nt; i++) {
		printf("%s[", i ? "," : "");
		for (int c = 0; c < nf; c++) {
			if (c)
				putchar(',');
			if (porter_db_getisnull(r, i, c))
				fputs("null", stdout);
			else
				json_str(porter_db_getvalue(r, i, c),
					 (size_t)porter_db_getlength(r, i, c));
		}
		putchar(']');
	}
	printf("]}");
}

static int db_query(const ctl_opts *o, int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "porterctl db query: expected CONNINFO SQL [PARAM...]\n");
		return EXIT_USAGE;
	}
	size_t np = (size_t)(argc - 3);
	porter_db_param *p = calloc(np + 1, sizeof(*p));
	if (!p)
		return EXIT_FAILED;
	for (size_t i = 0; i < np; i++) {
		const char *a = argv[3 + i];
		/* \N is SQL NULL, as in COPY's text format. */
		if (strcmp(a, "\\N") != 0) {
			p[i].value = a;
			p[i].len = strlen(a);
		}
	}
	porter_db_result *r = NULL;
	int rc = porter_db_query(0, argv[1], argv[2], p, np, o->timeout_ms, &r);
	free(p);
	if (rc < 0) {
		if (o->json) {
			printf("{\"error\":{\"code\":\"%s\",\"message\":", porter_error_name(rc));
			json_cstr(r ? porter_db_message(r) : porter_last_error_message());
			printf(",\"sqlstate\":");
			json_cstr(porter_db_sqlstate(r));
			printf(",\"detail\":");
			json_cstr(porter_db_detail(r));
			printf(",\"hint\":");
			json_cstr(porter_db_hint(r));
			printf("}}\n");
		} else if (r && porter_db_sqlstate(r)[0]) {
			fprintf(stderr, "ERROR:  %s (SQLSTATE %s)\n", porter_db_message(r),
				porter_db_sqlstate(r));
			if (porter_db_detail(r)[0])
				fprintf(stderr, "DETAIL:  %s\n", porter_db_detail(r));
			if (porter_db_hint(r)[0])
				fprintf(stderr, "HINT:  %s\n", porter_db_hint(r));
		} else {
			porter_db_result_free(r);
			return ctl_fail(rc);
		}
		porter_db_result_free(r);
		return ctl_exit_code(rc);
	}
	size_t n = porter_db_nresults(r);
	if (o->json)
		printf("{\"results\":[");
	for (size_t i = 0; i < n; i++) {
		porter_db_select(r, i);
		if (o->json) {
			if (i)
				putchar(',');
			print_json(r);
		} else {
			if (i)
				putchar('\n');
			print_table(r);
		}
	}
	if (o->json)
		printf("]}\n");
	porter_db_result_free(r);
	return EXIT_OK;
}

int ctl_db(const ctl_opts *o, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "query") == 0)
		return db_query(o, argc - 1, argv + 1);
	fprintf(stderr, "porterctl db: expected 'query CONNINFO SQL [PARAM...]'\n");
	return EXIT_USAGE;
}
