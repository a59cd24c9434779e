//! The key correctness test of the filter: the compiled classifier (with and
//! without the flow cache, one packet at a time and in bursts) agrees with a
//! naive linear scan written straight from the rule semantics, over random
//! rule sets with overlapping prefixes, groups, ranges and every field.

// In a module named `filter` so that `cargo test filter` selects these.
mod filter {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use dataplane::stage::filter::{
        Action, BitVecMissPath, BurstFields, Cidr, Classifier, FilterCounters, FlowCache,
        FlowCacheOf, Match, PortRange, Rule, TcpFlags, Verdict, VlanMatch,
    };
    use dataplane::stage::parse::{Fragment, Layers};
    use dataplane::stage::Direction;
    use proptest::prelude::*;

    // ---- the oracle -----------------------------------------------------------

    fn prefix_eq(a: u128, b: u128, len: u8, width: u8) -> bool {
        let shift = u32::from(width - len.min(width));
        if shift >= 128 {
            true
        } else {
            (a >> shift) == (b >> shift)
        }
    }

    fn cidr_contains(c: &Cidr, ver: u8, addr: u128) -> bool {
        match c.addr {
            IpAddr::V4(a) => {
                ver == 4 && prefix_eq(u128::from(addr as u32), u128::from(u32::from(a)), c.len, 32)
            }
            IpAddr::V6(a) => ver == 6 && prefix_eq(addr, u128::from(a), c.len, 128),
        }
    }

    fn has_ports(l: &Layers) -> bool {
        l.l4_offset != 0
            && l.fragment != Fragment::Later
            && matches!(l.l4_proto, 6 | 17 | 33 | 132 | 136)
    }

    /// DESIGN §4 / the `Match` docs, read literally.
    fn naive_matches(m: &Match, l: &Layers, port: u16, dir: Direction) -> bool {
        let in_list = |list: &Option<Vec<Cidr>>, addr| {
            list.as_ref()
                .is_none_or(|cs| cs.iter().any(|c| cidr_contains(c, l.ip_version, addr)))
        };
        let in_range =
            |r: Option<PortRange>, p: u16| r.is_none_or(|r| has_ports(l) && r.lo <= p && p <= r.hi);
        m.in_ports
            .as_ref()
            .is_none_or(|rs| rs.iter().any(|r| r.lo <= port && port <= r.hi))
            && m.vlan.is_none_or(|v| match v {
                VlanMatch::Untagged => l.outer_vlan.is_none(),
                VlanMatch::Id(id) => l.outer_vlan == Some(id),
            })
            && m.ethertype.is_none_or(|t| t == l.ethertype)
            && m.ip_version.is_none_or(|v| v == l.ip_version)
            && in_list(&m.src, l.src_addr)
            && in_list(&m.dst, l.dst_addr)
            && m.proto.is_none_or(|p| p == l.l4_proto)
            && in_range(m.src_port, l.src_port)
            && in_range(m.dst_port, l.dst_port)
            && m.tcp_flags
                .is_none_or(|f| has_ports(l) && l.l4_proto == 6 && l.tcp_flags & f.mask == f.value)
            && m.direction.is_none_or(|d| d == dir)
    }

    fn naive(rules: &[Rule], l: &Layers, port: u16, dir: Direction) -> Option<usize> {
        rules
            .iter()
            .position(|r| naive_matches(&r.matches, l, port, dir))
    }

    // ---- generators -----------------------------------------------------------
    //
    // Small pools of bases, ports and values, so that rules overlap each other
    // and packets hit them often; noise in the low bits exercises prefix edges.

    const V4_BASES: [u32; 5] = [
        0x0a00_0000,
        0x0a01_0000,
        0x0a01_0200,
        0xc0a8_0100,
        0x0000_0000,
    ];
    const V6_BASES: [u128; 4] = [
        0x2001_0db8_0000_0000_0000_0000_0000_0000,
        0x2001_0db8_0001_0000_0000_0000_0000_0000,
        0x2001_0db8_0001_0002_0000_0000_0000_0000,
        // Same low 32 bits as 10.0.0.0: v4/v6 confusion shows up.
        0x0000_0000_0000_0000_0000_0000_0a00_0000,
    ];
    const PORTS: [u16; 9] = [0, 1, 22, 53, 80, 443, 1024, 8080, 65535];

    fn v4_addr() -> impl Strategy<Value = u32> {
        (0..V4_BASES.len(), 0u32..0x1_0000, 0u32..4).prop_map(|(b, noise, shape)| {
            // Mostly near a base; sometimes anywhere.
            match shape {
                0 => noise.wrapping_mul(0x9e37_79b9),
                _ => V4_BASES[b] ^ (noise >> (shape * 4)),
            }
        })
    }

    fn v6_addr() -> impl Strategy<Value = u128> {
        (0..V6_BASES.len(), any::<u32>(), 0u32..4).prop_map(|(b, noise, shape)| match shape {
            0 => V6_BASES[b] ^ (u128::from(noise) << 64),
            1 => V6_BASES[b] ^ (u128::from(noise) << 96),
            _ => V6_BASES[b] ^ u128::from(noise >> (shape * 6)),
        })
    }

    fn cidr() -> impl Strategy<Value = Cidr> {
        prop_oneof![
            3 => (v4_addr(), prop_oneof![0u8..=32, 8u8..=24, Just(32u8)])
                .prop_map(|(a, len)| Cidr::new(Ipv4Addr::from(a), len)),
            1 => (v6_addr(), prop_oneof![0u8..=128, 16u8..=72, Just(128u8)])
                .prop_map(|(a, len)| Cidr::new(Ipv6Addr::from(a), len)),
        ]
    }

    fn cidr_list() -> impl Strategy<Value = Option<Vec<Cidr>>> {
        prop_oneof![
            6 => Just(None),
            3 => cidr().prop_map(|c| Some(vec![c])),
            2 => prop::collection::vec(cidr(), 0..8).prop_map(Some),
        ]
    }

    fn port_range() -> impl Strategy<Value = PortRange> {
        prop_oneof![
            (0..PORTS.len()).prop_map(|i| PortRange::single(PORTS[i])),
            (0..PORTS.len(), 0..PORTS.len()).prop_map(|(a, b)| {
                let (lo, hi) = (PORTS[a.min(b)], PORTS[a.max(b)]);
                PortRange::new(lo, hi)
            }),
            (any::<u16>(), 0u16..300).prop_map(|(lo, w)| PortRange::new(lo, lo.saturating_add(w))),
        ]
    }

    fn flags() -> impl Strategy<Value = TcpFlags> {
        (any::<u8>(), any::<u8>()).prop_map(|(v, m)| {
            // Few mask bits, mostly among SYN/ACK/FIN/RST.
            let mask = m & 0x17 | (m & 0x80);
            TcpFlags {
                value: v & mask,
                mask,
            }
        })
    }

    fn maybe<S: Strategy>(s: S, weight: u32) -> impl Strategy<Value = Option<S::Value>>
    where
        S::Value: Clone + std::fmt::Debug,
    {
        prop_oneof![10 - weight => Just(None), weight => s.prop_map(Some)]
    }

    fn a_match() -> impl Strategy<Value = Match> {
        let in_ports = maybe(
            prop::collection::vec(
                (0u16..6, 0u16..3).prop_map(|(lo, w)| PortRange::new(lo, lo + w)),
                1..3,
            ),
            2,
        );
        let vlan = maybe(
            prop_oneof![Just(VlanMatch::Untagged), (0u16..4).prop_map(VlanMatch::Id)],
            2,
        );
        let ethertype = maybe(prop_oneof![Just(0x0800u16), Just(0x86dd), Just(0x0806)], 1);
        let ip_version = maybe(prop_oneof![Just(4u8), Just(6u8)], 1);
        let proto = maybe(prop_oneof![Just(6u8), Just(17), Just(1), Just(132)], 3);
        let direction = maybe(
            prop_oneof![Just(Direction::Ingress), Just(Direction::Egress)],
            1,
        );
        (
            (in_ports, vlan, ethertype, ip_version),
            (cidr_list(), cidr_list(), proto),
            (
                maybe(port_range(), 3),
                maybe(port_range(), 4),
                maybe(flags(), 1),
                direction,
            ),
        )
            .prop_map(
                |(
                    (in_ports, vlan, ethertype, ip_version),
                    (src, dst, proto),
                    (src_port, dst_port, tcp_flags, direction),
                )| Match {
                    in_ports,
                    vlan,
                    ethertype,
                    ip_version,
                    src,
                    dst,
                    proto,
                    src_port,
                    dst_port,
                    tcp_flags,
                    direction,
                },
            )
    }

    /// Random rules with the invalid ones dropped (those are the validation
    /// tests' business; here they would only be rejected).
    fn rules(max: usize) -> impl Strategy<Value = Vec<Rule>> {
        prop::collection::vec(a_match(), 1..max).prop_map(|ms| {
            ms.into_iter()
                .enumerate()
                .map(|(i, m)| Rule {
                    id: 1000 + i as u32,
                    matches: m,
                    action: Action::Drop,
                })
                .filter(|r| r.validate(0).is_empty())
                .collect()
        })
    }

    #[derive(Clone, Debug)]
    struct Pkt {
        l: Layers,
        port: u16,
        dir: Direction,
    }

    fn packet() -> impl Strategy<Value = Pkt> {
        let ip = prop_oneof![
            6 => (v4_addr(), v4_addr()).prop_map(|(s, d)| (4u8, u128::from(s), u128::from(d))),
            3 => (v6_addr(), v6_addr()).prop_map(|(s, d)| (6u8, s, d)),
            1 => Just((0u8, 0u128, 0u128)),
        ];
        let port_of = prop_oneof![
            (0..PORTS.len()).prop_map(|i| PORTS[i]),
            any::<u16>(),
            (0..PORTS.len(), -2i32..=2)
                .prop_map(|(i, d)| (i32::from(PORTS[i]) + d).clamp(0, 65535) as u16),
        ];
        (
            ip,
            (
                prop_oneof![Just(6u8), Just(17), Just(1), Just(132), Just(0)],
                port_of.clone(),
                port_of,
            ),
            (
                any::<u8>(),
                prop_oneof![Just(None), (0u16..5).prop_map(Some)],
                0u16..8,
            ),
            (any::<bool>(), 0u8..8),
        )
            .prop_map(
                |((ver, src, dst), (proto, sport, dport), (fl, vlan, port), (egress, frag))| {
                    let ethertype = match ver {
                        4 => 0x0800,
                        6 => 0x86dd,
                        _ => 0x0806,
                    };
                    let fragment = match frag {
                        0 => Fragment::Later,
                        1 => Fragment::First,
                        _ => Fragment::None,
                    };
                    let ported =
                        ver != 0 && matches!(proto, 6 | 17 | 132) && fragment != Fragment::Later;
                    let l = Layers {
                        vlan_count: u8::from(vlan.is_some()),
                        outer_vlan: vlan,
                        ethertype,
                        l3_offset: if ver == 0 { 0 } else { 14 },
                        ip_version: ver,
                        l4_proto: if ver == 0 { 0 } else { proto },
                        l4_offset: if ported || (ver != 0 && proto == 1) {
                            34
                        } else {
                            0
                        },
                        src_addr: src,
                        dst_addr: dst,
                        src_port: if ported { sport } else { 0 },
                        dst_port: if ported { dport } else { 0 },
                        tcp_flags: if ported && proto == 6 { fl } else { 0 },
                        fragment,
                        ..Layers::default()
                    };
                    Pkt {
                        l,
                        port,
                        dir: if egress {
                            Direction::Egress
                        } else {
                            Direction::Ingress
                        },
                    }
                },
            )
    }

    fn check(rules: &[Rule], pkts: &[Pkt]) -> Result<(), TestCaseError> {
        let c = Classifier::build(rules, Action::Drop)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        // A small cache, so that evictions happen too.
        let mut cache = FlowCache::new(32);
        for (round, _) in [(); 2].iter().enumerate() {
            for p in pkts {
                let want = naive(rules, &p.l, p.port, p.dir);
                let got = c.classify(&p.l, p.port, p.dir);
                prop_assert_eq!(got.rule_index(), want, "classify {:?}", p);
                let cached = c.classify_cached(&mut cache, &p.l, p.port, p.dir);
                prop_assert_eq!(cached, got, "cache round {}: {:?}", round, p);
            }
        }
        // The burst API, through a fresh cache and counters.
        let mut cache = FlowCache::new(1024);
        let mut counters = FilterCounters::new();
        let mut expected_hits = vec![0u64; rules.len()];
        let mut expected_default = 0u64;
        for chunk in pkts.chunks(32) {
            let layers: Vec<Layers> = chunk.iter().map(|p| p.l).collect();
            let ports: Vec<u16> = chunk.iter().map(|p| p.port).collect();
            let dirs: Vec<Direction> = chunk.iter().map(|p| p.dir).collect();
            let mut out = [Verdict::DEFAULT; 32];
            let n = c.classify_burst(&mut cache, &layers, &ports, &dirs, &mut out, &mut counters);
            prop_assert_eq!(n, chunk.len());
            for (p, v) in chunk.iter().zip(out.iter()) {
                let want = naive(rules, &p.l, p.port, p.dir);
                prop_assert_eq!(v.rule_index(), want);
                match want {
                    Some(i) => expected_hits[i] += 1,
                    None => expected_default += 1,
                }
            }
        }
        prop_assert_eq!(&counters.rule_hits, &expected_hits);
        prop_assert_eq!(counters.default_hits, expected_default);
        // Every associativity the flow cache bench compares answers alike.
        agrees_through::<1>(&c, pkts)?;
        agrees_through::<2>(&c, pkts)?;
        agrees_through::<4>(&c, pkts)?;
        agrees_through::<8>(&c, pkts)?;
        #[cfg(feature = "dpdk")]
        check_acl(&c, rules, pkts)?;
        check_bitvec(&c, rules, pkts)?;
        Ok(())
    }

    /// A chunk of packets as the burst API takes them.
    struct Burst {
        layers: Vec<Layers>,
        ports: Vec<u16>,
        dirs: Vec<Direction>,
    }

    impl Burst {
        fn of(chunk: &[Pkt]) -> Burst {
            Burst {
                layers: chunk.iter().map(|p| p.l).collect(),
                ports: chunk.iter().map(|p| p.port).collect(),
                dirs: chunk.iter().map(|p| p.dir).collect(),
            }
        }
    }

    /// `chunk`'s verdicts from `c` through `cache`, as the worker asks.
    fn cached<const W: usize>(
        c: &Classifier,
        cache: &mut FlowCacheOf<W>,
        chunk: &[Pkt],
    ) -> [Verdict; 32] {
        let b = Burst::of(chunk);
        let mut out = [Verdict::DEFAULT; 32];
        let fields = BurstFields {
            layers: &b.layers,
            in_ports: &b.ports,
            dirs: &b.dirs,
        };
        c.classify_burst_cached(cache, fields, &mut out);
        out
    }

    /// The bit-vector miss path, alone and behind a small flow cache,
    /// agrees with the linear scan: it takes every valid policy.
    fn check_bitvec(c: &Classifier, rules: &[Rule], pkts: &[Pkt]) -> Result<(), TestCaseError> {
        let bv = BitVecMissPath::build(rules).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(c.uses_bitvec() || c.constant_verdict().is_some());
        let mut cache = FlowCache::new(8);
        for round in 0..2 {
            for chunk in pkts.chunks(32) {
                let out = cached(c, &mut cache, chunk);
                let b = Burst::of(chunk);
                let mut alone = [Verdict::DEFAULT; 32];
                bv.classify_burst(c, &b.layers, &b.ports, &b.dirs, &mut alone);
                for ((p, v), a) in chunk.iter().zip(out.iter()).zip(alone.iter()) {
                    let want = naive(rules, &p.l, p.port, p.dir);
                    prop_assert_eq!(v.rule_index(), want, "bitvec, round {}: {:?}", round, p);
                    prop_assert_eq!(a.rule_index(), want, "bitvec alone: {:?}", p);
                }
            }
        }
        Ok(())
    }

    /// Bursts through a `W`-way cache small enough to evict, twice over:
    /// the verdicts of the classifier without a cache.
    fn agrees_through<const W: usize>(c: &Classifier, pkts: &[Pkt]) -> Result<(), TestCaseError> {
        let mut cache = FlowCacheOf::<W>::new(16);
        for round in 0..2 {
            for chunk in pkts.chunks(32) {
                let out = cached(c, &mut cache, chunk);
                for (p, v) in chunk.iter().zip(out.iter()) {
                    let want = c.classify(&p.l, p.port, p.dir);
                    prop_assert_eq!(*v, want, "{} ways, round {}: {:?}", W, round, p);
                }
            }
        }
        Ok(())
    }

    /// The same classifier with its flow-cache misses on rte_acl agrees
    /// with the linear scan too. A policy rte_acl
    /// cannot express (sets too large to expand) must say so; thousands
    /// of random wildcard-heavy rules may exceed rte_acl's trie limits
    /// (the runtime then keeps TupleMerge), a hundred must not.
    #[cfg(feature = "dpdk")]
    fn check_acl(c: &Classifier, rules: &[Rule], pkts: &[Pkt]) -> Result<(), TestCaseError> {
        use dataplane::stage::filter::AclBuildError;
        dataplane::dpdk::testing::shared_eal("filter-oracle");
        let mut a = c.clone();
        a.drop_bitvec();
        match a.adopt_acl() {
            Ok(()) => {}
            Err(AclBuildError::Residuals) => return Ok(()),
            Err(AclBuildError::Dpdk(_)) if rules.len() > 500 => return Ok(()),
            // rte_acl refuses rule sets whose tries outgrow its memory
            // (ENOMEM, a few hundred wide-range rules can do it): the
            // appliance then keeps TupleMerge, which `check` covers.
            Err(AclBuildError::Dpdk(e)) if e.to_string().contains("Cannot allocate memory") => {
                return Ok(())
            }
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        }
        // A small cache, so that misses and evictions happen in every burst.
        let mut cache = FlowCache::new(8);
        for round in 0..2 {
            for chunk in pkts.chunks(32) {
                let out = cached(&a, &mut cache, chunk);
                for (p, v) in chunk.iter().zip(out.iter()) {
                    let want = naive(rules, &p.l, p.port, p.dir);
                    prop_assert_eq!(v.rule_index(), want, "acl, round {}: {:?}", round, p);
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn classifier_agrees_with_linear_scan(
            rules in rules(120),
            pkts in prop::collection::vec(packet(), 1..96),
        ) {
            check(&rules, &pkts)?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        /// Many rules: many tables, full buckets, exact-mask spill tables.
        #[test]
        fn classifier_agrees_with_linear_scan_many_rules(
            rules in rules(3000),
            pkts in prop::collection::vec(packet(), 200..400),
        ) {
            check(&rules, &pkts)?;
        }
    }

    fn big_group() -> impl Strategy<Value = Option<Vec<Cidr>>> {
        prop_oneof![
            Just(None),
            prop::collection::vec(cidr(), 0..8).prop_map(Some),
            prop::collection::vec(cidr(), 100..400).prop_map(Some),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Groups and port sets too big to expand: the residual-set path.
        #[test]
        fn classifier_agrees_with_linear_scan_big_groups(
            base in prop::collection::vec((a_match(), big_group(), big_group(), any::<bool>()), 1..20),
            pkts in prop::collection::vec(packet(), 50..200),
        ) {
            let rules: Vec<Rule> = base
                .into_iter()
                .enumerate()
                .map(|(i, (mut m, src, dst, many_ports))| {
                    m.src = src;
                    m.dst = dst;
                    if many_ports {
                        m.in_ports = Some((0..300).map(|p| PortRange::single(p * 2 + i as u16 % 2)).collect());
                    }
                    Rule { id: i as u32, matches: m, action: Action::Drop }
                })
                .filter(|r| r.validate(0).is_empty())
                .collect();
            check(&rules, &pkts)?;
        }
    }

    /// Rules of many shapes (prefix lengths × which fields are set), enough to
    /// need more than 64 tables: the pruner's multi-word table sets.
    fn many_shapes() -> Vec<Rule> {
        let mut rules = Vec::new();
        let mut x: u32 = 0x1234_5678;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for i in 0..1500u32 {
            let base = V4_BASES[(next() % V4_BASES.len() as u32) as usize] ^ (next() & 0xfff);
            let shape = next();
            let mut m = Match {
                src: Some(vec![Cidr::new(Ipv4Addr::from(base), (shape % 33) as u8)]),
                ..Match::default()
            };
            if shape & 0x100 != 0 {
                let d = V4_BASES[(next() % V4_BASES.len() as u32) as usize] ^ (next() & 0xff);
                m.dst = Some(vec![Cidr::new(
                    Ipv4Addr::from(d),
                    ((shape >> 9) % 33) as u8,
                )]);
            }
            if shape & 0x10000 != 0 {
                m.dst_port = Some(PortRange::single(PORTS[(next() % 9) as usize]));
            }
            if shape & 0x20000 != 0 {
                let lo = PORTS[(next() % 9) as usize];
                m.src_port = Some(PortRange::new(lo, lo.saturating_add((next() % 100) as u16)));
            }
            if shape & 0x40000 != 0 {
                m.proto = Some([6, 17, 132][(next() % 3) as usize]);
            }
            if shape & 0x80000 != 0 {
                m.vlan = Some(VlanMatch::Id((next() % 4) as u16));
            }
            rules.push(Rule {
                id: i,
                matches: m,
                action: Action::Drop,
            });
        }
        rules.retain(|r| r.validate(0).is_empty());
        rules
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        #[test]
        fn classifier_agrees_with_linear_scan_many_tables(
            pkts in prop::collection::vec(packet(), 300..500),
        ) {
            let rules = many_shapes();
            let c = Classifier::build(&rules, Action::Drop).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(c.table_count() > 64, "only {} tables", c.table_count());
            check(&rules, &pkts)?;
        }
    }
}
