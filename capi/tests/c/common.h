/* What the C test programs share: the failure check, an SQE that submits
 * when the SQ is full, and the message pattern and its hash (the same on
 * every stack, so outputs can be compared). Only liburing's API. */
#ifndef RINGLINE_TEST_COMMON_H
#define RINGLINE_TEST_COMMON_H

#include <liburing.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); exit(1); } } while (0)

/* The next SQE; submits what is queued first if the SQ is full. */
static inline struct io_uring_sqe *sqe_of(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	if (!sqe) {
		io_uring_submit(ring);
		sqe = io_uring_get_sqe(ring);
	}
	CHECK(sqe, "SQ full");
	return sqe;
}

/* Message m of connection c: `len` bytes of xorshift from a seed of (c, m). */
static inline void fill(unsigned char *b, int len, int c, int m)
{
	uint32_t x = 0x9e3779b9u * (uint32_t)(c * 1000 + m + 1);
	for (int i = 0; i < len; i++) {
		x ^= x << 13; x ^= x >> 17; x ^= x << 5;
		b[i] = (unsigned char)x;
	}
}

/* Length of message m of connection c: 1 to `max` bytes. */
static inline int pattern_len(int c, int m, int max)
{
	return 1 + (int)((uint32_t)(c * 7919 + m * 104729) % (uint32_t)max);
}

/* A message's hash; summed over messages, the sum does not depend on the
 * order connections finish in. */
static inline unsigned long long hash(const unsigned char *b, int len)
{
	unsigned long long h = 0;
	for (int i = 0; i < len; i++)
		h = h * 31 + b[i];
	return h;
}

/* Two rings driven in turn by one thread (a server ring and a client ring):
 * the programs that include this define `srv` and `cli` before it.
 * Results by user_data (below MAX_UD), from either ring; `on_cqe`, if set,
 * sees every CQE first (for a multishot's stream). */
#ifdef TWO_RINGS
#define MAX_UD 32
static int results[MAX_UD], have[MAX_UD];
static unsigned cqe_flags[MAX_UD];
static void (*on_cqe)(struct io_uring_cqe *);

/* Submits what `ring` has queued and takes its CQEs, waiting up to 1 ms. */
static inline void reap(struct io_uring *ring)
{
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts = { .tv_nsec = 1000 * 1000 };
	int ret = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
	CHECK(ret >= 0 || ret == -ETIME, "wait: %d", ret);
	unsigned head, n = 0;
	io_uring_for_each_cqe(ring, head, cqe) {
		n++;
		CHECK(cqe->user_data < MAX_UD, "user_data %llu", (unsigned long long)cqe->user_data);
		if (on_cqe)
			on_cqe(cqe);
		results[cqe->user_data] = cqe->res;
		cqe_flags[cqe->user_data] = cqe->flags;
		have[cqe->user_data] = 1;
	}
	io_uring_cq_advance(ring, n);
}

/* Submits what both rings have queued and returns the result of the next
 * CQE tagged `ud`, within 5 s. */
static inline int wait_for(int ud)
{
	for (int i = 0; !have[ud]; i++) {
		CHECK(i < 2500, "no CQE %d in 5 s", ud);
		reap(&srv);
		reap(&cli);
	}
	have[ud] = 0;
	return results[ud];
}

/* Connects `cfd` on the client ring to `dst`, accepted from `lfd` on the
 * server ring (user_data 2 and 1); returns the accepted socket. */
static inline int connect_pair(int lfd, int cfd, const struct sockaddr_in *dst)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&srv);
	io_uring_prep_accept(sqe, lfd, NULL, NULL, 0);
	sqe->user_data = 1;
	sqe = io_uring_get_sqe(&cli);
	io_uring_prep_connect(sqe, cfd, (const struct sockaddr *)dst, sizeof(*dst));
	sqe->user_data = 2;
	int r = wait_for(2);
	CHECK(r == 0, "connect: %d", r);
	int afd = wait_for(1);
	CHECK(afd >= 0, "accept: %d", afd);
	return afd;
}
#endif

#endif
