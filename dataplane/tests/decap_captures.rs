//! Decap against the reference captures, with tshark as the judge.
//!
//! For every ERSPAN, VXLAN, Geneve and GRE capture, each packet's inner
//! frame as tshark dissects it — the innermost Ethernet layer after a
//! tunnel, from its offset (`eth_raw`) to the end of the tunnel payload
//! (UDP length or IP length) — must be exactly what decap leaves in the
//! frame. Packets tshark shows with a tunnel but no Ethernet inside must be
//! `NotEthernet` (or an error where tshark flags the packet malformed or cut
//! short), and packets without a tunnel must be `NotTunnel` (same
//! exception). Then every capture in the directory goes through decap
//! whole and cut at every length up to 256 bytes, without a panic.

mod common;

use common::*;
use dataplane::frame::{Frame, VecFrame};
use dataplane::stage::decap::{
    Decap, DecapConfig, DecapError, DecapOutcome, Payload, Retag, TunnelKind, VidMap,
};
use pcap_file::DataLink;
use serde_json::Value;

const TUNNELS: [&str; 4] = ["vxlan", "geneve", "erspan", "gre"];

fn is_tunnel_capture(name: &str) -> bool {
    ["erspan", "vxlan", "geneve", "gre"]
        .iter()
        .any(|t| name.contains(t))
}

fn decap_config() -> DecapConfig {
    DecapConfig {
        vxlan_ports: vec![4789, 8472],
        ..DecapConfig::default()
    }
}

fn num(s: &str) -> u64 {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    }
    .unwrap_or_else(|_| panic!("not a number: {s}"))
}

/// What tshark says decap must produce for one packet.
#[derive(Debug)]
enum Expect {
    /// Inner frame `start..end`, `layers` tunnels, the outermost of `kind`
    /// with tunnel ID `id` (when tshark shows one).
    Inner {
        start: usize,
        end: usize,
        layers: usize,
        kind: &'static str,
        id: Option<u64>,
    },
    /// A tunnel of this protocol with something other than Ethernet inside.
    NotEthernet(&'static str),
    NotTunnel,
}

fn tunnel_name(p: &str) -> Option<&'static str> {
    TUNNELS.iter().copied().find(|t| *t == p)
}

/// Reads the expectation out of tshark's dissection.
fn expectation(layers: &Value) -> Expect {
    let protos = protocols(layers);
    let first_tunnel = protos.iter().position(|p| tunnel_name(p).is_some());
    let Some(ft) = first_tunnel else {
        return Expect::NotTunnel;
    };
    // The last Ethernet layer that directly follows a tunnel layer (through
    // ERSPAN/GRE, tshark shows `gre:erspan:eth` or `gre:eth`).
    let eths: Vec<usize> = protos
        .iter()
        .enumerate()
        .filter(|(_, p)| *p == "eth")
        .map(|(i, _)| i)
        .collect();
    let tunnelled: Vec<usize> = eths
        .iter()
        .copied()
        .filter(|&i| i > 0 && tunnel_name(&protos[i - 1]).is_some())
        .collect();
    let Some(&last) = tunnelled.last() else {
        return Expect::NotEthernet(tunnel_name(&protos[ft]).unwrap_or("?"));
    };
    let eth_index = eths.iter().position(|&i| i == last).expect("eth index");
    let start = raw_positions(layers, "eth")[eth_index].0;
    // The tunnel right before the inner Ethernet, and the layer whose
    // length bounds its payload.
    let tunnel_at = last - 1;
    let before = |proto: &str| protos[..tunnel_at].iter().filter(|p| *p == proto).count();
    let end = match protos[tunnel_at].as_str() {
        "vxlan" | "geneve" => {
            let j = before("udp") - 1;
            let pos = raw_positions(layers, "udp")[j].0;
            pos + num(&field(occurrences(layers, "udp")[j], "udp.length")) as usize
        }
        _ => {
            // GRE/ERSPAN: the payload runs to the end of the IP packet.
            let (i4, i6) = (before("ip"), before("ipv6"));
            let ip_at = protos[..tunnel_at]
                .iter()
                .rposition(|p| p == "ip" || p == "ipv6")
                .expect("IP under GRE");
            if protos[ip_at] == "ip" {
                let pos = raw_positions(layers, "ip")[i4 - 1].0;
                pos + num(&field(occurrences(layers, "ip")[i4 - 1], "ip.len")) as usize
            } else {
                let pos = raw_positions(layers, "ipv6")[i6 - 1].0;
                pos + 40 + num(&field(occurrences(layers, "ipv6")[i6 - 1], "ipv6.plen")) as usize
            }
        }
    };
    let outer = protos[ft].as_str();
    let kind = tunnel_name(outer).unwrap_or("?");
    let id = match outer {
        "vxlan" => field_values(layers, "vxlan.vni").first().map(|s| num(s)),
        "geneve" => field_values(layers, "geneve.vni").first().map(|s| num(s)),
        "erspan" => field_values(layers, "erspan.spanid")
            .first()
            .map(|s| num(s)),
        // GRE's key is only an ID for L2GRE; ERSPAN's GRE has none.
        "gre" => match protos.get(ft + 1).map(String::as_str) {
            Some("erspan") => field_values(layers, "erspan.spanid")
                .first()
                .map(|s| num(s)),
            _ => field_values(layers, "gre.key").first().map(|s| num(s)),
        },
        _ => None,
    };
    Expect::Inner {
        start,
        end,
        layers: tunnelled.len(),
        kind,
        id,
    }
}

fn kind_name(k: TunnelKind) -> &'static str {
    match k {
        TunnelKind::Vxlan => "vxlan",
        TunnelKind::Geneve => "geneve",
        // tshark's first tunnel layer for all of these is `gre`.
        TunnelKind::L2Gre
        | TunnelKind::ErspanI
        | TunnelKind::ErspanII
        | TunnelKind::ErspanIII
        | TunnelKind::Gre => "gre",
    }
}

#[test]
fn decap_matches_tshark_on_every_tunnel_capture() {
    let files: Vec<_> = all_captures()
        .into_iter()
        .filter(|p| is_tunnel_capture(&p.file_name().unwrap().to_string_lossy()))
        .collect();
    assert!(files.len() >= 30, "only {} tunnel captures", files.len());
    let mut inner_checked = 0;
    let mut not_ethernet = 0;
    let mut errors_judged = 0;
    let mut kinds = std::collections::BTreeSet::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let (link, frames) = read_pcap_link(path);
        let dissected = tshark_json(path, &["-d", "udp.port==8472,vxlan"]);
        assert_eq!(dissected.len(), frames.len(), "{name}");
        if link != DataLink::ETHERNET {
            // Raw-IP captures: tshark does not see an Ethernet frame either;
            // decap is not for them (the input layer refuses such links).
            for l in &dissected {
                assert!(!protocols(l)[0].starts_with("eth"), "{name}");
            }
            continue;
        }
        let mut d = Decap::new(decap_config()).unwrap();
        for (i, (bytes, layers)) in frames.iter().zip(&dissected).enumerate() {
            let at = format!("{name} packet {}", i + 1);
            let mut f = VecFrame::new(bytes);
            let got = d.decap(&mut f);
            let judged_bad = !tshark_errors(layers).is_empty() || !tshark_short(layers).is_empty();
            match expectation(layers) {
                Expect::Inner {
                    start,
                    end,
                    layers: n,
                    kind,
                    id,
                } => {
                    let Ok(DecapOutcome::Decapsulated(info)) = got else {
                        panic!("{at}: tshark shows an inner frame at {start}..{end}, decap says {got:?}");
                    };
                    assert_eq!(f.data(), &bytes[start..end], "{at}: inner bytes");
                    assert_eq!(usize::from(info.layers), n, "{at}: layers");
                    assert_eq!(kind_name(info.outer().kind), kind, "{at}: kind");
                    assert_eq!(info.stripped, start, "{at}: stripped");
                    if let Some(id) = id {
                        assert_eq!(info.outer().id.map(u64::from), Some(id), "{at}: id");
                    }
                    kinds.insert(format!("{:?}", info.outer().kind));
                    inner_checked += 1;
                }
                Expect::NotEthernet(proto) => match got {
                    Ok(DecapOutcome::NotEthernet(t)) => {
                        assert_eq!(kind_name(t.kind), proto, "{at}");
                        assert_ne!(t.payload, Payload::Ethernet, "{at}");
                        assert_eq!(f.data(), &bytes[..], "{at}: frame must be untouched");
                        not_ethernet += 1;
                    }
                    Err(_) if judged_bad => {
                        assert_eq!(f.data(), &bytes[..], "{at}: frame must be untouched");
                        errors_judged += 1;
                    }
                    other => panic!(
                        "{at}: tshark shows {proto} without Ethernet inside, decap says {other:?}"
                    ),
                },
                Expect::NotTunnel => match got {
                    Ok(DecapOutcome::NotTunnel) => {}
                    Err(_) if judged_bad => {
                        assert_eq!(f.data(), &bytes[..], "{at}");
                        errors_judged += 1;
                    }
                    other => panic!("{at}: tshark shows no tunnel, decap says {other:?}"),
                },
            }
        }
    }
    eprintln!(
        "{} files: {inner_checked} inner frames byte-equal to tshark's, {not_ethernet} non-Ethernet tunnels, {errors_judged} malformed (tshark agrees); kinds {kinds:?}",
        files.len()
    );
    // The captures hold these; if the count drops, a file went missing or
    // decap stopped recognising something.
    for k in ["Vxlan", "Geneve", "ErspanI", "ErspanII", "ErspanIII"] {
        assert!(kinds.contains(k), "no {k} frame decapsulated: {kinds:?}");
    }
    assert!(inner_checked >= 100, "{inner_checked}");
    assert!(not_ethernet >= 30, "{not_ethernet}");
}

#[test]
fn specific_captures_are_classified_as_tshark_sees_them() {
    let dir = captures_dir();
    let mut d = Decap::new(decap_config()).unwrap();
    let nth = |name: &str, n: usize, d: &mut Decap| {
        let (_, frames) = read_pcap_link(&dir.join(name));
        d.decap(&mut VecFrame::new(&frames[n]))
    };
    let first = |name: &str, d: &mut Decap| nth(name, 0, d);
    // FT=7: tshark shows "Data", not Ethernet.
    match first("erspan-type-iii-ft-7.pcap", &mut d) {
        Ok(DecapOutcome::NotEthernet(t)) => {
            assert_eq!(t.kind, TunnelKind::ErspanIII);
            assert_eq!(t.payload, Payload::ErspanFrameType(7));
        }
        other => panic!("{other:?}"),
    }
    // Geneve carrying IPv4 (protocol 0x0800).
    match first("geneve-gcp.pcap", &mut d) {
        Ok(DecapOutcome::NotEthernet(t)) => {
            assert_eq!(t.kind, TunnelKind::Geneve);
            assert_eq!(
                t.payload,
                Payload::EtherType(dataplane::wire::ethernet::EtherType::Ipv4)
            );
        }
        other => panic!("{other:?}"),
    }
    // GSO super-packets: UDP length 0, which tshark calls malformed too.
    assert_eq!(
        first("bigtcp-ipv4-vxlan-ipv4.pcap", &mut d),
        Err(DecapError::BadLength)
    );
    // Snaplen cut the GRE packet short.
    assert_eq!(
        nth("gre-heapoverflow-2.pcap", 1, &mut d).err(),
        Some(DecapError::Truncated)
    );
    // ERSPAN II session 666, index 32760 (tshark: erspan.spanid, erspan.index).
    match first("erspan-type-ii-1.pcap", &mut d) {
        Ok(DecapOutcome::Decapsulated(i)) => {
            let t = i.outer();
            assert_eq!((t.kind, t.id), (TunnelKind::ErspanII, Some(666)));
            assert_eq!(t.origin.input_port, Some(32760));
            assert_eq!(t.sequence, Some(171));
        }
        other => panic!("{other:?}"),
    }
}

/// Every capture in the directory, whole and cut at every length up to 256
/// bytes, with retagging and the deepest nesting allowed: no panic, and a
/// decapsulated frame is always a slice of the original (plus the pushed tag).
#[test]
fn every_capture_and_every_prefix_goes_through_without_panic() {
    let mut d = Decap::new(DecapConfig {
        vxlan_ports: vec![4789, 8472, 4790],
        max_layers: 4,
        retag: Some(Retag {
            map: VidMap::Low12,
            pcp: 3,
        }),
        ..DecapConfig::default()
    })
    .unwrap();
    let mut frames_seen = 0;
    for path in all_captures() {
        let (_, frames) = read_pcap_link(&path);
        for bytes in &frames {
            let cuts = (0..bytes.len().min(256)).chain(std::iter::once(bytes.len()));
            for n in cuts {
                let input = &bytes[..n];
                let mut f = VecFrame::new(input);
                if let Ok(DecapOutcome::Decapsulated(info)) = d.decap(&mut f) {
                    let out = f.data();
                    let body = if info.vlan.is_some() {
                        assert_eq!(&out[12..14], &[0x81, 0x00]);
                        [&out[..12], &out[16..]].concat()
                    } else {
                        out.to_vec()
                    };
                    let s = info.stripped;
                    assert_eq!(&input[s..s + body.len()], &body[..], "{}", path.display());
                }
            }
            frames_seen += 1;
        }
    }
    let c = d.counters();
    let total = c.decapsulated + c.not_tunnel + c.not_ethernet + c.errors();
    assert!(frames_seen > 500, "{frames_seen}");
    assert!(c.decapsulated > 0 && c.errors() > 0 && c.not_ethernet > 0);
    eprintln!("{frames_seen} capture frames, {total} decap calls: {c:?}");
}
