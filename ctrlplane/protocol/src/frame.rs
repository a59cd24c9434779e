//! Framing of the controller protocol (`docs/protocol.md`).
//!
//! A frame is a 4-byte big-endian length and that many bytes of JSON: one
//! object with the protocol version `v`, the message `type` and the
//! message's fields. The length is checked against [`MAX_FRAME`] as soon as
//! the header arrives, before anything is allocated for the body. Receivers
//! ignore fields they do not know (so a field can be added without a new
//! protocol version) but refuse unknown message types and other versions.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The protocol version this build speaks; every message carries it as `v`.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest frame body either side sends or accepts (1 MiB).
pub const MAX_FRAME: usize = 1 << 20;

/// Bytes in the length prefix.
pub const HEADER_LEN: usize = 4;

/// Why a byte stream is not a sequence of good frames. Each names what was
/// wrong, for the log line that closes the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The connection ended inside a frame.
    #[error("truncated frame: the connection ended after {got} of {expected} bytes")]
    Truncated { expected: usize, got: usize },
    /// The header announced more than the limit.
    #[error("oversized frame: {len} bytes announced, the limit is {max}")]
    TooBig { len: usize, max: usize },
    /// A zero-length frame: never sent by a correct peer.
    #[error("garbage: an empty frame")]
    Empty,
    /// The body is not JSON, or not a message this side knows.
    #[error("garbage: {0}")]
    Garbage(String),
    /// A well-formed message of another protocol version.
    #[error("protocol version {got} is not supported (this side speaks {PROTOCOL_VERSION})")]
    Version { got: u64 },
}

/// Serializes `msg` with the protocol version into one frame (header and
/// body). A message over [`MAX_FRAME`] is refused.
pub fn encode<M: Serialize>(msg: &M) -> Result<Vec<u8>, FrameError> {
    let mut value = serde_json::to_value(msg)
        .map_err(|e| FrameError::Garbage(format!("cannot encode: {e}")))?;
    match value.as_object_mut() {
        Some(obj) => {
            obj.insert("v".into(), PROTOCOL_VERSION.into());
        }
        None => return Err(FrameError::Garbage("cannot encode: not an object".into())),
    }
    let body = serde_json::to_vec(&value)
        .map_err(|e| FrameError::Garbage(format!("cannot encode: {e}")))?;
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooBig {
            len: body.len(),
            max: MAX_FRAME,
        });
    }
    let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

#[derive(Deserialize)]
struct VersionOnly {
    v: Option<serde_json::Value>,
}

/// Parses one frame body: checks the version, then the message.
pub fn decode<M: DeserializeOwned>(body: &[u8]) -> Result<M, FrameError> {
    let head: VersionOnly = serde_json::from_slice(body)
        .map_err(|e| FrameError::Garbage(format!("not a JSON object: {e}")))?;
    match head.v {
        None => return Err(FrameError::Garbage("no protocol version `v`".into())),
        Some(v) => match v.as_u64() {
            Some(n) if n == u64::from(PROTOCOL_VERSION) => {}
            Some(n) => return Err(FrameError::Version { got: n }),
            None => {
                return Err(FrameError::Garbage(format!(
                    "protocol version {v} is not a number"
                )))
            }
        },
    }
    serde_json::from_slice(body).map_err(|e| FrameError::Garbage(format!("not a message: {e}")))
}

/// Splits a byte stream into frame bodies. Bytes go in as they arrive;
/// whole bodies come out. The length limit is enforced on the header,
/// before the body is buffered.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    max: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::with_max(MAX_FRAME)
    }

    /// A decoder with another limit (tests).
    pub fn with_max(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            max,
        }
    }

    /// Bytes received but not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn announced(&self) -> Option<usize> {
        let h: [u8; HEADER_LEN] = self.buf.get(..HEADER_LEN)?.try_into().ok()?;
        Some(u32::from_be_bytes(h) as usize)
    }

    fn check_header(&self) -> Result<(), FrameError> {
        match self.announced() {
            Some(0) => Err(FrameError::Empty),
            Some(len) if len > self.max => Err(FrameError::TooBig { len, max: self.max }),
            _ => Ok(()),
        }
    }

    /// Appends received bytes. Fails at once when the pending frame's
    /// header announces more than the limit: the caller closes the session.
    pub fn push(&mut self, data: &[u8]) -> Result<(), FrameError> {
        // Never hold more than one frame plus what arrived with it.
        self.check_header()?;
        self.buf.extend_from_slice(data);
        self.check_header()
    }

    /// The next complete frame body, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        self.check_header()?;
        let Some(len) = self.announced() else {
            return Ok(None);
        };
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let body = self.buf[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.buf.drain(..HEADER_LEN + len);
        Ok(Some(body))
    }

    /// The stream ended: fine between frames, [`FrameError::Truncated`]
    /// inside one.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let expected = self.announced().map_or(HEADER_LEN, |l| HEADER_LEN + l);
        Err(FrameError::Truncated {
            expected,
            got: self.buf.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::message::*;
    use proptest::prelude::*;

    fn frames_of(bytes: &[u8], chunk: usize) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut d = FrameDecoder::new();
        let mut out = Vec::new();
        for c in bytes.chunks(chunk.max(1)) {
            d.push(c)?;
            while let Some(f) = d.next_frame()? {
                out.push(f);
            }
        }
        d.finish()?;
        Ok(out)
    }

    #[test]
    fn every_message_carries_the_version_and_its_type() {
        let f = encode(&ApplianceMsg::Ack {
            version: "web@1".into(),
        })
        .unwrap();
        let len = u32::from_be_bytes(f[..4].try_into().unwrap()) as usize;
        assert_eq!(len, f.len() - 4);
        let v: serde_json::Value = serde_json::from_slice(&f[4..]).unwrap();
        assert_eq!(v["v"], 1);
        assert_eq!(v["type"], "ack");
        assert_eq!(v["version"], "web@1");
        let k = encode(&ControllerMsg::Keepalive).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&k[4..]).unwrap();
        assert_eq!(v, serde_json::json!({"v": 1, "type": "keepalive"}));
    }

    #[test]
    fn unknown_fields_are_ignored_but_unknown_types_and_versions_refused() {
        let m: ControllerMsg =
            decode(br#"{"v":1,"type":"command","id":3,"command":"stop","extra":true}"#).unwrap();
        assert_eq!(
            m,
            ControllerMsg::Command {
                id: 3,
                command: CommandKind::Stop
            }
        );
        let e = decode::<ControllerMsg>(br#"{"v":1,"type":"explode"}"#).unwrap_err();
        assert!(
            matches!(&e, FrameError::Garbage(r) if r.contains("explode")),
            "{e}"
        );
        let e = decode::<ControllerMsg>(br#"{"v":2,"type":"keepalive"}"#).unwrap_err();
        assert_eq!(e, FrameError::Version { got: 2 });
        let e = decode::<ControllerMsg>(br#"{"type":"keepalive"}"#).unwrap_err();
        assert!(e.to_string().contains("no protocol version"), "{e}");
        let e = decode::<ControllerMsg>(b"\x00\xffhello").unwrap_err();
        assert!(
            e.to_string().starts_with("garbage: not a JSON object"),
            "{e}"
        );
        let e = decode::<ApplianceMsg>(br#"{"v":1,"type":"ack"}"#).unwrap_err();
        assert!(e.to_string().contains("version"), "{e}");
    }

    #[test]
    fn an_oversized_header_is_refused_before_the_body_arrives() {
        let mut d = FrameDecoder::new();
        let hdr = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert_eq!(
            d.push(&hdr),
            Err(FrameError::TooBig {
                len: MAX_FRAME + 1,
                max: MAX_FRAME
            })
        );
        assert!(d.buffered() <= HEADER_LEN);
        // Byte by byte: refused when the fourth header byte arrives.
        let mut d = FrameDecoder::new();
        assert!(d.push(&hdr[..3]).is_ok());
        assert!(d.push(&hdr[3..]).is_err());
        // A frame exactly at the limit is fine.
        let mut d = FrameDecoder::new();
        assert!(d.push(&(MAX_FRAME as u32).to_be_bytes()).is_ok());
    }

    #[test]
    fn an_oversized_message_is_not_sent() {
        let text = "x".repeat(MAX_FRAME);
        let e = encode(&ControllerMsg::Policy {
            version: "a@1".into(),
            name: "a".into(),
            text,
        })
        .unwrap_err();
        assert!(matches!(e, FrameError::TooBig { .. }), "{e}");
    }

    #[test]
    fn truncation_is_reported_with_what_arrived() {
        let f = encode(&ApplianceMsg::Ack {
            version: "v".into(),
        })
        .unwrap();
        let cut = &f[..f.len() - 3];
        let e = frames_of(cut, 7).unwrap_err();
        assert_eq!(
            e,
            FrameError::Truncated {
                expected: f.len(),
                got: f.len() - 3
            }
        );
        assert_eq!(
            frames_of(&f[..2], 1).unwrap_err(),
            FrameError::Truncated {
                expected: 4,
                got: 2
            }
        );
        assert_eq!(frames_of(&[0, 0, 0, 0], 4).unwrap_err(), FrameError::Empty);
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            ".{0,24}",
            "[a-z0-9@._-]{0,12}",
            Just("\"\\\u{0}\n".to_string())
        ]
    }

    fn map() -> impl Strategy<Value = BTreeMap<String, u64>> {
        proptest::collection::btree_map(text(), any::<u64>(), 0..4)
    }

    fn counters() -> impl Strategy<Value = Counters> {
        (
            any::<[u64; 4]>(),
            map(),
            proptest::collection::btree_map(
                text(),
                (any::<u64>(), any::<u64>(), map()).prop_map(|(p, b, d)| DestinationCounters {
                    tx_packets: p,
                    tx_bytes: b,
                    drops: d,
                }),
                0..3,
            ),
            proptest::collection::btree_map(
                text(),
                (any::<u64>(), any::<u64>())
                    .prop_map(|(packets, bytes)| RuleHits { packets, bytes }),
                0..3,
            ),
            proptest::collection::btree_map(
                text(),
                any::<[u64; 3]>().prop_map(|n| ToolPortSends {
                    tx_packets: n[0],
                    tx_bytes: n[1],
                    dropped_tx_full: n[2],
                }),
                0..3,
            ),
        )
            .prop_map(|(n, terminals, destinations, rules, tool_ports)| Counters {
                rx: n[0],
                rx_bytes: n[1],
                forwarded: n[2],
                parse_errors: n[3],
                terminals,
                destinations,
                rules,
                tool_ports,
            })
    }

    fn command() -> impl Strategy<Value = CommandKind> {
        prop_oneof![
            Just(CommandKind::Start),
            Just(CommandKind::Stop),
            Just(CommandKind::Reload)
        ]
    }

    fn appliance_msg() -> impl Strategy<Value = ApplianceMsg> {
        prop_oneof![
            (
                text(),
                proptest::collection::btree_map(text(), text(), 0..3),
                proptest::collection::vec(text(), 0..3),
                proptest::collection::vec((text(), text()), 0..3),
                proptest::option::of(text()),
            )
                .prop_map(|(name, labels, capabilities, ports, policy_version)| {
                    ApplianceMsg::Hello(Hello {
                        name,
                        labels,
                        sluice_version: "0.1.0".into(),
                        protocol_version: PROTOCOL_VERSION,
                        capabilities,
                        ports: ports
                            .into_iter()
                            .map(|(name, role)| PortInfo { name, role })
                            .collect(),
                        policy_version,
                    })
                }),
            text().prop_map(|version| ApplianceMsg::Ack { version }),
            (text(), proptest::collection::vec(text(), 0..4))
                .prop_map(|(version, errors)| ApplianceMsg::Nack { version, errors }),
            (
                text(),
                proptest::option::of(text()),
                any::<u64>(),
                counters(),
                any::<[u64; 4]>()
            )
                .prop_map(|(state, policy_version, uptime_s, counters, a)| {
                    ApplianceMsg::Heartbeat(Heartbeat {
                        state,
                        policy_version,
                        uptime_s,
                        counters,
                        agent: AgentCounters {
                            sessions: a[0],
                            connect_failures: a[1],
                            persist_writes: a[2],
                            persist_failures: a[3],
                        },
                    })
                }),
            (any::<u64>(), command(), any::<bool>(), text()).prop_map(
                |(id, command, ok, message)| {
                    ApplianceMsg::CommandResult(CommandResult {
                        id,
                        command,
                        ok,
                        message,
                    })
                }
            ),
        ]
    }

    fn controller_msg() -> impl Strategy<Value = ControllerMsg> {
        prop_oneof![
            (
                text(),
                any::<u64>(),
                any::<u64>(),
                proptest::option::of(text())
            )
                .prop_map(
                    |(controller_version, keepalive_ms, heartbeat_ms, policy)| {
                        ControllerMsg::HelloAck {
                            controller_version,
                            protocol_version: PROTOCOL_VERSION,
                            keepalive_ms,
                            heartbeat_ms,
                            policy,
                        }
                    }
                ),
            (text(), text(), ".{0,200}").prop_map(|(version, name, text)| ControllerMsg::Policy {
                version,
                name,
                text
            }),
            (any::<u64>(), command())
                .prop_map(|(id, command)| ControllerMsg::Command { id, command }),
            Just(ControllerMsg::Keepalive),
            text().prop_map(|reason| ControllerMsg::Error { reason }),
        ]
    }

    proptest! {
        #[test]
        fn appliance_messages_survive_framing_in_any_chunking(
            msgs in proptest::collection::vec(appliance_msg(), 1..5),
            chunk in 1usize..64,
        ) {
            let mut stream = Vec::new();
            for m in &msgs {
                stream.extend(encode(m).unwrap());
            }
            let frames = frames_of(&stream, chunk).unwrap();
            let back: Vec<ApplianceMsg> = frames.iter().map(|f| decode(f).unwrap()).collect();
            prop_assert_eq!(back, msgs);
        }

        #[test]
        fn controller_messages_survive_framing_in_any_chunking(
            msgs in proptest::collection::vec(controller_msg(), 1..5),
            chunk in 1usize..64,
        ) {
            let mut stream = Vec::new();
            for m in &msgs {
                stream.extend(encode(m).unwrap());
            }
            let frames = frames_of(&stream, chunk).unwrap();
            let back: Vec<ControllerMsg> = frames.iter().map(|f| decode(f).unwrap()).collect();
            prop_assert_eq!(back, msgs);
        }

        #[test]
        fn any_bytes_give_frames_or_a_typed_error_never_a_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            chunk in 1usize..32,
        ) {
            let mut d = FrameDecoder::with_max(64);
            let mut held_max = 0;
            let r = (|| -> Result<(), FrameError> {
                for c in bytes.chunks(chunk) {
                    d.push(c)?;
                    held_max = held_max.max(d.buffered());
                    while let Some(f) = d.next_frame()? {
                        let _ = decode::<ApplianceMsg>(&f);
                    }
                }
                d.finish()
            })();
            // Never more than one frame's worth plus a chunk held.
            prop_assert!(held_max <= HEADER_LEN + 64 + chunk);
            if let Err(e) = r {
                let typed = matches!(
                    e,
                    FrameError::Truncated { .. } | FrameError::TooBig { .. } | FrameError::Empty
                );
                prop_assert!(typed, "{}", e);
            }
        }

        #[test]
        fn truncating_a_frame_anywhere_is_reported_as_truncated(
            m in appliance_msg(),
            cut_frac in 0.0f64..1.0,
        ) {
            let f = encode(&m).unwrap();
            let cut = ((f.len() as f64) * cut_frac) as usize;
            prop_assume!(cut > 0 && cut < f.len());
            let is_truncated = matches!(frames_of(&f[..cut], 5), Err(FrameError::Truncated { .. }));
            prop_assert!(is_truncated);
        }
    }
}
