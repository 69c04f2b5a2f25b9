/* pout - writing the out structs a caller allocates; see pout.h. */
#include "pout.h"

#include <string.h>

#include "pconn.h"
#include "porter.h"

int pout_check(const void *out, size_t v1, const char *what)
{
	if (!out)
		return pconn_set_error(PORTER_E_INVAL, "%s out is NULL", what);
	size_t have;
	memcpy(&have, out, sizeof(have));
	if (have < v1)
		return pconn_set_error(PORTER_E_INVAL,
				       "%s struct_size %zu is below version 1's %zu: initialise "
				       "it with its *_INIT macro",
				       what, have, v1);
	return 0;
}

void pout_put(void *out, const void *src, size_t n)
{
	size_t have;
	memcpy(&have, out, sizeof(have));
	size_t k = (have < n ? have : n) - sizeof(size_t);
	char *dst = (char *)out + sizeof(size_t);
	if (src)
		memcpy(dst, (const char *)src + sizeof(size_t), k);
	else
		memset(dst, 0, k);
}
