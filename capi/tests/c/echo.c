/* An echo server and its clients written against liburing's API only, with
 * the socket calls: multishot accept, multishot recv over a provided-buffer
 * ring, send. The server and the client each have a ring and a thread; the
 * server ring is made first (on ringline's loopback wire that makes it side A).
 *
 *   echo ADDR CONNS MSGS [sqpoll]   (e.g. echo 127.0.0.1 4 50 on the kernel,
 *                              echo 10.0.0.1 4 50 on ringline's loopback wire)
 *
 *   echo serve PORT CONNS         the server alone: serves until CONNS
 *                                  connections have closed
 *   echo connect ADDR PORT CONNS MSGS   the client alone, against any server
 *
 * With "sqpoll" both rings are set up with IORING_SETUP_SQPOLL. With MSGS
 * written as a duration ("5s"), a benchmark: 64-byte messages, one in flight
 * per connection, for that long; prints requests/s and the round-trip
 * latency percentiles (scripts/bench-capi.sh).
 *
 * Each client connection sends MSGS messages of sizes 1..~16 KiB with a
 * pattern derived from (connection, message), waits for each echo and checks it
 * byte for byte. Prints "echo ok conns=C msgs=M bytes=B sum=S"; any failure
 * or a wait longer than 5 s exits non-zero. */
#include <liburing.h>
#include "common.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>


#define NBUFS 256
#define BUFSZ 4096
#define BGID 7
#define MAXMSG 16384
#define MAXCONNS 64

enum { T_ACCEPT = 1, T_RECV = 2, T_SEND = 3, T_CONNECT = 4, T_CSEND = 5, T_CRECV = 6 };
#define TAG(t, fd, x) (((uint64_t)(t) << 56) | ((uint64_t)(uint32_t)(fd) << 24) | ((uint64_t)(x) & 0xffffff))
#define TAG_T(u) ((int)((u) >> 56))
#define TAG_FD(u) ((int)(((u) >> 24) & 0xffffffff))
#define TAG_X(u) ((int)((u) & 0xffffff))

static struct io_uring srv_ring, cli_ring;
static int listen_fd, nconns, nmsgs;
/* Benchmark mode: run for bench_s seconds with 64-byte messages. */
static double bench_s;
static double bench_end;
#define MAXSAMPLES (1 << 22)
static float *lat_us;
static long nsamples;

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}
static struct sockaddr_in srv_addr;
/* The client starts once the server's accept is submitted (on ringline a
 * listening socket starts accepting when its ring first sees it). */
static pthread_barrier_t accept_armed;

static int wait_one(struct io_uring *ring, struct io_uring_cqe **cqe)
{
	struct __kernel_timespec ts = { .tv_sec = 5, .tv_nsec = 0 };
	int ret = io_uring_submit_and_wait_timeout(ring, cqe, 1, &ts, NULL);
	CHECK(ret >= 0, "wait: %d (%s)", ret, strerror(-ret));
	return 0;
}

/* Multishot recv on fd over the buffer ring (again after an ending CQE). */
static void arm_recv(struct io_uring *ring, int fd)
{
	struct io_uring_sqe *sqe = sqe_of(ring);
	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	io_uring_sqe_set_data64(sqe, TAG(T_RECV, fd, 0));
}

/* ---- server ---- */

static void *server(void *arg)
{
	(void)arg;
	struct io_uring *ring = &srv_ring;
	size_t brsz = NBUFS * sizeof(struct io_uring_buf);
	struct io_uring_buf_ring *br = mmap(NULL, brsz, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	CHECK(br != MAP_FAILED, "mmap");
	struct io_uring_buf_reg reg = { .ring_addr = (unsigned long)br, .ring_entries = NBUFS, .bgid = BGID };
	int ret = io_uring_register_buf_ring(ring, &reg, 0);
	CHECK(ret == 0, "register_buf_ring: %d", ret);
	char *bufs = malloc((size_t)NBUFS * BUFSZ);
	io_uring_buf_ring_init(br);
	for (int i = 0; i < NBUFS; i++)
		io_uring_buf_ring_add(br, bufs + (size_t)i * BUFSZ, BUFSZ, i, io_uring_buf_ring_mask(NBUFS), i);
	io_uring_buf_ring_advance(br, NBUFS);

	struct io_uring_sqe *sqe = sqe_of(ring);
	io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, 0);
	io_uring_sqe_set_data64(sqe, TAG(T_ACCEPT, listen_fd, 0));
	ret = io_uring_submit(ring);
	CHECK(ret == 1, "submit accept: %d", ret);
	pthread_barrier_wait(&accept_armed);

	int closed = 0, sends = 0;
	while (closed < nconns || sends > 0) {
		struct io_uring_cqe *cqe;
		wait_one(ring, &cqe);
		unsigned head, seen = 0;
		io_uring_for_each_cqe(ring, head, cqe) {
			seen++;
			uint64_t u = cqe->user_data;
			int res = cqe->res;
			switch (TAG_T(u)) {
			case T_ACCEPT:
				CHECK(res >= 0, "accept: %d", res);
				CHECK(cqe->flags & IORING_CQE_F_MORE, "accept multishot ended");
				arm_recv(ring, res);
				break;
			case T_RECV: {
				int fd = TAG_FD(u);
				if (res == -ENOBUFS) {
					/* All buffers out (with sends): re-arm after they come back. */
					CHECK(sends > 0, "ENOBUFS with nothing in flight");
					arm_recv(ring, fd);
					break;
				}
				CHECK(res >= 0, "recv: %d", res);
				if (res == 0) {
					CHECK(!(cqe->flags & IORING_CQE_F_MORE), "EOF with MORE");
					close(fd);
					closed++;
					break;
				}
				CHECK(cqe->flags & IORING_CQE_F_BUFFER, "no buffer");
				int bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
				sqe = sqe_of(ring);
				io_uring_prep_send(sqe, fd, bufs + (size_t)bid * BUFSZ, res, MSG_NOSIGNAL);
				io_uring_sqe_set_data64(sqe, TAG(T_SEND, fd, bid));
				sends++;
				if (!(cqe->flags & IORING_CQE_F_MORE)) {
					arm_recv(ring, fd);
				}
				break;
			}
			case T_SEND: {
				int bid = TAG_X(u);
				/* A short send would lose bytes; the client's byte compare catches it. */
				CHECK(res > 0, "send: %d", res);
				sends--;
				io_uring_buf_ring_add(br, bufs + (size_t)bid * BUFSZ, BUFSZ, bid, io_uring_buf_ring_mask(NBUFS), 0);
				io_uring_buf_ring_advance(br, 1);
				break;
			}
			default:
				CHECK(0, "server: unexpected tag %llx", (unsigned long long)u);
			}
		}
		io_uring_cq_advance(ring, seen);
	}
	return NULL;
}

/* ---- client ---- */

static int msg_len(int c, int m)
{
	if (bench_s > 0)
		return 64;
	return pattern_len(c, m, MAXMSG);
}

struct conn { int fd, msg, got, len; double sent; unsigned char tx[MAXMSG], rx[MAXMSG]; };

static unsigned long long total_bytes, sum;

static void client_send(struct io_uring *ring, struct conn *k, int c)
{
	k->len = msg_len(c, k->msg);
	k->got = 0;
	fill(k->tx, k->len, c, k->msg);
	if (bench_s > 0)
		k->sent = now_s();
	struct io_uring_sqe *sqe = sqe_of(ring);
	io_uring_prep_send(sqe, k->fd, k->tx, k->len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, TAG(T_CSEND, c, 0));
	sqe = sqe_of(ring);
	io_uring_prep_recv(sqe, k->fd, k->rx, k->len, 0);
	io_uring_sqe_set_data64(sqe, TAG(T_CRECV, c, 0));
}

static void *client(void *arg)
{
	(void)arg;
	struct io_uring *ring = &cli_ring;
	pthread_barrier_wait(&accept_armed);
	struct conn *conns = calloc(nconns, sizeof(*conns));
	for (int c = 0; c < nconns; c++) {
		conns[c].fd = socket(AF_INET, SOCK_STREAM, 0);
		CHECK(conns[c].fd >= 0, "socket");
		struct io_uring_sqe *sqe = sqe_of(ring);
		io_uring_prep_connect(sqe, conns[c].fd, (struct sockaddr *)&srv_addr, sizeof(srv_addr));
		io_uring_sqe_set_data64(sqe, TAG(T_CONNECT, c, 0));
	}
	int done = 0;
	while (done < nconns) {
		struct io_uring_cqe *cqe;
		wait_one(ring, &cqe);
		unsigned head, seen = 0;
		io_uring_for_each_cqe(ring, head, cqe) {
			seen++;
			uint64_t u = cqe->user_data;
			int c = TAG_FD(u), res = cqe->res;
			struct conn *k = &conns[c];
			switch (TAG_T(u)) {
			case T_CONNECT:
				CHECK(res == 0, "connect %d: %d (%s)", c, res, strerror(-res));
				client_send(ring, k, c);
				break;
			case T_CSEND:
				CHECK(res == k->len, "client send %d: %d of %d", c, res, k->len);
				break;
			case T_CRECV: {
				CHECK(res > 0, "client recv %d: %d", c, res);
				k->got += res;
				if (k->got < k->len) {
					struct io_uring_sqe *sqe = sqe_of(ring);
					io_uring_prep_recv(sqe, k->fd, k->rx + k->got, k->len - k->got, 0);
					io_uring_sqe_set_data64(sqe, TAG(T_CRECV, c, 0));
					break;
				}
				CHECK(memcmp(k->tx, k->rx, k->len) == 0, "echo differs: conn %d msg %d", c, k->msg);
				if (bench_s > 0) {
					double t = now_s();
					if (nsamples < MAXSAMPLES)
						lat_us[nsamples++] = (float)((t - k->sent) * 1e6);
					if (t < bench_end) {
						k->msg++;
						client_send(ring, k, c);
					} else {
						close(k->fd);
						done++;
					}
					break;
				}
				total_bytes += k->len;
				/* Order-independent across connections: a sum of per-message hashes. */
				sum += hash(k->rx, k->len);
				if (++k->msg < nmsgs) {
					client_send(ring, k, c);
				} else {
					close(k->fd);
					done++;
				}
				break;
			}
			default:
				CHECK(0, "client: unexpected tag %llx", (unsigned long long)u);
			}
		}
		io_uring_cq_advance(ring, seen);
	}
	io_uring_submit(ring);
	free(conns);
	return NULL;
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return (x > y) - (x < y);
}

static void listen_on(int port)
{
	listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(listen_fd >= 0, "socket");
	int one = 1;
	CHECK(setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0, "setsockopt");
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr = { htonl(INADDR_ANY) } };
	CHECK(bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind: %s", strerror(errno));
	CHECK(listen(listen_fd, 128) == 0, "listen");
}

/* `echo serve` and `echo connect`: one side alone, on one ring. */
static int one_side(int argc, char **argv)
{
	int ret;
	pthread_barrier_init(&accept_armed, NULL, 1);
	if (strcmp(argv[1], "serve") == 0) {
		CHECK(argc == 4, "usage: echo serve PORT CONNS");
		nconns = atoi(argv[3]);
		ret = io_uring_queue_init(256, &srv_ring, 0);
		CHECK(ret == 0, "server ring: %d", ret);
		listen_on(atoi(argv[2]));
		printf("listening on %s\n", argv[2]);
		fflush(stdout);
		server(NULL);
		close(listen_fd);
		io_uring_queue_exit(&srv_ring);
		printf("served conns=%d\n", nconns);
		return 0;
	}
	CHECK(argc == 6, "usage: echo connect ADDR PORT CONNS MSGS");
	nconns = atoi(argv[4]);
	nmsgs = atoi(argv[5]);
	CHECK(nconns > 0 && nconns <= MAXCONNS && nmsgs > 0, "bad counts");
	srv_addr.sin_family = AF_INET;
	srv_addr.sin_port = htons(atoi(argv[3]));
	CHECK(inet_pton(AF_INET, argv[2], &srv_addr.sin_addr) == 1, "address %s", argv[2]);
	ret = io_uring_queue_init(256, &cli_ring, 0);
	CHECK(ret == 0, "client ring: %d", ret);
	client(NULL);
	io_uring_queue_exit(&cli_ring);
	printf("echo ok conns=%d msgs=%d bytes=%llu sum=%llx\n", nconns, nmsgs, total_bytes, sum);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "serve") == 0 || strcmp(argv[1], "connect") == 0))
		return one_side(argc, argv);
	CHECK(argc == 4 || argc == 5, "usage: echo ADDR CONNS MSGS [sqpoll]");
	unsigned flags = argc == 5 && strcmp(argv[4], "sqpoll") == 0 ? IORING_SETUP_SQPOLL : 0;
	nconns = atoi(argv[2]);
	nmsgs = atoi(argv[3]);
	if (argv[3][strlen(argv[3]) - 1] == 's') {
		bench_s = atof(argv[3]);
		nmsgs = 1;
		lat_us = malloc(sizeof(float) * MAXSAMPLES);
	}
	CHECK(nconns > 0 && nconns <= MAXCONNS && nmsgs > 0, "bad counts");

	struct io_uring_params p;
	int ret;
	memset(&p, 0, sizeof(p));
	p.flags = flags;
	p.sq_thread_idle = 100;
	ret = io_uring_queue_init_params(256, &srv_ring, &p);
	CHECK(ret == 0, "server ring: %d", ret);
	memset(&p, 0, sizeof(p));
	p.flags = flags;
	p.sq_thread_idle = 100;
	ret = io_uring_queue_init_params(256, &cli_ring, &p);
	CHECK(ret == 0, "client ring: %d", ret);

	listen_on(0);
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	CHECK(getsockname(listen_fd, (struct sockaddr *)&sa, &sl) == 0, "getsockname");
	srv_addr.sin_family = AF_INET;
	srv_addr.sin_port = sa.sin_port;
	CHECK(inet_pton(AF_INET, argv[1], &srv_addr.sin_addr) == 1, "address %s", argv[1]);

	pthread_t st, ct;
	pthread_barrier_init(&accept_armed, NULL, 2);
	pthread_create(&st, NULL, server, NULL);
	double t0 = now_s();
	bench_end = t0 + bench_s;
	pthread_create(&ct, NULL, client, NULL);
	pthread_join(ct, NULL);
	pthread_join(st, NULL);
	close(listen_fd);
	io_uring_queue_exit(&cli_ring);
	io_uring_queue_exit(&srv_ring);
	if (bench_s > 0) {
		double el = now_s() - t0;
		qsort(lat_us, nsamples, sizeof(float), cmp_float);
		printf("bench conns=%d seconds=%.2f requests=%ld req_per_s=%.0f p50_us=%.1f p99_us=%.1f\n",
		       nconns, el, nsamples, nsamples / el, lat_us[nsamples / 2], lat_us[nsamples * 99 / 100]);
		return 0;
	}
	printf("echo ok conns=%d msgs=%d bytes=%llu sum=%llx\n", nconns, nmsgs, total_bytes, sum);
	return 0;
}
