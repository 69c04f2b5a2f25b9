/* Unit tests of daemon/httppolicy.c: URL, method and header rules, origins
 * and the credential list, with no daemon and no network. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "harness.h"
#include "httppolicy.h"
#include "porter_errors.h"

static char msg[512];

static int header(const char *name, const char *value)
{
	msg[0] = '\0';
	return httppolicy_header(name, value, "http://api.example.com:8080/x", msg, sizeof(msg));
}

START_TEST(framing_and_hop_by_hop_headers_are_refused)
{
	static const char *const refused[] = {
		"Content-Length",
		"content-length",
		"Transfer-Encoding",
		"Connection",
		"Keep-Alive",
		"TE",
		"te",
		"Trailer",
		"Upgrade",
		"Expect",
		"HTTP2-Settings",
		"Proxy-Authorization",
		"Proxy-Connection",
		"proxy-anything",
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		ck_assert_int_eq(header(refused[i], "1"), PORTER_E_INVAL);
		ck_assert_msg(strstr(msg, refused[i]), "message does not name %s: %s", refused[i],
			      msg);
	}
	/* Near misses are ordinary headers. */
	ck_assert_int_eq(header("Content-Type", "text/plain"), HTTPPOLICY_SEND);
	ck_assert_int_eq(header("Content-Length-X", "1"), HTTPPOLICY_SEND);
	ck_assert_int_eq(header("TEA", "1"), HTTPPOLICY_SEND);
	ck_assert_int_eq(header("Proxy", "1"), HTTPPOLICY_SEND);
}
END_TEST

START_TEST(control_characters_are_refused)
{
	ck_assert_int_eq(header("X-A", "a\r\nInjected: 1"), PORTER_E_INVAL);
	ck_assert_ptr_nonnull(strstr(msg, "X-A"));
	ck_assert_int_eq(header("X-A", "a\nb"), PORTER_E_INVAL);
	ck_assert_int_eq(header("X-A", "a\rb"), PORTER_E_INVAL);
	ck_assert_int_eq(header("X-A", "a\001b"), PORTER_E_INVAL);
	ck_assert_int_eq(header("X-A", "a\177b"), PORTER_E_INVAL);
	ck_assert_int_eq(header("X-A", "tab\tok"), HTTPPOLICY_SEND);
	ck_assert_int_eq(header("X-A", "caf\xc3\xa9"), HTTPPOLICY_SEND); /* obs-text */
	ck_assert_int_eq(header("X-A", ""), HTTPPOLICY_SEND);
	/* Names are RFC 9110 tokens; the echo of a bad name carries no
	 * control byte into the message (and so into logs). */
	ck_assert_int_eq(header("X\r\nInjected", "1"), PORTER_E_INVAL);
	ck_assert_ptr_null(strchr(msg, '\r'));
	ck_assert_ptr_null(strchr(msg, '\n'));
	ck_assert_int_eq(header("X A", "1"), PORTER_E_INVAL);
	ck_assert_int_eq(header("X:A", "1"), PORTER_E_INVAL);
	ck_assert_int_eq(header(":authority", "1"), PORTER_E_INVAL);
	ck_assert_int_eq(header("", "1"), PORTER_E_INVAL);
	ck_assert_int_eq(header(NULL, "1"), PORTER_E_INVAL);
	ck_assert_int_eq(header("X-A", NULL), PORTER_E_INVAL);
	ck_assert_int_eq(header("X-Weird!#$%&'*+.^_`|~0", "1"), HTTPPOLICY_SEND);
}
END_TEST

START_TEST(host_only_when_it_names_the_url)
{
	ck_assert_int_eq(header("Host", "api.example.com"), HTTPPOLICY_DROP);
	ck_assert_int_eq(header("host", "API.example.com:8080"), HTTPPOLICY_DROP);
	ck_assert_int_eq(header("Host", "api.example.com:80"), PORTER_E_INVAL);
	ck_assert_int_eq(header("Host", "internal.example.com"), PORTER_E_INVAL);
	ck_assert_ptr_nonnull(strstr(msg, "Host"));
	ck_assert_int_eq(header("Host", "api.example.com.evil"), PORTER_E_INVAL);
	ck_assert_int_eq(header("Host", "api.example.com:8080x"), PORTER_E_INVAL);
	ck_assert_int_eq(header("Host", ""), PORTER_E_INVAL);
	/* Default ports count. */
	ck_assert_int_eq(
		httppolicy_header("Host", "h.example:443", "https://h.example/", msg, sizeof(msg)),
		HTTPPOLICY_DROP);
}
END_TEST

START_TEST(credential_names)
{
	static const char *const creds[] = {
		"Authorization",
		"Proxy-Authorization",
		"Cookie",
		"X-Api-Key",
		"x-api-key",
		"X-Auth-Token",
		"X-Amz-Security-Token",
		"X-CSRF-Token",
		"X-Session-Id",
		"X-Client-Secret",
		"X-Password",
		"X-Goog-Api-Key",
		"X-Signature",
		"WWW-Authenticate",
	};
	for (size_t i = 0; i < sizeof(creds) / sizeof(creds[0]); i++)
		ck_assert_msg(httppolicy_is_credential(creds[i], strlen(creds[i])), "%s", creds[i]);
	static const char *const plain[] = {"Accept", "Content-Type", "User-Agent", "X-Test-Keep",
					    "Referer"};
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
		ck_assert_msg(!httppolicy_is_credential(plain[i], strlen(plain[i])), "%s",
			      plain[i]);
	/* Only the given length counts (the name of a "Name: value" line). */
	ck_assert(!httppolicy_is_credential("X-A: token", 3));
}
END_TEST

START_TEST(origins)
{
	char a[300], b[300];
	httppolicy_origin("http://Example.com/a", a, sizeof(a));
	httppolicy_origin("http://example.com:80/b?c", b, sizeof(b));
	ck_assert_str_eq(a, b);
	httppolicy_origin("https://example.com/a", b, sizeof(b));
	ck_assert_str_ne(a, b);
	httppolicy_origin("http://example.com:8080/a", b, sizeof(b));
	ck_assert_str_ne(a, b);
	httppolicy_origin("http://localhost/a", b, sizeof(b));
	ck_assert_str_ne(a, b);
	httppolicy_origin("not a url", b, sizeof(b));
	ck_assert_str_eq(b, "");
}
END_TEST

START_TEST(urls_and_methods)
{
	char *hosts[] = {"api.example.com", "*.cdn.example"};
	config_list allow = {.items = hosts, .n = 2};
	ck_assert_int_eq(httppolicy_check_url(NULL, 0, "http://x/", msg, sizeof(msg)), 0);
	ck_assert_int_eq(httppolicy_check_url(NULL, 0, "ftp://x/", msg, sizeof(msg)),
			 PORTER_E_HTTP_SCHEME);
	ck_assert_int_eq(httppolicy_check_url(NULL, 0, "file:///etc/passwd", msg, sizeof(msg)),
			 PORTER_E_HTTP_SCHEME);
	ck_assert_int_eq(
		httppolicy_check_url(&allow, 0, "https://api.example.com/", msg, sizeof(msg)), 0);
	ck_assert_int_eq(
		httppolicy_check_url(&allow, 0, "https://a.cdn.example/", msg, sizeof(msg)), 0);
	ck_assert_int_eq(httppolicy_check_url(&allow, 0, "https://cdn.example/", msg, sizeof(msg)),
			 PORTER_E_HTTP_HOST);
	ck_assert_int_eq(
		httppolicy_check_url(&allow, 0, "https://api.example.com.evil/", msg, sizeof(msg)),
		PORTER_E_HTTP_HOST);
	ck_assert_int_eq(httppolicy_check_url(&allow, 0, "http://[::1/", msg, sizeof(msg)),
			 PORTER_E_INVAL);
	ck_assert(httppolicy_valid_method("GET"));
	ck_assert(httppolicy_valid_method("M-SEARCH"));
	ck_assert(!httppolicy_valid_method(""));
	ck_assert(!httppolicy_valid_method("GET /x HTTP/1.1\r\n"));
	ck_assert(!httppolicy_valid_method("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")); /* 33 */
}
END_TEST

/* An allow-list entry names a port, or admits the scheme's default port
 * only: "api.internal" must not reach api.internal:6379. */
START_TEST(allow_list_entries_bind_ports)
{
	char *hosts[] = {"api.internal",       "web.internal:8080", "any.internal:*",
			 "*.cdn.example:8443", "[::1]:9000",        "[fe80::1]"};
	config_list allow = {.items = hosts, .n = 6};
	static const struct {
		const char *url;
		int rc;
	} cases[] = {
		{"http://api.internal/", 0},
		{"https://api.internal/", 0},
		{"http://api.internal:80/", 0},
		{"https://api.internal:443/x", 0},
		{"http://api.internal:6379/", PORTER_E_HTTP_HOST},
		{"http://api.internal:443/", PORTER_E_HTTP_HOST},
		{"https://api.internal:80/", PORTER_E_HTTP_HOST},
		{"http://web.internal:8080/", 0},
		{"http://web.internal:08080/", 0},
		{"http://web.internal/", PORTER_E_HTTP_HOST},
		{"http://web.internal:8081/", PORTER_E_HTTP_HOST},
		{"http://any.internal:6379/", 0},
		{"https://any.internal/", 0},
		{"https://a.cdn.example:8443/", 0},
		{"https://a.cdn.example/", PORTER_E_HTTP_HOST},
		{"https://cdn.example:8443/", PORTER_E_HTTP_HOST},
		{"http://[::1]:9000/", 0},
		{"http://[::1]/", PORTER_E_HTTP_HOST},
		{"http://[fe80::1]/", 0},
		{"http://[fe80::1]:22/", PORTER_E_HTTP_HOST},
		{"http://web.internal.:8080/", PORTER_E_HTTP_HOST},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(httppolicy_check_url(&allow, 1, cases[i].url, msg, sizeof(msg)) ==
				      cases[i].rc,
			      "%s: expected %d, got %s", cases[i].url, cases[i].rc, msg);
	/* The refusal says which setting admits the port. */
	ck_assert_int_eq(
		httppolicy_check_url(&allow, 1, "http://api.internal:6379/", msg, sizeof(msg)),
		PORTER_E_HTTP_HOST);
	ck_assert_ptr_nonnull(strstr(msg, "http-allow-hosts"));
	ck_assert_ptr_nonnull(strstr(msg, "6379"));
}
END_TEST

/* No allow-list: porterd's own uid may reach any host, a foreign uid none,
 * and the message names the setting to change. */
START_TEST(empty_allow_list_fails_closed_for_foreign_uids)
{
	config_list none = {.items = NULL, .n = 0};
	ck_assert_int_eq(httppolicy_check_url(&none, 0, "http://127.0.0.1:6379/", msg, sizeof(msg)),
			 0);
	ck_assert_int_eq(httppolicy_check_url(NULL, 0, "http://169.254.169.254/", msg, sizeof(msg)),
			 0);
	ck_assert_int_eq(httppolicy_check_url(&none, 1, "http://127.0.0.1:6379/", msg, sizeof(msg)),
			 PORTER_E_HTTP_HOST);
	ck_assert_ptr_nonnull(strstr(msg, "http-allow-hosts"));
	ck_assert_int_eq(httppolicy_check_url(NULL, 1, "http://169.254.169.254/", msg, sizeof(msg)),
			 PORTER_E_HTTP_HOST);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {framing_and_hop_by_hop_headers_are_refused,
				control_characters_are_refused,
				host_only_when_it_names_the_url,
				allow_list_entries_bind_ports,
				empty_allow_list_fails_closed_for_foreign_uids,
				credential_names,
				origins,
				urls_and_methods,
				NULL};
	return th_suite("httppolicy", "httppolicy", 0, tests);
}

TH_MAIN(suite)
