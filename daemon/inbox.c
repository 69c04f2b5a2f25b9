/* inbox - cross-thread queue with a doorbell; see inbox.h. */
#include "inbox.h"

#include "porter_errors.h"

static void on_doorbell(uv_async_t *a)
{
	inbox *ib = a->data;

	pthread_mutex_lock(&ib->mu);
	inbox_msg *m = ib->head;
	ib->head = ib->tail = NULL;
	pthread_mutex_unlock(&ib->mu);

	while (m) {
		inbox_msg *next = m->next;
		m->next = NULL;
		m->run(ib->owner, m);
		m = next;
	}
}

int inbox_init(inbox *ib, uv_loop_t *loop, void *owner)
{
	ib->head = ib->tail = NULL;
	ib->closed = 0;
	ib->owner = owner;
	if (pthread_mutex_init(&ib->mu, NULL) != 0)
		return PORTER_E_NOMEM;
	int rc = uv_async_init(loop, &ib->async, on_doorbell);
	if (rc < 0) {
		pthread_mutex_destroy(&ib->mu);
		return PORTER_E_INTERNAL;
	}
	ib->async.data = ib;
	return 0;
}

int inbox_push(inbox *ib, inbox_msg *m)
{
	m->next = NULL;
	pthread_mutex_lock(&ib->mu);
	if (ib->closed) {
		pthread_mutex_unlock(&ib->mu);
		return PORTER_E_SHUTDOWN;
	}
	if (ib->tail)
		ib->tail->next = m;
	else
		ib->head = m;
	ib->tail = m;
	/* Sent under the lock: inbox_close sets `closed` under the same lock
	 * before it closes the handle, so no send can race with the close. */
	uv_async_send(&ib->async);
	pthread_mutex_unlock(&ib->mu);
	return 0;
}

void inbox_close(inbox *ib, uv_close_cb cb)
{
	pthread_mutex_lock(&ib->mu);
	ib->closed = 1;
	inbox_msg *m = ib->head;
	ib->head = ib->tail = NULL;
	pthread_mutex_unlock(&ib->mu);

	while (m) {
		inbox_msg *next = m->next;
		m->drop(m);
		m = next;
	}
	uv_close((uv_handle_t *)&ib->async, cb);
}

void inbox_destroy(inbox *ib)
{
	pthread_mutex_destroy(&ib->mu);
}
