//! A local IPFIX collector for the metering scenarios: a UDP socket on
//! loopback that takes what Sluice's exporter sends, so the export path
//! runs as deployed (to a listening collector), and counts the messages.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What the collector received.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// IPFIX messages (version 10); other datagrams are not counted.
    pub messages: u64,
    pub bytes: u64,
}

/// A running collector.
pub struct Collector {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    counts: Arc<[AtomicU64; 2]>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    /// Binds an ephemeral port on 127.0.0.1 and starts taking datagrams.
    pub fn start() -> io::Result<Collector> {
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        // Wakes the thread now and then to see whether it should stop.
        sock.set_read_timeout(Some(Duration::from_millis(100)))?;
        let addr = sock.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let counts: Arc<[AtomicU64; 2]> = Arc::default();
        let thread = {
            let (stop, counts) = (Arc::clone(&stop), Arc::clone(&counts));
            std::thread::Builder::new()
                .name("ipfix-collector".into())
                .spawn(move || {
                    let mut buf = [0u8; 65_536];
                    // Once told to stop, it still takes what is queued:
                    // it ends at the first wait that brings nothing.
                    loop {
                        let stopping = stop.load(Ordering::Relaxed);
                        match sock.recv(&mut buf) {
                            Ok(n) if buf[..n].starts_with(&[0, 10]) => {
                                counts[0].fetch_add(1, Ordering::Relaxed);
                                counts[1].fetch_add(n as u64, Ordering::Relaxed);
                            }
                            Ok(_) => {}
                            Err(_) if stopping => break,
                            Err(_) => {}
                        }
                    }
                })?
        };
        Ok(Collector {
            addr,
            stop,
            counts,
            thread: Some(thread),
        })
    }

    /// Where Sluice sends its records.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking datagrams; what was received.
    pub fn finish(mut self) -> Received {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        Received {
            messages: self.counts[0].load(Ordering::Relaxed),
            bytes: self.counts[1].load(Ordering::Relaxed),
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_ipfix_messages_only() {
        let c = Collector::start().unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(&[0, 10, 0, 20, 1, 2, 3, 4], c.addr()).unwrap();
        tx.send_to(&[0, 9, 0, 20], c.addr()).unwrap();
        // Loopback delivers into the socket's queue before `send_to`
        // returns, and the collector drains its queue before it stops.
        let r = c.finish();
        assert_eq!(
            r,
            Received {
                messages: 1,
                bytes: 8
            }
        );
    }
}
