/*
 * fsroot - the file roots: which directories clients reach, who may reach
 * each one, where a per-user root puts each uid, and the most permissive
 * modes a client may give what it creates.
 *
 * Settings (file-roots): a comma-separated list of NAME=PATH[:OPTION...],
 * where an OPTION is
 *   uids=LIST  the uids (numbers or user names) granted the root;
 *   gids=LIST  the groups (numbers or names) granted it: a client whose
 *              primary or supplementary groups, as the kernel reported
 *              them at connect (SO_PEERCRED, SO_PEERGROUPS), include one;
 *   mounts     paths may cross mount points inside the root, and the
 *              root may be on a FUSE file system. Without it a path
 *              that crosses a mount point below the root's directory is
 *              refused (PORTER_E_FILE_ESCAPE; fsconfine.h says why: a
 *              user who can mount FUSE inside a root would make
 *              porterd's threads wait on her daemon), and porterd does
 *              not start with a root whose directory is on FUSE (any
 *              user may mount one with fusermount over a directory she
 *              owns, and porterd opens the root through it at start);
 * and LIST is separated by spaces ("uids=1001 1002"). A PATH whose last
 * component is "%u" is a per-user root: each uid gets a private directory
 * there, named by its number, created mode 0700 on first use; its parent
 * must be root's or porterd's and writable by its owner alone (anyone
 * else who may write it could rename one uid's directory to another's
 * number), else the root is refused. Paths may not contain ':'.
 *
 * Who reaches what: a local client (porterd's own uid) reaches every root,
 * as before roots had owners. A foreign client reaches a root only when
 * granted: a root with uids=/gids= grants exactly those; a per-user root
 * without them grants every client its own directory; a root with neither
 * (plain NAME=PATH, and the default root) is porterd's own and grants no
 * foreign client.
 *
 * The table is built once at start-up (fsroot_init, main thread, before
 * any worker runs) and is read-only afterwards: any thread may read it.
 * Group and user names are resolved then, never on a loop thread.
 * Identities come from clients_peer: what the kernel said at connect.
 */
#ifndef PORTER_FSROOT_H
#define PORTER_FSROOT_H

#include <stddef.h>
#include <sys/types.h>

#include "clients.h"
#include "config.h"

typedef struct fsroot {
	char *name; /* as configured */
	char *path; /* as configured, "%u" included */
	int fd;     /* O_PATH | O_DIRECTORY: the root, or for a per-user root
		     * the directory that holds the users' directories */
	int per_user;
	int has_owners;   /* uids= or gids= was given */
	int cross_mounts; /* option `mounts`: paths may cross mount points
			   * inside it, and it may be on FUSE (fsconfine.h) */
	uid_t *uids;      /* granted uids, `n_uids` of them */
	size_t n_uids;
	gid_t *gids; /* granted groups */
	size_t n_gids;
} fsroot;

/*
 * Builds the table from `cfg->file_roots` (or creates and opens the
 * default root when none is configured) and reads file-max-mode and
 * file-max-dir-mode. Logs every root with its owners. Main thread, before
 * the workers start. Returns 0, or PORTER_E_INVAL after logging why.
 */
int fsroot_init(const config *cfg);

/* Closes the roots and frees the table. Main thread, after the workers. */
void fsroot_shutdown(void);

/*
 * The root named `name` (not NULL; "" means the first root that grants
 * `peer`), or NULL when there is none by that name. Any thread; the
 * result lives until fsroot_shutdown.
 */
const fsroot *fsroot_find(const char *name, const clients_peer *peer);

/* 1 when the client `peer` (not NULL) may use `rt` (not NULL), else 0.
 * Any thread; no system calls. */
int fsroot_grants(const fsroot *rt, const clients_peer *peer);

/*
 * The directory paths of `uid` resolve in, for root `rt`: the root itself
 * (*fd = rt->fd, borrowed), or for a per-user root the uid's own directory,
 * created mode 0700 on first use with mkdirat/openat(O_NOFOLLOW) from the
 * root, so a symlink planted in its place is never followed (*fd is then a
 * new O_PATH descriptor the caller closes; see fsroot_put_dir). A directory
 * there that porterd does not own is refused. Returns 0, or a positive
 * errno value (never a PORTER_E_* code). Thread pool: it may touch the
 * disk.
 */
int fsroot_dir(const fsroot *rt, uid_t uid, int *fd);

/* Releases what fsroot_dir gave: closes `fd` unless it is the root's own. */
void fsroot_put_dir(const fsroot *rt, int fd);

/* The mode a created file gets when the client asked for `asked` (0: the
 * default 0600): masked by file-max-mode, never setuid, setgid or sticky.
 * Any thread. */
mode_t fsroot_file_mode(unsigned asked);

/* The same for a created directory (0: 0700), masked by file-max-dir-mode. */
mode_t fsroot_dir_mode(unsigned asked);

/* The default root's directory for the current environment, written to
 * `buf`. Returns 0, or PORTER_E_INVAL when neither XDG_DATA_HOME nor HOME
 * gives one or it does not fit. */
int fsroot_default_path(char *buf, size_t cap);

#endif
