/* lt_register.h: registering the devices the pool lacks, over the wire. Up to --concurrency
 * workers, each with one connection (spread over the servers and source addresses), register
 * accounts one after the other on it (a gateway sends a fresh challenge after every Register),
 * with usernames lt<8 random hex>x<n> and fresh keys, honouring the server's proof-of-work
 * difficulty and RATE_LIMITED's retry_after_ms. The pool file is rewritten every
 * LT_REG_SAVE_S and at the end, so an interrupted registration keeps what it made. */
#ifndef LT_REGISTER_H
#define LT_REGISTER_H

#include "lt_run.h"

#define LT_REG_SAVE_S 10

/* Runs the loop until the pool holds want devices. 0, or -1 after lt_fatal (cannot connect or
 * register, --register-timeout passed, interrupted, the pool file cannot be written). */
int lt_register(lt_run *r, uint32_t want);

#endif
