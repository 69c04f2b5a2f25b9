/* fspass - which open files go to a client as descriptors; see fspass.h. */
#include "fspass.h"

#include <fcntl.h>
#include <unistd.h>

#include "fsroot.h"

#define F_ATOMIC PORTER__V1__FILE_WRITE_FLAG__FILE_ATOMIC

int fspass_small_read(const Porter__V1__FileRead *m, uint64_t size)
{
	if (size == 0 || m->offset >= size)
		return 0;
	uint64_t want = size - m->offset;
	if (m->length && m->length < want)
		want = m->length;
	return want <= (64u << 10) && want <= fswork_chunk(m->chunk_size);
}

int fspass_passable(const struct stat *sb, uid_t uid, int writing)
{
	if (uid == clients_self())
		return 1; /* porterd's own uid: nothing to widen */
	/* The kernel judges a reopen through /proc/self/fd, and a hard link
	 * of the descriptor (fs.protected_hardlinks: owner, or read and
	 * write access), by the inode alone, past the root's directories. So
	 * a descriptor whose file the client owns, or whose group or other
	 * bits give the access the descriptor lacks (write for a read, read
	 * for a write), would give more than asked; the group bits count for
	 * any client (its groups are not known here; with an ACL they are
	 * the mask). */
	if (sb->st_uid == uid)
		return 0;
	mode_t other = writing ? (S_IRGRP | S_IROTH) : (S_IWGRP | S_IWOTH);
	return (sb->st_mode & other) == 0;
}

int fspass_read(fs_job *j, int *fd, const struct stat *sb, int open_flags)
{
	if (!S_ISREG(sb->st_mode) || !fspass_passable(sb, j->uid, 0) ||
	    (open_flags & O_ACCMODE) != O_RDONLY)
		return -1;
	/* F_SETFL takes only the status flags (O_NONBLOCK, O_APPEND, ...)
	 * and ignores the access mode and creation flags in its argument. */
	if ((open_flags & O_NONBLOCK) && fcntl(*fd, F_SETFL, open_flags & ~O_NONBLOCK) < 0)
		return -1;
	j->pass_fd = *fd;
	*fd = -1;
	j->file_size = (uint64_t)sb->st_size;
	j->chunk = fswork_chunk(j->r->msg->file_read->chunk_size);
	return 0;
}

int fspass_write(fs_job *j, fs_stream *s)
{
	struct stat sb;
	if (fstat(s->fd, &sb) < 0 || !S_ISREG(sb.st_mode) || !fspass_passable(&sb, j->uid, 1))
		return -1;
	int fl = fcntl(s->fd, F_GETFL);
	if (fl < 0 || (fl & O_ACCMODE) != O_WRONLY)
		return -1;
	if (!(s->flags & F_ATOMIC)) {
		if (fcntl(s->fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
			return -1;
		j->pass_fd = s->fd;
		s->fd = -1;
		return 0;
	}
	j->pass_fd = fcntl(s->fd, F_DUPFD_CLOEXEC, 0);
	return j->pass_fd < 0 ? -1 : 0;
}
