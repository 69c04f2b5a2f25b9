/*
 * putf8 - keeping the text libporter hands out valid UTF-8. A thread's
 * last error message is formatted into a fixed buffer, and messages carry
 * text from elsewhere (a root or header name the caller gave, porterd's
 * own message, itself cut at porterd's buffer size): a cut can fall inside
 * a multi-byte character, and FFI callers decode the message as UTF-8
 * (Dart's toDartString and Python's bytes.decode throw on a broken
 * sequence, losing the error they were reporting). Stateless; any thread.
 */
#ifndef PORTER_CLIENT_PUTF8_H
#define PORTER_CLIENT_PUTF8_H

#include <stddef.h>

/*
 * Makes the NUL-terminated string `s` (not NULL, in a buffer of `cap`
 * bytes, cap > strlen(s)) valid UTF-8 in place: an incomplete sequence at
 * its end (a cut character) is dropped, and every other byte that does not
 * start a well-formed sequence (a stray continuation byte, an overlong
 * form, a surrogate, past U+10FFFF, Latin-1) is written as the four
 * characters \xNN (lower-case hex), so that names of bytes that are not
 * UTF-8 stay told apart (a '?' for each made "\xff\xfe" and "\xfe\xff"
 * alike). What no longer fits in `cap` is cut, at a whole character or
 * escape.
 */
void putf8_tidy(char *s, size_t cap);

#endif
