/*
 * Unit tests of daemon/inbox.c, the one way across threads: messages from
 * several threads arrive on the owner's loop thread, each sender's in
 * order, none lost however the doorbell coalesces; run() may push again;
 * after close, pushes fail (the sender keeps its message) and what was
 * still queued is dropped, never run.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <uv.h>

#include "inbox.h"
#include "porter_errors.h"
#include "thmain.h"

enum { SENDERS = 4, PER_SENDER = 20000 };

typedef struct test_msg {
	inbox_msg base;
	int sender;
	int seq;
} test_msg;

/* The owner's side: what arrived, on which thread. */
typedef struct owner {
	inbox ib;
	pthread_t loop_thread;
	int next_seq[SENDERS]; /* loop thread only */
	int out_of_order;
	int wrong_thread;
	int received;
	int expected;
	atomic_int dropped;
	int repushed; /* messages pushed from inside run() that arrived */
} owner;

static void msg_drop(inbox_msg *m)
{
	free(m);
}

/* The owner whose drops count_dropped counts (one test at a time). */
static owner *drop_owner;

static void count_dropped(inbox_msg *m)
{
	atomic_fetch_add(&drop_owner->dropped, 1);
	free(m);
}

static void closed_cb(uv_handle_t *h)
{
	(void)h;
}

static void msg_run(void *arg, inbox_msg *m)
{
	owner *o = arg;
	test_msg *t = (test_msg *)m;
	if (!pthread_equal(pthread_self(), o->loop_thread))
		o->wrong_thread++;
	if (t->seq != o->next_seq[t->sender])
		o->out_of_order++;
	o->next_seq[t->sender] = t->seq + 1;
	free(m);
	if (++o->received == o->expected)
		inbox_close(&o->ib, closed_cb);
}

typedef struct sender_arg {
	owner *o;
	int sender;
	int refused;
} sender_arg;

static void *sender_main(void *arg)
{
	sender_arg *a = arg;
	for (int i = 0; i < PER_SENDER; i++) {
		test_msg *m = malloc(sizeof(*m));
		m->base.run = msg_run;
		m->base.drop = msg_drop;
		m->sender = a->sender;
		m->seq = i;
		if (inbox_push(&a->o->ib, &m->base) != 0) {
			a->refused++;
			free(m);
		}
	}
	return NULL;
}

START_TEST(every_message_arrives_in_order_on_the_loop_thread)
{
	uv_loop_t loop;
	owner *o = calloc(1, sizeof(*o));
	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_int_eq(inbox_init(&o->ib, &loop, o), 0);
	o->loop_thread = pthread_self();
	o->expected = SENDERS * PER_SENDER;
	pthread_t th[SENDERS];
	sender_arg args[SENDERS];
	for (int i = 0; i < SENDERS; i++) {
		args[i] = (sender_arg){o, i, 0};
		ck_assert_int_eq(pthread_create(&th[i], NULL, sender_main, &args[i]), 0);
	}
	/* The loop has only the inbox's handle: it runs until the last
	 * expected message closes the inbox. A lost doorbell would hang here
	 * (Check's timeout fails the test). */
	uv_run(&loop, UV_RUN_DEFAULT);
	for (int i = 0; i < SENDERS; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(args[i].refused, 0);
		ck_assert_int_eq(o->next_seq[i], PER_SENDER);
	}
	ck_assert_int_eq(o->received, SENDERS * PER_SENDER);
	ck_assert_int_eq(o->out_of_order, 0);
	ck_assert_int_eq(o->wrong_thread, 0);
	ck_assert_int_eq(atomic_load(&o->dropped), 0);
	inbox_destroy(&o->ib);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	free(o);
}
END_TEST

/* run() pushes the next message itself: the queue's lock must not be held
 * while messages run (that would deadlock), and the new message waits for
 * the next wake-up instead of being lost. */
static void chain_run(void *arg, inbox_msg *m)
{
	owner *o = arg;
	test_msg *t = (test_msg *)m;
	o->repushed++;
	if (t->seq < 99) {
		t->seq++;
		ck_assert_int_eq(inbox_push(&o->ib, m), 0);
		return;
	}
	free(m);
	inbox_close(&o->ib, closed_cb);
}

START_TEST(run_may_push_to_its_own_inbox)
{
	uv_loop_t loop;
	owner *o = calloc(1, sizeof(*o));
	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_int_eq(inbox_init(&o->ib, &loop, o), 0);
	test_msg *m = malloc(sizeof(*m));
	m->base.run = chain_run;
	m->base.drop = msg_drop;
	m->sender = 0;
	m->seq = 0;
	ck_assert_int_eq(inbox_push(&o->ib, &m->base), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(o->repushed, 100);
	inbox_destroy(&o->ib);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	free(o);
}
END_TEST

static int push_counted(owner *o)
{
	test_msg *m = malloc(sizeof(*m));
	m->base.run = msg_run; /* must never run: the loop never does */
	m->base.drop = count_dropped;
	m->sender = 0;
	m->seq = 0;
	drop_owner = o;
	int rc = inbox_push(&o->ib, &m->base);
	if (rc != 0)
		free(m);
	return rc;
}

START_TEST(close_drops_the_queued_and_refuses_the_rest)
{
	uv_loop_t loop;
	owner *o = calloc(1, sizeof(*o));
	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_int_eq(inbox_init(&o->ib, &loop, o), 0);
	/* Queued while the loop is not running: never run, dropped once. */
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(push_counted(o), 0);
	inbox_close(&o->ib, closed_cb);
	ck_assert_int_eq(atomic_load(&o->dropped), 5);
	/* After close the sender keeps its message (no doorbell rung on a
	 * closing handle): SHUTDOWN, and neither run nor drop is called. */
	ck_assert_int_eq(push_counted(o), PORTER_E_SHUTDOWN);
	ck_assert_int_eq(atomic_load(&o->dropped), 5);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(o->received, 0);
	inbox_destroy(&o->ib);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	free(o);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {every_message_arrives_in_order_on_the_loop_thread,
				run_may_push_to_its_own_inbox,
				close_drops_the_queued_and_refuses_the_rest, NULL};
	return th_suite("inbox", "inbox", 60, tests);
}

TH_MAIN(suite)
