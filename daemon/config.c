/* config - the settings table, flags and file; see config.h. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "confsafe.h"
#include "porter_errors.h"
#include "porter_version.h"
#include "sockpath.h"

enum key_type {
	KT_U32,   /* uint32_t, bounded */
	KT_U64,   /* uint64_t, bounded */
	KT_PATH,  /* char[CONFIG_PATH_MAX] */
	KT_STR,   /* char *, owned */
	KT_LIST,  /* config_list, comma-separated */
	KT_LEVEL, /* enum log_level */
	KT_UIDS,  /* allow_uids + n_allow_uids */
	KT_GIDS,  /* allow_gids + n_allow_gids */
	KT_BOOL,  /* int: true/false/yes/no/1/0 */
};

typedef struct config_key {
	const char *name; /* flag without "--", and the file key */
	char short_opt;   /* 0 when none */
	enum key_type type;
	size_t offset;     /* into struct config */
	uint64_t min, max; /* numeric bounds */
	const char *def;   /* default, parsed like any value; NULL for none */
	const char *arg;   /* metavariable for --help */
	const char *help;
} config_key;

#define OFF(field) offsetof(config, field)

/* Every setting, once. Defaults are strings so --help shows exactly what
 * the parser applies. The table is kept out of clang-format: one row per
 * key reads better than what it makes of rows that differ in shape. */
/* clang-format off */
static const config_key keys[] = {
	{"socket", 's', KT_PATH, OFF(socket_path), 0, 0, NULL, "PATH",
	 "listen on PATH (default: $XDG_RUNTIME_DIR/porter/porter.sock, else /tmp/porter-$UID/porter.sock)"},
	{"workers", 'w', KT_U32, OFF(workers), 0, CONFIG_MAX_WORKERS, "0", "N",
	 "worker loops; 0 means half the CPUs porterd may run on, at least one (a relay shares the machine with its clients and servers: on 2 CPUs one loop batches more queries per PostgreSQL round trip and costs fewer wake-ups)"},
	{"busy-poll", 0, KT_U32, OFF(busy_poll_us), 0, 100000, "200", "US",
	 "a worker that just had I/O polls without sleeping this long before it blocks, yielding the CPU to any other runnable thread; saves a wake-up per hop on machines where waking is slow; 0 always blocks"},
	{"log-level", 'l', KT_LEVEL, OFF(log_level), 0, 0, "info", "LEVEL",
	 "error, warn, info or debug"},
	{"allow-uid", 0, KT_UIDS, 0, 0, 0, NULL, "LIST",
	 "comma-separated uids allowed to connect, or 'any' to let the socket's mode and group decide (default: the daemon's own uid; with a socket passed by systemd: any)"},
	{"allow-gid", 0, KT_GIDS, 0, 0, 0, NULL, "LIST",
	 "comma-separated gids whose members may connect too (the peer's primary group or any supplementary group, as the kernel gave them at connect); without socket activation the socket is made reachable for them (default: none)"},
	{"hello-max-frame", 0, KT_U32, OFF(hello_max_frame), 1024, 1u << 30, "65536", "BYTES",
	 "largest frame accepted before Hello"},
	{"max-frame", 0, KT_U32, OFF(max_frame), 1024, 1u << 30, "16777216", "BYTES",
	 "largest request frame"},
	{"max-inflight", 0, KT_U32, OFF(max_inflight), 1, 65536, "256", "N",
	 "requests processed at once per connection (more are read as replies go out)"},
	{"output-cap", 0, KT_U64, OFF(output_cap), 4096, UINT64_MAX / 2, "67108864", "BYTES",
	 "unsent reply bytes before a client that does not read is dropped"},
	{"uid-max-connections", 0, KT_U32, OFF(uid_max_connections), 0, 1u << 24, "0", "N",
	 "connections one uid may hold open; 0 means half of porterd's descriptor limit (one uid can never take every descriptor)"},
	{"uid-max-inflight", 0, KT_U32, OFF(uid_max_inflight), 1, 1u << 24, "4096", "N",
	 "requests one uid may have in flight over all its connections; more are answered PORTER_E_BUSY"},
	{"uid-max-buffered", 0, KT_U64, OFF(uid_max_buffered), 65536, UINT64_MAX / 2, "268435456",
	 "BYTES",
	 "bytes one uid may hold over all its connections: unsent replies, read buffers, requests of 64 KiB or more until answered, whole HTTP responses as they arrive, the results a batch keeps until it answers; the connection that passes it with a reply (or with a request while its replies are unread) is dropped, a request, response or batch that passes it fails (PORTER_E_BUSY)"},
	{"output-soft-limit", 0, KT_U64, OFF(output_soft), 65536, UINT64_MAX / 2, "268435456",
	 "BYTES",
	 "unsent reply bytes of all connections together past which a connection holding more than 1 MiB unsent is dropped when it adds more, if its uid holds more than an even share of the limit (the limit over the uids with unsent bytes)"},
	{"output-hard-limit", 0, KT_U64, OFF(output_hard), 65536, UINT64_MAX / 2, "1073741824",
	 "BYTES",
	 "unsent reply bytes of all connections together past which any connection that adds more is dropped"},
	{"idle-timeout", 0, KT_U32, OFF(idle_timeout_ms), 0, UINT32_MAX, "0", "MS",
	 "close connections idle this long; 0 never"},
	{"frame-timeout", 0, KT_U32, OFF(frame_timeout_ms), 1, UINT32_MAX, "10000", "MS",
	 "close connections stalled mid-frame (or silent before Hello) this long"},
	{"default-timeout", 0, KT_U32, OFF(default_timeout_ms), 1, UINT32_MAX, "30000", "MS",
	 "deadline of requests that give none"},
	{"max-timeout", 0, KT_U32, OFF(max_timeout_ms), 1, UINT32_MAX, "3600000", "MS",
	 "longest deadline honoured"},
	{"shutdown-grace", 0, KT_U32, OFF(shutdown_grace_ms), 0, UINT32_MAX, "5000", "MS",
	 "time in-flight work gets to finish on SIGTERM"},
	{"batch-max-members", 0, KT_U32, OFF(batch_max_members), 1, 4096, "64", "N",
	 "members one Batch request may have"},
	{"metrics-file", 0, KT_STR, OFF(metrics_file), 0, 0, "", "PATH",
	 "write Prometheus text metrics to PATH (replaced atomically); empty means off"},
	{"metrics-listen", 0, KT_STR, OFF(metrics_listen), 0, 0, "", "ADDR:PORT",
	 "serve GET /metrics on 127.0.0.1:PORT or [::1]:PORT; empty means off"},
	{"metrics-interval", 0, KT_U32, OFF(metrics_interval_ms), 100, 3600000, "10000", "MS",
	 "how often metrics-file is rewritten"},
	{"metrics-uid-usage", 0, KT_BOOL, OFF(metrics_uid_usage), 0, 0, "false", "BOOL",
	 "add what each uid holds (porter_uid_usage{uid,resource}) to the metrics; whoever reads them (the file: porterd's group, which holds its clients under the system unit; the endpoint: every local user) then sees every uid's activity, which porterctl stats never shows a foreign client"},
	{"file-roots", 0, KT_LIST, OFF(file_roots), 0, 0, NULL, "LIST",
	 "file roots as NAME=PATH[:uids=U1 U2...][:gids=G1 G2...][:mounts],... ; a PATH ending in /%u gives each uid a private directory there; a root without uids=/gids= serves porterd's own uid only, unless per-user; paths never cross a mount point inside a root, nor is a root on FUSE served, unless it has :mounts (default: one root named 'files' at $XDG_DATA_HOME/porter/files, else ~/.local/share/porter/files, created 0700); clients name a root and a path inside it"},
	{"file-chunk-size", 0, KT_U32, OFF(file_chunk), 4096, 8u << 20, "1048576", "BYTES",
	 "largest file chunk carried by one reply or request; bigger reads and writes stream"},
	{"file-resolve", 0, KT_STR, OFF(file_resolve), 0, 0, "auto", "MODE",
	 "path confinement: auto (openat2 RESOLVE_BENEATH, walking components with O_NOFOLLOW where the kernel lacks openat2) or walk (always walk)"},
	{"file-max-streams", 0, KT_U32, OFF(file_max_streams), 1, 65536, "64", "N",
	 "file streams (large reads, chunked writes, watches) one connection may hold open"},
	{"file-max-streams-per-uid", 0, KT_U32, OFF(file_max_streams_per_uid), 1, 1u << 20, "256",
	 "N",
	 "file streams (large reads, chunked writes, watches) one client uid may hold open over all workers and connections; more are refused with PORTER_E_BUSY"},
	{"file-stream-idle", 0, KT_U32, OFF(file_stream_idle_ms), 100, UINT32_MAX, "10000", "MS",
	 "reclaim a file stream or watch nobody used for this long (its next read fails with PORTER_E_TIMEOUT saying so)"},
	{"file-pass-fd", 0, KT_BOOL, OFF(file_pass_fd), 0, 0, "true", "BOOL",
	 "answer a client's reads and writes with the open file (a descriptor passed over the Unix socket, opened by porterd inside the root as always), so it does the I/O itself; false sends every byte through the socket"},
	{"file-loop-fast-path", 0, KT_BOOL, OFF(file_fast_path), 0, 0, "true", "BOOL",
	 "do a small read or a stat on the worker loop when the kernel can without blocking (openat2 RESOLVE_CACHED, preadv2 RWF_NOWAIT; Linux 5.12+), instead of a trip through the thread pool; what would block still goes to the pool; needs a restart"},
	{"file-max-mode", 0, KT_STR, OFF(file_max_mode), 0, 0, "0660", "OCTAL",
	 "most permissive mode a created file gets, whatever the client asks (at most 0777: setuid, setgid and sticky are never given)"},
	{"file-max-dir-mode", 0, KT_STR, OFF(file_max_dir_mode), 0, 0, "0770", "OCTAL",
	 "most permissive mode a created directory gets"},
	{"db-pool-size", 0, KT_U32, OFF(db_pool_size), 1, 10000, "8", "N",
	 "pooled PostgreSQL connections per worker, uid and conninfo (statements known to be fast may use one more)"},
	{"db-pool-idle", 0, KT_U32, OFF(db_pool_idle_ms), 100, UINT32_MAX, "60000", "MS",
	 "close pooled PostgreSQL connections idle this long"},
	{"db-statement-cache", 0, KT_U32, OFF(db_statement_cache), 0, 4096, "64", "N",
	 "statements kept prepared on each pooled PostgreSQL connection, most recently used first; 0 prepares none"},
	{"db-session-idle", 0, KT_U32, OFF(db_session_idle_ms), 0, UINT32_MAX, "600000", "MS",
	 "close (and roll back) database sessions idle this long; 0 never"},
	{"db-session-grace", 0, KT_U32, OFF(db_session_grace_ms), 0, UINT32_MAX, "10000", "MS",
	 "close a client's database sessions once all its connections are gone this long"},
	{"db-max-sessions", 0, KT_U32, OFF(db_max_sessions), 1, 1000000, "1024", "N",
	 "open database sessions per worker"},
	{"db-stream-idle", 0, KT_U32, OFF(db_stream_idle_ms), 100, UINT32_MAX, "30000", "MS",
	 "abandon a streamed pooled query (a cursor) whose client has not asked for its next chunk this long, so the pooled connection serves others again; the client's next read gets PORTER_E_TIMEOUT (streams on a session follow db-session-idle)"},
	{"db-max-connections-per-uid", 0, KT_U32, OFF(db_max_connections_per_uid), 0, 1000000, "32",
	 "N",
	 "PostgreSQL connections (sessions and pooled) one client uid other than porterd's own may hold over all workers, so that one uid cannot take every server slot; beyond it DbOpen gets PORTER_E_BUSY and pooled queries wait for the uid's own connections; 0 means no limit"},
	{"db-allow-targets", 0, KT_LIST,
	 OFF(db_allow_targets), 0, 0, NULL, "LIST", "database targets clients of other uids may reach, as host:port patterns ('db.example.com:5432', '10.0.0.7:*', '*.db.example.com:5432', '[::1]:5432') or Unix-socket directories ('/run/postgresql', which the server then authenticates as porterd's own OS user); they must also give user and password (default: none; porterd's own uid may reach any)"},
	{"db-tls-root-cert", 0, KT_LIST, OFF(db_tls_root_cert), 0, 0, NULL, "LIST",
	 "CA file PostgreSQL servers are verified with, per target: target=FILE,... with targets as in db-allow-targets (clients cannot name files; without an entry no root certificate is used, so sslmode=verify-* fails)"},
	{"http-max-response", 0, KT_U64, OFF(http_max_response), 1024, 1ull << 30, "8388608",
	 "BYTES",
	 "largest HTTP response body returned whole (also capped by max-frame); larger bodies must be streamed"},
	{"http-max-redirects", 0, KT_U32, OFF(http_max_redirects), 0, 100, "10", "N",
	 "HTTP redirects followed at most"},
	{"http-chunk-size", 0, KT_U32, OFF(http_chunk_size), 4096, 8u << 20, "1048576", "BYTES",
	 "chunk size of streamed HTTP bodies, and the most a client may ask for"},
	{"http-stream-idle", 0, KT_U32, OFF(http_stream_idle_ms), 100, UINT32_MAX, "10000", "MS",
	 "reclaim an HTTP stream nobody pulls for this long (its next read fails with PORTER_E_TIMEOUT)"},
	{"http-max-streams", 0, KT_U32, OFF(http_max_streams), 1, 1u << 20, "256", "N",
	 "open HTTP streams per worker (each holds up to about two chunks)"},
	{"http-max-streams-per-uid", 0, KT_U32, OFF(http_max_streams_per_uid), 1, 1u << 20, "64",
	 "N", "open HTTP streams per client uid, over all workers"},
	{"http-connect-timeout", 0, KT_U32, OFF(http_connect_timeout_ms), 1, UINT32_MAX, "10000",
	 "MS", "bound of one HTTP connection attempt (within the request's deadline)"},
	{"http-max-host-connections", 0, KT_U32, OFF(http_max_host_connections), 0, 65536, "0", "N",
	 "HTTP connections per host and worker; 0 means no limit"},
	{"http-allow-hosts", 0, KT_LIST, OFF(http_allow_hosts), 0, 0, NULL, "LIST",
	 "hosts HTTP may reach, comma-separated: 'host' (default port only), 'host:8080', 'host:*', '*.example.com' for subdomains; empty: any for porterd's own uid, none for other uids"},
	{"http-ca-file", 0, KT_STR, OFF(http_ca_file), 0, 0, NULL, "FILE",
	 "CA bundle for HTTPS (default: the system's)"},
	{"http-ca-path", 0, KT_STR, OFF(http_ca_path), 0, 0, NULL, "DIR",
	 "directory of CA certificates for HTTPS"},
	{"http-tls-verify", 0, KT_BOOL, OFF(http_tls_verify), 0, 0, "true", "BOOL",
	 "verify HTTPS certificates and host names"},
	{"http-share", 0, KT_BOOL, OFF(http_share), 0, 0, "true", "BOOL",
	 "share the DNS cache across worker loops (TLS sessions stay per uid and worker)"},
};
/* clang-format on */

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

static const config_key *find_key(const char *name)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	if (!s[0] || s[0] == '-' || isspace((unsigned char)s[0]))
		return PORTER_E_INVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return PORTER_E_INVAL;
	*out = v;
	return 0;
}

static void list_clear(config_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

_Static_assert(sizeof(uid_t) == sizeof(uint32_t) && sizeof(gid_t) == sizeof(uint32_t),
	       "uids and gids are parsed as uint32_t");

/* Parses a comma-separated list of numeric ids (`what`: "uid" or "gid")
 * into `ids` (CONFIG_MAX_UIDS entries); `*n` is set only on success. */
static int parse_ids(const char *v, const char *what, uint32_t *ids, size_t *n, char *why,
		     size_t whylen)
{
	char buf[1024];
	size_t k = 0;
	uint32_t got[CONFIG_MAX_UIDS];
	uint64_t u;
	if (strlen(v) >= sizeof(buf)) {
		snprintf(why, whylen, "list too long");
		return PORTER_E_INVAL;
	}
	strcpy(buf, v);
	char *save = NULL;
	for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		if (k == CONFIG_MAX_UIDS || parse_u64(tok, 0, UINT32_MAX - 1, &u)) {
			snprintf(why, whylen, "expected up to %d comma-separated %ss, got '%s'",
				 CONFIG_MAX_UIDS, what, v);
			return PORTER_E_INVAL;
		}
		got[k++] = (uint32_t)u;
	}
	if (k == 0) {
		snprintf(why, whylen, "expected at least one %s", what);
		return PORTER_E_INVAL;
	}
	memcpy(ids, got, k * sizeof(got[0]));
	*n = k;
	return 0;
}

/* Applies one value; on error writes the reason (no prefix) to `why`. */
static int apply(config *c, const config_key *k, const char *v, char *why, size_t whylen)
{
	void *field = (char *)c + k->offset;
	uint64_t u;

	switch (k->type) {
	case KT_U32:
	case KT_U64:
		if (parse_u64(v, k->min, k->max, &u)) {
			snprintf(why, whylen, "expected an integer in %llu..%llu, got '%s'",
				 (unsigned long long)k->min, (unsigned long long)k->max, v);
			return PORTER_E_INVAL;
		}
		if (k->type == KT_U32)
			*(uint32_t *)field = (uint32_t)u;
		else
			*(uint64_t *)field = u;
		return 0;
	case KT_PATH:
		if (v[0] == '\0' || strlen(v) >= CONFIG_PATH_MAX) {
			snprintf(why, whylen, "path empty or longer than %d bytes",
				 CONFIG_PATH_MAX - 1);
			return PORTER_E_INVAL;
		}
		strcpy((char *)field, v);
		return 0;
	case KT_STR: {
		/* An empty value turns an optional setting off. */
		char *s = v[0] ? strdup(v) : NULL;
		if (v[0] && !s) {
			snprintf(why, whylen, "out of memory");
			return PORTER_E_NOMEM;
		}
		free(*(char **)field);
		*(char **)field = s;
		return 0;
	}
	case KT_LIST: {
		config_list nl = {0};
		const char *p = v;
		while (*p) {
			const char *e = strchr(p, ',');
			size_t n = e ? (size_t)(e - p) : strlen(p);
			while (n && isspace((unsigned char)*p)) {
				p++;
				n--;
			}
			while (n && isspace((unsigned char)p[n - 1]))
				n--;
			if (n) {
				char **items = realloc(nl.items, (nl.n + 1) * sizeof(*items));
				char *item = items ? strndup(p, n) : NULL;
				if (!item) {
					free(items ? items : nl.items);
					nl.items = NULL;
					if (items)
						nl.items = items;
					list_clear(&nl);
					snprintf(why, whylen, "out of memory");
					return PORTER_E_NOMEM;
				}
				nl.items = items;
				nl.items[nl.n++] = item;
			}
			if (!e)
				break;
			p = e + 1;
		}
		list_clear((config_list *)field);
		*(config_list *)field = nl;
		return 0;
	}
	case KT_LEVEL:
		if (log_parse_level(v, (enum log_level *)field)) {
			snprintf(why, whylen, "expected error, warn, info or debug, got '%s'", v);
			return PORTER_E_INVAL;
		}
		return 0;
	case KT_BOOL:
		if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1") || !strcmp(v, "on"))
			*(int *)field = 1;
		else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "0") ||
			 !strcmp(v, "off"))
			*(int *)field = 0;
		else {
			snprintf(why, whylen, "expected true or false, got '%s'", v);
			return PORTER_E_INVAL;
		}
		return 0;
	case KT_UIDS:
		if (strcmp(v, "any") == 0) {
			c->allow_any_uid = 1;
			c->n_allow_uids = 0;
			c->allow_uid_set = 1;
			return 0;
		}
		if (parse_ids(v, "uid", c->allow_uids, &c->n_allow_uids, why, whylen) < 0)
			return PORTER_E_INVAL;
		c->allow_any_uid = 0;
		c->allow_uid_set = 1;
		return 0;
	case KT_GIDS:
		/* An empty value clears the list (a file may undo a flag). */
		if (!v[0]) {
			c->n_allow_gids = 0;
			return 0;
		}
		return parse_ids(v, "gid", c->allow_gids, &c->n_allow_gids, why, whylen);
	}
	return PORTER_E_INVAL;
}

void config_defaults(config *c)
{
	char why[256];
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < N_KEYS; i++)
		if (keys[i].def)
			apply(c, &keys[i], keys[i].def, why, sizeof(why));
}

void config_free(config *c)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		void *field = (char *)c + keys[i].offset;
		if (keys[i].type == KT_STR) {
			free(*(char **)field);
			*(char **)field = NULL;
		} else if (keys[i].type == KT_LIST) {
			list_clear((config_list *)field);
		}
	}
	free(c->config_file);
	c->config_file = NULL;
}

config *config_alloc(void)
{
	config *c = malloc(sizeof(*c));
	if (!c)
		return NULL;
	static _Atomic uint64_t serial;
	config_defaults(c);
	atomic_init(&c->refs, 1);
	c->generation = atomic_fetch_add_explicit(&serial, 1, memory_order_relaxed) + 1;
	return c;
}

config *config_ref(config *c)
{
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	return c;
}

void config_unref(config *c)
{
	if (!c)
		return;
	/* acq_rel: every holder's reads happen before the free. */
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1) {
		config_free(c);
		free(c);
	}
}

void config_usage(FILE *out)
{
	fprintf(out,
		"Usage: porterd [OPTION]...\n"
		"Porter daemon: performs PostgreSQL, HTTP and file I/O for client\n"
		"processes that talk to it over a Unix socket.\n"
		"\n"
		"  -c, --config FILE          read settings from FILE (keys as below, without --);\n"
		"                             default " PORTER_DEFAULT_CONFIG " when it exists,\n"
		"                             '' for none\n"
		"      --check-config         validate the settings, print them and exit\n"
		"      --print-example-config print a commented file with every default and exit\n"
		"  -h, --help                 show this help and exit\n"
		"  -V, --version              show the version and exit\n"
		"\n"
		"Settings (flag = file key; flags override the file):\n");
	for (size_t i = 0; i < N_KEYS; i++) {
		const config_key *k = &keys[i];
		char lhs[64];
		if (k->short_opt)
			snprintf(lhs, sizeof(lhs), "-%c, --%s %s", k->short_opt, k->name, k->arg);
		else
			snprintf(lhs, sizeof(lhs), "    --%s %s", k->name, k->arg);
		fprintf(out, "  %-27s %s", lhs, k->help);
		if (k->def && k->def[0])
			fprintf(out, " (default: %s)", k->def);
		fputc('\n', out);
	}
	fprintf(out, "\n"
		     "SIGHUP reloads the configuration file (flags still win); settings that\n"
		     "cannot change live (socket, workers, file-roots, file-resolve,\n"
		     "file-max-mode, file-max-dir-mode) need a restart.\n"
		     "\n"
		     "Exit status: 0 after a clean shutdown, 1 on a start-up failure, 2 on bad\n"
		     "usage or settings.\n");
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int config_load_file(config *c, const char *path, FILE *err)
{
	FILE *f = confsafe_open(path, err);
	if (!f)
		return PORTER_E_INVAL;
	char line[4096];
	int lineno = 0, rc = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		size_t len = strlen(line);
		if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
			fprintf(err, "porterd: %s:%d: line longer than %zu bytes\n", path, lineno,
				sizeof(line) - 2);
			rc = PORTER_E_INVAL;
			break;
		}
		char *s = trim(line);
		if (!*s || *s == '#')
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			fprintf(err, "porterd: %s:%d: expected 'key = value'\n", path, lineno);
			rc = PORTER_E_INVAL;
			continue;
		}
		*eq = '\0';
		char *key = trim(s), *val = trim(eq + 1);
		/* Accept key_name as well as key-name. */
		for (char *p = key; *p; p++)
			if (*p == '_')
				*p = '-';
		const config_key *k = find_key(key);
		char why[256];
		if (!k) {
			fprintf(err, "porterd: %s:%d: %s: unknown key\n", path, lineno, key);
			rc = PORTER_E_INVAL;
		} else if (apply(c, k, val, why, sizeof(why)) < 0) {
			fprintf(err, "porterd: %s:%d: %s: %s\n", path, lineno, key, why);
			rc = PORTER_E_INVAL;
		}
	}
	fclose(f);
	return rc;
}

enum { OPT_CHECK_CONFIG = 1000, OPT_PRINT_EXAMPLE, OPT_KEY_BASE = 1100 };

/* The value of the option getopt just returned. A BOOL key takes an
 * optional argument, which getopt gives only as "--key=false"; --help
 * shows "--key BOOL", so a bool word right after the flag is its value and
 * is consumed here (in both passes: getopt moves a word it took for an
 * operand to the end of argv). */
static const char *config_optval(int opt, int argc, char **argv)
{
	static const char *const words[] = {"true", "false", "yes", "no", "1", "0", "on", "off"};
	if (optarg || opt < OPT_KEY_BASE || opt >= OPT_KEY_BASE + (int)N_KEYS ||
	    keys[opt - OPT_KEY_BASE].type != KT_BOOL || optind >= argc)
		return optarg;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcmp(argv[optind], words[i]) == 0)
			return argv[optind++];
	return NULL;
}

int config_parse_args(config *c, int argc, char **argv, FILE *out, FILE *err)
{
	struct option opts[N_KEYS + 6];
	char shorts[3 * N_KEYS + 8];
	size_t ns = 0, no = 0;
	int opt;

	shorts[ns++] = ':';
	shorts[ns++] = 'c';
	shorts[ns++] = ':';
	shorts[ns++] = 'h';
	shorts[ns++] = 'V';
	opts[no++] = (struct option){"config", required_argument, NULL, 'c'};
	opts[no++] = (struct option){"check-config", no_argument, NULL, OPT_CHECK_CONFIG};
	opts[no++] = (struct option){"print-example-config", no_argument, NULL, OPT_PRINT_EXAMPLE};
	opts[no++] = (struct option){"help", no_argument, NULL, 'h'};
	opts[no++] = (struct option){"version", no_argument, NULL, 'V'};
	for (size_t i = 0; i < N_KEYS; i++) {
		opts[no++] = (struct option){keys[i].name,
					     keys[i].type == KT_BOOL ? optional_argument
								     : required_argument,
					     NULL, OPT_KEY_BASE + (int)i};
		if (keys[i].short_opt) {
			shorts[ns++] = keys[i].short_opt;
			shorts[ns++] = ':';
		}
	}
	opts[no] = (struct option){NULL, 0, NULL, 0};
	shorts[ns] = '\0';

	/* The file is applied first so that flags override it wherever they
	 * appear on the command line. */
	optind = 0; /* glibc: full re-initialisation, so tests can parse twice */
	opterr = 0;
	const char *file = NULL;
	int explicit_file = 0;
	while ((opt = getopt_long(argc, argv, shorts, opts, NULL)) != -1) {
		if (opt == 'c') {
			file = optarg;
			explicit_file = 1;
		} else {
			(void)config_optval(opt, argc, argv);
		}
	}
	/* The default file is optional: read only when it is there. Any other
	 * problem with it (unreadable, a directory) is still an error. */
	if (!explicit_file && access(PORTER_DEFAULT_CONFIG, F_OK) == 0)
		file = PORTER_DEFAULT_CONFIG;
	free(c->config_file);
	c->config_file = NULL;
	if (file && file[0]) {
		c->config_file = strdup(file);
		if (!c->config_file || config_load_file(c, file, err) < 0)
			return PORTER_E_INVAL;
	}

	optind = 0;
	while ((opt = getopt_long(argc, argv, shorts, opts, NULL)) != -1) {
		const config_key *k = NULL;
		char why[256];
		switch (opt) {
		case 'c':
			continue;
		case OPT_CHECK_CONFIG:
			c->check_only = 1;
			continue;
		case OPT_PRINT_EXAMPLE:
			c->print_example = 1;
			continue;
		case 'h':
			config_usage(out);
			return 1;
		case 'V':
			fprintf(out, "porterd %s\n", PORTER_VERSION_STRING);
			return 1;
		case ':':
			fprintf(err, "porterd: option '%s' needs a value\n", argv[optind - 1]);
			return PORTER_E_INVAL;
		case '?':
			fprintf(err, "porterd: unknown option '%s' (see --help)\n",
				argv[optind - 1]);
			return PORTER_E_INVAL;
		default:
			break;
		}
		if (opt >= OPT_KEY_BASE && opt < OPT_KEY_BASE + (int)N_KEYS)
			k = &keys[opt - OPT_KEY_BASE];
		else
			for (size_t i = 0; i < N_KEYS; i++)
				if (keys[i].short_opt == opt)
					k = &keys[i];
		if (!k) {
			fprintf(err, "porterd: unknown option (see --help)\n");
			return PORTER_E_INVAL;
		}
		const char *v = config_optval(opt, argc, argv);
		if (!v)
			v = "true";
		if (apply(c, k, v, why, sizeof(why)) < 0) {
			fprintf(err, "porterd: --%s: %s\n", k->name, why);
			return PORTER_E_INVAL;
		}
	}
	if (optind < argc) {
		fprintf(err, "porterd: unexpected argument '%s' (see --help)\n", argv[optind]);
		return PORTER_E_INVAL;
	}
	if (c->metrics_listen) {
		struct sockaddr_storage ss;
		if (config_parse_loopback(c->metrics_listen, &ss) < 0) {
			fprintf(err,
				"porterd: metrics-listen: expected 127.0.0.1:PORT or [::1]:PORT (loopback only), got '%s'\n",
				c->metrics_listen);
			return PORTER_E_INVAL;
		}
	}
	if (c->max_frame < c->hello_max_frame)
		c->hello_max_frame = c->max_frame;
	if (c->default_timeout_ms > c->max_timeout_ms)
		c->default_timeout_ms = c->max_timeout_ms;
	return 0;
}

unsigned config_default_workers(unsigned ncpu)
{
	/* porterd relays: every request it moves also costs its client and
	 * its server (PostgreSQL, an HTTP peer) CPU, usually on this same
	 * machine, and with one loop per CPU the loops take the CPUs those
	 * need. Fewer loops also batch better: one pool per loop gathers more
	 * clients' queries per PostgreSQL write and per wake-up. */
	unsigned n = ncpu / 2;
	return n < 1 ? 1 : n > CONFIG_MAX_WORKERS ? CONFIG_MAX_WORKERS : n;
}

/* The CPUs this process may run on: its affinity mask, which taskset,
 * systemd's CPUAffinity= and cgroup cpusets narrow; the online CPUs when
 * the mask cannot be read. */
static unsigned usable_cpus(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > UINT_MAX ? UINT_MAX : (unsigned)n;
}

int config_resolve(config *c)
{
	if (c->socket_path[0] == '\0' &&
	    sockpath_default(c->socket_path, sizeof(c->socket_path)) < 0)
		return PORTER_E_INVAL;
	if (c->workers == 0)
		c->workers = config_default_workers(usable_cpus());
	if (c->n_allow_uids == 0 && !c->allow_any_uid) {
		c->allow_uids[0] = getuid();
		c->n_allow_uids = 1;
	}
	return 0;
}

int config_parse_loopback(const char *s, struct sockaddr_storage *ss)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	uint64_t port;
	if (!colon || (size_t)(colon - s) >= sizeof(host) ||
	    parse_u64(colon + 1, 1, 65535, &port) < 0)
		return PORTER_E_INVAL;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return 0;
	}
	if (strcmp(host, "[::1]") == 0) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		in6->sin6_addr = in6addr_loopback;
		return 0;
	}
	return PORTER_E_INVAL;
}

int config_gid_allowed(const config *c, gid_t gid, const gid_t *groups, size_t n)
{
	for (size_t i = 0; i < c->n_allow_gids; i++) {
		if (c->allow_gids[i] == gid)
			return 1;
		for (size_t j = 0; j < n; j++)
			if (c->allow_gids[i] == groups[j])
				return 1;
	}
	return 0;
}

static int str_eq(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

static int list_eq(const config_list *a, const config_list *b)
{
	if (a->n != b->n)
		return 0;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->items[i], b->items[i]) != 0)
			return 0;
	return 1;
}

int config_keep_running(config *nc, const config *old, const char *name)
{
	const config_key *k = find_key(name);
	if (!k || (k->type != KT_STR && k->type != KT_LIST))
		return PORTER_E_INVAL;
	void *to = (char *)nc + k->offset;
	const void *from = (const char *)old + k->offset;
	if (k->type == KT_STR) {
		char *const *was = from;
		char **now = to;
		if (str_eq(*was, *now))
			return 0;
		char *copy = *was ? strdup(*was) : NULL;
		if (*was && !copy)
			return PORTER_E_NOMEM;
		free(*now);
		*now = copy;
		return 1;
	}
	const config_list *was = from;
	config_list *now = to, copy = {0};
	if (list_eq(was, now))
		return 0;
	if (was->n && !(copy.items = calloc(was->n, sizeof(char *))))
		return PORTER_E_NOMEM;
	for (; copy.n < was->n; copy.n++)
		if (!(copy.items[copy.n] = strdup(was->items[copy.n]))) {
			list_clear(&copy);
			return PORTER_E_NOMEM;
		}
	list_clear(now);
	*now = copy;
	return 1;
}

int config_uid_allowed(const config *c, uid_t uid)
{
	if (c->allow_any_uid)
		return 1;
	for (size_t i = 0; i < c->n_allow_uids; i++)
		if (c->allow_uids[i] == uid)
			return 1;
	return 0;
}

void config_dump(const config *c, FILE *out)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		const config_key *k = &keys[i];
		const void *field = (const char *)c + k->offset;
		fprintf(out, "%s = ", k->name);
		switch (k->type) {
		case KT_U32:
			fprintf(out, "%u", *(const uint32_t *)field);
			break;
		case KT_U64:
			fprintf(out, "%llu", (unsigned long long)*(const uint64_t *)field);
			break;
		case KT_PATH:
			fputs((const char *)field, out);
			break;
		case KT_STR:
			fputs(*(char *const *)field ? *(char *const *)field : "", out);
			break;
		case KT_LIST: {
			const config_list *l = field;
			for (size_t j = 0; j < l->n; j++)
				fprintf(out, "%s%s", j ? "," : "", l->items[j]);
			break;
		}
		case KT_LEVEL: {
			static const char *names[] = {[LOG_LVL_ERROR] = "error",
						      [LOG_LVL_WARN] = "warn",
						      [LOG_LVL_INFO] = "info",
						      [LOG_LVL_DEBUG] = "debug"};
			int l = *(const int *)field;
			fputs(l >= 0 && l <= LOG_LVL_DEBUG && names[l] ? names[l] : "?", out);
			break;
		}
		case KT_BOOL:
			fputs(*(const int *)field ? "true" : "false", out);
			break;
		case KT_UIDS:
			if (c->allow_any_uid)
				fputs("any", out);
			for (size_t j = 0; j < c->n_allow_uids; j++)
				fprintf(out, "%s%u", j ? "," : "", (unsigned)c->allow_uids[j]);
			break;
		case KT_GIDS:
			for (size_t j = 0; j < c->n_allow_gids; j++)
				fprintf(out, "%s%u", j ? "," : "", (unsigned)c->allow_gids[j]);
			break;
		}
		fputc('\n', out);
	}
}

void config_example(FILE *out)
{
	fprintf(out, "# porterd configuration: every setting with its built-in default.\n"
		     "#\n"
		     "# porterd reads " PORTER_DEFAULT_CONFIG " when it exists (or the file\n"
		     "# given with --config). Format: one \"key = value\" per line; blank lines\n"
		     "# and lines starting with '#' are ignored; keys are the long option names\n"
		     "# of porterd --help without \"--\"; lists are comma-separated. Command-line\n"
		     "# options override the file. Errors name the file, line and key, and\n"
		     "# \"porterd --check-config\" validates a file without starting.\n"
		     "#\n"
		     "# SIGHUP (systemctl reload porterd) re-reads this file. The limits,\n"
		     "# timeouts, allow-uid, allow-gid, log-level and metrics settings change\n"
		     "# live (connections no longer allowed are closed); socket, workers,\n"
		     "# file-roots, file-resolve and the file mode ceilings need a restart.\n"
		     "# A file with errors is rejected as a whole\n"
		     "# and the running settings stay.\n"
		     "#\n"
		     "# Generated by \"porterd --print-example-config\"; a test keeps it so.\n");
	for (size_t i = 0; i < N_KEYS; i++) {
		const config_key *k = &keys[i];
		fprintf(out, "\n# %s\n", k->help);
		if (k->def && k->def[0])
			fprintf(out, "%s = %s\n", k->name, k->def);
		else if (k->def)
			fprintf(out, "%s =\n", k->name);
		else
			fprintf(out, "#%s =\n", k->name);
	}
}
