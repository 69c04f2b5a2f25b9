/* randid - random ids from getrandom, no weak fallback. See randid.h. */
#include "randid.h"

#include <errno.h>
#include <sys/random.h>

#include "porter_errors.h"

/* A draw whose `bits` are all 0 is drawn again (for a 1-bit id that is
 * every other draw); 64 draws in a row fail with probability 2^-64 even
 * then. A draw of 64 zero bits is taken for what it almost surely is, a
 * kernel handing out no randomness, and refused at once. */
enum { MAX_DRAWS = 64 };

int randid_new(unsigned bits, uint64_t *out)
{
	if (bits < 1 || bits > 64)
		return PORTER_E_INVAL;
	const uint64_t mask = bits == 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
	for (int draw = 0; draw < MAX_DRAWS; draw++) {
		uint64_t v = 0;
		ssize_t n;
		do
			n = getrandom(&v, sizeof(v), GRND_NONBLOCK);
		while (n < 0 && errno == EINTR);
		/* A short read leaves bytes that are not random: refuse it
		 * rather than pad it. */
		if (n != (ssize_t)sizeof(v) || v == 0)
			return PORTER_E_INTERNAL;
		if (v & mask) {
			*out = v & mask;
			return 0;
		}
	}
	return PORTER_E_INTERNAL;
}
