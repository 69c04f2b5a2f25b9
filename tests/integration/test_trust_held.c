/*
 * What a request in flight holds for its uid. A request's message lives
 * until it is answered: a Ping's payload for its delay (up to
 * max-timeout, an hour), a write's bytes while it waits for a pool
 * thread. A large frame counts in the uid's buffered bytes
 * (uid-max-buffered) until then, so one uid's requests in flight
 * (uid-max-inflight, 4096 of up to max-frame each) cannot hold tens of
 * GiB of porterd's memory; one past the quota is answered PORTER_E_BUSY
 * naming it.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"
#include "porter_errors.h"
#include "tenant.h"

#define CHILD_MS 60000
#define PAYLOAD (5u << 19) /* 2.5 MiB */
#define DELAY_MS 6000

static th_daemon d;

/* In a th_as child (tenant.h). */
#define EXPECT(call, want) TH_EXPECT(call, want)

typedef struct held_ping {
	uint8_t *payload;
	int rc;
	int done;
} held_ping;

static void *ping_held(void *arg)
{
	held_ping *h = arg;
	h->rc = porter_ping_delay(h->payload, PAYLOAD, DELAY_MS, 0, 30000);
	__atomic_store_n(&h->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Waits until porterd says alice holds at least `want` bytes, or ping `h`
 * was answered; returns the most it saw. */
static uint64_t wait_held(const held_ping *h, uint64_t want)
{
	uint64_t most = 0;
	while (!__atomic_load_n(&h->done, __ATOMIC_ACQUIRE) && most < want) {
		porter_uid_usage u = PORTER_UID_USAGE_INIT;
		if (th_own_usage(&u) == 0 && u.buffered_bytes > most)
			most = u.buffered_bytes;
		usleep(20 * 1000);
	}
	return most;
}

/*
 * Two pings of 2.5 MiB held for 6 s, each on its own thread (and
 * connection), are counted while they wait; a third, with uid-max-buffered
 * 8 MiB, is refused (5 MiB held, and the frame's copy in the read buffer
 * beside its own); the two are answered whole after their delay.
 */
static int alice_pings(void *arg)
{
	(void)arg;
	uint8_t *payload = malloc(PAYLOAD);
	if (!payload)
		return 1;
	memset(payload, 'p', PAYLOAD);
	held_ping h[2] = {{payload, 0, 0}, {payload, 0, 0}};
	pthread_t t[2];
	for (int i = 0; i < 2; i++) {
		if (pthread_create(&t[i], NULL, ping_held, &h[i]) != 0)
			return 1;
		uint64_t want = (uint64_t)(i + 1) * PAYLOAD;
		uint64_t most = wait_held(&h[i], want);
		if (most < want) {
			fprintf(stderr, "while %d pings waited alice held at most %llu bytes\n",
				i + 1, (unsigned long long)most);
			return 1;
		}
	}
	int rc = porter_ping_delay(payload, PAYLOAD, 0, 0, 30000);
	if (rc != PORTER_E_BUSY || !strstr(porter_last_error_message(), "uid-max-buffered")) {
		fprintf(stderr, "the third ping gave %s (%s), want PORTER_E_BUSY\n",
			porter_error_name(rc), porter_last_error_message());
		return 1;
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		EXPECT(h[i].rc, 0);
	}
	free(payload);
	/* Nothing stays counted. */
	return th_own_buffered_below(1u << 20);
}

/* The old porterd: "while 1 pings waited alice held at most 0 bytes". */
START_TEST(large_requests_in_flight_count_against_the_uid)
{
	const char *extra[] = {"--allow-uid", "61011", "--uid-max-buffered", "8388608", NULL};
	ck_assert_int_eq(th_daemon_start_as(&d, TH_UID_DAEMON, TH_GID_PORTER, extra), 0);
	ck_assert_int_eq(th_as(TH_UID_ALICE, TH_GID_PORTER, CHILD_MS, alice_pings, NULL), 0);
	th_stop_clean(&d);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {large_requests_in_flight_count_against_the_uid, NULL};
	return th_suite("trust_held", "held", 120, tests);
}

TH_MAIN_ROOT(suite)
