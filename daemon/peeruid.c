/* peeruid - the uid of a loopback TCP peer, by sock_diag; see peeruid.h. */
#include "peeruid.h"

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int peeruid_open(void)
{
	return socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_SOCK_DIAG);
}

/* Copies the address and port of `sa` (of `family`) into a sock_diag
 * id's `addr` and `*port` (network order). */
static void id_part(const struct sockaddr_storage *sa, int family, __be32 addr[4], __be16 *port)
{
	if (family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		memcpy(addr, &in->sin_addr, sizeof(in->sin_addr));
		*port = in->sin_port;
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		memcpy(addr, &in6->sin6_addr, sizeof(in6->sin6_addr));
		*port = in6->sin6_port;
	}
}

/* Numbers the lookups (main loop thread only). */
static __u32 seq;

int peeruid_tcp(int nl, int fd, uid_t *uid)
{
	struct sockaddr_storage here, peer;
	socklen_t hl = sizeof(here), pl = sizeof(peer);
	if (nl < 0 || getsockname(fd, (struct sockaddr *)&here, &hl) < 0 ||
	    getpeername(fd, (struct sockaddr *)&peer, &pl) < 0 ||
	    here.ss_family != peer.ss_family ||
	    (here.ss_family != AF_INET && here.ss_family != AF_INET6))
		return -1;
	struct {
		struct nlmsghdr h;
		struct inet_diag_req_v2 r;
	} req;
	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = sizeof(req);
	req.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.h.nlmsg_flags = NLM_F_REQUEST; /* one socket, not a dump */
	req.h.nlmsg_seq = ++seq;
	req.r.sdiag_family = (__u8)here.ss_family;
	req.r.sdiag_protocol = IPPROTO_TCP;
	req.r.idiag_states = ~0u;
	/* The peer's socket: its source is our peer, its destination us. */
	id_part(&peer, here.ss_family, req.r.id.idiag_src, &req.r.id.idiag_sport);
	id_part(&here, here.ss_family, req.r.id.idiag_dst, &req.r.id.idiag_dport);
	req.r.id.idiag_cookie[0] = req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	ssize_t n;
	do
		n = sendto(nl, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel));
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(req))
		return -1;
	/* The kernel answers within sendto, so the reply is queued already;
	 * a datagram of an earlier lookup (none is left unless a read
	 * failed) is told apart by its sequence number. */
	union {
		struct nlmsghdr h;
		char buf[1024];
	} u;
	for (;;) {
		do
			n = recv(nl, u.buf, sizeof(u.buf), 0);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			return -1;
		int len = (int)n;
		for (struct nlmsghdr *h = &u.h; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
			if (h->nlmsg_seq != req.h.nlmsg_seq)
				continue;
			if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
			    h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
				return -1; /* NLMSG_ERROR: no such socket */
			const struct inet_diag_msg *m = NLMSG_DATA(h);
			/* A socket no process holds (its owner closed it) has
			 * no inode, and a closed one waiting out FIN_WAIT2 or
			 * TIME_WAIT reads as uid 0: anyone's connections,
			 * closed right after connecting, would pass as
			 * root's. */
			if (m->idiag_inode == 0)
				return -1;
			*uid = (uid_t)m->idiag_uid;
			return 0;
		}
	}
}
