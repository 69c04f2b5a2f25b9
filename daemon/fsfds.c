/* fsfds - passed descriptors counted per connection and uid; see fsfds.h. */
#include "fsfds.h"

#include <stdio.h>
#include <stdlib.h>

#include "clients.h"
#include "htab.h"
#include "list.h"
#include "porter_errors.h"
#include "worker.h"

/* A connection that was given a descriptor, from the first reservation to
 * its close (kept at 0 too: small reads reserve and give back on every
 * request, which then costs no allocation). */
typedef struct fds_conn {
	htab_node node;
	uint64_t serial;
	uint32_t n;         /* reserved or passed, not reported closed */
	clients_acct *acct; /* its uid's counters, the connection's (borrowed:
			     * the entry goes at the connection's close, before
			     * the connection lets go of them): n of
			     * CLIENTS_FILE_STREAMS held */
} fds_conn;

struct fsfds_table {
	htab by_serial;
};

static fds_conn *find(const worker *w, uint64_t serial)
{
	if (!w->fs_fds)
		return NULL;
	for (htab_node *n = htab_first(&w->fs_fds->by_serial, htab_mix(serial)); n;
	     n = htab_next(n)) {
		fds_conn *e = list_entry(n, fds_conn, node);
		if (e->serial == serial)
			return e;
	}
	return NULL;
}

/* Gives back `n` of `e`'s count. */
static void give_back(fds_conn *e, uint32_t n)
{
	if (!n)
		return;
	clients_put(e->acct, CLIENTS_FILE_STREAMS, n);
	clients_put(e->acct, CLIENTS_STREAMS, n);
	e->n -= n;
}

int fsfds_take(worker *w, uint64_t conn_serial, struct clients_acct *acct, uid_t uid, char *msg,
	       size_t cap)
{
	const config *cfg = w->cfg;
	if (!w->fs_fds && !(w->fs_fds = calloc(1, sizeof(*w->fs_fds))))
		goto nomem;
	fds_conn *e = find(w, conn_serial);
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e)
			goto nomem;
		e->serial = conn_serial;
		e->acct = acct;
		if (htab_insert(&w->fs_fds->by_serial, &e->node, htab_mix(conn_serial)) < 0) {
			free(e);
			goto nomem;
		}
	}
	if (e->n >= cfg->file_max_streams) {
		snprintf(msg, cap,
			 "%u passed file descriptors not reported closed on this connection "
			 "(file-max-streams): close them",
			 e->n);
		return PORTER_E_BUSY;
	}
	if (!clients_take(e->acct, CLIENTS_FILE_STREAMS, 1, cfg->file_max_streams_per_uid)) {
		snprintf(msg, cap,
			 "uid %u holds %u file streams and passed file descriptors, its limit "
			 "(file-max-streams-per-uid): close them",
			 (unsigned)uid, cfg->file_max_streams_per_uid);
		return PORTER_E_BUSY;
	}
	/* Shown per uid with its cursors and HTTP streams, as streams are. */
	clients_take(e->acct, CLIENTS_STREAMS, 1, 0);
	e->n++;
	return 0;
nomem:
	snprintf(msg, cap, "out of memory");
	return PORTER_E_NOMEM;
}

uint32_t fsfds_put(worker *w, uint64_t conn_serial, uint32_t n)
{
	fds_conn *e = find(w, conn_serial);
	if (!e || !n)
		return 0;
	if (n > e->n)
		n = e->n;
	give_back(e, n);
	return n;
}

int fsfds_adopt(worker *w, uint64_t conn_serial)
{
	fds_conn *e = find(w, conn_serial);
	if (!e)
		return 0;
	clients_take(e->acct, CLIENTS_FILE_STREAMS, 1, 0);
	clients_take(e->acct, CLIENTS_STREAMS, 1, 0);
	e->n++;
	return 1;
}

void fsfds_conn_closed(worker *w, uint64_t conn_serial)
{
	fds_conn *e = find(w, conn_serial);
	if (!e)
		return;
	give_back(e, e->n);
	htab_remove(&w->fs_fds->by_serial, &e->node);
	free(e);
}

uint32_t fsfds_count(const worker *w, uint64_t conn_serial)
{
	const fds_conn *e = find(w, conn_serial);
	return e ? e->n : 0;
}

void fsfds_worker_close(worker *w)
{
	if (!w->fs_fds)
		return;
	/* Every connection's close gave its count back: the table is empty
	 * (a job still in the pool finds no entry to give back to). */
	htab_free(&w->fs_fds->by_serial);
	free(w->fs_fds);
	w->fs_fds = NULL;
}
