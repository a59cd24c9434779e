//! The agent thread: connect, hello, relay, reconnect.
//!
//! Two threads per agent: the agent itself (owns the state, writes to the
//! controller, waits on the main loop's replies and its session's input at
//! once), and per session a reader that blocks on the socket and turns
//! frames into agent inputs. The TLS state sits behind a mutex that is held
//! only to feed it received bytes or to give it bytes to send, never while
//! blocked on the socket for reading.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, Sender};
use rustls::ClientConnection;

use super::backoff::Backoff;
use super::protocol::{
    decode, encode, ApplianceMsg, CommandKind, CommandResult, ControllerMsg, FrameDecoder,
    Heartbeat, Hello, PROTOCOL_VERSION,
};
use super::rotation::Rotation;
use super::{
    persist, tls, AgentConfig, AgentEvent, AgentHandle, AgentReply, AgentStatus, OperatorCommand,
};

/// The appliance's log (text or JSON, `crate::log`), marked as the
/// controller session's.
#[track_caller]
fn log(msg: impl AsRef<str>) {
    crate::log::log(format!("controller: {}", msg.as_ref()));
}

/// Policies relayed and not yet acked or nacked, kept for persisting.
const PENDING_POLICIES: usize = 4;
/// Commands relayed and not yet done.
const PENDING_COMMANDS: usize = 64;

/// What the agent waits for.
enum Input {
    /// From the main loop.
    Reply(AgentReply),
    /// From session `id`'s reader.
    Frame(u64, ControllerMsg),
    Closed(u64, String),
    /// Every sender of replies is gone.
    Shutdown,
}

pub(super) fn spawn(cfg: AgentConfig) -> AgentHandle {
    let (events_tx, events) = channel::unbounded();
    let (replies, replies_rx) = channel::unbounded();
    let (input_tx, inputs) = channel::unbounded();
    let status = Arc::new(AgentStatus::default());

    let agent = Agent {
        backoff: Backoff::new(cfg.backoff_initial, cfg.backoff_max),
        acked: cfg.policy_version.clone(),
        cfg,
        events: events_tx,
        replies: replies_rx,
        inputs,
        input_tx,
        status: status.clone(),
        pending: VecDeque::new(),
        commands: HashMap::new(),
        next_session: 0,
        shutdown: false,
    };
    if let Err(e) = thread::Builder::new()
        .name("sluice-agent".into())
        .spawn(move || agent.run())
    {
        log(format!("cannot start the agent: {e}"));
    }
    AgentHandle {
        events,
        replies,
        status,
    }
}

/// The TLS connection shared by the agent (writes) and the reader (reads).
struct Tls {
    conn: Mutex<ClientConnection>,
    sock: TcpStream,
    /// The controller sent close_notify: nothing more will come.
    peer_closed: AtomicBool,
}

fn io_reason(what: &str, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => format!("{what}: timed out"),
        _ => format!("{what}: {e}"),
    }
}

impl Tls {
    fn lock(&self) -> MutexGuard<'_, ClientConnection> {
        // A panic elsewhere cannot leave the TLS state half-updated in a way
        // that matters here: the session is dropped on the next error.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Blocks for bytes from the controller; returns the messages they
    /// complete (possibly none).
    fn recv(&self, dec: &mut FrameDecoder, buf: &mut [u8]) -> Result<Vec<ControllerMsg>, String> {
        if self.peer_closed.load(Ordering::Relaxed) {
            dec.finish().map_err(|e| e.to_string())?;
            return Err("the controller closed the session".into());
        }
        let n = (&self.sock)
            .read(buf)
            .map_err(|e| io_reason("reading from the controller", &e))?;
        if n == 0 {
            dec.finish().map_err(|e| e.to_string())?;
            return Err("the controller closed the connection".into());
        }
        let mut plain = Vec::new();
        {
            let mut conn = self.lock();
            let mut rd = &buf[..n];
            while !rd.is_empty() {
                let took = conn.read_tls(&mut rd).map_err(|e| io_reason("TLS", &e))?;
                if took == 0 {
                    // Never with bytes to give; a loop without progress otherwise.
                    return Err("TLS: received data not accepted".into());
                }
                let state = conn
                    .process_new_packets()
                    .map_err(|e| format!("TLS: {e}"))?;
                if state.peer_has_closed() {
                    self.peer_closed.store(true, Ordering::Relaxed);
                }
                let want = state.plaintext_bytes_to_read();
                if want > 0 {
                    let start = plain.len();
                    plain.resize(start + want, 0);
                    conn.reader()
                        .read_exact(&mut plain[start..])
                        .map_err(|e| io_reason("TLS", &e))?;
                }
            }
            let mut s = &self.sock;
            while conn.wants_write() {
                conn.write_tls(&mut s)
                    .map_err(|e| io_reason("writing to the controller", &e))?;
            }
        }
        dec.push(&plain).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        while let Some(body) = dec.next_frame().map_err(|e| e.to_string())? {
            out.push(decode::<ControllerMsg>(&body).map_err(|e| e.to_string())?);
        }
        if out.is_empty() && self.peer_closed.load(Ordering::Relaxed) {
            dec.finish().map_err(|e| e.to_string())?;
            return Err("the controller closed the session".into());
        }
        Ok(out)
    }

    fn send(&self, msg: &ApplianceMsg) -> Result<(), String> {
        let frame = encode(msg).map_err(|e| e.to_string())?;
        let mut conn = self.lock();
        let mut s = &self.sock;
        let mut rest = &frame[..];
        while !rest.is_empty() {
            let n = conn
                .writer()
                .write(rest)
                .map_err(|e| io_reason("TLS", &e))?;
            rest = &rest[n..];
            let mut flushed = false;
            while conn.wants_write() {
                conn.write_tls(&mut s)
                    .map_err(|e| io_reason("writing to the controller", &e))?;
                flushed = true;
            }
            if n == 0 && !flushed {
                return Err("TLS: send buffer full and nothing to flush".into());
            }
        }
        Ok(())
    }

    /// Says goodbye (close_notify) and shuts the socket, which also wakes
    /// the reader.
    fn close(&self) {
        {
            let mut conn = self.lock();
            conn.send_close_notify();
            let mut s = &self.sock;
            let _ = conn.write_tls(&mut s);
        }
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

struct Session {
    id: u64,
    tls: Arc<Tls>,
    /// Messages that arrived with the hello-ack.
    first: Vec<ControllerMsg>,
    keepalive: Duration,
    reader: Option<JoinHandle<()>>,
}

struct Agent {
    cfg: AgentConfig,
    events: Sender<AgentEvent>,
    replies: Receiver<AgentReply>,
    /// Frames and ends from the session's reader.
    inputs: Receiver<Input>,
    input_tx: Sender<Input>,
    status: Arc<AgentStatus>,
    backoff: Backoff,
    /// The last policy version the main loop acked.
    acked: Option<String>,
    pending: VecDeque<(String, String)>,
    commands: HashMap<u64, CommandKind>,
    next_session: u64,
    shutdown: bool,
}

impl Agent {
    fn run(mut self) {
        let n = self.cfg.addresses.len().max(1);
        // Which controller to try next: this appliance's own order.
        let mut rotation = Rotation::new(&self.cfg.name, &self.cfg.addresses);
        // How many attempts in a row failed.
        let mut failed = 0;
        loop {
            let i = rotation.next();
            let reason = match self.connect(i) {
                Ok(sess) => {
                    failed = 0;
                    self.backoff.reset();
                    self.status.sessions.fetch_add(1, Ordering::Relaxed);
                    self.status.connected.store(true, Ordering::Relaxed);
                    let r = self.serve(sess);
                    self.status.connected.store(false, Ordering::Relaxed);
                    r
                }
                Err(r) => {
                    self.status.connect_failures.fetch_add(1, Ordering::Relaxed);
                    failed += 1;
                    r
                }
            };
            if self.shutdown {
                return;
            }
            let address = self.address(i).to_owned();
            if failed > 0 && failed < n {
                // Another controller may be live: on to it at once.
                log(format!("{address}: {reason}; trying the next controller"));
                continue;
            }
            // Every controller failed, or a session ended: wait. After a
            // session the backoff is at its first step, whose jitter
            // spreads the reconnects of a controller's appliances.
            failed = 0;
            let delay = self.backoff.next_delay();
            log(format!(
                "{address}: {reason}; next attempt in {} ms",
                delay.as_millis()
            ));
            if !self.emit(AgentEvent::Disconnected {
                reason,
                retry_in: delay,
            }) {
                return;
            }
            if !self.idle(delay) {
                return;
            }
        }
    }

    fn address(&self, i: usize) -> &str {
        self.cfg
            .addresses
            .get(i)
            .map_or("no controller", String::as_str)
    }

    /// The next reply or session input, whichever comes first; `None` when
    /// `timeout` passes. Replies still queued when the main loop drops its
    /// end come before [`Input::Shutdown`].
    fn next_input(&self, timeout: Duration) -> Option<Input> {
        channel::select! {
            recv(self.replies) -> r => Some(r.map_or(Input::Shutdown, Input::Reply)),
            // Never disconnected: the agent holds a sender itself.
            recv(self.inputs) -> i => Some(i.unwrap_or(Input::Shutdown)),
            default(timeout) => None,
        }
    }

    /// Sends an event to the main loop; false when it is gone.
    fn emit(&mut self, ev: AgentEvent) -> bool {
        if self.events.send(ev).is_err() {
            self.shutdown = true;
        }
        !self.shutdown
    }

    /// Waits out a reconnect delay, still taking replies (an ack that
    /// arrives while disconnected is persisted). False on shutdown.
    fn idle(&mut self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            match self.next_input(left) {
                Some(Input::Reply(r)) => {
                    let _ = self.on_reply(None, r);
                }
                Some(Input::Frame(..) | Input::Closed(..)) => {}
                Some(Input::Shutdown) => {
                    self.shutdown = true;
                    return false;
                }
                None => return true,
            }
        }
    }

    /// One attempt at controller `i`.
    fn connect(&mut self, i: usize) -> Result<Session, String> {
        let cfg = &self.cfg;
        let address = self.address(i).to_owned();
        let tls_cfg = tls::client_config(&cfg.ca, &cfg.cert, &cfg.key)?;
        let host = address
            .rsplit_once(':')
            .map_or(address.as_str(), |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let server = tls::server_name(cfg.server_name.as_deref().unwrap_or(host))?;
        let timeout = cfg.connect_timeout.max(Duration::from_millis(10));
        let addrs: Vec<_> = address
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {address}: {e}"))?
            .collect();
        let mut last = format!("{address} resolves to no address");
        let mut sock = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(s) => {
                    sock = Some(s);
                    break;
                }
                Err(e) => last = io_reason(&format!("connecting to {a}"), &e),
            }
        }
        let sock = sock.ok_or(last)?;
        let setup = |s: &TcpStream| -> io::Result<()> {
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))
        };
        setup(&sock).map_err(|e| format!("socket: {e}"))?;

        let mut conn =
            ClientConnection::new(Arc::new(tls_cfg), server).map_err(|e| format!("TLS: {e}"))?;
        let deadline = Instant::now() + timeout;
        // Bounded: every round moves the handshake on or fails, and the
        // socket's timeout bounds each round.
        while conn.is_handshaking() {
            if Instant::now() >= deadline {
                return Err("TLS handshake: timed out".into());
            }
            let mut s = &sock;
            conn.complete_io(&mut s)
                .map_err(|e| io_reason("TLS handshake", &e))?;
        }
        let tls = Arc::new(Tls {
            conn: Mutex::new(conn),
            sock,
            peer_closed: AtomicBool::new(false),
        });
        let hello = ApplianceMsg::Hello(Hello {
            name: cfg.name.clone(),
            labels: cfg.labels.clone(),
            sluice_version: env!("CARGO_PKG_VERSION").into(),
            protocol_version: PROTOCOL_VERSION,
            capabilities: cfg.capabilities.clone(),
            ports: cfg.ports.clone(),
            policy_version: self.acked.clone(),
        });
        tls.send(&hello)?;

        let mut dec = FrameDecoder::new();
        let mut buf = vec![0u8; 16 * 1024];
        let (assigned, keepalive, first) = loop {
            if Instant::now() >= deadline {
                return Err("no hello-ack from the controller in time".into());
            }
            let mut msgs = tls.recv(&mut dec, &mut buf)?.into_iter();
            match msgs.next() {
                None => continue,
                Some(ControllerMsg::HelloAck {
                    policy,
                    keepalive_ms,
                    ..
                }) => break (policy, Duration::from_millis(keepalive_ms), msgs.collect()),
                Some(ControllerMsg::Error { reason }) => {
                    return Err(format!("the controller refused the session: {reason}"))
                }
                Some(other) => {
                    return Err(format!(
                        "protocol error: {} before the hello-ack",
                        kind(&other)
                    ))
                }
            }
        };
        tls.sock
            .set_read_timeout(None)
            .map_err(|e| format!("socket: {e}"))?;

        self.next_session += 1;
        let id = self.next_session;
        let reader_tls = tls.clone();
        let tx = self.input_tx.clone();
        let reader = thread::Builder::new()
            .name("sluice-agent-rx".into())
            .spawn(move || {
                let mut buf = buf;
                loop {
                    match reader_tls.recv(&mut dec, &mut buf) {
                        Ok(msgs) => {
                            for m in msgs {
                                if tx.send(Input::Frame(id, m)).is_err() {
                                    return;
                                }
                            }
                        }
                        Err(reason) => {
                            let _ = tx.send(Input::Closed(id, reason));
                            return;
                        }
                    }
                }
            })
            .map_err(|e| format!("cannot start the reader: {e}"))?;
        log(format!(
            "connected to {address} (policy {})",
            assigned.as_deref().unwrap_or("none assigned")
        ));
        if !self.emit(AgentEvent::Connected {
            controller: address,
            assigned,
        }) {
            tls.close();
            let _ = reader.join();
            return Err("agent shutting down".into());
        }
        Ok(Session {
            id,
            tls,
            first,
            keepalive,
            reader: Some(reader),
        })
    }

    /// Relays until the session ends; returns why it ended.
    fn serve(&mut self, mut sess: Session) -> String {
        // A controller that says nothing for three keepalive intervals is gone.
        let silence = (sess.keepalive * 3).max(Duration::from_secs(1));
        let mut last_rx = Instant::now();
        let first = std::mem::take(&mut sess.first);
        let mut reason = None;
        for m in first {
            if let Err(r) = self.on_frame(m) {
                reason = Some(r);
                break;
            }
        }
        let reason = match reason {
            Some(r) => r,
            None => loop {
                let left = (last_rx + silence).saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break format!("the controller was silent for {} ms", silence.as_millis());
                }
                match self.next_input(left) {
                    Some(Input::Frame(id, m)) if id == sess.id => {
                        last_rx = Instant::now();
                        if let Err(r) = self.on_frame(m) {
                            break r;
                        }
                    }
                    Some(Input::Closed(id, r)) if id == sess.id => break r,
                    Some(Input::Frame(..) | Input::Closed(..)) => {}
                    Some(Input::Reply(r)) => {
                        if let Err(r) = self.on_reply(Some(&sess.tls), r) {
                            break r;
                        }
                    }
                    Some(Input::Shutdown) => {
                        self.shutdown = true;
                        break "agent shutting down".into();
                    }
                    None => {}
                }
            },
        };
        sess.tls.close();
        if let Some(r) = sess.reader.take() {
            let _ = r.join();
        }
        reason
    }

    fn on_frame(&mut self, m: ControllerMsg) -> Result<(), String> {
        match m {
            ControllerMsg::Policy {
                version,
                name,
                text,
            } => {
                self.pending.retain(|(v, _)| *v != version);
                if self.pending.len() >= PENDING_POLICIES {
                    self.pending.pop_front();
                }
                self.pending.push_back((version.clone(), text.clone()));
                if !self.emit(AgentEvent::Policy {
                    version,
                    name,
                    text,
                }) {
                    return Err("agent shutting down".into());
                }
            }
            ControllerMsg::Command { id, command } => {
                if self.commands.len() >= PENDING_COMMANDS {
                    // The main loop is not answering commands: forget the oldest.
                    if let Some(&old) = self.commands.keys().min() {
                        self.commands.remove(&old);
                    }
                }
                self.commands.insert(id, command);
                if !self.emit(AgentEvent::Command(OperatorCommand { id, kind: command })) {
                    return Err("agent shutting down".into());
                }
            }
            ControllerMsg::Keepalive => {}
            ControllerMsg::Error { reason } => {
                return Err(format!("the controller closed the session: {reason}"))
            }
            ControllerMsg::HelloAck { .. } => {
                return Err("protocol error: a second hello-ack".into());
            }
        }
        Ok(())
    }

    fn persist(&mut self, version: &str) {
        let Some(path) = self.cfg.persist.clone() else {
            return;
        };
        let Some(pos) = self.pending.iter().position(|(v, _)| v == version) else {
            return;
        };
        let Some((_, text)) = self.pending.remove(pos) else {
            return;
        };
        let outcome = persist::save(&path, version, &text).map_err(|e| e.to_string());
        if let Err(e) = &outcome {
            log(format!(
                "cannot persist policy {version} to {}: {e} (it runs; it will not survive a restart)",
                path.display()
            ));
        }
        self.status.persisted(outcome);
    }

    /// Handles a reply from the main loop; sends it when connected.
    fn on_reply(&mut self, tls: Option<&Tls>, r: AgentReply) -> Result<(), String> {
        let msg = match r {
            AgentReply::Ack { version } => {
                self.persist(&version);
                self.acked = Some(version.clone());
                ApplianceMsg::Ack { version }
            }
            AgentReply::Nack { version, errors } => {
                self.pending.retain(|(v, _)| *v != version);
                ApplianceMsg::Nack { version, errors }
            }
            AgentReply::Heartbeat(h) => ApplianceMsg::Heartbeat(Heartbeat {
                state: h.state,
                policy_version: h.policy_version.or_else(|| self.acked.clone()),
                uptime_s: h.uptime_s,
                counters: h.counters,
                agent: self.status.counters(),
            }),
            AgentReply::CommandDone { id, ok, message } => {
                let Some(command) = self.commands.remove(&id) else {
                    log(format!("result of unknown command {id} dropped"));
                    return Ok(());
                };
                ApplianceMsg::CommandResult(CommandResult {
                    id,
                    command,
                    ok,
                    message,
                })
            }
        };
        match tls {
            Some(t) => t.send(&msg),
            None => Ok(()),
        }
    }
}

fn kind(m: &ControllerMsg) -> &'static str {
    match m {
        ControllerMsg::HelloAck { .. } => "hello_ack",
        ControllerMsg::Policy { .. } => "policy",
        ControllerMsg::Command { .. } => "command",
        ControllerMsg::Keepalive => "keepalive",
        ControllerMsg::Error { .. } => "error",
    }
}
