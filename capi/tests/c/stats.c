/* ringline.h's extras, built with `pkg-config --cflags --libs ringline`
 * after scripts/install-capi.sh: ringline_is_ringline and ringline_get_stats. */
#include <ringline.h>
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
	struct io_uring ring;
	struct io_uring_cqe *cqe;
	if (io_uring_queue_init(8, &ring, 0) != 0)
		return 1;
	if (!ringline_is_ringline(&ring)) {
		fprintf(stderr, "not a ringline ring\n");
		return 1;
	}
	for (int i = 0; i < 3; i++) {
		io_uring_prep_nop(io_uring_get_sqe(&ring));
		io_uring_submit(&ring);
		if (io_uring_wait_cqe(&ring, &cqe) != 0)
			return 1;
		io_uring_cqe_seen(&ring, cqe);
	}
	struct ringline_stats s;
	int ret = ringline_get_stats(&ring, &s, sizeof(s));
	if (ret != 0 || s.sqes != 3 || s.cqes != 3) {
		fprintf(stderr, "stats: ret %d sqes %llu cqes %llu\n", ret,
			(unsigned long long)s.sqes, (unsigned long long)s.cqes);
		return 1;
	}
	struct io_uring other = { 0 };
	if (ringline_is_ringline(&other) || ringline_get_stats(&other, &s, sizeof(s)) != -EBADF)
		return 1;
	io_uring_queue_exit(&ring);
	printf("stats ok sqes=%llu cqes=%llu\n", (unsigned long long)s.sqes, (unsigned long long)s.cqes);
	return 0;
}
