/*
 * thrnd - a small deterministic pseudo-random source (xorshift64) for the
 * suites that compare a hand-written encoder with protobuf-c over random
 * inputs: the same sequence on every run, so that a failure repeats.
 * One state per process; not thread-safe (a suite's own thread only).
 */
#ifndef PORTER_THRND_H
#define PORTER_THRND_H

#include <stdint.h>

/* Starts the sequence again from `seed` (not 0: xorshift stays at 0). */
void th_rnd_seed(uint64_t seed);

/* The next 64 random bits. */
uint64_t th_rnd(void);

/* A value of a random length in bits, often 0: the shape varint and
 * fixed-width fields take on the wire. */
uint64_t th_rnd_value(void);

#endif
