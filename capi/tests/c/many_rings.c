/* Many rings in one process, as a thread-per-core server makes them. Each
 * ringline ring reserves address space for its connections' buffers; it is
 * sized by the fd limit (a process has no more sockets than fds), so with
 * a soft RLIMIT_NOFILE of 4096 a process holds 100 rings (before, about 15:
 * each reserved 8 TiB). Past what the address space holds, setup fails with
 * -ENOMEM, as the kernel's does when memory runs out, not -EINVAL.
 *
 *   many_rings        (ringline only)
 */
#include <liburing.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include "common.h"

#define RINGS 100

int main(void)
{
	static struct io_uring r[RINGS];
	struct rlimit lim;
	CHECK(getrlimit(RLIMIT_NOFILE, &lim) == 0, "getrlimit");
	struct rlimit small = { .rlim_cur = 4096, .rlim_max = lim.rlim_max };
	if (small.rlim_cur > lim.rlim_max)
		small.rlim_cur = lim.rlim_max;
	CHECK(setrlimit(RLIMIT_NOFILE, &small) == 0, "setrlimit");
	int n = 0;
	for (; n < RINGS; n++) {
		int ret = io_uring_queue_init(8, &r[n], 0);
		if (ret < 0) {
			printf("ring %d: %s\n", n, strerror(-ret));
			break;
		}
	}
	printf("rings with a 4096-fd limit: %d\n", n);
	/* Each works: a NOP through every one. */
	int ok = 0;
	for (int i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&r[i]);
		io_uring_prep_nop(sqe);
		sqe->user_data = i;
		struct io_uring_cqe *cqe;
		if (io_uring_submit_and_wait(&r[i], 1) == 1 && io_uring_peek_cqe(&r[i], &cqe) == 0 &&
		    cqe->user_data == (unsigned)i && cqe->res == 0) {
			ok++;
			io_uring_cqe_seen(&r[i], cqe);
		}
	}
	printf("NOPs through them: %d\n", ok);
	for (int i = 0; i < n; i++)
		io_uring_queue_exit(&r[i]);
	printf("many rings ok\n");
	return 0;
}
