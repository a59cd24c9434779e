//! Target `config`: the appliance config parser on any text. It answers a
//! config or errors, never panics; an accepted config is consistent with
//! what its accessors say.

use ctrlplane::config::Config;

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, "fuzz.toml") {
        Ok(cfg) => {
            // Accessors of an accepted config must not panic either.
            // Every uplink has its port, and every remote a route or none.
            let uplinks = cfg.uplink_ports().count();
            let inputs = cfg.input_ports().count();
            assert!(uplinks == cfg.uplinks.len() && uplinks <= ctrlplane::config::MAX_UPLINKS);
            assert!(inputs <= usize::from(u16::MAX));
            let _ = cfg.routes().route(std::net::Ipv4Addr::new(203, 0, 113, 5).into());
            // Parsing is a function of the text.
            assert!(Config::parse(text, "fuzz.toml").is_ok());
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty());
            assert!(
                msg.contains("fuzz.toml"),
                "error does not name the file: {msg}"
            );
        }
    }
}
