//! The built-in sample traffic of the default run: what a TAP on a small
//! office uplink would see, with the copies a SPAN session makes.

use etherparse::PacketBuilder;

/// Frames of the sample, in order: web and UDP echo over IPv4 and IPv6, some
/// VLAN-tagged, SSH; each UDP packet comes twice, the second time as a
/// second mirror point one router hop later sees it (TTL one lower, other
/// MACs).
pub fn tap_sample() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for i in 0..400u32 {
        let host = (i % 8) as u8 + 10;
        let payload: Vec<u8> = (0..(40 + (i % 5) * 240)).map(|b| (b ^ i) as u8).collect();
        let mut bytes = Vec::new();
        let eth = || PacketBuilder::ethernet2([2, 0, 0, 0, 1, host], [2, 0, 0, 0, 2, 1]);
        let sport = 40000 + (i % 64) as u16;
        let written = match i % 4 {
            0 => eth()
                .single_vlan(etherparse::VlanId::try_new(100).unwrap_or_default())
                .ipv4([10, 1, 0, host], [10, 2, 0, 1], 64)
                .tcp(sport, 443, 1000 + i, 64240)
                .write(&mut bytes, &payload),
            1 => eth()
                .ipv4([10, 1, 0, host], [10, 2, 0, 7], 64)
                .udp(sport + 10000, 7)
                .write(&mut bytes, &payload),
            2 => eth()
                .ipv6(
                    [
                        0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, host,
                    ],
                    [0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                    64,
                )
                .tcp(sport, 5001, 5000 + i, 64240)
                .write(&mut bytes, &payload),
            _ => eth()
                .ipv4([10, 1, 0, host], [10, 3, 0, 22], 64)
                .tcp(sport, 22, 9000 + i, 64240)
                .write(&mut bytes, &payload),
        };
        if written.is_err() {
            continue;
        }
        out.push(bytes.clone());
        if i % 4 == 1 {
            // The second mirror point's copy: one router hop later.
            if let Some(copy) = hop_later(&bytes) {
                out.push(copy);
            }
        }
    }
    out
}

/// The same IPv4 frame one hop later: TTL down by one, checksum fixed,
/// other MACs.
fn hop_later(frame: &[u8]) -> Option<Vec<u8>> {
    let mut f = frame.to_vec();
    if f.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 3, 1]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 3, 2]);
    f[22] = f[22].checked_sub(1)?;
    f[24] = 0;
    f[25] = 0;
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let c = dataplane::wire::checksum::checksum(f.get(14..14 + ihl)?);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    Some(f)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_sample_has_mirror_copies_with_a_lower_ttl() {
        let s = super::tap_sample();
        assert_eq!(s.len(), 500, "400 frames and 100 second copies");
        let (a, b) = (&s[1], &s[2]);
        assert_eq!(a.len(), b.len());
        assert_eq!(a[22], b[22] + 1);
        assert_eq!(&a[26..], &b[26..], "same packet from the IP addresses on");
    }
}
