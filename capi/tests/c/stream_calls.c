/* libc's byte-stream and connection calls on ringline sockets: read(),
 * write(), readv(), writev(), recv(), send(), recvfrom(), sendto(),
 * recvmsg(), sendmsg(), connect(), accept(), accept4(). libringline serves
 * its sockets only through the ring; each of these fails with EOPNOTSUPP
 * (never a silent end of file), leaves the connection as it was, and other
 * descriptors (a pipe here) still reach the kernel. Built with
 * -D_FORTIFY_SOURCE=2 -O2 as well, where read()/recv()/recvfrom() with a
 * buffer of known size become __read_chk() and the like.
 *
 *   stream_calls ADDR PORT        (ringline only: 10.0.0.1)
 */
#include <liburing.h>
#include <errno.h>
static struct io_uring srv, cli;
#define TWO_RINGS
#include "common.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static void show(const char *what, long r)
{
	printf("%s: %ld %s\n", what, r, r < 0 ? strerror(errno) : "");
}

int main(int argc, char **argv)
{
	CHECK(argc == 3, "usage: stream_calls ADDR PORT");
	CHECK(io_uring_queue_init(32, &srv, 0) == 0, "init");
	CHECK(io_uring_queue_init(32, &cli, 0) == 0, "init");
	int port = atoi(argv[2]);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in any = { .sin_family = AF_INET, .sin_port = htons(port) };
	CHECK(bind(lfd, (struct sockaddr *)&any, sizeof(any)) == 0, "bind");
	CHECK(listen(lfd, 8) == 0, "listen");
	struct sockaddr_in dst = any;
	CHECK(inet_pton(AF_INET, argv[1], &dst.sin_addr) == 1, "addr");
	int cfd = socket(AF_INET, SOCK_STREAM, 0);
	/* A connect() before the ring has the socket. */
	show("connect", connect(cfd, (struct sockaddr *)&dst, sizeof(dst)));
	int afd = connect_pair(lfd, cfd, &dst);

	char buf[64];
	/* A length the compiler cannot see, so that a fortified build checks it
	 * at run time (__read_chk and the like). */
	volatile size_t vlen = sizeof(buf);
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct sockaddr_in from;
	socklen_t fl = sizeof(from);
	/* The client sends first, so that a read that went to the kernel's
	 * /dev/null (an end of file) could not pass for "nothing yet". */
	struct io_uring_sqe *sqe = io_uring_get_sqe(&cli);
	io_uring_prep_send(sqe, cfd, "hello", 5, 0);
	sqe->user_data = 3;
	CHECK(wait_for(3) == 5, "send");
	show("read", read(afd, buf, vlen));
	show("read again", read(afd, buf, vlen));
	show("readv", readv(afd, &iov, 1));
	show("recv", recv(afd, buf, vlen, 0));
	show("recvfrom", recvfrom(afd, buf, vlen, 0, (struct sockaddr *)&from, &fl));
	show("recvmsg", recvmsg(afd, &msg, 0));
	show("write", write(afd, "x", 1));
	iov.iov_len = 1;
	show("writev", writev(afd, &iov, 1));
	show("send", send(afd, "x", 1, MSG_NOSIGNAL));
	show("sendto", sendto(afd, "x", 1, MSG_NOSIGNAL, NULL, 0));
	show("sendmsg", sendmsg(afd, &msg, MSG_NOSIGNAL));
	show("accept", accept(lfd, NULL, NULL));
	show("accept4", accept4(lfd, NULL, NULL, SOCK_NONBLOCK));
	show("connect again", connect(cfd, (struct sockaddr *)&dst, sizeof(dst)));

	/* The connection is as it was: the server reads the five bytes. */
	sqe = io_uring_get_sqe(&srv);
	io_uring_prep_recv(sqe, afd, buf, sizeof(buf), 0);
	sqe->user_data = 4;
	int r = wait_for(4);
	printf("ring recv: %d %.*s\n", r, r > 0 ? r : 0, buf);

	/* Other descriptors still reach the kernel. */
	int p[2];
	CHECK(pipe(p) == 0, "pipe");
	show("pipe write", write(p[1], "abc", 3));
	show("pipe read", read(p[0], buf, vlen));
	close(p[0]);
	close(p[1]);
	close(afd);
	close(cfd);
	close(lfd);
	io_uring_queue_exit(&cli);
	io_uring_queue_exit(&srv);
	printf("stream calls ok\n");
	return 0;
}
