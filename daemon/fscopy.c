/* fscopy - the bytes of a file copy, holes kept; see fscopy.h. */
#include "fscopy.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* Asked for at a time, so that a long copy checks its deadline and
 * cancellation between pieces. */
#define COPY_PIECE (8u << 20)
/* The buffer of a copy by read and write. */
#define PLAIN_BUF (1u << 20)

/* Returns 0 or a positive errno value. */
static int pwrite_all(int fd, const uint8_t *p, size_t len, off_t at)
{
	while (len) {
		ssize_t n = pwrite(fd, p, len, at);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		p += n;
		at += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The data range of `in` at or after `at` (below `len`): its start in
 * `*start` and its end in `*end`. 0, or ENXIO when only a hole is left;
 * a file system that cannot tell says all of it is data. */
static int next_data(int in, uint64_t at, uint64_t len, uint64_t *start, uint64_t *end)
{
	off_t d = lseek(in, (off_t)at, SEEK_DATA);
	if (d < 0) {
		if (errno == ENXIO)
			return ENXIO;
		*start = at;
		*end = len;
		return 0;
	}
	off_t h = lseek(in, d, SEEK_HOLE);
	*start = (uint64_t)d;
	*end = h < 0 || (uint64_t)h > len ? len : (uint64_t)h;
	return 0;
}

int fscopy_data(fs_job *j, int in, int out, uint64_t len)
{
	uint64_t done = 0, data_end = 0;
	int plain = 0; /* copy_file_range refused: read and write */
	uint8_t *buf = NULL;
	int e = 0;
	while (!e && done < len) {
		if (fswork_should_stop(j)) {
			e = -1;
			break;
		}
		if (done >= data_end) {
			/* A hole is skipped: the copy's size, set below, makes
			 * the same hole. */
			if (next_data(in, done, len, &done, &data_end) == ENXIO) {
				/* A hole to the end, or the source shrank. */
				struct stat sb;
				done = fstat(in, &sb) == 0 && (uint64_t)sb.st_size < len
					       ? (uint64_t)sb.st_size
					       : len;
				break;
			}
			/* Data past `len` came after the size was taken (a
			 * writer appending past a hole): the copy is `len`
			 * bytes, as asked. */
			if (done >= len) {
				done = len;
				break;
			}
		}
		uint64_t left = data_end - done;
		size_t want = left < COPY_PIECE ? (size_t)left : COPY_PIECE;
		ssize_t n;
		if (!plain) {
			loff_t from = (loff_t)done, to = (loff_t)done;
			n = copy_file_range(in, &from, out, &to, want, 0);
			if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL ||
				      errno == EOPNOTSUPP)) {
				plain = 1;
				continue;
			}
		} else {
			if (!buf && !(buf = malloc(PLAIN_BUF))) {
				e = ENOMEM;
				break;
			}
			n = pread(in, buf, want < PLAIN_BUF ? want : PLAIN_BUF, (off_t)done);
			if (n > 0)
				e = pwrite_all(out, buf, (size_t)n, (off_t)done);
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			e = errno;
		else if (n == 0)
			break; /* the source shrank */
		else
			done += (uint64_t)n;
	}
	free(buf);
	/* A hole at the end (or a copy of holes only) is the size alone. */
	if (!e && ftruncate(out, (off_t)done) < 0)
		e = errno;
	j->total = done;
	return e;
}
