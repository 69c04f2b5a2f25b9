/* putf8 - keeping the text libporter hands out valid UTF-8; see putf8.h. */
#include "putf8.h"

#include <stddef.h>
#include <string.h>

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

void putf8_tidy(char *s, size_t cap)
{
	unsigned char *p = (unsigned char *)s;
	/* First the length it grows to, and where the input must end for it
	 * to fit; then the copy from the end backwards: each unit's output is
	 * never shorter than its input, so nothing is overwritten before it
	 * is read. */
	size_t in = 0, out = 0;
	while (p[in]) {
		int n = seq_len(p + in);
		if (n < 0)
			break; /* a character the end cut: dropped */
		size_t w = n == 0 ? 4 : (size_t)n;
		if (out + w >= cap)
			break; /* no room: cut before this unit */
		in += n == 0 ? 1 : (size_t)n;
		out += w;
	}
	size_t i = in, o = out;
	s[o] = '\0';
	while (i > 0) {
		/* Units are found going forwards; step back over one by
		 * looking at where its start can be (1 to 4 bytes back). */
		size_t k = 1;
		while (k < 4 && k < i && (p[i - k] & 0xc0) == 0x80)
			k++;
		int n = seq_len(p + i - k);
		if (n != (int)k) {
			/* Not a whole character ending here: the last byte is
			 * one of no character. */
			static const char hex[] = "0123456789abcdef";
			unsigned char b = p[i - 1];
			o -= 4;
			s[o] = '\\';
			s[o + 1] = 'x';
			s[o + 2] = hex[b >> 4];
			s[o + 3] = hex[b & 15];
			i--;
		} else {
			o -= k;
			i -= k;
			memmove(s + o, p + i, k);
		}
	}
}
