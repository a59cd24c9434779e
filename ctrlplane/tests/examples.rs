//! The example configs and policy in `examples/` stay valid.

use std::path::Path;

use ctrlplane::config::Config;
use ctrlplane::policy::{self, Context};

fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

#[test]
fn example_configs_and_policy_are_valid() {
    let tap = Config::load(&example("tap-aggregation.toml")).expect("tap-aggregation.toml");
    let decap = Config::load(&example("decap-frontend.toml")).expect("decap-frontend.toml");
    assert!(decap.uplink.is_none() && decap.tool_port().is_some());
    assert!(decap.input_ports().all(|p| p.address().is_some()));
    let pdump = Config::load(&example("pdump-tap.toml")).expect("pdump-tap.toml");
    assert_eq!(pdump.pdump_inputs().count(), 2);
    assert_eq!(pdump.pdump.map(|p| p.file_prefix), Some("vswitch".into()));
    let vhost = Config::load(&example("vhost-tap.toml")).expect("vhost-tap.toml");
    assert!(vhost
        .input_ports()
        .all(|p| p.device.starts_with("net_vhost")));
    let ctx = Context {
        ports: tap
            .input_ports()
            .enumerate()
            .map(|(i, p)| (p.name.clone(), i as u16))
            .collect(),
    };
    let text = std::fs::read_to_string(example("policy.toml")).expect("policy.toml");
    let (model, compiled) = policy::load_text(&text, "policy.toml", &ctx).expect("valid policy");
    assert_eq!(compiled.rule_names, ["no-ssh", "no-backups", "web", "rest"]);
    assert_eq!(model.destinations.len(), 2);
}
