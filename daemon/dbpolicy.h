/*
 * dbpolicy - what a client's conninfo may say, and what porterd adds to it,
 * before libpq sees it.
 *
 * libpq acts with the identity of the process that calls it: it fills what
 * a conninfo leaves out from PG* variables, reads ~/.pgpass, service files
 * and ~/.postgresql certificates, and a Unix-socket connection is
 * authenticated as porterd's OS user. It also reads the files named by
 * ssl* keywords synchronously on the calling (loop) thread. So a conninfo
 * is parsed and checked here first:
 *
 * - keywords come from an allow-list; keywords that name a file or a
 *   service (passfile, service, sslcert, sslkey, sslrootcert, sslcrl,
 *   sslcrldir, sslpassword, sslkeylogfile) are refused for every client,
 *   and so is any keyword this module does not know (fail closed when a
 *   newer libpq adds one);
 * - no value may hold a control character (they would reach logs and the
 *   server's startup packet);
 * - a foreign client (uid other than porterd's own) may add no Kerberos or
 *   replication keywords, must name each host and hostaddr explicitly, each
 *   one matching a `db-allow-targets` pattern (a Unix-socket directory only
 *   when listed as such), and must bring a user name and a password
 *   (which the server must then ask for: dbconn drops a foreign client's
 *   connection that the server let in without one).
 *
 * porterd then connects with explicit values that keep its own files out:
 * passfile, sslcert, sslkey and sslcrl name a path that cannot exist, and
 * sslrootcert is the file the administrator configured for the target
 * (`db-tls-root-cert`) or such a path.
 *
 * Pure functions: no I/O, no global state; safe on any thread.
 */
#ifndef PORTER_DBPOLICY_H
#define PORTER_DBPOLICY_H

#include <stddef.h>

#include "config.h"

/* A path that can never exist (a file "inside" /dev/null): what porterd
 * gives libpq for every file it must not read. stat() fails with ENOTDIR,
 * which libpq treats as "no such file" without a message. */
#define DBPOLICY_NO_FILE "/dev/null/porterd-no-file"

/*
 * Checks client text `conninfo` (untrusted; NULL is refused) for a client
 * that is `foreign` against `targets` (db-allow-targets items; NULL or
 * empty lists nothing). Returns 0 when it may connect, PORTER_E_INVAL when
 * it cannot be parsed or a value holds a control character, PORTER_E_DENIED
 * when a keyword or a target is not allowed. On error writes a reason to
 * `why` (capacity `cap`, may be 0) that quotes no value.
 */
int dbpolicy_check(const char *conninfo, int foreign, const config_list *targets, char *why,
		   size_t cap);

/*
 * Whether target `pattern` (one db-allow-targets item) admits a connection
 * to `host` (a name, an address or a Unix-socket directory) on `port` (a
 * decimal string; NULL or "" means 5432). Patterns: "HOST:PORT" where HOST
 * is a name, an IPv4 address, "[IPv6]" or "*.domain" and PORT a number or
 * "*"; or an absolute directory ("/run/postgresql"), which admits that
 * Unix-socket directory alone, any port. Names compare case-insensitively.
 */
int dbpolicy_target_match(const char *pattern, const char *host, const char *port);

/*
 * The TLS root certificate configured for the hosts of `conninfo` (a
 * conninfo dbpolicy_check passed): `certs` holds "PATTERN=FILE" items
 * (db-tls-root-cert, NULL or empty: none), patterns as for
 * dbpolicy_target_match; each host (or hostaddr when no host is named) is
 * looked up with its port. `*file` gets a pointer into `certs`, or NULL
 * when no item admits them. Returns 0, or PORTER_E_INVAL (with `*file`
 * NULL) when its hosts have different files, or some have one and some
 * none: libpq verifies every host of a conninfo against its one
 * sslrootcert, so a later host would be checked against another target's
 * CA.
 */
int dbpolicy_root_cert(const char *conninfo, const config_list *certs, const char **file);

/* Keyword/value arrays for PQconnectStartParams (expand_dbname 0). */
typedef struct dbpolicy_params {
	const char **keywords; /* NULL-terminated; owned */
	const char **values;   /* parallel to keywords; owned */
	void *opts;            /* the parsed options the values point into */
} dbpolicy_params;

/*
 * Builds what porterd connects with from a checked `conninfo`: the values
 * it sets, `hostaddr` (NUL-terminated, or NULL: keep the client's) in place
 * of the client's hostaddr, and porterd's own passfile, sslcert, sslkey,
 * sslcrl and sslrootcert (`root_cert`, or NULL for none), and
 * client_encoding UTF8 in place of any the client gave. For a `foreign`
 * client also gssencmode=disable, so libpq does not set up GSS encryption
 * with porterd's Kerberos credentials. Returns 0, PORTER_E_INVAL or
 * PORTER_E_NOMEM; `out` is filled on success only and freed with
 * dbpolicy_params_free.
 */
int dbpolicy_params_build(const char *conninfo, const char *hostaddr, const char *root_cert,
			  int foreign, dbpolicy_params *out);

/* Frees what dbpolicy_params_build allocated; NULL members are fine. */
void dbpolicy_params_free(dbpolicy_params *p);

/* Whether keyword `kw` holds a secret (password, sslpassword). */
int dbpolicy_secret(const char *kw);

/*
 * Copies `conninfo` into `out` (capacity `cap`) as "keyword=value ..." with
 * every secret replaced by "***" and control characters escaped, for logs
 * and messages. Unparsable input is not echoed. Never fails; truncates.
 */
void dbpolicy_mask(const char *conninfo, char *out, size_t cap);

/*
 * Copies text from a server or libpq (`in`, NUL-terminated; NULL gives "")
 * into `out` (capacity `cap` > 0) with control characters other than
 * newline and tab and bytes that are not part of valid UTF-8 written as
 * "\xHH", and a trailing newline dropped. Truncates at a character
 * boundary. Returns `out`.
 */
char *dbpolicy_clean(const char *in, char *out, size_t cap);

/*
 * Like dbpolicy_clean, but newlines and tabs are escaped too ("\n", "\t"):
 * for one log line.
 */
char *dbpolicy_clean_line(const char *in, char *out, size_t cap);

#endif
