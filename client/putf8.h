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

/*
 * Makes the NUL-terminated string `s` (not NULL) valid UTF-8 in place: an
 * incomplete sequence at its end (a cut character) is dropped, and every
 * other byte that does not start a well-formed sequence (a stray
 * continuation byte, an overlong form, a surrogate, past U+10FFFF, Latin-1)
 * becomes '?'. Never makes it longer.
 */
void putf8_tidy(char *s);

#endif
