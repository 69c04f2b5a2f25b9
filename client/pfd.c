/* pfd - files by descriptor, the client's half; see pfd.h. */
#include "pfd.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pconn.h"
#include "porter.h"

/* A write is split in pieces of this size so that its deadline is checked
 * between them. */
#define WRITE_PIECE (4u << 20)

/* The PORTER_E_* code of errno value `e` after a read or write. */
static int code_of(int e)
{
	switch (e) {
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return PORTER_E_FILE_NOSPACE;
	case EACCES:
	case EPERM:
	case EROFS:
		return PORTER_E_FILE_PERM;
	case ENOMEM:
		return PORTER_E_NOMEM;
	default:
		return PORTER_E_FILE_IO;
	}
}

static int fail(int e, const char *op, const char *path)
{
	return pconn_set_error(code_of(e), "cannot %s '%s' through its descriptor: %s", op,
			       path ? path : "?", strerror(e));
}

int pfd_take(int accmode, pconn_fdlink **link)
{
	int fd = pconn_take_fd(link);
	if (fd < 0)
		return -1;
	struct stat sb;
	int fl = fcntl(fd, F_GETFL);
	/* A directory would let openat escape any confinement; anything but
	 * the asked access mode is not what porterd promises. */
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || fl < 0 || (fl & O_ACCMODE) != accmode) {
		pconn_fd_close(fd, *link);
		*link = NULL;
		return pconn_set_error(PORTER_E_PROTOCOL,
				       "porterd passed a descriptor that is not a regular file "
				       "open for %s",
				       accmode == O_RDONLY ? "reading" : "writing");
	}
	return fd;
}

int pfd_read(int fd, void *buf, size_t len, uint64_t off, size_t *got, const char *path)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			*got = done;
			return fail(errno, "read", path);
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	*got = done;
	return 0;
}

int pfd_write(int fd, const void *data, size_t len, int64_t deadline, const char *path)
{
	const char *p = data;
	while (len) {
		if (deadline && pconn_now_ms() >= deadline)
			return pconn_set_error(
				PORTER_E_TIMEOUT,
				"file call timed out writing '%s' through its descriptor",
				path ? path : "?");
		size_t want = len < WRITE_PIECE ? len : WRITE_PIECE;
		ssize_t n = write(fd, p, want);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fail(errno, "write", path);
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int pfd_finish(int fd, pconn_fdlink *link, int sync, const char *path)
{
	int rc = 0;
	if (sync && fsync(fd) < 0)
		rc = fail(errno, "sync", path);
	if (pconn_fd_close(fd, link) < 0 && rc == 0 && errno != EINTR)
		rc = fail(errno, "close", path);
	return rc;
}
