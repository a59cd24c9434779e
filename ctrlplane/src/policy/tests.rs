use dataplane::stage::filter::{Action, DestAction};
use dataplane::stage::parse::Layers;
use dataplane::stage::slice::SliceSpec;
use dataplane::stage::Direction;

use super::*;

const GOOD: &str = r#"
version = "v7"

[[group]]
name = "web"
cidrs = ["10.1.0.0/16", "2001:db8::/32"]
labels = { service = "web", business_unit = "retail" }

[[destination]]
name = "noc"
tunnel = "vxlan"
remote = "192.0.2.10"
vni = 100
slice = 128

[[destination]]
name = "soc"
tunnel = "erspan3"
remote = "192.0.2.20"
session = 5
dedup = false

[[rule]]
name = "late"
to = ["noc"]

[[rule]]
name = "ssh-drop"
priority = 1
proto = "tcp"
dst_port = 22
action = "drop"

[[rule]]
name = "web"
priority = 5
dst_group = "web"
proto = "tcp"
dst_port = "80-443"
to = ["noc", { dest = "soc", slice = 64, slice_after = "l4", tag = 9 }]
"#;

/// Two uplinks: `up-a` on 192.0.2.0/24 with a route to 203.0.113.0/24,
/// `up-b` on 198.51.100.0/24 with the IPv4 gateway.
fn ctx() -> Context {
    let config = crate::config::Config::parse(
        r#"
        [[port]]
        name = "tap0"
        device = "net_null0"
        role = "input"
        [[port]]
        name = "up-a"
        device = "net_null1"
        role = "uplink"
        [[port]]
        name = "up-b"
        device = "net_null2"
        role = "uplink"
        [[uplink]]
        port = "up-a"
        address = "192.0.2.100/24"
        routes = ["203.0.113.0/24 via 192.0.2.253"]
        [[uplink]]
        port = "up-b"
        address = "198.51.100.1/24"
        gateway = "198.51.100.254"
        "#,
        "t",
    )
    .expect("config");
    Context {
        ports: vec![("tap0".into(), 0), ("tap1".into(), 3)],
        tools: vec!["ids1".into(), "ids2".into(), "ids-farm".into()],
        routes: Some(config.routes()),
    }
}

#[test]
fn each_tunnel_gets_its_uplink_and_next_hop_and_an_unreachable_one_is_refused() {
    let text = r#"
[[destination]]
name = "near"
tunnel = "vxlan"
remote = "192.0.2.10"
vni = 1
[[destination]]
name = "routed"
tunnel = "vxlan"
remote = "203.0.113.9"
vni = 2
[[destination]]
name = "far"
tunnel = "vxlan"
remote = "8.8.8.8"
vni = 3
[[rule]]
name = "all"
to = ["near", "routed", "far"]
"#;
    let c = compile(&parse_toml(text, "t").expect("toml"), &ctx()).expect("valid");
    let hops: Vec<(u16, String)> = c
        .destinations
        .iter()
        .filter_map(|d| d.tunnel())
        .map(|t| (t.uplink, t.next_hop.to_string()))
        .collect();
    assert_eq!(
        hops,
        [
            (0, "192.0.2.10".into()),
            (0, "192.0.2.253".into()),
            (1, "198.51.100.254".into())
        ]
    );
    let v6 = text.replace("8.8.8.8", "2001:db8::9");
    let err = compile(&parse_toml(&v6, "t").expect("toml"), &ctx()).expect_err("unreachable");
    let all: Vec<String> = err.iter().map(ToString::to_string).collect();
    assert!(
        all.iter().any(|e| e.starts_with(
            "destination[2].remote: destination \"far\": no uplink reaches 2001:db8::9"
        ) && e.contains("up-a, up-b")),
        "{all:?}"
    );
    let none = Context {
        routes: Some(Default::default()),
        ..ctx()
    };
    let err = compile(&parse_toml(text, "t").expect("toml"), &none).expect_err("no uplink");
    assert!(
        err.iter()
            .any(|e| e.reason.ends_with("the appliance has no uplink")),
        "{err:?}"
    );
}

fn tcp_to(dst: u32, port: u16) -> Layers {
    Layers {
        ethertype: 0x0800,
        ip_version: 4,
        l3_offset: 14,
        l4_offset: 34,
        payload_offset: 54,
        l4_proto: 6,
        src_addr: 0x0a00_0001,
        dst_addr: u128::from(dst),
        src_port: 40000,
        dst_port: port,
        ..Layers::default()
    }
}

#[test]
fn a_good_policy_compiles_in_priority_order_with_groups_and_overrides() {
    let p = compile(&parse_toml(GOOD, "t").expect("toml"), &ctx()).expect("valid");
    assert_eq!(p.version, "v7");
    assert_eq!(p.rule_names, ["ssh-drop", "web", "late"]);
    assert_eq!(p.destinations.len(), 2);
    let c = &p.classifier;
    let ssh = c.classify(&tcp_to(0x0a01_0001, 22), 0, Direction::Ingress);
    assert_eq!(c.action(ssh), &Action::Drop);
    assert_eq!(c.rule_id(ssh), Some(0));
    let web = c.classify(&tcp_to(0x0a01_0001, 443), 0, Direction::Ingress);
    assert_eq!(
        c.action(web),
        &Action::Forward(vec![
            DestAction {
                dest: 0,
                slice: SliceSpec::Bytes(128),
                dedup: true,
                tag: None
            },
            DestAction {
                dest: 1,
                slice: SliceSpec::AfterL4(64),
                dedup: false,
                tag: Some(9)
            },
        ])
    );
    // Outside the group: only the catch-all rule.
    let other = c.classify(&tcp_to(0x0b00_0001, 443), 0, Direction::Ingress);
    assert_eq!(c.rule_id(other), Some(2));
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let bad = r#"
[[group]]
name = "g"
cidrs = ["10.0.0.0/33", "nonsense"]

[[destination]]
name = "d"
tunnel = "vxlan"
remote = "not-an-ip"
session = 3

[[destination]]
name = "d"
tunnel = "erspan2"
remote = "192.0.2.1"
session = 2000

[[rule]]
name = "r"
in_port = "tap9"
dst_port = "90-80"
proto = "tcpp"
tcp_flags = "syn,!bogus"
src_group = "missing"
to = ["nowhere"]
"#;
    let err = compile(&parse_toml(bad, "t").expect("toml"), &ctx()).expect_err("invalid");
    let text: Vec<String> = err.iter().map(ToString::to_string).collect();
    for want in [
        "group[0].cidrs[0]: prefix length 33",
        "group[0].cidrs[1]",
        "destination[0].remote: \"not-an-ip\" is not an IP address",
        "destination[0].vni: required",
        "destination[0].session: does not apply",
        "destination[1].name: destination \"d\" is defined twice",
        "destination[1].session: 2000 does not fit in 10 bits",
        "rule[0].in_port: no input port named \"tap9\" (input ports: tap0, tap1)",
        "rule[0].dst_port: \"90-80\": 90 is above 80",
        "rule[0].proto: \"tcpp\" is not one of",
        "rule[0].tcp_flags: \"bogus\" is not a TCP flag",
        "rule[0].src_group: no group named \"missing\"",
        "rule[0].to[0]: no destination named \"nowhere\"",
    ] {
        assert!(
            text.iter().any(|t| t.starts_with(want)),
            "missing {want:?} in {text:#?}"
        );
    }
}

#[test]
fn unknown_keys_are_syntax_errors_naming_the_key() {
    let e = parse_toml("[[rule]]\nname = \"x\"\ndstport = 80\n", "p.toml").expect_err("unknown");
    let e = e.to_string();
    assert!(e.contains("dstport") && e.contains("p.toml"), "{e}");
}

#[test]
fn in_port_names_map_to_dpdk_port_ids() {
    let text =
        "[[destination]]\nname = \"n\"\ntunnel = \"l2gre\"\nremote = \"192.0.2.1\"\nkey = 1\n\
                [[rule]]\nname = \"r\"\nin_port = \"tap1\"\nto = [\"n\"]\n";
    let p = compile(&parse_toml(text, "t").expect("toml"), &ctx()).expect("valid");
    let l = tcp_to(1, 1);
    assert_eq!(
        p.classifier
            .rule_id(p.classifier.classify(&l, 3, Direction::Ingress)),
        Some(0)
    );
    assert_eq!(
        p.classifier
            .rule_id(p.classifier.classify(&l, 0, Direction::Ingress)),
        None
    );
}

const TOOLS: &str = r#"
[[destination]]
name = "farm"
port = "ids-farm"
strip = ["vlan", "mpls", "vntag", "tunnel"]
dst_mac = "02:00:00:00:00:99"
mask = { from = "payload", offset = 4, length = 64, pattern = 0xff }
sample = { one_in = 100, by = "packet" }
slice = 256

[[destination]]
name = "second"
port = "ids2"

[[destination]]
name = "noc"
tunnel = "vxlan"
remote = "192.0.2.10"
vni = 7
strip = ["vlan"]
mask = { from = "l4", length = 8 }
sample = { one_in = 4, by = "flow" }

[[rule]]
name = "all"
to = ["noc"]

[[rule]]
name = "web"
priority = 1
dst_port = 80
sample = { one_in = 10, by = "flow" }
to = ["farm", "second", "noc"]
"#;

#[test]
fn tool_destinations_name_their_table_and_carry_strip_mask_and_sample() {
    use dataplane::runtime::policy::Output;
    use dataplane::stage::mask::{Anchor, MaskSpec};
    use dataplane::stage::sample::SampleSpec;
    use dataplane::stage::strip::StripSpec;

    let p = compile(&parse_toml(TOOLS, "t").expect("toml"), &ctx()).expect("valid");
    let [farm, second, noc] = &p.destinations[..] else {
        panic!("three destinations: {:?}", p.destinations);
    };
    // Tool ports first (ids1 = 0, ids2 = 1), then the groups.
    assert_eq!(farm.out, Output::Tool(2));
    assert_eq!(second.out, Output::Tool(1));
    assert!(noc.tunnel().is_some());
    assert_eq!(
        farm.strip,
        StripSpec {
            vlan: true,
            mpls: true,
            vntag: true,
            tunnel: true,
            dst_mac: Some([2, 0, 0, 0, 0, 0x99]),
        }
    );
    assert_eq!(
        farm.mask,
        Some(MaskSpec {
            anchor: Anchor::Payload,
            offset: 4,
            len: 64,
            pattern: 0xff
        })
    );
    assert_eq!(farm.sample, Some(SampleSpec::OneInN(100)));
    assert_eq!(
        (second.strip, second.mask, second.sample),
        (StripSpec::default(), None, None)
    );
    assert_eq!(
        (
            noc.strip.vlan,
            noc.strip.mpls,
            noc.mask.map(|m| (m.anchor, m.offset))
        ),
        (true, false, Some((Anchor::L4, 0)))
    );
    assert_eq!(noc.sample, Some(SampleSpec::FlowHash { one_in: 4 }));
    // Compiled order: "web" (priority 1) first.
    assert_eq!(p.rule_names, ["web", "all"]);
    assert_eq!(
        p.rule_samples,
        [Some(SampleSpec::FlowHash { one_in: 10 }), None]
    );
}

#[test]
fn tool_destination_problems_are_named_with_their_path() {
    let bad = r#"
[[destination]]
name = "a"
port = "nosuch"

[[destination]]
name = "b"
port = "ids1"
vni = 5
session = 1
key = 2
udp_port = 4789
extended = true
hw_id = 1
timestamp = "100us"
oversize = "drop"
dscp = 8
ttl = 9
vlan = 10
dst_mac = "02:00:00:00:00"
mask = { from = "l3", length = 0 }
sample = { one_in = 0 }

[[destination]]
name = "c"
port = "ids1"
tunnel = "vxlan"
remote = "192.0.2.1"

[[destination]]
name = "d"
remote = "192.0.2.1"
dst_mac = "02:00:00:00:00:01"

[[destination]]
name = "e"
tunnel = "l2gre"
remote = "192.0.2.1"
key = 1
dst_mac = "02:00:00:00:00:01"
strip = ["vlan", "vlan"]

[[rule]]
name = "r"
sample = { one_in = 0, by = "flow" }
to = ["e"]

[[rule]]
name = "s"
sample = { one_in = 2 }
action = "drop"
"#;
    let err = compile(&parse_toml(bad, "t").expect("toml"), &ctx()).expect_err("invalid");
    let text: Vec<String> = err.iter().map(ToString::to_string).collect();
    let mut want = vec![
        "destination[0].port: no tool port or tool group named \"nosuch\" (the appliance has ids1, ids2, ids-farm)".to_owned(),
        "destination[1].dst_mac: \"02:00:00:00:00\" is not a MAC address".into(),
        "destination[1].mask.length: must be at least 1".into(),
        "destination[1].sample.one_in: must be at least 1".into(),
        "destination[2].port: a destination is a tool port or group (port) or a tunnel".into(),
        "destination[3].tunnel: required for a tunnel destination".into(),
        "destination[4].dst_mac: rewrites a tool's frames".into(),
        "destination[4].strip: Vlan is listed twice".into(),
        "rule[0].sample.one_in: must be at least 1".into(),
        "rule[1].sample: a rule without destinations has nothing to sample".into(),
    ];
    for key in [
        "vni",
        "session",
        "key",
        "udp_port",
        "extended",
        "hw_id",
        "timestamp",
        "oversize",
        "dscp",
        "ttl",
        "vlan",
    ] {
        want.push(format!("destination[1].{key}: is a tunnel's"));
    }
    for w in &want {
        assert!(
            text.iter().any(|t| t.starts_with(w.as_str())),
            "missing {w:?} in {text:#?}"
        );
    }
    // Nothing else: the tool destination's own keys are fine.
    assert_eq!(text.len(), want.len(), "{text:#?}");
}

#[test]
fn a_policy_without_the_new_keys_reads_and_writes_as_before() {
    let model = parse_toml(GOOD, "t").expect("toml");
    let json = serde_json::to_string(&model.destinations[0]).expect("json");
    assert!(
        [
            "\"port\"",
            "\"strip\"",
            "\"sample\"",
            "\"mask\"",
            "\"dst_mac\""
        ]
        .iter()
        .all(|k| !json.contains(k)),
        "{json}"
    );
    assert!(
        json.contains("\"tunnel\":\"vxlan\",\"remote\":\"192.0.2.10\""),
        "{json}"
    );
}
