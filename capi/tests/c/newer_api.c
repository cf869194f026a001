/* What liburing 2.4-2.9 added, and what such programs rely on: rings the
 * library maps (io_uring_setup_buf_ring, io_uring_free_buf_ring), a buffer
 * ring's head, the minimum-timeout waits, NAPI and clock registration, the
 * feature bits they check, DEFER_TASKRUN's rules (its setup checks; a plain
 * submit runs no task work, so a receive cannot take a provided buffer while
 * the program is still walking CQEs), and what a timed wait returns when
 * fewer CQEs than asked for are there.
 *
 *   newer_api ADDR PORT     (127.0.0.1 on the kernel, 10.0.0.1 on ringline)
 *
 * Built against Debian's liburing 2.3, which has none of the 2.4+ functions:
 * they are declared weak here. Linked to libringline they are libringline's;
 * linked to liburing 2.3 they are missing, and the fallbacks below do what
 * liburing 2.4+ does, over 2.3's functions and the raw register and enter
 * calls, so the kernel answers. The output must be the same. stderr says
 * which ran ("api: library" or "api: fallback").
 */
#include <liburing.h>
#include <errno.h>
static struct io_uring srv, cli;
#define TWO_RINGS
#include "common.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IORING_FEAT_RECVSEND_BUNDLE
#define IORING_FEAT_RECVSEND_BUNDLE (1U << 14)
#endif
#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1U << 15)
#endif
#define REG_PBUF_STATUS 26
#define REG_NAPI 27
#define UNREG_NAPI 28
#define REG_CLOCK 29

struct napi_arg { uint32_t busy_poll_to; uint8_t prefer_busy_poll, opcode, pad[2]; uint32_t op_param, resv; };
struct clock_arg { uint32_t clockid, resv[3]; };
struct buf_status { uint32_t buf_group, head, resv[8]; };

/* liburing 2.4+ (weak: absent from liburing 2.3, present in libringline). */
#ifndef IO_URING_VERSION_MAJOR
struct io_uring_buf_ring *io_uring_setup_buf_ring(struct io_uring *, unsigned, int, unsigned, int *) __attribute__((weak));
int io_uring_free_buf_ring(struct io_uring *, struct io_uring_buf_ring *, unsigned, int) __attribute__((weak));
int io_uring_buf_ring_head(struct io_uring *, int, uint16_t *) __attribute__((weak));
int io_uring_register_napi(struct io_uring *, struct napi_arg *) __attribute__((weak));
int io_uring_unregister_napi(struct io_uring *, struct napi_arg *) __attribute__((weak));
int io_uring_register_clock(struct io_uring *, struct clock_arg *) __attribute__((weak));
int io_uring_submit_and_wait_min_timeout(struct io_uring *, struct io_uring_cqe **, unsigned, struct __kernel_timespec *, unsigned, sigset_t *) __attribute__((weak));
int io_uring_wait_cqes_min_timeout(struct io_uring *, struct io_uring_cqe **, unsigned, struct __kernel_timespec *, unsigned, sigset_t *) __attribute__((weak));
int io_uring_major_version(void) __attribute__((weak));
int io_uring_minor_version(void) __attribute__((weak));
bool io_uring_check_version(int, int) __attribute__((weak));
#endif
/* Declared by 2.3's header, exported only from 2.4 on. */
int io_uring_enable_rings(struct io_uring *) __attribute__((weak));
#define REG_ENABLE_RINGS 12

/* The fallbacks: liburing 2.4+'s behaviour over liburing 2.3 and the kernel. */
static struct io_uring_buf_ring *fb_setup_buf_ring(struct io_uring *ring, unsigned n, int bgid, unsigned flags, int *err)
{
	if (io_uring_setup_buf_ring)
		return io_uring_setup_buf_ring(ring, n, bgid, flags, err);
	size_t sz = (size_t)n * sizeof(struct io_uring_buf);
	void *br = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (br == MAP_FAILED) {
		*err = -errno;
		return NULL;
	}
	/* 2.3 ignores its flags argument and calls reg.flags `pad`; 2.4+ sets it. */
	struct io_uring_buf_reg reg = { .ring_addr = (unsigned long)br, .ring_entries = n, .bgid = bgid, .pad = flags };
	*err = io_uring_register_buf_ring(ring, &reg, 0);
	if (*err) {
		munmap(br, sz);
		return NULL;
	}
	io_uring_buf_ring_init(br);
	return br;
}

static int fb_free_buf_ring(struct io_uring *ring, struct io_uring_buf_ring *br, unsigned n, int bgid)
{
	if (io_uring_free_buf_ring)
		return io_uring_free_buf_ring(ring, br, n, bgid);
	int ret = io_uring_unregister_buf_ring(ring, bgid);
	if (ret)
		return ret;
	munmap(br, (size_t)n * sizeof(struct io_uring_buf));
	return 0;
}

/* liburing's do_register: the raw call (2.3's wrapper returns -errno). */
static int raw_register(struct io_uring *ring, unsigned op, void *arg, unsigned nr)
{
	return io_uring_register(ring->ring_fd, op, arg, nr);
}

static int fb_buf_ring_head(struct io_uring *ring, int group, uint16_t *head)
{
	if (io_uring_buf_ring_head)
		return io_uring_buf_ring_head(ring, group, head);
	struct buf_status s = { .buf_group = group };
	int ret = raw_register(ring, REG_PBUF_STATUS, &s, 1);
	if (!ret)
		*head = s.head;
	return ret;
}

static int fb_register_napi(struct io_uring *ring, struct napi_arg *n)
{
	return io_uring_register_napi ? io_uring_register_napi(ring, n) : raw_register(ring, REG_NAPI, n, 1);
}

static int fb_unregister_napi(struct io_uring *ring, struct napi_arg *n)
{
	return io_uring_unregister_napi ? io_uring_unregister_napi(ring, n) : raw_register(ring, UNREG_NAPI, n, 1);
}

static int fb_register_clock(struct io_uring *ring, struct clock_arg *c)
{
	return io_uring_register_clock ? io_uring_register_clock(ring, c) : raw_register(ring, REG_CLOCK, c, 0);
}

/* liburing 2.8's waits with min_wait_usec: IORING_ENTER_EXT_ARG with the
 * minimum in io_uring_getevents_arg's third word (`pad` in 2.3's header),
 * then the first CQE if there is one. */
static int fb_wait_min(struct io_uring *ring, struct io_uring_cqe **cqe, unsigned submit, unsigned wait_nr,
		       struct __kernel_timespec *ts, unsigned min_us)
{
	struct io_uring_getevents_arg arg = { .sigmask_sz = _NSIG / 8, .pad = min_us, .ts = (unsigned long)ts };
	int ret = io_uring_enter2(ring->ring_fd, submit, wait_nr, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
				  (sigset_t *)&arg, sizeof(arg));
	if (ret < 0 && ret != -ETIME)
		return ret;
	*cqe = NULL;
	if (io_uring_peek_cqe(ring, cqe) == 0 && *cqe)
		return 0;
	return -ETIME;
}

static int fb_submit_and_wait_min_timeout(struct io_uring *ring, struct io_uring_cqe **cqe, unsigned wait_nr,
					  struct __kernel_timespec *ts, unsigned min_us)
{
	if (io_uring_submit_and_wait_min_timeout)
		return io_uring_submit_and_wait_min_timeout(ring, cqe, wait_nr, ts, min_us, NULL);
	/* Publish the SQEs without entering (liburing's __io_uring_flush_sq). */
	struct io_uring_sq *sq = &ring->sq;
	unsigned n = sq->sqe_tail - sq->sqe_head;
	sq->sqe_head = sq->sqe_tail;
	io_uring_smp_store_release(sq->ktail, sq->sqe_tail);
	int ret = fb_wait_min(ring, cqe, n, wait_nr, ts, min_us);
	return ret < 0 ? ret : (int)n;
}

static int fb_wait_cqes_min_timeout(struct io_uring *ring, struct io_uring_cqe **cqe, unsigned wait_nr,
				    struct __kernel_timespec *ts, unsigned min_us)
{
	if (io_uring_wait_cqes_min_timeout)
		return io_uring_wait_cqes_min_timeout(ring, cqe, wait_nr, ts, min_us, NULL);
	return fb_wait_min(ring, cqe, 0, wait_nr, ts, min_us);
}

/* The multishot receive's CQEs (user_data 3), in order. */
static int recv_res[16], nrecv, recv_seen;
static unsigned recv_flags[16];

static void keep_recv(struct io_uring_cqe *cqe)
{
	if (cqe->user_data != 3)
		return;
	CHECK(nrecv < 16, "too many receive CQEs");
	recv_res[nrecv] = cqe->res;
	recv_flags[nrecv++] = cqe->flags;
}

/* The next CQE of the multishot receive, within 5 s; its flags in *flags. */
static int next_recv(unsigned *flags)
{
	for (int i = 0; recv_seen == nrecv; i++) {
		CHECK(i < 2500, "no receive CQE in 5 s");
		reap(&srv);
	}
	*flags = recv_flags[recv_seen];
	return recv_res[recv_seen++];
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void print_napi(const char *what, int ret, struct napi_arg *n)
{
	printf("%s: %d, arg now busy_poll_to=%u prefer=%u op_param=%u\n", what, ret, n->busy_poll_to,
	       n->prefer_busy_poll, n->op_param);
}

int main(int argc, char **argv)
{
	CHECK(argc == 3, "usage: newer_api ADDR PORT");
	on_cqe = keep_recv;
	fprintf(stderr, "api: %s\n", io_uring_setup_buf_ring ? "library" : "fallback");
	if (io_uring_major_version) {
		CHECK(io_uring_major_version() == 2 && io_uring_minor_version() >= 9, "version %d.%d",
		      io_uring_major_version(), io_uring_minor_version());
		CHECK(!io_uring_check_version(2, 9) && io_uring_check_version(3, 0), "check_version");
	}

	/* DEFER_TASKRUN's setup rules. */
	struct io_uring r;
	struct io_uring_params p = { .flags = IORING_SETUP_DEFER_TASKRUN };
	printf("DEFER_TASKRUN without SINGLE_ISSUER: %d\n", io_uring_queue_init_params(8, &r, &p));
	p = (struct io_uring_params){ .flags = IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_SQPOLL };
	printf("DEFER_TASKRUN with SQPOLL: %d\n", io_uring_queue_init_params(8, &r, &p));

	/* The server ring defers task work, as the programs that use it do. */
	p = (struct io_uring_params){ .flags = IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SINGLE_ISSUER };
	CHECK(io_uring_queue_init_params(32, &srv, &p) == 0, "init srv");
	CHECK(io_uring_queue_init(32, &cli, 0) == 0, "init cli");
	printf("features: FAST_POLL %d RECVSEND_BUNDLE %d MIN_TIMEOUT %d\n", !!(p.features & IORING_FEAT_FAST_POLL),
	       !!(p.features & IORING_FEAT_RECVSEND_BUNDLE), !!(srv.features & IORING_FEAT_MIN_TIMEOUT));
	printf("enable_rings: %d\n", io_uring_enable_rings ? io_uring_enable_rings(&srv)
						      : raw_register(&srv, REG_ENABLE_RINGS, NULL, 0));

	/* Buffer rings the library maps. */
	int err = 1;
	struct io_uring_buf_ring *br = fb_setup_buf_ring(&srv, 8, 1, 0, &err);
	printf("setup_buf_ring(8 entries, group 1): %s, err %d\n", br ? "ring" : "null", err);
	CHECK(br, "setup_buf_ring");
	struct io_uring_buf_ring *dup = fb_setup_buf_ring(&srv, 8, 1, 0, &err);
	printf("setup_buf_ring(group 1 again): %s, err %d\n", dup ? "ring" : "null", err);
	dup = fb_setup_buf_ring(&srv, 3, 2, 0, &err);
	printf("setup_buf_ring(3 entries): %s, err %d\n", dup ? "ring" : "null", err);
	dup = fb_setup_buf_ring(&srv, 8, 2, 0x80, &err);
	printf("setup_buf_ring(unknown flag): %s, err %d\n", dup ? "ring" : "null", err);
	static char bufs[8][64];
	for (int i = 0; i < 8; i++)
		io_uring_buf_ring_add(br, bufs[i], sizeof(bufs[i]), i, io_uring_buf_ring_mask(8), i);
	io_uring_buf_ring_advance(br, 8);
	uint16_t head = 99;
	int ret = fb_buf_ring_head(&srv, 1, &head);
	printf("buf_ring_head(group 1): %d, head %u\n", ret, head);
	printf("buf_ring_head(group 9): %d\n", fb_buf_ring_head(&srv, 9, &head));

	/* A connection: the listener from libc, the rest through the rings. */
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(lfd >= 0, "socket");
	int one = 1;
	CHECK(setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0, "setsockopt");
	struct sockaddr_in any = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
	struct sockaddr_in dst = any;
	CHECK(inet_pton(AF_INET, argv[1], &dst.sin_addr) == 1, "addr");
	CHECK(bind(lfd, (struct sockaddr *)&any, sizeof(any)) == 0, "bind");
	CHECK(listen(lfd, 8) == 0, "listen");
	int cfd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(cfd >= 0, "socket");
	int afd = connect_pair(lfd, cfd, &dst);
	struct io_uring_sqe *sqe;

	/* A multishot receive over the ring, armed before the data comes. */
	sqe = io_uring_get_sqe(&srv);
	io_uring_prep_recv_multishot(sqe, afd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = 1;
	sqe->user_data = 3;
	io_uring_submit(&srv);
	char msg[100];
	fill((unsigned char *)msg, sizeof(msg), 1, 1);
	sqe = io_uring_get_sqe(&cli);
	io_uring_prep_send(sqe, cfd, msg, sizeof(msg), 0);
	sqe->user_data = 4;
	CHECK(io_uring_submit_and_wait(&cli, 1) == 1, "send submit");
	struct io_uring_cqe *cqe;
	CHECK(io_uring_peek_cqe(&cli, &cqe) == 0 && cqe->user_data == 4 && cqe->res == sizeof(msg), "send");
	io_uring_cqe_seen(&cli, cqe);
	/* Let the client's engine put the segment on the wire (a no-op on the
	 * kernel, where the send already delivered it). */
	io_uring_get_events(&cli);
	usleep(20 * 1000);
	/* A plain submit (no GETEVENTS) of a NOP: the NOP completes at once;
	 * the arrived data completes nothing until the program asks for events. */
	sqe = io_uring_get_sqe(&srv);
	io_uring_prep_nop(sqe);
	sqe->user_data = 5;
	CHECK(io_uring_submit(&srv) == 1, "nop submit");
	printf("after a plain submit: %u CQE ready (the NOP's)\n", io_uring_cq_ready(&srv));
	CHECK(wait_for(5) == 0, "nop");
	int got = 0, n = 0;
	while (got < (int)sizeof(msg)) {
		unsigned fl;
		ret = next_recv(&fl);
		CHECK(ret > 0, "recv: %d", ret);
		unsigned bid = fl >> IORING_CQE_BUFFER_SHIFT;
		CHECK(memcmp(bufs[bid], msg + got, ret) == 0, "bytes");
		printf("recv %d: %d B in buffer %u, more %d\n", n++, ret, bid, !!(fl & IORING_CQE_F_MORE));
		got += ret;
	}
	ret = fb_buf_ring_head(&srv, 1, &head);
	printf("buf_ring_head(group 1) after: %d, head %u\n", ret, head);

	/* Timed waits that see fewer CQEs than they asked for. */
	sqe = io_uring_get_sqe(&cli);
	io_uring_prep_nop(sqe);
	sqe->user_data = 6;
	io_uring_submit(&cli);
	struct __kernel_timespec ts = { .tv_nsec = 20 * 1000 * 1000 };
	cqe = NULL;
	ret = io_uring_wait_cqes(&cli, &cqe, 2, &ts, NULL);
	printf("wait_cqes(2, 20 ms) with one ready: %d, cqe %llu\n", ret, cqe ? (unsigned long long)cqe->user_data : 0ULL);
	if (cqe)
		io_uring_cqe_seen(&cli, cqe);
	ret = io_uring_wait_cqes(&cli, &cqe, 1, &ts, NULL);
	printf("wait_cqes(1, 20 ms) with none: %d\n", ret);

	/* Minimum timeouts: a 5 s wait for 4 that gives up after 10 ms with one. */
	sqe = io_uring_get_sqe(&cli);
	io_uring_prep_nop(sqe);
	sqe->user_data = 7;
	struct __kernel_timespec five = { .tv_sec = 5 };
	double t0 = now_s();
	cqe = NULL;
	ret = fb_submit_and_wait_min_timeout(&cli, &cqe, 4, &five, 10 * 1000);
	printf("submit_and_wait_min_timeout(4, 5 s, min 10 ms): %d, cqe %llu, under 2 s %d\n", ret,
	       cqe ? (unsigned long long)cqe->user_data : 0ULL, now_s() - t0 < 2);
	if (cqe)
		io_uring_cqe_seen(&cli, cqe);
	t0 = now_s();
	ret = fb_wait_cqes_min_timeout(&cli, &cqe, 1, NULL, 10 * 1000);
	printf("wait_cqes_min_timeout(1, no timeout, min 10 ms) with none: %d, under 2 s %d\n", ret, now_s() - t0 < 2);

	/* NAPI and clock registration. */
	struct napi_arg na = { .busy_poll_to = 100, .prefer_busy_poll = 1 };
	print_napi("register_napi(100 us, prefer, dynamic)", fb_register_napi(&srv, &na), &na);
	na = (struct napi_arg){ .busy_poll_to = 50, .op_param = 1 };
	print_napi("register_napi(50 us, static)", fb_register_napi(&srv, &na), &na);
	na = (struct napi_arg){ .busy_poll_to = 50, .op_param = 7 };
	print_napi("register_napi(tracking 7)", fb_register_napi(&srv, &na), &na);
	na = (struct napi_arg){ .opcode = 9 };
	print_napi("register_napi(opcode 9)", fb_register_napi(&srv, &na), &na);
	na = (struct napi_arg){ .resv = 1 };
	print_napi("register_napi(resv set)", fb_register_napi(&srv, &na), &na);
	na = (struct napi_arg){ 0 };
	print_napi("unregister_napi", fb_unregister_napi(&srv, &na), &na);
	print_napi("unregister_napi again", fb_unregister_napi(&srv, &na), &na);
	struct clock_arg ck = { .clockid = CLOCK_BOOTTIME };
	printf("register_clock(BOOTTIME): %d\n", fb_register_clock(&srv, &ck));
	ck.clockid = CLOCK_MONOTONIC;
	printf("register_clock(MONOTONIC): %d\n", fb_register_clock(&srv, &ck));
	ck.clockid = CLOCK_REALTIME;
	printf("register_clock(REALTIME): %d\n", fb_register_clock(&srv, &ck));
	ck = (struct clock_arg){ .clockid = CLOCK_MONOTONIC, .resv = { 0, 1 } };
	printf("register_clock(resv set): %d\n", fb_register_clock(&srv, &ck));

	struct io_uring_sync_cancel_reg sc = { .addr = 12345, .timeout = { .tv_sec = -1, .tv_nsec = -1 } };
	printf("register_sync_cancel(unknown user_data): %d\n", io_uring_register_sync_cancel(&srv, &sc));
	sc.addr = 3;
	printf("register_sync_cancel(the multishot receive): %d\n", io_uring_register_sync_cancel(&srv, &sc));
	unsigned fl;
	ret = next_recv(&fl);
	printf("the receive ends: %d, more %d\n", ret, !!(fl & IORING_CQE_F_MORE));

	printf("free_buf_ring(group 1): %d\n", fb_free_buf_ring(&srv, br, 8, 1));
	printf("buf_ring_head(group 1) freed: %d\n", fb_buf_ring_head(&srv, 1, &head));
	close(cfd);
	close(afd);
	close(lfd);
	io_uring_queue_exit(&cli);
	io_uring_queue_exit(&srv);
	printf("newer api ok\n");
	return 0;
}
