//! Jobs that must run once for the whole fleet, whichever controllers
//! are up: forgetting appliances not seen for the registration lifetime,
//! deleting history past its retention, compacting etcd's revisions.
//! The controller that wins etcd's election (`election/jobs`, under its
//! lease) runs them; when it dies its lease expires and another wins.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::Client;

use crate::fleet::{self, Keys, Lease};
use crate::history::{self, What};
use crate::log;
use crate::registry::Shared;

/// How the jobs run.
#[derive(Debug, Clone)]
pub struct JobOptions {
    pub every: Duration,
    /// History older than this is deleted.
    pub retention: Duration,
    /// Appliances disconnected for longer than this are forgotten.
    pub expire_after: Duration,
}

pub(crate) async fn run(
    mut client: Client,
    keys: Keys,
    shared: Arc<Shared>,
    lease: Arc<Lease>,
    o: JobOptions,
) {
    let election = keys.k("election/jobs");
    loop {
        let held = lease.get();
        // Blocks until this controller leads (or etcd fails).
        if let Err(e) = client
            .campaign(election.as_str(), shared.link.id.as_str(), held)
            .await
        {
            log(format!("etcd: election: {e}; again in 1 s"));
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        log("leading the fleet's run-once jobs");
        // The revision seen one round ago: compacting to it keeps one
        // round of history for watchers that are catching up.
        let mut last_rev = 0;
        // Leadership ends with the lease it was won under.
        while lease.get() == held {
            let now = history::now_ms();
            let before = now.saturating_sub(o.retention.as_millis() as u64);
            match fleet::trim_history(&mut client, &keys, before).await {
                Ok(n) if n > 0 => log(format!("history: {n} event(s) past retention deleted")),
                Ok(_) => {}
                Err(e) => log(e),
            }
            for name in shared.expired(o.expire_after) {
                if let Err(e) = client
                    .delete(keys.k(&format!("appliance/{name}")), None)
                    .await
                {
                    log(format!("etcd: expiring {name}: {e}"));
                    continue;
                }
                log(format!("appliance {name}: registration expired"));
                shared.link.history(What::Expired { appliance: name });
            }
            match client.get(keys.k("election/"), None).await {
                Ok(r) => {
                    let rev = r.header().map_or(0, |h| h.revision());
                    if last_rev > 0 {
                        if let Err(e) = client.compact(last_rev, None).await {
                            if !e.to_string().contains("compacted") {
                                log(format!("etcd: compaction: {e}"));
                            }
                        }
                    }
                    last_rev = rev;
                }
                Err(e) => log(format!("etcd: {e}")),
            }
            tokio::time::sleep(o.every).await;
        }
    }
}
