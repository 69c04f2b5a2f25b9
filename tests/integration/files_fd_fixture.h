/*
 * files_fd_fixture - the fixture of the suites of files by descriptor
 * (test_files_fd: what porterd passes; test_files_fd_client: what
 * libporter accepts and round trips through it): a porterd with the root
 * "main" in a fresh temp directory holding
 *   f       "hello, descriptor" (17 bytes: read as bytes),
 *   big     the same then 100,000 digits (past 64 KiB: read by descriptor),
 *   sub     a directory, to_sub a symlink to it,
 *   to_etc  a symlink out of the root, fifo a FIFO.
 * Check runs each test in a forked child, so these globals are per test.
 * Main test thread only.
 */
#ifndef PORTER_FILES_FD_FIXTURE_H
#define PORTER_FILES_FD_FIXTURE_H

#include "harness.h"

/* The deadline of the suites' file calls, in ms. */
#define T 10000

extern th_daemon d;   /* the porterd of the test */
extern char root[64]; /* the "main" root */

/* Checked fixtures: make the root and start porterd with file-pass-fd
 * true (setup) or false (setup_bytes), or true with a file-stream-idle of
 * one second, so that a stream unused that long is reclaimed
 * (setup_idle); teardown stops porterd, asserts a clean exit and removes
 * the root. */
void setup(void);
void setup_bytes(void);
/* setup with one more option `opt` `val` (both not NULL, kept). */
void setup_with(const char *opt, const char *val);
void setup_idle(void);
void teardown(void);

#endif
