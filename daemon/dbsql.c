/* dbsql - parameters referred to by a query's text; see dbsql.h. */
#include "dbsql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ident_start(unsigned char c)
{
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

static int ident_cont(unsigned char c)
{
	return ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

/* Skips a quoted run that starts at s[i] (the quote) and ends at the same
 * quote not doubled; `backslash` lets \ escape the next byte. Returns the
 * index after it (the end of the text when unterminated). */
static size_t skip_quoted(const char *s, size_t i, int backslash)
{
	char q = s[i++];
	for (; s[i]; i++) {
		if (backslash && s[i] == '\\' && s[i + 1])
			i++;
		else if (s[i] == q && s[i + 1] == q)
			i++;
		else if (s[i] == q)
			return i + 1;
	}
	return i;
}

/* At s[i] == '$': the length of a dollar-quote tag ($$ or $name$) there,
 * or 0 when there is none. */
static size_t dollar_tag(const char *s, size_t i)
{
	size_t j = i + 1;
	if (s[j] && ident_start((unsigned char)s[j]))
		for (j++; s[j] && ident_cont((unsigned char)s[j]) && s[j] != '$'; j++)
			;
	return s[j] == '$' ? j - i + 1 : 0;
}

unsigned dbsql_max_param(const char *s)
{
	unsigned max = 0;
	size_t i = 0;
	while (s[i]) {
		unsigned char c = (unsigned char)s[i];
		if (c == '-' && s[i + 1] == '-') {
			while (s[i] && s[i] != '\n')
				i++;
		} else if (c == '/' && s[i + 1] == '*') {
			unsigned depth = 1;
			for (i += 2; s[i] && depth; i++) {
				if (s[i] == '/' && s[i + 1] == '*')
					depth++, i++;
				else if (s[i] == '*' && s[i + 1] == '/')
					depth--, i++;
			}
		} else if (c == '\'' || c == '"') {
			/* E'...' (not the E ending an identifier) takes escapes. */
			int esc = c == '\'' && i > 0 && (s[i - 1] == 'E' || s[i - 1] == 'e') &&
				  (i == 1 || !ident_cont((unsigned char)s[i - 2]));
			i = skip_quoted(s, i, esc);
		} else if (c == '$') {
			size_t tl = dollar_tag(s, i);
			if (tl) {
				const char *end;
				for (end = s + i + tl; (end = strchr(end, '$')) != NULL; end++)
					if (strncmp(end, s + i, tl) == 0)
						break;
				i = end ? (size_t)(end - s) + tl : strlen(s);
				continue;
			}
			unsigned long n = 0;
			size_t j = i + 1;
			for (; s[j] >= '0' && s[j] <= '9'; j++)
				if (n <= DBSQL_MAX_PARAM)
					n = n * 10 + (unsigned)(s[j] - '0');
			if (j > i + 1 && n > max)
				max = n > DBSQL_MAX_PARAM ? DBSQL_MAX_PARAM + 1 : (unsigned)n;
			i = j > i + 1 ? j : i + 1;
		} else if (ident_start(c)) {
			/* A whole identifier or key word, $ and digits included. */
			while (s[i] && ident_cont((unsigned char)s[i]))
				i++;
		} else if (c >= '0' && c <= '9') {
			/* A number, and whatever identifier characters stick to it
			 * (1$1 is not a parameter to PostgreSQL either). */
			while (s[i] && (ident_cont((unsigned char)s[i]) || s[i] == '.'))
				i++;
		} else {
			i++;
		}
	}
	return max;
}

void dbsql_count_message(unsigned used, size_t given, char *out, size_t cap)
{
	snprintf(out, cap, "the statement uses %u parameter%s ($1..$%u) but %zu %s given", used,
		 used == 1 ? "" : "s", used, given, given == 1 ? "was" : "were");
}

int dbsql_bind_message(const char *msg, char *out, size_t cap)
{
	static const char lead[] = "bind message supplies ";
	char *end;
	if (!msg || strncmp(msg, lead, sizeof(lead) - 1) != 0)
		return 0;
	unsigned long given = strtoul(msg + sizeof(lead) - 1, &end, 10);
	/* The statement's name (maybe "") sits between; the count follows
	 * the last "requires ". */
	const char *req = strstr(end, "\" requires ");
	if (end == msg + sizeof(lead) - 1 || !req)
		return 0;
	req += strlen("\" requires ");
	unsigned long used = strtoul(req, &end, 10);
	if (end == req || used > DBSQL_MAX_PARAM)
		return 0;
	dbsql_count_message((unsigned)used, given, out, cap);
	return 1;
}
