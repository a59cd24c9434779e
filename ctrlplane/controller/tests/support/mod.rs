//! Shared by the tests that run the controller: certificates made at run
//! time (rcgen), a real etcd (one member or a cluster) on loopback ports
//! of its own with its data in the test's directory, a policy directory
//! imported into it, and the real `sluice-controller` process with its
//! log read line by line. The controller's own tests use
//! it as `mod support`; `ctrlplane`'s tests, which run the appliance's
//! agent against the controller, include this same file and add the
//! appliance side (`ctrlplane/tests/controller_support/`).
//!
//! Nothing here sleeps to synchronise: waits are on the controller's log
//! lines with a deadline.

#![allow(dead_code)]

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use sluice_controller::admin::{request_as, AdminRequest};
use sluice_controller::registry::ApplianceView;

/// How long any single wait may take before the test fails. Generous:
/// CI machines are shared; passing tests never wait this long.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The `sluice-controller` binary. The controller's own tests get its path
/// from cargo; other packages' tests find it beside their own executables
/// in the target directory, where `cargo test --workspace` builds it.
pub fn controller_bin() -> PathBuf {
    if let Some(p) = option_env!("CARGO_BIN_EXE_sluice-controller") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/<test>-<hash> → target/<profile>/sluice-controller
    let exe = std::env::current_exe().expect("the test's own path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("sluice-controller"));
    match bin {
        Some(bin) if bin.is_file() => bin,
        _ => panic!(
            "no sluice-controller binary beside {}: run `cargo build -p sluice-controller` \
             (or the whole `cargo test --workspace`) first",
            exe.display()
        ),
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A directory of its own, removed at the end.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!(
            "sluice-ctl-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CA that can issue certificates, written as PEM files.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    pub pem: PathBuf,
}

/// A certificate and its key as PEM files.
#[derive(Clone, Debug)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        p.distinguished_name.push(DnType::CommonName, name);
        let cert = p.self_signed(&key).unwrap();
        let pem = dir.join(format!("{name}.ca.pem"));
        std::fs::write(&pem, cert.pem()).unwrap();
        Ca { cert, key, pem }
    }

    fn issue_with(&self, dir: &Path, file: &str, mut p: CertificateParams) -> Issued {
        let key = KeyPair::generate().unwrap();
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        let out = Issued {
            cert: dir.join(format!("{file}.pem")),
            key: dir.join(format!("{file}.key")),
        };
        std::fs::write(&out.cert, cert.pem()).unwrap();
        std::fs::write(&out.key, key.serialize_pem()).unwrap();
        out
    }

    /// A server certificate for `localhost`.
    pub fn server(&self, dir: &Path) -> Issued {
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.distinguished_name
            .push(DnType::CommonName, "sluice-controller");
        self.issue_with(dir, "controller", p)
    }

    /// An etcd member's certificate: a server for `127.0.0.1` and
    /// `localhost`, and a client of the other members.
    pub fn etcd_member(&self, dir: &Path, name: &str) -> Issued {
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.subject_alt_names
            .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.distinguished_name.push(DnType::CommonName, name);
        self.issue_with(dir, name, p)
    }

    /// A client certificate for appliance `name`.
    pub fn client(&self, dir: &Path, name: &str) -> Issued {
        let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.distinguished_name.push(DnType::CommonName, name);
        self.issue_with(
            dir,
            &format!("{name}-{}", SEQ.fetch_add(1, Ordering::Relaxed)),
            p,
        )
    }

    /// A client certificate for `name` that expired in 2021.
    pub fn expired_client(&self, dir: &Path, name: &str) -> Issued {
        let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        self.issue_with(dir, &format!("{name}-expired"), p)
    }
}

/// A self-signed client certificate: issued by no CA anyone trusts.
pub fn self_signed_client(dir: &Path, name: &str) -> Issued {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.self_signed(&key).unwrap();
    let out = Issued {
        cert: dir.join(format!("{name}-selfsigned.pem")),
        key: dir.join(format!("{name}-selfsigned.key")),
    };
    std::fs::write(&out.cert, cert.pem()).unwrap();
    std::fs::write(&out.key, key.serialize_pem()).unwrap();
    out
}

/// A free TCP port on loopback (the OS picks it; it is free again when
/// this returns, and etcd binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real etcd: one member or a cluster, TLS with client certificates
/// between members and for clients, data in the test's directory,
/// stopped by PID.
pub struct Etcd {
    members: Vec<Option<Child>>,
    pub endpoints: Vec<String>,
    /// The certificate controllers and the operator's commands use.
    pub client: Issued,
    pub ca: PathBuf,
}

impl Etcd {
    pub fn start(dir: &Path, ca: &Ca, n: usize) -> Etcd {
        let bin = "/usr/bin/etcd";
        assert!(
            Path::new(bin).is_file(),
            "{bin} is missing: scripts/setup.sh installs etcd-server"
        );
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let token = format!(
            "sluice-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let cluster: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=https://127.0.0.1:{peer}"))
            .collect();
        let mut members = Vec::new();
        let mut ready = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let cert = ca.etcd_member(dir, &format!("etcd-m{i}"));
            let data = dir.join(format!("etcd-m{i}"));
            let mut child = Command::new(bin)
                .arg("--name")
                .arg(format!("m{i}"))
                .arg("--data-dir")
                .arg(&data)
                .arg("--listen-client-urls")
                .arg(format!("https://127.0.0.1:{client}"))
                .arg("--advertise-client-urls")
                .arg(format!("https://127.0.0.1:{client}"))
                .arg("--listen-peer-urls")
                .arg(format!("https://127.0.0.1:{peer}"))
                .arg("--initial-advertise-peer-urls")
                .arg(format!("https://127.0.0.1:{peer}"))
                .arg("--initial-cluster")
                .arg(cluster.join(","))
                .arg("--initial-cluster-token")
                .arg(&token)
                .arg("--initial-cluster-state")
                .arg("new")
                .args(["--client-cert-auth", "--peer-client-cert-auth"])
                .arg("--trusted-ca-file")
                .arg(&ca.pem)
                .arg("--cert-file")
                .arg(&cert.cert)
                .arg("--key-file")
                .arg(&cert.key)
                .arg("--peer-trusted-ca-file")
                .arg(&ca.pem)
                .arg("--peer-cert-file")
                .arg(&cert.cert)
                .arg("--peer-key-file")
                .arg(&cert.key)
                .args(["--logger", "zap", "--log-outputs", "stderr"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let stderr = child.stderr.take().unwrap();
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let mut told = false;
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { return };
                    if !told && line.contains("serving client traffic") {
                        told = true;
                        let _ = tx.send(());
                    }
                }
            });
            members.push(Some(child));
            ready.push(rx);
        }
        for (i, r) in ready.iter().enumerate() {
            r.recv_timeout(DEADLINE)
                .unwrap_or_else(|_| panic!("etcd member m{i} not ready within {DEADLINE:?}"));
        }
        let client = ca.client(dir, "sluice-controller");
        Etcd {
            members,
            endpoints: ports
                .iter()
                .map(|(c, _)| format!("https://127.0.0.1:{c}"))
                .collect(),
            client,
            ca: ca.pem.clone(),
        }
    }

    /// SIGKILL to member `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The arguments every etcd client of the fleet takes.
    pub fn args(&self) -> Vec<OsString> {
        vec![
            "--etcd".into(),
            self.endpoints.join(",").into(),
            "--etcd-ca".into(),
            self.ca.clone().into(),
            "--etcd-cert".into(),
            self.client.cert.clone().into(),
            "--etcd-key".into(),
            self.client.key.clone().into(),
        ]
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// Everything a test needs: CA, controller certificate, etcd, policy dir.
pub struct Fixture {
    /// First: stopped before its data directory goes.
    pub etcd: Etcd,
    pub dir: TempDir,
    pub ca: Ca,
    pub server: Issued,
    pub policies: PathBuf,
    pub admin: PathBuf,
}

impl Fixture {
    /// With a one-member etcd.
    pub fn new(tag: &str) -> Self {
        Self::with_etcd(tag, 1)
    }

    /// With an etcd cluster of `members`.
    pub fn with_etcd(tag: &str, members: usize) -> Self {
        let dir = TempDir::new(tag);
        let ca = Ca::new(dir.path(), "sluice-test");
        let server = ca.server(dir.path());
        let policies = dir.path().join("policies");
        std::fs::create_dir_all(&policies).unwrap();
        let admin = dir.path().join("admin.sock");
        let etcd = Etcd::start(dir.path(), &ca, members);
        Fixture {
            dir,
            ca,
            server,
            policies,
            admin,
            etcd,
        }
    }

    /// Runs `sluice-controller ARGS` with the fleet's etcd, as an operator.
    pub fn fleet_cli(&self, args: &[&str]) -> Output {
        Command::new(controller_bin())
            .args(args)
            .args(self.etcd.args())
            .output()
            .unwrap()
    }

    /// Imports the policy directory into etcd; its report (JSON).
    pub fn import(&self) -> String {
        let out = self.fleet_cli(&["import", self.policies.to_str().unwrap(), "--by", "test"]);
        assert!(
            out.status.success(),
            "import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn write_policy(&self, name: &str, text: &str) {
        // Write then rename: the controller never reads half a file.
        let tmp = self.policies.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.policies.join(format!("{name}.toml"))).unwrap();
    }

    pub fn write_assign(&self, text: &str) {
        let tmp = self.policies.join(".assign.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.policies.join("assign.toml")).unwrap();
    }

    /// Imports the policy directory, then starts `sluice-controller
    /// serve` on an OS-chosen port.
    pub fn controller(&self) -> Controller {
        Controller::spawn(self, "127.0.0.1:0")
    }
}

/// The real controller process; its stderr is read line by line.
pub struct Controller {
    child: Child,
    pub addr: String,
    lines: Receiver<String>,
    pub log: Vec<String>,
    admin: PathBuf,
}

impl Controller {
    pub fn spawn(fx: &Fixture, listen: &str) -> Controller {
        Self::spawn_with(fx, listen, &[], true)
    }

    /// With extra `serve` arguments; `echo`: copy its log to the test's output.
    pub fn spawn_with(fx: &Fixture, listen: &str, extra: &[&str], echo: bool) -> Controller {
        let id = format!("ctl-{}", SEQ.fetch_add(1, Ordering::Relaxed));
        let admin = fx.dir.path().join(format!("{id}.sock"));
        Self::spawn_as(fx, &id, &admin, listen, extra, echo)
    }

    /// Controller `id` with its own admin socket, beside others.
    pub fn spawn_as(
        fx: &Fixture,
        id: &str,
        admin: &Path,
        listen: &str,
        extra: &[&str],
        echo: bool,
    ) -> Controller {
        if std::fs::read_dir(&fx.policies).unwrap().next().is_some() {
            // A broken file is the test's business: what imports is there.
            let _ = fx.fleet_cli(&["import", fx.policies.to_str().unwrap(), "--by", "test"]);
        }
        let mut child = Command::new(controller_bin())
            .arg("--admin")
            .arg(admin)
            .args(fx.etcd.args())
            .arg("serve")
            .arg("--id")
            .arg(id)
            .arg("--listen")
            .arg(listen)
            .arg("--ca")
            .arg(&fx.ca.pem)
            .arg("--cert")
            .arg(&fx.server.cert)
            .arg("--key")
            .arg(&fx.server.key)
            .args(["--lease-ttl-ms", "2000", "--keepalive-ms", "2000"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let tag = id.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if echo {
                    eprintln!("[{tag}] {line}");
                }
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut c = Controller {
            child,
            addr: String::new(),
            lines,
            log: Vec::new(),
            admin: admin.to_path_buf(),
        };
        let l = c.wait_log("listening on ");
        c.addr = l.rsplit(' ').next().unwrap().to_owned();
        c
    }

    /// Waits for a log line containing `pat`: any line so far, or the next.
    pub fn wait_log(&mut self, pat: &str) -> String {
        if let Some(l) = self.log.iter().find(|l| l.contains(pat)) {
            return l.clone();
        }
        self.next_log(pat)
    }

    /// Waits for a line containing `pat` among those not yet read.
    pub fn next_log(&mut self, pat: &str) -> String {
        let until = Instant::now() + DEADLINE;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.log.push(l.clone());
                    if l.contains(pat) {
                        return l;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no controller log line with {pat:?}; log so far:\n{}",
                        self.log.join("\n")
                    )
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "controller exited before logging {pat:?}; log:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// Reads every line logged so far without waiting.
    pub fn drain(&mut self) {
        while let Ok(l) = self.lines.try_recv() {
            self.log.push(l);
        }
    }

    pub fn show(&self, name: &str) -> ApplianceView {
        request_as(
            &self.admin,
            &AdminRequest::Show {
                name: name.to_owned(),
            },
            "appliance",
        )
        .unwrap()
    }

    pub fn list(&self) -> Vec<ApplianceView> {
        request_as(&self.admin, &AdminRequest::List, "appliances").unwrap()
    }

    /// Runs the controller binary as the operator would, against this one.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(controller_bin())
            .arg("--admin")
            .arg(&self.admin)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sluice-controller {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn admin_path(&self) -> &Path {
        &self.admin
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGKILL: no goodbye to anyone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A valid policy; `tag` changes its content (and so its version).
pub fn good_policy(tag: &str) -> String {
    format!(
        r#"version = "{tag}"

[[destination]]
name = "noc"
tunnel = "vxlan"
remote = "192.0.2.10"
vni = 100

[[rule]]
name = "all"
in_port = "tap0"
to = ["noc"]
"#
    )
}

/// A policy that parses but has two errors the appliance finds.
pub const BAD_POLICY: &str = r#"version = "bad"

[[group]]
name = "web"
cidrs = ["10.0.0.0/33"]

[[rule]]
name = "to-nowhere"
to = ["missing"]
"#;
