//! Target `protocol`: the controller protocol's frame decoder and message
//! decoding on any byte stream, fed in chunks as a socket would.
//!
//! Input: one byte picking the chunk size (1 to 64 bytes, or all at once
//! when 0), then the stream. Checks: the decoder never buffers more than
//! one frame plus the chunk that arrived with it; every body it returns is
//! one its limit allows; a body that decodes as a message re-encodes to a
//! frame that decodes to the same message.

use ctrlplane::agent::protocol::{
    decode, encode, ApplianceMsg, ControllerMsg, FrameDecoder, FrameError, HEADER_LEN,
};

/// A small limit so the fuzzer reaches it.
const MAX: usize = 4096;

pub fn run(data: &[u8]) {
    let [b0, ref stream @ ..] = *data else {
        return;
    };
    let chunk = match usize::from(b0 & 63) {
        0 => stream.len().max(1),
        n => n,
    };
    let mut dec = FrameDecoder::with_max(MAX);
    let mut broken = false;
    for piece in stream.chunks(chunk) {
        if let Err(e) = dec.push(piece) {
            assert!(
                matches!(e, FrameError::TooBig { .. } | FrameError::Empty),
                "push failed with {e:?}"
            );
            broken = true;
            break;
        }
        assert!(
            dec.buffered() <= HEADER_LEN + MAX + piece.len(),
            "the decoder holds {} bytes",
            dec.buffered()
        );
        loop {
            match dec.next_frame() {
                Ok(Some(body)) => {
                    assert!(!body.is_empty() && body.len() <= MAX);
                    check_body(&body);
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(matches!(e, FrameError::TooBig { .. } | FrameError::Empty));
                    broken = true;
                    break;
                }
            }
        }
        if broken {
            break;
        }
    }
    if !broken {
        match dec.finish() {
            Ok(()) => assert_eq!(dec.buffered(), 0),
            Err(FrameError::Truncated { expected, got }) => {
                assert!(got > 0 && got < expected, "truncated {got} of {expected}");
            }
            Err(e) => panic!("finish failed with {e:?}"),
        }
    }
    // The body decoders on the raw stream too (a frame is any bytes).
    check_body(stream);
}

fn check_body(body: &[u8]) {
    if let Ok(m) = decode::<ControllerMsg>(body) {
        roundtrip(&m);
    }
    if let Ok(m) = decode::<ApplianceMsg>(body) {
        roundtrip(&m);
    }
}

fn roundtrip<M>(m: &M)
where
    M: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    // A message that does not fit a frame may be refused, nothing else.
    let frame = match encode(m) {
        Ok(f) => f,
        Err(FrameError::TooBig { .. }) => return,
        Err(e) => panic!("a decoded message does not encode: {e:?} {m:?}"),
    };
    let mut dec = FrameDecoder::new();
    dec.push(&frame).expect("our own frame");
    let body = dec.next_frame().expect("our own frame").expect("whole");
    let back: M = decode(&body).expect("our own frame decodes");
    assert_eq!(&back, m, "re-encoding changed the message");
    assert_eq!(dec.buffered(), 0);
}
