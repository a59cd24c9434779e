//! One appliance connection on the controller: refuse what is not TLS,
//! TLS 1.3 with a client certificate from the CA, a hello that matches the
//! certificate, then relay until either side ends it. Every end is logged
//! with its reason; nothing a peer sends can hurt another session.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use super::log;
use super::registry::Shared;
use sluice_protocol::tls::cert_is_for;
use sluice_protocol::{
    decode, encode, ApplianceMsg, ControllerMsg, FrameDecoder, Hello, PROTOCOL_VERSION,
};

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 4096;
/// A write that cannot finish in this long ends the session.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Counts an open connection for as long as it lives.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one accepted TCP connection to its end.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
) {
    let _guard = OpenGuard(shared.clone());
    let hs = shared.opts.handshake_timeout;

    // Plaintext clients are told apart from broken TLS for the log.
    let mut first = [0u8; 1];
    match timeout(hs, tcp.peek(&mut first)).await {
        Err(_) => {
            log(format!(
                "refused {peer}: nothing sent within {} ms",
                hs.as_millis()
            ));
            return;
        }
        Ok(Err(e)) => {
            log(format!("refused {peer}: {e}"));
            return;
        }
        Ok(Ok(0)) => {
            log(format!("refused {peer}: closed before a TLS handshake"));
            return;
        }
        Ok(Ok(_)) if first[0] != TLS_HANDSHAKE => {
            log(format!(
                "refused {peer}: plaintext, not a TLS handshake (first byte 0x{:02x})",
                first[0]
            ));
            return;
        }
        Ok(Ok(_)) => {}
    }
    let _ = tcp.set_nodelay(true);
    let tls = match timeout(hs, acceptor.accept(tcp)).await {
        Err(_) => {
            log(format!(
                "refused {peer}: TLS handshake not done within {} ms",
                hs.as_millis()
            ));
            return;
        }
        Ok(Err(e)) => {
            log(format!("refused {peer}: TLS handshake failed: {e}"));
            return;
        }
        Ok(Ok(t)) => t,
    };
    let cert: Option<CertificateDer<'static>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.clone().into_owned());
    let Some(cert) = cert else {
        // The verifier requires one; never here.
        log(format!("refused {peer}: no client certificate"));
        return;
    };
    let (mut rd, mut wr) = tokio::io::split(tls);
    let mut dec = FrameDecoder::new();
    let mut buf = vec![0u8; READ_CHUNK];

    let hello = match timeout(hs, read_msg(&mut rd, &mut dec, &mut buf)).await {
        Err(_) => Err(format!("no hello within {} ms", hs.as_millis())),
        Ok(Err(e)) => Err(e),
        Ok(Ok(ApplianceMsg::Hello(h))) => check_hello(&h, &cert).map(|()| h),
        Ok(Ok(_)) => Err("protocol error: the first message is not a hello".into()),
    };
    let hello = match hello {
        Ok(h) => h,
        Err(reason) => {
            log(format!("session from {peer} closed before hello: {reason}"));
            goodbye(&mut wr, &reason).await;
            return;
        }
    };
    let name = hello.name.clone();
    let reg = match shared.register(hello, peer) {
        Ok(r) => r,
        Err(reason) => {
            log(format!("session {name} from {peer} closed: {reason}"));
            goodbye(&mut wr, &reason).await;
            return;
        }
    };
    let id = reg.id;
    let reason = relay(
        &shared, &name, id, reg, &mut rd, &mut wr, &mut dec, &mut buf,
    )
    .await;
    shared.unregister(&name, id, &reason);
    log(format!("session {name} from {peer} closed: {reason}"));
    // Best effort: close_notify, bounded.
    let _ = timeout(Duration::from_secs(1), wr.shutdown()).await;
}

/// The hello must speak our protocol and name the certificate's holder.
fn check_hello(h: &Hello, cert: &CertificateDer<'_>) -> Result<(), String> {
    if h.protocol_version != PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {} is not supported (this controller speaks {PROTOCOL_VERSION})",
            h.protocol_version
        ));
    }
    if h.name.is_empty() || h.name.len() > 253 {
        return Err("the appliance name must have 1 to 253 characters".into());
    }
    cert_is_for(cert, &h.name)
}

async fn goodbye<W: AsyncWrite + Unpin>(wr: &mut W, reason: &str) {
    if let Ok(f) = encode(&ControllerMsg::Error {
        reason: reason.to_owned(),
    }) {
        let _ = timeout(Duration::from_secs(1), async {
            let _ = wr.write_all(&f).await;
            let _ = wr.shutdown().await;
        })
        .await;
    }
}

/// Reads until one whole message arrives.
async fn read_msg<R: AsyncRead + Unpin>(
    rd: &mut R,
    dec: &mut FrameDecoder,
    buf: &mut [u8],
) -> Result<ApplianceMsg, String> {
    loop {
        if let Some(body) = dec.next_frame().map_err(|e| e.to_string())? {
            return decode(&body).map_err(|e| e.to_string());
        }
        let n = rd.read(buf).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            dec.finish().map_err(|e| e.to_string())?;
            return Err("the appliance closed the connection".into());
        }
        dec.push(&buf[..n]).map_err(|e| e.to_string())?;
    }
}

/// Tells the appliance why the controller ends the session (best effort).
async fn send_error<W: AsyncWrite + Unpin>(wr: &mut W, reason: &str) {
    if let Ok(f) = encode(&ControllerMsg::Error {
        reason: reason.to_owned(),
    }) {
        let _ = write_frame(wr, &f).await;
    }
}

async fn write_frame<W: AsyncWrite + Unpin>(wr: &mut W, frame: &[u8]) -> Result<(), String> {
    match timeout(WRITE_TIMEOUT, async {
        wr.write_all(frame).await?;
        wr.flush().await
    })
    .await
    {
        Err(_) => Err(format!(
            "write: not done within {} s",
            WRITE_TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => Err(format!("write: {e}")),
        Ok(Ok(())) => Ok(()),
    }
}

/// Frames in both directions until the session ends; returns why.
#[allow(clippy::too_many_arguments)]
async fn relay<R, W>(
    shared: &Shared,
    name: &str,
    id: u64,
    reg: super::registry::Registered,
    rd: &mut R,
    wr: &mut W,
    dec: &mut FrameDecoder,
    buf: &mut [u8],
) -> String
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let super::registry::Registered {
        mut rx,
        mut kill,
        first,
        ..
    } = reg;
    for f in first {
        if let Err(e) = write_frame(wr, &f).await {
            return e;
        }
    }
    let keepalive = shared.opts.keepalive;
    let keepalive_frame = match encode(&ControllerMsg::Keepalive) {
        Ok(f) => f,
        Err(e) => return e.to_string(),
    };
    let mut last_write = Instant::now();
    let mut tick = tokio::time::interval(keepalive.max(Duration::from_millis(10)) / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = rd.read(buf) => {
                let n = match r {
                    Ok(n) => n,
                    Err(e) => return format!("read: {e}"),
                };
                if n == 0 {
                    return match dec.finish() {
                        Err(e) => e.to_string(),
                        Ok(()) => "the appliance closed the connection".into(),
                    };
                }
                if let Err(e) = dec.push(&buf[..n]) {
                    return e.to_string();
                }
                loop {
                    let body = match dec.next_frame() {
                        Ok(Some(b)) => b,
                        Ok(None) => break,
                        Err(e) => return e.to_string(),
                    };
                    let msg = match decode::<ApplianceMsg>(&body) {
                        Ok(m) => m,
                        Err(e) => return e.to_string(),
                    };
                    if let Err(e) = shared.on_message(name, id, msg) {
                        return e;
                    }
                }
            }
            f = rx.recv() => {
                let Some(f) = f else {
                    // Dropped by the registry: the reason, if any, is in `kill`.
                    let reason = kill
                        .try_recv()
                        .unwrap_or_else(|_| "closed by the controller".into());
                    send_error(wr, &reason).await;
                    return reason;
                };
                if let Err(e) = write_frame(wr, &f).await {
                    return e;
                }
                last_write = Instant::now();
            }
            reason = &mut kill => {
                let reason = reason.unwrap_or_else(|_| "closed by the controller".into());
                send_error(wr, &reason).await;
                return reason;
            }
            _ = tick.tick() => {
                if last_write.elapsed() >= keepalive {
                    if let Err(e) = write_frame(wr, &keepalive_frame).await {
                        return e;
                    }
                    last_write = Instant::now();
                }
            }
        }
    }
}
