//! Ethernet ports: configure, start, stop, stats, and their queues.

use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicU64, Ordering};

use super::batch::Batch;
use super::error::{check, errno_text, DpdkError, Result};
use super::mempool::{Mempool, SOCKET_ID_ANY};

/// Whether the device can hash IP addresses and ports for RSS.
pub fn rss_capable(info: &PortInfo) -> bool {
    // SAFETY: a pure function of DPDK's RSS flag macros.
    let wanted = unsafe { dpdk_sys::sluice_rte_eth_rss_ip_tcp_udp() };
    info.rss_offloads & wanted != 0
}

/// `RTE_ETH_TX_OFFLOAD_MULTI_SEGS` (`RTE_BIT64(15)`, a macro bindgen
/// cannot see).
const TX_OFFLOAD_MULTI_SEGS: u64 = 1 << 15;

/// Software devices whose TX takes a chain whole without offering
/// multi-segment TX: `net_null` frees it, `net_pcap` reads it with
/// `rte_pktmbuf_read` into the record it writes.
const SENDS_CHAINS_UNASKED: [&str; 2] = ["net_null", "net_pcap"];

/// One 16-bit word repeated over the whole RSS key makes Toeplitz hashing
/// symmetric: (a, b) and (b, a) hash alike, so both directions of a flow and
/// both mirrored copies of a packet land on the same queue and worker.
pub const SYMMETRIC_RSS_KEY_WORD: [u8; 2] = [0x6d, 0x5a];

/// How received packets are spread over RX queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RssMode {
    /// One RX queue: nothing to spread.
    SingleQueue,
    /// The device hashes IP addresses and L4 ports with the symmetric key.
    Symmetric,
    /// The device cannot hash: every packet arrives on queue 0 and the
    /// caller must spread them itself (a distributor lcore).
    Unsupported,
}

/// How to set a port up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// MTU to set; `None` keeps the device's.
    pub mtu: Option<u16>,
    pub promiscuous: bool,
    /// RX interrupts (`intr_conf.rxq`), for workers that sleep on them
    /// (`RxInterrupts`).
    pub rx_interrupts: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        Self {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            mtu: None,
            promiscuous: true,
            rx_interrupts: false,
        }
    }
}

/// What the device is and can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    pub id: u16,
    pub name: String,
    pub driver: String,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    pub min_mtu: u16,
    pub max_mtu: u16,
    pub reta_size: u16,
    pub hash_key_size: u8,
    /// Flow types the device can hash for RSS (`RTE_ETH_RSS_*` bits).
    pub rss_offloads: u64,
    pub socket: i32,
}

/// Link status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkState {
    pub up: bool,
    pub speed_mbps: u32,
}

/// Basic counters (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    /// Dropped by the device because no RX descriptor was free.
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// An Ethernet port. Stopped and closed on drop.
#[derive(Debug)]
pub struct Port {
    id: u16,
    name: String,
    started: bool,
    rss: RssMode,
    nb_rx: u16,
    nb_tx: u16,
    /// Whether TX takes chained mbufs, as set up by the last `configure`.
    chains: bool,
    /// Queues already handed out: each may have one user only.
    rx_taken: AtomicU64,
    tx_taken: AtomicU64,
    /// Probed by `open`: a secondary process detaches it again, from the
    /// primary too, so the device does not outlive us there.
    hotplugged: bool,
    /// Our ethdev owner id, once `claim`ed (0: not claimed).
    owner: u64,
}

fn driver_name(info: &dpdk_sys::rte_eth_dev_info) -> String {
    // SAFETY: driver_name is a static NUL-terminated string or null.
    unsafe { info.driver_name.as_ref() }
        // SAFETY: non-null, NUL-terminated (above).
        .map(|p| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn port_name(id: u16) -> Option<String> {
    let mut buf = [0 as std::ffi::c_char; dpdk_sys::RTE_ETH_NAME_MAX_LEN as usize];
    // SAFETY: buf has RTE_ETH_NAME_MAX_LEN bytes, as the call requires.
    let ret = unsafe { dpdk_sys::rte_eth_dev_get_name_by_port(id, buf.as_mut_ptr()) };
    if ret != 0 {
        return None;
    }
    // SAFETY: on success buf holds a NUL-terminated name.
    Some(
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    )
}

fn port_by_name(name: &str) -> Option<u16> {
    let c = CString::new(name).ok()?;
    let mut id = 0u16;
    // SAFETY: c is a valid C string and id a valid out-pointer.
    let ret = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
    (ret == 0).then_some(id)
}

/// The id of the port called `name` (as EAL or a primary named it).
pub fn port_id(name: &str) -> Option<u16> {
    port_by_name(name)
}

/// Every port this process sees, with its name: in a secondary, the
/// primary's too.
pub fn port_names() -> Vec<(u16, String)> {
    (0..dpdk_sys::RTE_MAX_ETHPORTS as u16)
        // SAFETY: plain query.
        .filter(|&id| unsafe { dpdk_sys::rte_eth_dev_is_valid_port(id) } != 0)
        .map(|id| (id, port_name(id).unwrap_or_else(|| format!("port{id}"))))
        .collect()
}

/// The ethdev owner's name of port `id`, if someone claimed it.
pub fn port_owner(id: u16) -> Option<String> {
    let mut owner = dpdk_sys::rte_eth_dev_owner::default();
    // SAFETY: valid out-pointer; DPDK NUL-terminates the name.
    let ret = unsafe { dpdk_sys::rte_eth_dev_owner_get(id, &mut owner) };
    if ret != 0 || owner.id == 0 {
        return None;
    }
    // SAFETY: NUL-terminated within its 64 bytes (above).
    Some(
        unsafe { CStr::from_ptr(owner.name.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// Removes device of port `id` from every process (a secondary asks the
/// primary): for a device a process that is gone hot-plugged and left.
pub fn detach(id: u16) -> Result<()> {
    let mut info = dpdk_sys::rte_eth_dev_info::default();
    // SAFETY: valid out-pointer.
    check(&format!("port {id} info"), unsafe {
        dpdk_sys::rte_eth_dev_info_get(id, &mut info)
    })?;
    if info.device.is_null() {
        return Err(DpdkError::Invalid {
            what: format!("port {id}"),
            reason: "has no device to remove".into(),
        });
    }
    // SAFETY: the device pointer comes from the port's info just now.
    check(&format!("port {id}: remove device"), unsafe {
        dpdk_sys::rte_dev_remove(info.device)
    })?;
    Ok(())
}

/// Basic counters of port `id`, a port this process does not own (one a
/// primary process runs).
pub fn stats_of(id: u16) -> Result<PortStats> {
    let mut s = dpdk_sys::rte_eth_stats::default();
    // SAFETY: valid out-pointer.
    let ret = unsafe { dpdk_sys::rte_eth_stats_get(id, &mut s) };
    check(&format!("port {id} stats"), ret)?;
    Ok(PortStats {
        ipackets: s.ipackets,
        opackets: s.opackets,
        ibytes: s.ibytes,
        obytes: s.obytes,
        imissed: s.imissed,
        ierrors: s.ierrors,
        oerrors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
    })
}

impl Port {
    /// Number of ports EAL knows about.
    pub fn count() -> u16 {
        // SAFETY: plain query.
        unsafe { dpdk_sys::rte_eth_dev_count_avail() }
    }

    /// The port with this DPDK port id.
    pub fn from_id(id: u16) -> Result<Port> {
        // SAFETY: plain query.
        if unsafe { dpdk_sys::rte_eth_dev_is_valid_port(id) } == 0 {
            return Err(DpdkError::Invalid {
                what: format!("port {id}"),
                reason: format!("no such port ({} ports exist)", Port::count()),
            });
        }
        let name = port_name(id).unwrap_or_else(|| format!("port{id}"));
        Ok(Port::new(id, name))
    }

    /// The port named by `spec`: a device already probed (an EAL `--vdev`
    /// or a PCI device), else devargs (`net_pcap0,rx_pcap=in.pcap`, a PCI
    /// address) to hot-plug now.
    pub fn open(spec: &str) -> Result<Port> {
        let name = spec.split(',').next().unwrap_or(spec).trim();
        if name.is_empty() {
            return Err(DpdkError::Invalid {
                what: format!("port {spec:?}"),
                reason: "empty device name".into(),
            });
        }
        if let Some(id) = port_by_name(name) {
            return Ok(Port::new(id, name.to_owned()));
        }
        let c = CString::new(spec).map_err(|_| DpdkError::Invalid {
            what: format!("port {spec:?}"),
            reason: "contains a NUL byte".into(),
        })?;
        // SAFETY: c is a valid C string; probing is done from the main thread.
        let ret = unsafe { dpdk_sys::rte_dev_probe(c.as_ptr()) };
        if ret < 0 {
            return Err(DpdkError::Call {
                what: format!("cannot probe device {spec:?}"),
                reason: format!("{} ({})", errno_text(ret), probe_hint(name)),
            });
        }
        port_by_name(name)
            .map(|id| {
                let mut p = Port::new(id, name.to_owned());
                p.hotplugged = true;
                p
            })
            .ok_or_else(|| DpdkError::Invalid {
                what: format!("port {spec:?}"),
                reason: "device probed but it is not an Ethernet port".into(),
            })
    }

    fn new(id: u16, name: String) -> Port {
        Port {
            id,
            name,
            started: false,
            rss: RssMode::SingleQueue,
            nb_rx: 0,
            nb_tx: 0,
            chains: false,
            rx_taken: AtomicU64::new(0),
            tx_taken: AtomicU64::new(0),
            hotplugged: false,
            owner: 0,
        }
    }

    pub fn id(&self) -> u16 {
        self.id
    }

    /// The port's MTU (L3 bytes a frame may carry), if the PMD says.
    pub fn mtu(&self) -> Option<u16> {
        port_mtu(self.id)
    }

    /// Takes ethdev ownership of the port as `who`: other users of the
    /// shared port table (a primary's `RTE_ETH_FOREACH_DEV` loops, such as
    /// testpmd's "are all ports started" before it forwards) leave it alone.
    pub fn claim(&mut self, who: &str) -> Result<()> {
        let what = format!("port {} ({}): claim ownership", self.id, self.name);
        let mut owner = dpdk_sys::rte_eth_dev_owner::default();
        // SAFETY: valid out-pointer.
        check(&what, unsafe {
            dpdk_sys::rte_eth_dev_owner_new(&mut owner.id)
        })?;
        for (d, c) in owner.name.iter_mut().zip(who.bytes().take(63)) {
            *d = c as std::ffi::c_char;
        }
        // SAFETY: owner is a valid, NUL-terminated owner record.
        check(&what, unsafe {
            dpdk_sys::rte_eth_dev_owner_set(self.id, &owner)
        })?;
        self.owner = owner.id;
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// How RX is spread, as decided by the last `configure`.
    pub fn rss(&self) -> RssMode {
        self.rss
    }

    /// Whether the device sends chained mbufs (an indirect clone behind a
    /// header segment) whole, as set up by the last `configure`.
    pub fn sends_chains(&self) -> bool {
        self.chains
    }

    /// RX queues set up by the last `configure`.
    pub fn rx_queues(&self) -> u16 {
        self.nb_rx
    }

    /// What the device is and can do.
    pub fn info(&self) -> Result<PortInfo> {
        let info = self.raw_info()?;
        Ok(PortInfo {
            id: self.id,
            name: self.name.clone(),
            driver: driver_name(&info),
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            min_mtu: info.min_mtu,
            max_mtu: info.max_mtu,
            reta_size: info.reta_size,
            hash_key_size: info.hash_key_size,
            rss_offloads: info.flow_type_rss_offloads,
            socket: self.socket(),
        })
    }

    fn raw_info(&self) -> Result<dpdk_sys::rte_eth_dev_info> {
        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: info is a valid out-pointer for the call.
        let ret = unsafe { dpdk_sys::rte_eth_dev_info_get(self.id, &mut info) };
        check(&format!("port {} info", self.name), ret)?;
        Ok(info)
    }

    fn socket(&self) -> i32 {
        // SAFETY: plain query; -1 means any socket (virtual devices).
        unsafe { dpdk_sys::rte_eth_dev_socket_id(self.id) }
    }

    /// Configures queues, RSS, MTU and promiscuous mode; RX queues take
    /// buffers from `pool`. Returns how RX will be spread.
    pub fn configure(&mut self, cfg: &PortConfig, pool: &Mempool) -> Result<RssMode> {
        if self.started {
            self.stop()?;
        }
        let info = self.raw_info()?;
        let what = |s: &str| format!("port {} ({}): {s}", self.id, self.name);
        // Queue ownership is tracked in a 64-bit mask per direction.
        let max_rx = info.max_rx_queues.min(64);
        let max_tx = info.max_tx_queues.min(64);
        // No RX queue is fine: a TX-only device (a pcap file writer).
        if cfg.rx_queues > max_rx {
            return Err(DpdkError::Invalid {
                what: what("rx_queues"),
                reason: format!("{} asked, this device allows 0..={max_rx}", cfg.rx_queues),
            });
        }
        // No TX queue is fine too: an input that only receives.
        if cfg.tx_queues > max_tx {
            return Err(DpdkError::Invalid {
                what: what("tx_queues"),
                reason: format!("{} asked, this device allows 0..={max_tx}", cfg.tx_queues),
            });
        }
        if cfg.rx_queues == 0 && cfg.tx_queues == 0 {
            return Err(DpdkError::Invalid {
                what: what("queues"),
                reason: "a port needs at least one RX or TX queue".into(),
            });
        }

        // SAFETY: a pure function of DPDK's RSS flag macros.
        let wanted = unsafe { dpdk_sys::sluice_rte_eth_rss_ip_tcp_udp() };
        let hf = wanted & info.flow_type_rss_offloads;
        let rss = match (cfg.rx_queues, hf) {
            (0 | 1, _) => RssMode::SingleQueue,
            (_, 0) => RssMode::Unsupported,
            _ => RssMode::Symmetric,
        };
        let key_len = if info.hash_key_size == 0 {
            40
        } else {
            info.hash_key_size
        };
        let mut key: Vec<u8> = SYMMETRIC_RSS_KEY_WORD
            .iter()
            .copied()
            .cycle()
            .take(key_len as usize)
            .collect();
        let mut conf = dpdk_sys::rte_eth_conf::default();
        // Link changes raise RTE_ETH_EVENT_INTR_LSC (see `events`) on
        // devices that can interrupt; the others would refuse the flag.
        // SAFETY: dev_flags points into the device's data, valid while the
        // port exists; the shim is a pure constant.
        let lsc = unsafe {
            info.dev_flags
                .as_ref()
                .is_some_and(|f| f & dpdk_sys::sluice_rte_eth_dev_intr_lsc() != 0)
        };
        conf.intr_conf.set_lsc(u32::from(lsc));
        conf.intr_conf.set_rxq(u32::from(cfg.rx_interrupts));
        // A device that offers multi-segment TX gets it asked for: a NIC's
        // fast TX path may send only a chain's first segment otherwise.
        let multi_segs = info.tx_offload_capa & TX_OFFLOAD_MULTI_SEGS != 0;
        if multi_segs {
            conf.txmode.offloads |= TX_OFFLOAD_MULTI_SEGS;
        }
        if rss == RssMode::Symmetric {
            conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
            conf.rx_adv_conf.rss_conf.rss_key_len = key_len;
            conf.rx_adv_conf.rss_conf.rss_hf = hf;
        }
        // SAFETY: conf (and the key it points to) is valid for the call, which copies it.
        let ret = unsafe {
            dpdk_sys::rte_eth_dev_configure(self.id, cfg.rx_queues, cfg.tx_queues, &conf)
        };
        check(&what("configure"), ret)?;

        let (mut nb_rxd, mut nb_txd) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: valid out-pointers.
        let ret = unsafe {
            dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(self.id, &mut nb_rxd, &mut nb_txd)
        };
        check(&what("descriptor counts"), ret)?;
        let socket = match self.socket() {
            s if s < 0 => SOCKET_ID_ANY,
            s => s,
        } as u32;
        for q in 0..cfg.rx_queues {
            // SAFETY: port configured with this many queues; pool is valid and
            // outlives the port's use of it (Mempool leaks itself while in use).
            let ret = unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(
                    self.id,
                    q,
                    nb_rxd,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            check(&what(&format!("RX queue {q} setup")), ret)?;
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: as above; null conf means the device defaults.
            let ret = unsafe {
                dpdk_sys::rte_eth_tx_queue_setup(self.id, q, nb_txd, socket, std::ptr::null())
            };
            check(&what(&format!("TX queue {q} setup")), ret)?;
        }
        if let Some(mtu) = cfg.mtu {
            // SAFETY: plain call on a configured port.
            let ret = unsafe { dpdk_sys::rte_eth_dev_set_mtu(self.id, mtu) };
            check(
                &what(&format!(
                    "set MTU {mtu} (device allows {}..={})",
                    info.min_mtu, info.max_mtu
                )),
                ret,
            )?;
        }
        if cfg.promiscuous {
            // SAFETY: plain call. Not every virtual device has a promiscuous
            // mode (it receives everything anyway): -ENOTSUP is fine.
            let ret = unsafe { dpdk_sys::rte_eth_promiscuous_enable(self.id) };
            if ret < 0 && ret != -(libc_enotsup()) {
                check(&what("promiscuous mode"), ret)?;
            }
        }
        self.rss = rss;
        self.chains = multi_segs || SENDS_CHAINS_UNASKED.contains(&driver_name(&info).as_str());
        self.nb_rx = cfg.rx_queues;
        self.nb_tx = cfg.tx_queues;
        Ok(rss)
    }

    /// Starts the port.
    pub fn start(&mut self) -> Result<()> {
        // SAFETY: plain call on a configured port.
        let ret = unsafe { dpdk_sys::rte_eth_dev_start(self.id) };
        check(&format!("port {} ({}) start", self.id, self.name), ret)?;
        self.started = true;
        Ok(())
    }

    /// Stops the port (its queues then return nothing).
    pub fn stop(&mut self) -> Result<()> {
        // SAFETY: plain call.
        let ret = unsafe { dpdk_sys::rte_eth_dev_stop(self.id) };
        self.started = false;
        check(&format!("port {} ({}) stop", self.id, self.name), ret)?;
        Ok(())
    }

    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Link status, without waiting.
    pub fn link(&self) -> Result<LinkState> {
        let mut link = dpdk_sys::rte_eth_link::default();
        // SAFETY: valid out-pointer.
        let ret = unsafe { dpdk_sys::rte_eth_link_get_nowait(self.id, &mut link) };
        check(&format!("port {} link", self.name), ret)?;
        Ok(LinkState {
            up: link.link_status() as u32 == dpdk_sys::RTE_ETH_LINK_UP,
            speed_mbps: link.link_speed,
        })
    }

    /// Sets the link administratively up or down, as testpmd's `set
    /// link-up|link-down port N` does (a tap's kernel interface goes down
    /// with it). Devices without the operation say so (-ENOTSUP).
    pub fn set_link(&self, up: bool) -> Result<()> {
        // SAFETY: plain calls on a port this value holds.
        let ret = unsafe {
            if up {
                dpdk_sys::rte_eth_dev_set_link_up(self.id)
            } else {
                dpdk_sys::rte_eth_dev_set_link_down(self.id)
            }
        };
        let what = format!("port {} link {}", self.name, if up { "up" } else { "down" });
        check(&what, ret).map(|_| ())
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<[u8; 6]> {
        let mut addr = dpdk_sys::rte_ether_addr::default();
        // SAFETY: valid out-pointer.
        let ret = unsafe { dpdk_sys::rte_eth_macaddr_get(self.id, &mut addr) };
        check(&format!("port {} MAC address", self.name), ret)?;
        Ok(addr.addr_bytes)
    }

    /// Basic counters.
    pub fn stats(&self) -> Result<PortStats> {
        stats_of(self.id)
    }

    /// Zeroes the basic counters and the extended ones.
    pub fn reset_stats(&self) -> Result<()> {
        // SAFETY: plain calls.
        let ret = unsafe { dpdk_sys::rte_eth_stats_reset(self.id) };
        check(&format!("port {} stats reset", self.name), ret)?;
        // SAFETY: plain call; devices without xstats reset return -ENOTSUP.
        unsafe { dpdk_sys::rte_eth_xstats_reset(self.id) };
        Ok(())
    }

    /// Extended counters by name.
    pub fn xstats(&self) -> Result<Vec<(String, u64)>> {
        let what = format!("port {} xstats", self.name);
        // SAFETY: a null buffer with size 0 asks for the count.
        let n = unsafe { dpdk_sys::rte_eth_xstats_get_names(self.id, std::ptr::null_mut(), 0) };
        let n = check(&what, n)? as usize;
        let mut names = vec![dpdk_sys::rte_eth_xstat_name { name: [0; 64] }; n];
        let mut values = vec![dpdk_sys::rte_eth_xstat::default(); n];
        // SAFETY: both buffers hold n entries.
        let got =
            unsafe { dpdk_sys::rte_eth_xstats_get_names(self.id, names.as_mut_ptr(), n as u32) };
        check(&what, got)?;
        // SAFETY: as above.
        let got = unsafe { dpdk_sys::rte_eth_xstats_get(self.id, values.as_mut_ptr(), n as u32) };
        let got = (check(&what, got)? as usize).min(n);
        Ok(values[..got]
            .iter()
            .map(|v| {
                let name = names
                    .get(v.id as usize)
                    // SAFETY: DPDK NUL-terminates every name within its 64 bytes.
                    .map(|nm| {
                        unsafe { CStr::from_ptr(nm.name.as_ptr()) }
                            .to_string_lossy()
                            .into_owned()
                    })
                    .unwrap_or_default();
                (name, v.value)
            })
            .collect())
    }

    /// RX queue `q`, for one user at a time: asking twice is an error.
    pub fn rx_queue(&self, q: u16) -> Result<RxQueue> {
        take_queue(&self.rx_taken, q, self.nb_rx, &self.name, "RX")?;
        Ok(RxQueue {
            port: self.id,
            queue: q,
            invalid: 0,
        })
    }

    /// TX queue `q`, for one user at a time: asking twice is an error.
    pub fn tx_queue(&self, q: u16) -> Result<TxQueue> {
        take_queue(&self.tx_taken, q, self.nb_tx, &self.name, "TX")?;
        Ok(TxQueue {
            port: self.id,
            queue: q,
        })
    }
}

/// What to check when a device cannot be probed.
fn probe_hint(name: &str) -> String {
    let pci = name.len() >= 7
        && name
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
    if pci {
        format!("no DPDK-usable PCI device at {name}: is it bound to vfio-pci, and was EAL started without --no-pci?")
    } else {
        format!(
            "no DPDK driver is called like {name}: virtual devices are net_pcap, net_tap, net_null, net_ring, \
             net_af_packet, net_vhost, net_virtio_user, net_memif followed by a unique suffix"
        )
    }
}

fn take_queue(taken: &AtomicU64, q: u16, nb: u16, port: &str, dir: &str) -> Result<()> {
    if q >= nb {
        return Err(DpdkError::Invalid {
            what: format!("port {port} {dir} queue {q}"),
            reason: format!("port has {nb} {dir} queues"),
        });
    }
    let bit = 1u64 << q;
    if taken.fetch_or(bit, Ordering::AcqRel) & bit != 0 {
        return Err(DpdkError::Invalid {
            what: format!("port {port} {dir} queue {q}"),
            reason: "already in use: a queue has one user".into(),
        });
    }
    Ok(())
}

/// ENOTSUP, without a libc dependency for one constant.
const fn libc_enotsup() -> i32 {
    95
}

impl Drop for Port {
    fn drop(&mut self) {
        let secondary = super::pdump::is_secondary();
        if secondary && !self.hotplugged {
            // The primary's device: never ours to stop or close.
            return;
        }
        // A secondary's hot-plugged device lives in the primary as well:
        // removing it detaches it in every process (when the primary still
        // runs to be asked).
        let detach = self.hotplugged && secondary && super::pdump::primary_alive();
        let device = if detach {
            self.raw_info().map(|i| i.device).ok()
        } else {
            None
        };
        // SAFETY: stop, then close or detach; queue handles that outlive
        // the port reach DPDK's dummy burst functions, which return 0.
        // `device` came from this port's info and is valid until removed.
        unsafe {
            if self.started {
                dpdk_sys::rte_eth_dev_stop(self.id);
            }
            if self.owner != 0 {
                dpdk_sys::rte_eth_dev_owner_unset(self.id, self.owner);
            }
            match device {
                Some(d) if !d.is_null() => {
                    dpdk_sys::rte_dev_remove(d);
                }
                _ => {
                    dpdk_sys::rte_eth_dev_close(self.id);
                }
            }
        }
    }
}

/// One RX queue of a port, owned by one poller.
#[derive(Debug)]
pub struct RxQueue {
    port: u16,
    queue: u16,
    invalid: u64,
}

impl RxQueue {
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Receives into the batch's free slots; returns how many arrived.
    pub fn rx<const N: usize>(&mut self, batch: &mut Batch<N>) -> usize {
        let (slots, free) = batch.spare_raw();
        if free == 0 {
            return 0;
        }
        // SAFETY: `slots` has `free` writable entries; this handle is the
        // queue's only user (Port::rx_queue hands each out once).
        let n = unsafe {
            dpdk_sys::sluice_rte_eth_rx_burst(
                self.port,
                self.queue,
                slots,
                free.min(u16::MAX as usize) as u16,
            )
        } as usize;
        // SAFETY: the PMD wrote n owned, valid mbufs into those slots.
        unsafe { batch.commit(n) };
        // A chain whose lengths do not add up would send every later stage
        // past its buffers: drop it here, counted.
        let before = batch.len();
        if batch.as_slice()[before - n..]
            .iter()
            .any(|m| !m.is_consistent())
        {
            batch.retain(|m| m.is_consistent());
            let bad = before - batch.len();
            self.invalid += bad as u64;
            return n - bad;
        }
        n
    }

    /// Mbufs dropped on receipt because their chain was inconsistent.
    pub fn invalid(&self) -> u64 {
        self.invalid
    }
}

/// One TX queue of a port, owned by one sender.
#[derive(Debug)]
pub struct TxQueue {
    port: u16,
    queue: u16,
}

/// Port `id`'s MTU, if the PMD says.
fn port_mtu(id: u16) -> Option<u16> {
    let mut mtu = 0u16;
    // SAFETY: a valid out-pointer; an unknown port id is an error return.
    let ret = unsafe { dpdk_sys::rte_eth_dev_get_mtu(id, &mut mtu) };
    (ret == 0 && mtu > 0).then_some(mtu)
}

impl TxQueue {
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// The port's MTU (L3 bytes a frame may carry), if the PMD says.
    pub fn mtu(&self) -> Option<u16> {
        port_mtu(self.port)
    }

    /// Sends from the front of the batch. The device takes ownership of what
    /// it accepted; the rest stay in the batch, in order. Returns how many
    /// were sent.
    pub fn tx<const N: usize>(&mut self, batch: &mut Batch<N>) -> usize {
        if batch.is_empty() {
            return 0;
        }
        let len = batch.len();
        // SAFETY: the batch holds `len` valid owned mbufs; this handle is the
        // queue's only user.
        let n = unsafe {
            dpdk_sys::sluice_rte_eth_tx_burst(self.port, self.queue, batch.as_raw(), len as u16)
        } as usize;
        // SAFETY: the PMD now owns the first n mbufs.
        unsafe { batch.consume_front(n) };
        n
    }
}
