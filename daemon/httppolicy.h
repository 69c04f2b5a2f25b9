/*
 * httppolicy - what porterd lets a client ask of an HTTP peer: URL schemes
 * and hosts, request methods and headers, and which headers count as
 * credentials that must not follow a redirect to another origin.
 *
 * Pure functions of their arguments (no libuv, no libcurl handles, no
 * global state beyond libcurl's URL parser), so they are unit tested on
 * their own (tests/unit/test_httppolicy.c). Thread safe.
 *
 * Every byte a client sends is an attacker's: a header that frames the
 * message (Content-Length, Transfer-Encoding) or governs the connection
 * (Connection, Keep-Alive, TE, Trailer, Upgrade, Expect, Proxy-*) would let
 * one request desynchronise an upstream connection that later carries
 * another request, so such headers are refused outright, never passed on.
 * A Host header is accepted only when it names the URL's own host (and
 * port, when it carries one); it is then dropped, since libcurl sends the
 * same value itself and a Host kept in the list would follow a redirect to
 * another host.
 */
#ifndef PORTER_HTTPPOLICY_H
#define PORTER_HTTPPOLICY_H

#include <stddef.h>

struct config_list;

/* What httppolicy_header decided about one request header. */
enum httppolicy_verdict {
	HTTPPOLICY_SEND = 0, /* pass it on as given */
	HTTPPOLICY_DROP = 1, /* valid but redundant (a Host equal to the URL's) */
};

/*
 * Checks `url` (not NULL): scheme http or https, parsable, and a host and
 * port in `allow` ("*.example.com" matches subdomains only; "host" admits
 * the scheme's default port only, 80 for http and 443 for https;
 * "host:8080" that port, "host:*" any; IPv6 addresses in brackets). An
 * empty `allow` (or NULL) admits any host for porterd's own uid and none
 * when `foreign` (the client's uid is another's): HTTP fails closed for
 * foreign clients, as db-allow-targets does. Returns 0, or
 * PORTER_E_HTTP_SCHEME, PORTER_E_HTTP_HOST, PORTER_E_INVAL or
 * PORTER_E_NOMEM with a message in `msg` (`cap` bytes, not NULL).
 */
int httppolicy_check_url(const struct config_list *allow, int foreign, const char *url, char *msg,
			 size_t cap);

/*
 * Writes "scheme://host:port" of `url` (default port filled in) to `out`
 * (`cap` bytes); "" when `url` does not parse. Two URLs are the same
 * origin when these strings are equal.
 */
void httppolicy_origin(const char *url, char *out, size_t cap);

/* 1 when `m` (not NULL) is a method token porterd sends: 1..32 letters,
 * '-' or '_'; else 0. */
int httppolicy_valid_method(const char *m);

/*
 * Checks one request header from a client against the request's `url`
 * (not NULL). `name` and `value` may be NULL (then refused). Returns
 * HTTPPOLICY_SEND or HTTPPOLICY_DROP, or PORTER_E_INVAL with a message
 * naming the header in `msg` (`cap` bytes): the name is not an RFC 9110
 * token, the value holds a control character (CR, LF, NUL, any byte below
 * 0x20 except tab, or DEL), or the header is a framing or hop-by-hop one,
 * or a Host that names another host than the URL's.
 */
int httppolicy_header(const char *name, const char *value, const char *url, char *msg, size_t cap);

/*
 * 1 when a header called `name` (`len` bytes, not NUL-terminated; not NULL)
 * carries credentials and is dropped when a redirect leaves the first
 * origin: Authorization, Proxy-Authorization, Cookie, and every name that
 * contains (case-insensitively) one of "auth", "token", "key", "secret",
 * "passw", "session", "cookie", "credential", "signature", "csrf", "xsrf"
 * (X-Api-Key, X-Auth-Token, X-Amz-Security-Token ...). Else 0.
 */
int httppolicy_is_credential(const char *name, size_t len);

#endif
