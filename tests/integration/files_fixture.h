/*
 * files_fixture - the fixture that the test_files* suites of file
 * operations share (test_files, test_files_errors, test_files_confine,
 * test_files_stream): a porterd with the roots "main" and "other" in fresh
 * temp directories, a directory outside every root, and helpers on them.
 *
 * Each suite runs its tests twice, in a tcase "ops" (reads and writes by
 * descriptor, the default) and in a tcase "bytes" (file-pass-fd false,
 * every byte over the socket). Check runs each test in a forked child, so
 * these globals are per test. Main test thread only.
 */
#ifndef PORTER_FILES_FIXTURE_H
#define PORTER_FILES_FIXTURE_H

#include <check.h>
#include <stddef.h>

#include "harness.h"

/* The deadline of every file call of the suites, in ms. */
#define T 10000

extern th_daemon d;      /* the porterd of the test */
extern char root[64];    /* the "main" root */
extern char other[64];   /* the "other" root */
extern char outside[64]; /* a directory outside every root, holding "secret" */
/* 1: porterd runs with file-pass-fd false, so reads and writes go as
 * bytes over the socket; 0: by descriptor (the default). */
extern int bytes_mode;
/* 1: porterd runs with file-loop-fast-path false, so that every request
 * goes through the thread pool (the tests of its queue). Set before
 * start_with. */
extern int pool_only;

/* Empties `dir` (not NULL) but keeps it: the daemon holds the root open. */
void empty_dir(const char *dir);

/* `dir`/`rel` into `buf` of capacity `cap`. */
void path_in(char *buf, size_t cap, const char *dir, const char *rel);

/* Writes `content` to `dir`/`rel` directly, not through porterd. */
void put_local(const char *dir, const char *rel, const char *content);

/* Starts porterd on root and other with --file-resolve `resolve`, and the
 * mode of bytes_mode and pool_only. Asserts that it started. */
void start_with(const char *resolve);

/* Checked fixtures: makes the three directories and starts porterd
 * ("auto" resolution) by descriptor (setup) or as bytes (setup_bytes);
 * teardown stops it, asserts a clean exit and removes the directories. */
void setup(void);
void setup_bytes(void);
void teardown(void);

/* Reads `path` of root `rt` (NULL: the default root) through porterd and
 * asserts that it is `want` (`n` bytes). */
void expect_content(const char *rt, const char *path, const void *want, size_t n);

/* The Suite `name` of a test_files* suite: the NULL-terminated lists
 * `ops` in the tcase "ops" (setup, teardown) and `bytes` in the tcase
 * "bytes" (setup_bytes, teardown). */
Suite *files_suite(const char *name, const TTest *const *ops, const TTest *const *bytes);

#endif
