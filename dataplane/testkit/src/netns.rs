//! Network namespaces of a test, the veth pairs between them and captures
//! inside them; everything is created inside the test's namespaces and
//! removed on drop, so nothing touches the machine's own.

use std::path::Path;
use std::process::{Command, Output};

use crate::names::{seq, unique};

/// Runs `ip <args>`; panics with its message when it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (package iproute2: run `make setup`)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace of the test, deleted on drop.
pub struct Netns(pub String);

impl Netns {
    /// A new namespace named after `tag`, loopback up and IPv6 off (no
    /// router or neighbour solicitations in a capture).
    pub fn quiet(tag: &str) -> Netns {
        let ns = Netns(unique(tag));
        ip(&["netns", "add", &ns.0]);
        let ok = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.0,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ])
            .status()
            .expect("sysctl")
            .success();
        assert!(ok, "cannot disable IPv6 in {}", ns.0);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.0
    }

    /// `ip -n <ns> <args>`.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// What `ip -n <ns> <args>` prints (`neigh show`, `link show`...).
    pub fn ip_output(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["-n", self.name()])
            .args(args)
            .output()
            .expect("ip (package iproute2: run `make setup`)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `program args` inside the namespace to completion; panics with
    /// its stderr when it fails.
    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        let out = Command::new("ip")
            .args(["netns", "exec", self.name(), program])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program} (run `make setup`): {e}"));
        assert!(
            out.status.success(),
            "{program} in {}: {}",
            self.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A unique interface name (at most 15 characters) starting with `tag`
/// (three letters).
pub fn ifname(tag: &str) -> String {
    format!("{tag}{}x{}", std::process::id() % 100_000, seq())
}

/// Sluice's namespace and a receiver's, joined by a veth pair; both
/// deleted on drop.
pub struct Namespaces {
    pub sluice: Netns,
    pub receiver: Netns,
    /// Sluice's end of the veth pair (in `sluice`).
    pub veth_s: String,
    /// The receiver's end (in `receiver`, address 192.0.2.10/24).
    pub veth_r: String,
}

impl Default for Namespaces {
    fn default() -> Self {
        Self::new()
    }
}

impl Namespaces {
    pub fn new() -> Namespaces {
        let n = Namespaces {
            sluice: Netns::quiet("ns-s"),
            receiver: Netns::quiet("ns-r"),
            veth_s: ifname("sls"),
            veth_r: ifname("slr"),
        };
        ip(&[
            "link",
            "add",
            &n.veth_s,
            "netns",
            n.sluice.name(),
            "type",
            "veth",
            "peer",
            "name",
            &n.veth_r,
            "netns",
            n.receiver.name(),
        ]);
        n.sluice.ip(&["link", "set", &n.veth_s, "up"]);
        let r = &n.receiver;
        r.ip(&["addr", "add", "192.0.2.10/24", "dev", &n.veth_r]);
        r.ip(&["link", "set", &n.veth_r, "up"]);
        r.ip(&[
            "link",
            "add",
            "vx100",
            "type",
            "vxlan",
            "id",
            "100",
            "dstport",
            "4789",
            "local",
            "192.0.2.10",
            "dev",
            &n.veth_r,
        ]);
        r.ip(&["link", "set", "vx100", "up"]);
        n
    }
}

/// tcpdump on `iface` inside namespace `netns`, writing `count` frames to
/// `out` and then exiting; returns once it listens. Immediate mode and a
/// large buffer, so a fast burst is not dropped by the capture socket.
pub fn capture_in(
    netns: &str,
    iface: &str,
    extra: &[&str],
    out: &Path,
    count: usize,
) -> std::process::Child {
    use std::io::BufRead;
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            netns,
            "tcpdump",
            "-i",
            iface,
            "--immediate-mode",
            "-B",
            "32768",
            "-n",
            "-U",
            "-s",
            "0",
        ])
        .args(extra)
        .arg("-w")
        .arg(out)
        .args(["-c", &count.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tcpdump (run `make setup`)");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = std::io::BufReader::new(stderr).lines();
    assert!(
        lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains("listening on")),
        "tcpdump did not start on {iface}"
    );
    std::thread::spawn(move || lines.for_each(drop));
    child
}

/// Waits (at most 30 s) for a capture started with `capture_in` to end.
pub fn wait_capture(child: &mut std::process::Child, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().expect("tcpdump").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
