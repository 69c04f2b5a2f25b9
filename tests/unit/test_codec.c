/* Unit tests of the wire messages and the error list. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "porter_errors.h"
#include "porter.pb-c.h"
#include "thmain.h"

START_TEST(request_round_trip)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__Hello hello = PORTER__V1__HELLO__INIT;
	hello.protocol = PORTER_PROTOCOL_VERSION;
	hello.client_instance = 0x1122334455667788ull;
	hello.pid = 4242;
	hello.client_name = "unit";
	req.id = UINT64_MAX;
	req.timeout_ms = 1500;
	req.body_case = PORTER__V1__REQUEST__BODY_HELLO;
	req.hello = &hello;

	uint8_t *buf;
	size_t len;
	ck_assert_int_eq(frame_pack(&req.base, 1 << 20, &buf, &len), 0);
	Porter__V1__Request *r = porter__v1__request__unpack(NULL, len - 4, buf + 4);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->id, UINT64_MAX);
	ck_assert_uint_eq(r->timeout_ms, 1500);
	ck_assert_int_eq(r->body_case, PORTER__V1__REQUEST__BODY_HELLO);
	ck_assert_uint_eq(r->hello->client_instance, 0x1122334455667788ull);
	ck_assert_uint_eq(r->hello->pid, 4242);
	ck_assert_str_eq(r->hello->client_name, "unit");
	porter__v1__request__free_unpacked(r, NULL);
	free(buf);
}
END_TEST

START_TEST(response_with_error_details)
{
	Porter__V1__Response resp = PORTER__V1__RESPONSE__INIT;
	Porter__V1__ErrorDetail d = PORTER__V1__ERROR_DETAIL__INIT;
	d.sqlstate = "23505";
	d.detail = "Key (id)=(1) already exists.";
	d.http_status = 503;
	d.sys_errno = 2;
	resp.id = 9;
	resp.status = PORTER_E_DB;
	resp.message = "duplicate key";
	resp.error = &d;
	resp.more = 1;

	size_t len = porter__v1__response__get_packed_size(&resp);
	uint8_t *buf = malloc(len);
	porter__v1__response__pack(&resp, buf);
	Porter__V1__Response *r = porter__v1__response__unpack(NULL, len, buf);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->status, PORTER_E_DB);
	ck_assert_str_eq(r->message, "duplicate key");
	ck_assert_str_eq(r->error->sqlstate, "23505");
	ck_assert_int_eq(r->error->http_status, 503);
	ck_assert_int_eq(r->error->sys_errno, 2);
	ck_assert(r->more);
	porter__v1__response__free_unpacked(r, NULL);
	free(buf);
}
END_TEST

START_TEST(binary_payload_with_nuls)
{
	uint8_t data[256];
	for (int i = 0; i < 256; i++)
		data[i] = (uint8_t)i;
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__Ping ping = PORTER__V1__PING__INIT;
	ping.payload.data = data;
	ping.payload.len = sizeof(data);
	req.body_case = PORTER__V1__REQUEST__BODY_PING;
	req.ping = &ping;
	size_t len = porter__v1__request__get_packed_size(&req);
	uint8_t *buf = malloc(len);
	porter__v1__request__pack(&req, buf);
	Porter__V1__Request *r = porter__v1__request__unpack(NULL, len, buf);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->ping->payload.len, 256);
	ck_assert(memcmp(r->ping->payload.data, data, 256) == 0);
	porter__v1__request__free_unpacked(r, NULL);
	free(buf);
}
END_TEST

START_TEST(unknown_body_is_skipped)
{
	/* A newer client's request type (field 999, a length-delimited body)
	 * must decode to "no body", so the daemon can answer unsupported. */
	const uint8_t bytes[] = {0x08, 0x05,                    /* id = 5 */
				 0xba, 0x3e, 0x02, 0x08, 0x01}; /* field 999 */
	Porter__V1__Request *r = porter__v1__request__unpack(NULL, sizeof(bytes), bytes);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->id, 5);
	ck_assert_int_eq(r->body_case, PORTER__V1__REQUEST__BODY__NOT_SET);
	porter__v1__request__free_unpacked(r, NULL);
}
END_TEST

START_TEST(error_list_is_consistent)
{
	static const struct {
		int code;
		const char *name;
	} all[] = {
#define X(name, value, msg) {value, #name},
		PORTER_ERRORS(X)
#undef X
	};
	size_t n = sizeof(all) / sizeof(all[0]);
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_lt(all[i].code, 0);
		ck_assert_str_eq(porter_error_name(all[i].code), all[i].name);
		ck_assert_str_ne(porter_strerror(all[i].code), "unknown error");
		for (size_t j = i + 1; j < n; j++)
			ck_assert_int_ne(all[i].code, all[j].code);
	}
	ck_assert_str_eq(porter_strerror(0), "ok");
	ck_assert_str_eq(porter_strerror(-9999), "unknown error");
	ck_assert_str_eq(porter_error_name(12345), "PORTER_E_UNKNOWN");
	/* Frozen numbers that FFI callers hard-code. */
	ck_assert_int_eq(PORTER_E_UNREACHABLE, -3);
	ck_assert_int_eq(PORTER_E_TIMEOUT, -4);
	ck_assert_int_eq(PORTER_E_CONN_LOST, -5);
	ck_assert_int_eq(PORTER_E_DENIED, -9);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {request_round_trip,       response_with_error_details,
				binary_payload_with_nuls, unknown_body_is_skipped,
				error_list_is_consistent, NULL};
	return th_suite("codec", "core", 0, tests);
}

TH_MAIN(suite)
