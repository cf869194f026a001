/* See shim.h. Compiled with the cflags libdpdk.pc gives (cc crate). */
#include <rte_config.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "shim.h"

/*
 * The Rust side mirrors these flag values as constants (the bindgen cannot
 * evaluate RTE_BIT64()); a changed DPDK fails the build here instead of
 * silently sending wrong flags.
 */
_Static_assert(RTE_ETH_RX_OFFLOAD_IPV4_CKSUM == (1ULL << 1), "rx ipv4 cksum bit");
_Static_assert(RTE_ETH_RX_OFFLOAD_TCP_CKSUM == (1ULL << 3), "rx tcp cksum bit");
_Static_assert(RTE_ETH_TX_OFFLOAD_IPV4_CKSUM == (1ULL << 1), "tx ipv4 cksum bit");
_Static_assert(RTE_ETH_TX_OFFLOAD_TCP_CKSUM == (1ULL << 3), "tx tcp cksum bit");
_Static_assert(RTE_MBUF_F_RX_IP_CKSUM_BAD == (1ULL << 4), "rx ip cksum bad");
_Static_assert(RTE_MBUF_F_RX_L4_CKSUM_BAD == (1ULL << 3), "rx l4 cksum bad");
_Static_assert(RTE_MBUF_F_TX_TCP_CKSUM == (1ULL << 52), "tx tcp cksum");
_Static_assert(RTE_MBUF_F_TX_IP_CKSUM == (1ULL << 54), "tx ip cksum");
_Static_assert(RTE_MBUF_F_TX_IPV4 == (1ULL << 55), "tx ipv4");
_Static_assert(RTE_MBUF_DEFAULT_BUF_SIZE == 2048 + RTE_PKTMBUF_HEADROOM, "default buf size");

uint16_t ringline_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                                   struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t ringline_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                                   struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *ringline_rte_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

void ringline_rte_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

char *ringline_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

void *ringline_rte_pktmbuf_mtod(const struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, void *);
}

uint16_t ringline_rte_pktmbuf_data_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_data_len(m);
}

uint32_t ringline_rte_pktmbuf_pkt_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_pkt_len(m);
}

uint16_t ringline_rte_pktmbuf_nb_segs(const struct rte_mbuf *m)
{
	return m->nb_segs;
}

uint16_t ringline_rte_pktmbuf_tailroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

uint64_t ringline_rte_mbuf_ol_flags(const struct rte_mbuf *m)
{
	return m->ol_flags;
}

void ringline_rte_mbuf_set_ol_flags(struct rte_mbuf *m, uint64_t ol_flags)
{
	m->ol_flags = ol_flags;
}

void ringline_rte_mbuf_set_l2_len(struct rte_mbuf *m, uint16_t l2_len)
{
	m->l2_len = l2_len;
}

void ringline_rte_mbuf_set_l3_len(struct rte_mbuf *m, uint16_t l3_len)
{
	m->l3_len = l3_len;
}

int ringline_rte_errno(void)
{
	return rte_errno;
}

void ringline_rte_errno_set(int value)
{
	rte_errno = value;
}
