/* lt_rand.h: the harness's fast non-cryptographic random numbers (backoff jitter, offline
 * times, shuffles); seeded from libsodium once. Keys and names use libsodium directly. */
#ifndef LT_RAND_H
#define LT_RAND_H

#include <stdint.h>

void lt_rand_seed(uint64_t seed);
uint64_t lt_rand(void);
/* Uniform in 0..n-1 (n > 0). */
uint32_t lt_rand_below(uint32_t n);
/* Uniform in [0, 1). */
double lt_rand01(void);

#endif
