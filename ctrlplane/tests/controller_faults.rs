//! Faults at the controller: peers it must refuse (wrong CA, expired,
//! unknown or absent client certificate, a certificate for another name,
//! plaintext) and sessions that send broken frames (truncated, oversized,
//! garbage). Each is closed with a logged reason; a good session running
//! alongside never notices, and the controller keeps serving.

mod controller_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use controller_support::*;
use ctrlplane::agent::protocol::{encode, ApplianceMsg, Hello, MAX_FRAME, PROTOCOL_VERSION};
use ctrlplane::agent::tls;

/// A good appliance that stays connected through the faults.
fn bystander(fx: &Fixture, ctl: &mut Controller) -> Appliance {
    let app = Appliance::spawn(fx.agent_config(ctl, "steady"));
    let (v, ok) = app.take_policy();
    assert!(ok);
    ctl.wait_log(&format!("appliance steady acked policy {v}"));
    app
}

/// The bystander still works: a new policy reaches it and its ack is recorded.
fn bystander_unaffected(fx: &Fixture, ctl: &mut Controller, app: &Appliance, tag: &str) {
    fx.write_policy("web", &good_policy(tag));
    fx.import();
    let (v, ok) = app.take_policy();
    assert!(ok);
    ctl.wait_log(&format!("appliance steady acked policy {v}"));
    assert!(ctl.is_running());
    let reasons = app.handle.status.counters();
    assert_eq!(reasons.sessions, 1, "the bystander never reconnected");
}

fn fixture(tag: &str) -> (Fixture, Controller) {
    let fx = Fixture::new(tag);
    fx.write_policy("web", &good_policy("start"));
    fx.write_assign("default = \"web\"\n");
    let ctl = fx.controller();
    (fx, ctl)
}

/// One connection with a given client TLS config; returns our address
/// (the controller's log names it) and the error our side ended with.
fn try_session(ctl: &Controller, cfg: rustls::ClientConfig, name: &str) -> (SocketAddr, String) {
    let sock = TcpStream::connect(&ctl.addr).unwrap();
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    let local = sock.local_addr().unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), tls::server_name("localhost").unwrap())
        .unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    let err = (|| -> std::io::Result<()> {
        s.write_all(&hello_frame(name))?;
        s.flush()?;
        let mut buf = [0u8; 256];
        // Bounded by the read timeout: a refused peer gets an error or the end.
        loop {
            if s.read(&mut buf)? == 0 {
                return Err(std::io::Error::other("closed by the controller"));
            }
        }
    })()
    .unwrap_err();
    (local, err.to_string())
}

#[test]
fn peers_without_a_good_certificate_or_without_tls_are_refused() {
    let (fx, mut ctl) = fixture("refuse");
    let steady = bystander(&fx, &mut ctl);
    let dir = fx.dir.path();
    let other = Ca::new(dir, "other");
    let client =
        |ca: &std::path::Path, id: &Issued| tls::client_config(ca, &id.cert, &id.key).unwrap();

    // The appliance trusts another CA: it refuses the controller, and the
    // controller logs the alert it got.
    let id = fx.ca.client(dir, "wrong-ca");
    let (local, err) = try_session(&ctl, client(&other.pem, &id), "wrong-ca");
    assert!(
        err.contains("invalid peer certificate: UnknownIssuer"),
        "{err}"
    );
    ctl.wait_log(&format!(
        "refused {local}: TLS handshake failed: received fatal alert: UnknownCA"
    ));
    // The agent says so too, and keeps trying (with backoff) rather than giving up.
    let app = Appliance::spawn(fx.agent_config_with(&ctl, "wrong-ca", &id, &other.pem));
    for _ in 0..2 {
        let reason = app.wait_disconnected();
        assert!(
            reason.contains("invalid peer certificate: UnknownIssuer"),
            "{reason}"
        );
    }
    drop(app);

    // Client certificates the controller must refuse: from another CA,
    // expired, self-signed (unknown).
    let cases = [
        (
            other.client(dir, "foreign"),
            "foreign",
            "invalid peer certificate: UnknownIssuer",
        ),
        (
            fx.ca.expired_client(dir, "expired"),
            "expired",
            "invalid peer certificate: certificate expired",
        ),
        (
            self_signed_client(dir, "unknown"),
            "unknown",
            "invalid peer certificate: UnknownIssuer",
        ),
    ];
    for (id, name, why) in &cases {
        let (local, err) = try_session(&ctl, client(&fx.ca.pem, id), name);
        assert!(err.contains("alert"), "{name}: {err}");
        ctl.wait_log(&format!("refused {local}: TLS handshake failed: {why}"));
    }
    // The agent with an expired certificate learns why from the alert.
    let app = Appliance::spawn(fx.agent_config_with(&ctl, "expired", &cases[1].0, &fx.ca.pem));
    let reason = app.wait_disconnected();
    assert!(reason.contains("CertificateExpired"), "{reason}");
    drop(app);

    // No client certificate at all.
    let bare = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(tls::load_roots(&fx.ca.pem).unwrap())
        .with_no_client_auth();
    let (local, err) = try_session(&ctl, bare, "bare");
    assert!(err.contains("CertificateRequired"), "{err}");
    ctl.wait_log(&format!(
        "refused {local}: TLS handshake failed: peer sent no certificates"
    ));

    // A good certificate, but the hello claims another appliance's name.
    let id = fx.ca.client(dir, "tap-real");
    let app = Appliance::spawn(fx.agent_config_with(&ctl, "tap-fake", &id, &fx.ca.pem));
    let reason = app.wait_disconnected();
    assert!(
        reason
            .contains("refused the session: the client certificate is not issued to \"tap-fake\""),
        "{reason}"
    );
    ctl.wait_log("closed before hello: the client certificate is not issued to \"tap-fake\"");
    drop(app);

    // Plaintext: a hello frame without TLS.
    let mut plain = TcpStream::connect(&ctl.addr).unwrap();
    plain.set_read_timeout(Some(DEADLINE)).unwrap();
    let local = plain.local_addr().unwrap();
    plain.write_all(&hello_frame("plain")).unwrap();
    ctl.wait_log(&format!(
        "refused {local}: plaintext, not a TLS handshake (first byte 0x00)"
    ));
    // The controller closed it: end of stream or reset, never data.
    let mut buf = [0u8; 16];
    assert!(!matches!(plain.read(&mut buf), Ok(n) if n > 0));

    // None of them ever got as far as a session.
    let list = ctl.list();
    for name in [
        "wrong-ca", "foreign", "expired", "unknown", "bare", "tap-fake", "plain",
    ] {
        assert!(
            !list.iter().any(|a| a.name == name),
            "{name} was registered"
        );
    }
    bystander_unaffected(&fx, &mut ctl, &steady, "after-refusals");
}

fn hello_frame(name: &str) -> Vec<u8> {
    encode(&ApplianceMsg::Hello(Hello {
        name: name.into(),
        labels: Default::default(),
        sluice_version: "test".into(),
        protocol_version: PROTOCOL_VERSION,
        capabilities: vec![],
        ports: vec![],
        policy_version: None,
    }))
    .unwrap()
}

/// A hand-driven TLS session with a good certificate for `name`.
struct RawSession {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl RawSession {
    fn open(fx: &Fixture, ctl: &Controller, name: &str) -> RawSession {
        let id = fx.ca.client(fx.dir.path(), name);
        let cfg = tls::client_config(&fx.ca.pem, &id.cert, &id.key).unwrap();
        let conn =
            rustls::ClientConnection::new(Arc::new(cfg), tls::server_name("localhost").unwrap())
                .unwrap();
        let sock = TcpStream::connect(&ctl.addr).unwrap();
        RawSession {
            tls: rustls::StreamOwned::new(conn, sock),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.tls.write_all(bytes).unwrap();
        self.tls.flush().unwrap();
    }

    /// Says hello and waits for the controller's hello-ack.
    fn hello(&mut self, name: &str) {
        self.send(&hello_frame(name));
        let mut hdr = [0u8; 4];
        self.tls.read_exact(&mut hdr).unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(hdr) as usize];
        self.tls.read_exact(&mut body).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["type"], "hello_ack", "{v}");
    }

    /// Reads until the controller closes; true if it did.
    fn closed_by_peer(&mut self) -> bool {
        self.read_to_close().is_some()
    }

    /// Everything the controller sends until it closes the session.
    fn read_to_close(&mut self) -> Option<Vec<u8>> {
        self.tls.sock.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        // Bounded: the controller closes within its own timeouts, and
        // anything it sends first (a policy, an error) is finite.
        for _ in 0..10_000 {
            match self.tls.read(&mut buf) {
                Ok(0) => return Some(all),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
                Err(_) => return Some(all),
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
        None
    }

    /// Ends the TLS session cleanly (close_notify), then the TCP stream.
    fn finish(mut self) {
        self.tls.conn.send_close_notify();
        let _ = self.tls.flush();
        let _ = self.tls.sock.shutdown(std::net::Shutdown::Write);
        let _ = self.closed_by_peer();
    }
}

#[test]
fn broken_frames_close_that_session_with_a_reason_and_nothing_else() {
    let (fx, mut ctl) = fixture("frames");
    let steady = bystander(&fx, &mut ctl);

    // Truncated: a header for 100 bytes, 10 bytes, then the end.
    let mut s = RawSession::open(&fx, &ctl, "trunc");
    s.hello("trunc");
    ctl.wait_log("appliance trunc connected");
    let mut f = 100u32.to_be_bytes().to_vec();
    f.extend_from_slice(b"{\"v\":1,\"ty");
    s.send(&f);
    s.finish();
    let line = ctl.wait_log("truncated frame: the connection ended after 14 of 104 bytes");
    assert!(line.contains("session trunc"), "{line}");

    // Oversized: a header announcing twice the limit; closed at once,
    // without the body ever being sent.
    let mut s = RawSession::open(&fx, &ctl, "big");
    s.hello("big");
    s.send(&((2 * MAX_FRAME) as u32).to_be_bytes());
    assert!(s.closed_by_peer());
    let line = ctl.wait_log(&format!(
        "oversized frame: {} bytes announced, the limit is {MAX_FRAME}",
        2 * MAX_FRAME
    ));
    assert!(line.contains("session big"), "{line}");

    // Garbage: a well-framed body that is not JSON.
    let mut s = RawSession::open(&fx, &ctl, "junk");
    s.hello("junk");
    let body = b"\x00\x01 definitely not json";
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    s.send(&f);
    assert!(s.closed_by_peer());
    let line = ctl.wait_log("session junk from");
    assert!(line.contains("garbage: not a JSON object"), "{line}");

    // Garbage that is JSON but not a message, before any hello.
    let mut s = RawSession::open(&fx, &ctl, "early");
    let body = br#"{"v":1,"type":"launch_missiles"}"#;
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    s.send(&f);
    assert!(s.closed_by_peer());
    let line = ctl.wait_log("closed before hello: garbage: not a message");
    assert!(line.contains("launch_missiles"), "{line}");

    // Another protocol version.
    let mut s = RawSession::open(&fx, &ctl, "future");
    s.hello("future");
    let body = br#"{"v":9,"type":"ack","version":"x"}"#;
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    s.send(&f);
    assert!(s.closed_by_peer());
    ctl.wait_log("protocol version 9 is not supported");

    // The sessions are recorded as closed, with their reasons.
    let list = ctl.list();
    for (name, why) in [
        ("trunc", "truncated frame"),
        ("big", "oversized frame"),
        ("junk", "garbage"),
    ] {
        let a = list.iter().find(|a| a.name == name).expect(name);
        assert!(!a.connected, "{name}");
        assert!(
            a.disconnect_reason
                .as_deref()
                .is_some_and(|r| r.contains(why)),
            "{name}: {:?}",
            a.disconnect_reason
        );
    }
    bystander_unaffected(&fx, &mut ctl, &steady, "after-frames");
}

#[test]
fn a_second_session_for_the_same_name_replaces_the_first() {
    let (fx, mut ctl) = fixture("replace");
    let mut old = RawSession::open(&fx, &ctl, "dup");
    old.hello("dup");
    ctl.wait_log("appliance dup connected");
    let mut new = RawSession::open(&fx, &ctl, "dup");
    new.hello("dup");
    ctl.wait_log("appliance dup: a new session from");
    // The old session is told why, then closed.
    let said = old.read_to_close().expect("closed");
    let said = String::from_utf8_lossy(&said);
    assert!(
        said.contains("\"type\":\"error\"") && said.contains("replaced by a new session"),
        "{said}"
    );
    ctl.wait_log("closed: replaced by a new session from");
    let a = ctl.show("dup");
    assert!(a.connected);
    new.finish();
}

/// A stand-in controller that answers each connection's hello with a
/// hello-ack and then `script[i]` for the i-th connection, then waits for
/// the appliance to close.
fn fake_controller(fx: &Fixture, script: Vec<Vec<u8>>) -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let cfg = Arc::new(tls::server_config(&fx.ca.pem, &fx.server.cert, &fx.server.key).unwrap());
    let ack = encode(&ctrlplane::agent::protocol::ControllerMsg::HelloAck {
        controller_version: "fake".into(),
        protocol_version: PROTOCOL_VERSION,
        keepalive_ms: 60_000,
        heartbeat_ms: 1000,
        policy: None,
    })
    .unwrap();
    let t = std::thread::spawn(move || {
        for bytes in script {
            let (sock, _) = listener.accept().unwrap();
            sock.set_read_timeout(Some(DEADLINE)).unwrap();
            let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
            let mut s = rustls::StreamOwned::new(conn, sock);
            let mut hdr = [0u8; 4];
            s.read_exact(&mut hdr).unwrap();
            let mut body = vec![0u8; u32::from_be_bytes(hdr) as usize];
            s.read_exact(&mut body).unwrap();
            s.write_all(&ack).unwrap();
            s.write_all(&bytes).unwrap();
            s.flush().unwrap();
            if bytes.len() >= 4 && bytes[..4] == [0, 0, 0, 50] {
                // Truncated: end the stream inside the frame.
                s.conn.send_close_notify();
                let _ = s.flush();
            }
            // The appliance closes; read to the end (bounded by the timeout).
            let mut buf = [0u8; 1024];
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        }
    });
    (addr, t)
}

#[test]
fn the_agent_drops_a_controller_session_that_sends_broken_frames_and_reconnects() {
    let fx = Fixture::new("agent-frames");
    let mut truncated = 50u32.to_be_bytes().to_vec();
    truncated.extend_from_slice(b"{\"v\":1");
    let oversized = ((MAX_FRAME + 1) as u32).to_be_bytes().to_vec();
    let mut garbage = 5u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(b"\xff\xfe!!!");
    let good = encode(&ctrlplane::agent::protocol::ControllerMsg::Policy {
        version: "p@1".into(),
        name: "p".into(),
        text: good_policy("after"),
    })
    .unwrap();
    let (addr, server) = fake_controller(&fx, vec![truncated, oversized, garbage, good]);
    let id = fx.ca.client(fx.dir.path(), "tap-09");
    let app = Appliance::spawn(fx.agent_config_at(&addr, "tap-09", &id, &fx.ca.pem));
    for want in [
        "truncated frame: the connection ended after 10 of 54 bytes",
        "oversized frame: 1048577 bytes announced, the limit is 1048576",
        "garbage: not a JSON object",
    ] {
        app.wait_connected();
        let reason = app.wait_disconnected();
        assert!(reason.contains(want), "want {want:?}, got {reason:?}");
    }
    // The fourth session is a good one: the policy arrives and is acked.
    app.wait_connected();
    let (v, ok) = app.take_policy();
    assert_eq!((v.as_str(), ok), ("p@1", true));
    assert_eq!(app.handle.status.counters().sessions, 4);
    drop(app);
    server.join().unwrap();
}
