/* io_uring_register through liburing's calls: a sparse file table, a
 * socket put in a slot and closed through it (IORING_OP_CLOSE of a direct
 * descriptor), a write from a registered buffer (WRITE_FIXED) on the fixed
 * file refused as the socket is not connected, the probe, and the errnos of
 * unregistering twice. Only liburing's API and socket(); the output is
 * compared between ringline and the kernel.
 */
#include <liburing.h>
#include "common.h"
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <signal.h>
#include <unistd.h>

static struct io_uring ring;

/* Submits one SQE and returns its result. */
static int one(struct io_uring_sqe *sqe, unsigned long long ud)
{
	struct io_uring_cqe *cqe;
	sqe->user_data = ud;
	CHECK(io_uring_submit(&ring) == 1, "submit");
	CHECK(io_uring_wait_cqe(&ring, &cqe) == 0, "wait");
	CHECK(cqe->user_data == ud, "user_data %llu", (unsigned long long)cqe->user_data);
	int res = cqe->res;
	io_uring_cqe_seen(&ring, cqe);
	return res;
}

int main(void)
{
	/* A write on a socket that is not connected raises SIGPIPE in Linux. */
	signal(SIGPIPE, SIG_IGN);
	CHECK(io_uring_queue_init(8, &ring, 0) == 0, "init");

	int fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd >= 0, "socket");
	printf("unregister files, none: %d\n", io_uring_unregister_files(&ring));
	printf("update, no table: %d\n", io_uring_register_files_update(&ring, 0, &fd, 1));
	printf("sparse 4: %d\n", io_uring_register_files_sparse(&ring, 4));
	printf("sparse again: %d\n", io_uring_register_files_sparse(&ring, 4));
	printf("update slot 1: %d\n", io_uring_register_files_update(&ring, 1, &fd, 1));
	printf("update past the end: %d\n", io_uring_register_files_update(&ring, 4, &fd, 1));

	/* WRITE_FIXED on fixed file 1 from a registered buffer: the socket
	 * is not connected. */
	static char buf[64] = "registered";
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	/* Memory that is not mapped: -EFAULT, as the kernel's pinning finds. */
	struct iovec bad = { .iov_base = (void *)(uintptr_t)4096, .iov_len = 4096 };
	printf("register unmapped buffers: %d\n", io_uring_register_buffers(&ring, &bad, 1));
	printf("register buffers: %d\n", io_uring_register_buffers(&ring, &iov, 1));
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
	io_uring_prep_write_fixed(sqe, 1, buf, 10, 0, 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	printf("write_fixed, not connected: %d\n", one(sqe, 1));
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_write_fixed(sqe, 1, buf, 10, 0, 3);
	sqe->flags |= IOSQE_FIXED_FILE;
	printf("write_fixed, no buffer 3: %d\n", one(sqe, 2));
	printf("unregister buffers: %d\n", io_uring_unregister_buffers(&ring));
	printf("unregister buffers again: %d\n", io_uring_unregister_buffers(&ring));

	/* The slot holds the socket after its fd is closed; CLOSE of the
	 * slot then closes it; a second CLOSE finds the slot empty. */
	printf("close fd: %d\n", close(fd));
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_close_direct(sqe, 1);
	printf("close slot 1: %d\n", one(sqe, 3));
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_close_direct(sqe, 1);
	printf("close slot 1 again: %d\n", one(sqe, 4));
	printf("unregister files: %d\n", io_uring_unregister_files(&ring));

	/* The probe: NOP and RECV are there, opcode 250 is not. */
	struct io_uring_probe *p = io_uring_get_probe_ring(&ring);
	CHECK(p, "probe");
	printf("probe: nop %d recv %d op250 %d\n",
	       io_uring_opcode_supported(p, IORING_OP_NOP),
	       io_uring_opcode_supported(p, IORING_OP_RECV),
	       io_uring_opcode_supported(p, 250));
	io_uring_free_probe(p);
	io_uring_queue_exit(&ring);
	printf("exit ok\n");
	return 0;
}
