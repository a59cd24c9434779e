//! What a Sluice appliance and its controller share (`docs/protocol.md`).
//! Both ends depend on this crate and on nothing of each other: the
//! appliance (`ctrlplane`, DPDK underneath) runs the agent side, the
//! controller (`sluice-controller`, tokio, no DPDK) the server side.
//!
//! - [`frame`]: the wire unit. A 4-byte big-endian length and a JSON body
//!   that carries the protocol version `v`; [`encode`] and [`decode`] for
//!   one message, [`FrameDecoder`] to split a byte stream with the length
//!   limit enforced on the header, and [`FrameError`] naming what was wrong.
//!   Like `dataplane`'s `wire/` views it never panics on what a peer sends.
//! - [`message`]: the versioned messages, [`ApplianceMsg`] one way and
//!   [`ControllerMsg`] the other, with the hello, heartbeat counters and
//!   operator commands they carry.
//! - [`policy`]: the policy document a `policy` message carries (groups,
//!   destinations, rules) and [`policy::parse_toml`]. The controller only
//!   checks that it parses; the appliance validates and compiles it into
//!   the dataplane's tables.
//! - [`tls`]: TLS 1.3 with mutual authentication for both ends (rustls with
//!   ring): PEM files in, client and server configs out, and the check that
//!   binds an appliance's hello to its certificate.
//! - [`failover`]: the order in which an appliance tries its controllers,
//!   its own for each appliance, so that a fleet and a dead controller's
//!   share of it spread over the controllers.

pub mod failover;
pub mod frame;
pub mod message;
pub mod policy;
pub mod tls;

pub use frame::{
    decode, encode, FrameDecoder, FrameError, HEADER_LEN, MAX_FRAME, PROTOCOL_VERSION,
};
pub use message::*;
