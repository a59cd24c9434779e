//! The fleet's run-once jobs: of two controllers on one etcd, the one that
//! wins etcd's election forgets appliances not seen for
//! `--expire-after-s` and deletes history past `--history-retention-s`;
//! the other waits, and takes over when the leader dies.

mod controller_support;

use std::time::Duration;

use controller_support::*;
use serde_json::Value;

/// The fleet's history as the operator's command prints it.
fn history(fx: &Fixture) -> Vec<Value> {
    let out = fx.fleet_cli(&["history", "--json"]);
    assert!(
        out.status.success(),
        "history: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON event"))
        .collect()
}

fn has(events: &[Value], kind: &str, appliance: &str) -> bool {
    events
        .iter()
        .any(|e| e["kind"] == kind && e["appliance"] == appliance)
}

fn listed(ctl: &Controller, name: &str) -> bool {
    ctl.list().iter().any(|a| a.name == name)
}

/// Polls (bounded) until `ok` holds.
fn until(what: &str, ok: impl Fn() -> bool) {
    for _ in 0..6000 {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("never: {what}");
}

/// An appliance that connects to `ctl`, takes its policy, and goes away.
fn visit(fx: &Fixture, ctl: &Controller, name: &str) {
    let app = Appliance::spawn(fx.agent_config(ctl, name));
    app.wait_connected();
    let (_, acked) = app.take_policy();
    assert!(acked);
    drop(app);
}

#[test]
fn one_controller_runs_the_fleets_jobs_and_another_takes_over_when_it_dies() {
    let fx = Fixture::new("jobs");
    fx.write_policy("base", &good_policy("one"));
    fx.write_assign("default = \"base\"\n");
    let dir = fx.dir.path().to_path_buf();
    let jobs = |retention: &'static str| {
        [
            "--jobs-every-ms",
            "100",
            "--expire-after-s",
            "1",
            "--history-retention-s",
            retention,
        ]
    };
    let mut x = Controller::spawn_as(
        &fx,
        "ctl-x",
        &dir.join("x.sock"),
        "127.0.0.1:0",
        &jobs("3600"),
        true,
    );
    x.wait_log("leading the fleet's run-once jobs");
    // y keeps history only 2 s: once it leads, older events go.
    let mut y = Controller::spawn_as(
        &fx,
        "ctl-y",
        &dir.join("y.sock"),
        "127.0.0.1:0",
        &jobs("2"),
        true,
    );

    // An appliance of y's goes away; unseen for a second, the leader x
    // forgets it, and so does y, which held it.
    visit(&fx, &y, "tap-gone");
    x.wait_log("appliance tap-gone: registration expired");
    until("tap-gone forgotten by both controllers", || {
        !listed(&x, "tap-gone") && !listed(&y, "tap-gone")
    });
    until("the expiry in the history", || {
        has(&history(&fx), "expired", "tap-gone")
    });
    y.drain();
    assert!(
        !y.log.iter().any(|l| l.contains("leading")),
        "y led while x did:\n{}",
        y.log.join("\n")
    );

    // The leader dies: y wins the election once x's lease is gone, and
    // runs the jobs: it trims the history to its retention and expires.
    x.kill();
    y.next_log("leading the fleet's run-once jobs");
    y.wait_log("past retention deleted");
    until("tap-gone's old events trimmed", || {
        !has(&history(&fx), "connected", "tap-gone")
    });
    visit(&fx, &y, "tap-later");
    y.next_log("appliance tap-later: registration expired");
    until("tap-later forgotten", || !listed(&y, "tap-later"));
}
