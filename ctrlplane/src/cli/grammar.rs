//! The command language, in one table: parsing, `help` and tab completion
//! all come from `COMMANDS`. Commands follow testpmd where testpmd has
//! one, and add Sluice's own.

/// One element of a command pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    /// A keyword that must be typed as is.
    Kw(&'static str),
    /// One of several keywords.
    OneOf(&'static [&'static str]),
    /// Optionally one of several keywords (last in a pattern).
    Opt(&'static [&'static str]),
    /// A port id, or `all`.
    PortOrAll,
    /// A non-negative integer, named for help.
    Num(&'static str),
    /// Any one word (a file path, a destination name), named for help.
    Word(&'static str),
    /// Optionally any one word (last in a pattern).
    OptWord(&'static str),
}

/// What a parsed command says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help(Vec<String>),
    Start,
    Stop,
    Quit,
    ShowPortInfo(PortSel),
    ShowPortStats(PortSel),
    ShowPortXstats(PortSel),
    ClearPortStats(PortSel),
    ShowFwdStats,
    ClearFwdStats,
    ShowConfigFwd,
    ShowLcores,
    ShowPolicy(Option<String>),
    PolicyLoad(String),
    ShowDedup,
    ShowFlowTable,
    ShowFlows(Option<String>),
    SetDedupWindow(u64),
    ShowTunnel(Option<String>),
    ShowState,
    /// `show stream`: the data-service stream's connection and counters.
    ShowStream,
    /// `show intake`: flow telemetry taken in, per exporter and kind.
    ShowIntake,
    ShowVersion,
    ShowArp,
    TraceAdd(u32),
    ShowTrace,
    TraceClear,
    ShowGuard,
    SetGuard(String, u64),
    /// testpmd's `set link-up|link-down port N`, or by the port's name.
    SetLink {
        port: PortRef,
        up: bool,
    },
    ShowController,
    /// `show tool-group [NAME]`: a tool group or tool port, or all.
    ShowToolGroup(Option<String>),
}

/// One port, by DPDK port id or by its name in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortRef {
    Id(u16),
    Name(String),
}

impl PortRef {
    /// A number is a port id (which must fit 16 bits), anything else a name.
    fn parse(w: &str) -> Option<PortRef> {
        if w.bytes().all(|b| b.is_ascii_digit()) {
            w.parse().ok().map(PortRef::Id)
        } else {
            Some(PortRef::Name(w.to_owned()))
        }
    }
}

/// A port id or every port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortSel {
    All,
    One(u16),
}

struct Spec {
    pattern: &'static [Tok],
    help: &'static str,
    build: fn(&[String]) -> Option<Command>,
}

use Tok::*;

const PORTS: &[&str] = &["info", "stats", "xstats"];
const GUARD_LIMITS: &[&str] = &[
    "missed-pps",
    "free-mbufs-pct",
    "ring-fill-pct",
    "rss-mb",
    "calm-ms",
];

fn port_sel(s: &str) -> Option<PortSel> {
    if s == "all" {
        Some(PortSel::All)
    } else {
        s.parse().ok().map(PortSel::One)
    }
}

/// Every command: pattern, one line of help, and how to build it from the
/// values its placeholders matched.
static COMMANDS: &[Spec] = &[
    Spec {
        pattern: &[Kw("help"), OptWord("command")],
        help: "list commands, or explain the commands starting with the given words",
        build: |_| None,
    },
    Spec {
        pattern: &[Kw("start")],
        help: "start forwarding",
        build: |_| Some(Command::Start),
    },
    Spec {
        pattern: &[Kw("stop")],
        help: "stop forwarding (inputs are no longer polled)",
        build: |_| Some(Command::Stop),
    },
    Spec {
        pattern: &[Kw("quit")],
        help: "stop the appliance and exit",
        build: |_| Some(Command::Quit),
    },
    Spec {
        pattern: &[Kw("show"), Kw("port"), OneOf(PORTS), PortOrAll],
        help: "port information, counters or extended counters",
        build: |a| {
            let p = port_sel(&a[1])?;
            Some(match a[0].as_str() {
                "info" => Command::ShowPortInfo(p),
                "stats" => Command::ShowPortStats(p),
                _ => Command::ShowPortXstats(p),
            })
        },
    },
    Spec {
        pattern: &[Kw("clear"), Kw("port"), Kw("stats"), PortOrAll],
        help: "zero port counters",
        build: |a| Some(Command::ClearPortStats(port_sel(&a[0])?)),
    },
    Spec {
        pattern: &[Kw("show"), Kw("fwd"), Kw("stats"), Kw("all")],
        help: "forwarding counters per worker and in total, with the accounting identity",
        build: |_| Some(Command::ShowFwdStats),
    },
    Spec {
        pattern: &[Kw("clear"), Kw("fwd"), Kw("stats"), Kw("all")],
        help: "start forwarding counters from zero",
        build: |_| Some(Command::ClearFwdStats),
    },
    Spec {
        pattern: &[Kw("show"), Kw("config"), Kw("fwd")],
        help: "which lcore polls which port and queue",
        build: |_| Some(Command::ShowConfigFwd),
    },
    Spec {
        pattern: &[Kw("show"), Kw("lcores")],
        help: "lcores and their roles",
        build: |_| Some(Command::ShowLcores),
    },
    Spec {
        pattern: &[
            Kw("show"),
            Kw("policy"),
            Opt(&["rules", "groups", "destinations"]),
        ],
        help: "the running policy, or one part of it",
        build: |a| Some(Command::ShowPolicy(a.first().cloned())),
    },
    Spec {
        pattern: &[Kw("policy"), Kw("load"), Word("file")],
        help: "load a policy file (refused with every error if invalid)",
        build: |a| Some(Command::PolicyLoad(a[0].clone())),
    },
    Spec {
        pattern: &[Kw("show"), Kw("dedup")],
        help: "dedup window and table counters",
        build: |_| Some(Command::ShowDedup),
    },
    Spec {
        pattern: &[Kw("show"), Kw("flows"), OptWord("address")],
        help: "the 20 largest recent flows by bytes (of the last 4096 records exported), optionally those with an end at an address",
        build: |a| Some(Command::ShowFlows(a.first().cloned())),
    },
    Spec {
        pattern: &[Kw("show"), Kw("flow-table")],
        help: "flow metering: table occupancy, expiries, misses, IPFIX export counters",
        build: |_| Some(Command::ShowFlowTable),
    },
    Spec {
        pattern: &[Kw("set"), Kw("dedup"), Kw("window"), Num("microseconds")],
        help: "set the dedup window",
        build: |a| Some(Command::SetDedupWindow(a[0].parse().ok()?)),
    },
    Spec {
        pattern: &[Kw("show"), Kw("tunnel"), OptWord("destination")],
        help: "destinations: tunnel, next hop, counters",
        build: |a| Some(Command::ShowTunnel(a.first().cloned())),
    },
    Spec {
        pattern: &[Kw("show"), Kw("state")],
        help: "the appliance state (selfcheck, running, protect, stopped, exception)",
        build: |_| Some(Command::ShowState),
    },
    Spec {
        pattern: &[Kw("show"), Kw("stream")],
        help: "the data-service stream (NATS JetStream): connection, acked, buffered, overflow",
        build: |_| Some(Command::ShowStream),
    },
    Spec {
        pattern: &[Kw("show"), Kw("intake")],
        help: "sFlow/NetFlow/IPFIX taken in: datagrams, records, malformed per exporter",
        build: |_| Some(Command::ShowIntake),
    },
    Spec {
        pattern: &[Kw("show"), Kw("version")],
        help: "Sluice and DPDK versions",
        build: |_| Some(Command::ShowVersion),
    },
    Spec {
        pattern: &[Kw("show"), Kw("arp")],
        help: "each uplink's neighbour table, and who answers ARP/ND for which address",
        build: |_| Some(Command::ShowArp),
    },
    Spec {
        pattern: &[Kw("trace"), Kw("add"), Num("packets")],
        help: "record the next N packets' path through every stage",
        build: |a| Some(Command::TraceAdd(a[0].parse().ok()?)),
    },
    Spec {
        pattern: &[Kw("show"), Kw("trace")],
        help: "print the recorded packet traces",
        build: |_| Some(Command::ShowTrace),
    },
    Spec {
        pattern: &[Kw("trace"), Kw("clear")],
        help: "forget recorded traces",
        build: |_| Some(Command::TraceClear),
    },
    Spec {
        pattern: &[Kw("show"), Kw("guard")],
        help: "protect limits, what the guard sees, and how it sheds",
        build: |_| Some(Command::ShowGuard),
    },
    Spec {
        pattern: &[Kw("set"), Kw("guard"), OneOf(GUARD_LIMITS), Num("value")],
        help: "change a protect limit (rss-mb 0: no memory limit)",
        build: |a| Some(Command::SetGuard(a[0].clone(), a[1].parse().ok()?)),
    },
    Spec {
        pattern: &[
            Kw("set"),
            OneOf(&["link-up", "link-down"]),
            Kw("port"),
            Word("port"),
        ],
        help: "take a port's link up or down, as testpmd does (a tool port's groups fail over)",
        build: |a| {
            Some(Command::SetLink {
                port: PortRef::parse(&a[1])?,
                up: a[0] == "link-up",
            })
        },
    },
    Spec {
        pattern: &[
            Kw("set"),
            OneOf(&["link-up", "link-down"]),
            Word("port name"),
        ],
        help: "the same, by the port's name",
        build: |a| {
            Some(Command::SetLink {
                port: PortRef::parse(&a[1]).filter(|p| *p != PortRef::Name("port".into()))?,
                up: a[0] == "link-up",
            })
        },
    },
    Spec {
        pattern: &[Kw("show"), Kw("tool-group"), OptWord("name")],
        help: "tool groups and tool ports: members, weight, link, share of flows, counters",
        build: |a| Some(Command::ShowToolGroup(a.first().cloned())),
    },
    Spec {
        pattern: &[Kw("show"), Kw("controller")],
        help: "the controller session: up or down, attempts, the persisted policy",
        build: |_| Some(Command::ShowController),
    },
];

fn tok_usage(t: &Tok) -> String {
    match t {
        Kw(k) => (*k).to_owned(),
        OneOf(ks) => ks.join("|"),
        Opt(ks) => format!("[{}]", ks.join("|")),
        PortOrAll => "<port>|all".to_owned(),
        Num(n) => format!("<{n}>"),
        Word(n) => format!("<{n}>"),
        OptWord(n) => format!("[<{n}>]"),
    }
}

fn usage(s: &Spec) -> String {
    s.pattern
        .iter()
        .map(tok_usage)
        .collect::<Vec<_>>()
        .join(" ")
}

/// How well `words` fit `spec`: `Ok(values)` for a full match, else how
/// many words matched before the mismatch and what was expected there.
fn try_match(spec: &Spec, words: &[&str]) -> Result<Vec<String>, (usize, String)> {
    let mut vals = Vec::new();
    let mut i = 0;
    for t in spec.pattern {
        let w = words.get(i).copied();
        match (t, w) {
            (Kw(k), Some(w)) if w == *k => {}
            (OneOf(ks), Some(w)) if ks.contains(&w) => vals.push(w.to_owned()),
            (Opt(ks), Some(w)) if ks.contains(&w) => vals.push(w.to_owned()),
            (Opt(_), None) | (OptWord(_), None) => {
                continue;
            }
            (PortOrAll, Some(w)) if w == "all" || w.parse::<u16>().is_ok() => {
                vals.push(w.to_owned())
            }
            (Num(_), Some(w)) if w.parse::<u64>().is_ok() => vals.push(w.to_owned()),
            (Word(_), Some(w)) | (OptWord(_), Some(w)) => vals.push(w.to_owned()),
            (t, _) => return Err((i, tok_usage(t))),
        }
        i += 1;
    }
    if i < words.len() {
        return Err((i, "end of command".to_owned()));
    }
    Ok(vals)
}

/// A command that could not be understood: one line saying what was wrong
/// and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses one command line. Empty lines and `#` comments are `Ok(None)`.
pub fn parse(line: &str) -> Result<Option<Command>, ParseError> {
    let line = line.split('#').next().unwrap_or("").trim();
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.is_empty() {
        return Ok(None);
    }
    if words[0] == "help" {
        return Ok(Some(Command::Help(
            words[1..].iter().map(|w| w.to_string()).collect(),
        )));
    }
    let mut best: Option<(usize, String, &Spec)> = None;
    for spec in COMMANDS {
        match try_match(spec, &words) {
            Ok(vals) => {
                return (spec.build)(&vals).map(Some).ok_or_else(|| {
                    ParseError(format!(
                        "bad argument in \"{line}\"; usage: {}",
                        usage(spec)
                    ))
                });
            }
            Err((n, want)) => {
                if best.as_ref().is_none_or(|(b, _, _)| n > *b) {
                    best = Some((n, want, spec));
                }
            }
        }
    }
    match best {
        Some((n, want, spec)) if n > 0 => {
            let got = words
                .get(n)
                .map_or("nothing".to_owned(), |w| format!("\"{w}\""));
            Err(ParseError(format!(
                "bad command \"{line}\": expected {want} where {got} is; usage: {}",
                usage(spec)
            )))
        }
        _ => Err(ParseError(format!(
            "unknown command \"{}\"; type help for the list of commands",
            words[0]
        ))),
    }
}

/// `help` or `help <words>`: usage and one line per command.
pub fn help(prefix: &[String]) -> String {
    let mut out = String::new();
    for s in COMMANDS {
        let u = usage(s);
        let words: Vec<&str> = u.split_whitespace().collect();
        if prefix.iter().zip(&words).all(|(p, w)| p == w) && prefix.len() <= words.len() {
            out.push_str(&format!("  {u:<42} {}\n", s.help));
        }
    }
    if out.is_empty() {
        out = format!(
            "no command starts with \"{}\"; type help for the list\n",
            prefix.join(" ")
        );
    }
    out
}

/// Words that may come next after `line` (completion). `ports` are the
/// port ids to offer where a port is expected.
pub fn complete(line: &str, ports: &[u16]) -> Vec<String> {
    let ends_with_space = line.is_empty() || line.ends_with(' ');
    let mut words: Vec<&str> = line.split_whitespace().collect();
    let partial = if ends_with_space {
        ""
    } else {
        words.pop().unwrap_or("")
    };
    let mut out: Vec<String> = Vec::new();
    for s in COMMANDS {
        // Follow the pattern along the complete words.
        let mut ok = true;
        let mut k = 0;
        for w in &words {
            match s.pattern.get(k) {
                Some(Kw(kw)) if w == kw => {}
                Some(OneOf(ks)) | Some(Opt(ks)) if ks.contains(w) => {}
                Some(PortOrAll) if *w == "all" || w.parse::<u16>().is_ok() => {}
                Some(Num(_)) if w.parse::<u64>().is_ok() => {}
                Some(Word(_)) | Some(OptWord(_)) => {}
                _ => {
                    ok = false;
                    break;
                }
            }
            k += 1;
        }
        if !ok {
            continue;
        }
        let cands: Vec<String> = match s.pattern.get(k) {
            Some(Kw(kw)) => vec![(*kw).to_owned()],
            Some(OneOf(ks)) | Some(Opt(ks)) => ks.iter().map(|k| (*k).to_owned()).collect(),
            Some(PortOrAll) => std::iter::once("all".to_owned())
                .chain(ports.iter().map(|p| p.to_string()))
                .collect(),
            _ => Vec::new(),
        };
        for c in cands {
            if c.starts_with(partial) && !out.contains(&c) {
                out.push(c);
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn testpmd_commands_parse() {
        assert_eq!(
            parse("show port stats all"),
            Ok(Some(Command::ShowPortStats(PortSel::All)))
        );
        assert_eq!(
            parse("show port info 1"),
            Ok(Some(Command::ShowPortInfo(PortSel::One(1))))
        );
        assert_eq!(
            parse("  clear port stats 0  "),
            Ok(Some(Command::ClearPortStats(PortSel::One(0))))
        );
        assert_eq!(parse("show fwd stats all"), Ok(Some(Command::ShowFwdStats)));
        assert_eq!(parse("show policy"), Ok(Some(Command::ShowPolicy(None))));
        assert_eq!(
            parse("show policy rules"),
            Ok(Some(Command::ShowPolicy(Some("rules".into()))))
        );
        assert_eq!(parse("trace add 5"), Ok(Some(Command::TraceAdd(5))));
        assert_eq!(
            parse("set dedup window 20000"),
            Ok(Some(Command::SetDedupWindow(20000)))
        );
        assert_eq!(
            parse("show tunnel noc"),
            Ok(Some(Command::ShowTunnel(Some("noc".into()))))
        );
        assert_eq!(
            parse("set link-down port 1"),
            Ok(Some(Command::SetLink {
                port: PortRef::Id(1),
                up: false
            }))
        );
        assert_eq!(
            parse("set link-up port 0"),
            Ok(Some(Command::SetLink {
                port: PortRef::Id(0),
                up: true
            }))
        );
        for line in ["set link-down port ids2", "set link-down ids2"] {
            assert_eq!(
                parse(line),
                Ok(Some(Command::SetLink {
                    port: PortRef::Name("ids2".into()),
                    up: false
                })),
                "{line}"
            );
        }
        assert!(parse("set link-down port").is_err());
        assert_eq!(
            parse("show tool-group ids-farm"),
            Ok(Some(Command::ShowToolGroup(Some("ids-farm".into()))))
        );
        assert_eq!(
            parse("show tool-group"),
            Ok(Some(Command::ShowToolGroup(None)))
        );
        assert!(
            parse("set link-up port 70000").is_err(),
            "a port id is 16 bits"
        );
        assert_eq!(parse("show controller"), Ok(Some(Command::ShowController)));
        assert_eq!(parse("# a comment"), Ok(None));
        assert_eq!(parse(""), Ok(None));
    }

    #[test]
    fn errors_say_what_was_wrong_and_what_is_accepted() {
        let e = parse("show port stats eleven").expect_err("bad port").0;
        assert!(e.contains("expected <port>|all where \"eleven\" is"), "{e}");
        let e = parse("frobnicate now").expect_err("unknown").0;
        assert!(e.contains("unknown command \"frobnicate\""), "{e}");
        let e = parse("trace add").expect_err("missing").0;
        assert!(e.contains("expected <packets> where nothing is"), "{e}");
        let e = parse("show port stats 70000")
            .expect_err("port out of u16")
            .0;
        assert!(e.contains("70000"), "{e}");
        let e = parse("start now").expect_err("extra word").0;
        assert!(e.contains("end of command"), "{e}");
    }

    #[test]
    fn help_is_generated_from_the_table() {
        let h = help(&[]);
        assert!(
            h.contains("show port stats|") || h.contains("show port info|stats|xstats <port>|all"),
            "{h}"
        );
        assert!(h.contains("trace add <packets>"));
        let h = help(&["trace".into()]);
        assert!(h.contains("trace add") && !h.contains("show port"), "{h}");
        assert!(help(&["nope".into()]).contains("no command starts with"));
    }

    #[test]
    fn completion_offers_the_right_words() {
        assert_eq!(complete("sh", &[]), vec!["show"]);
        let c = complete("show ", &[]);
        for w in [
            "port", "fwd", "policy", "dedup", "tunnel", "state", "trace", "arp", "version",
            "lcores", "config",
        ] {
            assert!(c.contains(&w.to_owned()), "{w} missing from {c:?}");
        }
        assert_eq!(complete("show port ", &[]), vec!["info", "stats", "xstats"]);
        assert_eq!(complete("show port stats ", &[0, 1]), vec!["0", "1", "all"]);
        assert_eq!(complete("show policy r", &[]), vec!["rules"]);
        assert_eq!(complete("tr", &[]), vec!["trace"]);
        assert!(complete("show port stats all ", &[0]).is_empty());
    }
}
