#ifndef SLUICE_SHIM_H
#define SLUICE_SHIM_H
/* Real symbols for DPDK's static-inline fast-path functions and macros, so
 * that Rust can call them. Each one is a one-line forward; see shim.c. */
#include <stdint.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ethdev.h>

int sluice_rte_errno(void);
unsigned sluice_rte_lcore_id(void);
uint64_t sluice_rte_rdtsc(void);
uint64_t sluice_rte_get_tsc_hz(void);

uint16_t sluice_rte_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t sluice_rte_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

struct rte_mbuf *sluice_rte_pktmbuf_alloc(struct rte_mempool *mp);
int sluice_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count);
void sluice_rte_pktmbuf_free(struct rte_mbuf *m);
void sluice_rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned count);
struct rte_mbuf *sluice_rte_pktmbuf_clone(struct rte_mbuf *md, struct rte_mempool *mp);
struct rte_mbuf *sluice_rte_pktmbuf_copy(const struct rte_mbuf *m, struct rte_mempool *mp, uint32_t offset, uint32_t length);
char *sluice_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
int sluice_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
int sluice_rte_pktmbuf_chain(struct rte_mbuf *head, struct rte_mbuf *tail);
int sluice_rte_pktmbuf_linearize(struct rte_mbuf *m);
uint16_t sluice_rte_pktmbuf_tailroom(const struct rte_mbuf *m);
void *sluice_rte_pktmbuf_mtod(struct rte_mbuf *m);
const void *sluice_rte_pktmbuf_read(const struct rte_mbuf *m, uint32_t off, uint32_t len, void *buf);
int sluice_rte_mbuf_refcnt_read(const struct rte_mbuf *m);
int sluice_rte_mbuf_is_indirect(const struct rte_mbuf *m);
unsigned sluice_rte_mempool_avail_count(const struct rte_mempool *mp);
unsigned sluice_rte_mempool_in_use_count(const struct rte_mempool *mp);

unsigned sluice_rte_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n, unsigned *free_space);
unsigned sluice_rte_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n, unsigned *available);
unsigned sluice_rte_ring_count(const struct rte_ring *r);
unsigned sluice_rte_ring_free_count(const struct rte_ring *r);

/* RTE_ETH_RSS_* are 64-bit macros bindgen cannot evaluate. */
uint64_t sluice_rte_eth_rss_ip_tcp_udp(void);

/* RTE_ETH_DEV_INTR_LSC is RTE_BIT32(1), a macro bindgen cannot evaluate. */
uint32_t sluice_rte_eth_dev_intr_lsc(void);

#endif
