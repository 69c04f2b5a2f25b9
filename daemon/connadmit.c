/* connadmit - the uid's quotas on a request going in flight; see
 * connadmit.h. */
#include "connadmit.h"

#include <stdio.h>

#include "clients.h"
#include "config.h"
#include "connout.h"
#include "log.h"
#include "porter_errors.h"
#include "stats.h"
#include "worker.h"

/* Answers request `id` PORTER_E_BUSY saying `why`, its uid being at a
 * quota; its message (in `ar`) goes. */
static void refuse_busy(conn *c, uint64_t id, const char *why, arena *ar)
{
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	resp.id = id;
	resp.status = PORTER_E_BUSY;
	resp.message = (char *)why;
	arena_free(ar);
	stats_add(&c->w->counters.errors, 1);
	conn_send(c, &resp);
}

int conn_admit(conn *c, uint64_t id, size_t len, arena *ar)
{
	const config *cfg = c->w->cfg;
	char text[200];
	/* The uid's own share: past it, its requests are answered at once,
	 * and other uids' requests are not slowed by them. */
	if (clients_use(c->acct, CLIENTS_INFLIGHT) >= cfg->uid_max_inflight) {
		snprintf(text, sizeof(text),
			 "uid %u has %u requests in flight, its limit (uid-max-inflight)",
			 (unsigned)c->uid, cfg->uid_max_inflight);
		refuse_busy(c, id, text, ar);
		return -1;
	}
	/* The frame's bytes in the read buffer count too until the buffer
	 * is trimmed after this turn: both copies are there until then. */
	if (len < CONN_HOLD_FROM ||
	    clients_take(c->acct, CLIENTS_BUFFERED, len, cfg->uid_max_buffered))
		return len >= CONN_HOLD_FROM;
	if (c->out_counted > 0) {
		/* It does not read its replies either: the slow reader that
		 * uid-max-buffered drops, as when a reply passes it. */
		log_warn("conn %llu (pid %d uid %u): %llu reply bytes unread and a request of %zu "
			 "bytes, over uid-max-buffered for its uid; dropping the client",
			 (unsigned long long)c->serial, (int)c->pid, (unsigned)c->uid,
			 (unsigned long long)c->out_counted, len);
		arena_free(ar);
		conn_close_soon(c);
		return -1;
	}
	snprintf(text, sizeof(text),
		 "uid %u holds too many buffered bytes (uid-max-buffered = %llu) for a request of "
		 "%zu bytes more",
		 (unsigned)c->uid, (unsigned long long)cfg->uid_max_buffered, len);
	refuse_busy(c, id, text, ar);
	return -1;
}
