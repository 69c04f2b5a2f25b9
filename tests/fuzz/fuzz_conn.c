/*
 * fuzz_conn - libFuzzer target for porterd's whole request path: a real
 * worker loop and connection, fed the input as bytes from a client (after a
 * valid Hello when the first input byte is odd), then closed. Every request
 * type the daemon knows is decoded, validated and run here.
 */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "frame.h"
#include "log.h"
#include "porter_errors.h"
#include "server.h"
#include "worker.h"

static server srv;

static void init_once(void)
{
	signal(SIGPIPE, SIG_IGN); /* as porterd's main() does */
	config *cfg = config_alloc();
	if (!cfg)
		abort();
	cfg->workers = 1;
	cfg->batch_max_members = 8;
	config_resolve(cfg);
	log_set_level(LOG_LVL_ERROR);
	srv.cfg = cfg;
	srv.n_workers = 1;
	srv.workers = calloc(1, sizeof(worker));
	if (!srv.workers || worker_init(&srv.workers[0], &srv, cfg, 0, 0) < 0)
		abort();
}

static void run_a_little(worker *w, int peer)
{
	char sink[65536];
	for (int i = 0; i < 8; i++) {
		uv_run(&w->loop, UV_RUN_NOWAIT);
		while (peer >= 0 && recv(peer, sink, sizeof(sink), MSG_DONTWAIT) > 0)
			;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		init_once();
		ready = 1;
	}
	worker *w = &srv.workers[0];
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	stats_add(&w->counters.connections, 1); /* as the acceptor does at hand-off */
	clients_peer peer = {.uid = getuid(), .gid = getgid(), .pid = getpid()};
	if (conn_create(w, sv[0], &peer, NULL) < 0) {
		close(sv[1]);
		return 0;
	}

	if (size && (data[0] & 1)) {
		Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
		Porter__V1__Hello hello = PORTER__V1__HELLO__INIT;
		uint8_t *buf;
		size_t len;
		hello.protocol = PORTER_PROTOCOL_VERSION;
		hello.client_instance = 7;
		req.id = 1;
		req.body_case = PORTER__V1__REQUEST__BODY_HELLO;
		req.hello = &hello;
		if (frame_pack(&req.base, 4096, &buf, &len) == 0) {
			if (send(sv[1], buf, len, MSG_NOSIGNAL) != (ssize_t)len)
				abort();
			free(buf);
		}
	}
	size_t off = size ? 1 : 0;
	for (int tries = 0; off < size && tries < 64; tries++) {
		ssize_t n = send(sv[1], data + off, size - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0)
			off += (size_t)n;
		else
			run_a_little(w, sv[1]);
	}
	run_a_little(w, sv[1]);
	close(sv[1]);
	/* The connection sees the close, stops its work and is freed. */
	for (int i = 0; i < 1000 && stats_get(&w->counters.connections) > 0; i++)
		uv_run(&w->loop, UV_RUN_NOWAIT);
	if (stats_get(&w->counters.connections) != 0 || stats_get(&w->counters.inflight) != 0)
		abort(); /* a connection or request leaked */
	return 0;
}
