/* A TCP proxy written against liburing's API, tested end to end:
 *
 *   client --> proxy (ring 1, thread 1) --> echo server
 *   (client and echo server: ring 2, thread 2, one event loop)
 *
 *   proxy PROXY_ADDR UPSTREAM_ADDR CONNS MSGS [sqpoll]
 *     kernel:   proxy 127.0.0.1 127.0.0.1 4 40
 *     ringline: proxy 10.0.0.1 10.0.0.2 4 40   (ring 1 is side A, ring 2 side B)
 *
 * The proxy accepts with multishot accept, connects upstream for each client,
 * and relays each direction with RECV then SEND (one in flight per
 * direction), closing both sides at EOF. Each client sends MSGS messages of
 * 1 B-8 KiB and checks every echo byte for byte. Prints "proxy ok ...".
 *
 * The backend loop keeps entering its ring until the proxy is done, as an
 * event loop does: on ringline's inline rings the network moves only inside
 * the ring's calls (as completions do with DEFER_TASKRUN), so a thread that
 * stopped entering its ring would leave its last close() unsent. */
#include <liburing.h>
#include "common.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>


#define MAXC 32
#define BUF 8192
#define TAG(t, i) (((uint64_t)(t) << 32) | (uint32_t)(i))
#define T(u) ((int)((u) >> 32))
#define I(u) ((int)((u) & 0xffffffff))

static struct io_uring pring, bring;
static int nconns, nmsgs;
static struct sockaddr_in proxy_addr, upstream_addr;
static int proxy_lfd, echo_lfd;
static pthread_barrier_t ready;
static atomic_int proxy_done;


static void wait_cqe(struct io_uring *r)
{
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts = { .tv_sec = 5 };
	int ret = io_uring_submit_and_wait_timeout(r, &cqe, 1, &ts, NULL);
	CHECK(ret >= 0, "wait: %d", ret);
}

/* A 10 ms wait that may end with nothing (the backend idling until the proxy ends). */
static void idle_wait(struct io_uring *r)
{
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts = { .tv_nsec = 10 * 1000 * 1000 };
	int ret = io_uring_submit_and_wait_timeout(r, &cqe, 1, &ts, NULL);
	CHECK(ret >= 0 || ret == -ETIME, "wait: %d", ret);
}

static int listener(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	CHECK(fd >= 0, "socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind");
	CHECK(listen(fd, 64) == 0, "listen");
	socklen_t l = sizeof(sa);
	CHECK(getsockname(fd, (struct sockaddr *)&sa, &l) == 0, "getsockname");
	return fd;
}

static int port_of(int fd)
{
	struct sockaddr_in sa;
	socklen_t l = sizeof(sa);
	CHECK(getsockname(fd, (struct sockaddr *)&sa, &l) == 0, "getsockname");
	return ntohs(sa.sin_port);
}

/* ---- the proxy (ring 1) ---- */

enum { P_ACCEPT = 1, P_CONNECT, P_RECV_C, P_SEND_U, P_RECV_U, P_SEND_C };
struct pair { int c, u, open; char cu[BUF], uc[BUF]; };

static void relay_recv(struct io_uring *r, struct pair *p, int i, int from_client)
{
	struct io_uring_sqe *s = sqe_of(r);
	if (from_client)
		io_uring_prep_recv(s, p->c, p->cu, BUF, 0);
	else
		io_uring_prep_recv(s, p->u, p->uc, BUF, 0);
	io_uring_sqe_set_data64(s, TAG(from_client ? P_RECV_C : P_RECV_U, i));
}

static void *proxy(void *arg)
{
	(void)arg;
	struct io_uring *r = &pring;
	struct pair *pairs = calloc(MAXC, sizeof(*pairs));
	int npairs = 0, closed = 0;
	struct io_uring_sqe *s = sqe_of(r);
	io_uring_prep_multishot_accept(s, proxy_lfd, NULL, NULL, 0);
	io_uring_sqe_set_data64(s, TAG(P_ACCEPT, 0));
	io_uring_submit(r);
	pthread_barrier_wait(&ready);
	while (closed < 2 * nconns) {
		wait_cqe(r);
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		io_uring_for_each_cqe(r, head, cqe) {
			n++;
			int i = I(cqe->user_data), res = cqe->res;
			struct pair *p = &pairs[i];
			switch (T(cqe->user_data)) {
			case P_ACCEPT:
				CHECK(res >= 0 && npairs < MAXC, "accept: %d", res);
				p = &pairs[npairs];
				p->c = res;
				p->u = socket(AF_INET, SOCK_STREAM, 0);
				CHECK(p->u >= 0, "upstream socket");
				s = sqe_of(r);
				io_uring_prep_connect(s, p->u, (struct sockaddr *)&upstream_addr, sizeof(upstream_addr));
				io_uring_sqe_set_data64(s, TAG(P_CONNECT, npairs));
				npairs++;
				break;
			case P_CONNECT:
				CHECK(res == 0, "upstream connect: %d", res);
				p->open = 2;
				relay_recv(r, p, i, 1);
				relay_recv(r, p, i, 0);
				break;
			case P_RECV_C:
			case P_RECV_U: {
				int from_client = T(cqe->user_data) == P_RECV_C;
				CHECK(res >= 0, "relay recv: %d", res);
				if (res == 0) {
					/* EOF one way: pass it on (shutdown), count the direction. */
					s = sqe_of(r);
					io_uring_prep_shutdown(s, from_client ? p->u : p->c, SHUT_WR);
					io_uring_sqe_set_data64(s, TAG(99, i));
					closed++;
					if (--p->open == 0) {
						close(p->c);
						close(p->u);
					}
					break;
				}
				s = sqe_of(r);
				if (from_client)
					io_uring_prep_send(s, p->u, p->cu, res, MSG_WAITALL);
				else
					io_uring_prep_send(s, p->c, p->uc, res, MSG_WAITALL);
				io_uring_sqe_set_data64(s, TAG(from_client ? P_SEND_U : P_SEND_C, i));
				break;
			}
			case P_SEND_U:
			case P_SEND_C:
				CHECK(res > 0, "relay send: %d", res);
				relay_recv(r, p, i, T(cqe->user_data) == P_SEND_U);
				break;
			case 99:
				break;
			}
		}
		io_uring_cq_advance(r, n);
	}
	free(pairs);
	atomic_store(&proxy_done, 1);
	return NULL;
}

/* ---- echo server and clients (ring 2) ---- */

enum { E_ACCEPT = 10, E_RECV, E_SEND, C_CONNECT, C_SEND, C_RECV };
struct econn { int fd; char buf[BUF]; };
struct cconn { int fd, msg, len, got; unsigned char tx[BUF], rx[BUF]; };

static int msg_len(int c, int m) { return pattern_len(c, m, BUF); }

static void csend(struct io_uring *r, struct cconn *k, int c)
{
	k->len = msg_len(c, k->msg);
	k->got = 0;
	fill(k->tx, k->len, c, k->msg);
	struct io_uring_sqe *s = sqe_of(r);
	io_uring_prep_send(s, k->fd, k->tx, k->len, MSG_WAITALL);
	io_uring_sqe_set_data64(s, TAG(C_SEND, c));
	s = sqe_of(r);
	io_uring_prep_recv(s, k->fd, k->rx, k->len, 0);
	io_uring_sqe_set_data64(s, TAG(C_RECV, c));
}

static unsigned long long total, sum;

static void *backend(void *arg)
{
	(void)arg;
	struct io_uring *r = &bring;
	struct econn *ec = calloc(MAXC, sizeof(*ec));
	struct cconn *cc = calloc(MAXC, sizeof(*cc));
	int naccepted = 0, eclosed = 0, cdone = 0;
	struct io_uring_sqe *s = sqe_of(r);
	io_uring_prep_multishot_accept(s, echo_lfd, NULL, NULL, 0);
	io_uring_sqe_set_data64(s, TAG(E_ACCEPT, 0));
	io_uring_submit(r);
	pthread_barrier_wait(&ready);
	for (int c = 0; c < nconns; c++) {
		cc[c].fd = socket(AF_INET, SOCK_STREAM, 0);
		s = sqe_of(r);
		io_uring_prep_connect(s, cc[c].fd, (struct sockaddr *)&proxy_addr, sizeof(proxy_addr));
		io_uring_sqe_set_data64(s, TAG(C_CONNECT, c));
	}
	while (cdone < nconns || eclosed < nconns || !atomic_load(&proxy_done)) {
		if (cdone < nconns || eclosed < nconns)
			wait_cqe(r);
		else
			idle_wait(r);
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		io_uring_for_each_cqe(r, head, cqe) {
			n++;
			int i = I(cqe->user_data), res = cqe->res;
			switch (T(cqe->user_data)) {
			case E_ACCEPT:
				CHECK(res >= 0 && naccepted < MAXC, "echo accept: %d", res);
				ec[naccepted].fd = res;
				s = sqe_of(r);
				io_uring_prep_recv(s, res, ec[naccepted].buf, BUF, 0);
				io_uring_sqe_set_data64(s, TAG(E_RECV, naccepted));
				naccepted++;
				break;
			case E_RECV:
				CHECK(res >= 0, "echo recv: %d", res);
				if (res == 0) {
					close(ec[i].fd);
					eclosed++;
					break;
				}
				s = sqe_of(r);
				io_uring_prep_send(s, ec[i].fd, ec[i].buf, res, MSG_WAITALL);
				io_uring_sqe_set_data64(s, TAG(E_SEND, i));
				break;
			case E_SEND:
				CHECK(res > 0, "echo send: %d", res);
				s = sqe_of(r);
				io_uring_prep_recv(s, ec[i].fd, ec[i].buf, BUF, 0);
				io_uring_sqe_set_data64(s, TAG(E_RECV, i));
				break;
			case C_CONNECT:
				CHECK(res == 0, "client connect: %d", res);
				csend(r, &cc[i], i);
				break;
			case C_SEND:
				CHECK(res == cc[i].len, "client send: %d", res);
				break;
			case C_RECV: {
				struct cconn *k = &cc[i];
				CHECK(res > 0, "client recv: %d", res);
				k->got += res;
				if (k->got < k->len) {
					s = sqe_of(r);
					io_uring_prep_recv(s, k->fd, k->rx + k->got, k->len - k->got, 0);
					io_uring_sqe_set_data64(s, TAG(C_RECV, i));
					break;
				}
				CHECK(memcmp(k->tx, k->rx, k->len) == 0, "echo differs: conn %d msg %d", i, k->msg);
				sum += hash(k->rx, k->len);
				total += k->len;
				if (++k->msg < nmsgs) {
					csend(r, k, i);
				} else {
					close(k->fd);
					cdone++;
				}
				break;
			}
			}
		}
		io_uring_cq_advance(r, n);
	}
	free(ec);
	free(cc);
	return NULL;
}

int main(int argc, char **argv)
{
	CHECK(argc == 5 || argc == 6, "usage: proxy PROXY_ADDR UPSTREAM_ADDR CONNS MSGS [sqpoll]");
	unsigned flags = argc == 6 && strcmp(argv[5], "sqpoll") == 0 ? IORING_SETUP_SQPOLL : 0;
	nconns = atoi(argv[3]);
	nmsgs = atoi(argv[4]);
	CHECK(nconns > 0 && nconns <= MAXC && nmsgs > 0, "counts");
	CHECK(io_uring_queue_init(256, &pring, flags) == 0, "proxy ring");
	CHECK(io_uring_queue_init(256, &bring, flags) == 0, "backend ring");
	proxy_lfd = listener(0);
	echo_lfd = listener(0);
	proxy_addr.sin_family = upstream_addr.sin_family = AF_INET;
	proxy_addr.sin_port = htons(port_of(proxy_lfd));
	upstream_addr.sin_port = htons(port_of(echo_lfd));
	CHECK(inet_pton(AF_INET, argv[1], &proxy_addr.sin_addr) == 1, "proxy addr");
	CHECK(inet_pton(AF_INET, argv[2], &upstream_addr.sin_addr) == 1, "upstream addr");
	pthread_barrier_init(&ready, NULL, 2);
	pthread_t pt, bt;
	pthread_create(&pt, NULL, proxy, NULL);
	pthread_create(&bt, NULL, backend, NULL);
	pthread_join(bt, NULL);
	pthread_join(pt, NULL);
	close(proxy_lfd);
	close(echo_lfd);
	io_uring_queue_exit(&bring);
	io_uring_queue_exit(&pring);
	printf("proxy ok conns=%d msgs=%d bytes=%llu sum=%llx\n", nconns, nmsgs, total, sum);
	return 0;
}
