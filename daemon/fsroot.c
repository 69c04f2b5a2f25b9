/* fsroot - file roots, their owners and the mode ceiling; see fsroot.h. */
#include "fsroot.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dirs.h"
#include "fsconfine.h"
#include "log.h"
#include "porter_errors.h"

#define DEFAULT_ROOT_NAME "files"
#define USER_DIR_MODE 0700
/* Defaults of file-max-mode and file-max-dir-mode when unset. */
#define FILE_MAX_DEFAULT 0660
#define DIR_MAX_DEFAULT 0770

static struct {
	fsroot *roots;
	size_t n;
	mode_t file_max; /* ceiling of created files' modes */
	mode_t dir_max;  /* ceiling of created directories' modes */
} G = {.file_max = FILE_MAX_DEFAULT, .dir_max = DIR_MAX_DEFAULT};

/* ---------------------------------------------------------- the checks */

int fsroot_grants(const fsroot *rt, const clients_peer *peer)
{
	if (peer->uid == clients_self())
		return 1; /* local: porterd acting for its own user */
	if (!rt->has_owners)
		return rt->per_user;
	for (size_t i = 0; i < rt->n_uids; i++)
		if (rt->uids[i] == peer->uid)
			return 1;
	for (size_t i = 0; i < rt->n_gids; i++) {
		if (rt->gids[i] == peer->gid)
			return 1;
		for (unsigned k = 0; k < peer->n_groups && k < CLIENTS_MAX_GROUPS; k++)
			if (rt->gids[i] == peer->groups[k])
				return 1;
	}
	return 0;
}

const fsroot *fsroot_find(const char *name, const clients_peer *peer)
{
	for (size_t i = 0; i < G.n; i++) {
		if (name[0] ? strcmp(G.roots[i].name, name) == 0 : fsroot_grants(&G.roots[i], peer))
			return &G.roots[i];
	}
	return NULL;
}

int fsroot_dir(const fsroot *rt, uid_t uid, int *fd)
{
	if (rt->fd < 0)
		return FSCONFINE_EMOUNT; /* refused at start (check_root_fs) */
	if (!rt->per_user) {
		*fd = rt->fd;
		return 0;
	}
	char name[16];
	snprintf(name, sizeof(name), "%u", (unsigned)uid);
	/* O_NOFOLLOW | O_DIRECTORY: a symlink or a file planted under the
	 * user's name fails here instead of being followed. */
	const int of = O_PATH | O_DIRECTORY | O_NOFOLLOW;
	/* Confined like any path of the root: a mount point at the uid's
	 * name is not entered unless the root allows it. */
	const unsigned opts = rt->cross_mounts ? FSCONFINE_CROSS_MOUNTS : 0;
	int d = -1;
	int e = fsconfine_open(rt->fd, name, of, 0, opts, &d);
	if (e == ENOENT) {
		if (mkdirat(rt->fd, name, USER_DIR_MODE) < 0 && errno != EEXIST)
			return errno;
		e = fsconfine_open(rt->fd, name, of, 0, opts, &d);
	}
	if (e)
		return e == ENOTDIR ? ELOOP : e;
	struct stat sb;
	if (fstat(d, &sb) < 0) {
		e = errno;
		close(d);
		return e;
	}
	if (sb.st_uid != clients_self()) {
		/* Someone else made it: its owner could swap what is inside. */
		/* The configured path ends in "%u" (fsroot_init checks it):
		 * name the directory itself. */
		log_warn("file root '%s': %.*s%s is owned by uid %u, not porterd: refused",
			 rt->name, (int)(strlen(rt->path) - 2), rt->path, name,
			 (unsigned)sb.st_uid);
		close(d);
		return EPERM;
	}
	*fd = d;
	return 0;
}

void fsroot_put_dir(const fsroot *rt, int fd)
{
	if (fd >= 0 && fd != rt->fd)
		close(fd);
}

mode_t fsroot_file_mode(unsigned asked)
{
	return (asked ? asked : 0600) & G.file_max & 0777;
}

mode_t fsroot_dir_mode(unsigned asked)
{
	return (asked ? asked : 0700) & G.dir_max & 0777;
}

/* ------------------------------------------------------------ start-up */

int fsroot_default_path(char *buf, size_t cap)
{
	const char *xdg = getenv("XDG_DATA_HOME");
	const char *home = getenv("HOME");
	int n;
	if (xdg && xdg[0] == '/')
		n = snprintf(buf, cap, "%s/porter/files", xdg);
	else if (home && home[0] == '/')
		n = snprintf(buf, cap, "%s/.local/share/porter/files", home);
	else
		return PORTER_E_INVAL;
	return n < 0 || (size_t)n >= cap ? PORTER_E_INVAL : 0;
}

/* Parses an octal mode setting no wider than 0777 into `out`. */
static int parse_mode(const char *key, const char *v, mode_t def, mode_t *out)
{
	if (!v || !v[0]) {
		*out = def;
		return 0;
	}
	char *end;
	errno = 0;
	unsigned long m = strtoul(v, &end, 8);
	if (errno || *end || v[0] == '-' || m > 0777) {
		log_error("%s: expected an octal mode up to 0777 (setuid, setgid and sticky are "
			  "never given), got '%s'",
			  key, v);
		return PORTER_E_INVAL;
	}
	*out = (mode_t)m;
	return 0;
}

static int push_id(unsigned **arr, size_t *n, unsigned id)
{
	for (size_t i = 0; i < *n; i++)
		if ((*arr)[i] == id)
			return 0;
	unsigned *na = realloc(*arr, (*n + 1) * sizeof(*na));
	if (!na)
		return PORTER_E_NOMEM;
	na[(*n)++] = id;
	*arr = na;
	return 0;
}

/* A uid or gid by number or by name (looked up now, on the main thread). */
static int parse_id(const char *tok, int group, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(tok, &end, 10);
	if (isdigit((unsigned char)tok[0]) && !errno && !*end) {
		if (v >= (unsigned long)(uid_t)-1)
			return PORTER_E_INVAL;
		*out = (unsigned)v;
		return 0;
	}
	if (group) {
		struct group *gr = getgrnam(tok);
		if (!gr)
			return PORTER_E_INVAL;
		*out = (unsigned)gr->gr_gid;
	} else {
		struct passwd *pw = getpwnam(tok);
		if (!pw)
			return PORTER_E_INVAL;
		*out = (unsigned)pw->pw_uid;
	}
	return 0;
}

/* Parses "uids=..." or "gids=..." (the part after '='), space-separated. */
static int parse_owner_list(fsroot *rt, const char *item, const char *list, int group)
{
	char *copy = strdup(list);
	if (!copy)
		return PORTER_E_NOMEM;
	int rc = 0, any = 0;
	char *save = NULL;
	for (char *tok = strtok_r(copy, " \t", &save); tok && rc == 0;
	     tok = strtok_r(NULL, " \t", &save)) {
		unsigned id;
		if (parse_id(tok, group, &id) < 0) {
			log_error("file-roots: '%s': unknown %s '%s'", item,
				  group ? "group" : "user", tok);
			rc = PORTER_E_INVAL;
			break;
		}
		any = 1;
		if (group) {
			rc = push_id(&rt->gids, &rt->n_gids, id);
		} else {
			rc = push_id(&rt->uids, &rt->n_uids, id);
		}
	}
	if (rc == 0 && !any) {
		log_error("file-roots: '%s': %s= lists nobody", item, group ? "gids" : "uids");
		rc = PORTER_E_INVAL;
	}
	free(copy);
	rt->has_owners = 1;
	return rc;
}

static void root_free(fsroot *rt)
{
	if (rt->fd >= 0)
		close(rt->fd);
	free(rt->name);
	free(rt->path);
	free(rt->uids);
	free(rt->gids);
}

/*
 * A per-user root's parent holds every uid's directory under its number,
 * looked up by name at each request: whoever may add, remove or rename
 * names there, besides root and porterd, could rename bob's directory to
 * alice's number (porterd owns both, so nothing else tells them apart), or
 * make a uid's name first. So it must be root's or porterd's and writable
 * by its owner alone (sticky is not enough: a name made first still locks
 * its uid out). 0, or PORTER_E_INVAL after logging why.
 */
static int check_users_dir(const fsroot *rt, const char *dir)
{
	struct stat sb;
	if (fstat(rt->fd, &sb) < 0) {
		log_error("file root '%s': cannot check %s: %s", rt->name, dir, strerror(errno));
		return PORTER_E_INVAL;
	}
	if ((sb.st_uid == 0 || sb.st_uid == clients_self()) && !(sb.st_mode & (S_IWGRP | S_IWOTH)))
		return 0;
	log_error("file root '%s': %s (uid %u, mode %04o) holds every uid's directory and others "
		  "may change it: whoever may write it could rename one uid's directory to "
		  "another's name; make it root's or porterd's, writable by its owner alone",
		  rt->name, dir, (unsigned)sb.st_uid, (unsigned)(sb.st_mode & 07777));
	return PORTER_E_INVAL;
}

/* Whether the file system type `type` (mountinfo's) is FUSE's. */
static int is_fuse(const char *type)
{
	return !strcmp(type, "fuse") || !strcmp(type, "fuseblk") || !strncmp(type, "fuse.", 5);
}

/*
 * A root on FUSE is answered by a FUSE daemon, and any user may mount one
 * (fusermount is setuid) over a directory she owns: a root granted at
 * /home/alice/docs that alice covered before porterd started (roots are
 * opened by path at start only; a mount made later is not seen through
 * the open root) would make every file request of porterd, on its shared
 * pool threads or its worker loops, wait on her daemon. So, unless the
 * root has the option `mounts`, the mount its directory is on is looked up
 * in /proc/self/mountinfo (nothing is asked of the file system itself)
 * and, when it is FUSE, the root is closed: its requests are refused
 * (fsroot_dir), the rest of porterd starts (a user's mount must not keep
 * porterd from serving everyone else). Without /proc nothing is known.
 */
static void check_root_fs(fsroot *rt, const char *dir)
{
	long id = rt->cross_mounts ? -1 : fsconfine_mount_id(rt->fd);
	FILE *f = id < 0 ? NULL : fopen("/proc/self/mountinfo", "re");
	if (!f)
		return;
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		long mid = -1;
		char point[1024] = "", type[64] = "";
		const char *sep = strstr(line, " - ");
		if (sscanf(line, "%ld %*d %*s %*s %1023s", &mid, point) != 2 || mid != id || !sep ||
		    sscanf(sep + 3, "%63s", type) != 1)
			continue;
		if (is_fuse(type)) {
			log_error(
				"file root '%s': %s is on a FUSE file system (%s, mounted at %s), "
				"which its user's daemon answers: the root is refused (its requests "
				"fail with PORTER_E_FILE_ESCAPE); add the option 'mounts' to the "
				"root if that file system is trusted",
				rt->name, dir, type, point);
			close(rt->fd);
			rt->fd = -1;
		}
		break;
	}
	free(line);
	fclose(f);
}

/* Opens the root's directory (a per-user root's parent, created 0700 when
 * missing, as the default root is). */
static int open_root(fsroot *rt)
{
	char dir[4096];
	size_t len = strlen(rt->path);
	if (rt->path[0] != '/' || len >= sizeof(dir)) {
		log_error("file root '%s': path '%s' is not absolute", rt->name, rt->path);
		return PORTER_E_INVAL;
	}
	memcpy(dir, rt->path, len + 1);
	char *pct = strstr(dir, "%u");
	if (pct) {
		if (strcmp(pct, "%u") != 0 || pct[-1] != '/' || strstr(pct + 2, "%u")) {
			log_error("file root '%s': '%%u' must be the last component of '%s'",
				  rt->name, rt->path);
			return PORTER_E_INVAL;
		}
		rt->per_user = 1;
		pct[pct - 1 == dir ? 0 : -1] = '\0';
		if (!dir[0])
			strcpy(dir, "/");
		int e = dirs_make(dir);
		if (e < 0) {
			log_error("file root '%s': cannot create %s: %s", rt->name, dir,
				  strerror(-e));
			return PORTER_E_INVAL;
		}
	}
	rt->fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rt->fd < 0) {
		log_error("file root '%s': cannot open %s: %s", rt->name, dir, strerror(errno));
		return PORTER_E_INVAL;
	}
	check_root_fs(rt, dir);
	return rt->per_user && rt->fd >= 0 ? check_users_dir(rt, dir) : 0;
}

/* Parses one NAME=PATH[:OPTION...] item into `rt`. */
static int parse_root(fsroot *rt, const char *item)
{
	const char *eq = strchr(item, '=');
	/* Spaces around '=' are allowed: "docs = /srv/docs". */
	size_t nlen = eq ? (size_t)(eq - item) : 0;
	while (nlen && isspace((unsigned char)item[nlen - 1]))
		nlen--;
	const char *path = eq ? eq + 1 : "";
	while (isspace((unsigned char)*path))
		path++;
	const char *colon = strchr(path, ':');
	size_t plen = colon ? (size_t)(colon - path) : strlen(path);
	while (plen && isspace((unsigned char)path[plen - 1]))
		plen--;
	if (!eq || nlen == 0 || plen == 0) {
		log_error("file-roots: expected NAME=PATH[:uids=...][:gids=...][:mounts], got '%s'",
			  item);
		return PORTER_E_INVAL;
	}
	rt->name = strndup(item, nlen);
	rt->path = strndup(path, plen);
	if (!rt->name || !rt->path)
		return PORTER_E_NOMEM;
	int rc = 0;
	while (rc == 0 && colon) {
		const char *opt = colon + 1;
		colon = strchr(opt, ':');
		size_t olen = colon ? (size_t)(colon - opt) : strlen(opt);
		char *o = strndup(opt, olen);
		if (!o)
			return PORTER_E_NOMEM;
		char *v = strchr(o, '=');
		char *k = o;
		while (isspace((unsigned char)*k))
			k++;
		if (v)
			*v++ = '\0';
		for (char *e = k + strlen(k); e > k && isspace((unsigned char)e[-1]);)
			*--e = '\0';
		if (v && !strcmp(k, "uids")) {
			rc = parse_owner_list(rt, item, v, 0);
		} else if (v && !strcmp(k, "gids")) {
			rc = parse_owner_list(rt, item, v, 1);
		} else if (!v && !strcmp(k, "mounts")) {
			rt->cross_mounts = 1;
		} else {
			log_error("file-roots: '%s': unknown option '%s' (expected uids=, gids= or "
				  "mounts; paths may not contain ':')",
				  item, k);
			rc = PORTER_E_INVAL;
		}
		free(o);
	}
	return rc ? rc : open_root(rt);
}

static void log_root(const fsroot *rt)
{
	char who[256] = "";
	size_t off = 0;
	for (size_t i = 0; i < rt->n_uids && off < sizeof(who); i++)
		off += (size_t)snprintf(who + off, sizeof(who) - off, " uid %u",
					(unsigned)rt->uids[i]);
	for (size_t i = 0; i < rt->n_gids && off < sizeof(who); i++)
		off += (size_t)snprintf(who + off, sizeof(who) - off, " gid %u",
					(unsigned)rt->gids[i]);
	log_info("file root '%s' is %s%s%s; %s%s", rt->name, rt->path,
		 rt->per_user ? " (a private directory per uid)" : "",
		 rt->cross_mounts ? " (spanning mount points: mounts)" : "",
		 rt->has_owners ? "granted to porterd's uid and"
		 : rt->per_user ? "granted to every client"
				: "granted to porterd's uid only",
		 who);
}

static int add_root(const char *item, const char *default_path)
{
	fsroot *nr = realloc(G.roots, (G.n + 1) * sizeof(*nr));
	if (!nr)
		return PORTER_E_NOMEM;
	G.roots = nr;
	fsroot *rt = &G.roots[G.n];
	memset(rt, 0, sizeof(*rt));
	rt->fd = -1;
	int rc;
	if (default_path) {
		rt->name = strdup(DEFAULT_ROOT_NAME);
		rt->path = strdup(default_path);
		rc = rt->name && rt->path ? open_root(rt) : PORTER_E_NOMEM;
	} else {
		rc = parse_root(rt, item);
	}
	for (size_t i = 0; rc == 0 && i < G.n; i++)
		if (strcmp(G.roots[i].name, rt->name) == 0) {
			log_error("file root '%s' is configured twice", rt->name);
			rc = PORTER_E_INVAL;
		}
	if (rc < 0) {
		root_free(rt);
		return rc;
	}
	log_root(rt);
	G.n++;
	return 0;
}

int fsroot_init(const config *cfg)
{
	if (parse_mode("file-max-mode", cfg->file_max_mode, FILE_MAX_DEFAULT, &G.file_max) < 0 ||
	    parse_mode("file-max-dir-mode", cfg->file_max_dir_mode, DIR_MAX_DEFAULT, &G.dir_max) <
		    0)
		return PORTER_E_INVAL;
	if (cfg->file_roots.n == 0) {
		/* The default root is a convenience: when it cannot be made
		 * the daemon still serves everything else, and file requests
		 * fail with PORTER_E_FILE_ROOT. */
		char path[4096];
		int e;
		if (fsroot_default_path(path, sizeof(path)) < 0)
			log_warn(
				"no file root: none configured and neither XDG_DATA_HOME nor HOME is set");
		else if ((e = dirs_make(path)) < 0)
			log_warn("no file root: cannot create the default %s: %s", path,
				 strerror(-e));
		else if (add_root(NULL, path) < 0)
			log_warn("no file root: the default %s cannot be used", path);
	}
	for (size_t i = 0; i < cfg->file_roots.n; i++) {
		int rc = add_root(cfg->file_roots.items[i], NULL);
		if (rc < 0) {
			fsroot_shutdown();
			return rc == PORTER_E_NOMEM ? rc : PORTER_E_INVAL;
		}
	}
	log_info("created files are at most mode %04o, directories %04o (file-max-mode, "
		 "file-max-dir-mode)",
		 (unsigned)G.file_max, (unsigned)G.dir_max);
	return 0;
}

void fsroot_shutdown(void)
{
	for (size_t i = 0; i < G.n; i++)
		root_free(&G.roots[i]);
	free(G.roots);
	G.roots = NULL;
	G.n = 0;
}
