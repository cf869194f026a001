/* IORING_OP_MSG_RING between two rings of the process, through liburing's
 * io_uring_prep_msg_ring and _cqe_flags: a data message each way, one to
 * the ring itself, and the target checks (a socket, an fd not open).
 * Prints one line per check; exits non-zero on the first failure. */
#include <liburing.h>
#include "common.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#ifndef IORING_MSG_RING_FLAGS_PASS
#define IORING_MSG_RING_FLAGS_PASS (1U << 1)
#endif

/* A CQE of the sender's own ring that came while it waited for its request's
 * (a message to itself: which of the two comes first depends on the ring's
 * setup flags in Linux, so it is not printed in order). */
static struct { int have; unsigned long long ud; int res; unsigned flags; } own;

/* Submits one MSG_RING on `from` and returns its result. */
static int send_msg(struct io_uring *from, int fd, unsigned len, __u64 data, int pass, __u32 cflags)
{
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe = sqe_of(from);
	/* io_uring_prep_msg_ring_cqe_flags, which older liburing lacks. */
	io_uring_prep_msg_ring(sqe, fd, len, data, pass ? IORING_MSG_RING_FLAGS_PASS : 0);
	if (pass)
		sqe->file_index = cflags;
	io_uring_sqe_set_data64(sqe, 0xabc);
	int ret = io_uring_submit(from);
	CHECK(ret == 1, "submit: %d", ret);
	/* A message to the ring itself comes in the same CQ: find ours. */
	for (;;) {
		ret = io_uring_wait_cqe(from, &cqe);
		CHECK(ret == 0, "wait_cqe: %d", ret);
		if (cqe->user_data == 0xabc)
			break;
		own.have = 1;
		own.ud = cqe->user_data;
		own.res = cqe->res;
		own.flags = cqe->flags;
		io_uring_cqe_seen(from, cqe);
	}
	ret = cqe->res;
	io_uring_cqe_seen(from, cqe);
	return ret;
}

/* Waits for one CQE on `to` and prints it. */
static void got(struct io_uring *to, const char *name)
{
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts = { .tv_sec = 2 };
	int ret = io_uring_wait_cqe_timeout(to, &cqe, &ts);
	CHECK(ret == 0, "%s: wait: %d", name, ret);
	printf("%s got ud=%#llx res=%d flags=%#x\n", name, (unsigned long long)cqe->user_data, cqe->res, cqe->flags);
	io_uring_cqe_seen(to, cqe);
}

int main(void)
{
	struct io_uring a, b;
	CHECK(io_uring_queue_init(16, &a, 0) == 0, "init a");
	CHECK(io_uring_queue_init(16, &b, 0) == 0, "init b");

	printf("a->b: %d\n", send_msg(&a, b.ring_fd, 77, 0x1234, 0, 0));
	got(&b, "b");
	printf("b->a (flags): %d\n", send_msg(&b, a.ring_fd, 5, 0x55, 1, 0x00ab0000 | IORING_CQE_F_BUFFER));
	got(&a, "a");
	int self = send_msg(&a, a.ring_fd, 9, 0x77, 0, 0);
	printf("a->a: %d\n", self);
	if (own.have)
		printf("a got ud=%#llx res=%d flags=%#x\n", own.ud, own.res, own.flags);
	else
		got(&a, "a");

	/* A socket is not a ring; an fd not open is none. */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(s >= 0, "socket: %d", errno);
	int r = send_msg(&a, s, 1, 1, 0, 0);
	printf("to a socket: %s\n", r == -EBADFD ? "-EBADFD" : "other");
	printf("to an fd not open: %s\n", send_msg(&a, 99999, 1, 1, 0, 0) == -EBADF ? "-EBADF" : "other");

	io_uring_queue_exit(&b);
	io_uring_queue_exit(&a);
	printf("exit ok\n");
	return 0;
}
