/*
 * porter_errors.h - the one list of Porter's status codes, shared by the
 * wire contract (porter.proto's status fields), porterd and libporter.
 *
 * It lives with the wire code because the codes are part of the protocol:
 * porterd and the wire code include this header, never the client API
 * (porter.h), and porter.h includes it for its callers. Installed next to
 * porter.h.
 *
 * The codes are frozen: a code keeps its number for ever, because FFI
 * callers hard-code them. New codes are only appended with fresh numbers.
 */
#ifndef PORTER_ERRORS_H
#define PORTER_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

/* Visibility of libporter's exported functions (also used by porter.h). */
#ifndef PORTER_API
#if defined(PORTER_STATIC)
#define PORTER_API
#elif defined(PORTER_BUILDING)
#define PORTER_API __attribute__((visibility("default")))
#else
#define PORTER_API
#endif
#endif

/* Wire protocol version sent in Hello. */
#define PORTER_PROTOCOL_VERSION 1

/*
 * Every error code, once. X(NAME, value, "message"). Numbers are frozen;
 * new codes are only ever appended with fresh numbers. Blocks: -1..-19
 * transport and core, -20..-29 database, -30..-39 HTTP, -40..-59 files,
 * -60..-69 control.
 */
#define PORTER_ERRORS(X)                                                                           \
	X(PORTER_E_INVAL, -1, "invalid argument")                                                  \
	X(PORTER_E_NOMEM, -2, "out of memory")                                                     \
	X(PORTER_E_UNREACHABLE, -3, "daemon unreachable")                                          \
	X(PORTER_E_TIMEOUT, -4, "timed out")                                                       \
	X(PORTER_E_CONN_LOST, -5, "connection lost, outcome unknown")                              \
	X(PORTER_E_PROTOCOL, -6, "protocol error")                                                 \
	X(PORTER_E_TOO_LARGE, -7, "message too large")                                             \
	X(PORTER_E_BUSY, -8, "too many requests in flight")                                        \
	X(PORTER_E_DENIED, -9, "permission denied by daemon")                                      \
	X(PORTER_E_UNSUPPORTED, -10, "unsupported request")                                        \
	X(PORTER_E_CANCELLED, -11, "cancelled")                                                    \
	X(PORTER_E_SHUTDOWN, -12, "daemon shutting down")                                          \
	X(PORTER_E_INTERNAL, -13, "internal daemon error")                                         \
	X(PORTER_E_NOT_FOUND, -14, "no such object")                                               \
	X(PORTER_E_DB, -20, "database error")                                                      \
	X(PORTER_E_DB_CONNECT, -21, "database connection failed")                                  \
	X(PORTER_E_DB_SESSION, -22, "no such database session")                                    \
	X(PORTER_E_DB_BROKEN, -23, "database connection broken")                                   \
	X(PORTER_E_HTTP, -30, "HTTP transfer failed")                                              \
	X(PORTER_E_HTTP_SCHEME, -31, "URL scheme not allowed")                                     \
	X(PORTER_E_HTTP_TOO_LARGE, -32, "HTTP response too large")                                 \
	X(PORTER_E_HTTP_HOST, -33, "HTTP host not allowed")                                        \
	X(PORTER_E_HTTP_REDIRECTS, -34, "too many HTTP redirects")                                 \
	X(PORTER_E_HTTP_CONNECT, -35, "HTTP connection failed")                                    \
	X(PORTER_E_HTTP_TLS, -36, "TLS verification failed")                                       \
	X(PORTER_E_FILE_NOT_FOUND, -40, "file not found")                                          \
	X(PORTER_E_FILE_PERM, -41, "file permission denied")                                       \
	X(PORTER_E_FILE_ISDIR, -42, "is a directory")                                              \
	X(PORTER_E_FILE_EXISTS, -43, "file already exists")                                        \
	X(PORTER_E_FILE_NOSPACE, -44, "no space left on device")                                   \
	X(PORTER_E_FILE_ESCAPE, -45, "path escapes the file root")                                 \
	X(PORTER_E_FILE_IO, -46, "file I/O error")                                                 \
	X(PORTER_E_FILE_NOTDIR, -47, "not a directory")                                            \
	X(PORTER_E_FILE_ROOT, -48, "no such file root")

enum porter_error {
	PORTER_OK = 0,
#define PORTER_X_ENUM(name, value, msg) name = (value),
	PORTER_ERRORS(PORTER_X_ENUM)
#undef PORTER_X_ENUM
};

/*
 * A static English description of `code` (0 gives "ok"; an unknown code
 * gives "unknown error"). Never NULL; the string must not be freed.
 */
PORTER_API const char *porter_strerror(int code);

/* The symbolic name of `code`, e.g. "PORTER_E_TIMEOUT"; never NULL. */
PORTER_API const char *porter_error_name(int code);

#ifdef __cplusplus
}
#endif

#endif /* PORTER_ERRORS_H */
