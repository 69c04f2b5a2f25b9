/*
 * pout - writing the out structs a caller allocates (porter.h rule 9):
 * each starts with `size_t struct_size`, the size the caller was compiled
 * with, and the library writes only within it and never struct_size
 * itself, so a library newer than the caller never writes past the
 * caller's struct. Stateless; any thread.
 */
#ifndef PORTER_CLIENT_POUT_H
#define PORTER_CLIENT_POUT_H

#include <stddef.h>

/* Version 1's size of out struct `type`: up to the end of its last field
 * of version 1, `last` (a caller's sizeof may add trailing padding). */
#define POUT_V1(type, last) (offsetof(type, last) + sizeof(((type *)0)->last))

/*
 * Returns 0 when `out` is not NULL and its struct_size is at least `v1`
 * (version 1's size), else PORTER_E_INVAL with the calling thread's error
 * set (`what` names the struct in the message). Reads struct_size only.
 */
int pout_check(const void *out, size_t v1, const char *what);

/*
 * Copies the library's struct `src` (`n` bytes, its struct_size first)
 * into `out`, which passed pout_check: the bytes within out's struct_size,
 * struct_size excluded. `src` NULL zeroes those bytes instead (rule 6).
 */
void pout_put(void *out, const void *src, size_t n);

#endif
