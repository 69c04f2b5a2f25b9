/*
 * sockpath - where porterd listens by default, shared by daemon and client
 * so both agree without configuration.
 *
 * Pure functions of the environment; thread safe.
 */
#ifndef PORTER_SOCKPATH_H
#define PORTER_SOCKPATH_H

#include <stddef.h>

/*
 * Writes the default socket path into `buf` (capacity `cap`):
 * $XDG_RUNTIME_DIR/porter/porter.sock when XDG_RUNTIME_DIR is set to an
 * absolute path, else /tmp/porter-$UID/porter.sock. Returns the length, or
 * PORTER_E_INVAL when it does not fit.
 */
int sockpath_default(char *buf, size_t cap);

#endif
