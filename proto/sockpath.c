/* sockpath - the default socket path; see sockpath.h. */
#include "sockpath.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "porter_errors.h"

int sockpath_default(char *buf, size_t cap)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;

	if (xdg && xdg[0] == '/')
		n = snprintf(buf, cap, "%s/porter/porter.sock", xdg);
	else
		n = snprintf(buf, cap, "/tmp/porter-%u/porter.sock", (unsigned)getuid());
	if (n < 0 || (size_t)n >= cap)
		return PORTER_E_INVAL;
	return n;
}
