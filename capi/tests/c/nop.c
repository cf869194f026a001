/* The basics through liburing's API: queue init with params, NOP through the
 * inline get_sqe/prep/submit/wait_cqe/cqe_seen path, a batch with
 * io_uring_peek_batch_cqe and io_uring_cq_advance, a bounded wait that times
 * out, the probe, and kernel fds (a pipe, stdout) beside ring sockets.
 * Prints one line per check; exits non-zero on the first failure. */
#include <liburing.h>
#include "common.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>


static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int main(void)
{
	struct io_uring ring;
	struct io_uring_params p;
	struct io_uring_cqe *cqe;
	int ret;

	memset(&p, 0, sizeof(p));
	ret = io_uring_queue_init_params(64, &ring, &p);
	CHECK(ret == 0, "queue_init_params: %d", ret);
	CHECK(p.sq_entries == 64 && p.cq_entries == 128, "sizes %u %u", p.sq_entries, p.cq_entries);
	CHECK(p.features & IORING_FEAT_NODROP, "features %#x", p.features);
	printf("init sq=%u cq=%u\n", p.sq_entries, p.cq_entries);

	/* One NOP, through the inline fast path. */
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
	CHECK(sqe, "get_sqe");
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data64(sqe, 0xfeed);
	ret = io_uring_submit(&ring);
	CHECK(ret == 1, "submit: %d", ret);
	ret = io_uring_wait_cqe(&ring, &cqe);
	CHECK(ret == 0, "wait_cqe: %d", ret);
	CHECK(cqe->user_data == 0xfeed && cqe->res == 0, "cqe %llu %d", (unsigned long long)cqe->user_data, cqe->res);
	io_uring_cqe_seen(&ring, cqe);
	printf("nop ok\n");

	/* A batch of 40 (wraps nothing yet; the next loop does). */
	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < 40; i++) {
			sqe = io_uring_get_sqe(&ring);
			CHECK(sqe, "get_sqe %d", i);
			io_uring_prep_nop(sqe);
			io_uring_sqe_set_data64(sqe, round * 100 + i);
		}
		ret = io_uring_submit_and_wait(&ring, 40);
		CHECK(ret == 40, "submit_and_wait: %d", ret);
		struct io_uring_cqe *cqes[64];
		unsigned n = io_uring_peek_batch_cqe(&ring, cqes, 64);
		CHECK(n == 40, "peek_batch %u", n);
		for (unsigned i = 0; i < n; i++)
			CHECK(cqes[i]->user_data == (unsigned long long)(round * 100 + i), "order %u", i);
		io_uring_cq_advance(&ring, n);
		CHECK(io_uring_cq_ready(&ring) == 0, "cq empty");
	}
	printf("batches ok\n");

	/* Nothing in flight: a bounded wait returns -ETIME on time. */
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 50 * 1000 * 1000 };
	double t0 = now_s();
	ret = io_uring_wait_cqe_timeout(&ring, &cqe, &ts);
	double dt = now_s() - t0;
	CHECK(ret == -ETIME, "wait timeout: %d", ret);
	CHECK(dt >= 0.045 && dt < 2.0, "waited %.3f s", dt);
	printf("timeout ok\n");

	/* peek with nothing ready. */
	ret = io_uring_peek_cqe(&ring, &cqe);
	CHECK(ret == -EAGAIN, "peek: %d", ret);

	/* A timeout request completes with -ETIME. */
	sqe = io_uring_get_sqe(&ring);
	struct __kernel_timespec ts2 = { .tv_sec = 0, .tv_nsec = 20 * 1000 * 1000 };
	io_uring_prep_timeout(sqe, &ts2, 0, 0);
	io_uring_sqe_set_data64(sqe, 77);
	io_uring_submit(&ring);
	ret = io_uring_wait_cqe(&ring, &cqe);
	CHECK(ret == 0 && cqe->user_data == 77 && cqe->res == -ETIME, "timeout op: %d %d", ret, cqe->res);
	io_uring_cqe_seen(&ring, cqe);
	printf("timeout op ok\n");

	/* The probe. */
	struct io_uring_probe *probe = io_uring_get_probe_ring(&ring);
	CHECK(probe, "probe");
	CHECK(io_uring_opcode_supported(probe, IORING_OP_NOP), "NOP supported");
	CHECK(io_uring_opcode_supported(probe, IORING_OP_RECV), "RECV supported");
	CHECK(io_uring_opcode_supported(probe, IORING_OP_ACCEPT), "ACCEPT supported");
	io_uring_free_probe(probe);
	printf("probe ok\n");

	/* Kernel fds keep working next to sockets: a pipe, and stdout. */
	int pfd[2];
	CHECK(pipe(pfd) == 0, "pipe");
	int s = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(s >= 0, "socket: %d", s);
	CHECK(s != pfd[0] && s != pfd[1] && s > 2 && s != ring.ring_fd, "socket %d collides", s);
	CHECK(write(pfd[1], "hi", 2) == 2, "pipe write");
	char b[2];
	CHECK(read(pfd[0], b, 2) == 2 && b[0] == 'h', "pipe read");
	int one = 1;
	CHECK(setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0, "setsockopt");
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0, .sin_addr = { htonl(INADDR_ANY) } };
	CHECK(bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind");
	CHECK(listen(s, 16) == 0, "listen");
	socklen_t sl = sizeof(sa);
	CHECK(getsockname(s, (struct sockaddr *)&sa, &sl) == 0 && ntohs(sa.sin_port) != 0, "getsockname");
	CHECK(close(s) == 0, "close socket");
	CHECK(close(pfd[0]) == 0 && close(pfd[1]) == 0, "close pipe");
	printf("fds ok\n");

	/* The raw io_uring_enter on the ring's fd: publish a NOP's SQE by hand
	 * (liburing's __io_uring_flush_sq), submit and wait for it; a timed wait
	 * through io_uring_enter2's getevents_arg, relative and absolute; an
	 * unknown flag; an fd that is no ring. */
	{
		struct io_uring_sqe *q = io_uring_get_sqe(&ring);
		io_uring_prep_nop(q);
		q->user_data = 77;
		io_uring_smp_store_release(ring.sq.ktail, ring.sq.sqe_tail);
		ring.sq.sqe_head = ring.sq.sqe_tail;
		int r = io_uring_enter(ring.ring_fd, 1, 1, IORING_ENTER_GETEVENTS, NULL);
		struct io_uring_cqe *c = NULL;
		int pr = io_uring_peek_cqe(&ring, &c);
		printf("raw enter: %d, cqe %d ud %llu res %d\n", r, pr, pr ? 0ULL : (unsigned long long)c->user_data,
		       pr ? 0 : c->res);
		if (!pr)
			io_uring_cqe_seen(&ring, c);
		struct __kernel_timespec ts = { .tv_nsec = 20 * 1000 * 1000 };
		struct io_uring_getevents_arg ga = { .ts = (unsigned long)&ts };
		double t0 = now_s();
		r = io_uring_enter2(ring.ring_fd, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, (void *)&ga,
				    sizeof(ga));
		double el = now_s() - t0;
		printf("raw timed wait: %d, waited about 20 ms: %d\n", r, el > 0.015 && el < 0.5);
		struct timespec mono;
		clock_gettime(CLOCK_MONOTONIC, &mono);
		struct __kernel_timespec past = { .tv_sec = mono.tv_sec - 1, .tv_nsec = 0 };
		ga.ts = (unsigned long)&past;
		t0 = now_s();
		r = io_uring_enter2(ring.ring_fd, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG | (1U << 5),
				    (void *)&ga, sizeof(ga));
		printf("raw absolute wait, a time past: %d, at once: %d\n", r, now_s() - t0 < 0.015);
		printf("raw enter, bad getevents_arg size: %d\n",
		       io_uring_enter2(ring.ring_fd, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, (void *)&ga, 8));
		printf("raw enter, unknown flag: %d\n", io_uring_enter(ring.ring_fd, 0, 0, 1U << 20, NULL));
		printf("raw enter, fd 0 (no ring): %d\n", io_uring_enter(0, 0, 0, 0, NULL));
		/* The raw io_uring_register on the ring's fd: a probe, and a buffer
		 * ring in memory that is not mapped. */
		struct io_uring_probe *pr2 = calloc(1, sizeof(*pr2) + 256 * sizeof(struct io_uring_probe_op));
		r = io_uring_register(ring.ring_fd, IORING_REGISTER_PROBE, pr2, 256);
		printf("raw register probe: %d, NOP supported %d\n", r,
		       !!(pr2->ops[IORING_OP_NOP].flags & IO_URING_OP_SUPPORTED));
		free(pr2);
		struct io_uring_buf_reg rb = { .ring_addr = 4096, .ring_entries = 8, .bgid = 3 };
		printf("raw register buf ring unmapped: %d\n",
		       io_uring_register(ring.ring_fd, IORING_REGISTER_PBUF_RING, &rb, 1));
		printf("raw register, fd 0 (no ring): %d\n", io_uring_register(0, IORING_REGISTER_PROBE, NULL, 0));
	}

	/* A buffer ring in memory that is not mapped: -EFAULT at registration
	 * (the kernel pins the pages then), not a fault later. */
	struct io_uring_buf_reg breg = { .ring_addr = 4096, .ring_entries = 32, .bgid = 1 };
	printf("buf ring at an unmapped page: %d\n", io_uring_register_buf_ring(&ring, &breg, 0));

	io_uring_queue_exit(&ring);

	/* A submission stops after an SQE that fails its checks unless the ring
	 * was set up with IORING_SETUP_SUBMIT_ALL (liburing's
	 * test/sq-space_left.c): then the rest stay in the SQ. In a chain only
	 * its last SQE failing stops it; a member that links on does not. */
	for (int all = 0; all < 2; all++) {
		struct io_uring r;
		CHECK(io_uring_queue_init(32, &r, all ? IORING_SETUP_SUBMIT_ALL : 0) == 0, "init");
		for (int i = 0; i < 7; i++) {
			struct io_uring_sqe *q = io_uring_get_sqe(&r);
			io_uring_prep_nop(q);
			q->user_data = i;
			if (i == 3)
				q->opcode = 0xfe;
		}
		int a = io_uring_submit(&r);
		int left = io_uring_sq_ready(&r);
		int b = io_uring_submit(&r);
		printf("submit_all=%d: bad opcode 4th of 7: submitted %d, left %d, then %d\n", all, a, left, b);
		/* A chain of 3 (then 2 NOPs) whose head, middle or last member fails. */
		for (int badi = 0; badi < 3; badi++) {
			for (int i = 0; i < 5; i++) {
				struct io_uring_sqe *q = io_uring_get_sqe(&r);
				io_uring_prep_nop(q);
				q->user_data = 10 + i;
				if (i < 2)
					q->flags |= IOSQE_IO_LINK;
				if (i == badi)
					q->ioprio = 1; /* a NOP takes no ioprio: -EINVAL at prep */
			}
			a = io_uring_submit(&r);
			left = io_uring_sq_ready(&r);
			b = io_uring_submit(&r);
			printf("submit_all=%d: chain of 3, member %d bad, 2 more: submitted %d, left %d, then %d\n", all,
			       badi, a, left, b);
		}
		int got = 0, bad = 0;
		struct io_uring_cqe *c;
		while (io_uring_peek_cqe(&r, &c) == 0) {
			got++;
			bad += c->res < 0;
			io_uring_cqe_seen(&r, c);
		}
		printf("submit_all=%d: %d CQEs, %d failed\n", all, got, bad);
		io_uring_queue_exit(&r);
	}
	printf("exit ok\n");
	return 0;
}
