/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * ringline.h: what libringline offers beyond liburing's API.
 *
 * Programs include <liburing.h> as usual and link -lringline instead of
 * -luring (pkg-config --cflags --libs ringline). This header adds ringline's
 * extensions; a program that uses them still builds against the kernel's
 * liburing if it guards them with RINGLINE_H / ringline_is_ringline().
 */
#ifndef RINGLINE_H
#define RINGLINE_H

#include <liburing.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * IORING_OP_POLL_ADD flag (in sqe->len, bit 15, unused by Linux): a
 * coalesced persistent poll with epoll-like (uepoll) semantics: one CQE per
 * readiness change instead of one per event. Set it with
 *   io_uring_prep_poll_multishot(sqe, fd, POLLIN); sqe->len |= RINGLINE_POLL_COALESCED;
 * The kernel rejects the flag (-EINVAL), so only set it on a ringline ring.
 */
#define RINGLINE_POLL_COALESCED (1U << 15)

/* The engine's counters (a stable subset of ringline's EngineStats). */
struct ringline_stats {
	uint64_t steps;          /* engine loop iterations */
	uint64_t sqes;           /* SQEs consumed */
	uint64_t cqes;           /* CQEs posted */
	uint64_t op_errors;      /* requests failed (not -ECANCELED, -ETIME) */
	uint64_t rx_frames;      /* frames received from the NIC */
	uint64_t tx_segments;    /* TCP segments sent */
	uint64_t tx_dropped;     /* frames the NIC could not take */
	uint64_t accepted;       /* connections accepted */
	uint64_t connects;       /* connections opened */
	uint64_t conns_live;     /* connections open now */
	uint64_t retransmits;    /* segments sent again */
	uint64_t ops_in_flight;  /* requests waiting now */
};

/*
 * Fills *out (size bytes, sizeof(struct ringline_stats) or less for an older
 * struct) with the counters of ring's engine. Returns 0, or -EBADF if ring is
 * not a ringline ring, -EINVAL if out is NULL.
 */
int ringline_get_stats(struct io_uring *ring, struct ringline_stats *out, size_t size);

/* 1 if ring was set up by libringline, 0 otherwise. */
int ringline_is_ringline(struct io_uring *ring);

#ifdef __cplusplus
}
#endif

#endif /* RINGLINE_H */
