/* The socket calls a program makes around its ring: setsockopt() and
 * getsockopt() before and after the ring has the socket, getsockname() and
 * getpeername() on listeners, accepted and connected sockets, and what the
 * ring's own GETSOCKOPT (IORING_OP_URING_CMD) sees of an option setsockopt()
 * set. Only values both stacks agree on are printed (ringline's defaults for
 * keep-alive and buffer sizes are its configuration's, not Linux's sysctls).
 *
 *   sockopts ADDR PORT [sqpoll]   (127.0.0.1 on the kernel, 10.0.0.1 on ringline;
 *                                   sqpoll: both rings with IORING_SETUP_SQPOLL)
 */
#include <liburing.h>
#include <errno.h>
static struct io_uring srv, cli;
#define TWO_RINGS
#include "common.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void set(const char *what, int fd, int level, int name, int val, socklen_t len)
{
	int r = setsockopt(fd, level, name, &val, len);
	printf("set %s = %d (len %u): %d%s%s\n", what, val, len, r, r ? " " : "", r ? strerror(errno) : "");
}

static void get(const char *what, int fd, int level, int name, socklen_t len)
{
	unsigned char b[8] = { 0 };
	int r = getsockopt(fd, level, name, b, &len);
	int v;
	memcpy(&v, b, sizeof(v));
	if (r)
		printf("get %s: %s\n", what, strerror(errno));
	else
		printf("get %s: %d (len %u)\n", what, len == 4 ? v : b[0], len);
}

/* SO_LINGER, a struct linger rather than an int. */
static void linger_set(const char *what, int fd, int on, int secs, socklen_t len)
{
	struct linger l = { .l_onoff = on, .l_linger = secs };
	int r = setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, len);
	printf("set %s SO_LINGER {%d, %d} (len %u): %d%s%s\n", what, on, secs, len, r, r ? " " : "",
	       r ? strerror(errno) : "");
}

static void linger_get(const char *what, int fd, socklen_t len)
{
	struct linger l = { -1, -1 };
	int r = getsockopt(fd, SOL_SOCKET, SO_LINGER, &l, &len);
	if (r)
		printf("get %s SO_LINGER: %s\n", what, strerror(errno));
	else
		printf("get %s SO_LINGER: {%d, %d} (len %u)\n", what, l.l_onoff, l.l_linger, len);
}

/* The ring's GETSOCKOPT of SOL_SOCKET `name` (what the engine applied). */
static int ring_get(struct io_uring *ring, int fd, int name, int ud)
{
	static int val;
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = fd;
	sqe->off = 2; /* cmd_op (the low word): SOCKET_URING_OP_GETSOCKOPT */
	sqe->addr = (unsigned long long)SOL_SOCKET | (unsigned long long)name << 32;
	sqe->splice_fd_in = sizeof(val); /* optlen */
	sqe->addr3 = (unsigned long)&val; /* optval */
	sqe->user_data = ud;
	int r = wait_for(ud);
	return r < 0 ? r : val;
}

static void names(const char *what, int fd, struct sockaddr_in *self, struct sockaddr_in *peer)
{
	socklen_t l = sizeof(*self);
	memset(self, 0, sizeof(*self));
	int r = getsockname(fd, (struct sockaddr *)self, &l);
	printf("%s getsockname: %s", what, r ? strerror(errno) : "ok");
	if (peer) {
		l = sizeof(*peer);
		memset(peer, 0, sizeof(*peer));
		r = getpeername(fd, (struct sockaddr *)peer, &l);
		printf(", getpeername: %s", r ? strerror(errno) : "ok");
	}
	printf("\n");
}

int main(int argc, char **argv)
{
	CHECK(argc == 3 || argc == 4, "usage: sockopts ADDR PORT [sqpoll]");
	unsigned flags = argc == 4 && !strcmp(argv[3], "sqpoll") ? IORING_SETUP_SQPOLL : 0;
	CHECK(io_uring_queue_init(32, &srv, flags) == 0, "init");
	CHECK(io_uring_queue_init(32, &cli, flags) == 0, "init");
	int port = atoi(argv[2]);

	/* Options of a socket no ring has seen yet. */
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(lfd >= 0, "socket");
	set("SO_REUSEADDR", lfd, SOL_SOCKET, SO_REUSEADDR, 1, 4);
	set("SO_REUSEPORT", lfd, SOL_SOCKET, SO_REUSEPORT, 1, 4);
	set("SO_RCVBUF", lfd, SOL_SOCKET, SO_RCVBUF, 40000, 4);
	set("SO_SNDBUF", lfd, SOL_SOCKET, SO_SNDBUF, 1, 4);
	set("SO_KEEPALIVE", lfd, SOL_SOCKET, SO_KEEPALIVE, 1, 4);
	set("TCP_NODELAY", lfd, IPPROTO_TCP, TCP_NODELAY, 1, 4);
	set("TCP_KEEPIDLE", lfd, IPPROTO_TCP, TCP_KEEPIDLE, 30, 4);
	set("TCP_KEEPIDLE", lfd, IPPROTO_TCP, TCP_KEEPIDLE, 0, 4);
	set("TCP_KEEPINTVL", lfd, IPPROTO_TCP, TCP_KEEPINTVL, 5, 4);
	set("TCP_KEEPCNT", lfd, IPPROTO_TCP, TCP_KEEPCNT, 200, 4);
	set("TCP_USER_TIMEOUT", lfd, IPPROTO_TCP, TCP_USER_TIMEOUT, 5000, 4);
	set("TCP_USER_TIMEOUT", lfd, IPPROTO_TCP, TCP_USER_TIMEOUT, -1, 4);
	set("TCP_NODELAY", lfd, IPPROTO_TCP, TCP_NODELAY, 1, 2);
	set("level 999", lfd, 999, 1, 1, 4);
	get("SO_REUSEADDR", lfd, SOL_SOCKET, SO_REUSEADDR, 4);
	get("SO_REUSEPORT", lfd, SOL_SOCKET, SO_REUSEPORT, 4);
	get("SO_RCVBUF", lfd, SOL_SOCKET, SO_RCVBUF, 4);
	get("SO_SNDBUF", lfd, SOL_SOCKET, SO_SNDBUF, 4);
	get("SO_KEEPALIVE", lfd, SOL_SOCKET, SO_KEEPALIVE, 4);
	get("SO_TYPE", lfd, SOL_SOCKET, SO_TYPE, 4);
	get("SO_PROTOCOL", lfd, SOL_SOCKET, SO_PROTOCOL, 4);
	get("SO_DOMAIN", lfd, SOL_SOCKET, SO_DOMAIN, 4);
	get("SO_ERROR", lfd, SOL_SOCKET, SO_ERROR, 4);
	get("SO_ACCEPTCONN", lfd, SOL_SOCKET, SO_ACCEPTCONN, 4);
	get("TCP_NODELAY", lfd, IPPROTO_TCP, TCP_NODELAY, 4);
	get("TCP_KEEPIDLE", lfd, IPPROTO_TCP, TCP_KEEPIDLE, 4);
	get("TCP_KEEPINTVL", lfd, IPPROTO_TCP, TCP_KEEPINTVL, 4);
	get("TCP_USER_TIMEOUT", lfd, IPPROTO_TCP, TCP_USER_TIMEOUT, 4);
	get("SO_RCVBUF, len 2", lfd, SOL_SOCKET, SO_RCVBUF, 2);
	get("SO_RCVBUF, len 8", lfd, SOL_SOCKET, SO_RCVBUF, 8);
	get("SO_RCVBUF, len 0", lfd, SOL_SOCKET, SO_RCVBUF, 0);
	get("SO_RCVBUF, len -1", lfd, SOL_SOCKET, SO_RCVBUF, (socklen_t)-1);
	linger_get("fresh", lfd, sizeof(struct linger));
	linger_set("short", lfd, 1, 5, 4);
	linger_set("on", lfd, 1, 5, sizeof(struct linger));
	linger_get("on", lfd, sizeof(struct linger));
	linger_get("on, len 4", lfd, 4);
	linger_set("off", lfd, 0, 7, sizeof(struct linger));
	linger_get("off (the time stays)", lfd, sizeof(struct linger));
	struct sockaddr_in any = { .sin_family = AF_INET, .sin_port = htons(port) };
	CHECK(bind(lfd, (struct sockaddr *)&any, sizeof(any)) == 0, "bind");
	struct sockaddr_in me, peer;
	names("bound", lfd, &me, &peer);
	printf("bound: port %d, address any %d\n", ntohs(me.sin_port) == port, me.sin_addr.s_addr == 0);
	CHECK(listen(lfd, 8) == 0, "listen");
	get("listening SO_ACCEPTCONN", lfd, SOL_SOCKET, SO_ACCEPTCONN, 4);

	/* A connection: the listener's options go to the accepted socket. */
	struct sockaddr_in dst = any;
	CHECK(inet_pton(AF_INET, argv[1], &dst.sin_addr) == 1, "addr");
	int cfd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(cfd >= 0, "socket");
	names("unconnected", cfd, &me, &peer);
	int afd = connect_pair(lfd, cfd, &dst);
	struct io_uring_sqe *sqe;
	get("listener after accept SO_ACCEPTCONN", lfd, SOL_SOCKET, SO_ACCEPTCONN, 4);
	get("accepted SO_ACCEPTCONN", afd, SOL_SOCKET, SO_ACCEPTCONN, 4);
	get("accepted SO_KEEPALIVE", afd, SOL_SOCKET, SO_KEEPALIVE, 4);
	get("accepted SO_RCVBUF", afd, SOL_SOCKET, SO_RCVBUF, 4);
	get("accepted TCP_NODELAY", afd, IPPROTO_TCP, TCP_NODELAY, 4);
	get("accepted TCP_KEEPIDLE", afd, IPPROTO_TCP, TCP_KEEPIDLE, 4);
	linger_get("accepted (the listener's)", afd, sizeof(struct linger));
	get("accepted TCP_USER_TIMEOUT", afd, IPPROTO_TCP, TCP_USER_TIMEOUT, 4);

	struct sockaddr_in a_me, a_peer, c_me, c_peer;
	names("accepted", afd, &a_me, &a_peer);
	names("connected", cfd, &c_me, &c_peer);
	printf("accepted's name is the listener's port: %d\n", a_me.sin_port == htons(port));
	printf("accepted's name is the address connected to: %d\n", a_me.sin_addr.s_addr == dst.sin_addr.s_addr);
	printf("connected's peer is the address connected to: %d\n",
	       c_peer.sin_addr.s_addr == dst.sin_addr.s_addr && c_peer.sin_port == dst.sin_port);
	printf("accepted's peer is the connected socket's name: %d\n",
	       a_peer.sin_addr.s_addr == c_me.sin_addr.s_addr && a_peer.sin_port == c_me.sin_port && c_me.sin_port != 0);

	/* setsockopt() on a socket the ring has: getsockopt() and the ring's
	 * own GETSOCKOPT see it. */
	set("accepted SO_RCVBUF", afd, SOL_SOCKET, SO_RCVBUF, 10000, 4);
	set("accepted TCP_NODELAY", afd, IPPROTO_TCP, TCP_NODELAY, 0, 4);
	get("accepted SO_RCVBUF", afd, SOL_SOCKET, SO_RCVBUF, 4);
	get("accepted TCP_NODELAY", afd, IPPROTO_TCP, TCP_NODELAY, 4);
	printf("ring GETSOCKOPT SO_RCVBUF: %d\n", ring_get(&srv, afd, SO_RCVBUF, 3));
	set("connected SO_KEEPALIVE", cfd, SOL_SOCKET, SO_KEEPALIVE, 1, 4);
	printf("ring GETSOCKOPT SO_KEEPALIVE: %d\n", ring_get(&cli, cfd, SO_KEEPALIVE, 4));

	/* The connection still works. */
	char msg[] = "options set", buf[sizeof(msg)] = { 0 };
	sqe = io_uring_get_sqe(&cli);
	io_uring_prep_send(sqe, cfd, msg, sizeof(msg), 0);
	sqe->user_data = 5;
	sqe = io_uring_get_sqe(&srv);
	io_uring_prep_recv(sqe, afd, buf, sizeof(buf), MSG_WAITALL);
	sqe->user_data = 6;
	CHECK(wait_for(5) == (int)sizeof(msg) && wait_for(6) == (int)sizeof(msg), "send recv");
	CHECK(memcmp(msg, buf, sizeof(msg)) == 0, "bytes");

	/* shutdown(): half-close from the client, the server reads EOF and
	 * still answers. */
	int r = shutdown(afd, 7);
	printf("shutdown(how 7): %d %s\n", r, r ? strerror(errno) : "");
	int ufd = socket(AF_INET, SOCK_STREAM, 0);
	r = shutdown(ufd, SHUT_WR);
	printf("shutdown(unconnected): %d %s\n", r, r ? strerror(errno) : "");
	close(ufd);
	r = shutdown(lfd, SHUT_WR);
	printf("shutdown(listener, SHUT_WR): %d\n", r);
	get("listener after SHUT_WR SO_ACCEPTCONN", lfd, SOL_SOCKET, SO_ACCEPTCONN, 4);
	printf("shutdown(listener, SHUT_RD): %d\n", shutdown(lfd, SHUT_RD));
	get("listener after SHUT_RD SO_ACCEPTCONN", lfd, SOL_SOCKET, SO_ACCEPTCONN, 4);
	sqe = io_uring_get_sqe(&cli);
	io_uring_prep_send(sqe, cfd, "tail", 4, 0);
	sqe->user_data = 10;
	CHECK(wait_for(10) == 4, "send tail");
	printf("shutdown(connected, SHUT_WR): %d\n", shutdown(cfd, SHUT_WR));
	/* The client's engine sends its FIN; then the server reads. */
	reap(&cli);
	usleep(20 * 1000);
	sqe = io_uring_get_sqe(&srv);
	io_uring_prep_recv(sqe, afd, buf, sizeof(buf), 0);
	sqe->user_data = 7;
	r = wait_for(7);
	/* Linux's tcp_inq_hint: after a FIN, "continue reading". */
	printf("server reads the tail before the FIN: %d, SOCK_NONEMPTY %d\n", r,
	       !!(cqe_flags[7] & IORING_CQE_F_SOCK_NONEMPTY));
	sqe = io_uring_get_sqe(&srv);
	io_uring_prep_recv(sqe, afd, buf, sizeof(buf), 0);
	sqe->user_data = 7;
	r = wait_for(7);
	printf("server reads after the client's SHUT_WR: %d, SOCK_NONEMPTY %d\n", r,
	       !!(cqe_flags[7] & IORING_CQE_F_SOCK_NONEMPTY));
	sqe = io_uring_get_sqe(&srv);
	io_uring_prep_send(sqe, afd, msg, sizeof(msg), 0);
	sqe->user_data = 8;
	sqe = io_uring_get_sqe(&cli);
	io_uring_prep_recv(sqe, cfd, buf, sizeof(buf), MSG_WAITALL);
	sqe->user_data = 9;
	CHECK(wait_for(8) == (int)sizeof(msg), "send after half-close");
	printf("client reads the answer after its SHUT_WR: %d\n", wait_for(9));

	/* Connections are taken once listen() returns, before any accept: the
	 * client connects first (nothing on the server ring names the new
	 * listener yet), then an accept gets the connection. */
	int l2 = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in any2 = any;
	any2.sin_port = htons(port + 1);
	CHECK(bind(l2, (struct sockaddr *)&any2, sizeof(any2)) == 0, "bind 2");
	CHECK(listen(l2, 8) == 0, "listen 2");
	struct sockaddr_in dst2 = dst;
	dst2.sin_port = any2.sin_port;
	int c2 = socket(AF_INET, SOCK_STREAM, 0);
	sqe = io_uring_get_sqe(&cli);
	io_uring_prep_connect(sqe, c2, (const struct sockaddr *)&dst2, sizeof(dst2));
	sqe->user_data = 11;
	printf("connect before any accept: %d\n", wait_for(11));
	sqe = io_uring_get_sqe(&srv);
	io_uring_prep_accept(sqe, l2, NULL, NULL, 0);
	sqe->user_data = 12;
	int a2 = wait_for(12);
	printf("accept after the connect: %d\n", a2 >= 0);

	/* SO_LINGER on with a zero time: close() resets the connection, and the
	 * peer's pending receive fails with ECONNRESET. */
	linger_set("accepted", a2, 1, 0, sizeof(struct linger));
	linger_get("accepted", a2, sizeof(struct linger));
	printf("ring GETSOCKOPT SO_LINGER (4 bytes: l_onoff): %d\n", ring_get(&srv, a2, SO_LINGER, 14));
	sqe = io_uring_get_sqe(&cli);
	io_uring_prep_recv(sqe, c2, buf, sizeof(buf), 0);
	sqe->user_data = 13;
	reap(&cli);
	close(a2);
	r = wait_for(13);
	printf("peer's receive after an abortive close: %d %s\n", r, r < 0 ? strerror(-r) : "");
	close(c2);
	close(l2);
	close(cfd);
	close(afd);
	close(lfd);
	io_uring_queue_exit(&cli);
	io_uring_queue_exit(&srv);
	printf("sockopts ok\n");
	return 0;
}
