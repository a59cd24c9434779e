//! Loading configs: defaults, typed values, and errors that name every key.

use std::time::Duration;

use super::*;

const GOOD: &str = r#"
    [[port]]
    name = "tap0"
    device = "net_pcap0,rx_pcap=in.pcap"
    role = "input"
    [[port]]
    name = "up"
    device = "net_pcap1,tx_pcap=out.pcap"
    role = "uplink"
    [[uplink]]
    port = "up"
    address = "192.0.2.1/24"
    gateway = "192.0.2.254"
"#;

#[test]
fn a_minimal_config_gets_defaults() {
    let c = Config::parse(GOOD, "t").expect("valid");
    assert_eq!(c.uplinks.first().map(|u| u.mtu), Some(1500));
    assert_eq!(c.dedup.window, Duration::from_micros(50_000));
    assert_eq!(c.uplink_ports().next().map(|p| p.name.as_str()), Some("up"));
    assert_eq!(c.input_ports().count(), 1);
}

#[test]
fn unknown_keys_are_named() {
    let bad = GOOD.replace("port = \"up\"", "port = \"up\"\nmtuu = 9000");
    let e = Config::parse(&bad, "t")
        .expect_err("unknown key")
        .to_string();
    assert!(e.contains("mtuu"), "{e}");
    let bad = format!("{GOOD}\n[dedupe]\nx = 1\n");
    let e = Config::parse(&bad, "t")
        .expect_err("unknown table")
        .to_string();
    assert!(e.contains("dedupe"), "{e}");
}

#[test]
fn every_bad_value_is_named_with_its_reason() {
    let bad = GOOD
        .replace("192.0.2.1/24", "192.0.2.1")
        .replace("role = \"uplink\"", "role = \"input\"")
        + "\n[dedup]\ntable_entries = 1000\n[mempool]\nmbufs = 10\n[[neighbor]]\nip = \"192.0.2.9\"\nmac = \"zz\"\n";
    let e = Config::parse(&bad, "t")
        .expect_err("bad values")
        .to_string();
    for key in [
        "uplink[0].address",
        "a port needs role = \"uplink\" when inputs are in tap mode",
        "neighbor[0]: the appliance has no uplink for it to be on",
        "dedup.table_entries: 1000",
        "mempool.mbufs: 10",
        "neighbor[0].mac",
    ] {
        assert!(e.contains(key), "missing {key} in {e}");
    }
}

#[test]
fn bad_enum_values_say_what_is_accepted() {
    let bad = GOOD.replace("role = \"input\"", "role = \"sideways\"");
    let e = Config::parse(&bad, "t").expect_err("bad role").to_string();
    assert!(e.contains("sideways") && e.contains("input"), "{e}");
}

#[test]
fn the_controller_section_gets_defaults_and_named_errors() {
    let ok = format!(
        "{GOOD}\n[controller]\naddresses = [\"ctl.example:7443\", \"ctl-2.example:7443\"]\nca = \"ca.pem\"\ncert = \"a.pem\"\nkey = \"a.key\"\nlabels = {{ site = \"par\" }}\n"
    );
    let c = Config::parse(&ok, "t")
        .expect("valid")
        .controller
        .expect("section");
    assert_eq!(c.server_name, None);
    assert_eq!(c.addresses.len(), 2);
    assert_eq!(c.addresses[1].host, "ctl-2.example");
    assert_eq!(c.addresses[0].port, 7443);
    assert_eq!(c.heartbeat, Duration::from_millis(1000));
    assert_eq!(c.backoff_max, Duration::from_secs(30));
    assert_eq!(c.labels.get("site").map(String::as_str), Some("par"));
    assert!(Config::parse(GOOD, "t")
        .expect("valid")
        .controller
        .is_none());

    let bad = ok.replace("ctl-2.example:7443", "ctl.example").replace(
        "[controller]",
        "[controller]\nheartbeat_ms = 5\nbackoff_initial_ms = 0",
    );
    let e = Config::parse(&bad, "t").expect_err("bad").to_string();
    for key in [
        "controller.addresses[1]",
        "controller.heartbeat_ms: 5",
        "controller.backoff_initial_ms: 0",
    ] {
        assert!(e.contains(key), "missing {key} in {e}");
    }
    let e = Config::parse(&ok.replace("key = ", "kee = "), "t")
        .expect_err("unknown key")
        .to_string();
    assert!(e.contains("kee"), "{e}");
}

#[test]
fn only_a_decap_input_has_an_address() {
    let decap = "[[port]]\nname = \"span\"\ndevice = \"net_tap0\"\nrole = \"input\"\nmode = \"decap\"\naddress = \"198.51.100.7/24\"\n[[port]]\nname = \"tool\"\ndevice = \"net_tap1\"\nrole = \"tool\"\n";
    let c = Config::parse(decap, "t").expect("valid");
    assert_eq!(
        c.ports[0].address,
        Some("198.51.100.7".parse().expect("ip"))
    );
    let v6 = decap.replace("198.51.100.7/24", "2001:db8::7");
    assert!(Config::parse(&v6, "t").expect("valid").ports[0]
        .address
        .is_some_and(|a| a.is_ipv6()));
    for (bad, why) in [
        ("address = \"198.51.100.7/24\"", "only a decap input"),
        ("address = \"0.0.0.0\"", "cannot be an interface address"),
        ("address = \"not-an-ip\"", "not an IPv4 or IPv6 address"),
    ] {
        let text = if why == "only a decap input" {
            format!("{GOOD}\n").replace("role = \"input\"", &format!("role = \"input\"\n{bad}"))
        } else {
            decap.replace("address = \"198.51.100.7/24\"", bad)
        };
        let e = Config::parse(&text, "t").expect_err(why).to_string();
        assert!(e.contains("port[0].address") && e.contains(why), "{e}");
    }
}

const PDUMP: &str = r#"
    [pdump]
    file_prefix = "vswitch"
    [[port]]
    name = "vm1"
    role = "input"
    pdump = "net_vhost0"
    capture = "rx"
    queues = [0, 1]
    [[port]]
    name = "vm2"
    role = "input"
    pdump = "0000:01:00.0"
    [[port]]
    name = "up"
    device = "net_pcap1,tx_pcap=out.pcap"
    role = "uplink"
    [[uplink]]
    port = "up"
    address = "192.0.2.1/24"
"#;

#[test]
fn pdump_inputs_tap_a_primary_and_their_errors_are_named() {
    let c = Config::parse(PDUMP, "t").expect("valid");
    let d = c.pdump.as_ref().expect("section");
    assert_eq!(
        (d.ring_size, d.mbufs, d.replace_taps),
        (16384, 32767, false)
    );
    let taps: Vec<_> = c.pdump_inputs().collect();
    assert_eq!(taps.len(), 2);
    let tap = |i: usize| taps[i].pdump.as_ref().expect("a tap");
    assert_eq!(tap(0).capture, CaptureConfig::Rx);
    assert_eq!(tap(1).capture, CaptureConfig::Both);
    assert_eq!(tap(0).queues.as_deref(), Some(&[0, 1][..]));
    assert_eq!(taps[0].device.name(), "net_vhost0");
    assert_eq!(taps[1].device.name(), "0000:01:00.0");

    for (edit, key) in [
        (
            ("file_prefix = \"vswitch\"", "file_prefix = \"a/b\""),
            "pdump.file_prefix",
        ),
        (
            (
                "file_prefix = \"vswitch\"",
                "file_prefix = \"v\"\nring_size = 1000",
            ),
            "pdump.ring_size: 1000",
        ),
        (
            ("queues = [0, 1]", "queues = [1, 1]"),
            "port[0].queues: queue 1 is listed twice",
        ),
        (
            ("queues = [0, 1]", "direction = \"egress\""),
            "port[0].direction",
        ),
        (
            ("queues = [0, 1]", "device = \"net_pcap9\""),
            "port[0].device",
        ),
        (
            ("\"0000:01:00.0\"", "\"net_vhost0\""),
            "port[1].pdump: \"net_vhost0\" is tapped by two ports",
        ),
        (
            ("role = \"uplink\"", "role = \"uplink\"\ncapture = \"tx\""),
            "port[2]: capture and queues are for pdump inputs",
        ),
        (("capture = \"rx\"", "capture = \"sideways\""), "sideways"),
        (
            ("net_pcap1,tx_pcap=out.pcap", "net_tap1,iface=up"),
            "port[2].device: net_tap1 cannot be run by a pdump secondary",
        ),
    ] {
        let bad = PDUMP.replacen(edit.0, edit.1, 1);
        let e = Config::parse(&bad, "t").expect_err(key).to_string();
        assert!(e.contains(key), "missing {key} in {e}");
    }
    let e = Config::parse(
        &PDUMP.replace("[pdump]\n    file_prefix = \"vswitch\"", ""),
        "t",
    )
    .expect_err("no section")
    .to_string();
    assert!(e.contains("port[0].pdump: needs a [pdump] section"), "{e}");
    let e = Config::parse(&format!("{GOOD}\n[pdump]\nfile_prefix = \"x\"\n"), "t")
        .expect_err("no tap")
        .to_string();
    assert!(e.contains("pdump: no input taps the primary"), "{e}");
}

#[test]
fn addresses_macs_devices_and_durations_are_typed_at_load() {
    let text = GOOD.replace(
        "gateway = \"192.0.2.254\"",
        "gateway = \"192.0.2.254\"\nmac = \"02:00:00:00:00:01\"\narp_refresh_s = 7",
    ) + "\n[[neighbor]]\nip = \"192.0.2.10\"\nmac = \"02:00:00:00:00:0A\"\n[dedup]\nwindow_us = 250\n";
    let c = Config::parse(&text, "t").expect("valid");
    let u = c.uplinks.first().expect("uplink");
    assert_eq!(u.address, Cidr::new([192, 0, 2, 1], 24));
    assert_eq!(u.gateway, Some("192.0.2.254".parse().expect("ip")));
    assert_eq!(u.mac, Some(MacAddr([2, 0, 0, 0, 0, 1])));
    assert_eq!(u.arp_refresh, Duration::from_secs(7));
    assert_eq!(
        c.neighbors,
        [NeighborConfig {
            ip: "192.0.2.10".parse().expect("ip"),
            mac: MacAddr([2, 0, 0, 0, 0, 10]),
            uplink: 0,
        }]
    );
    assert_eq!(c.dedup.window, Duration::from_micros(250));
    let tap = &c.ports[0];
    assert_eq!(tap.device.devargs(), "net_pcap0,rx_pcap=in.pcap");
    assert_eq!(tap.device.driver(), Some("net_pcap"));
    assert_eq!(tap.device.args("rx_pcap").collect::<Vec<_>>(), ["in.pcap"]);
    assert_eq!(
        (tap.direction, tap.pdump.as_ref(), tap.address),
        (PortDirection::Ingress, None, None)
    );
}

#[test]
fn problems_of_every_section_come_in_one_error() {
    let bad = GOOD
        .replace("192.0.2.254", "2001:db8::1")
        .replace("role = \"input\"", "role = \"input\"\nmtu = 20")
        .replace(
            "port = \"up\"",
            "port = \"up\"\nmac = \"02:00:00:00:00\"\narp_refresh_s = 0",
        )
        + "\n[[neighbor]]\nip = \"192.0.2.9\"\nmac = \"02:00:00:00:00:09:01\"\n\
           [controller]\naddresses = [\"ctl.example:0\"]\nca = \"\"\ncert = \"a.pem\"\nkey = \"a.key\"\n\
           connect_timeout_ms = 1\n[decap]\nmax_layers = 9\n[queues]\nrx_desc = 1\n";
    let e = Config::parse(&bad, "t")
        .expect_err("bad values")
        .to_string();
    for key in [
        "port[0].mtu: 20 is outside 68..=9600",
        "uplink[0].gateway: 2001:db8::1 is not of the address family",
        "uplink[0].mac: \"02:00:00:00:00\" is not a MAC address",
        "uplink[0].arp_refresh_s: must be at least 1",
        "neighbor[0].mac: \"02:00:00:00:00:09:01\" is not a MAC address",
        "controller.addresses[0]: \"ctl.example:0\" is not host:port",
        "controller.ca: must not be empty",
        "controller.connect_timeout_ms: 1 is outside 10..=600000",
        "decap.max_layers: 9",
        "queues.rx_desc: 1",
    ] {
        assert!(e.contains(key), "missing {key} in {e}");
    }
}

#[test]
fn a_secondary_runs_only_devices_it_can_drive() {
    for (device, runs) in [
        ("net_pcap1,tx_pcap=out.pcap", true),
        ("eth_null0", true),
        ("net_ring0", true),
        ("0000:04:00.0", true),
        ("net_af_packet0,iface=eth1", false),
        ("eth_tap0", false),
        ("net_nosuchdriver0", false),
    ] {
        let text = PDUMP.replace("net_pcap1,tx_pcap=out.pcap", device);
        assert_eq!(Config::parse(&text, "t").is_ok(), runs, "{device}");
    }
}

#[test]
fn a_capture_input_replays_a_file_into_a_ring_port_of_its_own() {
    let cfg = GOOD.replace(
        "device = \"net_pcap0,rx_pcap=in.pcap\"",
        "file = \"in.pcapng\"\ntiming = \"capture\"\nspeed = 4.0\nloop = 2",
    );
    let c = Config::parse(&cfg, "t").expect("valid");
    let port = &c.ports[0];
    assert_eq!(port.device.name(), "net_ring_cap0");
    let r = port.replay.as_ref().expect("a capture input");
    assert_eq!(r.file, std::path::Path::new("in.pcapng"));
    assert_eq!(
        (r.timing, r.speed, r.loops),
        (crate::capture::Timing::Capture, 4.0, 2)
    );
    assert!(c.ports[1].replay.is_none());
    // A file and a device, and replay keys on a port without a file.
    let bad = GOOD
        .replace("role = \"input\"", "role = \"input\"\nfile = \"in.pcap\"")
        .replace("role = \"uplink\"", "role = \"uplink\"\nloop = 3");
    let e = Config::parse(&bad, "t").expect_err("refused").to_string();
    assert!(
        e.contains("port[0].file: a capture input has no device"),
        "{e}"
    );
    assert!(e.contains("port[1].loop: only a capture input"), "{e}");
    let e = Config::parse(&cfg.replace("capture", "live"), "t")
        .expect_err("refused")
        .to_string();
    assert!(e.contains("timing") && e.contains("fast"), "{e}");
}

const TOOLS: &str = r#"
    [[port]]
    name = "tap0"
    device = "net_pcap0,rx_pcap=in.pcap"
    role = "input"
    [[port]]
    name = "ids1"
    device = "net_pcap1,tx_pcap=1.pcap"
    role = "tool"
    [[port]]
    name = "ids2"
    device = "net_pcap2,tx_pcap=2.pcap"
    role = "tool"
    [[port]]
    name = "ids3"
    device = "net_pcap3,tx_pcap=3.pcap"
    role = "tool"
    [[tool_group]]
    name = "ids-farm"
    members = ["ids1", "ids2", { port = "ids3", weight = 2 }]
    hash = "ip-pair"
    sticky = true
    [[tool_group]]
    name = "pair"
    members = ["ids1", "ids2"]
"#;

#[test]
fn tool_ports_and_groups_need_no_uplink_and_are_named_in_table_order() {
    let c = Config::parse(TOOLS, "t").expect("valid");
    assert!(c.uplinks.is_empty() && c.uplink_ports().next().is_none());
    assert_eq!(c.tool_names(), ["ids1", "ids2", "ids3", "ids-farm", "pair"]);
    let farm = &c.tool_groups[0];
    assert_eq!(
        farm.members,
        [
            ToolMember {
                port: "ids1".into(),
                weight: 1
            },
            ToolMember {
                port: "ids2".into(),
                weight: 1
            },
            ToolMember {
                port: "ids3".into(),
                weight: 2
            },
        ]
    );
    assert_eq!((farm.hash, farm.sticky), (GroupHash::IpPair, true));
    let pair = &c.tool_groups[1];
    assert_eq!((pair.hash, pair.sticky), (GroupHash::FiveTuple, false));
}

#[test]
fn every_tool_group_problem_is_named() {
    let bad = TOOLS
        .replace("name = \"pair\"", "name = \"ids2\"")
        .replace(
            "members = [\"ids1\", \"ids2\"]",
            "members = [\"ids1\", \"tap0\", \"ids1\", { port = \"ids3\", weight = 0 }, { port = \"ids2\", weight = 1001 }]",
        )
        + "[[tool_group]]\nname = \"empty\"\nmembers = []\n";
    let e = Config::parse(&bad, "t")
        .expect_err("bad groups")
        .to_string();
    for key in [
        "tool_group[1].name: \"ids2\" is already the name of a tool port or tool group",
        "tool_group[1].members[1]: \"tap0\" is not a tool port (tool ports: ids1, ids2, ids3)",
        "tool_group[1].members[2]: \"ids1\" is a member twice",
        "tool_group[1].members[3].weight: 0 is outside 1..=1000",
        "tool_group[1].members[4].weight: 1001 is outside 1..=1000",
        "tool_group[2].members: a group needs at least one member",
    ] {
        assert!(e.contains(key), "missing {key} in {e}");
    }
    let bad = TOOLS.replace("\"ip-pair\"", "\"4-tuple\"");
    let e = Config::parse(&bad, "t").expect_err("bad hash").to_string();
    assert!(e.contains("4-tuple") && e.contains("inner-5-tuple"), "{e}");
}

#[test]
fn decap_inputs_name_their_tool_port_when_there_are_several() {
    let decap = TOOLS.replace("role = \"input\"", "role = \"input\"\n    mode = \"decap\"");
    let e = Config::parse(&decap, "t")
        .expect_err("which tool")
        .to_string();
    assert!(
        e.contains("decap.tool: inputs in decap mode need to know"),
        "{e}"
    );
    let c = Config::parse(&format!("{decap}\n[decap]\ntool = \"ids2\"\n"), "t").expect("valid");
    assert_eq!(c.decap_tool_port().map(|p| p.name.as_str()), Some("ids2"));
    let e = Config::parse(&format!("{decap}\n[decap]\ntool = \"ids-farm\"\n"), "t")
        .expect_err("a group is not a port")
        .to_string();
    assert!(
        e.contains("decap.tool: \"ids-farm\" is not a tool port"),
        "{e}"
    );
    let e = Config::parse(&format!("{TOOLS}\n[decap]\ntool = \"ids1\"\n"), "t")
        .expect_err("no decap input")
        .to_string();
    assert!(e.contains("decap.tool: no input is in decap mode"), "{e}");
}

#[test]
fn tool_ports_are_limited() {
    let mut text = GOOD.to_owned();
    for i in 0..=dataplane::runtime::counters::MAX_TOOL_PORTS {
        text += &format!("[[port]]\nname = \"t{i}\"\ndevice = \"net_null{i}\"\nrole = \"tool\"\n");
    }
    let e = Config::parse(&text, "t").expect_err("too many").to_string();
    assert!(
        e.contains("65 ports have role = \"tool\", more than 64"),
        "{e}"
    );
}

#[test]
fn intake_and_stream_get_defaults_and_named_errors() {
    let ok = format!("{GOOD}\n[intake]\n[stream]\nservers = [\"nats://127.0.0.1:4222\"]\n");
    let c = Config::parse(&ok, "t").expect("valid");
    assert_eq!(
        c.intake.as_ref().map(IntakeConfig::ports),
        Some([6343, 2055])
    );
    let s = c.stream.expect("stream");
    assert_eq!(
        (s.stream.as_str(), s.subject_prefix.as_str(), s.buffer),
        ("SLUICE", "sluice", 65_536)
    );
    let bad = format!(
        "{GOOD}\n[intake]\nsflow_port = 2055\nqueue = 100\n[stream]\nservers = [\"nats://x\"]\nstream = \"a.b\"\nreplicas = 7\nbuffer = 0\n"
    );
    let e = Config::parse(&bad, "t").expect_err("bad").to_string();
    for key in [
        "intake.netflow_port",
        "intake.queue",
        "stream.servers",
        "stream.stream",
        "stream.replicas",
        "stream.buffer",
    ] {
        assert!(e.contains(key), "{key} missing from {e}");
    }
    let no_uplink =
        "[[port]]\nname = \"t\"\ndevice = \"net_pcap0,rx_pcap=a\"\nrole = \"input\"\n[intake]\n";
    let e = Config::parse(no_uplink, "t")
        .expect_err("no uplink")
        .to_string();
    assert!(
        e.contains("intake: datagrams arrive at the uplink's address"),
        "{e}"
    );
}

#[test]
fn workers_poll_unless_told_and_idle_keys_are_checked() {
    let c = Config::parse(GOOD, "t").expect("valid");
    assert_eq!(c.workers.idle, IdleMode::Poll);
    assert_eq!(c.workers.idle_max_us, 2000);
    let c = Config::parse(
        &format!("{GOOD}\n[workers]\nidle = \"interrupt\"\nidle_max_us = 10000\n"),
        "t",
    )
    .expect("valid");
    assert_eq!(
        (c.workers.idle, c.workers.idle_max_us),
        (IdleMode::Interrupt, 10000)
    );
    let e = Config::parse(&format!("{GOOD}\n[workers]\nidle = \"doze\"\n"), "t")
        .expect_err("bad mode")
        .to_string();
    assert!(e.contains("doze") && e.contains("adaptive"), "{e}");
    let e = Config::parse(&format!("{GOOD}\n[workers]\nidle_max_us = 5\n"), "t")
        .expect_err("bad bound")
        .to_string();
    assert!(e.contains("workers.idle_max_us: 5"), "{e}");
}

/// Two uplinks on two subnets, one with a gateway and a static route.
const TWO_UPLINKS: &str = r#"
    [[port]]
    name = "tap0"
    device = "net_pcap0,rx_pcap=in.pcap"
    role = "input"
    [[port]]
    name = "up-a"
    device = "net_pcap1,tx_pcap=a.pcap"
    role = "uplink"
    [[port]]
    name = "up-b"
    device = "net_pcap2,tx_pcap=b.pcap"
    role = "uplink"
    [[uplink]]
    port = "up-b"
    address = "198.51.100.1/24"
    gateway = "198.51.100.254"
    [[uplink]]
    port = "up-a"
    address = "192.0.2.1/24"
    gateway = "192.0.2.254"
    routes = ["203.0.113.0/24 via 192.0.2.253", "203.0.113.128/25 via 192.0.2.252"]
    [[uplink]]
    port = "up-v6"
    address = "2001:db8::1/64"
    [[port]]
    name = "up-v6"
    device = "net_pcap3,tx_pcap=c.pcap"
    role = "uplink"
    [[neighbor]]
    ip = "10.9.9.9"
    mac = "02:00:00:00:00:99"
    uplink = "up-a"
"#;

#[test]
fn each_remote_leaves_by_its_subnet_route_or_first_gateway() {
    let c = Config::parse(TWO_UPLINKS, "t").expect("valid");
    let names: Vec<&str> = c.uplink_ports().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["up-b", "up-a", "up-v6"], "[[uplink]] order");
    let r = c.routes();
    let route = |ip: &str| {
        r.route(ip.parse().expect("ip"))
            .map(|r| (r.uplink, r.next_hop.to_string()))
    };
    // On a subnet: that uplink, to the remote itself.
    assert_eq!(route("192.0.2.10"), Some((1, "192.0.2.10".into())));
    assert_eq!(route("198.51.100.7"), Some((0, "198.51.100.7".into())));
    assert_eq!(route("2001:db8::9"), Some((2, "2001:db8::9".into())));
    // The longest static route.
    assert_eq!(route("203.0.113.5"), Some((1, "192.0.2.253".into())));
    assert_eq!(route("203.0.113.200"), Some((1, "192.0.2.252".into())));
    // A fixed neighbour is on its uplink, reached directly.
    assert_eq!(route("10.9.9.9"), Some((1, "10.9.9.9".into())));
    // Otherwise the first uplink with a gateway of the family.
    assert_eq!(route("8.8.8.8"), Some((0, "198.51.100.254".into())));
    // No IPv6 gateway: unreachable.
    assert_eq!(route("2001:db9::1"), None);
}

#[test]
fn uplinks_without_addressing_or_with_ambiguous_routes_are_refused() {
    let missing = TWO_UPLINKS.replace(
        "port = \"up-v6\"\n    address",
        "port = \"up-x\"\n    address",
    );
    let e = Config::parse(&missing, "t").expect_err("bad").to_string();
    for key in [
        "uplink[2].port: \"up-x\" is not a port with role = \"uplink\"",
        "port \"up-v6\": an uplink port needs its addressing: [[uplink]] with port = \"up-v6\"",
    ] {
        assert!(e.contains(key), "missing {key} in {e}");
    }
    let overlap = TWO_UPLINKS
        .replace("198.51.100.1/24", "192.0.2.129/25")
        .replace("198.51.100.254", "192.0.2.254")
        .replace("gateway = \"192.0.2.254\"\n    routes", "routes")
        .replace(
            "\"203.0.113.128/25 via 192.0.2.252\"",
            "\"203.0.113.128/25 via 10.0.0.1\"",
        );
    let e = Config::parse(&overlap, "t").expect_err("bad").to_string();
    for key in [
        "uplink[1].address: 192.0.2.1/24 overlaps uplink[0]'s subnet 192.0.2.129/25 (port \"up-b\")",
        "uplink[1].routes[1]: \"203.0.113.128/25 via 10.0.0.1\": the next hop 10.0.0.1 is not on the uplink's subnet 192.0.2.1/24",
    ] {
        assert!(e.contains(key), "missing {key} in {e}");
    }
    let twice = TWO_UPLINKS.replace(
        "gateway = \"198.51.100.254\"",
        "gateway = \"198.51.100.254\"\n    routes = [\"203.0.113.0/24 via 198.51.100.2\", \"x\"]",
    );
    let e = Config::parse(&twice, "t").expect_err("bad").to_string();
    for key in [
        "uplink[1].routes: 203.0.113.0/24 is routed by uplink[0] (port \"up-b\") too",
        "uplink[0].routes[1]: \"x\" is not a route such as",
    ] {
        assert!(e.contains(key), "missing {key} in {e}");
    }
    let lost = TWO_UPLINKS.replace("    uplink = \"up-a\"\n", "");
    let e = Config::parse(&lost, "t").expect_err("bad").to_string();
    assert!(
        e.contains("neighbor[0]: 10.9.9.9 is on no uplink's subnet: name its uplink"),
        "{e}"
    );
}
