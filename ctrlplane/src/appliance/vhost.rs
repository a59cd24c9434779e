//! vhost-user inputs (`net_vhost`): Sluice is the vhost backend, a VM's
//! virtio-net or a vswitch's `net_virtio_user` port is the peer mirroring
//! traffic into it. The peer may connect, vanish and come back at any time:
//! the vhost library keeps the socket (server mode) or reconnects to it
//! (client mode, `client=1`), the port's link follows the peer, and its
//! counters live as long as the port.

use std::io::ErrorKind;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use dataplane::dpdk::PortInfo;

use crate::config::PortConfig;

/// The driver name `rte_eth_dev_info` reports for vhost-user ports.
const DRIVER: &str = "net_vhost";

/// RX queues to set up on an input that cannot hash: a vhost-user peer
/// picks the queue it sends on, so every one of its `queues=` is read;
/// other devices deliver on queue 0.
pub fn rx_queues(info: &PortInfo) -> u16 {
    if info.driver == DRIVER {
        info.max_rx_queues.clamp(1, 64)
    } else {
        1
    }
}

/// Readies the socket path of a server-mode `net_vhost` port: DPDK will
/// not bind over an existing file, so a socket nobody listens on (left by
/// a Sluice that was killed) is removed, and one that a live process
/// serves is refused with its name.
pub fn prepare_socket(pc: &PortConfig) -> Result<(), String> {
    if pc.device.driver() != Some(DRIVER) {
        return Ok(());
    }
    let Some(path) = pc.device.arg("iface").filter(|p| !p.is_empty()) else {
        return Err(format!(
            "port {:?}: {} needs iface=<socket path>",
            pc.name, pc.device
        ));
    };
    if pc.device.arg("client") == Some("1") {
        // Sluice connects, and the vhost library retries until the peer listens.
        return Ok(());
    }
    let path = Path::new(path);
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
            return Err(format!(
                "port {:?}: the directory of vhost-user socket {} does not exist",
                pc.name,
                path.display()
            ))
        }
        _ => {}
    }
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(format!(
            "port {:?}: {} exists and is not a socket: Sluice will not replace it",
            pc.name,
            path.display()
        ));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(format!(
            "port {:?}: another process serves vhost-user socket {} (a second Sluice?)",
            pc.name,
            path.display()
        )),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            std::fs::remove_file(path).map_err(|e| {
                format!(
                    "port {:?}: cannot remove stale socket {}: {e}",
                    pc.name,
                    path.display()
                )
            })?;
            crate::log::log(format!(
                "port {:?}: removed stale vhost-user socket {}",
                pc.name,
                path.display()
            ));
            Ok(())
        }
        Err(e) => Err(format!(
            "port {:?}: vhost-user socket {}: {e}",
            pc.name,
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Device, PortDirection, PortMode, Role};

    fn port(device: &str) -> PortConfig {
        PortConfig {
            name: "vm".into(),
            device: Device::parse(device).expect("device"),
            role: Role::Input,
            direction: PortDirection::Ingress,
            pdump: None,
            mode: PortMode::Tap,
            mtu: None,
            address: None,
            replay: None,
        }
    }

    #[test]
    fn a_stale_socket_is_removed_a_live_one_refused() {
        let dir = std::env::temp_dir().join(format!("sluice-vhost-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let sock = dir.join("vm.sock");
        let _ = std::fs::remove_file(&sock);
        let pc = port(&format!("net_vhost0,iface={}", sock.display()));
        assert!(prepare_socket(&pc).is_ok(), "no file: fine");

        let live = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
        let e = prepare_socket(&pc).expect_err("served");
        assert!(e.contains("another process"), "{e}");
        drop(live);
        // The listener is gone but its file stays: stale.
        assert!(sock.exists());
        prepare_socket(&pc).expect("stale socket removed");
        assert!(!sock.exists());

        std::fs::write(&sock, b"x").expect("file");
        let e = prepare_socket(&pc).expect_err("not a socket");
        assert!(e.contains("not a socket"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);

        let e = prepare_socket(&port("net_vhost1,queues=2")).expect_err("no iface");
        assert!(e.contains("iface="), "{e}");
        let e =
            prepare_socket(&port("net_vhost1,iface=/nonexistent-dir/x.sock")).expect_err("no dir");
        assert!(e.contains("does not exist"), "{e}");
        assert!(prepare_socket(&port("net_vhost1,iface=/nonexistent-dir/x.sock,client=1")).is_ok());
    }
}
