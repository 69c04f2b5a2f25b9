/* fsclose - closes off the loop; see fsclose.h. */
#include "fsclose.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dalloc.h"
#include "log.h"
#include "tmpname.h"

typedef struct close_job {
	uv_work_t work;
	int fd, dirfd;
	char tmpname[64];
} close_job;

static void close_all(int fd, int dirfd, const char *tmpname)
{
	if (tmpname[0] && dirfd >= 0)
		unlinkat(dirfd, tmpname, 0);
	tmpname_retire(tmpname);
	if (fd >= 0)
		close(fd);
	if (dirfd >= 0)
		close(dirfd);
}

static void run(uv_work_t *w)
{
	close_job *j = w->data;
	close_all(j->fd, j->dirfd, j->tmpname);
}

static void done(uv_work_t *w, int status)
{
	close_job *j = w->data;
	/* Cancelled never: nothing calls uv_cancel on it. Should it be,
	 * the descriptors still go. */
	if (status == UV_ECANCELED)
		close_all(j->fd, j->dirfd, j->tmpname);
	free(j);
}

void fsclose_queue(uv_loop_t *loop, int fd, int dirfd, const char *tmpname)
{
	if (fd < 0 && dirfd < 0 && !tmpname[0])
		return;
	close_job *j = dmalloc(sizeof(*j));
	size_t n = strlen(tmpname);
	if (!j || n >= sizeof(j->tmpname)) {
		free(j);
		close_all(fd, dirfd, tmpname);
		return;
	}
	j->work.data = j;
	j->fd = fd;
	j->dirfd = dirfd;
	memcpy(j->tmpname, tmpname, n + 1);
	if (uv_queue_work(loop, &j->work, run, done) < 0) {
		log_warn("fsclose: could not queue a close; closing on the loop");
		close_all(fd, dirfd, tmpname);
		free(j);
	}
}
