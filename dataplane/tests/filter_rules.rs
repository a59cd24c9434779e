//! The filter stage, one behaviour at a time: ordering, each match field,
//! groups, validation, the flow cache and the burst API.

// In a module named `filter` so that `cargo test filter` selects these.
mod filter {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use dataplane::stage::filter::{
        Action, BuildError, Cidr, Classifier, DestAction, Field, FilterCounters, FlowCache, Match,
        PortRange, Rule, RuleErrorKind, TcpFlags, Verdict, VlanMatch,
    };
    use dataplane::stage::parse::{Fragment, Layers};
    use dataplane::stage::slice::SliceSpec;
    use dataplane::stage::Direction;

    fn fwd(dest: u16) -> Action {
        Action::Forward(vec![DestAction {
            dest,
            slice: SliceSpec::Whole,
            dedup: false,
            tag: None,
        }])
    }

    fn rule(id: u32, m: Match) -> Rule {
        Rule {
            id,
            matches: m,
            action: fwd(id as u16),
        }
    }

    fn cidr(s: &str) -> Cidr {
        s.parse().expect("test CIDR")
    }

    fn cidrs(list: &[&str]) -> Option<Vec<Cidr>> {
        Some(list.iter().map(|s| cidr(s)).collect())
    }

    /// An IPv4 TCP packet.
    fn tcp4(src: &str, dst: &str, sport: u16, dport: u16) -> Layers {
        let s: Ipv4Addr = src.parse().expect("test address");
        let d: Ipv4Addr = dst.parse().expect("test address");
        Layers {
            ethertype: 0x0800,
            l3_offset: 14,
            ip_version: 4,
            l4_proto: 6,
            l4_offset: 34,
            payload_offset: 54,
            src_addr: u128::from(u32::from(s)),
            dst_addr: u128::from(u32::from(d)),
            src_port: sport,
            dst_port: dport,
            tcp_flags: TcpFlags::ACK,
            ..Layers::default()
        }
    }

    fn udp4(src: &str, dst: &str, sport: u16, dport: u16) -> Layers {
        Layers {
            l4_proto: 17,
            tcp_flags: 0,
            payload_offset: 42,
            ..tcp4(src, dst, sport, dport)
        }
    }

    fn tcp6(src: &str, dst: &str, sport: u16, dport: u16) -> Layers {
        let s: Ipv6Addr = src.parse().expect("test address");
        let d: Ipv6Addr = dst.parse().expect("test address");
        Layers {
            ethertype: 0x86dd,
            ip_version: 6,
            src_addr: u128::from(s),
            dst_addr: u128::from(d),
            l4_offset: 54,
            payload_offset: 74,
            ..tcp4("0.0.0.0", "0.0.0.0", sport, dport)
        }
    }

    fn build(rules: &[Rule]) -> Classifier {
        Classifier::build(rules, Action::Drop).expect("valid rules")
    }

    /// Id of the rule `l` matches on port 0, ingress (None = default).
    fn id_of(c: &Classifier, l: &Layers) -> Option<u32> {
        id_at(c, l, 0, Direction::Ingress)
    }

    fn id_at(c: &Classifier, l: &Layers, port: u16, dir: Direction) -> Option<u32> {
        let v = c.classify(l, port, dir);
        // The cached path must always agree with the classifier.
        let mut cache = FlowCache::new(64);
        assert_eq!(c.classify_cached(&mut cache, l, port, dir), v);
        assert_eq!(c.classify_cached(&mut cache, l, port, dir), v);
        c.rule_id(v)
    }

    const A: &str = "10.0.0.1";
    const B: &str = "192.168.1.1";

    #[test]
    fn first_match_wins_in_list_order() {
        let general = Match {
            dst: cidrs(&["192.168.0.0/16"]),
            ..Match::default()
        };
        let specific = Match {
            dst: cidrs(&["192.168.1.1/32"]),
            dst_port: Some(PortRange::single(80)),
            ..Match::default()
        };
        // General first: it wins even though the second is more specific.
        let c = build(&[rule(1, general.clone()), rule(2, specific.clone())]);
        assert_eq!(id_of(&c, &tcp4(A, B, 1000, 80)), Some(1));
        // Specific first: it wins where it matches, the general one elsewhere.
        let c = build(&[rule(2, specific), rule(1, general)]);
        assert_eq!(id_of(&c, &tcp4(A, B, 1000, 80)), Some(2));
        assert_eq!(id_of(&c, &tcp4(A, B, 1000, 81)), Some(1));
        assert_eq!(id_of(&c, &tcp4(A, "192.169.0.1", 1000, 80)), None);
    }

    #[test]
    fn first_match_wins_across_many_tables() {
        // Rules of many shapes (so many tables), and a catch-all late: every
        // packet must report the earliest rule that matches it.
        let mut rules = Vec::new();
        for i in 0..200u32 {
            let m = match i % 4 {
                0 => Match {
                    dst: cidrs(&[&format!("10.{}.0.0/16", i % 7)]),
                    dst_port: Some(PortRange::single(1000 + i as u16)),
                    ..Match::default()
                },
                1 => Match {
                    src: cidrs(&[&format!("10.0.{}.0/24", i % 5)]),
                    ..Match::default()
                },
                2 => Match {
                    proto: Some(17),
                    dst_port: Some(PortRange::new(i as u16, i as u16 + 100)),
                    ..Match::default()
                },
                _ => Match {
                    vlan: Some(VlanMatch::Id(i as u16)),
                    ..Match::default()
                },
            };
            rules.push(rule(i, m));
        }
        rules.push(rule(999, Match::default()));
        let c = build(&rules);
        assert!(c.table_count() > 1);
        // Rule 1 (src 10.0.1.0/24) is the first that matches.
        assert_eq!(id_of(&c, &tcp4("10.0.1.5", "10.3.0.1", 5, 1004)), Some(1));
        // Only the dst rule i=4 (10.4.0.0/16, port 1004) and the catch-all.
        assert_eq!(id_of(&c, &tcp4("10.9.9.9", "10.4.2.2", 5, 1004)), Some(4));
        // UDP port 150: rules 2 (2..=102), 6 (6..=106), ... miss; 50 (50..=150) hits.
        assert_eq!(id_of(&c, &udp4("1.1.1.1", "2.2.2.2", 5, 150)), Some(50));
        // Nothing specific: the catch-all.
        assert_eq!(id_of(&c, &tcp4("1.1.1.1", "2.2.2.2", 5, 5)), Some(999));
    }

    #[test]
    fn default_action_when_nothing_matches() {
        let rules = [rule(
            7,
            Match {
                proto: Some(17),
                ..Match::default()
            },
        )];
        let c = Classifier::build(&rules, fwd(9)).expect("valid");
        let v = c.classify(&tcp4(A, B, 1, 2), 0, Direction::Ingress);
        assert_eq!(v, Verdict::DEFAULT);
        assert!(v.is_default());
        assert_eq!(c.rule_id(v), None);
        assert_eq!(c.action(v), &fwd(9));
        // The default default is Drop.
        let c = build(&rules);
        assert_eq!(
            c.action(c.classify(&tcp4(A, B, 1, 2), 0, Direction::Ingress)),
            &Action::Drop
        );
        let v = c.classify(&udp4(A, B, 1, 2), 0, Direction::Ingress);
        assert_eq!((v.rule_index(), c.rule_id(v)), (Some(0), Some(7)));
        assert_eq!(c.action(v), &fwd(7));
        // No rules at all.
        let c = Classifier::empty(Action::Drop);
        assert!(c.is_empty());
        assert_eq!(id_of(&c, &tcp4(A, B, 1, 2)), None);
    }

    #[test]
    fn match_input_port_set_and_range() {
        let c = build(&[rule(
            1,
            Match {
                in_ports: Some(vec![PortRange::single(2), PortRange::new(5, 7)]),
                ..Match::default()
            },
        )]);
        let p = tcp4(A, B, 1, 2);
        let hit = |port| id_at(&c, &p, port, Direction::Ingress);
        assert_eq!(hit(2), Some(1));
        assert_eq!(hit(5), Some(1));
        assert_eq!(hit(7), Some(1));
        assert_eq!(hit(1), None);
        assert_eq!(hit(3), None);
        assert_eq!(hit(4), None);
        assert_eq!(hit(8), None);
    }

    #[test]
    fn match_vlan() {
        let c = build(&[
            rule(
                1,
                Match {
                    vlan: Some(VlanMatch::Id(100)),
                    ..Match::default()
                },
            ),
            rule(
                2,
                Match {
                    vlan: Some(VlanMatch::Untagged),
                    ..Match::default()
                },
            ),
            rule(
                3,
                Match {
                    vlan: Some(VlanMatch::Id(0)),
                    ..Match::default()
                },
            ),
        ]);
        let tagged = |id| Layers {
            vlan_count: 1,
            outer_vlan: Some(id),
            ..tcp4(A, B, 1, 2)
        };
        assert_eq!(id_of(&c, &tagged(100)), Some(1));
        assert_eq!(id_of(&c, &tagged(101)), None);
        // VLAN 0 (priority tag) is a tag, not "untagged".
        assert_eq!(id_of(&c, &tagged(0)), Some(3));
        assert_eq!(id_of(&c, &tcp4(A, B, 1, 2)), Some(2));
    }

    #[test]
    fn match_ethertype_and_ip_version() {
        let c = build(&[
            rule(
                1,
                Match {
                    ethertype: Some(0x0806),
                    ..Match::default()
                },
            ),
            rule(
                2,
                Match {
                    ip_version: Some(6),
                    ..Match::default()
                },
            ),
        ]);
        let arp = Layers {
            ethertype: 0x0806,
            l3_offset: 14,
            ..Layers::default()
        };
        assert_eq!(id_of(&c, &arp), Some(1));
        assert_eq!(
            id_of(&c, &tcp6("2001:db8::1", "2001:db8::2", 1, 2)),
            Some(2)
        );
        assert_eq!(id_of(&c, &tcp4(A, B, 1, 2)), None);
    }

    #[test]
    fn match_src_and_dst_cidr_ipv4() {
        let c = build(&[
            rule(
                1,
                Match {
                    src: cidrs(&["10.1.0.0/16"]),
                    ..Match::default()
                },
            ),
            rule(
                2,
                Match {
                    dst: cidrs(&["172.16.0.0/12"]),
                    ..Match::default()
                },
            ),
            rule(
                3,
                Match {
                    src: cidrs(&["0.0.0.0/0"]),
                    dst: cidrs(&["8.8.8.8"]),
                    ..Match::default()
                },
            ),
        ]);
        assert_eq!(id_of(&c, &tcp4("10.1.255.255", B, 1, 2)), Some(1));
        assert_eq!(id_of(&c, &tcp4("10.1.0.0", B, 1, 2)), Some(1));
        assert_eq!(id_of(&c, &tcp4("10.2.0.0", B, 1, 2)), None);
        assert_eq!(id_of(&c, &tcp4("10.0.255.255", B, 1, 2)), None);
        assert_eq!(id_of(&c, &tcp4(A, "172.31.255.255", 1, 2)), Some(2));
        assert_eq!(id_of(&c, &tcp4(A, "172.32.0.0", 1, 2)), None);
        // src swapped with dst does not match.
        assert_eq!(id_of(&c, &tcp4("172.16.0.1", A, 1, 2)), None);
        assert_eq!(id_of(&c, &tcp4(A, "8.8.8.8", 1, 2)), Some(3));
        assert_eq!(id_of(&c, &tcp4(A, "8.8.8.9", 1, 2)), None);
    }

    #[test]
    fn ipv4_and_ipv6_cidrs_never_cross_match() {
        // IPv4 addresses sit in the low 32 bits of the same u128 as IPv6 ones:
        // the version must keep prefixes of one family off the other's packets.
        let c = build(&[
            rule(
                5,
                Match {
                    dst: cidrs(&["10.0.0.0/8"]),
                    ..Match::default()
                },
            ),
            rule(
                7,
                Match {
                    // Low 32 bits of this v6 prefix equal 10.0.0.0/8's encoding.
                    dst: cidrs(&["::a00:0/104"]),
                    ..Match::default()
                },
            ),
            rule(
                6,
                Match {
                    src: cidrs(&["2001:db8::/32"]),
                    ..Match::default()
                },
            ),
            rule(
                4,
                Match {
                    src: cidrs(&["0.0.0.0/0"]),
                    ..Match::default()
                },
            ),
        ]);
        assert_eq!(id_of(&c, &tcp4(A, B, 1, 2)), Some(4));
        assert_eq!(id_of(&c, &tcp4("1.2.3.4", "10.0.0.1", 1, 2)), Some(5));
        assert_eq!(id_of(&c, &tcp6("2001:db8:ffff::1", "::1", 1, 2)), Some(6));
        assert_eq!(id_of(&c, &tcp6("2001:db9::1", "::1", 1, 2)), None);
        // ::a00:1 has 10.0.0.1's low bits: the v6 rule 7, never the v4 rule 5.
        assert_eq!(id_of(&c, &tcp6("2001:db9::1", "::a00:1", 1, 2)), Some(7));
        let mut c7_first = vec![rule(
            7,
            Match {
                dst: cidrs(&["::a00:0/104"]),
                ..Match::default()
            },
        )];
        c7_first.push(rule(
            4,
            Match {
                src: cidrs(&["0.0.0.0/0"]),
                ..Match::default()
            },
        ));
        let c7 = build(&c7_first);
        assert_eq!(id_of(&c7, &tcp4("1.2.3.4", "10.0.0.1", 1, 2)), Some(4));
        // A non-IP frame has all-zero addresses: no CIDR matches it, not even /0.
        let arp = Layers {
            ethertype: 0x0806,
            ..Layers::default()
        };
        assert_eq!(id_of(&c, &arp), None);
    }

    #[test]
    fn match_ipv6_prefixes() {
        let c = build(&[
            rule(
                1,
                Match {
                    dst: cidrs(&["2001:db8:1:2::/64"]),
                    ..Match::default()
                },
            ),
            rule(
                2,
                Match {
                    dst: cidrs(&["2001:db8::/33"]),
                    ..Match::default()
                },
            ),
            rule(
                3,
                Match {
                    dst: cidrs(&["::/0"]),
                    dst_port: Some(PortRange::single(22)),
                    ..Match::default()
                },
            ),
        ]);
        let to = |d| tcp6("2001:db8::9", d, 1000, 80);
        assert_eq!(id_of(&c, &to("2001:db8:1:2:ffff::1")), Some(1));
        assert_eq!(id_of(&c, &to("2001:db8:1:3::1")), Some(2));
        assert_eq!(id_of(&c, &to("2001:db8:7fff::1")), Some(2));
        assert_eq!(id_of(&c, &to("2001:db8:8000::1")), None);
        assert_eq!(id_of(&c, &tcp6("::1", "fe80::1", 1000, 22)), Some(3));
        assert_eq!(id_of(&c, &tcp4(A, B, 1000, 22)), None);
    }

    #[test]
    fn groups_match_any_member() {
        let members: Vec<String> = (0..50).map(|i| format!("10.{i}.{i}.0/24")).collect();
        let refs: Vec<&str> = members.iter().map(String::as_str).collect();
        let c = build(&[
            rule(
                1,
                Match {
                    src: cidrs(&refs),
                    dst: cidrs(&["192.168.0.0/16", "2001:db8::/32", "172.16.0.0/12"]),
                    ..Match::default()
                },
            ),
            rule(
                2,
                Match {
                    // An empty group (no members right now) matches nothing.
                    src: Some(vec![]),
                    ..Match::default()
                },
            ),
        ]);
        for i in 0..50 {
            let src = format!("10.{i}.{i}.77");
            assert_eq!(id_of(&c, &tcp4(&src, B, 1, 2)), Some(1), "member {i}");
            assert_eq!(id_of(&c, &tcp4(&src, "172.20.0.1", 1, 2)), Some(1));
            assert_eq!(id_of(&c, &tcp4(&src, "8.8.8.8", 1, 2)), None);
        }
        assert_eq!(id_of(&c, &tcp4("10.0.1.1", B, 1, 2)), None);
        assert_eq!(id_of(&c, &tcp4("10.50.50.1", B, 1, 2)), None);
    }

    #[test]
    fn big_groups_beyond_expansion_still_match() {
        // 600 × 100 hosts: too many to expand both into entries, so the
        // classifier expands dst and searches src; 300 input ports likewise.
        // Results must not change.
        let srcs: Vec<Cidr> = (0..600u32)
            .map(|i| Cidr::host(Ipv4Addr::from(0x0a00_0000 + i * 3)))
            .collect();
        let dsts: Vec<Cidr> = (0..100u32)
            .map(|i| Cidr::host(Ipv4Addr::from(0xc0a8_0000 + i * 5)))
            .collect();
        let mut rules = vec![rule(
            1,
            Match {
                src: Some(srcs),
                dst: Some(dsts),
                dst_port: Some(PortRange::new(80, 90)),
                ..Match::default()
            },
        )];
        rules.push(rule(
            2,
            Match {
                in_ports: Some((0..300).map(|p| PortRange::single(p * 2)).collect()),
                src: cidrs(&["10.0.0.0/8"]),
                ..Match::default()
            },
        ));
        let c = build(&rules);
        assert!(c.entry_count() < 2000, "{} entries", c.entry_count());
        let pkt = |s: u32, d: u32, dport| {
            let mut l = tcp4(A, B, 1, dport);
            l.src_addr = u128::from(0x0a00_0000 + s);
            l.dst_addr = u128::from(0xc0a8_0000 + d);
            l
        };
        assert_eq!(id_at(&c, &pkt(0, 0, 80), 1, Direction::Ingress), Some(1));
        assert_eq!(
            id_at(&c, &pkt(3 * 599, 5 * 99, 90), 1, Direction::Ingress),
            Some(1)
        );
        assert_eq!(
            id_at(&c, &pkt(3 * 300, 5 * 17, 85), 1, Direction::Ingress),
            Some(1)
        );
        // Not a member of src (1 is not a multiple of 3): falls to rule 2 on even ports.
        assert_eq!(id_at(&c, &pkt(1, 0, 80), 1, Direction::Ingress), None);
        assert_eq!(id_at(&c, &pkt(1, 0, 80), 2, Direction::Ingress), Some(2));
        assert_eq!(id_at(&c, &pkt(1, 0, 80), 598, Direction::Ingress), Some(2));
        assert_eq!(id_at(&c, &pkt(1, 0, 80), 600, Direction::Ingress), None);
        assert_eq!(id_at(&c, &pkt(0, 1, 80), 1, Direction::Ingress), None);
        assert_eq!(id_at(&c, &pkt(0, 0, 91), 1, Direction::Ingress), None);
    }

    #[test]
    fn match_protocol() {
        let c = build(&[rule(
            1,
            Match {
                proto: Some(17),
                ..Match::default()
            },
        )]);
        assert_eq!(id_of(&c, &udp4(A, B, 1, 2)), Some(1));
        assert_eq!(id_of(&c, &tcp4(A, B, 1, 2)), None);
    }

    #[test]
    fn port_range_edges() {
        let c = build(&[
            rule(
                1,
                Match {
                    dst_port: Some(PortRange::new(1000, 1999)),
                    ..Match::default()
                },
            ),
            rule(
                2,
                Match {
                    src_port: Some(PortRange::new(65535, 65535)),
                    ..Match::default()
                },
            ),
            rule(
                3,
                Match {
                    src_port: Some(PortRange::new(0, 0)),
                    ..Match::default()
                },
            ),
        ]);
        let d = |p| id_of(&c, &tcp4(A, B, 5, p));
        assert_eq!(d(999), None);
        assert_eq!(d(1000), Some(1));
        assert_eq!(d(1999), Some(1));
        assert_eq!(d(2000), None);
        assert_eq!(id_of(&c, &udp4(A, B, 5, 1500)), Some(1));
        assert_eq!(id_of(&c, &tcp4(A, B, 65535, 5)), Some(2));
        assert_eq!(id_of(&c, &tcp4(A, B, 65534, 5)), None);
        assert_eq!(id_of(&c, &tcp4(A, B, 0, 5)), Some(3));
    }

    #[test]
    fn port_ranges_need_ports() {
        // ICMP and non-first fragments report port 0; a port range must not
        // catch them, even one that contains 0.
        let c = build(&[rule(
            1,
            Match {
                dst_port: Some(PortRange::new(0, 1023)),
                ..Match::default()
            },
        )]);
        assert_eq!(id_of(&c, &tcp4(A, B, 5, 0)), Some(1));
        let icmp = Layers {
            l4_proto: 1,
            src_port: 0,
            dst_port: 0,
            ..tcp4(A, B, 0, 0)
        };
        assert_eq!(id_of(&c, &icmp), None);
        let later_fragment = Layers {
            fragment: Fragment::Later,
            l4_offset: 0,
            ..tcp4(A, B, 0, 0)
        };
        assert_eq!(id_of(&c, &later_fragment), None);
    }

    #[test]
    fn tcp_flags_value_and_mask() {
        // SYN without ACK: connection openers.
        let c = build(&[rule(
            1,
            Match {
                tcp_flags: Some(TcpFlags {
                    value: TcpFlags::SYN,
                    mask: TcpFlags::SYN | TcpFlags::ACK,
                }),
                ..Match::default()
            },
        )]);
        let with = |flags| Layers {
            tcp_flags: flags,
            ..tcp4(A, B, 1, 2)
        };
        assert_eq!(id_of(&c, &with(TcpFlags::SYN)), Some(1));
        // Bits outside the mask are ignored.
        assert_eq!(
            id_of(&c, &with(TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR)),
            Some(1)
        );
        assert_eq!(id_of(&c, &with(TcpFlags::SYN | TcpFlags::ACK)), None);
        assert_eq!(id_of(&c, &with(TcpFlags::ACK)), None);
        assert_eq!(id_of(&c, &with(0)), None);
        // A flags rule is about TCP: "not ACK" does not catch UDP (flags 0).
        let c = build(&[rule(
            2,
            Match {
                tcp_flags: Some(TcpFlags {
                    value: 0,
                    mask: TcpFlags::ACK,
                }),
                ..Match::default()
            },
        )]);
        assert_eq!(id_of(&c, &with(TcpFlags::SYN)), Some(2));
        assert_eq!(id_of(&c, &udp4(A, B, 1, 2)), None);
    }

    #[test]
    fn match_direction() {
        let c = build(&[rule(
            1,
            Match {
                direction: Some(Direction::Egress),
                ..Match::default()
            },
        )]);
        let p = tcp4(A, B, 1, 2);
        assert_eq!(id_at(&c, &p, 0, Direction::Egress), Some(1));
        assert_eq!(id_at(&c, &p, 0, Direction::Ingress), None);
    }

    #[test]
    fn all_fields_together() {
        let m = Match {
            in_ports: Some(vec![PortRange::single(3)]),
            vlan: Some(VlanMatch::Id(10)),
            ethertype: Some(0x0800),
            ip_version: Some(4),
            src: cidrs(&["10.0.0.0/8"]),
            dst: cidrs(&["192.168.1.0/24"]),
            proto: Some(6),
            src_port: Some(PortRange::new(1024, 65535)),
            dst_port: Some(PortRange::single(443)),
            tcp_flags: Some(TcpFlags {
                value: TcpFlags::ACK,
                mask: TcpFlags::ACK,
            }),
            direction: Some(Direction::Ingress),
        };
        let c = build(&[rule(1, m)]);
        let good = Layers {
            vlan_count: 1,
            outer_vlan: Some(10),
            ..tcp4("10.9.9.9", "192.168.1.200", 40000, 443)
        };
        assert_eq!(id_at(&c, &good, 3, Direction::Ingress), Some(1));
        // Break one field at a time.
        assert_eq!(id_at(&c, &good, 4, Direction::Ingress), None);
        assert_eq!(id_at(&c, &good, 3, Direction::Egress), None);
        let variants = [
            Layers {
                outer_vlan: Some(11),
                ..good
            },
            Layers {
                ethertype: 0x8100,
                ..good
            },
            Layers {
                src_addr: 0x0b00_0001,
                ..good
            },
            Layers {
                dst_addr: 0xc0a8_0201,
                ..good
            },
            Layers {
                l4_proto: 17,
                ..good
            },
            Layers {
                src_port: 1023,
                ..good
            },
            Layers {
                dst_port: 444,
                ..good
            },
            Layers {
                tcp_flags: TcpFlags::SYN,
                ..good
            },
        ];
        for (i, l) in variants.iter().enumerate() {
            assert_eq!(id_at(&c, l, 3, Direction::Ingress), None, "variant {i}");
        }
    }

    fn errors_of(rules: &[Rule]) -> Vec<(usize, Field, RuleErrorKind)> {
        match Classifier::build(rules, Action::Drop) {
            Err(BuildError::Invalid(errs)) => errs
                .into_iter()
                .map(|e| (e.index, e.field, e.kind))
                .collect(),
            Err(e) => panic!("unexpected {e}"),
            Ok(_) => Vec::new(),
        }
    }

    #[test]
    fn validation_names_rule_and_field() {
        let ok = rule(0, Match::default());
        let bad = |m: Match| vec![ok.clone(), rule(5, m)];
        assert_eq!(
            errors_of(&bad(Match {
                dst_port: Some(PortRange::new(10, 9)),
                ..Match::default()
            })),
            vec![(
                1,
                Field::DstPort,
                RuleErrorKind::EmptyRange { lo: 10, hi: 9 }
            )]
        );
        assert_eq!(
            errors_of(&bad(Match {
                in_ports: Some(vec![PortRange::new(3, 1)]),
                ..Match::default()
            })),
            vec![(
                1,
                Field::InPorts,
                RuleErrorKind::EmptyRange { lo: 3, hi: 1 }
            )]
        );
        assert_eq!(
            errors_of(&bad(Match {
                in_ports: Some(vec![]),
                ..Match::default()
            })),
            vec![(1, Field::InPorts, RuleErrorKind::EmptySet)]
        );
        let c33 = Cidr::new(Ipv4Addr::new(10, 0, 0, 0), 33);
        assert_eq!(
            errors_of(&bad(Match {
                src: Some(vec![c33]),
                ..Match::default()
            })),
            vec![(
                1,
                Field::Src,
                RuleErrorKind::PrefixTooLong {
                    cidr: c33,
                    len: 33,
                    max: 32
                }
            )]
        );
        let c129 = Cidr::new(Ipv6Addr::LOCALHOST, 129);
        assert_eq!(
            errors_of(&bad(Match {
                dst: Some(vec![c129]),
                ..Match::default()
            })),
            vec![(
                1,
                Field::Dst,
                RuleErrorKind::PrefixTooLong {
                    cidr: c129,
                    len: 129,
                    max: 128
                }
            )]
        );
        assert_eq!(
            errors_of(&bad(Match {
                ip_version: Some(6),
                src: cidrs(&["10.0.0.0/8"]),
                ..Match::default()
            })),
            vec![(
                1,
                Field::Src,
                RuleErrorKind::VersionMismatch { ip_version: 6 }
            )]
        );
        assert_eq!(
            errors_of(&bad(Match {
                src: cidrs(&["10.0.0.0/8"]),
                dst: cidrs(&["2001:db8::/32"]),
                ..Match::default()
            })),
            vec![(1, Field::Dst, RuleErrorKind::NoCommonVersion)]
        );
        assert_eq!(
            errors_of(&bad(Match {
                ip_version: Some(5),
                ..Match::default()
            })),
            vec![(1, Field::IpVersion, RuleErrorKind::BadIpVersion(5))]
        );
        assert_eq!(
            errors_of(&bad(Match {
                vlan: Some(VlanMatch::Id(4096)),
                ..Match::default()
            })),
            vec![(1, Field::Vlan, RuleErrorKind::VlanOutOfRange(4096))]
        );
        assert_eq!(
            errors_of(&bad(Match {
                tcp_flags: Some(TcpFlags { value: 3, mask: 1 }),
                ..Match::default()
            })),
            vec![(
                1,
                Field::TcpFlags,
                RuleErrorKind::FlagsOutsideMask { value: 3, mask: 1 }
            )]
        );
        assert_eq!(
            errors_of(&bad(Match {
                proto: Some(17),
                tcp_flags: Some(TcpFlags { value: 2, mask: 2 }),
                ..Match::default()
            })),
            vec![(1, Field::TcpFlags, RuleErrorKind::NotTcp(17))]
        );
        assert_eq!(
            errors_of(&bad(Match {
                proto: Some(1),
                src_port: Some(PortRange::single(7)),
                ..Match::default()
            })),
            vec![(1, Field::SrcPort, RuleErrorKind::NoPorts(1))]
        );
        // Every error of every rule, in order, not just the first.
        let errs = errors_of(&[
            rule(
                1,
                Match {
                    src_port: Some(PortRange::new(2, 1)),
                    dst_port: Some(PortRange::new(4, 3)),
                    ..Match::default()
                },
            ),
            ok.clone(),
            rule(
                3,
                Match {
                    ip_version: Some(0),
                    ..Match::default()
                },
            ),
        ]);
        let where_: Vec<(usize, Field)> = errs.iter().map(|e| (e.0, e.1)).collect();
        assert_eq!(
            where_,
            vec![
                (0, Field::SrcPort),
                (0, Field::DstPort),
                (2, Field::IpVersion)
            ]
        );
        // A mixed group with ip_version is fine: the other family's members are moot.
        assert!(errors_of(&bad(Match {
            ip_version: Some(4),
            src: cidrs(&["10.0.0.0/8", "2001:db8::/32"]),
            ..Match::default()
        }))
        .is_empty());
        let msg = Classifier::build(
            &bad(Match {
                dst_port: Some(PortRange::new(10, 9)),
                ..Match::default()
            }),
            Action::Drop,
        )
        .expect_err("invalid")
        .to_string();
        assert!(msg.contains("rule 1 (id 5): dst_port"), "{msg}");
    }

    #[test]
    fn cidr_parsing_and_host_bits() {
        assert_eq!(cidr("10.1.2.3/8"), Cidr::new(Ipv4Addr::new(10, 1, 2, 3), 8));
        assert_eq!(cidr("2001:db8::1").len, 128);
        assert!("10.0.0.0/x".parse::<Cidr>().is_err());
        assert!("10.0.0/8".parse::<Cidr>().is_err());
        // Host bits below the prefix are ignored when matching.
        let c = build(&[rule(
            1,
            Match {
                src: cidrs(&["10.1.2.3/8"]),
                ..Match::default()
            },
        )]);
        assert_eq!(id_of(&c, &tcp4("10.200.0.1", B, 1, 2)), Some(1));
    }

    #[test]
    fn flow_cache_agrees_and_is_invalidated_on_rebuild() {
        let port80 = |id| {
            rule(
                id,
                Match {
                    dst_port: Some(PortRange::single(80)),
                    ..Match::default()
                },
            )
        };
        let c1 = build(&[port80(1)]);
        let mut cache = FlowCache::new(1024);
        let p = tcp4(A, B, 1234, 80);
        let v1 = c1.classify_cached(&mut cache, &p, 0, Direction::Ingress);
        assert_eq!(c1.rule_id(v1), Some(1));
        assert_eq!(cache.misses(), 1);
        assert_eq!(
            c1.classify_cached(&mut cache, &p, 0, Direction::Ingress),
            v1
        );
        assert_eq!(cache.hits(), 1);

        // A new classifier where the same packet matches rule index 1 (a stale
        // answer would say index 0), and one where it matches nothing.
        let c2 = build(&[
            rule(
                81,
                Match {
                    dst_port: Some(PortRange::single(81)),
                    ..Match::default()
                },
            ),
            port80(2),
        ]);
        let v2 = c2.classify_cached(&mut cache, &p, 0, Direction::Ingress);
        assert_eq!((v2.rule_index(), c2.rule_id(v2)), (Some(1), Some(2)));
        assert_eq!(cache.misses(), 2);
        let c3 = build(&[rule(
            81,
            Match {
                dst_port: Some(PortRange::single(81)),
                ..Match::default()
            },
        )]);
        assert_eq!(
            c3.classify_cached(&mut cache, &p, 0, Direction::Ingress),
            Verdict::DEFAULT
        );
        assert_eq!(cache.misses(), 3);
        // Same rules, new build: a new generation, so a miss again.
        let c1b = build(&[port80(1)]);
        assert_ne!(c1b.generation(), c1.generation());
        let before = cache.misses();
        assert_eq!(
            c1b.classify_cached(&mut cache, &p, 0, Direction::Ingress),
            v1
        );
        assert_eq!(cache.misses(), before + 1);

        // Packets differing only in fields no rule reads share an entry; a
        // field a rule reads (here the input port, via the key) does not.
        let mut cache = FlowCache::new(1024);
        let c = build(&[rule(
            1,
            Match {
                in_ports: Some(vec![PortRange::single(1)]),
                ..Match::default()
            },
        )]);
        let q = Layers {
            tcp_flags: TcpFlags::SYN,
            ..p
        };
        assert_eq!(
            c.rule_id(c.classify_cached(&mut cache, &p, 1, Direction::Ingress)),
            Some(1)
        );
        assert_eq!(
            c.rule_id(c.classify_cached(&mut cache, &q, 1, Direction::Ingress)),
            Some(1)
        );
        assert_eq!(cache.hits(), 1);
        assert_eq!(
            c.rule_id(c.classify_cached(&mut cache, &p, 2, Direction::Ingress)),
            None
        );
        assert_eq!(cache.misses(), 2);
    }

    #[test]
    fn flow_cache_survives_eviction_pressure() {
        // Far more flows than slots: whatever is evicted, answers stay right.
        let rules: Vec<Rule> = (0..64u32)
            .map(|i| {
                rule(
                    i,
                    Match {
                        dst_port: Some(PortRange::new(i as u16 * 100, i as u16 * 100 + 49)),
                        ..Match::default()
                    },
                )
            })
            .collect();
        let c = build(&rules);
        let mut cache = FlowCache::new(16);
        assert_eq!(cache.capacity(), 16);
        for round in 0..3 {
            for port in 0..6400u16 {
                let p = tcp4(A, B, 7, port);
                let want = c.classify(&p, 0, Direction::Ingress);
                assert_eq!(
                    c.classify_cached(&mut cache, &p, 0, Direction::Ingress),
                    want,
                    "round {round} port {port}"
                );
                let id = (port % 100 < 50).then_some(u32::from(port / 100));
                assert_eq!(c.rule_id(want), id);
            }
        }
    }

    #[test]
    fn burst_verdicts_and_counters() {
        let c = build(&[
            Rule {
                id: 10,
                matches: Match {
                    dst_port: Some(PortRange::single(80)),
                    ..Match::default()
                },
                action: fwd(1),
            },
            Rule {
                id: 11,
                matches: Match {
                    dst_port: Some(PortRange::single(22)),
                    ..Match::default()
                },
                action: Action::Drop,
            },
        ]);
        let mut layers = Vec::new();
        let mut ports = Vec::new();
        let mut dirs = Vec::new();
        for i in 0..32u16 {
            let dport = [80, 22, 443, 80][usize::from(i % 4)];
            layers.push(tcp4(A, B, 1000 + i, dport));
            ports.push(i % 3);
            dirs.push(if i % 2 == 0 {
                Direction::Ingress
            } else {
                Direction::Egress
            });
        }
        let mut cache = FlowCache::new(256);
        let mut counters = FilterCounters::new();
        let mut out = [Verdict::DEFAULT; 32];
        for _ in 0..2 {
            let n = c.classify_burst(&mut cache, &layers, &ports, &dirs, &mut out, &mut counters);
            assert_eq!(n, 32);
            for (i, v) in out.iter().enumerate() {
                assert_eq!(*v, c.classify(&layers[i], ports[i], dirs[i]));
            }
        }
        assert_eq!(counters.rule_hits, vec![32, 16]);
        assert_eq!(counters.default_hits, 16);
        // Matched a Drop rule (16) + took the default Drop (16).
        assert_eq!(counters.filtered, 32);
        // Rules read only the dst port, so the 64 packets are 3 cache keys.
        assert_eq!(cache.misses(), 3);
        assert_eq!(cache.hits(), 61);
        assert_eq!(c.action(out[0]), &fwd(1));
        assert_eq!(c.action(out[1]), &Action::Drop);

        // Shorter slices: only as many packets as the shortest.
        let n = c.classify_burst(
            &mut cache,
            &layers,
            &ports[..5],
            &dirs,
            &mut out,
            &mut counters,
        );
        assert_eq!(n, 5);

        // A new classifier resets the counters to its own rule count.
        let c2 = build(&[rule(1, Match::default())]);
        c2.classify_burst(&mut cache, &layers, &ports, &dirs, &mut out, &mut counters);
        assert_eq!(counters.rule_hits, vec![32]);
        assert_eq!((counters.default_hits, counters.filtered), (0, 0));
    }

    #[test]
    fn ten_thousand_rules_build_quickly() {
        let mut rules = Vec::new();
        for i in 0..10_000u32 {
            let m = Match {
                src: cidrs(&[&format!(
                    "10.{}.{}.0/{}",
                    i % 256,
                    (i / 256) % 256,
                    16 + i % 17
                )]),
                dst_port: Some(PortRange::new(
                    (i % 5000) as u16,
                    (i % 5000) as u16 + (i % 3) as u16 * 10,
                )),
                proto: Some(if i % 2 == 0 { 6 } else { 17 }),
                ..Match::default()
            };
            rules.push(rule(i, m));
        }
        let t = std::time::Instant::now();
        let c = build(&rules);
        let took = t.elapsed();
        // Generous, for debug builds on a busy machine; release is far faster.
        assert!(took.as_secs() < 20, "build took {took:?}");
        assert_eq!(c.len(), 10_000);
        // Rule 5: src 10.5.0.0/21, UDP, dst ports 5..=25.
        let v = c.classify(&udp4("10.5.0.9", B, 1, 5), 0, Direction::Ingress);
        assert_eq!(c.rule_id(v), Some(5));
    }

    #[test]
    fn classifier_is_shared_and_cache_is_movable() {
        // The runtime swaps an Arc<Classifier> under running workers and moves
        // each FlowCache to its worker lcore.
        fn shared<T: Send + Sync>() {}
        fn movable<T: Send>() {}
        shared::<Classifier>();
        movable::<FlowCache>();
        movable::<FilterCounters>();
    }

    #[test]
    fn a_policy_the_bit_vectors_refuse_says_why_and_still_classifies() {
        // A threat list of 17,000 hosts, each in its own /16: every one
        // splits a /16 and a /24, more blocks than 16-bit entries can name.
        let hosts: Vec<Cidr> = (0..17_000u32)
            .map(|i| Cidr::new(Ipv4Addr::from(i << 16 | 0x0101), 32))
            .collect();
        let listed = Match {
            src: Some(hosts),
            ..Match::default()
        };
        let c = build(&[rule(7, listed)]);
        assert!(!c.uses_bitvec());
        let why = c.bitvec_refusal().expect("the refusal is kept").to_string();
        assert!(why.starts_with("src: "), "{why}");
        assert!(why.contains("/16 and /24 blocks"), "{why}");
        assert_eq!(id_of(&c, &tcp4("0.42.1.1", B, 1000, 80)), Some(7));
        assert_eq!(id_of(&c, &tcp4("0.42.1.2", B, 1000, 80)), None);
        // A policy the bit vectors take has nothing to say.
        let ten = Match {
            src: cidrs(&["10.0.0.0/8"]),
            ..Match::default()
        };
        let c = build(&[rule(1, ten)]);
        assert!(c.uses_bitvec());
        assert!(c.bitvec_refusal().is_none());
    }
}
