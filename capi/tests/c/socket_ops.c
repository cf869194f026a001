/* Sockets made through the ring only: IORING_OP_SOCKET, IORING_OP_BIND and
 * IORING_OP_LISTEN (Linux 6.11; liburing 2.3 has no helpers for the last two,
 * so they are built with io_uring_prep_rw as liburing 2.7 does), ACCEPT,
 * CONNECT, SEND, RECV and IORING_OP_CLOSE. A server ring and a client ring
 * (made in that order: on ringline's loopback wire, sides A and B), driven
 * in turn by one thread.
 *
 *   socket_ops ADDR PORT     (127.0.0.1 on the kernel, 10.0.0.1 on ringline)
 */
#include <liburing.h>
#include <errno.h>
static struct io_uring srv, cli;
#define TWO_RINGS
#include "common.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define OP_BIND 56
#define OP_LISTEN 57


int main(int argc, char **argv)
{
	CHECK(argc == 3, "usage: socket_ops ADDR PORT");
	CHECK(io_uring_queue_init(32, &srv, 0) == 0, "init");
	CHECK(io_uring_queue_init(32, &cli, 0) == 0, "init");
	struct io_uring_sqe *sqe;
	struct sockaddr_in any = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
	struct sockaddr_in dst = any;
	CHECK(inet_pton(AF_INET, argv[1], &dst.sin_addr) == 1, "addr");

	sqe = io_uring_get_sqe(&srv);
	io_uring_prep_socket(sqe, AF_INET, SOCK_STREAM, 0, 0);
	sqe->user_data = 1;
	int lfd = wait_for(1);
	CHECK(lfd >= 0, "SOCKET: %d", lfd);
	int one = 1;
	CHECK(setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0, "setsockopt");

	sqe = io_uring_get_sqe(&srv);
	io_uring_prep_rw(OP_BIND, sqe, lfd, &any, 0, sizeof(any));
	sqe->user_data = 2;
	int ret = wait_for(2);
	CHECK(ret == 0, "BIND: %d", ret);
	sqe = io_uring_get_sqe(&srv);
	io_uring_prep_rw(OP_LISTEN, sqe, lfd, NULL, 16, 0);
	sqe->user_data = 3;
	ret = wait_for(3);
	CHECK(ret == 0, "LISTEN: %d", ret);
	printf("socket bind listen ok\n");

	sqe = io_uring_get_sqe(&cli);
	io_uring_prep_socket(sqe, AF_INET, SOCK_STREAM, 0, 0);
	sqe->user_data = 4;
	int cfd = wait_for(4);
	CHECK(cfd >= 0 && cfd != lfd, "client SOCKET: %d", cfd);

	sqe = io_uring_get_sqe(&srv);
	io_uring_prep_accept(sqe, lfd, NULL, NULL, 0);
	sqe->user_data = 5;
	sqe = io_uring_get_sqe(&cli);
	io_uring_prep_connect(sqe, cfd, (struct sockaddr *)&dst, sizeof(dst));
	sqe->user_data = 6;
	ret = wait_for(6);
	CHECK(ret == 0, "CONNECT: %d", ret);
	int afd = wait_for(5);
	CHECK(afd >= 0 && afd != lfd && afd != cfd, "ACCEPT: %d", afd);
	printf("connect accept ok\n");

	char msg[] = "hello through the ring", buf[sizeof(msg)] = { 0 };
	sqe = io_uring_get_sqe(&cli);
	io_uring_prep_send(sqe, cfd, msg, sizeof(msg), 0);
	sqe->user_data = 7;
	sqe = io_uring_get_sqe(&srv);
	io_uring_prep_recv(sqe, afd, buf, sizeof(buf), MSG_WAITALL);
	sqe->user_data = 8;
	CHECK(wait_for(7) == (int)sizeof(msg), "SEND");
	ret = wait_for(8);
	CHECK(ret == (int)sizeof(msg), "RECV: %d", ret);
	CHECK(memcmp(buf, msg, ret) == 0, "bytes");
	printf("send recv ok\n");

	/* Close the client through the ring: the server reads EOF. */
	sqe = io_uring_get_sqe(&cli);
	io_uring_prep_close(sqe, cfd);
	sqe->user_data = 9;
	CHECK(wait_for(9) == 0, "CLOSE");
	sqe = io_uring_get_sqe(&srv);
	io_uring_prep_recv(sqe, afd, buf, sizeof(buf), 0);
	sqe->user_data = 10;
	ret = wait_for(10);
	CHECK(ret == 0, "EOF: %d", ret);
	sqe = io_uring_get_sqe(&srv);
	io_uring_prep_close(sqe, afd);
	sqe->user_data = 11;
	sqe = io_uring_get_sqe(&srv);
	io_uring_prep_close(sqe, lfd);
	sqe->user_data = 12;
	CHECK(wait_for(11) == 0 && wait_for(12) == 0, "CLOSE");
	/* A closed number is no socket any more. */
	sqe = io_uring_get_sqe(&srv);
	io_uring_prep_close(sqe, lfd);
	sqe->user_data = 13;
	ret = wait_for(13);
	CHECK(ret == -EBADF, "second CLOSE: %d", ret);
	printf("close ok\n");
	io_uring_queue_exit(&cli);
	io_uring_queue_exit(&srv);
	return 0;
}
