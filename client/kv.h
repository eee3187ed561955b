/* kv.h: the "name=value" line format of the files in the home folder. */
#ifndef PC_KV_H
#define PC_KV_H

#include <stddef.h>

/* Finds "name=" at the start of a line of text and copies its value (up to the end of the
 * line) into out; returns 0, or -1 when absent or longer than cap - 1. */
int pc_kv_get(const char *text, const char *name, char *out, size_t cap);

#endif
