/* porterd - entry point: settings, process-wide set-up, then the server. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients.h"
#include "config.h"
#include "fs.h"
#include "http.h"
#include "log.h"
#include "dalloc.h"
#include "porter_errors.h"
#include "server.h"

extern char **environ;

/*
 * Removes every PG* variable (PGPASSFILE, PGSERVICEFILE, PGSYSCONFDIR,
 * PGHOST, PGUSER, PGSSLROOTCERT, ...): libpq fills what a client's conninfo
 * leaves out from them, which would lend porterd's environment to every
 * client. Before any thread exists (unsetenv is not thread safe).
 */
static void drop_pg_environment(void)
{
	for (;;) {
		const char *found = NULL;
		for (char **e = environ; e && *e && !found; e++)
			if (strncmp(*e, "PG", 2) == 0)
				found = *e;
		if (!found)
			return;
		char *name = strndup(found, strcspn(found, "="));
		if (!name || unsetenv(name) != 0) {
			/* Cannot remove it by name: emptying the list is safer
			 * than running with it. */
			free(name);
			clearenv();
			return;
		}
		free(name);
	}
}

/* main is where services meet conn: each registers what it drops when a
 * client connection closes, so conn names none of them. */
static void fs_on_conn_closed(const clients_conn_info *info)
{
	fs_conn_closed(info->worker, info->conn_serial);
}

int main(int argc, char **argv)
{
	drop_pg_environment();
	log_init();
	config *cfg = config_alloc();
	if (!cfg) {
		fprintf(stderr, "porterd: out of memory\n");
		return 1;
	}
	int rc = config_parse_args(cfg, argc, argv, stdout, stderr);
	if (rc != 0) {
		config_unref(cfg);
		return rc == 1 ? 0 : 2;
	}
	if (cfg->print_example) {
		config_example(stdout);
		config_unref(cfg);
		return 0;
	}
	log_set_level(cfg->log_level);
	if (config_resolve(cfg) < 0) {
		fprintf(stderr, "porterd: cannot work out the socket path; pass --socket\n");
		config_unref(cfg);
		return 2;
	}
	if (cfg->check_only) {
		if (cfg->config_file)
			printf("# read %s\n", cfg->config_file);
		config_dump(cfg, stdout);
		printf("# configuration OK\n");
		config_unref(cfg);
		return 0;
	}

	/* Test-only allocation failures, before any worker runs. */
	dalloc_init();

	/* A client that vanishes mid-write must give EPIPE, not kill us. */
	signal(SIGPIPE, SIG_IGN);

	/* libuv's thread pool is process-wide and runs file operations and
	 * name lookups for every worker (blocking cancels have threads of
	 * their own, dbcancel.h); size it before first use unless the
	 * operator did. */
	if (!getenv("UV_THREADPOOL_SIZE")) {
		char n[16];
		unsigned size = cfg->workers * 2 < 4 ? 4 : cfg->workers * 2;
		snprintf(n, sizeof(n), "%u", size > 128 ? 128 : size);
		setenv("UV_THREADPOOL_SIZE", n, 1);
	}

	/* File roots are opened once, before any worker can use them; a
	 * reload does not change them. */
	if (fs_init(cfg) < 0) {
		config_unref(cfg);
		return 2;
	}
	/* A closing connection's file streams can no longer be finished. */
	clients_on_close(fs_on_conn_closed);
	/* libcurl's global set-up is not thread safe: before any worker. */
	if (http_global_init(cfg) < 0) {
		fprintf(stderr, "porterd: libcurl could not be initialised\n");
		fs_shutdown();
		config_unref(cfg);
		return 1;
	}
	rc = server_run(cfg, argc, argv);
	if (dalloc_failures())
		log_info("%llu request-path allocations failed by injection", dalloc_failures());
	http_global_cleanup();
	fs_shutdown();
	clients_reset();
	config_unref(cfg);
	return rc;
}
