//! tshark as the independent judge: a frame is what tshark says it is.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The tshark binary. A missing tshark fails the test: skipping would let a
/// broken encoder pass unjudged.
pub fn tshark() -> &'static str {
    static RUNS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *RUNS.get_or_init(|| {
        Command::new("tshark")
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    assert!(
        ok,
        "tshark is not installed or does not run: it judges every emitted format; run `make setup`"
    );
    "tshark"
}

/// tshark's fields for every frame of `pcap`, tab-separated, one Vec per
/// frame; `filter` is a display filter ("" for every frame).
pub fn tshark_fields(pcap: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    tshark_fields_with(pcap, &[], filter, fields)
}

/// [`tshark_fields`] with more tshark options (`-d` decode-as rules...).
pub fn tshark_fields_with(
    pcap: &Path,
    opts: &[&str],
    filter: &str,
    fields: &[&str],
) -> Vec<Vec<String>> {
    let mut cmd = Command::new(tshark());
    cmd.arg("-r").arg(pcap).args(opts).args([
        "-T",
        "fields",
        "-E",
        "separator=\t",
        "-E",
        "occurrence=a",
    ]);
    if !filter.is_empty() {
        cmd.args(["-Y", filter]);
    }
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// Frames of `pcap` that match display filter `filter`.
pub fn tshark_count(pcap: &Path, filter: &str) -> usize {
    tshark_fields(pcap, filter, &["frame.number"]).len()
}

/// tshark's dissection of every packet of `path` as JSON `layers` objects,
/// duplicate keys merged into arrays (`--no-duplicate-keys`) so nested
/// layers are all there, with raw bytes and offsets (`-x`).
pub fn tshark_json(path: &Path, extra: &[&str]) -> Vec<Value> {
    let out = Command::new(tshark())
        .args(["-n", "-r"])
        .arg(path)
        .args(["-T", "json", "-x", "--no-duplicate-keys"])
        .args(extra)
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("tshark JSON");
    v.as_array()
        .expect("tshark JSON is an array")
        .iter()
        .map(|p| p["_source"]["layers"].clone())
        .collect()
}

/// The values of field `name` anywhere in a layers object (nested layers
/// and subtrees included), in document order.
pub fn field_values(v: &Value, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    collect(v, name, &mut out);
    out
}

fn collect(v: &Value, name: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == name {
                    push_leaves(x, out);
                } else {
                    collect(x, name, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect(x, name, out)),
        _ => {}
    }
}

fn push_leaves(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| push_leaves(x, out)),
        Value::Object(_) => {}
        other => out.push(other.to_string()),
    }
}

/// The one value of a field; panics naming the field if it is not there
/// exactly once.
pub fn field(v: &Value, name: &str) -> String {
    let all = field_values(v, name);
    assert_eq!(all.len(), 1, "field {name}: {all:?}");
    all[0].clone()
}

/// `(offset, length)` of each occurrence of protocol `proto` from its
/// `<proto>_raw` entry.
pub fn raw_positions(layers: &Value, proto: &str) -> Vec<(usize, usize)> {
    let key = format!("{proto}_raw");
    let mut out = Vec::new();
    let one = |x: &Value| -> Option<(usize, usize)> {
        let a = x.as_array()?;
        Some((a.get(1)?.as_u64()? as usize, a.get(2)?.as_u64()? as usize))
    };
    if let Some(v) = layers.get(&key) {
        match v.as_array() {
            Some(a) if a.first().is_some_and(Value::is_array) => {
                out.extend(a.iter().filter_map(one));
            }
            _ => out.extend(one(v)),
        }
    }
    out
}

/// tshark's notes that the capture cut the packet short (snaplen).
pub fn tshark_short(layers: &Value) -> Vec<String> {
    field_values(layers, "_ws.short")
}

/// The top-level occurrences of a protocol layer, outermost first (with
/// `--no-duplicate-keys` a repeated layer is an array).
pub fn occurrences<'a>(layers: &'a Value, proto: &str) -> Vec<&'a Value> {
    match layers.get(proto) {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v) => vec![v],
        None => Vec::new(),
    }
}

/// `frame.protocols` split on ':'.
pub fn protocols(layers: &Value) -> Vec<String> {
    field(layers, "frame.protocols")
        .split(':')
        .map(str::to_string)
        .collect()
}

/// Expert messages tshark attached to a packet at severity error, and
/// whether it marked the packet malformed.
pub fn tshark_errors(layers: &Value) -> Vec<String> {
    let mut out = field_values(layers, "_ws.malformed");
    let sev = field_values(layers, "_ws.expert.severity");
    let msg = field_values(layers, "_ws.expert.message");
    for (i, s) in sev.iter().enumerate() {
        // Severity codes: 0x00800000 is error (0x00600000 warning).
        if s == "8388608" {
            out.push(msg.get(i).cloned().unwrap_or_default());
        }
    }
    out
}
