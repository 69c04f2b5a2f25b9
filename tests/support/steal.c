/* steal - a theft race between two foreign clients; see steal.h. */
#include "steal.h"

#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"
#include "rawc.h"
#include "tenant.h"

th_steal *th_steal_new(void)
{
	th_steal *s = th_shared_alloc(sizeof(*s));
	ck_assert_ptr_nonnull(s);
	return s;
}

/* Alice's child: opens, says so, waits for bob, asks again. */
static int alice(void *arg)
{
	th_steal *s = arg;
	frame_reader rd;
	frame_reader_init(&rd, 1 << 22);
	int rc = 0;
	int fd = th_rc_open(getenv("PORTER_SOCKET"), &rd, 5000, NULL);
	if (fd < 0) {
		rc = 1;
		goto out;
	}
	s->open->id = 2;
	s->open->timeout_ms = 10000;
	Porter__V1__Response *r = th_rc_call(fd, &rd, s->open, 10000);
	s->id = r && r->status == 0 ? s->opened_id(r) : 0;
	if (r)
		porter__v1__response__free_unpacked(r, NULL);
	if (!s->id) {
		rc = 2;
		goto out;
	}
	s->alice_pid = (int)getpid();
	s->opened = 1;
	if (!th_wait_flag(&s->bob_done, s->timeout_ms)) {
		rc = 3;
		goto out;
	}
	s->aim(s->id);
	s->again->id = 3;
	s->again->timeout_ms = 10000;
	if (!(r = th_rc_call(fd, &rd, s->again, 10000))) {
		rc = 4;
		goto out;
	}
	s->again_status = r->status;
	if (r->status == 0 && r->body_case == PORTER__V1__RESPONSE__BODY_HTTP)
		s->again_body_len = r->http->body.len;
	porter__v1__response__free_unpacked(r, NULL);
out:
	if (fd >= 0)
		close(fd);
	frame_reader_free(&rd);
	return rc;
}

/* Bob's child: once alice holds it, every try from four connections that
 * say Hello with her client instance. */
static int bob(void *arg)
{
	th_steal *s = arg;
	if (!th_wait_flag(&s->opened, s->timeout_ms))
		return 1;
	s->aim(s->id);
	int n = th_rc_tries_as(getenv("PORTER_SOCKET"), th_rc_instance(s->alice_pid), 4, s->tries,
			       s->n_tries, &s->bob_ok);
	if (n < 0)
		return 2;
	s->bob_tries = n;
	s->bob_done = 1;
	return 0;
}

static void *run_bob(void *arg)
{
	th_steal *s = arg;
	if (th_as(TH_UID_BOB, TH_GID_PORTER, 2 * s->timeout_ms, bob, s) != 0)
		s->bob_tries = -1;
	s->bob_done = 1; /* alice never waits for a crashed bob */
	return NULL;
}

int th_steal_run(th_steal *s)
{
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, run_bob, s), 0);
	int rc = th_as(TH_UID_ALICE, TH_GID_PORTER, 2 * s->timeout_ms, alice, s);
	s->opened = 1; /* bob never waits for a crashed alice */
	pthread_join(t, NULL);
	return rc;
}

void th_steal_refused(th_steal *s, const char *what)
{
	ck_assert_int_eq(th_steal_run(s), 0);
	ck_assert_int_eq(s->bob_tries, 4 * (int)s->n_tries);
	ck_assert_msg(s->bob_ok == 0, "%d of bob's calls on alice's %s worked", s->bob_ok, what);
	ck_assert_msg(s->again_status == 0, "alice's own request on her %s: %s", what,
		      porter_error_name(s->again_status));
}
