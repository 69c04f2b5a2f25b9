/*
 * pfile - what the file calls of libporter (file.c, fileops.c) share.
 * No state; any thread.
 */
#ifndef PORTER_CLIENT_PFILE_H
#define PORTER_CLIENT_PFILE_H

#include "pconn.h"
#include "porter.h"

/* The wire's root name for `root` (NULL: "", the first root). Borrowed. */
static inline char *pfile_root(const char *root)
{
	return (char *)(root ? root : "");
}

/* Frees `resp` (a reply of the wrong kind) and records PORTER_E_PROTOCOL
 * naming `what`; returns it. */
static inline int pfile_bad_reply(Porter__V1__Response *resp, const char *what)
{
	porter__v1__response__free_unpacked(resp, NULL);
	return pconn_set_error(PORTER_E_PROTOCOL, "%s reply missing", what);
}

#endif
