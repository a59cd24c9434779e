//! The writes made on behalf of the sessions (registry, ownership,
//! commands, history), in the order they were queued, in transactions of
//! many: when a controller dies, a survivor takes over thousands of
//! sessions at once, each one an ownership claim, a record or two and a
//! history event. One round trip to etcd per write would make the
//! takeover as slow as etcd's commit latency times ten thousand; a
//! transaction carries up to [`BATCH_OPS`] of them.
//!
//! etcd refuses a transaction that writes one key twice, and it checks
//! every condition of a transaction (nested ones too) before it writes
//! anything. So a batch closes before a key it already writes; and a
//! record is written under the condition that this controller holds the
//! session, except right after the claim in the same batch, where the
//! condition would see the owner before the claim.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp};
use tokio::sync::mpsc;

use crate::fleet::{Keys, Lease, Link, Op};
use crate::history;
use crate::log;

/// Most writes in one transaction. etcd takes 128 operations
/// (`--max-txn-ops`), a nested transaction's counted against what its
/// parent leaves: a conditional write is one nested transaction of one
/// comparison and one operation.
pub const BATCH_OPS: usize = 100;
/// Most bytes of keys and values in one transaction, well under etcd's
/// request limit (`--max-request-bytes`, 1.5 MiB): appliance records carry
/// their last heartbeat's counters.
const BATCH_BYTES: usize = 512 * 1024;
/// Most queued writes taken at once, written in order as several batches.
const DRAIN: usize = 16 * BATCH_OPS;

/// One write, its keys chosen once: a batch that failed ambiguously, and
/// may have been done, is retried with the same keys, so no history event
/// is recorded twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Write {
    Put {
        key: String,
        value: String,
    },
    /// Only if `owner` (a session key) names this controller: another
    /// controller's record is never overwritten.
    PutIfOwner {
        owner: String,
        key: String,
        value: String,
    },
    /// This controller holds the session: `key` ← its id, under its lease
    /// as it is when the batch is sent.
    Own {
        key: String,
    },
    /// The session key `key` goes, if it still names this controller.
    Disown {
        key: String,
    },
    Delete {
        key: String,
    },
}

impl Write {
    /// The one key it writes.
    fn key(&self) -> &str {
        match self {
            Write::Put { key, .. }
            | Write::PutIfOwner { key, .. }
            | Write::Own { key }
            | Write::Disown { key }
            | Write::Delete { key } => key,
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Write::Put { key, value } => key.len() + value.len(),
            Write::PutIfOwner { owner, key, value } => owner.len() + key.len() + value.len(),
            Write::Own { key } | Write::Disown { key } | Write::Delete { key } => key.len() + 64,
        }
    }

    fn op(&self, me: &str, lease: i64) -> TxnOp {
        let owned = |owner: &str| Compare::value(owner, CompareOp::Equal, me);
        match self {
            Write::Put { key, value } => TxnOp::put(key.as_str(), value.as_str(), None),
            Write::PutIfOwner { owner, key, value } => {
                TxnOp::txn(Txn::new().when([owned(owner)]).and_then([TxnOp::put(
                    key.as_str(),
                    value.as_str(),
                    None,
                )]))
            }
            Write::Own { key } => {
                TxnOp::put(key.as_str(), me, Some(PutOptions::new().with_lease(lease)))
            }
            Write::Disown { key } => TxnOp::txn(
                Txn::new()
                    .when([owned(key)])
                    .and_then([TxnOp::delete(key.as_str(), None)]),
            ),
            Write::Delete { key } => TxnOp::delete(key.as_str(), None),
        }
    }
}

/// Writes that go to etcd in one transaction.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub writes: Vec<Write>,
    /// Every key written.
    keys: HashSet<String>,
    /// Session keys claimed (`Own`) in this batch.
    claimed: HashSet<String>,
    bytes: usize,
}

impl Batch {
    /// `w` can join: room left, its key not written yet, and, for a
    /// conditional write, its condition not on a key this batch changes
    /// (unless this batch claims it).
    fn takes(&self, w: &Write) -> bool {
        if self.writes.len() >= BATCH_OPS
            || (!self.writes.is_empty() && self.bytes + w.bytes() > BATCH_BYTES)
            || self.keys.contains(w.key())
        {
            return false;
        }
        match w {
            Write::PutIfOwner { owner, .. } => {
                !self.keys.contains(owner) || self.claimed.contains(owner)
            }
            _ => true,
        }
    }

    fn add(&mut self, w: Write) {
        let w = match w {
            // Claimed in this same transaction: the condition would read
            // the owner before the claim, and the claim makes it ours.
            Write::PutIfOwner { owner, key, value } if self.claimed.contains(&owner) => {
                Write::Put { key, value }
            }
            Write::Own { key } => {
                self.claimed.insert(key.clone());
                Write::Own { key }
            }
            w => w,
        };
        self.bytes += w.bytes();
        self.keys.insert(w.key().to_owned());
        self.writes.push(w);
    }
}

/// The write an operation makes; history events get their key here.
pub(crate) fn write_of(keys: &Keys, link: &Link, op: Op) -> Write {
    match op {
        Op::View { name, json } => Write::PutIfOwner {
            owner: keys.session(&name),
            key: keys.k(&format!("appliance/{name}")),
            value: json,
        },
        Op::Own { name } => Write::Own {
            key: keys.session(&name),
        },
        Op::Disown { name } => Write::Disown {
            key: keys.session(&name),
        },
        Op::Queue { name, id, json } => Write::Put {
            key: keys.k(&format!("command/{name}/{id:020}")),
            value: json,
        },
        Op::Delivered { name, id } => Write::Delete {
            key: keys.k(&format!("command/{name}/{id:020}")),
        },
        Op::History(e) => Write::Put {
            key: keys.k(&history::key(e.at_ms, &e.controller, link.next_seq())),
            value: serde_json::to_string(&e).unwrap_or_default(),
        },
    }
}

/// Writes in order, cut into batches etcd takes.
pub(crate) fn batches(writes: impl IntoIterator<Item = Write>) -> Vec<Batch> {
    let mut out: Vec<Batch> = Vec::new();
    for w in writes {
        match out.last_mut() {
            Some(b) if b.takes(&w) => b.add(w),
            _ => {
                let mut b = Batch::default();
                b.add(w);
                out.push(b);
            }
        }
    }
    out
}

/// Performs the queued writes in order, batch by batch; each batch is
/// retried until it is done (etcd unreachable, a member gone, a lease
/// being replaced).
pub(crate) async fn run(
    mut client: Client,
    keys: Keys,
    link: Arc<Link>,
    lease: Arc<Lease>,
    mut rx: mpsc::UnboundedReceiver<Op>,
) {
    let mut failing = false;
    let mut taken = Vec::with_capacity(DRAIN);
    while rx.recv_many(&mut taken, DRAIN).await > 0 {
        let writes = taken.drain(..).map(|op| write_of(&keys, &link, op));
        for batch in batches(writes) {
            let mut delay = Duration::from_millis(100);
            loop {
                // The lease as it is now: a retry after it was replaced
                // claims under the new one.
                let (me, lease) = (link.id.as_str(), lease.get());
                let ops: Vec<TxnOp> = batch.writes.iter().map(|w| w.op(me, lease)).collect();
                match client.txn(Txn::new().and_then(ops)).await {
                    Ok(_) => {
                        if failing {
                            log("etcd: writes go through again");
                            failing = false;
                        }
                        break;
                    }
                    Err(e) => {
                        if !failing {
                            log(format!(
                                "etcd: registry, sessions and history: {e}; retrying"
                            ));
                            failing = true;
                        }
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(2));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str) -> Op {
        Op::View {
            name: name.into(),
            json: "{}".into(),
        }
    }

    fn own(name: &str) -> Op {
        Op::Own { name: name.into() }
    }

    fn cut(ops: Vec<Op>) -> Vec<Vec<Write>> {
        let keys = Keys("/s/".into());
        let (link, _rx) = Link::new("c1".into());
        batches(ops.into_iter().map(|op| write_of(&keys, &link, op)))
            .into_iter()
            .map(|b| b.writes)
            .collect()
    }

    #[test]
    fn a_takeover_goes_in_few_transactions_in_order() {
        // What 1,000 sessions taken over queue: a claim and a record each.
        let ops: Vec<Op> = (0..1000)
            .flat_map(|i| [own(&format!("a{i}")), view(&format!("a{i}"))])
            .collect();
        let b = cut(ops);
        assert_eq!(b.len(), 2000 / BATCH_OPS);
        let flat: Vec<&Write> = b.iter().flatten().collect();
        assert_eq!(flat.len(), 2000);
        // In queue order, and each record written plainly: its claim is in
        // the same transaction, just before it.
        assert_eq!(
            flat[0],
            &Write::Own {
                key: "/s/session/a0".into()
            }
        );
        assert_eq!(
            flat[1],
            &Write::Put {
                key: "/s/appliance/a0".into(),
                value: "{}".into()
            }
        );
        assert!(flat.iter().all(|w| !matches!(w, Write::PutIfOwner { .. })));
    }

    #[test]
    fn a_key_is_written_once_per_transaction() {
        // Claimed, recorded twice (connect, then the first heartbeat),
        // released, claimed again.
        let b = cut(vec![
            own("a"),
            view("a"),
            view("a"),
            Op::Disown { name: "a".into() },
            own("a"),
        ]);
        for batch in &b {
            let mut keys: Vec<&str> = batch.iter().map(Write::key).collect();
            keys.sort_unstable();
            keys.dedup();
            assert_eq!(keys.len(), batch.len(), "{batch:?}");
        }
        assert_eq!(b.len(), 3, "{b:?}");
        // The second record is in a batch that does not claim: conditional.
        assert!(matches!(b[1][0], Write::PutIfOwner { .. }), "{b:?}");
    }

    #[test]
    fn a_record_after_a_release_waits_for_the_next_transaction() {
        let b = cut(vec![Op::Disown { name: "a".into() }, view("a")]);
        assert_eq!(b.len(), 2, "{b:?}");
        assert!(matches!(b[1][0], Write::PutIfOwner { .. }));
    }

    #[test]
    fn big_records_split_by_bytes() {
        let big = "x".repeat(BATCH_BYTES / 3);
        let ops: Vec<Op> = (0..5)
            .map(|i| Op::View {
                name: format!("a{i}"),
                json: big.clone(),
            })
            .collect();
        let b = cut(ops);
        assert!(
            b.len() >= 2 && b.iter().all(|w| w.len() <= 2),
            "{}",
            b.len()
        );
    }
}
