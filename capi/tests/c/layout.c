/* Prints sizeof/offsetof of liburing's structs as the C compiler sees them
 * (Debian's liburing-dev headers); tests/c_programs.rs compares the output
 * with capi/src/uring.rs's assertions. */
#include <liburing.h>
#include <stddef.h>
#include <stdio.h>

#define P(name, value) printf("%s %zu\n", name, (size_t)(value))

int main(void)
{
	P("sq.size", sizeof(struct io_uring_sq));
	P("sq.sqes", offsetof(struct io_uring_sq, sqes));
	P("sq.sqe_head", offsetof(struct io_uring_sq, sqe_head));
	P("sq.sqe_tail", offsetof(struct io_uring_sq, sqe_tail));
	P("sq.ring_sz", offsetof(struct io_uring_sq, ring_sz));
	P("sq.ring_ptr", offsetof(struct io_uring_sq, ring_ptr));
	P("sq.ring_mask", offsetof(struct io_uring_sq, ring_mask));
	P("sq.pad", offsetof(struct io_uring_sq, pad));
	P("cq.size", sizeof(struct io_uring_cq));
	P("cq.cqes", offsetof(struct io_uring_cq, cqes));
	P("cq.ring_mask", offsetof(struct io_uring_cq, ring_mask));
	P("cq.pad", offsetof(struct io_uring_cq, pad));
	P("ring.size", sizeof(struct io_uring));
	P("ring.cq", offsetof(struct io_uring, cq));
	P("ring.flags", offsetof(struct io_uring, flags));
	P("ring.ring_fd", offsetof(struct io_uring, ring_fd));
	P("ring.features", offsetof(struct io_uring, features));
	P("ring.enter_ring_fd", offsetof(struct io_uring, enter_ring_fd));
	P("ring.int_flags", offsetof(struct io_uring, int_flags));
	P("ring.pad2", offsetof(struct io_uring, pad2));
	P("probe_op.size", sizeof(struct io_uring_probe_op));
	P("probe.size", sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op));
	return 0;
}
