/* putf8 - keeping the text libporter hands out valid UTF-8; see putf8.h. */
#include "putf8.h"

#include <stddef.h>

/* The length of the well-formed sequence at `s` (RFC 3629's table: no
 * overlong forms, no surrogates, nothing past U+10FFFF), 0 when the bytes
 * there start none, or -1 when they start one the string's end cuts. */
static int seq_len(const unsigned char *s)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */
	int n;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0; /* overlong below */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates above */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90; /* overlong below */
		else if (c == 0xf4)
			hi = 0x8f; /* past U+10FFFF above */
	} else {
		return 0; /* a continuation byte, C0, C1, F5..FF */
	}
	for (int i = 1; i < n; i++) {
		unsigned char b = s[i];
		if (b == '\0')
			return -1;
		if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf))
			return 0;
	}
	return n;
}

void putf8_tidy(char *s)
{
	unsigned char *p = (unsigned char *)s;
	while (*p) {
		int n = seq_len(p);
		if (n < 0) {
			*p = '\0'; /* a character the end cut: drop what is left of it */
			return;
		}
		if (n == 0) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
}
