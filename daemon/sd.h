/*
 * sd - the two systemd protocols porterd speaks itself, without libsystemd:
 * socket activation (LISTEN_FDS / LISTEN_PID) and service notification
 * (NOTIFY_SOCKET: READY, STATUS, RELOADING, STOPPING, WATCHDOG).
 *
 * Both are plain system calls. Everything here runs on the acceptor
 * (main) thread only; the notification socket is module state set up once by
 * sd_notify_init() and closed by sd_notify_close(). Outside systemd (no
 * NOTIFY_SOCKET) every notification is a no-op, so callers never check.
 */
#ifndef PORTER_SD_H
#define PORTER_SD_H

#include <stddef.h>
#include <stdint.h>

/*
 * Takes the listening socket systemd passed, if any. Reads LISTEN_PID and
 * LISTEN_FDS, and unsets them and LISTEN_FDNAMES in every case, so nothing
 * this process starts inherits them. A socket is ours only when LISTEN_PID
 * is our pid. Exactly one descriptor (fd 3) is accepted, and it must be an
 * AF_UNIX SOCK_STREAM socket that is already listening; it is then made
 * non-blocking and close-on-exec.
 *
 * Returns the descriptor (>= 3; the caller owns it), 0 when the process was
 * not socket-activated, or PORTER_E_INVAL after logging why the passed
 * descriptors are unusable.
 */
int sd_activation_fd(void);

/*
 * Opens the notification socket named by NOTIFY_SOCKET (a path, or an
 * abstract name starting with '@'). Returns 1 when notifications will be
 * sent, 0 when not running under a notify-type service manager, or
 * PORTER_E_INVAL after logging a malformed NOTIFY_SOCKET.
 */
int sd_notify_init(void);

/* True after a successful sd_notify_init(). */
int sd_notify_enabled(void);

/*
 * Sends one notification datagram: newline-separated "KEY=value"
 * assignments, printf-style. Returns 0 (also when notifications are off) or
 * a negative errno after logging it once.
 */
int sd_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The watchdog interval systemd expects pings within, in microseconds, or 0
 * when the watchdog is off (WATCHDOG_USEC unset or zero, or WATCHDOG_PID
 * naming another process). Pings are due at half this interval.
 */
uint64_t sd_watchdog_usec(void);

/* Closes the notification socket. */
void sd_notify_close(void);

#endif
