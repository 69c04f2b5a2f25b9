/* Unit tests of daemon/fwd.c's owner encoding: new ids name their worker,
 * are random below it, and a request is only sent on to another existing
 * worker, once. (Forwarding itself runs between real worker loops in
 * tests/integration: test_http's stream_read_from_another_thread.) */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "fwd.h"
#include "harness.h"
#include "req.h"
#include "server.h"
#include "worker.h"

START_TEST(ids_name_their_worker)
{
	static const unsigned workers[] = {0, 1, 7, 255, 256, 65535};
	for (size_t i = 0; i < sizeof(workers) / sizeof(workers[0]); i++) {
		uint64_t id = 0;
		ck_assert_int_eq(fwd_new_id(workers[i], &id), 0);
		ck_assert_uint_eq(fwd_id_owner(id), workers[i]);
		ck_assert_uint_ne(id & (((uint64_t)1 << FWD_OWNER_SHIFT) - 1), 0);
	}
	/* 48 random bits: two hundred ids of one worker never repeat. */
	enum { N = 200 };
	uint64_t *ids = calloc(N, sizeof(*ids));
	ck_assert_ptr_nonnull(ids);
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(fwd_new_id(3, &ids[i]), 0);
		for (int j = 0; j < i; j++)
			if (ids[i] == ids[j])
				ck_abort_msg("ids %d and %d are equal", i, j);
	}
	free(ids);
}
END_TEST

START_TEST(only_another_existing_worker_gets_a_request)
{
	server *srv = calloc(1, sizeof(*srv));
	worker *w = calloc(2, sizeof(*w));
	req *r = calloc(1, sizeof(*r));
	ck_assert(srv && w && r);
	srv->workers = w;
	srv->n_workers = 2;
	w[0].srv = w[1].srv = srv;
	w[1].index = 1;
	r->w = &w[1];
	uint64_t own, far;
	ck_assert_int_eq(fwd_new_id(1, &own), 0);
	ck_assert_int_eq(fwd_new_id(9, &far), 0);
	ck_assert_int_eq(fwd_to_owner(r, 0), 0);   /* names nothing */
	ck_assert_int_eq(fwd_to_owner(r, own), 0); /* this worker's */
	ck_assert_int_eq(fwd_to_owner(r, far), 0); /* no such worker */
	uint64_t other;
	ck_assert_int_eq(fwd_new_id(0, &other), 0);
	r->back = (struct fwd_back *)1; /* came from another worker */
	ck_assert_int_eq(fwd_to_owner(r, other), 0);
	free(r);
	free(w);
	free(srv);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {ids_name_their_worker, only_another_existing_worker_gets_a_request,
				NULL};
	return th_suite("fwd", "fwd", 0, tests);
}

TH_MAIN(suite)
