/* fsstream - the table of open file streams; see fsstream.h. */
#include "fsstream.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/random.h>
#include <unistd.h>
#include <uv.h>

#include "log.h"
#include "porter_errors.h"

static struct {
	uint32_t max_streams; /* open streams per connection */
	pthread_mutex_t lock; /* guards `streams` */
	list streams;
} G = {.lock = PTHREAD_MUTEX_INITIALIZER, .max_streams = 64, .streams = {&G.streams, &G.streams}};

void fsstream_init(uint32_t max_per_conn)
{
	G.max_streams = max_per_conn ? max_per_conn : 64;
}

uint64_t fsstream_random_id(void)
{
	uint64_t id = 0;
	while (id == 0) {
		if (getrandom(&id, sizeof(id), 0) != sizeof(id))
			id = uv_hrtime() ^ ((uint64_t)rand() << 32);
	}
	return id;
}

fs_stream *fsstream_new(uid_t uid, uint64_t instance, unsigned worker, uint64_t conn_serial,
			int writing)
{
	fs_stream *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->id = fsstream_random_id();
	s->uid = uid;
	s->instance = instance;
	s->worker = worker;
	s->conn_serial = conn_serial;
	s->writing = writing;
	s->fd = -1;
	s->dirfd = -1;
	return s;
}

void fsstream_destroy(fs_stream *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	if (s->tmpname[0] && s->dirfd >= 0)
		unlinkat(s->dirfd, s->tmpname, 0);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->base);
	free(s->where);
	free(s);
}

int fsstream_publish(fs_stream *s, uint32_t *n_open)
{
	/* Each stream holds a descriptor: a connection may not pile them up. */
	uint32_t n = 0;
	list *pos, *tmp;
	pthread_mutex_lock(&G.lock);
	list_for_each_safe(pos, tmp, &G.streams) {
		fs_stream *o = list_entry(pos, fs_stream, link);
		n += o->worker == s->worker && o->conn_serial == s->conn_serial;
	}
	if (n < G.max_streams)
		list_push_back(&G.streams, &s->link);
	pthread_mutex_unlock(&G.lock);
	if (n >= G.max_streams) {
		fsstream_destroy(s);
		*n_open = n;
		return PORTER_E_BUSY;
	}
	return 0;
}

int fsstream_take(uint64_t id, uid_t uid, uint64_t instance, int writing, int any_kind,
		  fs_stream **out)
{
	int rc = PORTER_E_NOT_FOUND;
	pthread_mutex_lock(&G.lock);
	list *pos, *tmp;
	list_for_each_safe(pos, tmp, &G.streams) {
		fs_stream *s = list_entry(pos, fs_stream, link);
		if (s->id != id)
			continue;
		if (s->uid != uid || s->instance != instance || s->doomed)
			break; /* not yours: indistinguishable from unknown */
		if (!any_kind && s->writing != writing) {
			rc = PORTER_E_INVAL;
			break;
		}
		if (s->busy) {
			rc = PORTER_E_BUSY;
			break;
		}
		s->busy = 1;
		*out = s;
		rc = 0;
		break;
	}
	pthread_mutex_unlock(&G.lock);
	return rc;
}

void fsstream_release(fs_stream *s, int drop)
{
	fs_stream *gone = NULL;
	pthread_mutex_lock(&G.lock);
	s->busy = 0;
	if (drop || s->doomed) {
		list_remove(&s->link);
		gone = s;
	}
	pthread_mutex_unlock(&G.lock);
	fsstream_destroy(gone);
}

void fsstream_conn_closed(unsigned worker_index, uint64_t conn_serial)
{
	list dropped, *pos, *tmp;
	list_init(&dropped);
	pthread_mutex_lock(&G.lock);
	list_for_each_safe(pos, tmp, &G.streams) {
		fs_stream *s = list_entry(pos, fs_stream, link);
		if (s->worker != worker_index || s->conn_serial != conn_serial)
			continue;
		if (s->busy) {
			s->doomed = 1;
		} else {
			list_remove(&s->link);
			list_push_back(&dropped, &s->link);
		}
	}
	pthread_mutex_unlock(&G.lock);
	list_for_each_safe(pos, tmp, &dropped) {
		fs_stream *s = list_entry(pos, fs_stream, link);
		list_remove(&s->link);
		log_debug("dropping file stream %llx: its connection closed",
			  (unsigned long long)s->id);
		fsstream_destroy(s);
	}
}

void fsstream_shutdown(void)
{
	list *pos, *tmp;
	pthread_mutex_lock(&G.lock);
	list_for_each_safe(pos, tmp, &G.streams) {
		fs_stream *s = list_entry(pos, fs_stream, link);
		list_remove(&s->link);
		fsstream_destroy(s);
	}
	pthread_mutex_unlock(&G.lock);
}
