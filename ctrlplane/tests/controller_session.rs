//! The controller session end to end: the real `sluice-controller`
//! process, real TLS 1.3 with certificates made here, and the appliance's
//! agent driven by a stand-in for the appliance main loop.

mod controller_support;

use controller_support::*;
use ctrlplane::agent::{self, AgentEvent, AgentReply, CommandKind};

#[test]
fn an_appliance_gets_its_policy_applies_it_and_the_ack_is_recorded() {
    let fx = Fixture::new("ack");
    fx.write_policy("web", &good_policy("one"));
    fx.write_assign("[appliance]\ntap-01 = \"web\"\n");
    let mut ctl = fx.controller();
    let cfg = fx.agent_config(&ctl, "tap-01");
    let persist = cfg.persist.clone().unwrap();
    let app = Appliance::spawn(cfg);

    assert_eq!(app.wait_connected().as_deref(), Some("web"));
    let (v1, name, text) = app.wait_policy();
    assert_eq!(name, "web");
    assert!(v1.starts_with("web@"), "{v1}");
    assert!(app.apply(&v1, &text));
    ctl.wait_log(&format!("appliance tap-01 acked policy {v1}"));

    // Heartbeats reach the controller with state and counters.
    app.heartbeat("running", 42);
    ctl.wait_log("appliance tap-01: heartbeats flowing, state running");
    let v = ctl.show("tap-01");
    assert!(v.connected && v.in_sync && v.nack.is_none(), "{v:?}");
    assert_eq!(v.acked.as_deref(), Some(v1.as_str()));
    assert_eq!(v.state, "running");
    let hb = v.heartbeat.expect("heartbeat");
    assert_eq!(hb.counters.rx, 42);
    assert_eq!(hb.policy_version.as_deref(), Some(v1.as_str()));
    assert_eq!(hb.agent.sessions, 1);
    assert_eq!(hb.agent.persist_writes, 1);
    assert_eq!(v.ports[0].name, "tap0");

    // The acked policy is persisted, whole.
    assert_eq!(agent::load_persisted(&persist), Some((v1.clone(), text)));

    // A changed file, pushed by the operator: the new version arrives and is acked.
    fx.write_policy("web", &good_policy("two"));
    let out = fx.import();
    assert!(out.contains("\"web\""), "{out}");
    ctl.next_log("pushed to 1 appliance(s)");
    let (v2, _, text2) = app.wait_policy();
    assert_ne!(v1, v2);
    assert!(app.apply(&v2, &text2));
    ctl.wait_log(&format!("appliance tap-01 acked policy {v2}"));
    assert_eq!(agent::load_persisted(&persist), Some((v2.clone(), text2)));

    // The operator's list shows it.
    let list = ctl.cli(&["list"]);
    let row = list.lines().find(|l| l.starts_with("tap-01")).expect(&list);
    assert!(
        row.contains("running") && row.contains(&v2) && row.contains("yes"),
        "{row}"
    );
    assert!(ctl.is_running());
}

#[test]
fn a_policy_with_errors_is_nacked_with_every_error_recorded() {
    let fx = Fixture::new("nack");
    fx.write_policy("broken", BAD_POLICY);
    fx.write_assign("default = \"broken\"\n");
    let mut ctl = fx.controller();
    let app = Appliance::spawn(fx.agent_config(&ctl, "tap-02"));

    let (v, ok) = app.take_policy();
    assert!(!ok);
    let line = ctl.wait_log(&format!("appliance tap-02 nacked policy {v}: 2 error(s)"));
    assert!(
        line.contains("group[0].cidrs[0]") && line.contains("rule[0]"),
        "{line}"
    );
    let view = ctl.show("tap-02");
    let nack = view.nack.expect("nack recorded");
    assert_eq!(nack.version, v);
    assert_eq!(nack.errors.len(), 2, "{:?}", nack.errors);
    assert!(nack
        .errors
        .iter()
        .any(|e| e.starts_with("group[0].cidrs[0]:")));
    assert!(
        nack.errors.iter().any(|e| e.starts_with("rule[0].to[0]:")),
        "{:?}",
        nack.errors
    );
    assert!(!view.in_sync);
    assert_eq!(view.acked, None);
    let list = ctl.cli(&["list"]);
    assert!(
        list.contains("NACK") && list.contains("group[0].cidrs[0]"),
        "{list}"
    );

    // Fixed: pushed, acked, the nack is cleared.
    fx.write_policy("broken", &good_policy("fixed"));
    fx.import();
    let (v2, ok) = app.take_policy();
    assert!(ok);
    ctl.wait_log(&format!("appliance tap-02 acked policy {v2}"));
    let view = ctl.show("tap-02");
    assert!(view.nack.is_none() && view.in_sync, "{view:?}");
}

#[test]
fn a_policy_that_does_not_parse_is_refused_at_import_and_never_pushed() {
    let fx = Fixture::new("unparsable");
    fx.write_policy("web", "[[rule]\nname = ");
    fx.write_assign("default = \"web\"\n");
    let out = fx.fleet_cli(&["import", fx.policies.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("web.toml") && err.contains("not imported"),
        "{err}"
    );
    let mut ctl = fx.controller();
    let policies = ctl.cli(&["policies"]);
    assert!(
        !policies.lines().any(|l| l.starts_with("web")),
        "{policies}"
    );

    let app = Appliance::spawn(fx.agent_config(&ctl, "tap-03"));
    app.wait_connected();
    let line = ctl.wait_log("appliance tap-03 connected");
    assert!(
        line.contains("policy web has no servable version"),
        "{line}"
    );
    let v = ctl.show("tap-03");
    assert_eq!((v.pushed, v.desired), (None, None));

    // Fixed: the first policy the appliance ever sees is the good one.
    fx.write_policy("web", &good_policy("ok"));
    fx.import();
    let (v, _, text) = app.wait_policy();
    assert!(text.contains("version = \"ok\""), "{text}");
    assert!(app.apply(&v, &text));
    ctl.wait_log(&format!("appliance tap-03 acked policy {v}"));

    // Broken again: refused, and the good version stays what is served.
    fx.write_policy("web", "not toml at all [");
    let out = fx.fleet_cli(&["import", fx.policies.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("keeps their previous version"),
        "{err}"
    );
    assert_eq!(ctl.show("tap-03").desired.as_deref(), Some(v.as_str()));
}

#[test]
fn policies_are_assigned_by_name_then_label_then_default_and_pushed_where_they_changed() {
    let fx = Fixture::new("assign");
    fx.write_policy("base", &good_policy("base"));
    fx.write_policy("web", &good_policy("web"));
    fx.write_policy("paris", &good_policy("paris"));
    fx.write_assign(
        "default = \"base\"\n[appliance]\nby-name = \"web\"\n[[label]]\nmatch = { site = \"par\" }\npolicy = \"paris\"\n",
    );
    let mut ctl = fx.controller();
    let by_name = Appliance::spawn(fx.agent_config(&ctl, "by-name"));
    let mut cfg = fx.agent_config(&ctl, "by-label");
    cfg.labels.insert("site".into(), "par".into());
    let by_label = Appliance::spawn(cfg);
    let other = Appliance::spawn(fx.agent_config(&ctl, "other"));

    for (app, name, want) in [
        (&by_name, "by-name", "web"),
        (&by_label, "by-label", "paris"),
        (&other, "other", "base"),
    ] {
        let (v, got, text) = app.wait_policy();
        assert_eq!(got, want, "{name}");
        assert!(app.apply(&v, &text));
        ctl.wait_log(&format!("appliance {name} acked policy {v}"));
    }
    assert_eq!(
        ctl.show("by-label").labels.get("site").map(String::as_str),
        Some("par")
    );

    // Only the appliances running `paris` get its new version.
    fx.write_policy("paris", &good_policy("paris-2"));
    fx.import();
    ctl.next_log("pushed to 1 appliance(s)");
    let (v, name, text) = by_label.wait_policy();
    assert_eq!(name, "paris");
    assert!(by_label.apply(&v, &text));
    ctl.wait_log(&format!("appliance by-label acked policy {v}"));
    let summary = ctl.cli(&["summary"]);
    assert!(
        summary.contains("\"connected\": 3") && summary.contains("\"in_sync\": 3"),
        "{summary}"
    );

    // Reassigned: `other` moves to web.
    fx.write_assign(
        "default = \"base\"\n[appliance]\nby-name = \"web\"\nother = \"web\"\n[[label]]\nmatch = { site = \"par\" }\npolicy = \"paris\"\n",
    );
    let out = fx.import();
    assert!(out.contains("\"assignments_changed\": true"), "{out}");
    ctl.next_log("pushed to 1 appliance(s)");
    let (_, name, _) = other.wait_policy();
    assert_eq!(name, "web");
}

#[test]
fn operator_commands_reach_the_appliance_and_results_come_back() {
    let fx = Fixture::new("commands");
    let mut ctl = fx.controller();
    let a = Appliance::spawn(fx.agent_config(&ctl, "tap-04"));
    let b = Appliance::spawn(fx.agent_config(&ctl, "tap-05"));
    a.wait_connected();
    b.wait_connected();
    ctl.wait_log("appliance tap-04 connected");
    ctl.wait_log("appliance tap-05 connected");

    let out = ctl.cli(&["command", "tap-04", "stop"]);
    assert!(out.contains("stop sent to 1"), "{out}");
    let AgentEvent::Command(cmd) = a.wait_event("command", |e| matches!(e, AgentEvent::Command(_)))
    else {
        unreachable!()
    };
    assert_eq!(cmd.kind, CommandKind::Stop);
    a.handle
        .replies
        .send(AgentReply::CommandDone {
            id: cmd.id,
            ok: true,
            message: "forwarding stopped".into(),
        })
        .unwrap();
    ctl.wait_log(&format!(
        "appliance tap-04 command {} stop: done: forwarding stopped",
        cmd.id
    ));
    let v = ctl.show("tap-04");
    assert_eq!(v.commands.last().map(|c| c.ok), Some(Some(true)));

    // --all: both get it; a failure is recorded as such.
    ctl.cli(&["command", "--all", "reload"]);
    let mut reload_04 = 0;
    for (app, name, ok) in [(&a, "tap-04", true), (&b, "tap-05", false)] {
        let AgentEvent::Command(c) =
            app.wait_event("command", |e| matches!(e, AgentEvent::Command(_)))
        else {
            unreachable!()
        };
        assert_eq!(c.kind, CommandKind::Reload);
        if name == "tap-04" {
            reload_04 = c.id;
        }
        app.handle
            .replies
            .send(AgentReply::CommandDone {
                id: c.id,
                ok,
                message: String::new(),
            })
            .unwrap();
        let verdict = if ok { "done" } else { "failed" };
        ctl.wait_log(&format!(
            "appliance {name} command {} reload: {verdict}",
            c.id
        ));
    }

    // Unknown appliance: the operator is told.
    let out = std::process::Command::new(controller_bin())
        .arg("--admin")
        .arg(ctl.admin_path())
        .args(["command", "nobody", "start"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no appliance \"nobody\""));

    // The fleet's history holds every command, who sent it, and its
    // result, in order (written through the controller's queue: polled
    // until there).
    let want = vec![
        format!("command {} stop", cmd.id),
        format!("result {} ok forwarding stopped", cmd.id),
        format!("command {reload_04} reload"),
        format!("result {reload_04} ok "),
    ];
    let mut got = Vec::new();
    for _ in 0..600 {
        let out = fx.fleet_cli(&["history", "--appliance", "tap-04", "--json"]);
        assert!(out.status.success());
        got = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|e| match e["kind"].as_str()? {
                // Who sent it: the operator's user name.
                "command" if !e["by"].as_str()?.is_empty() => {
                    Some(format!("command {} {}", e["id"], e["command"].as_str()?))
                }
                "command_result" => Some(format!(
                    "result {} {} {}",
                    e["id"],
                    if e["ok"] == true { "ok" } else { "failed" },
                    e["message"].as_str()?
                )),
                _ => None,
            })
            .collect();
        if got == want {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(got, want);
}

#[test]
fn a_killed_controller_is_reconnected_to_and_the_appliance_resyncs() {
    let fx = Fixture::new("restart");
    fx.write_policy("web", &good_policy("one"));
    fx.write_assign("default = \"web\"\n");
    let mut ctl = fx.controller();
    let addr = ctl.addr.clone();
    let app = Appliance::spawn(fx.agent_config(&ctl, "tap-06"));
    let (v1, ok) = app.take_policy();
    assert!(ok);
    ctl.wait_log(&format!("appliance tap-06 acked policy {v1}"));

    // Killed, restarted with nothing changed: back in sync without a push.
    ctl.kill();
    let reason = app.wait_disconnected();
    assert!(!reason.is_empty());
    let mut ctl = Controller::spawn(&fx, &addr);
    app.wait_connected();
    let line = ctl.wait_log("appliance tap-06 connected");
    assert!(line.contains(&format!("runs {v1}: in sync")), "{line}");
    assert!(ctl.show("tap-06").in_sync);

    // Killed, the policy changes meanwhile, restarted: the new one is pushed.
    ctl.kill();
    app.wait_disconnected();
    fx.write_policy("web", &good_policy("two"));
    let mut ctl = Controller::spawn(&fx, &addr);
    app.wait_connected();
    let (v2, ok) = app.take_policy();
    assert!(ok && v2 != v1);
    let line = ctl.wait_log("appliance tap-06 connected");
    assert!(line.contains(&format!("runs {v1}: pushing {v2}")), "{line}");
    ctl.wait_log(&format!("appliance tap-06 acked policy {v2}"));
    assert!(app.handle.status.counters().sessions >= 3);
}

#[test]
fn the_last_acked_policy_survives_a_restart_and_a_failed_write_is_counted_not_fatal() {
    let fx = Fixture::new("persist");
    fx.write_policy("web", &good_policy("kept"));
    fx.write_assign("default = \"web\"\n");
    let mut ctl = fx.controller();
    let cfg = fx.agent_config(&ctl, "tap-07");
    let persist = cfg.persist.clone().unwrap();
    let app = Appliance::spawn(cfg.clone());
    let (v, ok) = app.take_policy();
    assert!(ok);
    ctl.wait_log(&format!("appliance tap-07 acked policy {v}"));
    drop(app);
    ctl.kill();

    // Restart with the controller unreachable: the persisted policy is
    // there to run, valid, and the agent keeps trying in the background.
    let (pv, text) = agent::load_persisted(&persist).expect("persisted");
    assert_eq!(pv, v);
    let ctx = ctrlplane::policy::Context {
        ports: vec![("tap0".into(), 0)],
        ..ctrlplane::policy::Context::default()
    };
    let (policy, _) = ctrlplane::policy::load_text(&text, &pv, &ctx).expect("valid");
    assert_eq!(policy.version, "kept");
    let mut restarted = cfg.clone();
    restarted.policy_version = Some(pv.clone());
    let app = Appliance::spawn(restarted);
    let r1 = app.wait_disconnected();
    let r2 = app.wait_disconnected();
    assert!(
        r1.contains("connect") && r2.contains("connect"),
        "{r1} / {r2}"
    );

    // The controller comes back: the appliance says what it runs; no push.
    let mut ctl = Controller::spawn(&fx, &cfg.addresses[0]);
    app.wait_connected();
    let line = ctl.wait_log("appliance tap-07 connected");
    assert!(line.contains(&format!("runs {v}: in sync")), "{line}");
    drop(app);

    // A persist path that cannot be written (its parent is a file): the
    // ack still goes out, the failure is counted, the session lives on.
    let blocker = fx.dir.path().join("blocker");
    std::fs::write(&blocker, b"a file").unwrap();
    let mut cfg = fx.agent_config(&ctl, "tap-08");
    cfg.persist = Some(blocker.join("last.json"));
    let app = Appliance::spawn(cfg);
    let (v, ok) = app.take_policy();
    assert!(ok);
    ctl.wait_log(&format!("appliance tap-08 acked policy {v}"));
    let c = app.handle.status.counters();
    assert_eq!((c.persist_failures, c.persist_writes), (1, 0));
    app.heartbeat("running", 1);
    ctl.wait_log("appliance tap-08: heartbeats flowing");
    let hb = ctl.show("tap-08").heartbeat.expect("heartbeat");
    assert_eq!(hb.agent.persist_failures, 1);
    assert!(app.handle.status.connected());
}

#[test]
fn replies_sent_before_the_handle_drops_still_go_out_then_the_session_ends() {
    let fx = Fixture::new("drop");
    fx.write_policy("web", &good_policy("last-words"));
    fx.write_assign("default = \"web\"\n");
    let mut ctl = fx.controller();
    let app = Appliance::spawn(fx.agent_config(&ctl, "tap-10"));
    let (v, _, text) = app.wait_policy();
    assert!(app.apply(&v, &text));
    app.heartbeat("running", 3);
    // The main loop goes away with its ack and heartbeat still queued: the
    // agent sends both, then says goodbye.
    drop(app);
    ctl.wait_log(&format!("appliance tap-10 acked policy {v}"));
    ctl.wait_log("appliance tap-10: heartbeats flowing");
    let line = ctl.wait_log("session tap-10 from");
    assert!(line.contains("closed"), "{line}");
    assert!(!ctl.show("tap-10").connected);
}
