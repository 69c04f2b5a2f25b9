/*
 * fileops - the file calls of libporter that name files without moving
 * their contents: delete, stat, mkdir, rename, copy, list, and the file
 * members of a batch; see porter.h ("Files"). Reads and writes are in
 * file.c.
 */
#include "porter.h"

#include <stdlib.h>
#include <string.h>

#include "pbatch.h"
#include "pconn.h"
#include "pfile.h"
#include "pout.h"

/* See pfile.h. */
int pfile_call(Porter__V1__Request *req, uint64_t call_id, int timeout_ms, enum pconn_retry retry,
	       Porter__V1__Response__BodyCase body, const char *what, Porter__V1__Response **out)
{
	Porter__V1__Response *resp = NULL;
	req->id = call_id;
	int rc = pconn_call(req, timeout_ms, retry, &resp);
	if (rc < 0)
		return rc;
	if (resp->body_case != body)
		return pfile_bad_reply(resp, what);
	if (out)
		*out = resp;
	else
		porter__v1__response__free_unpacked(resp, NULL);
	return 0;
}

/* ------------------------------------------------- delete, stat, list */

int porter_file_delete(const char *root, const char *path, int directory, uint64_t call_id,
		       int timeout_ms)
{
	if (!path)
		return pconn_set_error(PORTER_E_INVAL, "path is NULL");
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileDelete fd = PORTER__V1__FILE_DELETE__INIT;
	fd.root = pfile_root(root);
	fd.path = (char *)path;
	fd.directory = directory != 0;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_DELETE;
	req.file_delete = &fd;
	return pfile_call(&req, call_id, timeout_ms, PCONN_ONCE,
			  PORTER__V1__RESPONSE__BODY_FILE_DELETE, "file delete", NULL);
}

/* FileStat, following a final symlink or not. */
static int file_stat(const char *root, const char *path, int no_follow, uint64_t call_id,
		     int timeout_ms, porter_file_info *out)
{
	int rc = pout_check(out, POUT_V1(porter_file_info, nlink), "porter_file_info");
	if (rc < 0)
		return rc;
	pout_put(out, NULL, sizeof(*out));
	if (!path)
		return pconn_set_error(PORTER_E_INVAL, "path is NULL");
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileStat fs = PORTER__V1__FILE_STAT__INIT;
	Porter__V1__Response *resp = NULL;
	fs.root = pfile_root(root);
	fs.path = (char *)path;
	fs.no_follow = no_follow != 0;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_STAT;
	req.file_stat = &fs;
	rc = pfile_call(&req, call_id, timeout_ms, PCONN_IDEMPOTENT,
			PORTER__V1__RESPONSE__BODY_FILE_STAT, "file stat", &resp);
	if (rc < 0)
		return rc;
	Porter__V1__FileStatReply *s = resp->file_stat;
	porter_file_info info = {
		.struct_size = sizeof(info),
		.type = s->type,
		.size = s->size,
		.mode = s->mode,
		.mtime_ns = s->mtime_ns,
		.uid = s->uid,
		.gid = s->gid,
		.nlink = s->nlink,
	};
	pout_put(out, &info, sizeof(info));
	porter__v1__response__free_unpacked(resp, NULL);
	return 0;
}

int porter_file_stat(const char *root, const char *path, uint64_t call_id, int timeout_ms,
		     porter_file_info *out)
{
	return file_stat(root, path, 0, call_id, timeout_ms, out);
}

int porter_file_lstat(const char *root, const char *path, uint64_t call_id, int timeout_ms,
		      porter_file_info *out)
{
	return file_stat(root, path, 1, call_id, timeout_ms, out);
}

/* Checks a mkdir's arguments and fills `req` and its message `m` (which
 * borrow the strings). Returns 0 or PORTER_E_INVAL (the error set). */
static int mkdir_req(Porter__V1__Request *req, Porter__V1__FileMkdir *m, const char *root,
		     const char *path, unsigned mode, unsigned flags)
{
	if (!path)
		return pconn_set_error(PORTER_E_INVAL, "path is NULL");
	if (flags & ~PORTER_FILE_PARENTS)
		return pconn_set_error(PORTER_E_INVAL, "unknown mkdir flags");
	m->root = pfile_root(root);
	m->path = (char *)path;
	m->mode = mode;
	m->parents = (flags & PORTER_FILE_PARENTS) != 0;
	req->body_case = PORTER__V1__REQUEST__BODY_FILE_MKDIR;
	req->file_mkdir = m;
	return 0;
}

int porter_file_mkdir(const char *root, const char *path, unsigned mode, unsigned flags,
		      uint64_t call_id, int timeout_ms)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileMkdir m = PORTER__V1__FILE_MKDIR__INIT;
	if (mkdir_req(&req, &m, root, path, mode, flags) < 0)
		return PORTER_E_INVAL;
	/* With parents, doing it twice is the same as once. */
	return pfile_call(&req, call_id, timeout_ms, m.parents ? PCONN_IDEMPOTENT : PCONN_ONCE,
			  PORTER__V1__RESPONSE__BODY_FILE_MKDIR, "file mkdir", NULL);
}

/* Checks a rename's or copy's arguments and fills `req` and the message
 * it points to (`rn` or `cp`, borrowing the strings). Returns 0 or
 * PORTER_E_INVAL (the error set). */
static int names_req(int copy, Porter__V1__Request *req, Porter__V1__FileRename *rn,
		     Porter__V1__FileCopy *cp, const char *root, const char *from, const char *to,
		     unsigned flags)
{
	if (!from || !to)
		return pconn_set_error(PORTER_E_INVAL, "from or to is NULL");
	if (flags & ~PORTER_FILE_NO_REPLACE)
		return pconn_set_error(PORTER_E_INVAL, "unknown %s flags",
				       copy ? "copy" : "rename");
	int no_replace = (flags & PORTER_FILE_NO_REPLACE) != 0;
	if (copy) {
		cp->root = pfile_root(root);
		cp->from = (char *)from;
		cp->to = (char *)to;
		cp->no_replace = no_replace;
		req->body_case = PORTER__V1__REQUEST__BODY_FILE_COPY;
		req->file_copy = cp;
	} else {
		rn->root = pfile_root(root);
		rn->from = (char *)from;
		rn->to = (char *)to;
		rn->no_replace = no_replace;
		req->body_case = PORTER__V1__REQUEST__BODY_FILE_RENAME;
		req->file_rename = rn;
	}
	return 0;
}

/* Rename and copy: two names in one root and the no-replace flag. Stores
 * a copy's size in `*size` (NULL accepted; 0 on failure). */
static int two_names(int copy, const char *root, const char *from, const char *to, unsigned flags,
		     uint64_t call_id, int timeout_ms, uint64_t *size)
{
	if (size)
		*size = 0;
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileRename rn = PORTER__V1__FILE_RENAME__INIT;
	Porter__V1__FileCopy cp = PORTER__V1__FILE_COPY__INIT;
	Porter__V1__Response *resp = NULL;
	if (names_req(copy, &req, &rn, &cp, root, from, to, flags) < 0)
		return PORTER_E_INVAL;
	int no_replace = (flags & PORTER_FILE_NO_REPLACE) != 0;
	/* A copy replaces `to` whole each time: repeating it is harmless,
	 * except with no_replace, whose second try would fail. A rename is
	 * never repeated. */
	int rc = pfile_call(&req, call_id, timeout_ms,
			    copy && !no_replace ? PCONN_IDEMPOTENT : PCONN_ONCE,
			    copy ? PORTER__V1__RESPONSE__BODY_FILE_COPY
				 : PORTER__V1__RESPONSE__BODY_FILE_RENAME,
			    copy ? "file copy" : "file rename", &resp);
	if (rc < 0)
		return rc;
	if (copy && size)
		*size = resp->file_copy->size;
	porter__v1__response__free_unpacked(resp, NULL);
	return 0;
}

int porter_file_rename(const char *root, const char *from, const char *to, unsigned flags,
		       uint64_t call_id, int timeout_ms)
{
	return two_names(0, root, from, to, flags, call_id, timeout_ms, NULL);
}

int porter_file_copy(const char *root, const char *from, const char *to, unsigned flags,
		     uint64_t call_id, int timeout_ms, uint64_t *size)
{
	return two_names(1, root, from, to, flags, call_id, timeout_ms, size);
}

struct porter_file_list {
	Porter__V1__Response *resp; /* owns the entries */
};

int porter_file_list_dir(const char *root, const char *path, uint64_t call_id, int timeout_ms,
			 porter_file_list **out)
{
	if (!out)
		return pconn_set_error(PORTER_E_INVAL, "out is NULL");
	*out = NULL;
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileList fl = PORTER__V1__FILE_LIST__INIT;
	Porter__V1__Response *resp = NULL;
	fl.root = pfile_root(root);
	fl.path = (char *)(path ? path : "");
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_LIST;
	req.file_list = &fl;
	int rc = pfile_call(&req, call_id, timeout_ms, PCONN_IDEMPOTENT,
			    PORTER__V1__RESPONSE__BODY_FILE_LIST, "file list", &resp);
	if (rc < 0)
		return rc;
	porter_file_list *l = malloc(sizeof(*l));
	if (!l) {
		porter__v1__response__free_unpacked(resp, NULL);
		return pconn_set_error(PORTER_E_NOMEM, "out of memory");
	}
	l->resp = resp;
	*out = l;
	return 0;
}

size_t porter_file_list_count(const porter_file_list *l)
{
	return l ? l->resp->file_list->n_entries : 0;
}

const char *porter_file_list_name(const porter_file_list *l, size_t i)
{
	if (!l || i >= l->resp->file_list->n_entries)
		return NULL;
	return l->resp->file_list->entries[i]->name;
}

int porter_file_list_entry(const porter_file_list *l, size_t i, int *type, uint64_t *size,
			   int64_t *mtime_ns)
{
	/* Rule 6: the outs are cleared before anything can fail. */
	if (type)
		*type = 0;
	if (size)
		*size = 0;
	if (mtime_ns)
		*mtime_ns = 0;
	if (!l || i >= l->resp->file_list->n_entries)
		return PORTER_E_INVAL;
	Porter__V1__FileEntry *e = l->resp->file_list->entries[i];
	if (type)
		*type = e->type;
	if (size)
		*size = e->size;
	if (mtime_ns)
		*mtime_ns = e->mtime_ns;
	return 0;
}

void porter_file_list_free(porter_file_list *l)
{
	if (!l)
		return;
	porter__v1__response__free_unpacked(l->resp, NULL);
	free(l);
}

int porter_batch_add_file_read(porter_batch *b, const char *root, const char *path, uint64_t offset,
			       uint64_t length, int timeout_ms)
{
	if (!path || timeout_ms < 0)
		return pconn_set_error(PORTER_E_INVAL, "path is NULL or timeout negative");
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileRead fr = PORTER__V1__FILE_READ__INIT;
	fr.root = pfile_root(root);
	fr.path = (char *)path;
	fr.offset = offset;
	fr.length = length;
	req.body_case = PORTER__V1__REQUEST__BODY_FILE_READ;
	req.file_read = &fr;
	req.timeout_ms = (uint32_t)timeout_ms;
	return pbatch_add(b, &req);
}

int porter_batch_add_file_mkdir(porter_batch *b, const char *root, const char *path, unsigned mode,
				unsigned flags, int timeout_ms)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileMkdir m = PORTER__V1__FILE_MKDIR__INIT;
	if (timeout_ms < 0)
		return pconn_set_error(PORTER_E_INVAL, "timeout negative");
	if (mkdir_req(&req, &m, root, path, mode, flags) < 0)
		return PORTER_E_INVAL;
	req.timeout_ms = (uint32_t)timeout_ms;
	return pbatch_add(b, &req);
}

/* A rename or copy member. */
static int batch_names(porter_batch *b, int copy, const char *root, const char *from,
		       const char *to, unsigned flags, int timeout_ms)
{
	Porter__V1__Request req = PORTER__V1__REQUEST__INIT;
	Porter__V1__FileRename rn = PORTER__V1__FILE_RENAME__INIT;
	Porter__V1__FileCopy cp = PORTER__V1__FILE_COPY__INIT;
	if (timeout_ms < 0)
		return pconn_set_error(PORTER_E_INVAL, "timeout negative");
	if (names_req(copy, &req, &rn, &cp, root, from, to, flags) < 0)
		return PORTER_E_INVAL;
	req.timeout_ms = (uint32_t)timeout_ms;
	return pbatch_add(b, &req);
}

int porter_batch_add_file_rename(porter_batch *b, const char *root, const char *from,
				 const char *to, unsigned flags, int timeout_ms)
{
	return batch_names(b, 0, root, from, to, flags, timeout_ms);
}

int porter_batch_add_file_copy(porter_batch *b, const char *root, const char *from, const char *to,
			       unsigned flags, int timeout_ms)
{
	return batch_names(b, 1, root, from, to, flags, timeout_ms);
}

int porter_batch_result_file_read(const porter_batch_result *r, size_t i, const void **data,
				  size_t *len, uint64_t *file_size)
{
	if (data)
		*data = NULL;
	if (len)
		*len = 0;
	if (file_size)
		*file_size = 0;
	const Porter__V1__Response *m = pbatch_member(r, i);
	if (!m || !data || !len || m->status != 0 ||
	    m->body_case != PORTER__V1__RESPONSE__BODY_FILE_READ)
		return PORTER_E_INVAL;
	*data = m->file_read->data.data;
	*len = m->file_read->data.len;
	if (file_size)
		*file_size = m->file_read->file_size;
	return 0;
}
