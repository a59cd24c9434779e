/* One forward per static-inline DPDK function or macro that Rust needs.
 * Compiled with the same cflags pkg-config gives for libdpdk, so the inline
 * bodies are exactly the ones the installed DPDK was built with. */
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include "shim.h"

int sluice_rte_errno(void) { return rte_errno; }
unsigned sluice_rte_lcore_id(void) { return rte_lcore_id(); }
uint64_t sluice_rte_rdtsc(void) { return rte_rdtsc(); }
uint64_t sluice_rte_get_tsc_hz(void) { return rte_get_tsc_hz(); }

uint16_t sluice_rte_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{ return rte_eth_rx_burst(port, queue, pkts, n); }
uint16_t sluice_rte_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{ return rte_eth_tx_burst(port, queue, pkts, n); }

struct rte_mbuf *sluice_rte_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }
int sluice_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count)
{ return rte_pktmbuf_alloc_bulk(mp, mbufs, count); }
void sluice_rte_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
void sluice_rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned count) { rte_pktmbuf_free_bulk(mbufs, count); }
struct rte_mbuf *sluice_rte_pktmbuf_clone(struct rte_mbuf *md, struct rte_mempool *mp) { return rte_pktmbuf_clone(md, mp); }
struct rte_mbuf *sluice_rte_pktmbuf_copy(const struct rte_mbuf *m, struct rte_mempool *mp, uint32_t offset, uint32_t length)
{ return rte_pktmbuf_copy(m, mp, offset, length); }
char *sluice_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }
int sluice_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }
int sluice_rte_pktmbuf_chain(struct rte_mbuf *head, struct rte_mbuf *tail) { return rte_pktmbuf_chain(head, tail); }
int sluice_rte_pktmbuf_linearize(struct rte_mbuf *m) { return rte_pktmbuf_linearize(m); }
uint16_t sluice_rte_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }
void *sluice_rte_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }
const void *sluice_rte_pktmbuf_read(const struct rte_mbuf *m, uint32_t off, uint32_t len, void *buf)
{ return rte_pktmbuf_read(m, off, len, buf); }
int sluice_rte_mbuf_refcnt_read(const struct rte_mbuf *m) { return rte_mbuf_refcnt_read(m); }
int sluice_rte_mbuf_is_indirect(const struct rte_mbuf *m) { return RTE_MBUF_CLONED(m) ? 1 : 0; }
unsigned sluice_rte_mempool_avail_count(const struct rte_mempool *mp) { return rte_mempool_avail_count(mp); }
unsigned sluice_rte_mempool_in_use_count(const struct rte_mempool *mp) { return rte_mempool_in_use_count(mp); }

unsigned sluice_rte_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n, unsigned *free_space)
{ return rte_ring_enqueue_burst(r, objs, n, free_space); }
unsigned sluice_rte_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n, unsigned *available)
{ return rte_ring_dequeue_burst(r, objs, n, available); }
unsigned sluice_rte_ring_count(const struct rte_ring *r) { return rte_ring_count(r); }
unsigned sluice_rte_ring_free_count(const struct rte_ring *r) { return rte_ring_free_count(r); }

uint64_t sluice_rte_eth_rss_ip_tcp_udp(void) { return RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP; }

uint32_t sluice_rte_eth_dev_intr_lsc(void) { return RTE_ETH_DEV_INTR_LSC; }
