/* fslist - directory listings on the thread pool; see fslist.h. */
#include "fslist.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsconfine.h"
#include "porter_errors.h"

/* The largest reply frame (max-frame): a listing that cannot fit one. */
static uint32_t list_max = 16u << 20;
/* A listing checks its deadline and cancellation every this many entries. */
#define LIST_CHECK_EVERY 256

void fslist_limit(uint32_t max_frame)
{
	list_max = max_frame ? max_frame : 16u << 20;
}

static size_t varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* The bytes entry `en` takes packed in a FileListReply (protobuf: the
 * repeated field's tag and length, then each field that is not zero). */
static size_t entry_packed(const fs_entry *en, size_t name_len)
{
	size_t in = 1 + varint_len(name_len) + name_len;
	if (en->type)
		in += 1 + varint_len((uint64_t)en->type);
	if (en->size)
		in += 1 + varint_len(en->size);
	if (en->mtime_ns)
		in += 1 + varint_len((uint64_t)en->mtime_ns);
	return 1 + varint_len(in) + in;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const fs_entry *)a)->name, ((const fs_entry *)b)->name);
}

void fslist_run(fs_job *j)
{
	int fd = -1;
	int e = fsconfine_open(j->rootfd, j->path, O_RDONLY | O_DIRECTORY, 0,
			       fswork_confine_opts(j), &fd);
	if (e) {
		fswork_fail(j, e, "list", NULL, 0);
		return;
	}
	DIR *d = fdopendir(fd);
	if (!d) {
		fswork_fail(j, errno, "list", NULL, 0);
		close(fd);
		return;
	}
	size_t cap = 0, packed = 0;
	unsigned long seen = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		/* A directory of millions of names (one its user filled) held
		 * a pool thread for every one and grew porterd by ~300 bytes
		 * each, past the deadline, for a reply too large to send. */
		if (++seen % LIST_CHECK_EVERY == 0 && fswork_should_stop(j))
			break;
		struct stat sb;
		int le = fsconfine_lstat(dirfd(d), de->d_name, fswork_confine_opts(j), &sb);
		if (le == FSCONFINE_EMOUNT)
			/* A mount point porterd does not enter: listed as
			 * "other", with no size or time of its own. */
			memset(&sb, 0, sizeof(sb));
		else if (le)
			continue; /* removed meanwhile */
		if (j->n_entries == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			fs_entry *ne = realloc(j->entries, ncap * sizeof(*ne));
			if (!ne) {
				fswork_fail(j, ENOMEM, "list", NULL, 0);
				break;
			}
			j->entries = ne;
			cap = ncap;
		}
		fs_entry *en = &j->entries[j->n_entries];
		en->name = strdup(de->d_name);
		if (!en->name) {
			fswork_fail(j, ENOMEM, "list", NULL, 0);
			break;
		}
		en->type = fswork_file_type(sb.st_mode);
		en->size = (uint64_t)sb.st_size;
		en->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
		j->n_entries++;
		packed += entry_packed(en, strlen(en->name));
		if (packed > list_max) {
			char why[160];
			snprintf(
				why, sizeof(why),
				"the listing does not fit in one reply (max-frame %u bytes) at %zu "
				"entries",
				(unsigned)list_max, j->n_entries);
			fswork_fail_code(j, PORTER_E_TOO_LARGE, "list", why);
			break;
		}
	}
	closedir(d);
	/* An empty directory has no array at all: qsort(NULL, 0) is
	 * undefined behaviour (UBSan stops porterd on it). */
	if (!j->code && j->n_entries > 1)
		qsort(j->entries, j->n_entries, sizeof(*j->entries), entry_cmp);
}
