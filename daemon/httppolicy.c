/* httppolicy - what a client may ask of an HTTP peer; see httppolicy.h. */
#include "httppolicy.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "porter_errors.h"

static int is_http_scheme(const char *s)
{
	return strcasecmp(s, "http") == 0 || strcasecmp(s, "https") == 0;
}

/* Splits allow-list entry `a` into its host part (length in *hl) and its
 * port part: NULL when it names none, "*" for any port, else digits. A
 * bracketed IPv6 address keeps its brackets, as libcurl gives the host. */
static const char *entry_port(const char *a, size_t *hl)
{
	const char *colon = NULL;
	if (a[0] == '[') {
		const char *close = strchr(a, ']');
		if (close && close[1] == ':')
			colon = close + 1;
	} else {
		colon = strchr(a, ':');
		/* An unbracketed IPv6 address: no port can be told apart. */
		if (colon && strchr(colon + 1, ':'))
			colon = NULL;
	}
	*hl = colon ? (size_t)(colon - a) : strlen(a);
	return colon ? colon + 1 : NULL;
}

/* Whether entry port `want` (see entry_port) admits `port` of a URL of
 * `scheme`. An entry without a port admits the scheme's default port only:
 * "api.internal" must not also reach a Redis on api.internal:6379. */
static int port_allowed(const char *want, const char *scheme, const char *port)
{
	if (!want)
		return strcmp(port, strcasecmp(scheme, "https") == 0 ? "443" : "80") == 0;
	if (strcmp(want, "*") == 0)
		return 1;
	/* "080" and "80" name the same port; libcurl gives it without zeros. */
	while (want[0] == '0' && want[1])
		want++;
	return strcmp(want, port) == 0;
}

static int host_allowed(const config_list *allow, const char *scheme, const char *host,
			const char *port)
{
	size_t hl = strlen(host);
	for (size_t i = 0; i < allow->n; i++) {
		const char *a = allow->items[i];
		size_t al;
		const char *want = entry_port(a, &al);
		int name_ok;
		if (a[0] == '*' && a[1] == '.') {
			/* "*.example.com" matches subdomains only. */
			size_t sl = al - 1;
			name_ok = hl > sl && strncasecmp(host + hl - sl, a + 1, sl) == 0;
		} else {
			name_ok = hl == al && strncasecmp(host, a, al) == 0;
		}
		if (name_ok && port_allowed(want, scheme, port))
			return 1;
	}
	return 0;
}

int httppolicy_check_url(const config_list *allow, int foreign, const char *url, char *msg,
			 size_t cap)
{
	/* Without an allow-list only the scheme matters for porterd's own
	 * uid, and libcurl's own parse (with CURLOPT_PROTOCOLS_STR) backs
	 * this prefix test up; it spares a second URL parse on every
	 * request. */
	int any_host = !allow || !allow->n;
	if (any_host && foreign) {
		/* Fail closed, as db-allow-targets does: a foreign client would
		 * otherwise have porterd's whole network position (loopback
		 * services, 169.254.169.254, firewall rules on its uid). */
		snprintf(msg, cap,
			 "HTTP is refused for clients of another uid while http-allow-hosts is "
			 "empty: list the hosts they may reach in http-allow-hosts");
		return PORTER_E_HTTP_HOST;
	}
	if (any_host &&
	    (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0))
		return 0;
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;
	int rc = 0;
	if (!u) {
		snprintf(msg, cap, "out of memory parsing the URL");
		return PORTER_E_NOMEM;
	}
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
		if (scheme && !is_http_scheme(scheme)) {
			rc = PORTER_E_HTTP_SCHEME;
			snprintf(msg, cap, "URL scheme '%.32s' not allowed (only http and https)",
				 scheme);
		} else {
			rc = PORTER_E_INVAL;
			snprintf(msg, cap, "malformed URL");
		}
		goto out;
	}
	if (!is_http_scheme(scheme)) {
		rc = PORTER_E_HTTP_SCHEME;
		snprintf(msg, cap, "URL scheme '%.32s' not allowed (only http and https)", scheme);
		goto out;
	}
	if (!any_host && !host_allowed(allow, scheme, host, port)) {
		rc = PORTER_E_HTTP_HOST;
		snprintf(msg, cap,
			 "host '%.200s' port %.8s is not in http-allow-hosts (an entry without a "
			 "port admits 80 for http and 443 for https; add host:port or host:*)",
			 host, port);
	}
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return rc;
}

/* Host and port (default filled in) of `url`, owned by the caller (free
 * with curl_free). 0, or -1 when it does not parse. */
static int host_port(const char *url, char **scheme, char **host, char **port)
{
	CURLU *u = curl_url();
	int ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		 curl_url_get(u, CURLUPART_SCHEME, scheme, 0) == CURLUE_OK &&
		 curl_url_get(u, CURLUPART_HOST, host, 0) == CURLUE_OK &&
		 curl_url_get(u, CURLUPART_PORT, port, CURLU_DEFAULT_PORT) == CURLUE_OK;
	curl_url_cleanup(u);
	return ok ? 0 : -1;
}

void httppolicy_origin(const char *url, char *out, size_t cap)
{
	char *scheme = NULL, *host = NULL, *port = NULL;
	out[0] = '\0';
	if (host_port(url, &scheme, &host, &port) == 0) {
		snprintf(out, cap, "%s://%s:%s", scheme, host, port);
		/* Host names compare without case (so do schemes). */
		for (char *p = out; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
}

int httppolicy_valid_method(const char *m)
{
	if (!m[0] || strlen(m) > 32)
		return 0;
	for (const char *p = m; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '-' ||
		      *p == '_'))
			return 0;
	return 1;
}

/* RFC 9110 tchar: the characters of a header name. */
static int is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Headers that frame the message or steer the connection. libcurl sends
 * them as given, so from a client they would desynchronise (smuggle) or
 * take over an upstream connection that other requests reuse. */
static int is_refused(const char *name)
{
	static const char *const refused[] = {
		"Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive",     "TE",
		"Trailer",        "Upgrade",           "Expect",     "HTTP2-Settings",
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (strcasecmp(name, refused[i]) == 0)
			return 1;
	/* Proxy-Authorization, Proxy-Connection ...: meant for a proxy that
	 * is the daemon's, not the client's. */
	return strncasecmp(name, "Proxy-", 6) == 0;
}

/* 1 when Host value `v` names the host (and port, if it has one) of
 * `url`. */
static int host_matches(const char *v, const char *url)
{
	char *scheme = NULL, *host = NULL, *port = NULL;
	int ok = 0;
	if (host_port(url, &scheme, &host, &port) == 0) {
		size_t hl = strlen(host);
		if (strncasecmp(v, host, hl) == 0)
			ok = v[hl] == '\0' || (v[hl] == ':' && strcmp(v + hl + 1, port) == 0);
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	return ok;
}

int httppolicy_header(const char *name, const char *value, const char *url, char *msg, size_t cap)
{
	if (!name || !name[0] || !value) {
		snprintf(msg, cap, "a request header has no name");
		return PORTER_E_INVAL;
	}
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (!is_tchar(*p)) {
			snprintf(
				msg, cap,
				"request header name '%.64s' has a character not allowed in a header name (byte 0x%02x)",
				name, *p);
			/* The name may hold the very control bytes refused:
			 * cut the echo before them. */
			for (char *m = msg; *m; m++)
				if ((unsigned char)*m < 0x20 || *m == 0x7f)
					*m = '?';
			return PORTER_E_INVAL;
		}
	for (const unsigned char *p = (const unsigned char *)value; *p; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f) {
			snprintf(
				msg, cap,
				"request header '%.64s' has a control character in its value (byte 0x%02x)",
				name, *p);
			return PORTER_E_INVAL;
		}
	if (is_refused(name)) {
		snprintf(
			msg, cap,
			"request header '%.64s' is not allowed: porterd frames the message and manages the connection itself",
			name);
		return PORTER_E_INVAL;
	}
	if (strcasecmp(name, "Host") == 0) {
		if (!host_matches(value, url)) {
			snprintf(
				msg, cap,
				"request header 'Host: %.100s' does not name the URL's host; only a matching Host is accepted",
				value);
			return PORTER_E_INVAL;
		}
		return HTTPPOLICY_DROP;
	}
	return HTTPPOLICY_SEND;
}

int httppolicy_is_credential(const char *name, size_t len)
{
	static const char *const parts[] = {
		"auth",   "token",      "key",       "secret", "passw", "session",
		"cookie", "credential", "signature", "csrf",   "xsrf",
	};
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		size_t n = strlen(parts[i]);
		for (size_t at = 0; at + n <= len; at++)
			if (strncasecmp(name + at, parts[i], n) == 0)
				return 1;
	}
	return 0;
}
