/*
 * ops - routes each request to the module that performs it, and answers the
 * core requests (Ping) itself.
 *
 * Runs on the worker loop that read the request; not thread safe.
 */
#ifndef PORTER_OPS_H
#define PORTER_OPS_H

#include "req.h"

/* Starts the work for `r`; the chosen module finishes it. */
void ops_dispatch(req *r);

#endif
