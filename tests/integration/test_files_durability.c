/*
 * Durability of atomic writes: porterd is SIGKILLed at random moments
 * while several threads replace files atomically, and restarted each time.
 * Every file must then hold exactly the last acknowledged version or the
 * one in flight - never a torn, short or empty one. One file's versions
 * are larger than a request and travel as a chunked write stream.
 */
#include <check.h>
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "porter.h"

#define NFILES 5
/* The last file's versions exceed one request, so they go through a
 * chunked write stream and its commit. */
#define MAXLEN (8u << 20)
#define ROUNDS 30
#define HDR 16

static th_daemon d;
static char root[64];
static char roots_arg[128];

static uint32_t mix(uint32_t f, uint32_t v)
{
	uint32_t h = f * 2654435761u ^ (v + 0x9e3779b9u) * 2246822519u;
	h ^= h >> 15;
	h *= 2246822519u;
	h ^= h >> 13;
	return h;
}

/* Version `v` of file `f`: a header naming both, then a pattern, of a
 * length between 1 KiB and about 1 MiB that depends on both. */
static size_t gen(uint32_t f, uint32_t v, uint8_t *buf)
{
	uint32_t h = mix(f, v);
	size_t len = f == NFILES - 1 ? (5u << 20) + h % (2u << 20) : 1024 + h % (1u << 20);
	memcpy(buf, "PORTERV1", 8);
	memcpy(buf + 8, &f, 4);
	memcpy(buf + 12, &v, 4);
	for (size_t i = HDR; i < len; i++)
		buf[i] = (uint8_t)(h + i * 31 + (i >> 8));
	return len;
}

typedef struct file_state {
	uint32_t f;
	_Atomic uint32_t acked;     /* last version the daemon confirmed */
	_Atomic uint32_t attempted; /* version being written (== acked when idle) */
	pthread_t th;
	long writes;
} file_state;

static file_state files[NFILES];
static uint8_t *bufs[NFILES];

static void *writer(void *arg)
{
	file_state *fs = arg;
	char name[32];
	snprintf(name, sizeof(name), "f%u", fs->f);
	for (;;) {
		uint32_t v = atomic_load(&fs->acked) + 1;
		size_t len = gen(fs->f, v, bufs[fs->f]);
		atomic_store(&fs->attempted, v);
		if (porter_file_write("d", name, bufs[fs->f], len, PORTER_FILE_ATOMIC, 0, 0,
				      10000) != 0)
			break;
		atomic_store(&fs->acked, v);
		fs->writes++;
	}
	porter_thread_disconnect();
	return NULL;
}

/* Writes acknowledged so far, over all files. */
static uint32_t acked_total(void)
{
	uint32_t n = 0;
	for (int f = 0; f < NFILES; f++)
		n += atomic_load(&files[f].acked);
	return n;
}

/* Checks file `f` on disk; returns the version it holds. */
static uint32_t verify(file_state *fs, uint8_t *want)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/f%u", root, fs->f);
	FILE *fp = fopen(p, "rb");
	ck_assert_msg(fp != NULL, "f%u is missing", fs->f);
	uint8_t *got = malloc(MAXLEN);
	size_t n = fread(got, 1, MAXLEN, fp);
	fclose(fp);
	ck_assert_msg(n >= HDR, "f%u is empty or short: %zu bytes", fs->f, n);
	uint32_t f, v;
	memcpy(&f, got + 8, 4);
	memcpy(&v, got + 12, 4);
	ck_assert_uint_eq(f, fs->f);
	uint32_t acked = atomic_load(&fs->acked), att = atomic_load(&fs->attempted);
	ck_assert_msg(v == acked || v == att, "f%u holds version %u; acked %u, in flight %u", fs->f,
		      v, acked, att);
	size_t len = gen(fs->f, v, want);
	ck_assert_msg(n == len, "f%u version %u is torn: %zu bytes of %zu", fs->f, v, n, len);
	ck_assert_msg(memcmp(got, want, len) == 0, "f%u version %u content differs", fs->f, v);
	free(got);
	return v;
}

static int count_temps(void)
{
	DIR *dd = opendir(root);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(dd)))
		if (!strncmp(e->d_name, ".porter-", 8))
			n++;
	closedir(dd);
	return n;
}

START_TEST(test_sigkill_during_atomic_writes)
{
	strcpy(root, "/tmp/porter-durable-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root));
	snprintf(roots_arg, sizeof(roots_arg), "d=%s", root);
	const char *args[] = {"--file-roots", roots_arg, NULL};
	ck_assert_int_eq(th_daemon_start(&d, args), 0);
	uint8_t *want = malloc(MAXLEN);
	for (uint32_t f = 0; f < NFILES; f++) {
		bufs[f] = malloc(MAXLEN);
		files[f].f = f;
		char name[32];
		snprintf(name, sizeof(name), "f%u", f);
		size_t len = gen(f, 0, bufs[f]);
		ck_assert_int_eq(
			porter_file_write("d", name, bufs[f], len, PORTER_FILE_ATOMIC, 0, 0, 10000),
			0);
	}
	porter_thread_disconnect();

	srand((unsigned)getpid());
	int in_flight_kills = 0, landed = 0, temps = 0;
	long total_writes = 0;
	for (int round = 0; round < ROUNDS; round++) {
		if (round > 0)
			ck_assert_int_eq(th_daemon_restart(&d, args), 0);
		uint32_t start = 0;
		for (int f = 0; f < NFILES; f++) {
			start += atomic_load(&files[f].acked);
			pthread_create(&files[f].th, NULL, writer, &files[f]);
		}
		/* The kill must find writes under way however busy the machine
		 * is: two acknowledged writes first (10 s at most), then a
		 * random moment. */
		long long until = th_now_ms() + 10000;
		while (th_now_ms() < until && acked_total() < start + 2)
			usleep(2000);
		usleep(20000 + (useconds_t)(rand() % 180000));
		th_daemon_kill(&d);
		for (int f = 0; f < NFILES; f++) {
			pthread_join(files[f].th, NULL);
			uint32_t acked = atomic_load(&files[f].acked);
			uint32_t att = atomic_load(&files[f].attempted);
			if (att != acked)
				in_flight_kills++;
			uint32_t v = verify(&files[f], want);
			if (v == att && att != acked)
				landed++;
			/* Whatever is on disk is now the base version. */
			atomic_store(&files[f].acked, v);
			atomic_store(&files[f].attempted, v);
			total_writes += files[f].writes;
			files[f].writes = 0;
		}
	}
	temps = count_temps();
	fprintf(stderr,
		"%d kills, %ld acknowledged writes, %d writes in flight at a kill (%d of them landed), "
		"%d stray temp file(s) left beside intact targets\n",
		ROUNDS, total_writes, in_flight_kills, landed, temps);
	/* The test means something only if kills did hit writes. */
	ck_assert_int_gt(in_flight_kills, ROUNDS);
	ck_assert_int_gt(total_writes, ROUNDS);
	th_daemon_cleanup(&d);
	th_rm_rf(root);
	for (int f = 0; f < NFILES; f++)
		free(bufs[f]);
	free(want);
}
END_TEST

static Suite *suite(void)
{
	const TTest *tests[] = {test_sigkill_during_atomic_writes, NULL};
	return th_suite("files_durability", "sigkill", 240, tests);
}

TH_MAIN(suite)
