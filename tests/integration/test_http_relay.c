/*
 * Integration tests of HTTP requests relayed while libcurl is delivering
 * data: a reply sent from inside libcurl's write callback frees an
 * in-flight slot, and the connection then dispatches the next request it
 * had buffered at once. That request must not call libcurl from inside the
 * callback (libcurl refuses with CURLM_RECURSIVE_API_CALL): porterd defers
 * it until libcurl returns. Raw protocol, since libporter has one request
 * in flight per connection; porterd runs with --max-inflight 1 so that the
 * second request of a write waits in the connection's buffer.
 */
#include <arpa/inet.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"
#include "httpd.h"
#include "porter.h"
#include "porter.pb-c.h"
#include "thmain.h"

static th_httpd srv;
static th_daemon d;

static const char *url(const char *path)
{
	static char buf[256];
	int n = snprintf(buf, sizeof(buf), "%s%s", srv.base, path);
	ck_assert(n > 0 && (size_t)n < sizeof(buf));
	return buf;
}

/* Appends request `req` as one frame to `out` (room `cap`, used `*len`). */
static void pack_frame(Porter__V1__Request *req, uint8_t *out, size_t cap, size_t *len)
{
	size_t n = porter__v1__request__get_packed_size(req);
	ck_assert_uint_le(*len + 4 + n, cap);
	uint32_t be = htonl((uint32_t)n);
	memcpy(out + *len, &be, 4);
	porter__v1__request__pack(req, out + *len + 4);
	*len += 4 + n;
}

/* A GET of `path` with id `id` (strings kept by the caller's `hr`). */
static void http_get(Porter__V1__Request *req, Porter__V1__HttpRequest *hr, uint64_t id,
		     const char *path, int stream)
{
	porter__v1__request__init(req);
	porter__v1__http_request__init(hr);
	hr->method = "GET";
	hr->url = strdup(url(path));
	hr->stream = stream;
	hr->chunk_size = 1024; /* the smallest: the first chunk fills at once */
	req->id = id;
	req->timeout_ms = 10000;
	req->body_case = PORTER__V1__REQUEST__BODY_HTTP;
	req->http = hr;
}

static void http_fetch(Porter__V1__Request *req, Porter__V1__HttpFetch *f, uint64_t id,
		       uint64_t stream_id)
{
	porter__v1__request__init(req);
	porter__v1__http_fetch__init(f);
	f->stream_id = stream_id;
	req->id = id;
	req->timeout_ms = 10000;
	req->body_case = PORTER__V1__REQUEST__BODY_HTTP_FETCH;
	req->http_fetch = f;
}

/* Checks that `body` is bytes `off`.. of the test server's pattern. */
static void check_pattern(const ProtobufCBinaryData *body, size_t off)
{
	for (size_t i = 0; i < body->len; i++)
		ck_assert_msg(body->data[i] == (uint8_t)((off + i) % 251), "byte %zu", off + i);
}

/* Receives the replies to ids `a` and `b` (any order) into out[0], out[1]. */
static void recv_two(int fd, frame_reader *rd, uint64_t a, uint64_t b, Porter__V1__Response **out)
{
	out[0] = out[1] = NULL;
	for (int i = 0; i < 2; i++) {
		Porter__V1__Response *resp = th_raw_recv(fd, rd, 10000);
		ck_assert_msg(resp != NULL, "reply %d of 2 did not come", i + 1);
		ck_assert_msg(resp->id == a || resp->id == b, "unexpected reply id %llu",
			      (unsigned long long)resp->id);
		out[resp->id == a ? 0 : 1] = resp;
	}
	ck_assert_ptr_nonnull(out[0]);
	ck_assert_ptr_nonnull(out[1]);
}

/* Pulls stream `sid` (whose first `got` bytes came) to its end, one
 * request at a time; returns the body's total length. */
static size_t read_rest(int fd, frame_reader *rd, uint64_t sid, size_t got, uint64_t id)
{
	for (int more = 1; more; id++) {
		Porter__V1__Request req;
		Porter__V1__HttpFetch f;
		http_fetch(&req, &f, id, sid);
		th_raw_send(fd, &req);
		Porter__V1__Response *resp = th_raw_recv(fd, rd, 10000);
		ck_assert_ptr_nonnull(resp);
		ck_assert_uint_eq(resp->id, id);
		ck_assert_msg(resp->status == 0, "fetch: %d %s", resp->status, resp->message);
		ck_assert_ptr_nonnull(resp->http);
		check_pattern(&resp->http->body, got);
		got += resp->http->body.len;
		more = resp->more;
		porter__v1__response__free_unpacked(resp, NULL);
	}
	return got;
}

/*
 * A stream's first chunk is answered from inside libcurl's write callback;
 * the request that waited behind it in the same write (a GET, then a pull
 * of another stream whose chunk waits paused in libcurl) starts then, and
 * must succeed. Before the fix the GET failed with "could not start the
 * transfer" (CURLM_RECURSIVE_API_CALL).
 */
START_TEST(request_buffered_behind_a_stream_chunk)
{
	static const char *const extra[] = {"--max-inflight", "1", NULL};
	th_start(&d, extra);
	int fd = th_raw_connect(d.socket);
	frame_reader rd;
	frame_reader_init(&rd, 8 << 20);
	th_raw_hello(fd, &rd, PORTER_PROTOCOL_VERSION, 0);

	uint8_t buf[4096];
	size_t len = 0;
	Porter__V1__Request ra, rb;
	Porter__V1__HttpRequest ha, hb;
	http_get(&ra, &ha, 1, "/bin/65536", 1);
	http_get(&rb, &hb, 2, "/bin/100", 0);
	pack_frame(&ra, buf, sizeof(buf), &len);
	pack_frame(&rb, buf, sizeof(buf), &len);
	th_raw_write(fd, buf, len); /* one write: the GET waits behind the stream */
	Porter__V1__Response *out[2];
	recv_two(fd, &rd, 1, 2, out);
	ck_assert_msg(out[0]->status == 0, "stream: %d %s", out[0]->status, out[0]->message);
	ck_assert(out[0]->more);
	ck_assert_int_eq(out[0]->http->status, 200);
	uint64_t s1 = out[0]->http->stream_id;
	size_t got1 = out[0]->http->body.len;
	check_pattern(&out[0]->http->body, 0);
	ck_assert_msg(out[1]->status == 0, "the GET behind the stream: %d %s", out[1]->status,
		      out[1]->message);
	ck_assert_int_eq(out[1]->http->status, 200);
	ck_assert_uint_eq(out[1]->http->body.len, 100);
	check_pattern(&out[1]->http->body, 0);
	porter__v1__response__free_unpacked(out[0], NULL);
	porter__v1__response__free_unpacked(out[1], NULL);
	free(ha.url);
	free(hb.url);

	/* A second stream, and behind it a pull of the first, whose next
	 * chunk is held in libcurl (paused): answering the pull resumes that
	 * transfer, a libcurl call too. */
	Porter__V1__HttpFetch f;
	len = 0;
	http_get(&ra, &ha, 3, "/bin/65536", 1);
	http_fetch(&rb, &f, 4, s1);
	pack_frame(&ra, buf, sizeof(buf), &len);
	pack_frame(&rb, buf, sizeof(buf), &len);
	th_raw_write(fd, buf, len);
	recv_two(fd, &rd, 3, 4, out);
	ck_assert_msg(out[0]->status == 0, "stream 2: %d %s", out[0]->status, out[0]->message);
	ck_assert_msg(out[1]->status == 0, "the pull behind stream 2: %d %s", out[1]->status,
		      out[1]->message);
	uint64_t s2 = out[0]->http->stream_id;
	size_t got2 = out[0]->http->body.len;
	check_pattern(&out[0]->http->body, 0);
	check_pattern(&out[1]->http->body, got1);
	got1 += out[1]->http->body.len;
	int more1 = out[1]->more;
	porter__v1__response__free_unpacked(out[0], NULL);
	porter__v1__response__free_unpacked(out[1], NULL);
	free(ha.url);

	/* Both streams are whole. */
	if (more1)
		got1 = read_rest(fd, &rd, s1, got1, 100);
	ck_assert_uint_eq(got1, 65536);
	ck_assert_uint_eq(read_rest(fd, &rd, s2, got2, 1000), 65536);
	close(fd);
	frame_reader_free(&rd);
	th_stop_clean(&d);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {request_buffered_behind_a_stream_chunk, NULL};
	return th_suite("http_relay", "http_relay", 120, tests);
}

static int run(void)
{
	if (th_httpd_start(&srv) != 0) {
		fprintf(stderr, "test_http_relay: could not start the loopback HTTP server\n");
		return 1;
	}
	int rc = th_main(suite, TH_NEEDS_NOTHING);
	th_httpd_stop(&srv);
	return rc;
}

int main(void)
{
	return run();
}
