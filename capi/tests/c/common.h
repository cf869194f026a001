/* What the C test programs share: the failure check, an SQE that submits
 * when the SQ is full, and the message pattern and its hash (the same on
 * every stack, so outputs can be compared). Only liburing's API. */
#ifndef RINGLINE_TEST_COMMON_H
#define RINGLINE_TEST_COMMON_H

#include <liburing.h>
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

#endif
