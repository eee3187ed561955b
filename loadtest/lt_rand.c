#include "lt_rand.h"

static uint64_t lt_rand_s = 0x853c49e6748fea9bull;

void lt_rand_seed(uint64_t seed)
{
    lt_rand_s = seed ? seed : 0x853c49e6748fea9bull;
}

uint64_t lt_rand(void)
{
    /* xorshift64* */
    lt_rand_s ^= lt_rand_s >> 12;
    lt_rand_s ^= lt_rand_s << 25;
    lt_rand_s ^= lt_rand_s >> 27;
    return lt_rand_s * 0x2545f4914f6cdd1dull;
}

uint32_t lt_rand_below(uint32_t n)
{
    return (uint32_t)((lt_rand() >> 32) * n >> 32);
}

double lt_rand01(void)
{
    return (double)(lt_rand() >> 11) / 9007199254740992.0;
}
