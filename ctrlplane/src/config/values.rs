//! The config's value types that TOML has no type for: an address with a
//! prefix length, a MAC, a DPDK device and a controller endpoint. Each is
//! parsed once, at load, from the text the operator wrote.

use std::fmt;
use std::net::IpAddr;

pub use dataplane::stage::filter::Cidr;
pub use dataplane::wire::ethernet::Address as MacAddr;

/// Parses `addr/len` (the length is required and at most the family's).
pub fn parse_cidr(s: &str) -> Option<Cidr> {
    let (a, l) = s.split_once('/')?;
    let addr: IpAddr = a.trim().parse().ok()?;
    let len: u8 = l.trim().parse().ok()?;
    let c = Cidr::new(addr, len);
    (len <= c.max_len()).then_some(c)
}

/// Parses a MAC address `aa:bb:cc:dd:ee:ff` (or with `-`).
pub fn parse_mac(s: &str) -> Option<MacAddr> {
    let mut out = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in &mut out {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(MacAddr(out))
}

/// The virtual-device drivers Sluice knows by name. DPDK's vdev bus gives
/// a device to the driver whose name (or its `eth_` alias) begins the
/// device's name: `net_pcap_tap0` is a `net_pcap` device.
const VDEV_DRIVERS: &[&str] = &[
    "net_af_packet",
    "net_af_xdp",
    "net_bonding",
    "net_memif",
    "net_null",
    "net_pcap",
    "net_ring",
    "net_tap",
    "net_tun",
    "net_vhost",
    "net_virtio_user",
];

/// A DPDK device as EAL takes it: devargs (`net_pcap0,rx_pcap=in.pcap`)
/// or a PCI address (`0000:03:00.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device(String);

impl Device {
    /// The devargs, trimmed; `None` when there are none.
    pub fn parse(s: &str) -> Option<Device> {
        let s = s.trim();
        (!s.is_empty()).then(|| Device(s.to_owned()))
    }

    /// The devargs as written, for EAL.
    pub fn devargs(&self) -> &str {
        &self.0
    }

    /// The device's name: the part before the first comma.
    pub fn name(&self) -> &str {
        self.0.split(',').next().unwrap_or_default().trim()
    }

    /// A virtual device (`net_…` or `eth_…`), not a PCI address.
    pub fn is_virtual(&self) -> bool {
        let n = self.name();
        n.starts_with("net_") || n.starts_with("eth_")
    }

    /// The virtual-device driver that runs it (`net_pcap`, `net_vhost`…;
    /// `eth_` aliases give the `net_` name); `None` for a PCI address or a
    /// driver Sluice does not know.
    pub fn driver(&self) -> Option<&'static str> {
        let name = self.name();
        let bare = name
            .strip_prefix("net_")
            .or_else(|| name.strip_prefix("eth_"))?;
        VDEV_DRIVERS
            .iter()
            .copied()
            .find(|d| bare.starts_with(&d["net_".len()..]))
    }

    /// The value of `key=` among the devargs (the first one if repeated).
    pub fn arg<'a>(&'a self, key: &str) -> Option<&'a str> {
        self.args(key).next()
    }

    /// Every value of `key=` among the devargs (`rx_pcap` may repeat).
    pub fn args<'a, 'k>(&'a self, key: &'k str) -> impl Iterator<Item = &'a str> + 'k
    where
        'a: 'k,
    {
        self.0
            .split(',')
            .skip(1)
            .filter_map(|kv| kv.split_once('='))
            .filter(move |(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim())
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A `host:port` to connect to (`[v6]:port` for an IPv6 address); the
/// host may be a DNS name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Parses `host:port`; the port is not 0 and the host not empty.
    pub fn parse(s: &str) -> Option<Endpoint> {
        let (host, port) = s.rsplit_once(':')?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port: u16 = port.parse().ok()?;
        (!host.is_empty() && port != 0).then(|| Endpoint {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_and_cidrs_parse_strictly() {
        assert_eq!(
            parse_mac("02:00:00:00:00:0a"),
            Some(MacAddr([2, 0, 0, 0, 0, 10]))
        );
        assert_eq!(parse_mac("02-00-00-00-00-0A").map(|m| m.0[5]), Some(10));
        assert_eq!(parse_mac("02:00:00:00:00"), None);
        assert_eq!(parse_mac("02:00:00:00:00:00:00"), None);
        assert_eq!(parse_mac("2:00:00:00:00:0a"), None);
        assert_eq!(parse_cidr("10.0.0.1/33"), None);
        assert_eq!(parse_cidr("10.0.0.1"), None);
        assert_eq!(parse_cidr("2001:db8::1/64").map(|c| c.len), Some(64));
        assert_eq!(
            parse_cidr("192.0.2.1/24"),
            Some(Cidr::new([192, 0, 2, 1], 24))
        );
    }

    #[test]
    fn a_device_knows_its_name_driver_and_args() {
        let d = Device::parse(" net_pcap_tap0,rx_pcap=a.pcap, rx_pcap = b.pcap ").expect("device");
        assert_eq!(
            d.devargs(),
            "net_pcap_tap0,rx_pcap=a.pcap, rx_pcap = b.pcap"
        );
        assert_eq!(d.name(), "net_pcap_tap0");
        assert_eq!(d.driver(), Some("net_pcap"));
        assert!(d.is_virtual());
        assert_eq!(d.args("rx_pcap").collect::<Vec<_>>(), ["a.pcap", "b.pcap"]);
        assert_eq!(d.arg("tx_pcap"), None);

        let v = Device::parse("eth_vhost1,iface=/tmp/s,client=1").expect("device");
        assert_eq!(v.driver(), Some("net_vhost"));
        assert_eq!(v.arg("client"), Some("1"));

        let pci = Device::parse("0000:03:00.0").expect("device");
        assert_eq!(
            (pci.name(), pci.driver(), pci.is_virtual()),
            ("0000:03:00.0", None, false)
        );
        assert_eq!(Device::parse("net_nosuch0").and_then(|d| d.driver()), None);
        assert_eq!(
            Device::parse("net_tun0").and_then(|d| d.driver()),
            Some("net_tun")
        );
        assert_eq!(Device::parse("  "), None);
    }

    #[test]
    fn endpoints_are_host_and_port() {
        let e = Endpoint::parse("[::1]:7443").expect("v6");
        assert_eq!((e.host.as_str(), e.port), ("::1", 7443));
        assert_eq!(e.to_string(), "[::1]:7443");
        assert_eq!(
            Endpoint::parse("ctl.example:7443").map(|e| e.to_string()),
            Some("ctl.example:7443".into())
        );
        assert_eq!(Endpoint::parse("127.0.0.1:0"), None);
        assert_eq!(Endpoint::parse(":7443"), None);
        assert_eq!(Endpoint::parse("ctl.example"), None);
    }
}
