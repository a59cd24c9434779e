//! The peer: OVS-DPDK (Debian's `ovs-vswitchd-dpdk`) doing a broker's job
//! on the same capture and the same virtual devices as Sluice.
//!
//! Each run starts its own `ovsdb-server` and `ovs-vswitchd` (own run
//! directory, database, DPDK file prefix, `--no-pci`) inside a network
//! namespace the run creates, so the bridges' internal ports and the
//! tunnel endpoint's address never appear in the machine's own
//! namespace; the run stops both daemons by PID and deletes the
//! namespace. The layout, as OVS's userspace tunnelling documents it:
//!
//! ```text
//! br-int: in0 (dpdk, net_pcap infinite_rx) ──OpenFlow──▶ vx0 (vxlan, remote 192.0.2.10)
//! br-phy: LOCAL (192.0.2.1/24, the tunnel endpoint) ──▶ out0 (dpdk, net_null)
//! ```
//!
//! [`commands`] is the whole configuration as `ovs-vsctl` / `ovs-ofctl`
//! / `ovs-appctl` command lines: the harness runs exactly these, and
//! `docs/PERFORMANCE.md` prints them so anyone can repeat a run by hand.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::run::{self, Overhead, Rate, Reading, Timing};

/// The OVS-DPDK binary Debian's `openvswitch-switch-dpdk` installs.
pub const VSWITCHD: &str = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk";
/// OVS's database schema (package `openvswitch-common`).
pub const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
/// Mbufs OVS gives a port's shared mempool at MTU 1500 (its `MAX_NB_MBUF`):
/// `net_pcap`'s `infinite_rx` loads the whole capture into that pool, so a
/// capture must leave room for the descriptors.
pub const OVS_POOL_MBUFS: u64 = 262_144;
/// Descriptors and bursts OVS holds on top of the capture (2,048 RX, two
/// TX queues of 2,048, its minimum of 16,384 spare).
pub const OVS_POOL_SPARE: u64 = 2048 + 2 * 2048 + 16_384;

/// What OVS does with each packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerWork {
    /// `in_port=in0 → output:out0` on one bridge: no tunnel, no rules.
    Io,
    /// One match-all rule: truncate to 128 bytes and VXLAN to one remote.
    Vxlan,
    /// `rules − 1` mixed rules that match none of the traffic (at higher
    /// priorities), then the match-all of [`PeerWork::Vxlan`].
    Rules { rules: usize },
}

impl PeerWork {
    pub fn name(self) -> String {
        match self {
            PeerWork::Io => "ovs-io".into(),
            PeerWork::Vxlan => "ovs-vxlan".into(),
            PeerWork::Rules { rules } => format!("ovs-rules-{rules}"),
        }
    }

    pub fn title(self) -> String {
        match self {
            PeerWork::Io => "in → out, no work".into(),
            PeerWork::Vxlan => "all → truncate 128 → VXLAN".into(),
            PeerWork::Rules { rules } => format!(
                "{} non-matching rules + match-all → truncate 128 → VXLAN",
                rules - 1
            ),
        }
    }
}

/// Where a run's files go and the names it uses.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Run directory: database, sockets, logs, flows.
    pub dir: PathBuf,
    /// Network namespace the daemons run in.
    pub netns: String,
    /// DPDK `--file-prefix`.
    pub prefix: String,
    /// Unique suffix of the vdev names.
    pub tag: String,
}

impl Layout {
    fn db_sock(&self) -> String {
        format!("unix:{}", self.dir.join("db.sock").display())
    }
    fn ctl(&self) -> PathBuf {
        self.dir.join("ovs-vswitchd.ctl")
    }
    fn mgmt(&self, bridge: &str) -> String {
        format!("unix:{}", self.dir.join(format!("{bridge}.mgmt")).display())
    }
}

/// One mixed OpenFlow match that the harness's traffic (IPv4 UDP from
/// 10.0.0.0/9 to 10.0.0.0/9 or IPv6 from 2001:db8::/32, untagged, to UDP
/// port 5001) never matches: each has at least one field outside it (an
/// address in 172.16.0.0/12 or 10.128.0.0/9, another port or protocol, a
/// VLAN, an IPv6 prefix outside 2001:db8::/32).
fn mixed_match(r: &mut crate::scenario::Rng) -> String {
    let v4 = |r: &mut crate::scenario::Rng| {
        let lens = [12u32, 16, 16, 20, 22, 24, 24, 24, 26, 28, 32, 32];
        let len = lens[r.below(lens.len() as u64) as usize];
        let base = if r.below(2) == 0 {
            0xac10_0000 | (r.next_u64() as u32 & 0x000f_ffff)
        } else {
            0x0a80_0000 | (r.next_u64() as u32 & 0x007f_ffff)
        };
        let mask = u32::MAX << (32 - len);
        format!("{}/{len}", std::net::Ipv4Addr::from(base & mask))
    };
    let ports = [
        22u16, 25, 53, 80, 123, 443, 3306, 5432, 6379, 8080, 8443, 9092,
    ];
    let port = |r: &mut crate::scenario::Rng| ports[r.below(ports.len() as u64) as usize];
    let mut m = match r.below(10) {
        0 => format!(
            "ipv6,ipv6_src=2001:{:x}:{:x}::/48",
            0xdb9 + r.below(100),
            r.below(0xffff)
        ),
        1 | 2 => format!("ip,nw_src={}", v4(r)),
        3 | 4 => format!("ip,nw_dst={}", v4(r)),
        5 => format!("tcp,tp_dst={}", port(r)),
        6 => format!("udp,nw_dst={},tp_dst={}", v4(r), port(r)),
        7 => format!("tcp,nw_src={},tcp_flags=+syn-ack", v4(r)),
        8 => format!("udp,tp_src={}", 1024 + r.below(30_000)),
        _ => format!("ip,nw_src={},nw_dst={}", v4(r), v4(r)),
    };
    if r.below(8) == 0 {
        let _ = write!(m, ",dl_vlan={}", 1 + r.below(4000));
    }
    m
}

/// The OpenFlow table of `br-int` for `work`, one flow per line
/// (`ovs-ofctl add-flows` syntax).
pub fn flows(work: PeerWork) -> String {
    let out = "output(port=vx0,max_len=128)";
    match work {
        PeerWork::Io => "priority=0,actions=output:out0\n".into(),
        PeerWork::Vxlan => format!("priority=0,actions={out}\n"),
        PeerWork::Rules { rules } => {
            let mut s = String::new();
            let mut r = crate::scenario::Rng(0x0f5_1234_abcd_0002);
            for i in 0..rules.saturating_sub(1) {
                let _ = writeln!(
                    s,
                    "priority={},{},actions={out}",
                    100 + i,
                    mixed_match(&mut r)
                );
            }
            let _ = writeln!(s, "priority=0,actions={out}");
            s
        }
    }
}

/// The configuration as command lines, in the order they run.
/// `worker_core` is the PMD's core, `main_core` the EAL main lcore's.
pub fn commands(
    l: &Layout,
    capture: &Path,
    work: PeerWork,
    main_core: u32,
    worker_core: u32,
) -> Vec<Vec<String>> {
    let vsctl = |rest: &str| -> Vec<String> {
        let mut v = vec!["ovs-vsctl".to_owned(), format!("--db={}", l.db_sock())];
        v.extend(rest.split(' ').map(str::to_owned));
        v
    };
    let mut c = vec![vsctl("--no-wait init"), {
        let mut v = vsctl("--no-wait set Open_vSwitch .");
        v.extend([
                "other_config:dpdk-init=true".to_owned(),
                format!("other_config:dpdk-lcore-mask={:#x}", 1u64 << main_core),
                format!("other_config:pmd-cpu-mask={:#x}", 1u64 << worker_core),
                format!(
                    "other_config:dpdk-extra=--no-pci --in-memory --file-prefix={} --log-level=*:warning",
                    l.prefix
                ),
            ]);
        v
    }];
    // After ovs-vswitchd has started (see `Ovs::start`):
    c.push(vsctl(
        "add-br br-int -- set Bridge br-int datapath_type=netdev",
    ));
    c.push({
        let mut v = vsctl("add-port br-int in0 -- set Interface in0 type=dpdk");
        v.push(format!(
            "options:dpdk-devargs=net_pcap_ovs{},rx_pcap={},infinite_rx=1",
            l.tag,
            capture.display()
        ));
        v
    });
    let out_bridge = if work == PeerWork::Io {
        "br-int"
    } else {
        "br-phy"
    };
    if work != PeerWork::Io {
        c.push(vsctl(
            "add-br br-phy -- set Bridge br-phy datapath_type=netdev",
        ));
    }
    c.push({
        let mut v = vsctl(&format!(
            "add-port {out_bridge} out0 -- set Interface out0 type=dpdk"
        ));
        v.push(format!(
            "options:dpdk-devargs=net_null_ovs{},no-rx=1",
            l.tag
        ));
        v
    });
    let ip = |rest: &str| -> Vec<String> {
        let mut v = vec!["ip".to_owned(), "-n".to_owned(), l.netns.clone()];
        v.extend(rest.split(' ').map(str::to_owned));
        v
    };
    let ofctl = |rest: &str, bridge: &str| -> Vec<String> {
        let mut v = vec!["ovs-ofctl".to_owned()];
        let mut words: Vec<String> = rest.split(' ').map(str::to_owned).collect();
        // The bridge is named by its management socket in the run directory.
        words.insert(1, l.mgmt(bridge));
        v.extend(words);
        v
    };
    if work != PeerWork::Io {
        c.push(vsctl(
            "add-port br-int vx0 -- set Interface vx0 type=vxlan options:remote_ip=192.0.2.10 options:key=100",
        ));
        // The tunnel endpoint: br-phy's internal port, inside the namespace.
        c.push(ip("addr add 192.0.2.1/24 dev br-phy"));
        c.push(ip("link set br-phy up"));
        let mut v = vec![
            "ovs-appctl".to_owned(),
            "-t".to_owned(),
            l.ctl().display().to_string(),
        ];
        v.extend(
            "tnl/arp/set br-phy 192.0.2.10 02:00:00:00:00:0a"
                .split(' ')
                .map(str::to_owned),
        );
        c.push(v);
        // Tunnelled packets enter br-phy from LOCAL: straight to out0.
        c.push(ofctl("del-flows", "br-phy"));
        c.push(ofctl(
            "add-flow in_port=LOCAL,actions=output:out0",
            "br-phy",
        ));
    }
    c.push(ofctl("del-flows", "br-int"));
    let mut v = ofctl("add-flows", "br-int");
    v.push(l.dir.join("flows.txt").display().to_string());
    c.push(v);
    c
}

/// A network namespace that is deleted when dropped.
struct Netns(String);

impl Netns {
    fn create(name: &str) -> Result<Netns, String> {
        let st = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .map_err(|e| format!("ip netns add {name}: {e}"))?;
        if !st.success() {
            return Err(format!("ip netns add {name}: {st}"));
        }
        Ok(Netns(name.to_owned()))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs a command; its output on success, a message naming it otherwise.
fn exec(argv: &[String], dir: &Path) -> Result<String, String> {
    let o = Command::new(&argv[0])
        .args(&argv[1..])
        .env("OVS_RUNDIR", dir)
        .env("OVS_LOGDIR", dir)
        .env("OVS_DBDIR", dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", argv[0]))?;
    if !o.status.success() {
        return Err(format!(
            "`{}` failed ({}): {}",
            argv.join(" "),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

fn wait_for(path: &Path, child: &mut Child, what: &str, secs: u64) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !path.exists() {
        if let Ok(Some(s)) = child.try_wait() {
            return Err(format!(
                "{what} exited ({s}) before {} appeared",
                path.display()
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{what}: {} did not appear in {secs} s",
                path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// The two daemons of one run, stopped (by PID) and their namespace
/// removed when dropped.
struct Daemons {
    // Field order is drop order: daemons first, then the namespace.
    vswitchd: Option<Child>,
    ovsdb: Option<Child>,
    _netns: Netns,
}

impl Drop for Daemons {
    fn drop(&mut self) {
        if let Some(c) = &mut self.vswitchd {
            run::stop(c, "TERM");
        }
        if let Some(c) = &mut self.ovsdb {
            run::stop(c, "TERM");
        }
    }
}

fn spawn_in(netns: &str, argv: &[String], dir: &Path, log: &Path) -> Result<Child, String> {
    // `ip netns exec` execs the command: the child's PID is the daemon's.
    let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    Command::new("ip")
        .args(["netns", "exec", netns])
        .args(argv)
        .env("OVS_RUNDIR", dir)
        .env("OVS_LOGDIR", dir)
        .env("OVS_DBDIR", dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("ip netns exec {netns} {}: {e}", argv[0]))
}

/// Reads the `RX packets` of port `name` from `ovs-appctl dpctl/show -s`.
pub fn port_rx(dpctl: &str, name: &str) -> Option<u64> {
    port_counter(dpctl, name, "RX packets:")
}

/// Reads the `TX packets` of port `name` from `ovs-appctl dpctl/show -s`.
pub fn port_tx(dpctl: &str, name: &str) -> Option<u64> {
    port_counter(dpctl, name, "TX packets:")
}

fn port_counter(dpctl: &str, name: &str, key: &str) -> Option<u64> {
    let mut lines = dpctl.lines();
    lines.find(|l| {
        let l = l.trim_start();
        l.starts_with("port ")
            && l.split_whitespace()
                .nth(2)
                .is_some_and(|n| n.trim_end_matches(':') == name)
    })?;
    for l in lines {
        let l = l.trim_start();
        if l.starts_with("port ") {
            return None;
        }
        if let Some(rest) = l.strip_prefix(key) {
            return rest.split_whitespace().next()?.parse().ok();
        }
    }
    None
}

/// What an OVS run measured.
#[derive(Debug, Clone, Default)]
pub struct OvsRun {
    /// The rate over each measured interval.
    pub rates: Vec<Rate>,
    /// Packets received on in0 and sent on out0 over the measured intervals.
    pub rx: u64,
    pub tx: u64,
    /// Datapath flows (megaflows) at the start and end of the intervals:
    /// growth means upcalls were still being made.
    pub flows_before: u64,
    pub flows_after: u64,
    /// Start-up: database, daemons, ports and flows until in0 counts
    /// packets; stop: both daemons and the namespace gone.
    pub overhead: Overhead,
}

/// The datapath's flow count (`flows: N`) from `ovs-appctl dpctl/show`.
pub fn datapath_flows(dpctl: &str) -> Option<u64> {
    dpctl
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("flows:"))
        .and_then(|v| v.trim().parse().ok())
}

/// One OVS run: set up, warm up, measure in0's receive rate over each
/// interval, tear down.
/// `lcores` is the EAL lcore list the other programs get (`0-1`: the main
/// lcore, then the worker): OVS's main thread goes on the first core and
/// its one PMD thread on the second.
pub fn run(
    l: &Layout,
    capture: &Path,
    work: PeerWork,
    lcores: &str,
    t: &Timing,
) -> Result<OvsRun, String> {
    let (main_core, worker_core) = cores(lcores)?;
    let spawned = Instant::now();
    let _ = std::fs::remove_dir_all(&l.dir);
    std::fs::create_dir_all(&l.dir).map_err(|e| format!("{}: {e}", l.dir.display()))?;
    let dir = l.dir.canonicalize().map_err(|e| e.to_string())?;
    let l = Layout {
        dir: dir.clone(),
        ..l.clone()
    };
    std::fs::write(dir.join("flows.txt"), flows(work)).map_err(|e| e.to_string())?;
    let db = dir.join("conf.db");
    exec(
        &[
            "ovsdb-tool".into(),
            "create".into(),
            db.display().to_string(),
            SCHEMA.into(),
        ],
        &dir,
    )?;
    let mut d = Daemons {
        vswitchd: None,
        ovsdb: None,
        _netns: Netns::create(&l.netns)?,
    };
    let sock = dir.join("db.sock");
    d.ovsdb = Some(spawn_in(
        &l.netns,
        &[
            "ovsdb-server".into(),
            db.display().to_string(),
            format!("--remote=punix:{}", sock.display()),
            format!("--unixctl={}", dir.join("ovsdb-server.ctl").display()),
            format!("--log-file={}", dir.join("ovsdb-server.log").display()),
        ],
        &dir,
        &dir.join("ovsdb-server.out"),
    )?);
    if let Some(c) = d.ovsdb.as_mut() {
        wait_for(&sock, c, "ovsdb-server", 20)?;
    }
    let cmds = commands(&l, capture, work, main_core, worker_core);
    // The first two set the database up; ovs-vswitchd reads them at start.
    for c in &cmds[..2] {
        exec(c, &dir)?;
    }
    d.vswitchd = Some(spawn_in(
        &l.netns,
        &[
            VSWITCHD.into(),
            format!("unix:{}", sock.display()),
            format!("--unixctl={}", l.ctl().display()),
            format!("--log-file={}", dir.join("ovs-vswitchd.log").display()),
        ],
        &dir,
        &dir.join("ovs-vswitchd.out"),
    )?);
    if let Some(c) = d.vswitchd.as_mut() {
        wait_for(&l.ctl(), c, "ovs-vswitchd", 60)?;
    }
    for c in &cmds[2..] {
        exec(c, &dir)?;
    }
    for port in ["in0", "out0"] {
        let e = exec(
            &[
                "ovs-vsctl".into(),
                format!("--db={}", l.db_sock()),
                "get".into(),
                "Interface".into(),
                port.into(),
                "error".into(),
            ],
            &dir,
        )
        .unwrap_or_default();
        let e = e.trim();
        if !e.is_empty() && e != "[]" {
            return Err(format!("OVS port {port}: {e}"));
        }
    }
    let pid = d.vswitchd.as_ref().map_or(0, |c| c.id());
    let sample = || -> Result<(Reading, u64, u64), String> {
        let t0 = Instant::now();
        let text = exec(
            &[
                "ovs-appctl".into(),
                "-t".into(),
                l.ctl().display().to_string(),
                "dpctl/show".into(),
                "-s".into(),
            ],
            &dir,
        )?;
        let t1 = Instant::now();
        let cpu_ns = run::thread_cpu_ns(pid, &["pmd-c"]);
        let rx = port_rx(&text, "in0").ok_or_else(|| format!("no in0 RX in:\n{text}"))?;
        let tx = port_tx(&text, "out0").unwrap_or(0);
        let flows = datapath_flows(&text).unwrap_or(0);
        Ok((
            Reading {
                at: t0 + (t1 - t0) / 2,
                packets: rx,
                cpu_ns,
            },
            tx,
            flows,
        ))
    };
    // Forwarding has begun when in0 counts packets.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (r, _, _) = sample()?;
        if r.packets > 0 {
            break;
        }
        if Instant::now() >= deadline {
            return Err("OVS forwarded nothing within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let startup = spawned.elapsed();
    std::thread::sleep(Duration::from_secs(t.warmup));
    let (first, tx0, flows_before) = sample()?;
    let (mut a, mut tx1, mut flows_after) = (first, tx0, flows_before);
    let mut rates = Vec::new();
    for _ in 0..t.intervals.max(1) {
        std::thread::sleep(Duration::from_secs(t.measure));
        let (b, tx, flows) = sample()?;
        rates.push(run::rate(&a, &b));
        (a, tx1, flows_after) = (b, tx, flows);
    }
    let stopping = Instant::now();
    drop(d);
    Ok(OvsRun {
        rates,
        rx: a.packets.saturating_sub(first.packets),
        tx: tx1.saturating_sub(tx0),
        flows_before,
        flows_after,
        overhead: Overhead {
            startup,
            stop: stopping.elapsed(),
        },
    })
}

/// The main and worker cores of an EAL lcore list such as `0-1` or `2,5`.
pub fn cores(lcores: &str) -> Result<(u32, u32), String> {
    let mut v = Vec::new();
    for part in lcores.split(',') {
        let bad = || format!("lcores {lcores:?}: {part:?} is not a core or a range a-b");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (
                    a.trim().parse().map_err(|_| bad())?,
                    b.trim().parse().map_err(|_| bad())?,
                );
                v.extend(a..=b);
            }
            None => v.push(part.trim().parse().map_err(|_| bad())?),
        }
    }
    match v[..] {
        [main, worker, ..] if main < 64 && worker < 64 => Ok((main, worker)),
        _ => Err(format!(
            "lcores {lcores:?}: need a main and a worker core below 64"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_counters_come_from_the_named_port() {
        let text = "netdev@ovs-netdev:\n  lookups: hit:1 missed:2 lost:0\n  port 2: out0 (dpdk: configured_rx_queues=1)\n    RX packets:0 errors:0\n    TX packets:7262503 errors:0\n  port 4: in0 (dpdk: x)\n    RX packets:15124896 errors:0 dropped:0\n    TX packets:0 errors:0\n  port 5: vxlan_sys_4789 (vxlan)\n    RX packets:9\n";
        assert_eq!(port_rx(text, "in0"), Some(15_124_896));
        assert_eq!(port_tx(text, "out0"), Some(7_262_503));
        assert_eq!(port_rx(text, "out0"), Some(0));
        assert_eq!(port_rx(text, "in"), None);
        assert_eq!(port_tx(text, "vxlan_sys_4789"), None);
        assert_eq!(
            datapath_flows("netdev@ovs-netdev:\n  lookups: hit:1\n  flows: 5\n"),
            Some(5)
        );
    }

    #[test]
    fn rule_table_has_the_rule_count_and_ends_in_match_all() {
        let f = flows(PeerWork::Rules { rules: 1024 });
        assert_eq!(f.lines().count(), 1024);
        assert_eq!(
            f.lines().last(),
            Some("priority=0,actions=output(port=vx0,max_len=128)")
        );
        // No mixed rule matches the harness's traffic: IPv4 UDP 40000 →
        // 5001 within 10.0.0.0/9, or IPv6 within 2001:db8::/32, untagged.
        let outside_v4 = |cidr: &str| {
            let a: std::net::Ipv4Addr = cidr.split('/').next().unwrap().parse().unwrap();
            u32::from(a) & 0xff80_0000 != 0x0a00_0000
        };
        for line in f.lines().take(1023) {
            let fields: Vec<&str> = line.split(',').collect();
            let excluded = fields.iter().any(|f| match f.split_once('=') {
                Some(("nw_src" | "nw_dst", v)) => outside_v4(v),
                Some(("ipv6_src", v)) => !v.starts_with("2001:db8:"),
                Some(("tp_dst", v)) => v != "5001",
                Some(("tp_src", v)) => v != "40000",
                Some(("dl_vlan", _)) => true,
                None => *f == "tcp",
                _ => false,
            });
            assert!(excluded, "{line} could match the traffic");
        }
    }

    #[test]
    fn lcore_lists() {
        assert_eq!(cores("0-1"), Ok((0, 1)));
        assert_eq!(cores("2,5"), Ok((2, 5)));
        assert!(cores("3").is_err());
        assert!(cores("a-b").unwrap_err().contains("\"a-b\""));
    }

    #[test]
    fn commands_keep_addresses_inside_the_namespace() {
        let l = Layout {
            dir: "/run/x".into(),
            netns: "ns1".into(),
            prefix: "p".into(),
            tag: "7".into(),
        };
        let c = commands(&l, Path::new("/c.pcap"), PeerWork::Vxlan, 0, 1);
        for argv in &c {
            if argv[0] == "ip" {
                assert_eq!(argv[1..3], ["-n".to_owned(), "ns1".to_owned()], "{argv:?}");
            }
        }
        let all: Vec<String> = c.iter().map(|a| a.join(" ")).collect();
        assert!(all
            .iter()
            .any(|a| a.contains("net_pcap_ovs7,rx_pcap=/c.pcap,infinite_rx=1")));
        assert!(all.iter().any(|a| a.contains("pmd-cpu-mask=0x2")));
    }
}
