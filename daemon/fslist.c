/* fslist - directory listings on the thread pool; see fslist.h. */
#include "fslist.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fsconfine.h"
#include "listwire.h"
#include "porter_errors.h"

/* The largest reply frame (max-frame): a listing that cannot fit one. */
static uint32_t list_max = 16u << 20;
/* A listing checks its deadline and cancellation every this many entries. */
#define LIST_CHECK_EVERY 256
/* The first mapping of packed entries; it doubles as it fills. */
#define LIST_FIRST_MAP (64u * 1024u)
/* Room before a reply's entries for the size of their mapping. */
#define MAP_HEAD 16u

void fslist_limit(uint32_t max_frame)
{
	list_max = max_frame ? max_frame : 16u << 20;
}

/*
 * The entries as read are packed into a mapping of their own, grown by
 * mremap (its pages are moved, never copied, and all of them go back to
 * the kernel at munmap, whichever thread frees them: malloc would keep a
 * burst's memory in the pool thread's arena).
 */
typedef struct packed {
	uint8_t *p;
	size_t len, cap;
	uint32_t *at; /* where each entry starts, in readdir's order */
	size_t n, at_cap;
} packed;

static int room(packed *pk, size_t more)
{
	if (pk->len + more > pk->cap) {
		size_t nc = pk->cap ? pk->cap : LIST_FIRST_MAP;
		while (nc < pk->len + more)
			nc *= 2;
		void *np = pk->p ? mremap(pk->p, pk->cap, nc, MREMAP_MAYMOVE)
				 : mmap(NULL, nc, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (np == MAP_FAILED)
			return ENOMEM;
		pk->p = np;
		pk->cap = nc;
	}
	if (pk->n == pk->at_cap) {
		size_t nc = pk->at_cap ? pk->at_cap * 2 : 256;
		uint32_t *na = realloc(pk->at, nc * sizeof(*na));
		if (!na)
			return ENOMEM;
		pk->at = na;
		pk->at_cap = nc;
	}
	return 0;
}

static void packed_free(packed *pk)
{
	if (pk->p)
		munmap(pk->p, pk->cap);
	free(pk->at);
}

static int entry_cmp(const void *a, const void *b, void *arg)
{
	const uint8_t *base = arg;
	size_t la, lb, ea, eb;
	const uint8_t *na = listwire_entry_name(base + *(const uint32_t *)a, &la, &ea);
	const uint8_t *nb = listwire_entry_name(base + *(const uint32_t *)b, &lb, &eb);
	/* Names hold no NUL: strcmp's order. */
	int c = memcmp(na, nb, la < lb ? la : lb);
	return c ? c : (la > lb) - (la < lb);
}

/* The reply's entries, sorted by name, into a mapping sized to them (its
 * size kept in front of them, for fslist_free). NULL when out of memory. */
static uint8_t *sorted(packed *pk, size_t *len)
{
	if (pk->n > 1)
		qsort_r(pk->at, pk->n, sizeof(*pk->at), entry_cmp, pk->p);
	size_t size = MAP_HEAD + pk->len;
	uint8_t *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	memcpy(m, &size, sizeof(size));
	uint8_t *out = m + MAP_HEAD;
	for (size_t i = 0; i < pk->n; i++) {
		size_t nl, el;
		listwire_entry_name(pk->p + pk->at[i], &nl, &el);
		memcpy(out, pk->p + pk->at[i], el);
		out += el;
	}
	*len = pk->len;
	return m + MAP_HEAD;
}

void fslist_free(void *entries)
{
	if (!entries)
		return;
	uint8_t *m = (uint8_t *)entries - MAP_HEAD;
	size_t size;
	memcpy(&size, m, sizeof(size));
	munmap(m, size);
}

void fslist_run(fs_job *j)
{
	int fd = -1;
	int e = fsconfine_open(j->rootfd, j->path, O_RDONLY | O_DIRECTORY, 0,
			       fswork_confine_opts(j), &fd);
	if (e == ENOTDIR) {
		/* The path itself, not a directory on its way, when it opens
		 * as what it is: say so, not "a component of the path". */
		int pfd = -1;
		if (fsconfine_open(j->rootfd, j->path, O_PATH, 0, fswork_confine_opts(j), &pfd) ==
		    0) {
			close(pfd);
			fswork_fail_code(j, PORTER_E_FILE_NOTDIR, "list", "not a directory");
			return;
		}
	}
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
	packed pk = {0};
	unsigned long seen = 0;
	struct dirent *de;
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
		size_t nl = strlen(de->d_name);
		int type = fswork_file_type(sb.st_mode);
		int64_t mtime = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
		size_t es = listwire_entry_size(nl, type, (uint64_t)sb.st_size, mtime);
		if (pk.len + es + LISTWIRE_OVERHEAD > list_max) {
			char why[160];
			snprintf(
				why, sizeof(why),
				"the listing does not fit in one reply (max-frame %u bytes) at %zu "
				"entries",
				(unsigned)list_max, pk.n + 1);
			fswork_fail_code(j, PORTER_E_TOO_LARGE, "list", why);
			break;
		}
		if (room(&pk, es) != 0) {
			fswork_fail(j, ENOMEM, "list", NULL, 0);
			break;
		}
		pk.at[pk.n++] = (uint32_t)pk.len;
		listwire_put_entry(pk.p + pk.len, de->d_name, nl, type, (uint64_t)sb.st_size,
				   mtime);
		pk.len += es;
	}
	closedir(d);
	if (!j->code) {
		j->list = sorted(&pk, &j->list_len);
		if (!j->list) {
			fswork_fail(j, ENOMEM, "list", NULL, 0);
		} else if (fswork_hold(j, j->list_len, "list") != 0) {
			/* Finished, it waits for the loop as a read's chunk
			 * does (fs_job.held). */
			fslist_free(j->list);
			j->list = NULL;
		}
	}
	packed_free(&pk);
}
