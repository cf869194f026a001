/*
 * ringline's C shim over DPDK's static inline functions.
 *
 * DPDK implements its hot-path API (rx/tx burst, mbuf alloc/free, mtod) as
 * static inline functions in its headers, so no symbol exists to link to.
 * Each function here is a plain exported wrapper; the Rust sys crate binds
 * them and re-exports them under their DPDK names.
 */
#ifndef RINGLINE_DPDK_SHIM_H
#define RINGLINE_DPDK_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;

uint16_t ringline_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                                   struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t ringline_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                                   struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

struct rte_mbuf *ringline_rte_pktmbuf_alloc(struct rte_mempool *mp);
void ringline_rte_pktmbuf_free(struct rte_mbuf *m);
char *ringline_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
void *ringline_rte_pktmbuf_mtod(const struct rte_mbuf *m);
uint16_t ringline_rte_pktmbuf_data_len(const struct rte_mbuf *m);
uint32_t ringline_rte_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t ringline_rte_pktmbuf_nb_segs(const struct rte_mbuf *m);
uint16_t ringline_rte_pktmbuf_tailroom(const struct rte_mbuf *m);

uint64_t ringline_rte_mbuf_ol_flags(const struct rte_mbuf *m);
void ringline_rte_mbuf_set_ol_flags(struct rte_mbuf *m, uint64_t ol_flags);
void ringline_rte_mbuf_set_l2_len(struct rte_mbuf *m, uint16_t l2_len);
void ringline_rte_mbuf_set_l3_len(struct rte_mbuf *m, uint16_t l3_len);

/*
 * rte_errno is a per-lcore (thread-local) variable, per_lcore__rte_errno,
 * behind a macro: C code reads and writes it for the calling thread.
 */
int ringline_rte_errno(void);
void ringline_rte_errno_set(int value);

#endif
