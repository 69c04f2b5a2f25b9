/*
 * randid - the one generator of random ids, shared by porterd (ids of
 * state that spans calls, see daemon/fwd.h) and libporter (the client
 * instance id sent in Hello).
 *
 * Reads the kernel's CSPRNG (getrandom) and nothing else: an id that names
 * another client's state must not be guessable, so there is no fallback to
 * the clock or the pid. When the kernel gives no randomness the caller gets
 * an error and decides what that means. Never blocks (GRND_NONBLOCK: a
 * worker loop or a caller with a deadline must not wait for the entropy
 * pool at early boot). Thread safe, any thread.
 */
#ifndef PORTER_RANDID_H
#define PORTER_RANDID_H

#include <stdint.h>

/*
 * Stores in `*out` (not NULL) a random id of `bits` bits (1..64): uniform
 * over 1 .. 2^bits - 1, never 0, so 0 stays free to mean "none". Returns 0,
 * PORTER_E_INVAL for `bits` out of range, or PORTER_E_INTERNAL when the
 * kernel gives no random bytes (not yet seeded, or getrandom refused);
 * `*out` is untouched on failure.
 */
int randid_new(unsigned bits, uint64_t *out);

#endif
