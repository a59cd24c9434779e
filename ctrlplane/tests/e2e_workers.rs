//! Two workers behind the distributor (the input has no RSS): every flow
//! stays on one worker and keeps its order.

mod common;

use std::collections::HashMap;

use common::*;
use etherparse::PacketBuilder;

const FLOWS: u16 = 16;
const PER_FLOW: u32 = 40;

const CONFIG: &str = r#"
[[port]]
name = "tap0"
device = "net_pcap_wk_in,rx_pcap=@IN@"
role = "input"

# One pcap writer per TX queue: worker i writes uplink-i.
[[port]]
name = "uplink"
device = "net_pcap_wk_up,tx_pcap=@OUT0@,tx_pcap=@OUT1@"
role = "uplink"

[[uplink]]
port = "uplink"
address = "192.0.2.1/24"
mac = "02:00:00:00:00:01"

[[neighbor]]
ip = "192.0.2.10"
mac = "02:00:00:00:00:0a"

[dedup]
table_entries = 4096
"#;

const POLICY: &str = r#"
[[destination]]
name = "noc"
tunnel = "vxlan"
remote = "192.0.2.10"
vni = 9
dedup = false

[[rule]]
name = "all"
to = ["noc"]
"#;

#[test]
fn two_workers_keep_each_flow_on_one_worker_in_order() {
    let dir = tmpdir("workers");
    let mut frames = Vec::new();
    for seq in 0..PER_FLOW {
        for flow in 0..FLOWS {
            let mut payload = flow.to_be_bytes().to_vec();
            payload.extend_from_slice(&seq.to_be_bytes());
            let mut out = Vec::new();
            PacketBuilder::ethernet2([2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 2, 2])
                .ipv4([10, 1, (flow % 4) as u8, 1], [10, 2, 0, 1], 64)
                .udp(20000 + flow, 7)
                .write(&mut out, &payload)
                .expect("build");
            frames.push(out);
        }
    }
    write_pcap(&dir.join("in.pcap"), &frames);
    let path = |n: &str| dir.join(n).display().to_string();
    let cfg = CONFIG
        .replace("@IN@", &path("in.pcap"))
        .replace("@OUT0@", &path("uplink-0.pcap"))
        .replace("@OUT1@", &path("uplink-1.pcap"));
    std::fs::write(dir.join("a.toml"), cfg).expect("config");
    std::fs::write(dir.join("p.toml"), POLICY).expect("policy");

    // Main, two workers and the distributor on this machine's two CPUs.
    let mut s = Running::start(
        &eal(&unique("workers"), "0@0,1@1,2@1,3@0"),
        &[
            "--config",
            &path("a.toml"),
            "--policy",
            &path("p.toml"),
            "--exit-when-idle",
            "300",
        ],
    );
    let running = s.wait_for("running:", 60);
    assert!(
        running.contains("2 worker(s) and a distributor"),
        "{running}"
    );
    let (code, report) = s.finish();
    assert_eq!(code, Some(0), "{report}");
    assert_accounting(&report);
    assert_eq!(total(&report, "forwarded"), frames.len() as u64, "{report}");

    let mut worker_of: HashMap<u16, usize> = HashMap::new();
    let mut next_seq: HashMap<u16, u32> = HashMap::new();
    let mut per_worker = [0usize; 2];
    for (w, file) in ["uplink-0.pcap", "uplink-1.pcap"].iter().enumerate() {
        for f in read_pcap(&dir.join(file)) {
            // Outer Ethernet, IPv4, UDP, VXLAN; inner Ethernet, IPv4, UDP.
            let p = &f[50 + 42..];
            let flow = u16::from_be_bytes([p[0], p[1]]);
            let seq = u32::from_be_bytes([p[2], p[3], p[4], p[5]]);
            assert_eq!(
                *worker_of.entry(flow).or_insert(w),
                w,
                "flow {flow} on two workers"
            );
            let want = next_seq.entry(flow).or_insert(0);
            assert_eq!(seq, *want, "flow {flow} out of order");
            *want += 1;
            per_worker[w] += 1;
        }
    }
    assert_eq!(next_seq.len(), usize::from(FLOWS));
    assert!(
        next_seq.values().all(|&n| n == PER_FLOW),
        "every packet of every flow: {next_seq:?}"
    );
    assert!(
        per_worker.iter().all(|&n| n > 0),
        "both workers carried flows: {per_worker:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
