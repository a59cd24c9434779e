//! `sluice-controller top`: the fleet's top talkers, from the flow records
//! every appliance publishes on the data-service stream (NATS subjects
//! `<prefix>.<appliance>.flows`, docs/STREAM.md). It subscribes for a
//! while, adds up bytes and packets per pair of hosts over every appliance
//! (both directions of a record, each multiplied by the record's sampling
//! rate), and prints the largest.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde_json::Value;

/// One pair of hosts, the lower address first.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pair(pub String, pub String);

/// What the fleet saw of one pair.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Talk {
    pub bytes: u64,
    pub packets: u64,
    pub records: u64,
    /// The appliances that reported it.
    pub appliances: BTreeSet<String>,
}

/// The running sums.
#[derive(Debug, Default)]
pub struct Talkers {
    pairs: HashMap<Pair, Talk>,
    /// Messages that were not flow records (counted, skipped).
    pub skipped: u64,
}

fn num(v: &Value, a: &str, b: &str) -> u64 {
    v[a][b].as_u64().unwrap_or(0)
}

impl Talkers {
    /// Adds one message's JSON body; false (and counted) when it is not a
    /// flow record.
    pub fn add(&mut self, body: &[u8]) -> bool {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            self.skipped += 1;
            return false;
        };
        let (Some(a), Some(b)) = (
            v["key"]["initiator"].as_str(),
            v["key"]["responder"].as_str(),
        ) else {
            self.skipped += 1;
            return false;
        };
        let rate = v["origin"]["sampling_rate"].as_u64().unwrap_or(1).max(1);
        let pair = if a <= b {
            Pair(a.to_owned(), b.to_owned())
        } else {
            Pair(b.to_owned(), a.to_owned())
        };
        let t = self.pairs.entry(pair).or_default();
        t.bytes += (num(&v, "forward", "bytes") + num(&v, "reverse", "bytes")) * rate;
        t.packets += (num(&v, "forward", "packets") + num(&v, "reverse", "packets")) * rate;
        t.records += 1;
        if let Some(n) = v["appliance"].as_str() {
            t.appliances.insert(n.to_owned());
        }
        true
    }

    /// The `n` pairs with the most bytes, most first (ties by pair).
    pub fn top(&self, n: usize) -> Vec<(&Pair, &Talk)> {
        let mut v: Vec<_> = self.pairs.iter().collect();
        v.sort_by(|x, y| y.1.bytes.cmp(&x.1.bytes).then_with(|| x.0.cmp(y.0)));
        v.truncate(n);
        v
    }

    /// The table `top` prints.
    pub fn render(&self, n: usize) -> String {
        let mut out = format!(
            "{:<40} {:<40} {:>14} {:>12} {:>8}  appliances\n",
            "host", "host", "bytes", "packets", "records"
        );
        for (p, t) in self.top(n) {
            out.push_str(&format!(
                "{:<40} {:<40} {:>14} {:>12} {:>8}  {}\n",
                p.0,
                p.1,
                t.bytes,
                t.packets,
                t.records,
                t.appliances.iter().cloned().collect::<Vec<_>>().join(",")
            ));
        }
        out
    }
}

/// Subscribes to `subject` on the NATS server at `url` for `window`, or
/// until `limit` records (when not 0), and returns the sums.
pub async fn collect(
    url: &str,
    subject: &str,
    window: Duration,
    limit: u64,
) -> Result<Talkers, String> {
    use futures::StreamExt;
    let client = async_nats::connect(url)
        .await
        .map_err(|e| format!("NATS server {url}: {e}"))?;
    let mut sub = client
        .subscribe(subject.to_owned())
        .await
        .map_err(|e| format!("subscribe to {subject}: {e}"))?;
    // The subscription is registered once the server has seen a flush.
    client
        .flush()
        .await
        .map_err(|e| format!("NATS server {url}: {e}"))?;
    eprintln!("sluice-controller: top: subscribed to {subject}");
    let mut talkers = Talkers::default();
    let deadline = tokio::time::Instant::now() + window;
    let mut seen = 0;
    while limit == 0 || seen < limit {
        match tokio::time::timeout_at(deadline, sub.next()).await {
            Ok(Some(m)) => {
                if talkers.add(&m.payload) {
                    seen += 1;
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    Ok(talkers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(appliance: &str, a: &str, b: &str, fwd: u64, rev: u64, rate: Option<u64>) -> Vec<u8> {
        let origin = rate.map_or(Value::Null, |r| serde_json::json!({"sampling_rate": r}));
        serde_json::json!({
            "appliance": appliance,
            "key": {"initiator": a, "responder": b},
            "forward": {"packets": 1, "bytes": fwd},
            "reverse": {"packets": 1, "bytes": rev},
            "origin": origin,
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn pairs_add_up_over_appliances_directions_and_sampling() {
        let mut t = Talkers::default();
        assert!(t.add(&record("a", "10.0.0.1", "10.0.0.2", 100, 50, None)));
        assert!(t.add(&record("b", "10.0.0.2", "10.0.0.1", 10, 0, Some(10))));
        assert!(t.add(&record("a", "10.0.0.3", "10.0.0.4", 1000, 0, None)));
        assert!(!t.add(b"{\"event\": \"state_changed\"}"));
        assert!(!t.add(b"not json"));
        assert_eq!(t.skipped, 2);
        let top = t.top(5);
        assert_eq!(top[0].0, &Pair("10.0.0.3".into(), "10.0.0.4".into()));
        let (p, x) = top[1];
        assert_eq!(p, &Pair("10.0.0.1".into(), "10.0.0.2".into()));
        assert_eq!((x.bytes, x.packets, x.records), (250, 22, 2));
        assert_eq!(x.appliances.len(), 2);
        assert_eq!(t.top(1).len(), 1);
        assert!(t.render(2).contains("10.0.0.4"));
    }
}
