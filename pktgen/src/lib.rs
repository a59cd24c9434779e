//! Traffic generator: profiles, pcap writer, DPDK sender.
