/* thrnd: see thrnd.h. */
#include "thrnd.h"

static uint64_t state = 0x9e3779b97f4a7c15ull;

void th_rnd_seed(uint64_t seed)
{
	state = seed ? seed : 0x9e3779b97f4a7c15ull;
}

uint64_t th_rnd(void)
{
	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	return state;
}

uint64_t th_rnd_value(void)
{
	unsigned bits = (unsigned)(th_rnd() % 65);
	if (bits == 0 || th_rnd() % 4 == 0)
		return 0;
	return bits == 64 ? th_rnd() : th_rnd() & ((1ull << bits) - 1);
}
