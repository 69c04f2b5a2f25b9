/* wrig - hand-driven workers for unit tests; see wrig.h. */
#include "wrig.h"

#include <check.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cancel.h"
#include "config.h"
#include "connlinger.h"
#include "harness.h"
#include "server.h"

static server srv;
static worker ws[2];
static config *cfg;

/* The client ends, each with its own reader: a recv may take in more than
 * one reply, and the rest must wait there for the next wrig_reply. */
#define MAX_FD 256
static frame_reader readers[MAX_FD];
static int client_fd[MAX_FD];

/* A turn of a rig worker's loop ends: its connections' budget starts
 * again, as the real worker's check handle does. */
static void on_turn_end(uv_check_t *h)
{
	conn_turn_begin(h->data);
}

void wrig_up(unsigned n)
{
	ck_assert(n >= 1 && n <= 2);
	cfg = config_alloc();
	ck_assert_ptr_nonnull(cfg);
	srv.workers = ws;
	srv.n_workers = n;
	for (unsigned i = 0; i < n; i++) {
		worker *w = &ws[i];
		w->index = i;
		w->srv = &srv;
		w->cfg = cfg;
		list_init(&w->conns);
		list_init(&w->fwd_waits);
		list_init(&w->fwd_remote);
		list_init(&w->turns);
		ck_assert_int_eq(uv_loop_init(&w->loop), 0);
		uv_idle_init(&w->loop, &w->turns_idle);
		w->turns_idle.data = w;
		uv_check_init(&w->loop, &w->spin_check);
		w->spin_check.data = w;
		uv_check_start(&w->spin_check, on_turn_end);
		uv_unref((uv_handle_t *)&w->spin_check);
		ck_assert_int_eq(inbox_init(&w->inbox, &w->loop, w), 0);
		ck_assert_int_eq(cancel_worker_init(w), 0);
	}
}

worker *wrig_worker(unsigned i)
{
	ck_assert_uint_lt(i, srv.n_workers);
	return &ws[i];
}

config *wrig_config(void)
{
	return cfg;
}

void wrig_pump(void)
{
	for (int k = 0; k < 8; k++)
		for (unsigned i = 0; i < srv.n_workers; i++)
			uv_run(&ws[i].loop, UV_RUN_NOWAIT);
}

int wrig_run_until(const int *flag, int ms)
{
	long long until = th_now_ms() + ms;
	while (!*flag && th_now_ms() < until) {
		wrig_pump();
		if (!*flag)
			usleep(1000);
	}
	return *flag;
}

void wrig_down(void)
{
	for (unsigned i = 0; i < srv.n_workers; i++) {
		worker *w = &ws[i];
		list *pos, *tmp;
		list_for_each_safe(pos, tmp, &w->conns)
			conn_close(list_entry(pos, conn, link));
		connlinger_worker_close(w);
		cancel_worker_close(w);
		uv_close((uv_handle_t *)&w->turns_idle, NULL);
		uv_close((uv_handle_t *)&w->spin_check, NULL);
		inbox_close(&w->inbox, NULL);
	}
	wrig_pump();
	for (unsigned i = 0; i < srv.n_workers; i++) {
		ck_assert_int_eq(uv_loop_close(&ws[i].loop), 0);
		inbox_destroy(&ws[i].inbox);
		free(ws[i].pack_buf);
		htab_free(&ws[i].turn_uids);
	}
	for (int fd = 0; fd < MAX_FD; fd++)
		if (client_fd[fd]) {
			frame_reader_free(&readers[fd]);
			close(fd);
			client_fd[fd] = 0;
		}
	config_unref(cfg);
	cfg = NULL;
	memset(ws, 0, sizeof(ws));
	memset(&srv, 0, sizeof(srv));
}

conn *wrig_client(worker *w, uid_t uid, uint64_t instance, int *fd)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	clients_peer peer = {.uid = uid, .gid = uid, .pid = getpid()};
	ck_assert_int_eq(conn_create(w, sv[0], &peer, NULL), 0);
	conn *c = list_entry(w->conns.prev, conn, link);
	c->state = CONN_READY;
	c->client_instance = instance;
	ck_assert_int_lt(sv[1], MAX_FD);
	frame_reader_init(&readers[sv[1]], 1 << 20);
	client_fd[sv[1]] = 1;
	*fd = sv[1];
	return c;
}

ProtobufCBinaryData wrig_packed(const Porter__V1__Request *m)
{
	ProtobufCBinaryData b = {porter__v1__request__get_packed_size(m), NULL};
	b.data = malloc(b.len + 1);
	ck_assert_ptr_nonnull(b.data);
	porter__v1__request__pack(m, b.data);
	return b;
}

Porter__V1__Request *wrig_unpacked(const Porter__V1__Request *m)
{
	ProtobufCBinaryData b = wrig_packed(m);
	Porter__V1__Request *out = porter__v1__request__unpack(NULL, b.len, b.data);
	free(b.data);
	ck_assert_ptr_nonnull(out);
	return out;
}

req *wrig_request(conn *c, const Porter__V1__Request *m)
{
	req *r = req_new(c, wrig_unpacked(m), NULL);
	ck_assert_ptr_nonnull(r);
	return r;
}

req *wrig_ping(conn *c, uint64_t id, uint32_t delay_ms, uint32_t timeout_ms)
{
	Porter__V1__Request m = PORTER__V1__REQUEST__INIT;
	Porter__V1__Ping p = PORTER__V1__PING__INIT;
	m.id = id;
	m.timeout_ms = timeout_ms;
	p.delay_ms = delay_ms;
	m.body_case = PORTER__V1__REQUEST__BODY_PING;
	m.ping = &p;
	return wrig_request(c, &m);
}

Porter__V1__Response *wrig_reply(int fd, uint64_t id)
{
	ck_assert(fd >= 0 && fd < MAX_FD && client_fd[fd]);
	Porter__V1__Response *resp = th_raw_recv(fd, &readers[fd], 2000);
	ck_assert_msg(resp != NULL, "no reply for request %llu", (unsigned long long)id);
	ck_assert_uint_eq(resp->id, id);
	return resp;
}

int wrig_status(int fd, uint64_t id)
{
	Porter__V1__Response *resp = wrig_reply(fd, id);
	int status = resp->status;
	porter__v1__response__free_unpacked(resp, NULL);
	return status;
}

int wrig_quiet(int fd)
{
	/* Bytes an earlier recv took in are a reply too. */
	if (frame_reader_pending(&readers[fd]) != 0)
		return 0;
	struct pollfd p = {fd, POLLIN, 0};
	return poll(&p, 1, 0) == 0;
}
