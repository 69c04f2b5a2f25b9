/* dbpolicy - conninfo checks and porterd's own connect values; see dbpolicy.h. */
#include "dbpolicy.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "porter_errors.h"

/* Who may set a keyword. */
enum kw_class {
	KW_ANY,   /* every client */
	KW_LOCAL, /* local clients only: it would use porterd's own identity */
	KW_NEVER, /* nobody: libpq would read a file on the loop thread */
};

/*
 * Every keyword libpq 15 knows, with who may set it. A keyword missing here
 * is refused: a newer libpq's keyword is judged before it is allowed.
 */
static const struct {
	const char *kw;
	enum kw_class cls;
} keywords[] = {
	{"host", KW_ANY},
	{"hostaddr", KW_ANY},
	{"port", KW_ANY},
	{"dbname", KW_ANY},
	{"user", KW_ANY},
	{"password", KW_ANY},
	{"application_name", KW_ANY},
	{"fallback_application_name", KW_ANY},
	{"connect_timeout", KW_ANY},
	{"options", KW_ANY},
	{"client_encoding", KW_ANY},
	{"keepalives", KW_ANY},
	{"keepalives_idle", KW_ANY},
	{"keepalives_interval", KW_ANY},
	{"keepalives_count", KW_ANY},
	{"tcp_user_timeout", KW_ANY},
	{"sslmode", KW_ANY},
	{"sslcompression", KW_ANY},
	{"sslsni", KW_ANY},
	{"ssl_min_protocol_version", KW_ANY},
	{"ssl_max_protocol_version", KW_ANY},
	{"channel_binding", KW_ANY},
	{"requirepeer", KW_ANY},
	{"target_session_attrs", KW_ANY},
	/* Kerberos uses porterd's ticket cache; replication connections are
	 * no use to pooled queries and take a walsender slot. */
	{"gssencmode", KW_LOCAL},
	{"krbsrvname", KW_LOCAL},
	{"gsslib", KW_LOCAL},
	{"replication", KW_LOCAL},
	/* Files and services. */
	{"passfile", KW_NEVER},
	{"service", KW_NEVER},
	{"sslcert", KW_NEVER},
	{"sslkey", KW_NEVER},
	{"sslpassword", KW_NEVER},
	{"sslrootcert", KW_NEVER},
	{"sslcrl", KW_NEVER},
	{"sslcrldir", KW_NEVER},
	{"sslkeylogfile", KW_NEVER},
};

/* Keywords porterd always sets itself; a client's value is replaced. */
static const char *const own_keywords[] = {"passfile", "sslcert", "sslkey", "sslcrl",
					   "sslrootcert"};
#define N_OWN (sizeof(own_keywords) / sizeof(own_keywords[0]))

static int kw_class(const char *kw)
{
	for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
		if (strcmp(keywords[i].kw, kw) == 0)
			return (int)keywords[i].cls;
	return -1;
}

int dbpolicy_secret(const char *kw)
{
	return strcmp(kw, "password") == 0 || strcmp(kw, "sslpassword") == 0;
}

static void set_why(char *why, size_t cap, const char *fmt, const char *arg)
{
	if (cap)
		snprintf(why, cap, fmt, arg);
}

static int has_control(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 1;
	return 0;
}

static const char *opt_val(const PQconninfoOption *opts, const char *kw)
{
	for (const PQconninfoOption *o = opts; o->keyword; o++)
		if (strcmp(o->keyword, kw) == 0)
			return o->val && o->val[0] ? o->val : NULL;
	return NULL;
}

/* The `i`th comma-separated item of `list` into `out`: "" when `list` is
 * NULL, the list's only item when it has one (libpq's rule for port). 0
 * when there is no such item or it does not fit. */
static int list_item(const char *list, size_t i, char *out, size_t cap)
{
	out[0] = 0;
	if (!list)
		return 1;
	if (!strchr(list, ','))
		i = 0;
	const char *p = list;
	for (size_t k = 0; k < i; k++) {
		p = strchr(p, ',');
		if (!p)
			return 0;
		p++;
	}
	size_t n = strcspn(p, ",");
	if (n >= cap)
		return 0;
	memcpy(out, p, n);
	out[n] = 0;
	return 1;
}

static size_t list_len(const char *list)
{
	size_t n = 1;
	for (const char *p = list; p && *p; p++)
		n += *p == ',';
	return n;
}

static int is_socket_dir(const char *host)
{
	return host[0] == '/' || host[0] == '@';
}

int dbpolicy_target_match(const char *pattern, const char *host, const char *port)
{
	if (!port || !port[0])
		port = "5432";
	if (is_socket_dir(pattern))
		return strcmp(pattern, host) == 0;
	if (is_socket_dir(host))
		return 0;
	const char *colon = strrchr(pattern, ':');
	if (!colon || colon == pattern)
		return 0;
	const char *pport = colon + 1;
	if (strcmp(pport, "*") != 0 && strcmp(pport, port) != 0)
		return 0;
	size_t plen = (size_t)(colon - pattern);
	/* "[::1]" matches the address ::1. */
	if (pattern[0] == '[' && plen >= 2 && pattern[plen - 1] == ']') {
		pattern++;
		plen -= 2;
	}
	size_t hlen = strlen(host);
	if (plen >= 2 && pattern[0] == '*' && pattern[1] == '.') {
		/* "*.example.com": any name below example.com, not itself. */
		size_t slen = plen - 1; /* ".example.com" */
		return hlen > slen && strncasecmp(host + hlen - slen, pattern + 1, slen) == 0;
	}
	return hlen == plen && strncasecmp(host, pattern, plen) == 0;
}

static int target_listed(const config_list *targets, const char *host, const char *port)
{
	for (size_t i = 0; targets && i < targets->n; i++)
		if (dbpolicy_target_match(targets->items[i], host, port))
			return 1;
	return 0;
}

/* A foreign client's hosts, hostaddrs and ports: each named, each listed. */
static int check_targets(const PQconninfoOption *opts, const config_list *targets, char *why,
			 size_t cap)
{
	const char *hosts = opt_val(opts, "host");
	const char *addrs = opt_val(opts, "hostaddr");
	const char *ports = opt_val(opts, "port");
	size_t n = list_len(hosts ? hosts : addrs);
	if (!hosts && !addrs) {
		set_why(why, cap, "%sname the database host (host=)", "");
		return PORTER_E_DENIED;
	}
	/* libpq refuses these too; checking here keeps every item looked at. */
	if ((hosts && addrs && list_len(addrs) != n) ||
	    (ports && list_len(ports) != 1 && list_len(ports) != n)) {
		set_why(why, cap, "%shost, hostaddr and port lists do not match", "");
		return PORTER_E_INVAL;
	}
	for (size_t i = 0; i < n; i++) {
		char host[256], addr[256], port[32];
		if (!list_item(hosts, i, host, sizeof(host)) ||
		    !list_item(addrs, i, addr, sizeof(addr)) ||
		    !list_item(ports, i, port, sizeof(port))) {
			set_why(why, cap, "%shost, hostaddr and port lists do not match", "");
			return PORTER_E_INVAL;
		}
		if (!host[0] && !addr[0]) {
			set_why(why, cap, "%san empty host means porterd's default socket", "");
			return PORTER_E_DENIED;
		}
		if ((host[0] && !target_listed(targets, host, port)) ||
		    (addr[0] && !target_listed(targets, addr, port))) {
			set_why(why, cap,
				"database target %s is not in db-allow-targets for this client",
				host[0] ? host : addr);
			return PORTER_E_DENIED;
		}
	}
	return 0;
}

int dbpolicy_check(const char *conninfo, int foreign, const config_list *targets, char *why,
		   size_t cap)
{
	char *err = NULL;
	int rc = 0;
	if (cap)
		why[0] = 0;
	PQconninfoOption *opts = conninfo ? PQconninfoParse(conninfo, &err) : NULL;
	if (!opts) {
		/* libpq's message may quote the text, password included. */
		set_why(why, cap, "%sinvalid conninfo", "");
		PQfreemem(err);
		return PORTER_E_INVAL;
	}
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!o->val)
			continue;
		int cls = kw_class(o->keyword);
		if (cls < 0 || cls == KW_NEVER) {
			set_why(why, cap,
				"conninfo keyword '%s' is not allowed (porterd never lets a client "
				"name a file, a service or an unknown option)",
				o->keyword);
			rc = PORTER_E_DENIED;
			goto out;
		}
		if (cls == KW_LOCAL && foreign) {
			set_why(why, cap, "conninfo keyword '%s' is for porterd's own user only",
				o->keyword);
			rc = PORTER_E_DENIED;
			goto out;
		}
		if (has_control(o->val)) {
			set_why(why, cap, "conninfo value of '%s' holds a control character",
				o->keyword);
			rc = PORTER_E_INVAL;
			goto out;
		}
	}
	if (!foreign)
		goto out;
	if (!opt_val(opts, "user") || !opt_val(opts, "password")) {
		set_why(why, cap, "%sa database user and password are required (user=, password=)",
			"");
		rc = PORTER_E_DENIED;
		goto out;
	}
	rc = check_targets(opts, targets, why, cap);
out:
	PQconninfoFree(opts);
	return rc;
}

/* The file of the first db-tls-root-cert item admitting `host` on `port`,
 * or NULL. */
static const char *cert_for(const config_list *certs, const char *host, const char *port)
{
	for (size_t i = 0; i < certs->n; i++) {
		const char *eq = strchr(certs->items[i], '=');
		char pat[300];
		if (!eq || (size_t)(eq - certs->items[i]) >= sizeof(pat))
			continue;
		memcpy(pat, certs->items[i], (size_t)(eq - certs->items[i]));
		pat[eq - certs->items[i]] = 0;
		if (dbpolicy_target_match(pat, host, port))
			return eq + 1;
	}
	return NULL;
}

int dbpolicy_root_cert(const char *conninfo, const config_list *certs, const char **file)
{
	*file = NULL;
	if (!certs || !certs->n || !conninfo)
		return 0;
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
	if (!opts) {
		PQfreemem(err);
		return PORTER_E_INVAL;
	}
	const char *hosts = opt_val(opts, "host");
	const char *ports = opt_val(opts, "port");
	if (!hosts)
		hosts = opt_val(opts, "hostaddr");
	/* libpq takes one sslrootcert for every host it tries: hosts whose
	 * targets have different ones (or one has none) cannot share it, or
	 * a later host would be verified against another target's CA. */
	int rc = 0;
	size_t n = list_len(hosts);
	for (size_t i = 0; i < n && rc == 0; i++) {
		char host[256], port[32];
		if (!list_item(hosts, i, host, sizeof(host)) ||
		    !list_item(ports, i, port, sizeof(port))) {
			rc = PORTER_E_INVAL;
			break;
		}
		const char *f = cert_for(certs, host, port);
		if (i == 0)
			*file = f;
		else if (f != *file && (!f || !*file || strcmp(f, *file) != 0))
			rc = PORTER_E_INVAL;
	}
	if (rc < 0)
		*file = NULL;
	PQconninfoFree(opts);
	return rc;
}

static int own_keyword(const char *kw)
{
	for (size_t i = 0; i < N_OWN; i++)
		if (strcmp(own_keywords[i], kw) == 0)
			return 1;
	return 0;
}

int dbpolicy_params_build(const char *conninfo, const char *hostaddr, const char *root_cert,
			  int foreign, dbpolicy_params *out)
{
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
	if (!opts) {
		PQfreemem(err);
		return PORTER_E_INVAL;
	}
	/* hostaddr, gssencmode, client_encoding and the terminator */
	size_t n = N_OWN + 4;
	for (PQconninfoOption *o = opts; o->keyword; o++)
		n++;
	const char **kw = calloc(n, sizeof(*kw));
	const char **vals = calloc(n, sizeof(*vals));
	if (!kw || !vals) {
		free(kw);
		free(vals);
		PQconninfoFree(opts);
		return PORTER_E_NOMEM;
	}
	size_t k = 0;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!o->val || own_keyword(o->keyword) ||
		    strcmp(o->keyword, "client_encoding") == 0 ||
		    (hostaddr && strcmp(o->keyword, "hostaddr") == 0) ||
		    (foreign && strcmp(o->keyword, "gssencmode") == 0))
			continue;
		kw[k] = o->keyword;
		vals[k++] = o->val;
	}
	if (hostaddr) {
		kw[k] = "hostaddr";
		vals[k++] = hostaddr;
	}
	if (foreign) {
		kw[k] = "gssencmode";
		vals[k++] = "disable";
	}
	/* Every text porterd hands on is UTF-8 whatever the database's
	 * encoding: the server converts. A startup parameter outranks the
	 * database's and the role's settings and an options='-c ...' given
	 * with it. */
	kw[k] = "client_encoding";
	vals[k++] = "UTF8";
	for (size_t i = 0; i < N_OWN; i++) {
		kw[k] = own_keywords[i];
		vals[k++] = strcmp(own_keywords[i], "sslrootcert") == 0 && root_cert
				    ? root_cert
				    : DBPOLICY_NO_FILE;
	}
	out->keywords = kw;
	out->values = vals;
	out->opts = opts;
	return 0;
}

void dbpolicy_params_free(dbpolicy_params *p)
{
	free(p->keywords);
	free(p->values);
	if (p->opts)
		PQconninfoFree(p->opts);
	p->keywords = p->values = NULL;
	p->opts = NULL;
}

/* Length of the valid UTF-8 sequence at `p` (1-4), or 0. */
static size_t utf8_len(const unsigned char *p)
{
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		return (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (p[0] >= 0xe0 && p[0] <= 0xef) {
		unsigned lo = p[0] == 0xe0 ? 0xa0 : 0x80, hi = p[0] == 0xed ? 0x9f : 0xbf;
		return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 ? 3 : 0;
	}
	if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		unsigned lo = p[0] == 0xf0 ? 0x90 : 0x80, hi = p[0] == 0xf4 ? 0x8f : 0xbf;
		return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 && (p[3] & 0xc0) == 0x80
			       ? 4
			       : 0;
	}
	return 0;
}

static char *clean(const char *in, char *out, size_t cap, int one_line)
{
	size_t n = 0;
	if (!cap)
		return out;
	const unsigned char *p = (const unsigned char *)(in ? in : "");
	/* libpq's messages end in a newline; ours do not. A newline is never
	 * part of a multi-byte character, so `end` cuts none. */
	const unsigned char *end = p + strlen((const char *)p);
	while (end > p && end[-1] == '\n')
		end--;
	while (p < end) {
		char esc[8];
		const char *piece = (const char *)p;
		size_t len = utf8_len(p), step = len;
		if (len == 1 && (*p < 0x20 || *p == 0x7f) &&
		    (one_line || (*p != '\n' && *p != '\t'))) {
			if (*p == '\n' || *p == '\t')
				snprintf(esc, sizeof(esc), "\\%c", *p == '\n' ? 'n' : 't');
			else
				snprintf(esc, sizeof(esc), "\\x%02x", *p);
			piece = esc;
			len = strlen(esc);
		} else if (!len) {
			snprintf(esc, sizeof(esc), "\\x%02x", *p);
			piece = esc;
			len = strlen(esc);
			step = 1;
		}
		if (n + len >= cap)
			break;
		memcpy(out + n, piece, len);
		n += len;
		p += step;
	}
	out[n] = 0;
	return out;
}

char *dbpolicy_clean(const char *in, char *out, size_t cap)
{
	return clean(in, out, cap, 0);
}

char *dbpolicy_clean_line(const char *in, char *out, size_t cap)
{
	return clean(in, out, cap, 1);
}

void dbpolicy_mask(const char *conninfo, char *out, size_t cap)
{
	char *err = NULL;
	size_t n = 0;
	if (cap == 0)
		return;
	out[0] = 0;
	PQconninfoOption *opts = conninfo ? PQconninfoParse(conninfo, &err) : NULL;
	if (!opts) {
		snprintf(out, cap, "(unparsable conninfo)");
		PQfreemem(err);
		return;
	}
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!o->val || !o->val[0])
			continue;
		char val[256];
		dbpolicy_clean_line(o->val, val, sizeof(val));
		int k = snprintf(out + n, cap - n, "%s%s=%s", n ? " " : "", o->keyword,
				 dbpolicy_secret(o->keyword) ? "***" : val);
		if (k < 0 || (size_t)k >= cap - n) {
			/* Never leave half a keyword=value that might be cut
			 * inside a name that reads like something else. */
			out[n] = 0;
			break;
		}
		n += (size_t)k;
	}
	PQconninfoFree(opts);
}
