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

fn ctx() -> Context {
    Context {
        ports: vec![("tap0".into(), 0), ("tap1".into(), 3)],
    }
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
